#!/usr/bin/env python
"""Transfer learning with a timm backbone: feature-based vs fine-tuning (vs scratch), side by side.

    accelerate launch scripts/finetune.py                       # embedded offline default
    accelerate launch scripts/finetune.py --dataset_name beans --model_name_or_path timm/resnet50.a1_in1k
    accelerate launch scripts/finetune.py --train_dir my_images/ --strategy finetune --unfreeze 2
    accelerate launch scripts/finetune.py --push_to_hub --hub_model_id me/lite0-fashion   # -> me/lite0-fashion-feature, ...-finetune

A single .json or .yaml argument is read as a config file (HfArgumentParser).
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from hfdl.cli import parse_args, run_main  # noqa: E402
from hfdl.hub import HubArguments  # noqa: E402
from hfdl.publish import check_before_training, push_after_training  # noqa: E402
from hfdl.training import TrainingArguments  # noqa: E402
from hfdl.transfer import DataArguments, ModelArguments, run  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    margs, dargs, targs, hargs = parse_args((ModelArguments, DataArguments, TrainingArguments, HubArguments), argv)
    check_before_training(hargs)
    results = run(margs, dargs, targs, argv)
    push_after_training(hargs, targs.output_dir, margs.strategies)
    return results


if __name__ == "__main__":
    run_main(main)
