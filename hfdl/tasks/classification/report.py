"""The strategies of a finetune run side by side: comparison.md, comparison.json and comparison.png."""

from __future__ import annotations

import json
from pathlib import Path

from hfdl.core import report

COLUMNS = [
    ("strategy", "strategy", "{}"),
    ("eval_accuracy", "accuracy", "{:.4f}"),
    ("eval_f1_macro", "macro-F1", "{:.4f}"),
    ("eval_top5", "top-5", "{:.4f}"),
    ("wall_seconds", "wall time (s)", "{:.1f}"),
    ("train_samples_per_second", "train samples/s", "{:.1f}"),
    ("trainable_params", "trainable params", "{:,}"),
    ("total_params", "total params", "{:,}"),
    ("peak_rss_mb", "peak RSS (MB)", "{:.0f}"),
]


def comparison_table(all_results: dict[str, dict]) -> str:
    """A Markdown table, one row per strategy."""
    return report.comparison_table([{"strategy": name, **r} for name, r in all_results.items()], COLUMNS)


def write_comparison(all_results: dict[str, dict], out_dir: str | Path, title: str) -> str:
    """Write the three comparison files and return the Markdown table."""
    out_dir = Path(out_dir)
    table = comparison_table(all_results)
    notes = [
        f"- `{name}`: wall time includes {r['feature_extraction_seconds']:.1f} s of one-off feature extraction"
        + (" (features read from cache)" if r.get("feature_cache_hit") else "")
        + "."
        for name, r in all_results.items()
        if "feature_extraction_seconds" in r
    ]
    report.write_markdown(
        out_dir,
        f"Transfer-learning comparison: {title}",
        ["Same data split, seed and epochs budget for every strategy.", table, "\n".join(notes), "![accuracy against wall time](comparison.png)"],
    )
    (out_dir / "comparison.json").write_text(json.dumps([{"strategy": k, **v} for k, v in all_results.items()], indent=2))

    fig, (ax, ax2) = report.figure(2, (11, 4.2))
    for name, r in all_results.items():
        ax.scatter(r["wall_seconds"], r["eval_accuracy"], s=60 + 240 * r["trainable_params"] / max(1, r["total_params"]))
        ax.annotate(
            f"{name}\n{r['trainable_params']:,} trainable\n{r['peak_rss_mb']:.0f} MB peak",
            (r["wall_seconds"], r["eval_accuracy"]),
            textcoords="offset points",
            xytext=(8, -10),
            fontsize=8,
        )
    ax.set_xlabel("wall time (s)")
    ax.set_ylabel("eval accuracy")
    ax.set_title("final accuracy vs wall time (marker size: trainable share)")
    ax.grid(alpha=0.3)
    report.plot_curves(ax2, out_dir, list(all_results), "eval_accuracy", offset=lambda n: all_results[n].get("feature_extraction_seconds", 0.0))
    ax2.set_ylabel("eval accuracy")
    ax2.set_title("accuracy per epoch")
    ax2.legend()
    report.save_figure(fig, out_dir / "comparison.png", title)
    return table
