#!/usr/bin/env python
"""Generative models of the last lecture: the MLP VAE of pytorch/examples, a convolutional VAE, DCGAN and the (denoising) autoencoder.

    accelerate launch -q scripts/train_generative.py                                      # conv_vae on the offline Fashion-MNIST
    accelerate launch -q scripts/train_generative.py --model_type vae                     # pytorch/examples' VAE recipe exactly
    accelerate launch -q scripts/train_generative.py --model_type dcgan --conditional --output_dir outputs/dcgan
    accelerate launch -q scripts/train_generative.py --model_type conv_vae --latent_dim 2 --output_dir outputs/vae2d   # latent-space map
    accelerate launch -q scripts/train_generative.py --model_type autoencoder --noise_std 0.3 --dataset_name digits --image_size 16

A single .json or .yaml argument is read as a config file (HfArgumentParser).
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from hfdl.core.cli import parse_args, run_main  # noqa: E402
from hfdl.hub.args import HubArguments  # noqa: E402
from hfdl.hub.registry import check_before_training, push_after_training  # noqa: E402
from hfdl.tasks.generative.args import GenerativeArguments, GenerativeDataArguments, GenerativeMetricArguments, GenerativeTrainingArguments  # noqa: E402
from hfdl.tasks.generative.pipeline import run  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    model_args, data_args, metric_args, training_args, hub_args = parse_args(
        (GenerativeArguments, GenerativeDataArguments, GenerativeMetricArguments, GenerativeTrainingArguments, HubArguments), argv
    )
    check_before_training(hub_args)
    results = run(model_args, data_args, metric_args, training_args, argv)
    push_after_training(hub_args, training_args.output_dir)
    return results


if __name__ == "__main__":
    run_main(main)
