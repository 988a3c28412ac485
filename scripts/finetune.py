#!/usr/bin/env python
"""Transfer learning with a timm backbone: feature-based vs fine-tuning (vs scratch), side by side.

    accelerate launch -q scripts/finetune.py                       # embedded offline default
    accelerate launch -q scripts/finetune.py --dataset_name beans --model_name_or_path timm/resnet50.a1_in1k
    accelerate launch -q scripts/finetune.py --train_dir my_images/ --strategy finetune --unfreeze 2
    accelerate launch -q scripts/finetune.py --push_to_hub --hub_model_id me/lite0-fashion   # -> me/lite0-fashion-feature, ...-finetune

A single .json or .yaml argument is read as a config file (HfArgumentParser).
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from hfdl.core.cli import parse_args, run_main  # noqa: E402
from hfdl.hub.args import HubArguments  # noqa: E402
from hfdl.hub.registry import check_before_training, push_after_training  # noqa: E402
from hfdl.tasks.classification.args import ClassificationTrainingArguments, DataArguments, ModelArguments  # noqa: E402
from hfdl.tasks.classification.pipeline import run  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    model_args, data_args, training_args, hub_args = parse_args((ModelArguments, DataArguments, ClassificationTrainingArguments, HubArguments), argv)
    check_before_training(hub_args)
    results = run(model_args, data_args, training_args, argv)
    push_after_training(hub_args, training_args.output_dir, model_args.strategies)
    return results


if __name__ == "__main__":
    run_main(main)
