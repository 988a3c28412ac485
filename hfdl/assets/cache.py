"""Where hfdl keeps what it converts or builds once (safetensors weights, DatasetDicts, unpacked corpora)."""

from __future__ import annotations

import os
from pathlib import Path


def hfdl_cache_dir() -> Path:
    """Root of hfdl's caches: `$HFDL_CACHE`, else `$HF_HOME/hfdl` (default `~/.cache/huggingface/hfdl`)."""
    if os.environ.get("HFDL_CACHE"):
        return Path(os.environ["HFDL_CACHE"])
    from huggingface_hub import constants

    return Path(constants.HF_HOME) / "hfdl"


def private_tmp(path: Path) -> Path:
    """A sibling of `path` only this process writes (`NAME.tmp-PID`): processes building the same cache entry at
    once (two `accelerate launch` processes, two test workers) never write into each other's half-done files."""
    return path.with_name(f"{path.name}.tmp-{os.getpid()}")


def save_tensors_atomically(folder: Path, filename: str, tensors: dict, info: dict) -> None:
    """Write `folder/filename` (safetensors) and `folder/info.json` into a temporary sibling and rename it, so an
    interrupted write never leaves half an entry; when another process finished the same entry first, keep theirs."""
    import json
    import shutil

    from safetensors.torch import save_file

    tmp = private_tmp(folder)
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir(parents=True)
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp / filename))
        (tmp / "info.json").write_text(json.dumps(info, indent=2))
        if not folder.exists():
            tmp.rename(folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
