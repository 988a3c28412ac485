"""Side-by-side comparison of strategies: comparison.md, comparison.json and comparison.png."""

from __future__ import annotations

import json
from pathlib import Path

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
    cols = [c for c in COLUMNS if c[0] == "strategy" or any(c[0] in r for r in all_results.values())]
    lines = ["| " + " | ".join(c[1] for c in cols) + " |", "|" + "|".join("---" if c[0] == "strategy" else "---:" for c in cols) + "|"]
    for name, r in all_results.items():
        row = {"strategy": name, **r}
        lines.append("| " + " | ".join(fmt.format(row[key]) if key in row else "-" for key, _, fmt in cols) + " |")
    return "\n".join(lines)


def write_comparison(all_results: dict[str, dict], out_dir: str | Path, title: str) -> str:
    """Write the three comparison files and return the Markdown table."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    table = comparison_table(all_results)
    notes = []
    for name, r in all_results.items():
        if "feature_extraction_seconds" in r:
            cached = " (features read from cache)" if r.get("feature_cache_hit") else ""
            notes.append(f"- `{name}`: wall time includes {r['feature_extraction_seconds']:.1f} s of one-off feature extraction{cached}.")
    md = f"# Transfer-learning comparison: {title}\n\nSame data split, seed and epochs budget for every strategy.\n\n{table}\n"
    if notes:
        md += "\n" + "\n".join(notes) + "\n"
    md += "\n![accuracy against wall time](comparison.png)\n"
    (out_dir / "comparison.md").write_text(md)
    (out_dir / "comparison.json").write_text(json.dumps([{"strategy": k, **v} for k, v in all_results.items()], indent=2))

    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for name, r in all_results.items():
        ax.scatter(r["wall_seconds"], r["eval_accuracy"], s=60 + 240 * r["trainable_params"] / max(1, r["total_params"]))
        ax.annotate(
            f"{name}\n{r['trainable_params']:,} trainable\n{r['peak_rss_mb']:.0f} MB peak",
            (r["wall_seconds"], r["eval_accuracy"]),
            textcoords="offset points",
            xytext=(8, -10),
            fontsize=8,
        )
        hist_path = out_dir / name / "history.json"
        if hist_path.is_file():
            hist = json.loads(hist_path.read_text())
            offset = r.get("feature_extraction_seconds", 0.0)
            xs = [offset + h["train_seconds"] for h in hist if "eval_accuracy" in h]
            ys = [h["eval_accuracy"] for h in hist if "eval_accuracy" in h]
            ax2.plot(xs, ys, marker="o", ms=3, label=name)
    ax.set_xlabel("wall time (s)")
    ax.set_ylabel("eval accuracy")
    ax.set_title("final accuracy vs wall time (marker size: trainable share)")
    ax.grid(alpha=0.3)
    ax2.set_xlabel("training time (s)")
    ax2.set_ylabel("eval accuracy")
    ax2.set_title("accuracy per epoch")
    ax2.grid(alpha=0.3)
    ax2.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out_dir / "comparison.png", dpi=110)
    plt.close(fig)
    return table
