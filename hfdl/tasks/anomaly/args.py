"""Arguments of scripts/train_anomaly.py: the one-class protocol, the two methods and their defaults."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from hfdl.core.labelled_images import ImageDataArguments
from hfdl.core.training import TrainingArguments
from hfdl.errors import HfdlError

METHODS = ("knn", "autoencoder")
SCORES = ("mse", "ssim")

# The embedded offline default: Fashion-MNIST, one class normal at a time, the whole test split scored.
EMBEDDED_DEFAULT = {"dataset_name": "fashion_mnist", "image_size": 64}


@dataclass
class AnomalyArguments:
    normal_class: str | None = field(
        default=None, metadata={"help": "The normal class (name or id): trained on alone, the rest of the test split is anomalous."}
    )
    all_classes: bool = field(default=False, metadata={"help": "Run the protocol with every class as the normal one and report the mean."})
    method: str = field(default="compare", metadata={"help": "knn (pretrained features) | autoencoder (reconstruction error) | compare (both)."})
    model_name_or_path: str = field(
        default="tf_efficientnet_lite0", metadata={"help": "knn: the frozen pretrained backbone (offline Lite0 / MobileNetV2, a timm name or Hub id)."}
    )
    k: int = field(default=2, metadata={"help": "knn: the score is the mean cosine distance to the k nearest normal training images."})
    score: str = field(default="mse", metadata={"help": "autoencoder: mse | ssim (1 - SSIM) between an image and its reconstruction."})
    latent_dim: int = field(default=32, metadata={"help": "autoencoder: size of the code."})
    base_channels: int = field(default=32, metadata={"help": "autoencoder: channels of the first convolution (doubling per stage)."})
    hidden_dim: int = field(default=256, metadata={"help": "autoencoder: units of the layer between the convolutions and the code (0: none)."})
    noise_std: float = field(default=0.0, metadata={"help": "autoencoder: Gaussian input noise while training (a denoising autoencoder)."})
    autoencoder_image_size: int | None = field(default=None, metadata={"help": "autoencoder: square size (default: the images' own, 28 for Fashion-MNIST)."})
    feature_cache_dir: str | None = field(default=None, metadata={"help": "Cache of the backbone's features (default $HF_HOME/hfdl/features)."})

    def __post_init__(self):
        if self.method not in (*METHODS, "compare"):
            raise HfdlError(f"--method '{self.method}' is unknown: use knn, autoencoder or compare")
        if self.score not in SCORES:
            raise HfdlError(f"--score '{self.score}' is unknown: use mse or ssim")
        if self.k < 1:
            raise HfdlError(f"--k must be >= 1, got {self.k}")
        if self.latent_dim < 1 or self.base_channels < 1 or self.hidden_dim < 0 or self.noise_std < 0:
            raise HfdlError("--latent_dim and --base_channels must be >= 1, --hidden_dim and --noise_std >= 0")
        if (self.normal_class is None) == (not self.all_classes):
            raise HfdlError("pass --normal_class NAME (one class normal) or --all_classes (each class in turn), exactly one of them")

    @property
    def methods(self) -> list[str]:
        return list(METHODS) if self.method == "compare" else [self.method]


@dataclass
class AnomalyDataArguments(ImageDataArguments):
    """Labelled images from every source finetune.py reads; the embedded default is Fashion-MNIST (knn at 64 px)."""

    embedded_defaults: ClassVar[dict] = EMBEDDED_DEFAULT


@dataclass
class AnomalyTrainingArguments(TrainingArguments):
    """The shared loop's arguments for the autoencoder (one per normal class)."""

    default_epochs = 10

    output_dir: str = field(default="outputs/anomaly", metadata={"help": "Where the results, pictures, autoencoders and checkpoints go."})
    per_device_train_batch_size: int = field(default=64, metadata={"help": "autoencoder: images per batch."})
    per_device_eval_batch_size: int = field(default=256, metadata={"help": "Images per batch when scoring and caching features."})
    learning_rate: float = field(default=4e-3, metadata={"help": "autoencoder: peak learning rate (AdamW, cosine)."})
    weight_decay: float = field(default=0.0, metadata={"help": "autoencoder: AdamW weight decay."})
    warmup_ratio: float = field(default=0.05, metadata={"help": "Fraction of steps for linear warmup."})
