"""Sequence classification with recurrent networks: one model or several side by side (with a TF-IDF baseline).

Data -> `tokenizers` vocabulary -> length-bucketed batches -> the shared loop (`hfdl.core.training.train`), validation
accuracy and macro-F1 (torchmetrics) every epoch, the test split at the end; each model is saved as a transformers
folder (weights, config with the label names, its code `text_rnn.py`, the tokenizer) that `pipeline("text-classification")`
runs, with its card.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from accelerate import Accelerator
from torch.utils.data import DataLoader

from hfdl.assets.corpora import CORPORA
from hfdl.core.metrics import evaluate_classifier, plot_confusion_matrix
from hfdl.core.rundir import ALL_RESULTS, RESULTS, RUN_CONFIG, check_output_dir, run_config, run_variants, write_json
from hfdl.core.runtime import PeakMemory
from hfdl.core.training import make_accelerator, train
from hfdl.errors import HfdlError
from hfdl.tasks.text_classification.args import TextClassifierArguments, TextClassifierTrainingArguments, TextDataArguments
from hfdl.tasks.text_classification.card import write_cards
from hfdl.tasks.text_classification.data import (
    HELD_OUT_FRACTION,
    PAD_ID,
    BucketedBatches,
    LabelledTexts,
    SortedExamples,
    build_tokenizer,
    collate_examples,
    encode_texts,
    load_labelled_texts,
    vocabulary_fingerprint,
    whole_batch,
)
from hfdl.tasks.text_classification.report import write_comparison
from hfdl.tasks.text_classification.text_rnn import TextRNNForSequenceClassification

logger = logging.getLogger(__name__)

TASK = "text-classification"
OUTPUTS = ("config.json", "model.safetensors", "tokenizer*.json", "special_tokens_map.json", "text_rnn.py", "confusion_matrix.png")
EXAMPLE_CHARS = 200  # the card's example text: the first validation text, cut at a word boundary


@dataclass
class EncodedData:
    """The labelled texts with their tokenizer and the token ids of every split."""

    texts: LabelledTexts
    tokenizer: object
    ids: dict[str, list[torch.Tensor]]
    labels: dict[str, torch.Tensor]

    @property
    def label_names(self) -> list[str]:
        return self.texts.label_names

    def loader(self, split: str, batch_size: int) -> DataLoader:
        """Evaluation batches of `split`, sorted by length (prepare it with accelerate to shard and gather)."""
        return DataLoader(SortedExamples(self.ids[split], self.labels[split]), batch_size=batch_size, collate_fn=collate_examples)

    def describe(self, data_args: TextDataArguments) -> dict:
        """The run_config.json `data` section: where the texts came from, sizes, what was skipped, the vocabulary."""
        lengths = torch.tensor([len(x) for x in self.ids["train"]], dtype=torch.float)
        first = self.texts.splits["validation"].texts[0]
        example = first if len(first) <= EXAMPLE_CHARS else first[:EXAMPLE_CHARS].rsplit(" ", 1)[0]
        split_rule = (
            f"by chapter: per novel, {HELD_OUT_FRACTION:.0%} of the chapters (ordered by a seeded hash) are test and the next {HELD_OUT_FRACTION:.0%} validation"
            if data_args.offline_default
            else "the source's splits"
            + (f"; validation: {data_args.validation_split_percentage:g}% of each training class (seeded)" if self.texts.validation_from_train else "")
        )
        return {
            "source": self.texts.source,
            "split": split_rule,
            "label_names": self.label_names,
            "sizes": {name: len(split) for name, split in self.texts.splits.items()},
            "class_counts": {name: torch.bincount(self.labels[name], minlength=len(self.label_names)).tolist() for name in self.labels},
            "skipped_empty_texts": self.texts.skipped_empty,
            "skipped_unlabelled_rows": self.texts.skipped_unlabelled,
            "vocab_size": len(self.tokenizer),
            "vocabulary_fingerprint": vocabulary_fingerprint(self.tokenizer),
            "mean_train_tokens": round(float(lengths.mean()), 1),
            "max_train_tokens": int(lengths.max()),
            "fingerprint": self.texts.fingerprint,
            "example_text": example,
        }


def encode_data(data_args: TextDataArguments, model_args: TextClassifierArguments, seed: int) -> EncodedData:
    """Load the labelled texts, train the vocabulary on the training split, encode every split."""
    texts = load_labelled_texts(data_args, seed)
    tokenizer = build_tokenizer(
        texts.splits["train"].texts, model_args.tokenizer, model_args.vocab_size, model_args.min_frequency, model_args.lowercase, model_args.tokens_per_text
    )
    ids = {name: encode_texts(tokenizer, split.texts, model_args.tokens_per_text) for name, split in texts.splits.items()}
    labels = {name: torch.tensor(split.labels, dtype=torch.long) for name, split in texts.splits.items()}
    return EncodedData(texts, tokenizer, ids, labels)


def check_resume(out: Path, data_section: dict, training_args: TextClassifierTrainingArguments) -> None:
    """A resumed run must see the label map and vocabulary it was trained with (the weights mean nothing otherwise)."""
    previous = out / RUN_CONFIG
    if not training_args.resume_from_checkpoint or not previous.is_file():
        return
    before = json.loads(previous.read_text(encoding="utf-8")).get("data", {})
    if before.get("label_names") not in (None, data_section["label_names"]):
        raise HfdlError(
            f"{out} was trained with labels {before['label_names']} but the data now gives {data_section['label_names']}: "
            "resume with the same data and --label_column, or start afresh with --overwrite_output_dir"
        )
    if before.get("vocabulary_fingerprint") not in (None, data_section["vocabulary_fingerprint"]):
        raise HfdlError(
            f"{out} was trained with another vocabulary (fingerprint {before['vocabulary_fingerprint']}, now {data_section['vocabulary_fingerprint']}): "
            "resume with the same training data and tokenizer flags, or start afresh with --overwrite_output_dir"
        )


def run_one(
    variant: str,
    run_dir: Path,
    model_args: TextClassifierArguments,
    training_args: TextClassifierTrainingArguments,
    accelerator: Accelerator,
    data: EncodedData,
) -> dict:
    """Train one model; save the Hub-ready folder `run_dir` (and its confusion matrix); return its results."""
    t_wall = time.perf_counter()
    mem = PeakMemory()
    num_classes = len(data.label_names)
    with mem:
        torch.manual_seed(training_args.seed)
        config = model_args.config_for(variant, len(data.tokenizer), data.label_names, PAD_ID)
        model = TextRNNForSequenceClassification(config)
        num_params = sum(p.numel() for p in model.parameters())
        batches = BucketedBatches(data.ids["train"], data.labels["train"], training_args.per_device_train_batch_size, training_args.seed)
        train_dl = DataLoader(batches, batch_size=1, collate_fn=whole_batch)
        eval_dls = {split: accelerator.prepare(data.loader(split, training_args.per_device_eval_batch_size)) for split in data.ids if split != "train"}

        def forward(m, inputs):
            return m(inputs[0], attention_mask=inputs[1]).logits

        def compute_loss(m, batch):
            return m(batch[0], attention_mask=batch[1], labels=batch[2]).loss

        def evaluate(m):
            return evaluate_classifier(accelerator, m, eval_dls["validation"], num_classes, forward=forward)

        model, result = train(accelerator, model, None, train_dl, training_args, run_dir, compute_loss=compute_loss, evaluate=evaluate, run_name=variant)
        final = result.final_metrics
        reported = "test" if "test" in eval_dls else "validation"
        t_eval = time.perf_counter()
        scored = evaluate_classifier(accelerator, model, eval_dls[reported], num_classes, forward=forward, confusion=True)
        inference_tps = len(data.ids[reported]) / (time.perf_counter() - t_eval)
        test = {f"test_{k[5:]}": v for k, v in scored.items() if k.startswith("eval_")} if reported == "test" else {}
    accuracies = [h["eval_accuracy"] for h in result.history if "eval_accuracy" in h]
    cell_type, bidirectional = config.cell_type, config.bidirectional
    results = {
        "model_type": variant,
        "cell_type": cell_type,
        "bidirectional": bidirectional,
        **{k: final[k] for k in ("eval_accuracy", "eval_f1_macro", "eval_top5", "eval_loss") if k in final},
        **test,
        "best_eval_accuracy": max(accuracies) if accuracies else final["eval_accuracy"],
        "num_params": num_params,
        "train_seconds": result.train_seconds,
        "wall_seconds": time.perf_counter() - t_wall,
        "train_samples_per_second": result.train_samples_per_second,
        "inference_texts_per_second": inference_tps,
        "completed_steps": result.completed_steps,
        "epochs": result.train_samples / max(1, len(data.ids["train"])),
        "stopped_by_time_budget": bool(training_args.time_budget_minutes) and result.completed_steps < result.planned_steps,
        **({"schedule_steps": result.schedule_steps} if result.schedule_steps else {}),
        "peak_rss_mb": mem.peak_rss_mb,
        "train_samples": len(data.ids["train"]),
        "eval_samples": len(data.ids["validation"]),
        **({"test_samples": len(data.ids["test"])} if "test" in data.ids else {}),
        "vocab_size": len(data.tokenizer),
    }
    if accelerator.is_main_process:
        run_dir.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(run_dir)
        data.tokenizer.save_pretrained(run_dir)
        title = f"{variant}, {reported}: accuracy {scored['eval_accuracy']:.4f}, macro-F1 {scored['eval_f1_macro']:.4f}"
        plot_confusion_matrix(scored["confusion_matrix"], data.label_names, str(run_dir / "confusion_matrix.png"), title)
        write_json(run_dir / "history.json", result.history)
        write_json(run_dir / RESULTS, results)
    accelerator.wait_for_everyone()
    return results


def run(
    model_args: TextClassifierArguments,
    data_args: TextDataArguments,
    training_args: TextClassifierTrainingArguments,
    argv: list[str] | None = None,
) -> dict:
    """The whole pipeline; returns all_results (flat for one model, keyed by model under a comparison)."""
    t0 = time.perf_counter()
    out = Path(training_args.output_dir)
    variants = model_args.variants
    run_dirs = [out / v for v in variants] if model_args.compared else [out]
    check_output_dir(out, run_dirs, training_args, OUTPUTS)
    accelerator = make_accelerator(training_args)
    with accelerator.main_process_first():
        data = encode_data(data_args, model_args, training_args.seed)
    described = data.describe(data_args)
    sizes = ", ".join(f"{n:,} {name}" for name, n in described["sizes"].items())
    accelerator.print(f"data: {data.texts.source}: {sizes}; {len(data.label_names)} classes; vocabulary {described['vocab_size']:,} {model_args.tokenizer}s")
    for what, counts in (("empty texts", data.texts.skipped_empty), ("rows without a label", data.texts.skipped_unlabelled)):
        if any(counts.values()):
            logger.warning("skipped %s: %s", what, ", ".join(f"{n} in {split}" for split, n in counts.items() if n))
    check_resume(out, described, training_args)
    out.mkdir(parents=True, exist_ok=True)
    config = run_config(
        TASK, argv, {"model_args": model_args, "data_args": {**asdict(data_args), "offline_default": data_args.offline_default}, "training_args": training_args},
        accelerator, data=described, offline_assets=[CORPORA["austen"].provenance()] if data_args.offline_default else [],
    )  # fmt: skip
    write_json(out / RUN_CONFIG, config, accelerator.is_main_process)

    def train_one(variant: str, folder: Path, args: TextClassifierTrainingArguments) -> dict:
        return run_one(variant, folder, model_args, args, accelerator, data)

    all_results = run_variants(variants, run_dirs, training_args, train_one, accelerator.print)
    results = all_results if model_args.compared else all_results[variants[0]]
    if accelerator.is_main_process:
        write_json(out / ALL_RESULTS, results)
        if model_args.compared:
            accelerator.print(write_comparison(all_results, out, data.texts, title=f"{' vs '.join(variants)} on {data.texts.source}", seed=training_args.seed))
        config["wall_seconds"] = time.perf_counter() - t0
        write_json(out / RUN_CONFIG, config)
        write_cards(out, accelerator)
    accelerator.wait_for_everyone()
    accelerator.free_memory()
    return results
