"""Arguments of scripts/train_style.py: style, content, losses, network, and the loop's defaults for style networks."""

from __future__ import annotations

from dataclasses import dataclass, field

from hfdl.core.training import TrainingArguments
from hfdl.errors import HfdlError
from hfdl.tasks.style.gatys import DEFAULT_FAST_CONTENT_LAYER, DEFAULT_STYLE_LAYERS


@dataclass
class StyleArguments:
    style_image: str = field(default=None, metadata={"help": "The style image (PNG/JPEG). Required."})
    dataset_name: str | None = field(
        default=None,
        metadata={"help": "Content images: Hub dataset id, imagefolder/saved dataset dir, or 'photos' (offline default: real skimage/sklearn photos)."},
    )
    dataset_config_name: str | None = field(default=None, metadata={"help": "Hub dataset configuration."})
    image_column: str | None = field(default=None, metadata={"help": "Image column (auto-detected)."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Use only the first N content images."})
    image_size: int = field(default=128, metadata={"help": "Training crop size (pixels); a network runs at any size."})
    content_size: int | None = field(
        default=None,
        metadata={"help": "Longer side the content images are resized to before cropping: the scale the network learns (default --eval_size)."},
    )
    style_size: int | None = field(default=None, metadata={"help": "Longer side of the style image for its Gram targets (default --image_size)."})
    samples_per_epoch: int = field(default=256, metadata={"help": "Random crops per epoch (the content set is small; crops and flips repeat it)."})
    max_steps: int | None = field(default=None, metadata={"help": "Stop after this many optimizer steps (same as --max_train_steps)."})
    content_weight: float = field(default=1.0, metadata={"help": "Content loss weight."})
    style_weight: float = field(default=1e6, metadata={"help": "Style loss weight (Gram matrices normalised by C*H*W)."})
    tv_weight: float = field(default=1e-2, metadata={"help": "Total-variation weight."})
    content_layer: str = field(default=DEFAULT_FAST_CONTENT_LAYER, metadata={"help": "VGG layer for the content loss."})
    style_layers: str = field(default=",".join(DEFAULT_STYLE_LAYERS), metadata={"help": "Comma list of VGG layers for the style loss."})
    feature_net: str = field(default="vgg16", metadata={"help": "vgg16 (offline asset) or vgg19 (Hub timm/vgg19.tv_in1k)."})
    base_channels: int = field(default=32, metadata={"help": "Width of the transformer network's first conv (x2, x4 after downsampling)."})
    num_residual_blocks: int = field(default=5, metadata={"help": "Residual blocks of the transformer network."})
    sample_image: str | None = field(default=None, metadata={"help": "Content image stylised into sample.png (default: skimage astronaut)."})
    sample_size: int = field(default=256, metadata={"help": "Longer side of sample.png."})
    eval_size: int = field(
        default=256,
        metadata={"help": "Longer side of the evaluation photos (whole frames; offline default: the Space's example photos, held out of training)."},
    )
    gatys_reference_steps: int = field(
        default=50,
        metadata={
            "help": "After training, optimise each evaluation photo with Gatys L-BFGS on the same loss for this many steps and record its loss beside the network's (0: skip)."
        },
    )
    gatys_reference_init: str = field(
        default="noise", metadata={"help": "Start of the Gatys reference: noise (Gatys et al. and Johnson et al.'s baseline) or content."}
    )

    def __post_init__(self):
        if not self.style_image:
            raise HfdlError("no style image: pass --style_image PATH")
        for name in ("image_size", "samples_per_epoch", "base_channels", "sample_size", "eval_size", "content_size"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise HfdlError(f"--{name} must be >= 1, got {getattr(self, name)}")
        if self.image_size < 16:
            raise HfdlError(f"--image_size must be >= 16 pixels (VGG pools 4 times), got {self.image_size}")
        for name in ("content_weight", "style_weight", "tv_weight"):
            if getattr(self, name) < 0:
                raise HfdlError(f"--{name} must be >= 0, got {getattr(self, name)}")
        if self.gatys_reference_steps < 0:
            raise HfdlError(f"--gatys_reference_steps must be >= 0 (0 skips the reference), got {self.gatys_reference_steps}")
        if self.gatys_reference_init not in ("noise", "content"):
            raise HfdlError(f"--gatys_reference_init '{self.gatys_reference_init}' is unknown: use noise or content")
        if self.max_steps is not None and self.max_steps < 1:
            raise HfdlError(f"--max_steps must be >= 1, got {self.max_steps}")

    @property
    def style_layer_list(self) -> tuple[str, ...]:
        return tuple(s.strip() for s in self.style_layers.split(",") if s.strip())


@dataclass
class StyleTrainingArguments(TrainingArguments):
    """The shared loop's arguments with defaults that suit style networks (Adam-like, no decay, no clipping)."""

    output_dir: str = field(default="outputs/style", metadata={"help": "Where the style network, results and checkpoints go."})
    default_epochs = 2  # epochs of --samples_per_epoch crops; with --time_budget_minutes alone the clock ends training
    per_device_train_batch_size: int = field(default=2, metadata={"help": "Crops per batch (2 learned more per crop than 4 at 128 px)."})
    learning_rate: float = field(default=1e-3, metadata={"help": "Peak learning rate (AdamW)."})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay."})
    warmup_ratio: float = field(default=0.05, metadata={"help": "Fraction of steps for linear warmup."})
    max_grad_norm: float | None = field(default=None, metadata={"help": "Gradient clipping norm (None: off)."})
