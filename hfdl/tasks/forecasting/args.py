"""Arguments of scripts/train_forecaster.py: the model (or models compared), the series and windows, the recipe."""

from __future__ import annotations

from dataclasses import dataclass, field

from hfdl.core.training import TrainingArguments
from hfdl.errors import HfdlError
from hfdl.tasks.forecasting.data import FILLS
from hfdl.tasks.forecasting.model import MODEL_TYPES, RECURRENT

LOSSES = ("mae", "mse", "huber")


def variant(name: str) -> tuple[str, bool]:
    """A --compare entry: a model type, or `bi` + a recurrent type (bigru: a bidirectional GRU)."""
    if name in MODEL_TYPES:
        return name, False
    if name.startswith("bi") and name[2:] in RECURRENT:
        return name[2:], True
    raise HfdlError(f"--compare entry '{name}' is unknown: use {', '.join(MODEL_TYPES)} or bi + a recurrent type (bigru, bilstm, birnn)")


@dataclass
class ForecastModelArguments:
    """The network (or networks side by side) of scripts/train_forecaster.py."""

    model_type: str = field(default="gru", metadata={"help": f"One of {', '.join(MODEL_TYPES)} (default: the best measured, a bidirectional GRU)."})
    compare: str | None = field(default=None, metadata={"help": "Comma list trained side by side on the same windows, e.g. mlp,conv1d,gru,bigru,lstm."})
    num_layers: int = field(default=1, metadata={"help": "Stacked recurrent layers (conv blocks, hidden layers for mlp)."})
    hidden_size: int = field(default=64, metadata={"help": "Units per recurrent layer (channels for conv1d, units for mlp)."})
    bidirectional: bool = field(
        default=True,
        metadata={"help": "Read the past window both ways (recurrent types; --no_bidirectional: forward only). --compare names say it: gru, bigru."},
    )
    dropout: float = field(default=0.3, metadata={"help": "Dropout on each recurrent layer's inputs (one mask per sequence) and before the head."})
    recurrent_dropout: float = field(
        default=0.0, metadata={"help": "Dropout of the hidden state inside the recurrence, one mask per sequence (Gal 2015); steps the cell in Python."}
    )
    residual: bool = field(default=True, metadata={"help": "Predict the change from the last observed target value (starts at the naive forecast)."})
    loss: str = field(default="mae", metadata={"help": f"Training loss on the normalised target: {', '.join(LOSSES)}."})

    def __post_init__(self):
        for name in self.variants:
            variant(name)
        if len(set(self.variants)) != len(self.variants):
            raise HfdlError(f"--compare lists a model twice ({self.compare}): give each once")
        if self.num_layers < 1 or self.hidden_size < 1:
            raise HfdlError("--num_layers and --hidden_size must be >= 1")
        for name in ("dropout", "recurrent_dropout"):
            if not 0 <= getattr(self, name) < 1:
                raise HfdlError(f"--{name} must be in [0, 1), got {getattr(self, name)}")
        if self.loss not in LOSSES:
            raise HfdlError(f"--loss '{self.loss}' is unknown: use one of {', '.join(LOSSES)}")

    @property
    def variants(self) -> list[str]:
        if self.compare:
            return [v.strip() for v in self.compare.split(",") if v.strip()]
        return [("bi" + self.model_type) if self.bidirectional and self.model_type in RECURRENT else self.model_type]


@dataclass
class SeriesArguments:
    """The series, its columns, the windows and the chronological split."""

    series: str = field(default="tmy3_greensboro", metadata={"help": "Offline series used without --train_file / --dataset_name (see ASSETS)."})
    train_file: str | None = field(default=None, metadata={"help": "CSV / TSV / Parquet / JSON-lines file, one row per time step."})
    dataset_name: str | None = field(
        default=None, metadata={"help": "Hub dataset id (or a save_to_disk folder): rows are time steps, or GluonTS rows (start, target)."}
    )
    dataset_config_name: str | None = field(default=None, metadata={"help": "Hub dataset configuration."})
    dataset_split: str = field(default="train", metadata={"help": "Split of --dataset_name holding the series."})
    series_index: int = field(default=0, metadata={"help": "GluonTS-style datasets: which row (series) to forecast."})
    frequency: str | None = field(default=None, metadata={"help": "GluonTS-style datasets: pandas frequency of `start` (e.g. 1h) to build times."})
    time_column: str | None = field(
        default=None, metadata={"help": f"Time column (default: the first of {', '.join(('time', 'date', 'datetime', 'timestamp', 'ds'))} present)."}
    )
    target: str | None = field(default=None, metadata={"help": "Column to forecast (default: the offline series' or the only numeric column)."})
    features: str | None = field(default=None, metadata={"help": "Comma list of input columns (default: every numeric column); the target is always one."})
    fill: str = field(default="none", metadata={"help": f"Missing values: {', '.join(FILLS)} (none: an error naming the rows)."})
    lookback: int = field(default=72, metadata={"help": "Past steps the model reads."})
    horizon: int = field(default=24, metadata={"help": "Steps ahead forecast at once (metrics per step)."})
    stride: int = field(default=1, metadata={"help": "Steps between consecutive training windows."})
    season: int | None = field(default=None, metadata={"help": "Steps per season for seasonal naive and MASE (default: the offline series', else 1)."})
    validation_fraction: float = field(default=0.15, metadata={"help": "The part after the training rows (chronological)."})
    test_fraction: float = field(default=0.15, metadata={"help": "The last rows (chronological)."})

    def __post_init__(self):
        if self.fill not in FILLS:
            raise HfdlError(f"--fill '{self.fill}' is unknown: use one of {', '.join(FILLS)}")
        for name in ("lookback", "horizon", "stride"):
            if getattr(self, name) < 1:
                raise HfdlError(f"--{name} must be >= 1, got {getattr(self, name)}")
        if self.season is not None and self.season < 1:
            raise HfdlError(f"--season must be >= 1, got {self.season}")
        if not (0 < self.validation_fraction < 1 and 0 < self.test_fraction < 1 and self.validation_fraction + self.test_fraction < 0.9):
            raise HfdlError("--validation_fraction and --test_fraction must be in (0, 1) and leave at least 10% for training")
        if self.train_file and self.dataset_name:
            raise HfdlError("pass --train_file or --dataset_name, not both")

    @property
    def embedded_default(self) -> bool:
        return not (self.train_file or self.dataset_name)


@dataclass
class ForecastTrainingArguments(TrainingArguments):
    """The shared loop's arguments with the recipe measured best on the offline weather year (README)."""

    default_epochs = 20

    output_dir: str = field(default="outputs/forecaster", metadata={"help": "Where the model folder(s), results and checkpoints go."})
    per_device_train_batch_size: int = field(default=128, metadata={"help": "Windows per batch per device."})
    per_device_eval_batch_size: int = field(default=1024, metadata={"help": "Windows per evaluation batch."})
    learning_rate: float = field(default=3e-3, metadata={"help": "Peak learning rate (AdamW)."})
    weight_decay: float = field(default=0.05, metadata={"help": "AdamW weight decay (not on norms and biases)."})
    warmup_ratio: float = field(default=0.05, metadata={"help": "Fraction of steps for linear warmup."})
