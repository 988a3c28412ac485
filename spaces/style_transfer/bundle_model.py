#!/usr/bin/env python
"""Bundle a trained fast style network into this Space: `models/NAME/` with fp16 weights (every bundled file < 10 MB).

    python spaces/style_transfer/bundle_model.py outputs/style-waves --name waves

Reads RUN_DIR as scripts/train_style.py writes it (config.json, model.safetensors, all_results.json, run_config.json)
and writes `models/NAME/`: config.json, all_results.json and run_config.json (copied: the losses, the Gatys reference,
the training command and cost), model.safetensors (floating tensors as float16; loading copies them into the float32
parameters) and provenance.json. The style image must be one of the Space's `styles/` (the app offers it from there;
the bundle does not copy it, nor the run's sample). The fp16 copy stylises a test photo and is compared with the
original before it replaces an earlier bundle of the same name.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # a checkout of the repository: use its hfdl package

from hfdl.core.bundle import bundle_run, check_name, check_run_dir, describe, read_json  # noqa: E402
from hfdl.errors import HfdlError  # noqa: E402

MAX_PIXEL_CHANGE = 0.02  # largest change of a stylised pixel (in [0, 1]) that the float16 copy may cause on the test photo
RESULT_KEYS = ("eval_loss", "eval_content_loss", "eval_style_loss", "eval_tv_loss", "eval_photos", "eval_size", "gatys_reference_loss",
               "gatys_reference_steps", "gatys_reference_init", "loss_vs_gatys_reference", "gatys_steps_to_match", "steps", "image_size", "train_seconds")  # fmt: skip


def pixel_change(original: Path, copy: Path) -> float:
    """The largest change of a stylised pixel of a real photo (skimage coffee, 256 px) between the run and the copy."""
    import torch
    from skimage import data

    from hfdl.core.images import image_to_tensor
    from hfdl.tasks.style.model import TransformerNet

    a, b = TransformerNet.from_pretrained(original), TransformerNet.from_pretrained(copy)
    if any(p.dtype != torch.float32 for p in b.parameters()):
        raise HfdlError("the fp16 copy did not load as float32 parameters")
    photo = image_to_tensor(data.coffee(), 256)
    return float((a.stylize(photo) - b.stylize(photo)).abs().max())


def main(argv: list[str] | None = None, models_dir: Path = HERE / "models") -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="a folder written by scripts/train_style.py")
    parser.add_argument("--name", required=True, help="the bundled network's folder name under models/")
    args = parser.parse_args(argv)
    run_dir, name = args.run_dir, args.name
    try:
        check_run_dir(run_dir, "scripts/train_style.py")
        check_name(name)
        run, results = read_json(run_dir / "run_config.json"), read_json(run_dir / "all_results.json")
        if run.get("task") != "style-transfer":
            raise HfdlError(f"{run_dir} is a '{run.get('task')}' run: bundle a scripts/train_style.py run")
        style = Path(run.get("style_args", {}).get("style_image") or "")
        shipped, trained = HERE / "styles" / style.name, run_dir / (results.get("style_image") or "style.png")
        if not (style.name and shipped.is_file() and trained.is_file() and shipped.read_bytes() == trained.read_bytes()):
            raise HfdlError(
                f"{run_dir} was trained on {style}, which is not one of {HERE / 'styles'}: add the style image there first (with its licence in README.md)"
            )

        def provenance(change: float) -> dict:
            return {
                "name": name, "source": str(run_dir), "command": run.get("command"), "content": run.get("content_source"), "style": f"styles/{style.name}",
                **{k: results[k] for k in RESULT_KEYS if k in results},
                "weights": f"float16 copy of the run's float32 model.safetensors (largest stylised-pixel change on a test photo {change:.1e})",
            }  # fmt: skip

        change = bundle_run(
            run_dir, Path(models_dir) / name, compare=pixel_change, max_change=MAX_PIXEL_CHANGE, provenance=provenance, what="stylised pixel",
            extra_files=("all_results.json", "run_config.json"),
        )  # fmt: skip
    except HfdlError as err:
        raise SystemExit(f"error: {err}") from None
    target = Path(models_dir) / name
    print(f"bundled {run_dir} as {target} ({describe(target)}; largest stylised-pixel change from fp16 {change:.1e})")
    return target


if __name__ == "__main__":
    main()
