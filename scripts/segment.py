#!/usr/bin/env python
"""Segment one image with a trained segmenter: write the coloured overlay and the mask, print each class's share of the pixels as JSON.

    python scripts/segment.py --model outputs/segmenter --image photo.jpg --output overlay.png [--alpha 0.5]
    python scripts/segment.py --model me/my-segmenter --image photo.jpg --output overlay.png        # a Hub id (cached when offline)
    python scripts/segment.py --model nvidia/segformer-b0-finetuned-ade-512-512 --image photo.jpg --output overlay.png

Writes OUTPUT (the image with each class's colour blended in; background classes left clear) and `<OUTPUT stem>_mask.png`
(a palette PNG whose pixel values are the class ids, at the image's size). Both kinds of segmenter folder load: hfdl's and
a transformers one (SegFormer...).
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from hfdl.core.cli import parse_args, run_main  # noqa: E402
from hfdl.errors import HfdlError  # noqa: E402


@dataclass
class SegmentArguments:
    model: str = field(metadata={"help": "Folder written by scripts/train_segmenter.py, a transformers segmenter folder, or a Hub id."})
    image: str = field(metadata={"help": "The image (PNG/JPEG)."})
    output: str = field(default="overlay.png", metadata={"help": "The overlay image (PNG/JPEG); the mask goes to <stem>_mask.png beside it."})
    alpha: float = field(default=0.5, metadata={"help": "Opacity of the class colours (0: the image, 1: the colours only)."})
    trust_remote_code: bool = field(default=False, metadata={"help": "Run a transformers segmenter's own code from its repository."})
    debug: bool = field(default=False, metadata={"help": "Show full tracebacks."})

    def __post_init__(self):
        if not 0 <= self.alpha <= 1:
            raise HfdlError(f"--alpha must be in [0, 1], got {self.alpha}")


def main(argv: list[str] | None = None) -> dict[str, float]:
    (args,) = parse_args((SegmentArguments,), argv)
    from hfdl.core.images import open_image
    from hfdl.tasks.segmentation.model import background_ids, load_segmenter, mask_image, model_palette, overlay, segment_in_image

    model = load_segmenter(args.model, trust_remote_code=args.trust_remote_code)
    image = open_image(args.image)
    mask = segment_in_image(model, image)  # (H, W) class ids
    palette = model_palette(model)
    output = Path(args.output)
    overlay(image, mask, palette, args.alpha, background_ids(model.label_names)).save(output)
    mask_image(mask, palette).save(output.with_name(f"{output.stem}_mask.png"))
    counts = mask.flatten().bincount(minlength=len(model.label_names)).tolist()
    shares = {name: round(n / mask.numel(), 4) for name, n in zip(model.label_names, counts) if n}
    print(json.dumps(shares))
    return shares


if __name__ == "__main__":
    run_main(main)
