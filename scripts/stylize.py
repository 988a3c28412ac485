#!/usr/bin/env python
"""Stylise one image: Gatys optimisation (any style images) or a trained fast style network.

    python scripts/stylize.py --content photo.jpg --style starry.jpg --method gatys --steps 300 --size 256 --output out.png
    python scripts/stylize.py --content photo.jpg --style a.jpg --style b.jpg --style_weights 0.7 0.3 --output blend.png
    python scripts/stylize.py --content photo.jpg --method fast --model outputs/style --output out.png   # or a Hub id

A single .json or .yaml argument is read as a config file (HfArgumentParser).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from hfdl.core.cli import parse_args, run_main  # noqa: E402
from hfdl.errors import HfdlError  # noqa: E402

logger = logging.getLogger("stylize")


@dataclass
class StylizeArguments:
    content: str = field(metadata={"help": "Content image (PNG/JPEG)."})
    output: str = field(default="stylized.png", metadata={"help": "Where the stylised image is written (PNG/JPEG by extension)."})
    style: list[str] = field(default_factory=list, metadata={"action": "append", "help": "Style image(s); repeat --style to blend several (gatys)."})
    style_weights: list[float] = field(default_factory=list, metadata={"action": "append", "help": "Blend weight per --style (default equal)."})
    method: str = field(default="gatys", metadata={"help": "gatys (optimise the image) | fast (a trained style network, --model)."})
    model: str | None = field(default=None, metadata={"help": "fast: folder written by train_style.py or a Hub id."})
    steps: int = field(default=300, metadata={"help": "gatys: loss evaluations."})
    size: int = field(default=256, metadata={"help": "Longer side of the output in pixels."})
    optimizer: str = field(default="lbfgs", metadata={"help": "gatys: lbfgs | adam."})
    learning_rate: float | None = field(default=None, metadata={"help": "gatys: step size (default 1.0 lbfgs, 0.02 adam)."})
    init: str = field(default="content", metadata={"help": "gatys: start from the content image or noise."})
    content_weight: float = field(default=1.0, metadata={"help": "gatys: content loss weight."})
    style_weight: float = field(default=1e6, metadata={"help": "gatys: style loss weight (Gram matrices normalised by C*H*W)."})
    tv_weight: float = field(default=1e-2, metadata={"help": "gatys: total-variation weight."})
    content_layer: str | None = field(default=None, metadata={"help": "gatys: content layer (default relu4_2)."})
    style_layers: str | None = field(default=None, metadata={"help": "gatys: comma list of style layers (default relu1_2,relu2_2,relu3_3,relu4_3)."})
    feature_net: str = field(default="vgg16", metadata={"help": "gatys: vgg16 (offline) or vgg19 (Hub timm/vgg19.tv_in1k)."})
    strength: float = field(default=1.0, metadata={"help": "fast: blend of stylised (1) and content (0)."})
    preserve_colour: bool = field(default=False, metadata={"help": "Transfer style on luminance only; keep the content's colours."})
    style_size: int | None = field(default=None, metadata={"help": "gatys: longer side of the style images (default --size)."})
    seed: int = field(default=0, metadata={"help": "Seed (noise init)."})
    debug: bool = field(default=False, metadata={"help": "Show full tracebacks instead of one-line errors."})

    def __post_init__(self):
        self.style = [s for group in self.style for s in (group if isinstance(group, list) else [group])]
        self.style_weights = [float(w) for group in self.style_weights for w in (group if isinstance(group, list) else [group])]
        if self.method not in ("gatys", "fast"):
            raise HfdlError(f"--method '{self.method}' is unknown: use gatys or fast")
        if self.method == "gatys" and not self.style:
            raise HfdlError("--method gatys needs a style image: pass --style PATH (repeat it to blend several)")
        if self.method == "fast" and not self.model:
            raise HfdlError("--method fast needs a trained style network: pass --model FOLDER_OR_HUB_ID (train one with scripts/train_style.py)")
        if self.size < 16:
            raise HfdlError(f"--size must be >= 16 pixels, got {self.size}")
        if not 0 <= self.strength <= 1:
            raise HfdlError(f"--strength must be in [0, 1], got {self.strength}")
        if Path(self.output).suffix.lower() not in (".png", ".jpg", ".jpeg", ".webp"):
            raise HfdlError(f"--output {self.output} needs an image extension: .png, .jpg or .webp")


def main(argv: list[str] | None = None) -> dict:
    from hfdl.core.images import image_to_tensor, tensor_to_image
    from hfdl.tasks.style.gatys import DEFAULT_CONTENT_LAYER, DEFAULT_STYLE_LAYERS, GatysConfig, gatys
    from hfdl.tasks.style.model import TransformerNet

    (args,) = parse_args((StylizeArguments,), argv)
    content = image_to_tensor(args.content, args.size)
    t0 = time.perf_counter()
    if args.method == "gatys":
        styles = [image_to_tensor(p, args.style_size or args.size) for p in args.style]
        cfg = GatysConfig(
            steps=args.steps, optimizer=args.optimizer, learning_rate=args.learning_rate, init=args.init,
            content_layer=args.content_layer or DEFAULT_CONTENT_LAYER,
            style_layers=tuple(args.style_layers.split(",")) if args.style_layers else DEFAULT_STYLE_LAYERS,
            content_weight=args.content_weight, style_weight=args.style_weight, tv_weight=args.tv_weight,
            preserve_colour=args.preserve_colour, feature_net=args.feature_net, seed=args.seed,
        )  # fmt: skip
        result = gatys(content, styles, cfg, style_weights=args.style_weights or None, callback=lambda n, _img, losses: logger.info("step %d %s", n, losses))
        image, losses, steps = result.image, result.losses, result.steps
    else:
        net = TransformerNet.from_pretrained(args.model)
        image = net.stylize(content, strength=args.strength, preserve_colour=args.preserve_colour)
        losses, steps = {}, 1
    seconds = time.perf_counter() - t0
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    tensor_to_image(image).save(out)
    summary = {"output": str(out), "method": args.method, "size": list(image.shape[-2:]), "steps": steps, "seconds": round(seconds, 3), **losses}
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    run_main(main)
