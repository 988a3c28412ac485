#!/usr/bin/env python
"""One-class anomaly detection, the standard protocol: train on one class, score the whole test split. An
autoencoder's reconstruction error (the generative lecture) against kNN on frozen pretrained features, side by side.

    accelerate launch -q scripts/train_anomaly.py --normal_class Trouser                  # both methods, Fashion-MNIST
    accelerate launch -q scripts/train_anomaly.py --all_classes --method knn               # every class in turn, the mean AUROC
    accelerate launch -q scripts/train_anomaly.py --normal_class Sneaker --method autoencoder --noise_std 0.2 --score ssim
    accelerate launch -q scripts/train_anomaly.py --train_dir my_parts/ --normal_class good --push_to_hub --hub_model_id me/parts-ae

A single .json or .yaml argument is read as a config file (HfArgumentParser).
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from hfdl.core.cli import parse_args, run_main  # noqa: E402
from hfdl.hub.args import HubArguments  # noqa: E402
from hfdl.hub.registry import check_before_training, push_after_training  # noqa: E402
from hfdl.tasks.anomaly.args import AnomalyArguments, AnomalyDataArguments, AnomalyTrainingArguments  # noqa: E402
from hfdl.tasks.anomaly.pipeline import run  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    args, data_args, training_args, hub_args = parse_args((AnomalyArguments, AnomalyDataArguments, AnomalyTrainingArguments, HubArguments), argv)
    check_before_training(hub_args)
    results = run(args, data_args, training_args, argv)
    push_after_training(hub_args, training_args.output_dir)
    return results


if __name__ == "__main__":
    run_main(main)
