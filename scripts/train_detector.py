#!/usr/bin/env python
"""Object detection: a YOLO-style detector on a timm backbone, evaluated with COCO mAP.

    accelerate launch -q scripts/train_detector.py                         # embedded offline default (composites)
    accelerate launch -q scripts/train_detector.py --dataset_name cppe-5 --model_name_or_path timm/resnet18.a1_in1k
    accelerate launch -q scripts/train_detector.py --train_dir my_yolo_folder/ --label_names cat,dog
    accelerate launch -q scripts/train_detector.py --train_annotations train.json --train_images imgs/ --push_to_hub --hub_model_id me/det

A single .json or .yaml argument is read as a config file (HfArgumentParser).
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from hfdl.core.cli import parse_args, run_main  # noqa: E402
from hfdl.hub.args import HubArguments  # noqa: E402
from hfdl.hub.registry import check_before_training, push_after_training  # noqa: E402
from hfdl.tasks.detection.args import DetectionDataArguments, DetectionTrainingArguments, DetectorArguments  # noqa: E402
from hfdl.tasks.detection.pipeline import run  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    detector_args, data_args, training_args, hub_args = parse_args((DetectorArguments, DetectionDataArguments, DetectionTrainingArguments, HubArguments), argv)
    check_before_training(hub_args)
    results = run(detector_args, data_args, training_args, argv)
    push_after_training(hub_args, training_args.output_dir)
    return results


if __name__ == "__main__":
    run_main(main)
