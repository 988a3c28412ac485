"""One package per task: `args`, `data`, `model` (inference + save/load: what a Space imports), `pipeline`
(run -> all_results), `report` and `card` (fills `model_cards/<task>.md`, registers the task's Hub plans).

A task imports `hfdl.core`, `hfdl.hub`, `hfdl.assets` and `hfdl.errors`, never another task.
`load_all()` imports every task's card module so that `push_to_hub.py` can publish any run.
"""

from __future__ import annotations

import importlib

TASKS = ("classification", "char_lm", "detection", "segmentation", "style", "generative", "similarity", "anomaly", "forecasting", "text_classification")


def load_all() -> None:
    """Register every task's Hub plans (each `card` module calls `hfdl.hub.registry.register` at import)."""
    for task in TASKS:
        importlib.import_module(f"hfdl.tasks.{task}.card")
