#!/usr/bin/env python
"""Train a fast style network (Johnson et al.) for one style image with accelerate.

    accelerate launch -q scripts/train_style.py --style_image starry.jpg --output_dir outputs/starry
    accelerate launch -q scripts/train_style.py --style_image s.png --dataset_name my_photos/ --image_size 256 --max_steps 2000
    accelerate launch -q scripts/train_style.py --style_image s.png --push_to_hub --hub_model_id me/starry-style

Content images default to real photos shipped by scikit-image and scikit-learn (offline; astronaut and chelsea are
held out for evaluation); pass --dataset_name with a Hub image dataset or an image folder otherwise. After training,
Gatys optimisation of the same loss on the evaluation photos (--gatys_reference_steps, 50 L-BFGS steps from noise)
is recorded beside the network's loss. The output folder holds
model.safetensors + config.json (load with `TransformerNet.from_pretrained(output_dir)`), the style
image, all_results.json, run_config.json, history.json and sample.png.
A single .json or .yaml argument is read as a config file (HfArgumentParser).
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from hfdl.core.cli import parse_args, run_main  # noqa: E402
from hfdl.hub.args import HubArguments  # noqa: E402
from hfdl.hub.registry import check_before_training, push_after_training  # noqa: E402
from hfdl.tasks.style.args import StyleArguments, StyleTrainingArguments  # noqa: E402
from hfdl.tasks.style.pipeline import run  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    style_args, training_args, hub_args = parse_args((StyleArguments, StyleTrainingArguments, HubArguments), argv)
    check_before_training(hub_args)
    results = run(style_args, training_args, argv)
    push_after_training(hub_args, training_args.output_dir)
    return results


if __name__ == "__main__":
    run_main(main)
