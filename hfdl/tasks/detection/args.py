"""Arguments of scripts/train_detector.py: the detector, the data, and the loop's defaults for it."""

from __future__ import annotations

from dataclasses import dataclass, field

from hfdl.core.images import FIXRES_RATIO, check_square_sizes, fixres_size
from hfdl.core.training import TrainingArguments
from hfdl.errors import HfdlError

# The optimiser recipe per model kind: the yolo type's measured default; the transformers example's for DETR & co.
MODEL_RECIPES = {"yolo": {"learning_rate": 2e-3, "weight_decay": 0.05}, "transformers": {"learning_rate": 5e-5, "weight_decay": 1e-4}}

# The embedded offline default: Fashion-MNIST items on real photos (hfdl.assets.composite_dataset).
EMBEDDED_DEFAULT = {"num_train": 8000, "num_validation": 400, "image_size": 160}
# ... and its clock (`TrainingArguments.capped_by_clock`): 2 epochs (1,000 steps) end it on a quick 2-core machine, this
# many minutes of training on a slower one, so the whole run stays within the 10 minutes (about 45 s of it are
# start-up, evaluations, pictures and the card).
EMBEDDED_TIME_BUDGET_MINUTES = 8.5


@dataclass
class DetectorArguments:
    model_type: str = field(
        default="yolo",
        metadata={"help": "yolo: a one-stage grid detector on a timm backbone | transformers (implied by a transformers detector id in --model_name_or_path)."},
    )
    model_name_or_path: str = field(
        default="tf_efficientnet_lite0",
        metadata={
            "help": "The yolo backbone (an offline backbone: tf_efficientnet_lite0, mobilenetv2_100; a timm name or timm Hub id), or a "
            "transformers detector (Hub id or folder: facebook/detr-resnet-50, PekingU/rtdetr_r50vd, hustvl/yolos-tiny...), re-headed for the classes."
        },
    )
    trust_remote_code: bool = field(default=False, metadata={"help": "Allow a transformers detector's own code from its repo (off: only run code you trust)."})
    pretrained: bool = field(default=True, metadata={"help": "Start the backbone from its pretrained weights (false: from scratch)."})
    compare_scratch: bool = field(
        default=False,
        metadata={"help": "Also train the same detector from scratch: OUTPUT/pretrained and OUTPUT/scratch side by side (comparison.md/png)."},
    )
    freeze_until_stride: int = field(
        default=0,
        metadata={
            "help": "Freeze the backbone's stem and stages up to its output at this stride (4: as Detectron2's freeze_at=2); backward skips them. 0: train every layer."
        },
    )
    neck_channels: int = field(default=96, metadata={"help": "Width of the neck and the head."})
    head: str = field(
        default="shared", metadata={"help": "shared: one branch for objectness, box and classes | decoupled: classes in a branch of their own (YOLOX)."}
    )
    box_loss: str = field(default="ciou", metadata={"help": "ciou | giou."})
    score_threshold: float = field(
        default=0.001, metadata={"help": "Evaluation keeps (box, class) pairs from this score on (COCO / YOLOv5 practice); drawings use at least 0.3."}
    )
    iou_threshold: float = field(default=0.5, metadata={"help": "Non-max suppression IoU (class-wise)."})

    def __post_init__(self):
        if self.model_type not in MODEL_RECIPES:
            raise HfdlError(f"--model_type '{self.model_type}' is unknown: use yolo, or transformers with a transformers detector id")
        if self.box_loss not in ("ciou", "giou"):
            raise HfdlError(f"--box_loss '{self.box_loss}' is unknown: use ciou or giou")
        if not 0 <= self.score_threshold < 1 or not 0 < self.iou_threshold <= 1:
            raise HfdlError("--score_threshold must be in [0, 1) and --iou_threshold in (0, 1]")


@dataclass
class DetectionDataArguments:
    dataset_name: str | None = field(default=None, metadata={"help": "Hub dataset id (image + objects, as cppe-5), a saved dataset or a folder."})
    dataset_config_name: str | None = field(default=None, metadata={"help": "Hub dataset configuration."})
    train_dir: str | None = field(default=None, metadata={"help": "An imagefolder with metadata.jsonl objects, or a YOLO folder (images/, labels/)."})
    validation_dir: str | None = field(default=None, metadata={"help": "The same for evaluation."})
    train_annotations: str | None = field(default=None, metadata={"help": "COCO json of the training images."})
    train_images: str | None = field(default=None, metadata={"help": "Folder of the images the COCO json names."})
    validation_annotations: str | None = field(default=None, metadata={"help": "COCO json for evaluation."})
    validation_images: str | None = field(default=None, metadata={"help": "Its images."})
    label_names: str | None = field(default=None, metadata={"help": "Comma list of class names (default: the dataset's, else the ids)."})
    train_val_split: float = field(default=0.15, metadata={"help": "Holdout fraction when there is no validation source."})
    image_size: int = field(default=160, metadata={"help": "Square training input size (pixels)."})
    eval_image_size: int | None = field(
        default=None,
        metadata={
            "help": "Square size the detector evaluates and runs at (saved as its image_size: detect and the Space resize to it). Default: for the yolo type "
            f"{FIXRES_RATIO}x --image_size rounded to 32 (224 for 160: its crops show objects larger in training, FixRes); for a transformers detector --image_size."
        },
    )
    max_train_samples: int | None = field(default=None, metadata={"help": "Use only the first N training images."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Use only the first N evaluation images."})
    hflip: float = field(default=0.5, metadata={"help": "Horizontal flip probability."})
    crop: float = field(default=0.3, metadata={"help": "Probability of a random scale/crop (boxes follow)."})
    color_jitter: float = field(default=0.2, metadata={"help": "Brightness, contrast and saturation jitter strength (0: off)."})
    hue: float = field(
        default=0.0,
        metadata={
            "help": "Hue jitter (0: off, the default: the items are tinted already, and the HSV round trip costs more than the rest of the augmentation)."
        },
    )

    def run_size(self, kind: str) -> int:
        """The size the detector evaluates and runs at (`fixres_size`): a transformers detector is told one size."""
        return fixres_size(self.image_size, self.eval_image_size, one_size=kind == "transformers")

    def __post_init__(self):
        sources = (self.dataset_name, self.train_dir, self.validation_dir, self.train_annotations, self.validation_annotations)
        self.embedded_default = not any(sources)
        check_square_sizes(self.image_size, self.eval_image_size)
        for name in ("max_train_samples", "max_eval_samples"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise HfdlError(f"--{name} must be >= 1, got {value}")


@dataclass
class DetectionTrainingArguments(TrainingArguments):
    """The shared loop's arguments with the detector's defaults."""

    default_epochs = 2  # 1,000 steps of 16 over 8,000 composites: more distinct items beat more passes over fewer

    output_dir: str = field(default="outputs/detector", metadata={"help": "Where the detector, results and checkpoints go."})
    per_device_train_batch_size: int = field(default=16, metadata={"help": "Images per batch."})
    per_device_eval_batch_size: int = field(
        default=8,
        metadata={"help": "Images per evaluation batch (8: the default detector's forward at 224 px 1.46x faster per image than at 32 on 2 CPU cores)."},
    )
    learning_rate: float | None = field(
        default=None, metadata={"help": "Peak learning rate (AdamW). Default: 2e-3 for yolo, 5e-5 for transformers detectors (their example's)."}
    )
    weight_decay: float | None = field(
        default=None, metadata={"help": "AdamW weight decay (not on norms and biases). Default: 0.05 for yolo, 1e-4 for transformers detectors."}
    )

    warmup_ratio: float = field(default=0.05, metadata={"help": "Fraction of steps for linear warmup."})
    max_grad_norm: float | None = field(default=10.0, metadata={"help": "Gradient clipping norm."})
