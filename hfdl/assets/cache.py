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
