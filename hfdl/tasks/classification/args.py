"""Arguments of scripts/finetune.py: model and strategy, data, and the loop's best measured recipe."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from hfdl.core.labelled_images import ImageDataArguments
from hfdl.core.training import TrainingArguments
from hfdl.errors import HfdlError
from hfdl.tasks.classification.model import STRATEGIES

# The embedded offline default: what `accelerate launch scripts/finetune.py` runs with no data arguments.
EMBEDDED_DEFAULT = {"dataset_name": "fashion_mnist", "max_train_samples": 10000, "image_size": 64}


@dataclass
class ModelArguments:
    model_name_or_path: str = field(
        default="tf_efficientnet_lite0",
        metadata={"help": "Local folder, offline backbone (tf_efficientnet_lite0, mobilenetv2_100), Hub id (timm/resnet50.a1_in1k) or timm name."},
    )
    strategy: str = field(default="compare", metadata={"help": "feature | finetune | scratch | compare."})
    compare_strategies: str = field(
        default="feature,finetune", metadata={"help": "Strategies run by --strategy compare (add scratch for the no-pretraining baseline)."}
    )
    unfreeze: int | None = field(default=None, metadata={"help": "finetune: train only the last N backbone stages (+ head); default all."})
    backbone_lr_scale: float = field(default=0.5, metadata={"help": "finetune: backbone learning rate = learning_rate x this."})
    head: str = field(default="linear", metadata={"help": "linear | mlp classifier head."})
    head_hidden_size: int = field(default=512, metadata={"help": "Hidden units of the mlp head."})
    head_dropout: float = field(default=0.0, metadata={"help": "Dropout before the head's last layer."})
    head_epochs: int = field(default=30, metadata={"help": "feature: epochs over the cached features (cheap)."})
    head_learning_rate: float = field(default=1e-3, metadata={"help": "feature: head learning rate."})
    head_weight_decay: float = field(
        default=1.0, metadata={"help": "feature: head weight decay (a linear probe wants strong L2: 0.858 vs 0.847 at 0.05 on the default)."}
    )
    channels_last: bool = field(default=True, metadata={"help": "channels_last memory format (faster convolutions)."})
    feature_cache_dir: str | None = field(default=None, metadata={"help": "Cache of frozen-backbone features (default $HF_HOME/hfdl/features)."})

    def __post_init__(self):
        if self.strategy not in (*STRATEGIES, "compare"):
            raise HfdlError(f"--strategy '{self.strategy}' is unknown: use feature, finetune, scratch or compare")
        bad = [s for s in self.strategies if s not in STRATEGIES]
        if bad:
            raise HfdlError(f"--compare_strategies has unknown {bad}: use a comma list of feature, finetune, scratch")
        if self.head not in ("linear", "mlp"):
            raise HfdlError(f"--head '{self.head}' is unknown: use linear or mlp")
        if self.backbone_lr_scale <= 0:
            raise HfdlError(f"--backbone_lr_scale must be > 0, got {self.backbone_lr_scale}")

    @property
    def strategies(self) -> list[str]:
        if self.strategy != "compare":
            return [self.strategy]
        return [s.strip() for s in self.compare_strategies.split(",") if s.strip()]


@dataclass
class DataArguments(ImageDataArguments):
    """Labelled images, with the embedded default of `finetune.py` (10,000 Fashion-MNIST images at 64 px)."""

    embedded_defaults: ClassVar[dict] = EMBEDDED_DEFAULT


@dataclass
class ClassificationTrainingArguments(TrainingArguments):
    """The shared loop's arguments with the transfer-learning defaults (the embedded default's recipe)."""

    output_dir: str = field(default="outputs/finetune", metadata={"help": "Where the strategies' models, results and checkpoints go."})
