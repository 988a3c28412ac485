"""Checkpoint folders of the shared loop (`step_N` / `epoch_N`): listing, resolving `latest`, model signatures."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import torch

from hfdl.errors import HfdlError

logger = logging.getLogger(__name__)

STATE_FILE = "hfdl_trainer_state.json"


CHECKPOINT_NAME = r"(step|epoch)_\d+"  # a finished checkpoint folder; the loop writes it as `.NAME.tmp` first


def is_checkpoint_folder(name: str) -> bool:
    """A checkpoint folder's name, finished (`step_40`) or still being written (`.step_40.tmp`)."""
    return re.fullmatch(rf"{CHECKPOINT_NAME}|\.{CHECKPOINT_NAME}\.tmp", name) is not None


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """Finished checkpoints under run_dir, oldest first (a folder without the state file is incomplete)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return []
    found = []
    for p in run_dir.iterdir():
        if p.is_dir() and re.fullmatch(CHECKPOINT_NAME, p.name) and (p / STATE_FILE).is_file():
            found.append((json.loads((p / STATE_FILE).read_text())["completed_steps"], p))
    return [p for _, p in sorted(found)]


def resolve_checkpoint(resume_from_checkpoint: str | None, run_dir: str | Path) -> Path | None:
    if resume_from_checkpoint is None:
        return None
    if resume_from_checkpoint == "latest":
        ckpts = list_checkpoints(run_dir)
        return ckpts[-1] if ckpts else None
    path = Path(resume_from_checkpoint)
    if not (path / STATE_FILE).is_file():
        raise HfdlError(f"--resume_from_checkpoint {path} is not an hfdl checkpoint (no {STATE_FILE}): pass a step_N/epoch_N folder or 'latest'")
    return path


def model_signature(model: torch.nn.Module) -> dict:
    """What a checkpoint must match: parameter names and shapes (hashed) and the trainable count."""
    import hashlib

    h = hashlib.sha256()
    for n, p in model.state_dict().items():
        h.update(f"{n}:{tuple(p.shape)};".encode())
    return {"state_dict_sha256": h.hexdigest()[:16], "num_tensors": len(model.state_dict())}
