"""The detector's pictures and comparison: the precision-recall curves of the final evaluation
(`pr_curve.png`) and, with `--compare_scratch`, the pretrained and scratch detectors side by side
(`comparison.md`, `comparison.json`, `comparison.png`)."""

from __future__ import annotations

import json
from pathlib import Path

from hfdl.core import report

COLUMNS = [
    ("variant", "backbone", "{}"),
    ("eval_map_50", "mAP@.50", "{:.4f}"),
    ("eval_map", "mAP@[.50:.95]", "{:.4f}"),
    ("eval_mar_100", "mAR@100", "{:.4f}"),
    ("train_seconds", "training time (s)", "{:.0f}"),
    ("train_images_per_second", "train images/s", "{:.1f}"),
    ("completed_steps", "steps", "{}"),
    ("num_parameters", "parameters", "{:,}"),
]
VARIANT_TITLES = {"pretrained": "pretrained (ImageNet)", "scratch": "from scratch"}


def pr_curve(found: dict, iou_index: int = 0) -> dict:
    """torchmetrics' extended summary -> {"iou": 0.5, "recall": [101], "precision": {class id: [101]}}: the
    interpolated COCO precision at IoU 0.50, all areas, 100 detections; classes without objects are left out."""
    precision = found["precision"][iou_index, :, :, 0, -1]  # (101 recall points, K classes)
    classes = found["classes"].reshape(-1).tolist()
    curves = {int(c): [round(max(v, 0.0), 4) for v in precision[:, k].tolist()] for k, c in enumerate(classes) if precision[:, k].min() >= 0}
    return {"iou": 0.5 + 0.05 * iou_index, "recall": [round(i / 100, 2) for i in range(101)], "precision": curves}


def write_pr_curve(curve: dict, label_names: list[str], path: Path) -> None:
    """`pr_curve.png`: one thin line per class and the class mean in black (its area is mAP@.50)."""
    if not curve or not curve["precision"]:
        return
    fig, ax = report.figure(1, (6.5, 5))
    recall, per_class = curve["recall"], curve["precision"]
    for c, precision in sorted(per_class.items()):
        ax.plot(recall, precision, lw=1, alpha=0.7, label=label_names[int(c)])
    mean = [sum(p[i] for p in per_class.values()) / len(per_class) for i in range(len(recall))]
    ax.plot(recall, mean, color="black", lw=2.5, label=f"mean (AP@.50 {sum(mean) / len(mean):.3f})")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower left")
    report.save_figure(fig, path, f"Precision-recall at IoU {curve['iou']:.2f}")


def write_comparison(all_results: dict[str, dict], out_dir: str | Path, title: str) -> str:
    """The pretrained and scratch runs side by side; returns the Markdown table."""
    out_dir = Path(out_dir)
    rows = [{**r, "variant": VARIANT_TITLES.get(name, name)} for name, r in all_results.items()]
    table = report.comparison_table(rows, COLUMNS)
    report.write_markdown(
        out_dir,
        f"What pretraining buys: {title}",
        [
            "The same detector, data split, seed, augmentation and step budget; only the backbone's starting weights differ.",
            table,
            "![mAP@.50 against training time](comparison.png)",
        ],
    )
    (out_dir / "comparison.json").write_text(json.dumps([{"variant": k, **v} for k, v in all_results.items()], indent=2))
    fig, ax = report.figure(1, (7.5, 4.5))
    report.plot_curves(ax, out_dir, list(all_results), "eval_map_50", label=lambda n: VARIANT_TITLES.get(n, n))
    ax.set_ylabel("validation mAP@.50")
    ax.legend()
    report.save_figure(fig, out_dir / "comparison.png", title)
    return table
