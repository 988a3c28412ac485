"""Claims of issue 16, section 3 (sequence classification), measured side by side in one run:

1. padded batches cost <= 1.3x the unpadded equivalent: training steps (forward, backward, AdamW) of the default
   GRU and biGRU over the default run's own batches (offline Austen passages, length-bucketed, each padded to its
   longest text; each direction reads exactly the real tokens) against batches of the same texts count and the same
   real tokens without any padding. Beside them, for reference: the same batches through torch's `PackedSequence`
   layers (the textbook route, the same function), and unbucketed (random) batches through hfdl's model;
2. with --run_dir (a finished default run, `accelerate launch scripts/train_text_classifier.py`): bidirectional >=
   one-way on the test split, and both against the TF-IDF + logistic-regression baseline of the same run.

    python benchmarks/text_classification.py [--threads 2 --rounds 3 --batches 12 --run_dir outputs/text_classifier]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see scripts/train_char_lm.py: spinning OpenMP threads collapse on a shared CPU
import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from _common import emit
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from hfdl.tasks.text_classification.args import TextClassifierArguments, TextClassifierTrainingArguments, TextDataArguments
from hfdl.tasks.text_classification.data import PAD_ID, BucketedBatches, pad_batch
from hfdl.tasks.text_classification.pipeline import encode_data
from hfdl.tasks.text_classification.text_rnn import CELL_TYPES, TextRNNForSequenceClassification


class PackedReference(torch.nn.Module):
    """The same classifier through torch's multi-layer module over a `pack_padded_sequence` (weights copied)."""

    def __init__(self, model: TextRNNForSequenceClassification):
        super().__init__()
        cfg = model.config
        self.model = model
        self.rnn = getattr(torch.nn, CELL_TYPES[cfg.cell_type])(
            cfg.embedding_dim, cfg.hidden_size, num_layers=cfg.num_layers, bidirectional=cfg.bidirectional, batch_first=True
        )
        with torch.no_grad():
            for i, layer in enumerate(model.layers):
                for direction, rnn in enumerate(layer):
                    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                        getattr(self.rnn, f"{name}_l{i}{'_reverse' if direction else ''}").copy_(getattr(rnn, f"{name}_l0"))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Logits (B, num_labels), as `TextRNNForSequenceClassification(...).logits`."""
        lengths = attention_mask.sum(1)
        x = self.model.drop(self.model.embed(input_ids))
        out, state = self.rnn(pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False))
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=input_ids.size(1))
        h_n = state[0] if isinstance(state, tuple) else state
        final = torch.cat(list(h_n[-self.model.config.num_directions :]), -1)
        return self.model.classifier(self.model.drop(self.model.pool(out, final, lengths)))


def unpadded_equivalent(batch: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    """The batch's texts, each as long as the batch's mean real length (the same tokens in all), with no padding."""
    input_ids, mask, labels = batch
    width = max(1, round(float(mask.sum()) / len(labels)))
    ids = input_ids[:, :width].clone()
    ids[ids == PAD_ID] = PAD_ID + 2  # any real token where a short text had padding
    return ids, torch.ones_like(ids), labels


def seconds(step, batches: list[tuple[torch.Tensor, ...]]) -> float:
    t0 = time.perf_counter()
    for batch in batches:
        step(batch)
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads (default: every core)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--batches", type=int, default=12, help="training batches per arm and round")
    p.add_argument("--run_dir", default=None, help="a finished default run (train_text_classifier.py) to rate against its baseline")
    a = p.parse_args()
    torch.set_num_threads(a.threads)

    model_args, training_args = TextClassifierArguments(), TextClassifierTrainingArguments()
    data = encode_data(TextDataArguments(), model_args, training_args.seed)
    bucketed = BucketedBatches(data.ids["train"], data.labels["train"], training_args.per_device_train_batch_size, training_args.seed)
    padded = [bucketed[i] for i in range(a.batches)]
    unpadded = [unpadded_equivalent(b) for b in padded]
    gen = torch.Generator().manual_seed(0)
    random_rows = torch.randperm(len(data.ids["train"]), generator=gen).split(training_args.per_device_train_batch_size)[: a.batches]
    unbucketed = [pad_batch([data.ids["train"][i] for i in rows.tolist()], data.labels["train"][rows]) for rows in random_rows]
    real = sum(int(b[1].sum()) for b in padded)
    result = {
        "benchmark": "text_classification",
        "threads": a.threads,
        "load_average_1min": os.getloadavg()[0],
        "batch_size": training_args.per_device_train_batch_size,
        "padded_over_real_tokens_bucketed": sum(b[0].numel() for b in padded) / real,
        "padded_over_real_tokens_random_batches": sum(b[0].numel() for b in unbucketed) / sum(int(b[1].sum()) for b in unbucketed),
        "claims": {},
    }
    for variant in model_args.variants:  # gru, bigru
        torch.manual_seed(0)
        model = TextRNNForSequenceClassification(model_args.config_for(variant, len(data.tokenizer), data.label_names)).train()
        reference = PackedReference(model).train()
        model.eval()  # no dropout: the two routes must give the same logits
        with torch.no_grad():
            same = torch.allclose(model(padded[0][0], attention_mask=padded[0][1]).logits, reference(*padded[0][:2]), atol=1e-5)
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        ref_opt = torch.optim.AdamW([p for n, p in reference.named_parameters() if not n.startswith("model.layers")], lr=1e-3)

        def ours(batch, model=model, opt=opt):
            model(batch[0], attention_mask=batch[1], labels=batch[2]).loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        def packed(batch, reference=reference, opt=ref_opt):
            torch.nn.functional.cross_entropy(reference(batch[0], batch[1]), batch[2]).backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        arms = {"padded": (ours, padded), "unpadded": (ours, unpadded), "torch_packed": (packed, padded), "padded_unbucketed": (ours, unbucketed)}
        for step, batches in arms.values():  # warm-up
            step(batches[0])
        times: dict[str, list[float]] = {name: [] for name in arms}
        for _ in range(a.rounds):
            for name, (step, batches) in arms.items():  # arms alternate within each round
                times[name].append(seconds(step, batches))
        median = {name: statistics.median(t) for name, t in times.items()}
        result[f"{variant}_seconds"] = median
        result[f"{variant}_padded_over_unpadded"] = median["padded"] / median["unpadded"]
        result[f"{variant}_torch_packed_over_unpadded"] = median["torch_packed"] / median["unpadded"]
        result[f"{variant}_unbucketed_over_unpadded"] = median["padded_unbucketed"] / median["unpadded"]
        result[f"{variant}_real_tokens_per_second"] = real / median["padded"]
        result["claims"][f"{variant}_padded<=1.3x_unpadded"] = median["padded"] / median["unpadded"] <= 1.3
        result["claims"][f"{variant}_model_equals_packed_reference"] = bool(same)
    if a.run_dir:
        run = Path(a.run_dir)
        results = json.loads((run / "all_results.json").read_text())
        baseline = json.loads((run / "comparison.json").read_text())["baseline"]
        split = "test" if "test_accuracy" in baseline else "eval"
        for name, r in {**results, "tfidf": baseline}.items():
            result[f"{name}_{split}_accuracy"] = r[f"{split}_accuracy"]
            result[f"{name}_{split}_f1_macro"] = r[f"{split}_f1_macro"]
        uni, bi = model_args.variants
        result["claims"]["bidirectional>=unidirectional"] = results[bi][f"{split}_accuracy"] >= results[uni][f"{split}_accuracy"]
        result["claims"]["best_rnn_beats_tfidf"] = max(r[f"{split}_accuracy"] for r in results.values()) > baseline[f"{split}_accuracy"]
    emit(result)


if __name__ == "__main__":
    main()
