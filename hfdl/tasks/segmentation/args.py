"""Arguments of scripts/train_segmenter.py: the segmenter, the data, and the loop's defaults for it."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from hfdl.core.images import FIXRES_RATIO, check_square_sizes, fixres_size
from hfdl.core.training import TrainingArguments
from hfdl.errors import HfdlError
from hfdl.tasks.segmentation.data import SegmentationAugment
from hfdl.tasks.segmentation.model import DECODERS, OUTPUT_STRIDES, SKIP_STRIDES, UPSAMPLES, valid_skip_strides

# The optimiser recipe per model kind: the timm decoders' default; the transformers semantic-segmentation example's for SegFormer & co.
MODEL_RECIPES = {"timm": {"learning_rate": 2e-3, "weight_decay": 0.05}, "transformers": {"learning_rate": 6e-5, "weight_decay": 0.01}}
# --compare: each name is one value of one segmenter argument; all names of one run vary the same argument.
COMPARE_AXES = {
    "pretrained": ("pretrained", True),
    "scratch": ("pretrained", False),
    **{name: ("model_type", name) for name in DECODERS},
    **{name: ("upsample", name) for name in UPSAMPLES},
}

# The backbone without --model_name_or_path: EfficientNet-Lite0 (ImageNet). MobileNetV2's training step is 1.23-1.39x
# cheaper on 2 CPU cores, which wins in a slow hour (0.699 at 1,880 steps against Lite0's 0.689 at 1,353, the same
# compute) but its runs stayed at 0.690-0.699 however many steps (2,123: 0.695), where Lite0 goes on to 0.703 at
# 1,752 (README): Lite0 stays.
DEFAULT_BACKBONE = "tf_efficientnet_lite0"
# The decoder a run builds without --model_type: LR-ASPP measured best on the offline default (mean IoU, README).
DEFAULT_DECODER = "lraspp"

# The pretrained backbone's layers frozen by default: none. Freezing the stem and the stride-2 and -4 blocks
# (`--frozen_stride 4`, Detectron2's freeze_at=2; the default until session 18) saves their backward, but on the offline
# default the whole backbone trained scored 0.7113 and 0.7094 against 0.697-0.703 for the frozen stem at as many or
# more steps (README): the early layers adapt to the items' upscaled 28-pixel edges and tints.
DEFAULT_FROZEN_STRIDE = 0

# LR-ASPP's skip maps by default: torchvision's stride-8 map, the stride-16 one (FCN-16s's skip: mean IoU 0.652 -> 0.667
# on the offline default, for 0.04% more parameters) and the stride-4 one (logits at stride 4, finer edges: 0.681 ->
# 0.687 with the 3x3 conv below, Sandal 0.64 -> 0.66; +0.5% parameters, ~4% slower steps) (README).
DEFAULT_SKIP_STRIDES = (4, 8, 16)
# ... each classified after a 3x3 conv + BN + ReLU this wide (DeepLabv3+'s low-level refinement; 0: torchvision's 1x1
# classifier): mean IoU 0.667 -> 0.686 in 8-minute runs of the offline default (README), for 2.8% more parameters.
DEFAULT_SKIP_CHANNELS = 64

# The timm decoders predict with flip test-time augmentation by default: the mean of the image's and its mirror
# image's logits (mean IoU 0.6972 -> 0.7015 and 0.701 -> 0.707 on two default runs' weights, 0.671 -> 0.676 on
# session 14's; README), for twice the inference time (50-60 ms/image at 256 px on 2 cores, the target being 80).
DEFAULT_TEST_TIME_FLIP = True

# The backbone's last map by default: strided to 32, as the backbone was pretrained.
DEFAULT_OUTPUT_STRIDE = 32


def resolve_skip_strides(skip_strides: str | None) -> tuple[int, ...]:
    """--skip_strides ("16,8") as sorted ints, else DEFAULT_SKIP_STRIDES; a one-line error for anything but distinct SKIP_STRIDES."""
    if skip_strides is None:
        return DEFAULT_SKIP_STRIDES
    try:
        strides = [int(s) for s in skip_strides.split(",") if s.strip()]
    except ValueError:
        strides = []
    if not valid_skip_strides(strides):
        raise HfdlError(f"--skip_strides '{skip_strides}': name one or more of {', '.join(map(str, SKIP_STRIDES))}, comma-separated, e.g. 8,16")
    return tuple(sorted(strides))


def resolve_test_time_flip(test_time_flip: bool | None) -> bool:
    """--test_time_flip, else DEFAULT_TEST_TIME_FLIP."""
    return DEFAULT_TEST_TIME_FLIP if test_time_flip is None else test_time_flip


def resolve_skip_channels(skip_channels: int | None) -> int:
    """--skip_channels, else DEFAULT_SKIP_CHANNELS."""
    return DEFAULT_SKIP_CHANNELS if skip_channels is None else skip_channels


# The embedded offline default: Fashion-MNIST items on real photos with their masks (hfdl.assets.composite_dataset).
# Drawn at the training size (--image_size), so the items keep their share of the image.
EMBEDDED_DEFAULT = {"num_train": 6000, "num_validation": 400}
# Its scenes: the validation split keeps the detection default's density (1-6 items: ~3.2 per scene, 15% of the
# pixels); the training scenes are drawn denser (1-24 items tried, those that would hide too much of another skipped:
# ~10 per scene, 37% of the pixels), so every step sees about three times the labelled items (copy-paste
# augmentation, Ghiasi et al. 2021). Measured (README): mean IoU 0.600 -> 0.627 (12) -> 0.652 (24, with the whole clock).
VALIDATION_MAX_OBJECTS = 6
DEFAULT_COMPOSITE_MAX_OBJECTS = 24
# ... and its clock (`TrainingArguments.capped_by_clock`): 3 epochs, or this many minutes of training where those
# take longer (~2.4 epochs on a 2-core CPU, the schedule fitted to the clock), so the whole run, the first build of
# the composites (~20 s) included, stays within the 10 minutes (README). It evaluates only once training
# ends (`--eval_strategy end`): the two epoch-end evaluations (~20 s each) went to the clock (8 -> 8.5 minutes).
EMBEDDED_TIME_BUDGET_MINUTES = 8.5
EMBEDDED_EVAL_STRATEGY = "end"
# Augmentation beyond flips and scale/crop. Photos vary in tilt and light, so your data gets rotation and colour
# jitter; the offline default does not: its composites already vary each item's tint, mirror image, scale, place and
# background photo, and its validation scenes are as upright as its training ones, so rotation (whose corners are
# ignored pixels) and jitter cost steps for nothing: mean IoU 0.687 -> 0.692 without them (README).
DATA_AUGMENT = {"rotation": 10.0, "color_jitter": 0.2, "hue": 0.02}
EMBEDDED_AUGMENT = {"rotation": 0.0, "color_jitter": 0.0, "hue": 0.0}


@dataclass
class SegmenterArguments:
    model_type: str = field(
        default=DEFAULT_DECODER,
        metadata={
            "help": "lraspp (default): LR-ASPP head: the last map gated by its global average, plus classifiers of skip maps (--skip_strides) | unet: skip connections at "
            "strides 4-32 | fpn: lateral + top-down sum (all on a timm backbone) | transformers (implied by a transformers segmenter id in "
            "--model_name_or_path)."
        },
    )
    model_name_or_path: str = field(
        default=DEFAULT_BACKBONE,
        metadata={
            "help": f"The backbone (default {DEFAULT_BACKBONE}; offline: tf_efficientnet_lite0, mobilenetv2_100; a timm name or timm Hub id), or a transformers "
            "segmenter (Hub id or folder: nvidia/mit-b0, nvidia/segformer-b0-finetuned-ade-512-512...), re-headed for the classes."
        },
    )
    trust_remote_code: bool = field(default=False, metadata={"help": "Allow a transformers segmenter's own code from its repo (off: only run code you trust)."})
    pretrained: bool = field(default=True, metadata={"help": "Start the backbone from its pretrained weights (false: from scratch)."})
    upsample: str = field(
        default="interpolate",
        metadata={"help": "How the decoder upsamples: interpolate (bilinear, then a 3x3 conv) | transposed (learned transposed convolutions)."},
    )
    decoder_channels: int = field(
        default=64, metadata={"help": "The decoder's width unit C (LR-ASPP: 4C; U-Net: C at stride 4, 2C at 8, 4C at 16; FPN: C at every level)."}
    )
    frozen_stride: int = field(
        default=DEFAULT_FROZEN_STRIDE,
        metadata={
            "help": "Freeze the pretrained backbone from its stem up to its feature level of this stride (4: its stride-2 and -4 layers, as "
            f"Detectron2's freeze_at=2, a cheaper step; 8, 16, 32: more). Default: {DEFAULT_FROZEN_STRIDE} (train it all: measured better on the offline default)."
        },
    )
    output_stride: int = field(
        default=DEFAULT_OUTPUT_STRIDE,
        metadata={
            "help": "The backbone's last map: 32 (strided) or 16 / 8 (its last stages dilated, DeepLab's atrous backbone; torchvision's "
            "LR-ASPP MobileNetV3 runs at 16): the same weights, a finer map of the same view."
        },
    )
    skip_strides: str | None = field(
        default=None,
        metadata={
            "help": f"LR-ASPP only: the backbone maps (by stride: {', '.join(map(str, SKIP_STRIDES))}) whose classifiers add to the head's "
            f"scores; the finest sets the output stride. Default: {','.join(map(str, DEFAULT_SKIP_STRIDES))} (torchvision's head: 8)."
        },
    )
    skip_channels: int | None = field(
        default=None,
        metadata={
            "help": f"LR-ASPP only: each skip map is classified after a 3x3 conv + BN + ReLU this wide (DeepLabv3+'s low-level refinement); "
            f"0: a 1x1 classifier, as torchvision's head. Default: {DEFAULT_SKIP_CHANNELS}."
        },
    )
    test_time_flip: bool | None = field(
        default=None,
        metadata={
            "help": "Predict with the mean of the image's and its mirror image's logits (flip test-time augmentation), saved in the model so "
            "evaluation, segment.py and the Space all do it; twice the inference time. Default: on for the timm decoders (offline default: "
            "mean IoU +0.004 to +0.006, README); a transformers segmenter predicts as its library does."
        },
    )
    dice_weight: float = field(
        default=1.0, metadata={"help": "Add this times the soft Dice loss to the cross-entropy (nnU-Net's CE + Dice; 0: cross-entropy only)."}
    )
    compare: str | None = field(
        default=None,
        metadata={
            "help": "Train variants side by side into OUTPUT/<name> with OUTPUT/comparison.md/json/png: pretrained,scratch | "
            "unet,fpn,lraspp (any of them) | interpolate,transposed."
        },
    )

    def __post_init__(self):
        if self.model_type not in (*DECODERS, "transformers"):
            raise HfdlError(f"--model_type '{self.model_type}' is unknown: use {', '.join(DECODERS)}, or transformers with a transformers segmenter id")
        if self.upsample not in UPSAMPLES:
            raise HfdlError(f"--upsample '{self.upsample}' is unknown: use {' or '.join(UPSAMPLES)}")
        if self.decoder_channels < 4:
            raise HfdlError(f"--decoder_channels must be >= 4, got {self.decoder_channels}")
        if self.frozen_stride < 0:
            raise HfdlError(f"--frozen_stride must be 0 or a feature stride of the backbone (4, 8, 16, 32), got {self.frozen_stride}")
        if self.output_stride not in OUTPUT_STRIDES:
            raise HfdlError(f"--output_stride {self.output_stride} is not supported: use one of {', '.join(map(str, OUTPUT_STRIDES))}")
        if self.skip_strides is not None:
            if self.model_type != "lraspp":
                raise HfdlError(f"--skip_strides shapes the LR-ASPP head, not --model_type {self.model_type}: drop it, or use --model_type lraspp")
            resolve_skip_strides(self.skip_strides)
        if self.skip_channels is not None:
            if self.model_type != "lraspp":
                raise HfdlError(f"--skip_channels shapes the LR-ASPP head, not --model_type {self.model_type}: drop it, or use --model_type lraspp")
            if self.skip_channels < 0:
                raise HfdlError(f"--skip_channels must be 0 (a 1x1 classifier, torchvision's) or a width >= 1, got {self.skip_channels}")
        if self.dice_weight < 0:
            raise HfdlError(f"--dice_weight must be >= 0, got {self.dice_weight}")
        self.compare_variants()

    def resolved_skip_strides(self) -> tuple[int, ...]:
        """LR-ASPP's skip strides: --skip_strides, else DEFAULT_SKIP_STRIDES (the other decoders: unused)."""
        return resolve_skip_strides(self.skip_strides)

    def resolved_test_time_flip(self) -> bool:
        return resolve_test_time_flip(self.test_time_flip)

    def resolved_skip_channels(self) -> int:
        return resolve_skip_channels(self.skip_channels)

    def compare_variants(self) -> dict[str, SegmenterArguments]:
        """`--compare` as {variant name: these arguments with that variant's value}; {} without it."""
        if not self.compare:
            return {}
        names = [n.strip() for n in self.compare.split(",") if n.strip()]
        unknown = [n for n in names if n not in COMPARE_AXES]
        if unknown or len(set(names)) < 2:
            raise HfdlError(f"--compare '{self.compare}': name two or more of {', '.join(COMPARE_AXES)}, e.g. pretrained,scratch or unet,lraspp")
        axes = {COMPARE_AXES[n][0] for n in names}
        if len(axes) > 1:
            raise HfdlError(f"--compare '{self.compare}' mixes {' and '.join(sorted(axes))}: compare one thing at a time, e.g. unet,lraspp")
        return {n: replace(self, compare=None, **{COMPARE_AXES[n][0]: COMPARE_AXES[n][1]}) for n in names}


@dataclass
class SegmentationDataArguments:
    dataset_name: str | None = field(
        default=None, metadata={"help": "Hub dataset id (an image and a mask column, as sidewalk-semantic), a saved dataset, or a folder (images/ + masks/)."}
    )
    dataset_config_name: str | None = field(default=None, metadata={"help": "Hub dataset configuration."})
    train_dir: str | None = field(default=None, metadata={"help": "A folder with images/NAME.(jpg|png) and masks/NAME.png (index or palette PNGs)."})
    validation_dir: str | None = field(default=None, metadata={"help": "The same for evaluation."})
    image_column: str | None = field(default=None, metadata={"help": "The image column (default: image, pixel_values or the one image column left)."})
    mask_column: str | None = field(default=None, metadata={"help": "The mask column (default: the first of label, annotation, mask, semantic_map)."})
    id2label: str | None = field(
        default=None, metadata={"help": "A JSON file {id: name} (default: the dataset's id2label.json, a ClassLabel in its features, else the ids)."}
    )
    palette: str | None = field(default=None, metadata={"help": "A JSON file {id: [r, g, b]}: maps RGB masks to class ids, and colours the overlays."})
    reduce_labels: bool = field(
        default=False, metadata={"help": "Mask value 0 (background) becomes 255 (ignored) and every other value v becomes v - 1, as ADE20k needs."}
    )
    train_val_split: float = field(default=0.15, metadata={"help": "Holdout fraction when there is no validation source."})
    image_size: int = field(
        default=192,
        metadata={
            "help": "Square training input size (pixels), a multiple of 32 (the offline default's composites are drawn at it; 192 measured better than 128, 160 and 224)."
        },
    )
    eval_image_size: int | None = field(
        default=None,
        metadata={
            "help": "Square size the segmenter evaluates and runs at (saved as its image_size: segment and the Space resize to it). Default: for the timm "
            f"decoders {FIXRES_RATIO}x --image_size rounded to 32 (256 for 192: random crops show objects larger in training, FixRes); for a transformers segmenter --image_size."
        },
    )
    composite_max_objects: int | None = field(
        default=None,
        metadata={
            "help": f"The offline default only: its training scenes hold up to this many items (default {DEFAULT_COMPOSITE_MAX_OBJECTS}: "
            f"~10 per scene; its validation scenes keep 1-{VALIDATION_MAX_OBJECTS}, ~3). Denser scenes show more labelled items per step."
        },
    )
    max_train_samples: int | None = field(default=None, metadata={"help": "Use only the first N training images."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Use only the first N evaluation images."})
    hflip: float = field(default=0.5, metadata={"help": "Horizontal flip probability."})
    crop: float = field(default=0.5, metadata={"help": "Probability of a random scale/crop (the mask follows)."})
    scale_min: float = field(default=0.3, metadata={"help": "Smallest crop as a fraction of the image area."})
    rotation: float | None = field(
        default=None,
        metadata={
            "help": f"Random rotation up to this many degrees, half of the images (0: off); outside pixels are ignored. Default: "
            f"{DATA_AUGMENT['rotation']:g}, {EMBEDDED_AUGMENT['rotation']:g} for the offline default (its composites bring their own variety)."
        },
    )
    color_jitter: float | None = field(
        default=None,
        metadata={
            "help": f"Brightness, contrast and saturation jitter strength (0: off). Default: {DATA_AUGMENT['color_jitter']:g}, "
            f"{EMBEDDED_AUGMENT['color_jitter']:g} for the offline default."
        },
    )
    hue: float | None = field(
        default=None,
        metadata={"help": f"Hue jitter (0: off). Default: {DATA_AUGMENT['hue']:g}, {EMBEDDED_AUGMENT['hue']:g} for the offline default."},
    )

    def augment(self) -> SegmentationAugment:
        """The training augmentation these arguments ask for (rotation and jitter resolved for this data)."""
        return SegmentationAugment(self.hflip, self.crop, self.scale_min, self.rotation, self.color_jitter, self.hue)

    def resolved_composite_max_objects(self) -> int:
        return self.composite_max_objects or DEFAULT_COMPOSITE_MAX_OBJECTS

    def run_size(self, kind: str) -> int:
        """The size the segmenter evaluates and runs at (`fixres_size`): a transformers segmenter is told one size."""
        return fixres_size(self.image_size, self.eval_image_size, one_size=kind == "transformers")

    def __post_init__(self):
        self.embedded_default = not any((self.dataset_name, self.train_dir, self.validation_dir))
        check_square_sizes(self.image_size, self.eval_image_size)
        for name in ("max_train_samples", "max_eval_samples"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise HfdlError(f"--{name} must be >= 1, got {value}")
        if self.composite_max_objects is not None and (not self.embedded_default or self.composite_max_objects < 1):
            raise HfdlError(
                f"--composite_max_objects {self.composite_max_objects}: it sets how many items the offline default's training scenes hold "
                "(>= 1); drop it with --dataset_name / --train_dir"
            )
        for name, value in (EMBEDDED_AUGMENT if self.embedded_default else DATA_AUGMENT).items():
            if getattr(self, name) is None:  # not given: this data's default, written as such into run_config.json and the card
                setattr(self, name, value)
        if not 0 < self.scale_min <= 1 or self.rotation < 0:
            raise HfdlError(f"--scale_min must be in (0, 1] and --rotation >= 0, got {self.scale_min} and {self.rotation}")


@dataclass
class SegmentationTrainingArguments(TrainingArguments):
    """The shared loop's arguments with the segmenter's defaults."""

    default_epochs = 3

    output_dir: str = field(default="outputs/segmenter", metadata={"help": "Where the segmenter, results and checkpoints go."})
    per_device_train_batch_size: int = field(
        default=8, metadata={"help": "Images per batch (8 measured better than 16 on the offline default, at equal time)."}
    )
    per_device_eval_batch_size: int = field(
        default=8,
        metadata={
            "help": "Images per evaluation batch (8: the offline default's evaluation ~1.7x faster than at 32 on 2 CPU cores, whose caches the smaller batch fits)."
        },
    )
    learning_rate: float | None = field(
        default=None, metadata={"help": "Peak learning rate (AdamW). Default: 2e-3 for the timm decoders, 6e-5 for transformers segmenters (their example's)."}
    )
    weight_decay: float | None = field(
        default=None, metadata={"help": "AdamW weight decay (not on norms and biases). Default: 0.05 for the timm decoders, 0.01 for transformers segmenters."}
    )
    warmup_ratio: float = field(default=0.05, metadata={"help": "Fraction of steps for linear warmup."})
