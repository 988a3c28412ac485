#!/usr/bin/env python
"""Train a fast style network (Johnson et al.) for one style image with accelerate.

    accelerate launch --config_file configs/accelerate/cpu.yaml scripts/train_style.py --style_image starry.jpg --output_dir outputs/starry
    accelerate launch scripts/train_style.py --style_image s.png --dataset_name my_photos/ --image_size 256 --max_steps 2000
    accelerate launch scripts/train_style.py --style_image s.png --push_to_hub --hub_model_id me/starry-style

Content images default to real photos shipped by scikit-image and scikit-learn (offline); pass
--dataset_name with a Hub image dataset or an image folder otherwise. The output folder holds
model.safetensors + config.json (load with `TransformerNet.from_pretrained(output_dir)`), the style
image, all_results.json, run_config.json, history.json and sample.png.
A single .json or .yaml argument is read as a config file (HfArgumentParser).
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from hfdl.cli import parse_args, run_main  # noqa: E402
from hfdl.hub import HubArguments  # noqa: E402
from hfdl.publish import check_before_training, push_after_training  # noqa: E402
from hfdl.style import StyleArguments, StyleTrainingArguments, run  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    sargs, targs, hargs = parse_args((StyleArguments, StyleTrainingArguments, HubArguments), argv)
    check_before_training(hargs)
    results = run(sargs, targs, argv)
    push_after_training(hargs, targs.output_dir)
    return results


if __name__ == "__main__":
    run_main(main)
