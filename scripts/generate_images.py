#!/usr/bin/env python
"""Images from a trained generator (scripts/train_generative.py): a grid of samples, an interpolation, or reconstructions.

    python scripts/generate_images.py --model outputs/generative --num_images 64 --seed 0 --output grid.png
    python scripts/generate_images.py --model me/fashion-dcgan --num_images 16 --class_label Trouser --output trousers.png
    python scripts/generate_images.py --model outputs/generative --interpolate 3 7 --steps 10 --output strip.png
    python scripts/generate_images.py --model outputs/generative --reconstruct photo.png --output reconstruction.png   # (V)AEs

The same seed gives the same images. Prints what it wrote as JSON.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from hfdl.core.cli import parse_args, run_main  # noqa: E402
from hfdl.errors import HfdlError  # noqa: E402


@dataclass
class GenerateArguments:
    model: str = field(metadata={"help": "Folder written by scripts/train_generative.py, or a Hub id (cached when offline)."})
    num_images: int = field(default=64, metadata={"help": "Images in the grid."})
    seed: int = field(default=0, metadata={"help": "Seed of the latents (the same seed, the same images)."})
    output: str = field(default="grid.png", metadata={"help": "The PNG to write."})
    nrow: int = field(default=8, metadata={"help": "Images per row of the grid."})
    class_label: str | None = field(default=None, metadata={"help": "Class id or name, for a class-conditional model (default: every class in turn)."})
    interpolate: list[int] | None = field(default=None, metadata={"help": "SEED_A SEED_B: the images along the path between their latents.", "nargs": 2})
    steps: int = field(default=10, metadata={"help": "Images along --interpolate."})
    reconstruct: str | None = field(default=None, metadata={"help": "An image to encode and decode (VAE / autoencoder): input beside reconstruction."})
    debug: bool = field(default=False, metadata={"help": "Show full tracebacks."})

    def __post_init__(self):
        if self.num_images < 1 or self.nrow < 1:
            raise HfdlError("--num_images and --nrow must be >= 1")
        if self.interpolate is not None and self.steps < 2:
            raise HfdlError(f"--steps must be >= 2, got {self.steps}")
        if self.interpolate is not None and self.reconstruct:
            raise HfdlError("pass either --interpolate or --reconstruct, not both")


def main(argv: list[str] | None = None) -> dict:
    (args,) = parse_args((GenerateArguments,), argv)
    from torchvision.utils import save_image

    from hfdl.core.images import open_image
    from hfdl.tasks.generative.model import ImageGenerator, input_and_reconstruction, label_id
    from hfdl.tasks.generative.pictures import grid

    model = ImageGenerator.from_pretrained(args.model)
    label = label_id(model, args.class_label)
    if args.reconstruct:
        images, nrow, what = input_and_reconstruction(model, open_image(args.reconstruct), label), 2, "reconstruction"
    elif args.interpolate:
        images, nrow, what = model.interpolate(args.interpolate[0], args.interpolate[1], args.steps, label), args.steps, "interpolation"
    else:
        images, nrow, what = model.sample(args.num_images, seed=args.seed, labels=label), args.nrow, "samples"
    save_image(grid(images, nrow), args.output)
    info = {"output": args.output, "what": what, "images": len(images), "model_type": model.model_type, "seed": args.seed}
    if label is not None:
        info["class"] = model.label_names[label]
    print(json.dumps(info))
    return info


if __name__ == "__main__":
    run_main(main)
