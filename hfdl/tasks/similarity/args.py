"""Arguments of scripts/train_embedding.py: the embedding network, the metric-learning loss, the data and the
loop's measured defaults."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from hfdl.core.labelled_images import ImageDataArguments
from hfdl.core.training import TrainingArguments
from hfdl.errors import HfdlError
from hfdl.tasks.similarity.losses import LOSSES, MINERS

# The embedded offline default: the whole Fashion-MNIST training split, evaluated on its 10,000 test images.
EMBEDDED_DEFAULT = {"dataset_name": "fashion_mnist", "image_size": 64}


@dataclass
class EmbeddingArguments:
    model_name_or_path: str = field(
        default="tf_efficientnet_lite0",
        metadata={"help": "The backbone: an offline one (tf_efficientnet_lite0, mobilenetv2_100), a timm name or a timm Hub id (timm/resnet50.a1_in1k)."},
    )
    pretrained: bool = field(default=True, metadata={"help": "Start the backbone from its pretrained weights (false: from scratch)."})
    embedding_dim: int = field(default=128, metadata={"help": "Size of the L2-normalised embedding (FaceNet: 128)."})
    loss: str = field(default="triplet", metadata={"help": f"{' | '.join(LOSSES)} (siamese pairs)."})
    margin: float | None = field(
        default=None, metadata={"help": "Triplet margin on squared distances (default 0.2, FaceNet) or the contrastive negative margin (default 1.0)."}
    )
    miner: str = field(
        default="all",
        metadata={"help": f"In-batch mining: {' | '.join(MINERS)} (semihard: triplets only). all (batch-all, nonzero triplets averaged): measured best here."},
    )
    classes_per_batch: int = field(default=10, metadata={"help": "P: classes in each batch."})
    samples_per_class: int = field(default=8, metadata={"help": "K: images of each class in each batch (batch size = P x K)."})
    holdout_classes: str | None = field(
        default=None, metadata={"help": "Comma list of class names or ids kept out of training (evaluated as unseen classes: the one-shot setting)."}
    )
    backbone_lr_scale: float = field(default=0.5, metadata={"help": "Backbone learning rate = learning_rate x this (the projection head at learning_rate)."})
    n_way: int = field(default=5, metadata={"help": "Classes per one-shot episode."})
    episodes: int = field(default=1000, metadata={"help": "Seeded one-shot episodes."})
    verification_pairs: int = field(default=2000, metadata={"help": "Seeded same-class and as many different-class pairs for verification."})
    projection: str = field(default="tsne", metadata={"help": "embeddings.png: tsne | pca (2-D projection of validation embeddings)."})
    channels_last: bool = field(default=True, metadata={"help": "channels_last memory format (faster convolutions)."})
    feature_cache_dir: str | None = field(default=None, metadata={"help": "Cache of the untrained backbone's features (default $HF_HOME/hfdl/features)."})

    def __post_init__(self):
        if self.loss not in LOSSES:
            raise HfdlError(f"--loss '{self.loss}' is unknown: use {' or '.join(LOSSES)}")
        if self.miner not in MINERS:
            raise HfdlError(f"--miner '{self.miner}' is unknown: use {', '.join(MINERS)}")
        if self.loss == "contrastive" and self.miner == "semihard":
            raise HfdlError("--miner semihard is defined for triplets: use --miner hard or all with --loss contrastive")
        if self.embedding_dim < 2:
            raise HfdlError(f"--embedding_dim must be >= 2, got {self.embedding_dim}")
        if self.n_way < 2:
            raise HfdlError(f"--n_way must be >= 2, got {self.n_way}")
        if self.projection not in ("tsne", "pca"):
            raise HfdlError(f"--projection '{self.projection}' is unknown: use tsne or pca")
        if self.backbone_lr_scale <= 0:
            raise HfdlError(f"--backbone_lr_scale must be > 0, got {self.backbone_lr_scale}")


@dataclass
class EmbeddingDataArguments(ImageDataArguments):
    """Labelled images from every source finetune.py reads; the embedded default is Fashion-MNIST at 64 px."""

    embedded_defaults: ClassVar[dict] = EMBEDDED_DEFAULT

    scale_min: float = field(
        default=1.0,
        metadata={"help": "Random resized crop: smallest area fraction (1.0: no crop; measured better for retrieval here: precision@1 0.8978 vs 0.8916)."},
    )


@dataclass
class EmbeddingTrainingArguments(TrainingArguments):
    """The shared loop's arguments with the embedding defaults (the batch size is P x K, set by the sampler)."""

    default_epochs = 1.25  # 938 steps of 80 images: precision@1 0.90 in under 10 minutes on 2 cores (1 epoch: 0.8978)

    output_dir: str = field(default="outputs/embedding", metadata={"help": "Where the embedding model, results and checkpoints go."})
    per_device_train_batch_size: int | None = field(
        default=None, metadata={"help": "Not used: a batch is --classes_per_batch x --samples_per_class images (per process)."}
    )
    per_device_eval_batch_size: int = field(default=128, metadata={"help": "Images per batch when embedding the evaluation split."})
    learning_rate: float = field(
        default=4e-3, metadata={"help": "Peak learning rate of the projection head (AdamW); the backbone's is scaled (measured: 4e-3 > 2e-3 > 1e-3)."}
    )
    weight_decay: float = field(default=0.05, metadata={"help": "AdamW weight decay (not on norms and biases)."})
    warmup_ratio: float = field(default=0.05, metadata={"help": "Fraction of steps for linear warmup."})

    def __post_init__(self):
        if self.per_device_train_batch_size is not None:
            raise HfdlError("--per_device_train_batch_size does not apply here: a batch is --classes_per_batch x --samples_per_class images; set those")
        super().__post_init__()
