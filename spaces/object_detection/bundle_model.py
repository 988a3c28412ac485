#!/usr/bin/env python
"""Bundle a trained detector into this Space: `models/NAME/` with fp16 weights (every bundled file < 10 MB).

    python spaces/object_detection/bundle_model.py outputs/detector --name composites-lite0

Reads RUN_DIR as scripts/train_detector.py writes it (config.json, model.safetensors, all_results.json,
run_config.json) and writes `models/NAME/`: config.json (copied), model.safetensors (floating tensors as
float16; loading copies them into the float32 parameters) and provenance.json (where the weights come from,
the training command and the validation mAP). The fp16 copy is loaded back and compared with the original
on a test input before it replaces an earlier bundle of the same name.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # a checkout of the repository: use its hfdl package

from hfdl.core.bundle import bundle_run, check_name, check_run_dir, describe, read_json  # noqa: E402
from hfdl.errors import HfdlError  # noqa: E402

MAX_SCORE_CHANGE = 0.02  # largest change of any cell's score that the fp16 copy may cause on the test input


def scores(model, x):
    """Every cell's best class score (B, N) for a normalised input."""
    import torch

    with torch.inference_mode():
        _, obj, cls = model.decode(model(x))
    return (obj.sigmoid().unsqueeze(-1) * cls.softmax(-1)).amax(-1)


def check_copy(original: Path, copy: Path) -> float:
    """Load both folders (the copy's fp16 weights into float32 parameters) and return the largest score change."""
    import torch

    from hfdl.tasks.detection.model import YoloDetector

    a, b = YoloDetector.from_pretrained(original), YoloDetector.from_pretrained(copy)
    if any(p.dtype != torch.float32 for p in b.parameters()):
        raise HfdlError("the fp16 copy did not load as float32 parameters")
    x = torch.rand(2, 3, a.image_size, a.image_size, generator=torch.Generator().manual_seed(0))
    return float((scores(a, a.normalize(x)) - scores(b, b.normalize(x))).abs().max())


def provenance(run_dir: Path, name: str, change: float) -> dict:
    results, run = read_json(run_dir / "all_results.json"), read_json(run_dir / "run_config.json")
    data = run.get("data", {})
    return {
        "name": name,
        "source": str(run_dir),
        "command": run.get("command"),
        "base_model": run.get("base_model"),
        "data": data.get("source"),
        "train_images": results.get("train_images"),
        "validation_images": results.get("validation_images"),
        "epochs": results.get("epochs"),
        "train_seconds": results.get("train_seconds"),
        "eval_map_50": results.get("eval_map_50"),
        "eval_map": results.get("eval_map"),
        "weights": f"float16 copy of the run's float32 model.safetensors (largest score change on a test input {change:.1e})",
    }


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="a folder written by scripts/train_detector.py")
    parser.add_argument("--name", required=True, help="the bundled model's folder name under models/")
    args = parser.parse_args(argv)
    run_dir, name = args.run_dir, args.name
    target = HERE / "models" / name
    try:
        check_run_dir(run_dir, "scripts/train_detector.py")
        check_name(name)
        change = bundle_run(
            run_dir, target, compare=check_copy, max_change=MAX_SCORE_CHANGE, provenance=lambda change: provenance(run_dir, name, change), what="score"
        )
    except HfdlError as err:
        raise SystemExit(f"error: {err}") from None
    print(f"bundled {run_dir} as {target} ({describe(target)}; largest score change from fp16 {change:.1e})")
    return target


if __name__ == "__main__":
    main()
