"""Side-by-side comparison of the variants of one run: a Markdown table and learning-curve plots.

A task names its columns `(key, title, format)` and its metric; this module writes
`comparison.md`, `comparison.json` and `comparison.png` the same way for every task.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

Column = tuple[str, str, str]  # (result key, column title, format string)


def comparison_table(rows: Sequence[dict], columns: Sequence[Column], drop_empty: bool = True) -> str:
    """A Markdown table, one row per dict; the first column is the row's name (left-aligned), the rest
    right-aligned; columns no row has are left out (`drop_empty`), missing cells shown as `-`."""
    cols = [c for i, c in enumerate(columns) if i == 0 or not drop_empty or any(r.get(c[0]) is not None for r in rows)]
    lines = ["| " + " | ".join(c[1] for c in cols) + " |", "|" + "|".join("---" if i == 0 else "---:" for i in range(len(cols))) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(fmt.format(r[key]) if r.get(key) is not None else "-" for key, _, fmt in cols) + " |")
    return "\n".join(lines)


def variant_history(out_dir: Path, name: str, metric: str) -> list[dict]:
    """The evaluations of variant `name` (its `history.json`) that hold `metric`."""
    path = Path(out_dir) / name / "history.json"
    if not path.is_file():
        return []
    return [h for h in json.loads(path.read_text()) if metric in h]


def plot_curves(
    ax, out_dir: Path, names: Sequence[str], metric: str, label: Callable[[str], str] = str, offset: Callable[[str], float] = lambda _: 0.0
) -> None:
    """One line per variant: `metric` against training seconds (plus `offset(name)`, e.g. one-off feature extraction)."""
    for name in names:
        hist = variant_history(out_dir, name, metric)
        if hist:
            ax.plot([offset(name) + h["train_seconds"] for h in hist], [h[metric] for h in hist], marker="o", ms=3, label=label(name))
    ax.set_xlabel("training time (s)")
    ax.grid(alpha=0.3)


def figure(ncols: int = 1, size: tuple[float, float] = (7.5, 4.5)):
    """A matplotlib figure on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(1, ncols, figsize=size)


def save_figure(fig, path: Path, title: str | None = None) -> None:
    import matplotlib.pyplot as plt

    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_markdown(out_dir: Path, title: str, blocks: Sequence[str | None]) -> None:
    """`comparison.md`: a title, then the non-empty blocks separated by blank lines."""
    text = "\n\n".join([f"# {title}", *[b.strip("\n") for b in blocks if b]]) + "\n"
    (Path(out_dir) / "comparison.md").write_text(text, encoding="utf-8")
