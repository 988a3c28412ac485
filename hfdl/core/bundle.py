"""Bundle a trained run into a Space's `models/NAME/`: float16 weights checked against the original, a provenance.json,
every file under the project's 10 MB limit, swapped in atomically (spaces/*/bundle_model.py use it).

    change = bundle_run(run_dir, HERE / "models" / name, compare=largest_score_change, max_change=0.02,
                        provenance=lambda change: {...}, what="score")

`compare(original_dir, copy_dir)` loads both folders (the copy's float16 weights into float32 parameters) and returns the
largest change of the model's output on a test input; the bundle is refused above `max_change`. Only floating tensors are
halved (integer buffers such as BatchNorm counters stay), and a tensor that overflows float16 is refused.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

from hfdl.errors import HfdlError

MAX_BYTES = 10_000_000  # the project's limit for a bundled file


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
                raise HfdlError(f"{name} does not fit in float16 (largest magnitude {tensor.abs().max().item():.3g}); bundle the fp32 file instead")
            tensor = half
        out[name] = tensor.contiguous()
    return out


def read_json(path: Path) -> dict:
    """A run folder's JSON file (all_results.json, run_config.json), or {} when it is missing."""
    return json.loads(path.read_text()) if path.is_file() else {}


def check_run_dir(run_dir: Path, written_by: str) -> None:
    if not (run_dir / "config.json").is_file() or not (run_dir / "model.safetensors").is_file():
        raise HfdlError(f"{run_dir} has no config.json + model.safetensors: pass a folder written by {written_by}")


def check_name(name: str) -> None:
    if not name or "/" in name or name.startswith("."):
        raise HfdlError(f"--name {name!r} must be a plain folder name")


def bundle_run(
    run_dir: Path,
    target: Path,
    *,
    compare: Callable[[Path, Path], float],
    max_change: float,
    provenance: Callable[[float], dict],
    what: str = "score",
    extra_files: tuple[str, ...] = (),
    halve: bool = True,
) -> float:
    """Write `target` (config.json copied, model.safetensors as float16, provenance.json) and return the fp16 change.

    `extra_files`: more files of the run folder copied when present (a tokenizer); `halve=False` copies the weights
    as they are (a model whose loader would keep float16 weights as a float16 model).

    Built in a hidden sibling folder; it replaces an earlier bundle of the same name only once the copy has passed the
    comparison and the size limit, so a refused bundle leaves the old one in place.
    """
    from safetensors.torch import save_file

    tmp = target.with_name(f".{target.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        for name in ("config.json", *extra_files):
            if (run_dir / name).is_file():
                shutil.copy(run_dir / name, tmp / name)
        if halve:
            save_file(half_state_dict(run_dir / "model.safetensors"), str(tmp / "model.safetensors"), metadata={"format": "pt"})
        else:
            shutil.copy(run_dir / "model.safetensors", tmp / "model.safetensors")
        change = compare(run_dir, tmp)
        if not change <= max_change:  # NaN fails too
            raise HfdlError(f"the {'fp16 ' if halve else ''}copy changes a {what} by {change:.3g} (> {max_change}); bundle the fp32 file instead")
        (tmp / "provenance.json").write_text(json.dumps(provenance(change), indent=2) + "\n")
        check_sizes(tmp)
        shutil.rmtree(target, ignore_errors=True)
        tmp.rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return change


def check_sizes(folder: Path) -> None:
    """Every file of a bundle under the project's MAX_BYTES limit, else a one-line error naming the file."""
    for f in folder.iterdir():
        if f.stat().st_size >= MAX_BYTES:
            raise HfdlError(f"{f.name} has {f.stat().st_size / 1e6:.1f} MB, over the {MAX_BYTES / 1e6:.0f} MB limit for bundled files")


def describe(target: Path) -> str:
    """`config.json 0.00 MB, model.safetensors 6.79 MB, ...` for the script's last line."""
    return ", ".join(f"{f.name} {f.stat().st_size / 1e6:.2f} MB" for f in sorted(target.iterdir()))
