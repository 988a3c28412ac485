#!/usr/bin/env python
"""Semantic segmentation: an LR-ASPP (default) / U-Net / FPN decoder on a timm backbone (or a transformers segmenter), evaluated with mean IoU.

    accelerate launch -q scripts/train_segmenter.py                         # embedded offline default (composites, 11 classes)
    accelerate launch -q scripts/train_segmenter.py --model_type unet --upsample transposed
    accelerate launch -q scripts/train_segmenter.py --compare unet,lraspp   # side by side: OUTPUT/unet, OUTPUT/lraspp, comparison.md
    accelerate launch -q scripts/train_segmenter.py --train_dir my_pairs/ --validation_dir my_val/   # images/NAME.jpg + masks/NAME.png
    accelerate launch -q scripts/train_segmenter.py --dataset_name segments/sidewalk-semantic --model_name_or_path nvidia/mit-b0 --reduce_labels

A single .json or .yaml argument is read as a config file (HfArgumentParser).
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from hfdl.core.cli import parse_args, run_main  # noqa: E402
from hfdl.hub.args import HubArguments  # noqa: E402
from hfdl.hub.registry import check_before_training, push_after_training  # noqa: E402
from hfdl.tasks.segmentation.args import SegmentationDataArguments, SegmentationTrainingArguments, SegmenterArguments  # noqa: E402
from hfdl.tasks.segmentation.pipeline import run  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    segmenter_args, data_args, training_args, hub_args = parse_args(
        (SegmenterArguments, SegmentationDataArguments, SegmentationTrainingArguments, HubArguments), argv
    )
    check_before_training(hub_args)
    results = run(segmenter_args, data_args, training_args, argv)
    push_after_training(hub_args, training_args.output_dir)
    return results


if __name__ == "__main__":
    run_main(main)
