"""Shared benchmark plumbing: offline data, a JSON result line printed last."""

from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


def emit(result: dict) -> None:
    """Print the result as one JSON line, last."""
    print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in result.items()}), flush=True)


def fashion_subset(n_train: int, n_eval: int, seed: int = 0):
    from hfdl.core.images import load_image_dataset
    from hfdl.core.labelled_images import prepare_splits

    dsd, source = load_image_dataset("fashion_mnist")
    return prepare_splits(dsd, source, max_train_samples=n_train, max_eval_samples=n_eval, seed=seed)
