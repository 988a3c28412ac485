"""Arguments of scripts/train_text_classifier.py: model and comparison, data and tokenizer, and the loop's best measured recipe."""

from __future__ import annotations

from dataclasses import dataclass, field

from hfdl.core.training import TrainingArguments
from hfdl.errors import HfdlError
from hfdl.tasks.text_classification.text_rnn import CELL_TYPES, TextRNNConfig

DIRECTIONS = "directions"  # --compare's default: --model_type one-way and bidirectional
NO_COMPARISON = ("none", "")


def variant_name(cell_type: str, bidirectional: bool) -> str:
    """`gru`, `bigru`, `lstm`, `bilstm`, ...: a run's variants and their folders."""
    return f"bi{cell_type}" if bidirectional else cell_type


def parse_variant(name: str) -> tuple[str, bool]:
    """`bigru` -> ("gru", True); a one-line error for anything else."""
    cell = name[2:] if name.startswith("bi") else name
    if cell not in CELL_TYPES:
        raise HfdlError(f"--compare has unknown model {name!r}: use rnn, lstm, gru, or birnn, bilstm, bigru (bidirectional), comma-separated")
    return cell, name.startswith("bi")


@dataclass
class TextClassifierArguments:
    """Model and comparison flags of scripts/train_text_classifier.py."""

    model_type: str = field(default="gru", metadata={"help": "rnn (tanh) | lstm | gru."})
    bidirectional: bool = field(default=False, metadata={"help": "Also read each text backwards (a second direction); with --compare none."})
    compare: str = field(
        default=DIRECTIONS,
        metadata={
            "help": "Models trained side by side, plus a TF-IDF + logistic-regression baseline: 'directions' (--model_type one-way and "
            "bidirectional), a comma list such as gru,bigru,lstm,bilstm, or 'none' for the one model of --model_type / --bidirectional."
        },
    )
    num_layers: int = field(default=1, metadata={"help": "Stacked recurrent layers."})
    hidden_size: int = field(default=128, metadata={"help": "Units per direction of each recurrent layer."})
    embedding_dim: int = field(default=128, metadata={"help": "Token embedding size."})
    pooling: str = field(default="mean", metadata={"help": "last | max | mean over the real (unpadded) positions."})
    dropout: float = field(default=0.3, metadata={"help": "Dropout on the embeddings, between layers and before the classifier."})
    recurrent_dropout: float = field(
        default=0.0,
        metadata={
            "help": "Per-sequence dropout of the recurrent state, the same units at every step (Gal & Ghahramani 2015); > 0 trains on a slower per-step loop."
        },
    )
    tokenizer: str = field(default="word", metadata={"help": "word | char: the tokens of the `tokenizers` vocabulary trained on the training split."})
    vocab_size: int = field(default=20000, metadata={"help": "Largest vocabulary (the most frequent tokens; [PAD] and [UNK] included)."})
    min_frequency: int = field(default=2, metadata={"help": "Tokens seen fewer times in training become [UNK]."})
    lowercase: bool = field(default=True, metadata={"help": "Lower-case the text before tokenizing."})
    max_length: int | None = field(default=None, metadata={"help": "Tokens kept per text (default: 256 words or 1024 characters)."})

    def __post_init__(self):
        if self.model_type not in CELL_TYPES:
            raise HfdlError(f"--model_type '{self.model_type}' is unknown: use one of {', '.join(CELL_TYPES)}")
        if self.bidirectional and self.compare == DIRECTIONS:
            raise HfdlError("--bidirectional trains one bidirectional model: add --compare none (the default compares one-way and bidirectional)")
        names = self.variants
        if len(set(names)) != len(names):
            raise HfdlError(f"--compare lists a model twice ({self.compare}): give each once")
        if self.tokenizer not in ("word", "char"):
            raise HfdlError(f"--tokenizer '{self.tokenizer}' is unknown: use word or char")
        for name in ("vocab_size", "min_frequency"):
            if getattr(self, name) < 1:
                raise HfdlError(f"--{name} must be >= 1, got {getattr(self, name)}")
        if self.vocab_size < 3:
            raise HfdlError(f"--vocab_size must leave room for tokens besides [PAD] and [UNK] (>= 3), got {self.vocab_size}")
        if self.max_length is not None and self.max_length < 1:
            raise HfdlError(f"--max_length must be >= 1, got {self.max_length}")
        self.config_for(names[0], vocab_size=self.vocab_size, label_names=["a", "b"])  # validate sizes and pooling early

    @property
    def compared(self) -> bool:
        return self.compare.strip().lower() not in NO_COMPARISON

    @property
    def variants(self) -> list[str]:
        """The models this run trains, by name (`gru`, `bigru`, ...)."""
        if not self.compared:
            return [variant_name(self.model_type, self.bidirectional)]
        if self.compare == DIRECTIONS:
            return [variant_name(self.model_type, False), variant_name(self.model_type, True)]
        names = [n.strip() for n in self.compare.split(",") if n.strip()]
        for name in names:
            parse_variant(name)
        return names

    @property
    def tokens_per_text(self) -> int:
        return self.max_length or (256 if self.tokenizer == "word" else 1024)

    def config_for(self, variant: str, vocab_size: int, label_names: list[str], pad_token_id: int = 0) -> TextRNNConfig:
        cell_type, bidirectional = parse_variant(variant)
        return TextRNNConfig(
            cell_type=cell_type,
            vocab_size=vocab_size,
            embedding_dim=self.embedding_dim,
            hidden_size=self.hidden_size,
            num_layers=self.num_layers,
            bidirectional=bidirectional,
            pooling=self.pooling,
            dropout=self.dropout,
            recurrent_dropout=self.recurrent_dropout,
            pad_token_id=pad_token_id,
            id2label=dict(enumerate(label_names)),
            label2id={name: i for i, name in enumerate(label_names)},
        )


@dataclass
class TextDataArguments:
    """Where the labelled texts come from (transformers' text-classification example flags); none: the offline Austen passages."""

    dataset_name: str | None = field(default=None, metadata={"help": "Hub dataset id with text and label columns (or a `save_to_disk` folder)."})
    dataset_config_name: str | None = field(default=None, metadata={"help": "Hub dataset configuration."})
    train_file: str | None = field(default=None, metadata={"help": "Local CSV or JSON-lines file with text and label columns."})
    validation_file: str | None = field(default=None, metadata={"help": "Local CSV / JSON-lines validation file (default: a split of --train_file)."})
    test_file: str | None = field(default=None, metadata={"help": "Local CSV / JSON-lines test file (optional)."})
    text_column: str = field(default="text", metadata={"help": "Column holding the text."})
    label_column: str = field(default="label", metadata={"help": "Column holding the label (a ClassLabel, strings or integers)."})
    validation_split_percentage: float = field(
        default=10.0, metadata={"help": "Without a validation split: this percentage of the training rows, drawn per class with --seed."}
    )
    sentences_per_passage: int = field(default=4, metadata={"help": "Offline Austen default: sentences per passage to classify."})

    def __post_init__(self):
        if self.dataset_name and self.train_file:
            raise HfdlError("give one data source: --dataset_name or --train_file (with --validation_file / --test_file), not both")
        if (self.validation_file or self.test_file) and not self.train_file:
            raise HfdlError("--validation_file / --test_file need --train_file: pass the training file too")
        if not 0 < self.validation_split_percentage < 100:
            raise HfdlError(f"--validation_split_percentage must be in (0, 100), got {self.validation_split_percentage}")
        if self.sentences_per_passage < 1:
            raise HfdlError(f"--sentences_per_passage must be >= 1, got {self.sentences_per_passage}")

    @property
    def offline_default(self) -> bool:
        return not (self.dataset_name or self.train_file)


@dataclass
class TextClassifierTrainingArguments(TrainingArguments):
    """The shared loop's arguments with the recipe measured best on the offline Austen passages (README)."""

    default_epochs = 4

    output_dir: str = field(default="outputs/text_classifier", metadata={"help": "Where the model folder(s), results and checkpoints go."})
    per_device_train_batch_size: int = field(default=64, metadata={"help": "Texts per batch per device (length-bucketed)."})
    per_device_eval_batch_size: int = field(default=256, metadata={"help": "Texts per evaluation batch per device."})
    learning_rate: float = field(default=5e-3, metadata={"help": "Peak learning rate (AdamW)."})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay."})
    warmup_ratio: float = field(default=0.05, metadata={"help": "Fraction of steps for linear warmup."})
    lr_scheduler_type: str = field(default="linear", metadata={"help": "cosine | linear | constant_with_warmup | constant."})
