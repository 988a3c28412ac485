"""Claims of issue 4 (char-level RNN/LSTM/GRU), measured side by side in one run:

1. training throughput of the fused `nn.LSTM` path >= 1.5x a Python `nn.LSTMCell` loop (same model, batch, weights);
2. generation >= 1,000 chars/s on CPU for a 2-layer, 512-unit LSTM at batch 1 (hfdl's state-carrying sampler);
3. quality: the 4-gram Kneser-Ney baseline's validation bits/char on `austen` (same contiguous split as
   train_char_lm.py), and, with --compare_dir, the margin of the best cell type of a `--compare` run.

    python benchmarks/char_lm.py [--threads 2 --rounds 3 --compare_dir outputs/austen_compare]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see scripts/train_char_lm.py: spinning OpenMP threads collapse on a shared CPU
import argparse
import json
import math
import statistics
import time
from pathlib import Path

import torch
from _common import emit

from hfdl.tasks.char_lm.char_lm import CharLMConfig, CharLMForCausalLM
from hfdl.tasks.char_lm.model import CharGenerator


class CellLoopLSTM(torch.nn.Module):
    """The same LSTM as a Python loop over time and layers with `nn.LSTMCell` (the lectures' unrolled picture)."""

    def __init__(self, model: CharLMForCausalLM):
        super().__init__()
        cfg = model.config
        self.embed = torch.nn.Embedding(cfg.vocab_size, cfg.embedding_dim)
        self.cells = torch.nn.ModuleList(torch.nn.LSTMCell(cfg.embedding_dim if i == 0 else cfg.hidden_size, cfg.hidden_size) for i in range(cfg.num_layers))
        self.lm_head = torch.nn.Linear(cfg.hidden_size, cfg.vocab_size)
        with torch.no_grad():  # identical weights
            self.embed.weight.copy_(model.embed.weight)
            self.lm_head.load_state_dict(model.lm_head.state_dict())
            for i, cell in enumerate(self.cells):
                for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                    getattr(cell, n).copy_(getattr(model.rnn, f"{n}_l{i}"))
        self.hidden_size = cfg.hidden_size

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.embed(ids)  # (B, T, E)
        b = ids.size(0)
        state = [(x.new_zeros(b, self.hidden_size), x.new_zeros(b, self.hidden_size)) for _ in self.cells]
        outs = []
        for t in range(ids.size(1)):
            h = x[:, t]
            for i, cell in enumerate(self.cells):
                state[i] = cell(h, state[i])
                h = state[i][0]
            outs.append(h)
        return self.lm_head(torch.stack(outs, 1))  # (B, T, V)


def train_throughput(forward, params, ids, targets, steps: int) -> float:
    opt = torch.optim.AdamW(params, lr=1e-3)
    forward(ids).sum().backward()  # warm-up (allocations, kernels)
    opt.zero_grad(set_to_none=True)
    t0 = time.perf_counter()
    for _ in range(steps):
        logits = forward(ids)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
    return steps * ids.numel() / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads (default: every core)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--train_steps", type=int, default=4)
    p.add_argument("--batch_size", type=int, default=64)
    p.add_argument("--seq_len", type=int, default=128)
    p.add_argument("--gen_chars", type=int, default=1000)
    p.add_argument("--corpus", default="austen")
    p.add_argument("--ngram_order", type=int, default=4)
    p.add_argument("--compare_dir", default=None, help="a train_char_lm.py --compare output folder to rate against the baseline")
    a = p.parse_args()
    torch.set_num_threads(a.threads)

    from hfdl.assets import load_corpus
    from hfdl.tasks.char_lm.data import build_char_tokenizer, encode_text, split_text

    train_text, val_text = split_text(load_corpus(a.corpus), 0.1)
    tok = build_char_tokenizer(train_text)
    vocab = tok.get_vocab()
    ids_all = encode_text(train_text[: a.batch_size * (a.seq_len + 1) * 4], vocab)

    # 1. fused nn.LSTM vs nn.LSTMCell loop, training (forward + backward + clip + AdamW), arms alternating
    torch.manual_seed(0)
    fused = CharLMForCausalLM(CharLMConfig(cell_type="lstm", vocab_size=len(tok), embedding_dim=64, hidden_size=256, num_layers=2)).train()
    loop = CellLoopLSTM(fused).train()
    x = ids_all[: a.batch_size * a.seq_len].view(a.batch_size, a.seq_len)
    y = ids_all[1 : a.batch_size * a.seq_len + 1].view(a.batch_size, a.seq_len)
    with torch.no_grad():
        assert torch.allclose(fused(x).logits, loop(x), atol=1e-4), "the two arms must compute the same function"
    fused_cps, loop_cps = [], []
    for _ in range(a.rounds):
        fused_cps.append(train_throughput(lambda i: fused(i).logits, list(fused.parameters()), x, y, a.train_steps))
        loop_cps.append(train_throughput(loop, list(loop.parameters()), x, y, a.train_steps))

    # 2. generation, 2 x 512 LSTM, batch 1, sampling at temperature 1 (weights random: speed does not depend on them)
    torch.manual_seed(0)
    big = CharLMForCausalLM(CharLMConfig(cell_type="lstm", vocab_size=len(tok), embedding_dim=64, hidden_size=512, num_layers=2)).eval()
    gen = CharGenerator(big, tok)
    ref = CharGenerator(big, tok)  # the same sampler through `model.step` (no preallocated stepper), arms alternating
    ref.use_stepper = False
    gen.chars_per_second(100)  # warm-up
    ref.chars_per_second(100)
    gen_cps, ref_cps = [], []
    for _ in range(a.rounds):
        gen_cps.append(gen.chars_per_second(a.gen_chars))
        ref_cps.append(ref.chars_per_second(a.gen_chars))
    # transformers' own generate() on the same model (greedy, state as the cache), for reference
    prompt = torch.tensor([[vocab["\n"]]])
    t0 = time.perf_counter()
    big.generate(prompt, max_new_tokens=300, do_sample=False)
    hf_gen_cps = 300 / (time.perf_counter() - t0)

    # 3. n-gram baseline on the same split
    from hfdl.tasks.char_lm.ngram import KneserNeyCharLM

    t0 = time.perf_counter()
    ngram_bpc = KneserNeyCharLM(a.ngram_order).fit(train_text).nats_per_char(val_text) / math.log(2)
    ngram_s = time.perf_counter() - t0

    result = {
        "benchmark": "char_lm",
        "threads": a.threads,
        "load_average_1min": os.getloadavg()[0],
        "fused_lstm_train_chars_per_s": statistics.median(fused_cps),
        "lstmcell_loop_train_chars_per_s": statistics.median(loop_cps),
        "fused_over_loop": statistics.median(fused_cps) / statistics.median(loop_cps),
        "generation_chars_per_s_2x512_lstm_b1": statistics.median(gen_cps),
        "generation_chars_per_s_rounds": [round(v) for v in gen_cps],
        "generation_chars_per_s_model_step_path": statistics.median(ref_cps),
        "transformers_generate_greedy_chars_per_s": hf_gen_cps,
        f"{a.ngram_order}gram_kn_val_bpc": ngram_bpc,
        "ngram_seconds": ngram_s,
        "corpus": a.corpus,
        "claims": {"fused_over_loop>=1.5": statistics.median(fused_cps) / statistics.median(loop_cps) >= 1.5},
    }
    result["claims"]["generation>=1000"] = result["generation_chars_per_s_2x512_lstm_b1"] >= 1000
    if a.compare_dir:
        results = json.loads((Path(a.compare_dir) / "all_results.json").read_text())
        best = min(results, key=lambda k: results[k]["best_eval_bpc"])
        result.update({f"{k}_best_val_bpc": v["best_eval_bpc"] for k, v in results.items()})
        result["best_cell"] = best
        result["best_minus_ngram_bpc"] = results[best]["best_eval_bpc"] - ngram_bpc
        result["claims"]["best_cell_beats_ngram"] = results[best]["best_eval_bpc"] < ngram_bpc
    emit(result)


if __name__ == "__main__":
    main()
