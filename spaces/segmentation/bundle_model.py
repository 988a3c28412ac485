#!/usr/bin/env python
"""Bundle a trained segmenter into this Space: `models/NAME/` with fp16 weights (every bundled file < 10 MB).

    python spaces/segmentation/bundle_model.py outputs/segmenter --name composites-lite0-unet

Reads RUN_DIR as scripts/train_segmenter.py writes it for a timm segmenter (--model_type unet, fpn or lraspp:
config.json with the label names and palette, model.safetensors, all_results.json, run_config.json) and writes
`models/NAME/`: config.json (copied), model.safetensors (floating tensors as float16; loading copies them into the
float32 parameters) and provenance.json (where the weights come from, the training command, the validation mean
IoU, accuracies and per-class IoU, which the app shows). The fp16 copy is loaded back and compared with the
original on a test input before it replaces an earlier bundle of the same name. A transformers segmenter (SegFormer)
is not bundled: offer it through HFDL_SEGMENTATION_MODELS instead.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # a checkout of the repository: use its hfdl package

from hfdl.core.bundle import bundle_run, check_name, check_run_dir, describe, read_json  # noqa: E402
from hfdl.errors import HfdlError  # noqa: E402

MAX_PROB_CHANGE = 0.02  # largest change of any pixel's class probability that the fp16 copy may cause on the test input
RESULT_KEYS = ("eval_mean_iou", "eval_mean_accuracy", "eval_overall_accuracy", "per_class_iou")


def check_copy(original: Path, copy: Path) -> float:
    """Load both folders (the copy's fp16 weights into float32 parameters) and return the largest class-probability change."""
    import torch

    from hfdl.tasks.segmentation.model import TimmSegmenter

    a, b = TimmSegmenter.from_pretrained(original), TimmSegmenter.from_pretrained(copy)
    if any(p.dtype != torch.float32 for p in b.parameters()):
        raise HfdlError("the fp16 copy did not load as float32 parameters")
    x = torch.rand(2, 3, a.image_size, a.image_size, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        pa, pb = a(a.normalize(x)).softmax(1), b(b.normalize(x)).softmax(1)
    return float((pa - pb).abs().max())


def provenance(run_dir: Path, name: str, change: float) -> dict:
    results, run, config = read_json(run_dir / "all_results.json"), read_json(run_dir / "run_config.json"), read_json(run_dir / "config.json")
    return {
        "name": name,
        "source": str(run_dir),
        "command": run.get("command"),
        "base_model": run.get("base_model"),
        "data": run.get("data", {}).get("source"),
        "model": {key: config.get(key) for key in ("backbone", "decoder", "upsample", "image_size", "num_classes")},
        "train_images": results.get("train_images"),
        "validation_images": results.get("validation_images"),
        "completed_steps": results.get("completed_steps"),
        "epochs": results.get("epochs"),
        "train_seconds": results.get("train_seconds"),
        **{key: results.get(key) for key in RESULT_KEYS},
        "weights": f"float16 copy of the run's float32 model.safetensors (largest class-probability change on a test input {change:.1e})",
    }


def main(argv: list[str] | None = None, models_dir: Path = HERE / "models") -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="a folder written by scripts/train_segmenter.py (a timm segmenter)")
    parser.add_argument("--name", required=True, help="the bundled model's folder name under models/")
    args = parser.parse_args(argv)
    run_dir, name = args.run_dir, args.name
    target = Path(models_dir) / name
    try:
        check_run_dir(run_dir, "scripts/train_segmenter.py")
        check_name(name)
        if "model_type" in read_json(run_dir / "config.json"):
            raise HfdlError(f"{run_dir} holds a transformers segmenter: offer it through HFDL_SEGMENTATION_MODELS (a folder or Hub id) instead")
        change = bundle_run(
            run_dir, target, compare=check_copy, max_change=MAX_PROB_CHANGE, provenance=lambda change: provenance(run_dir, name, change), what="probability"
        )
    except HfdlError as err:
        raise SystemExit(f"error: {err}") from None
    print(f"bundled {run_dir} as {target} ({describe(target)}; largest class-probability change from fp16 {change:.1e})")
    return target


if __name__ == "__main__":
    main()
