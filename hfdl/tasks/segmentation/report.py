"""The segmenter's pictures and comparison: `overlays.png` (validation images | ground truth | prediction), the pixel
confusion matrix (`confusion_matrix.png` + `.json`) and, with `--compare`, the variants side by side
(`comparison.md`, `comparison.json`, `comparison.png`)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from hfdl.core import report
from hfdl.core.rundir import write_json
from hfdl.tasks.segmentation.args import COMPARE_AXES

COLUMNS = [
    ("variant", "variant", "{}"),
    ("eval_mean_iou", "mean IoU", "{:.4f}"),
    ("eval_mean_accuracy", "mean accuracy", "{:.4f}"),
    ("eval_overall_accuracy", "pixel accuracy", "{:.4f}"),
    ("train_seconds", "training time (s)", "{:.0f}"),
    ("train_images_per_second", "train images/s", "{:.1f}"),
    ("completed_steps", "steps", "{}"),
    ("num_parameters", "parameters", "{:,}"),
]
VARIANT_TITLES = {
    "pretrained": "pretrained backbone (ImageNet)",
    "scratch": "backbone from scratch",
    "unet": "U-Net decoder",
    "fpn": "FPN decoder",
    "lraspp": "LR-ASPP head",
    "interpolate": "bilinear upsampling + conv",
    "transposed": "transposed convolutions",
}
WHAT_DIFFERS = {
    "pretrained": "the backbone's start (pretrained or random)",
    "model_type": "the decoder",
    "upsample": "how the decoder upsamples",
}  # by argument


def write_overlays(
    rows: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]], palette: list[list[int]], path: Path, alpha: float = 0.6, transparent: tuple[int, ...] = ()
) -> None:
    """`overlays.png`: one row per (image (3, S, S) in [0, 1], truth (S, S), prediction (S, S)): the image, then the
    truth and the prediction painted over it; classes in `transparent` (background) left clear, ignored pixels white."""
    from torchvision.utils import make_grid

    colours = torch.zeros(256, 3)
    colours[: len(palette)] = torch.tensor(palette, dtype=torch.float32) / 255
    colours[255] = 1.0
    tiles = []
    for image, truth, predicted in rows:
        tiles.append(image)
        for ids in (truth.long(), predicted.long()):
            painted = ~torch.isin(ids, torch.tensor(transparent, dtype=torch.long))  # (S, S)
            tiles.append(torch.where(painted, (1 - alpha) * image + alpha * colours[ids].permute(2, 0, 1), image))
    if tiles:
        grid = make_grid(torch.stack(tiles).clamp(0, 1), nrow=3, padding=4, pad_value=1.0)
        from hfdl.core.images import tensor_to_image

        tensor_to_image(grid).save(path)


def write_confusion_matrix(confusion: torch.Tensor, label_names: list[str], out_dir: Path) -> None:
    """`confusion_matrix.json` (pixel counts, rows true, columns predicted) and `.png` (each row as shares of its class's pixels)."""
    write_json(
        out_dir / "confusion_matrix.json", {"label_names": label_names, "rows": "true class", "columns": "predicted class", "pixels": confusion.tolist()}
    )
    shares = confusion.double() / confusion.sum(1, keepdim=True).clamp(min=1)
    size = max(5.0, 0.55 * len(label_names) + 2)
    fig, ax = report.figure(1, (size, size))
    ax.imshow(shares.numpy(), cmap="Blues", vmin=0, vmax=1)
    ticks = range(len(label_names))
    ax.set_xticks(ticks, label_names, rotation=45, ha="right")
    ax.set_yticks(ticks, label_names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    if len(label_names) <= 25:
        for i in ticks:
            for j in ticks:
                value = shares[i, j].item()
                if value >= 0.005:
                    ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7, color="white" if value > 0.5 else "black")
    report.save_figure(fig, out_dir / "confusion_matrix.png", "Pixel confusion matrix (share of each true class)")


def write_comparison(all_results: dict[str, dict], out_dir: str | Path, title: str) -> str:
    """The variants side by side; returns the Markdown table."""
    out_dir = Path(out_dir)
    rows = [{**r, "variant": VARIANT_TITLES.get(name, name)} for name, r in all_results.items()]
    table = report.comparison_table(rows, COLUMNS)
    differs = WHAT_DIFFERS[COMPARE_AXES[next(iter(all_results))][0]]
    report.write_markdown(
        out_dir,
        f"Side by side: {title}",
        [
            f"The same data split, seed, augmentation and step budget; only {differs} differs.",
            table,
            "![mean IoU against training time](comparison.png)",
        ],
    )
    (out_dir / "comparison.json").write_text(json.dumps([{"variant": k, **v} for k, v in all_results.items()], indent=2))
    fig, ax = report.figure(1, (7.5, 4.5))
    report.plot_curves(ax, out_dir, list(all_results), "eval_mean_iou", label=lambda n: VARIANT_TITLES.get(n, n))
    ax.set_ylabel("validation mean IoU")
    ax.legend()
    report.save_figure(fig, out_dir / "comparison.png", title)
    return table
