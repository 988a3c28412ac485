"""The recurrent char-LM against a small causal transformer at equal CPU time, same split, same loop (issue 16).

1. The RNN: `scripts/train_char_lm.py --corpus austen --time_budget_minutes B` with its defaults (the best measured
   recipe), scored statefully over the whole validation stream (every character with all of its past).
2. The transformer: hfdl's `CharTransformer` in nanoGPT's CPU recipe (4 layers, 4 heads, 128 wide, block 64, batch 12,
   dropout 0, AdamW 1e-3 with a cosine decay to 1e-4 fitted to the same budget by the shared loop, random 64-character
   windows of the same training text, the same vocabulary). Scored over the same whole validation stream with
   windows of 64, stride 32 (each character from 32-63 characters of context: all a block-64 model can use), and,
   for comparison with nanoGPT's own numbers, its estimate (mean loss over 200 random validation windows).

    python benchmarks/char_lm_vs_transformer.py                    # 2 x 14.7 minutes of training, about 35 minutes
    python benchmarks/char_lm_vs_transformer.py --budget 1         # a quick look
    python benchmarks/char_lm_vs_transformer.py --rnn_run outputs/char_lm   # the RNN from a finished run of step 1's command

OpenMP's wait policy is the scripts' (the user's; see the README): run it on a machine that the benchmark has to itself.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from _common import emit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))


def transformer_run(corpus: str, budget: float, out: Path, seed: int) -> dict:
    import torch

    from hfdl.core.training import TrainingArguments, make_accelerator, tensor_loader, train
    from hfdl.tasks.char_lm.args import TextDataArguments
    from hfdl.tasks.char_lm.data import prepare_text
    from hfdl.tasks.char_lm.transformer import CharTransformer, evaluate_windows

    @dataclass
    class Recipe(TrainingArguments):
        output_dir: str = field(default=str(out))
        per_device_train_batch_size: int = 12
        learning_rate: float = 1e-3
        weight_decay: float = 0.1
        warmup_ratio: float = 0.005
        lr_scheduler_type: str = "cosine"
        eval_steps: int | None = 2500

    args = Recipe(time_budget_minutes=budget, seed=seed, max_grad_norm=1.0)
    data = prepare_text(TextDataArguments(corpus=corpus), 1000)
    torch.manual_seed(seed)
    model = CharTransformer(len(data.tokenizer))
    block = model.block_size
    train_ids = data.train_ids
    starts = torch.arange(train_ids.numel() - block - 1)
    loader = tensor_loader(starts, batch_size=args.per_device_train_batch_size, shuffle=True, drop_last=True)
    offsets = torch.arange(block)

    def compute_loss(m, batch):
        (s,) = batch
        idx = s[:, None] + offsets
        logits = m(train_ids[idx])
        return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), train_ids[idx + 1].reshape(-1))

    val = data.val_ids
    probe = torch.Generator().manual_seed(seed)
    probe_starts = torch.randint(0, val.numel() - block - 1, (200,), generator=probe)

    @torch.inference_mode()
    def nanogpt_estimate(m) -> float:
        idx = probe_starts[:, None] + offsets
        logits = m(val[idx])
        return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), val[idx + 1].reshape(-1)).item()

    def evaluate(m):
        inner = accelerator.unwrap_model(m)
        was = inner.training
        inner.eval()
        est = nanogpt_estimate(inner)
        inner.train(was)
        return {"eval_loss_random_windows": est}

    accelerator = make_accelerator(args)
    t = time.perf_counter()
    model, result = train(
        accelerator,
        model,
        None,  # the loop's groups: weight decay on every 2-d tensor (embeddings included, as nanoGPT), none on norm scales
        loader,
        args,
        out,
        compute_loss=compute_loss,
        evaluate=evaluate,
        run_name="transformer",
    )
    wall = time.perf_counter() - t
    nats = evaluate_windows(model, val)
    return {
        "eval_loss": nats,
        "eval_bpc": nats / math.log(2),
        "eval_loss_random_windows": result.final_metrics["eval_loss_random_windows"],
        "num_params": sum(p.numel() for p in model.parameters()),
        "completed_steps": result.completed_steps,
        "train_seconds": result.train_seconds,
        "chars_per_second": result.completed_steps * args.per_device_train_batch_size * block / result.train_seconds,
        "wall_seconds": wall,
    }


def finished_rnn_run(run: Path, corpus: str, budget: float) -> dict:
    """all_results.json of a finished default run on the same corpus and budget, else a one-line error."""
    import json

    try:
        results = json.loads((run / "all_results.json").read_text())
        config = json.loads((run / "run_config.json").read_text())
    except (OSError, ValueError) as err:
        raise SystemExit(f"--rnn_run {run}: no finished run there ({type(err).__name__}): pass the folder a finished train_char_lm.py run wrote") from None
    data, training = config.get("data_args", {}), config.get("training_args", {})
    if data.get("corpus") != corpus or training.get("time_budget_minutes") != budget:
        raise SystemExit(
            f"--rnn_run {run} trained on corpus {data.get('corpus')!r} for {training.get('time_budget_minutes')} min, not {corpus!r} for {budget:g}: "
            "pass a run of the same corpus and --budget"
        )
    return results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--budget", type=float, default=14.7, help="Minutes of training for each model.")
    p.add_argument("--corpus", default="austen")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument(
        "--rnn_run",
        default=None,
        help="A finished run folder of `scripts/train_char_lm.py --corpus C --time_budget_minutes B` (defaults otherwise): its "
        "all_results.json is the RNN's row, so only the transformer trains.",
    )
    a = p.parse_args()
    import torch

    torch.set_num_threads(len(os.sched_getaffinity(0)))
    import train_char_lm

    with tempfile.TemporaryDirectory() as tmp:
        if a.rnn_run:
            rnn = finished_rnn_run(Path(a.rnn_run), a.corpus, a.budget)
        else:
            rnn = train_char_lm.main(
                ["--corpus", a.corpus, "--time_budget_minutes", str(a.budget), "--output_dir", str(Path(tmp) / "rnn"), "--seed", str(a.seed)]
            )
        tr = transformer_run(a.corpus, a.budget, Path(tmp) / "transformer", a.seed)
    rows = [
        (
            f"{rnn['model_type']} (hfdl defaults)",
            rnn["num_params"],
            rnn["eval_loss"],
            rnn["eval_bpc"],
            "-",
            rnn["completed_steps"],
            rnn["train_chars_per_second"],
        ),
        (
            "transformer (nanoGPT CPU recipe)",
            tr["num_params"],
            tr["eval_loss"],
            tr["eval_bpc"],
            f"{tr['eval_loss_random_windows']:.4f}",
            tr["completed_steps"],
            tr["chars_per_second"],
        ),
    ]
    print(f"\n{a.budget:g} minutes of training each, {a.corpus}, same 90/10 split and vocabulary\n")
    print(
        "| model | parameters | val nats/char | val bits/char | nanoGPT estimate (200 windows) | steps | train chars/s |\n|---|---:|---:|---:|---:|---:|---:|"
    )
    for name, n, nats, bpc, est, steps, cps in rows:
        print(f"| {name} | {n:,} | {nats:.4f} | {bpc:.4f} | {est} | {steps:,} | {cps:,.0f} |")
    emit(
        {
            "budget_minutes": a.budget,
            "rnn_model_type": rnn["model_type"],
            "rnn_nats_per_char": rnn["eval_loss"],
            "transformer_nats_per_char": tr["eval_loss"],
            "transformer_nats_random_windows": tr["eval_loss_random_windows"],
            "rnn_minus_transformer": rnn["eval_loss"] - tr["eval_loss"],
            "rnn_below_transformer": rnn["eval_loss"] < tr["eval_loss"],
            "rnn_target_met": rnn["eval_loss"] <= 1.20,
            "rnn_steps": rnn["completed_steps"],
            "transformer_steps": tr["completed_steps"],
        }
    )


if __name__ == "__main__":
    main()
