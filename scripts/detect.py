#!/usr/bin/env python
"""Detect objects in one image with a trained detector; draw the boxes and print the detections as JSON.

    python scripts/detect.py --model outputs/detector --image photo.jpg --threshold 0.3 --iou 0.5 --output out.png
    python scripts/detect.py --model me/my-detector --image photo.jpg          # a Hub id (cached when offline)
    python scripts/detect.py --model facebook/detr-resnet-50 --image photo.jpg # any transformers detector

Both kinds of detector folder load: hfdl's YOLO-style one and a transformers one (DETR, RT-DETR, YOLOS...). Boxes are printed in the input image's pixels (xyxy).
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
class DetectArguments:
    model: str = field(metadata={"help": "Folder written by scripts/train_detector.py, a transformers detector folder, or a Hub id."})
    image: str = field(metadata={"help": "The image (PNG/JPEG)."})
    threshold: float = field(default=0.3, metadata={"help": "Score threshold."})
    iou: float = field(default=0.5, metadata={"help": "Non-max suppression IoU."})
    output: str | None = field(default=None, metadata={"help": "Write the image with its boxes here (PNG/JPEG)."})
    trust_remote_code: bool = field(default=False, metadata={"help": "Run a transformers detector's own code from its repository."})
    debug: bool = field(default=False, metadata={"help": "Show full tracebacks."})

    def __post_init__(self):
        if not 0 <= self.threshold < 1 or not 0 < self.iou <= 1:
            raise HfdlError("--threshold must be in [0, 1) and --iou in (0, 1]")


def main(argv: list[str] | None = None) -> list[dict]:
    (args,) = parse_args((DetectArguments,), argv)
    from hfdl.tasks.detection.model import detect_image, load_detector

    model = load_detector(args.model, trust_remote_code=args.trust_remote_code)
    detections, drawn = detect_image(model, args.image, args.threshold, args.iou)
    if args.output:
        drawn.save(args.output)
    print(json.dumps(detections))
    return detections


if __name__ == "__main__":
    run_main(main)
