"""The models of a text-classification run side by side with a TF-IDF + logistic-regression baseline on the same
splits: comparison.md, comparison.json and comparison.png."""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from hfdl.core import report
from hfdl.core.metrics import classification_metrics
from hfdl.tasks.text_classification.data import LabelledTexts

BASELINE = "TF-IDF + logistic regression"
COLUMNS = [
    ("model_type", "model", "{}"),
    ("num_params", "parameters", "{:,}"),
    ("eval_accuracy", "val accuracy", "{:.4f}"),
    ("eval_f1_macro", "val macro-F1", "{:.4f}"),
    ("test_accuracy", "test accuracy", "{:.4f}"),
    ("test_f1_macro", "test macro-F1", "{:.4f}"),
    ("train_seconds", "train time (s)", "{:.1f}"),
    ("train_samples_per_second", "train texts/s", "{:,.0f}"),
    ("inference_texts_per_second", "inference texts/s", "{:,.0f}"),
    ("epochs", "epochs", "{:.1f}"),
]


def tfidf_baseline(data: LabelledTexts, seed: int) -> dict:
    """Word uni- and bigram TF-IDF (sublinear counts, seen in two training texts or more) + multinomial logistic
    regression (C = 10) fitted on the training split, scored on the others with the same torchmetrics metrics."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    t0 = time.perf_counter()
    vectorizer = TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), min_df=2)
    features = vectorizer.fit_transform(data.splits["train"].texts)
    classifier = LogisticRegression(C=10.0, max_iter=1000, random_state=seed).fit(features, data.splits["train"].labels)
    result = {"model_type": BASELINE, "num_params": int(classifier.coef_.size + classifier.intercept_.size), "train_seconds": time.perf_counter() - t0}
    for split, prefix in (("validation", "eval"), ("test", "test")):
        if split in data.splits:
            t_eval = time.perf_counter()
            log_probs = torch.from_numpy(classifier.predict_log_proba(vectorizer.transform(data.splits[split].texts))).float()
            labels = torch.tensor(data.splits[split].labels)
            scores = classification_metrics(len(data.label_names))(log_probs, labels)
            result |= {f"{prefix}_{k}": v.item() for k, v in scores.items()}
            result[f"{prefix}_loss"] = torch.nn.functional.nll_loss(log_probs, labels).item()
            if split == "test" or "test" not in data.splits:
                result["inference_texts_per_second"] = len(labels) / (time.perf_counter() - t_eval)
    return result


def comparison_table(rows: list[dict]) -> str:
    return report.comparison_table(rows, COLUMNS)


def _verdict(all_results: dict[str, dict], baseline: dict, split: str) -> str:
    """Which model is best on the reported split, and by how much against the baseline (plus or minus)."""
    key = f"{split}_accuracy"
    best, r = max(all_results.items(), key=lambda kv: kv[1][key])
    gap = r[key] - baseline[key]
    versus = f"{abs(gap) * 100:.1f} points {'above' if gap >= 0 else 'below'} the {BASELINE} baseline ({baseline[key]:.4f})"
    return f"Best {'test' if split == 'test' else 'validation'} accuracy: **{best}** at {r[key]:.4f} (macro-F1 {r[f'{split}_f1_macro']:.4f}), {versus}."


def write_comparison(all_results: dict[str, dict], out_dir: str | Path, data: LabelledTexts, title: str, seed: int = 0) -> str:
    """Write comparison.{md,json,png} under out_dir and return the Markdown table."""
    out_dir = Path(out_dir)
    baseline = tfidf_baseline(data, seed)
    rows = [{**r, "model_type": name} for name, r in all_results.items()] + [baseline]
    table = comparison_table(rows)
    split = "test" if "test" in data.splits else "eval"
    sizes = ", ".join(f"{len(s):,} {name}" for name, s in data.splits.items())
    report.write_markdown(
        out_dir,
        f"Text-classification comparison: {title}",
        [
            f"Same splits ({sizes} texts), vocabulary, seed and training budget for every recurrent model; the baseline fits the same training texts. "
            "Validation is scored after every epoch; the test split once, at the end.",
            table,
            _verdict(all_results, baseline, split),
            "![validation accuracy during training, and the final scores](comparison.png)",
        ],
    )
    (out_dir / "comparison.json").write_text(json.dumps({"rows": rows, "baseline": baseline}, indent=2, ensure_ascii=False))

    fig, (curves, bars) = report.figure(2, (12, 4.5))
    report.plot_curves(curves, out_dir, list(all_results), "eval_accuracy", label=lambda name: f"{name} ({all_results[name]['num_params']:,} params)")
    curves.axhline(baseline["eval_accuracy"], color="gray", ls="--", label=BASELINE)
    curves.set_ylabel("validation accuracy")
    curves.legend(fontsize=8)
    names = [r["model_type"] for r in rows]
    for offset, (key, label) in enumerate(((f"{split}_accuracy", "accuracy"), (f"{split}_f1_macro", "macro-F1"))):
        bars.bar([i + 0.4 * offset for i in range(len(rows))], [r[key] for r in rows], width=0.4, label=label)
    bars.set_xticks([i + 0.2 for i in range(len(rows))], [n if len(n) < 12 else "TF-IDF + LR" for n in names])
    bars.set_ylim(max(0.0, min(min(r[f"{split}_accuracy"], r[f"{split}_f1_macro"]) for r in rows) - 0.1), 1.0)
    bars.set_title(f"{'test' if split == 'test' else 'validation'} split", fontsize=10)
    bars.legend(fontsize=8)
    bars.grid(alpha=0.3, axis="y")
    report.save_figure(fig, out_dir / "comparison.png", title)
    return table
