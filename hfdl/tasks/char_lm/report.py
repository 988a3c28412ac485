"""Side-by-side report of char-LM cell types: comparison.md, comparison.json, comparison.png (validation curves)."""

from __future__ import annotations

import json
import math
from pathlib import Path

from hfdl.core import report

COLUMNS = [
    ("model_type", "cell", "{}"),
    ("num_params", "parameters", "{:,}"),
    ("eval_bpc", "final val bits/char", "{:.4f}"),
    ("best_eval_bpc", "best val bits/char", "{:.4f}"),
    ("eval_perplexity", "val perplexity", "{:.3f}"),
    ("train_chars_per_second", "train chars/s", "{:,.0f}"),
    ("generation_chars_per_second", "generation chars/s", "{:,.0f}"),
    ("completed_steps", "steps", "{}"),
    ("epochs", "epochs", "{:.2f}"),
    ("train_seconds", "train time (s)", "{:.0f}"),
]


def ngram_baseline(data, order: int = 4) -> dict:
    """Interpolated Kneser-Ney n-gram bits/char on the same split (the text is rebuilt from the char ids)."""
    import time

    from hfdl.tasks.char_lm.ngram import KneserNeyCharLM

    t0 = time.perf_counter()
    inv = {i: c for c, i in data.tokenizer.get_vocab().items()}
    inv[0] = "\x00"
    train_text = "".join(inv[int(i)] for i in data.train_ids.tolist())
    val_text = "".join(inv[int(i)] for i in data.val_ids.tolist())
    nats = KneserNeyCharLM(order).fit(train_text).nats_per_char(val_text)
    return {
        "model_type": f"{order}-gram (Kneser-Ney)",
        "eval_bpc": nats / math.log(2),
        "best_eval_bpc": nats / math.log(2),
        "seconds": time.perf_counter() - t0,
    }


def comparison_table(rows: list[dict]) -> str:
    return report.comparison_table(rows, COLUMNS, drop_empty=False)


def write_comparison(all_results: dict[str, dict], out_dir: str | Path, data, title: str, budget: float | None = None, ngram_order: int = 4) -> str:
    """Write comparison.{md,json,png} under out_dir and return the Markdown table."""
    out_dir = Path(out_dir)
    baseline = ngram_baseline(data, ngram_order)
    rows = [{**r, "model_type": name} for name, r in all_results.items()] + [baseline]
    table = comparison_table(rows)
    best = min(all_results.items(), key=lambda kv: kv[1]["best_eval_bpc"])
    same = f"same data split, seed and time budget ({budget:g} min of training each)" if budget else "same data split, seed and step budget"
    md = [
        f"# Char-LM comparison: {title}",
        "",
        f"{same}; validation bits/char on the last {data.val_chars:,} characters (contiguous split), {data.train_chars:,} training characters.",
        "",
        table,
        "",
        f"Best cell: **{best[0]}** at {best[1]['best_eval_bpc']:.4f} bits/char, "
        f"{baseline['eval_bpc'] - best[1]['best_eval_bpc']:.3f} bits/char below the {ngram_order}-gram baseline ({baseline['eval_bpc']:.4f}).",
        "",
        "![validation bits/char during training](comparison.png)",
        "",
        "## Samples (final model, temperature and prompt as in each folder's samples.txt)",
    ]
    for name, r in all_results.items():
        md += ["", f"### {name}", "", "```text", r["sample"].strip("\n")[:600], "```"]
    (out_dir / "comparison.md").write_text("\n".join(md) + "\n", encoding="utf-8")
    (out_dir / "comparison.json").write_text(json.dumps({"rows": rows, "baseline": baseline, "best": best[0]}, indent=2, ensure_ascii=False))

    fig, ax = report.figure()
    report.plot_curves(ax, out_dir, list(all_results), "eval_bpc", label=lambda name: f"{name} ({all_results[name]['num_params']:,} params)")
    ax.axhline(baseline["eval_bpc"], color="gray", ls="--", label=f"{ngram_order}-gram Kneser-Ney")
    ax.set_ylabel("validation bits/char")
    ax.set_title(title, fontsize=10)
    ax.legend()
    report.save_figure(fig, out_dir / "comparison.png")
    return table
