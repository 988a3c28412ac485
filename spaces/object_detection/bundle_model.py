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
import json
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
MAX_BYTES = 10_000_000  # the project's limit for a bundled file
MAX_SCORE_CHANGE = 0.02  # largest change of any cell's score that the fp16 copy may cause on the test input


def half_state_dict(path: Path) -> dict:
    """model.safetensors -> its tensors, floating ones as float16 (integer buffers such as BatchNorm counters kept)."""
    import torch
    from safetensors.torch import load_file

    state = load_file(str(path))
    out = {}
    for name, tensor in state.items():
        if tensor.is_floating_point():
            half = tensor.to(torch.float16)
            if not torch.isfinite(half).all():
                raise SystemExit(f"error: {name} does not fit in float16 (largest magnitude {tensor.abs().max().item():.3g}); bundle the fp32 file instead")
            tensor = half
        out[name] = tensor.contiguous()
    return out


def scores(model, x):
    """Every cell's best class score (B, N) for a normalised input."""
    import torch

    with torch.inference_mode():
        _, obj, cls = model.decode(model(x))
    return (obj.sigmoid().unsqueeze(-1) * cls.softmax(-1)).amax(-1)


def check_copy(original: Path, copy: Path) -> float:
    """Load both folders (the copy's fp16 weights into float32 parameters) and return the largest score change."""
    import torch

    sys.path.insert(0, str(HERE.parents[1]))  # a checkout of the repository: use its hfdl package
    from hfdl.tasks.detection.model import YoloDetector

    a, b = YoloDetector.from_pretrained(original), YoloDetector.from_pretrained(copy)
    if any(p.dtype != torch.float32 for p in b.parameters()):
        raise SystemExit("error: the fp16 copy did not load as float32 parameters")
    x = torch.rand(2, 3, a.image_size, a.image_size, generator=torch.Generator().manual_seed(0))
    return float((scores(a, a.normalize(x)) - scores(b, b.normalize(x))).abs().max())


def provenance(run_dir: Path, name: str, change: float) -> dict:
    results = json.loads((run_dir / "all_results.json").read_text()) if (run_dir / "all_results.json").is_file() else {}
    run = json.loads((run_dir / "run_config.json").read_text()) if (run_dir / "run_config.json").is_file() else {}
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
    from safetensors.torch import save_file

    run_dir, name = args.run_dir, args.name
    if not (run_dir / "config.json").is_file() or not (run_dir / "model.safetensors").is_file():
        raise SystemExit(f"error: {run_dir} has no config.json + model.safetensors: pass a folder written by scripts/train_detector.py")
    if not name or "/" in name or name.startswith("."):
        raise SystemExit(f"error: --name {name!r} must be a plain folder name")
    target = HERE / "models" / name
    tmp = target.with_name(f".{name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        shutil.copy(run_dir / "config.json", tmp / "config.json")
        save_file(half_state_dict(run_dir / "model.safetensors"), str(tmp / "model.safetensors"), metadata={"format": "pt"})
        change = check_copy(run_dir, tmp)
        if change > MAX_SCORE_CHANGE:
            raise SystemExit(f"error: the fp16 copy changes a score by {change:.3g} (> {MAX_SCORE_CHANGE}); bundle the fp32 file instead")
        (tmp / "provenance.json").write_text(json.dumps(provenance(run_dir, name, change), indent=2) + "\n")
        for f in tmp.iterdir():
            if f.stat().st_size >= MAX_BYTES:
                raise SystemExit(f"error: {f.name} has {f.stat().st_size / 1e6:.1f} MB, over the {MAX_BYTES / 1e6:.0f} MB limit for bundled files")
        shutil.rmtree(target, ignore_errors=True)
        tmp.rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    sizes = ", ".join(f"{f.name} {f.stat().st_size / 1e6:.2f} MB" for f in sorted(target.iterdir()))
    print(f"bundled {run_dir} as {target} ({sizes}; largest score change from fp16 {change:.1e})")
    return target


if __name__ == "__main__":
    main()
