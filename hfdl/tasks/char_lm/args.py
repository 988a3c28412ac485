"""Arguments of scripts/train_char_lm.py: model and comparison, text, samples, and the loop's best measured recipe."""

from __future__ import annotations

from dataclasses import dataclass, field

from hfdl.core.training import TrainingArguments
from hfdl.errors import HfdlError
from hfdl.tasks.char_lm.char_lm import CELL_TYPES, CharLMConfig
from hfdl.tasks.char_lm.model import check_sampling


@dataclass
class CharLMArguments:
    """Model and comparison flags of scripts/train_char_lm.py."""

    model_type: str = field(default="gru", metadata={"help": "rnn (tanh) | lstm | gru (default: the best cell at 15 min on austen)."})
    compare: str | None = field(default=None, metadata={"help": "Comma list of cell types trained side by side, e.g. rnn,lstm,gru."})
    num_layers: int = field(default=1, metadata={"help": "Stacked recurrent layers (default: one layer 448 wide, the best measured at 14.7 min on austen)."})
    hidden_size: int = field(default=448, metadata={"help": "Units per recurrent layer."})
    embedding_dim: int = field(default=64, metadata={"help": "Character embedding size."})
    dropout: float = field(default=0.0, metadata={"help": "Dropout on embeddings, between layers and before the output layer."})
    tie_weights: bool = field(default=False, metadata={"help": "Share the embedding with the output layer (needs embedding_dim == hidden_size)."})
    seq_len: int = field(default=128, metadata={"help": "Truncated BPTT length (characters per window)."})
    max_steps: int | None = field(default=None, metadata={"help": "Stop after this many optimizer steps (same as --max_train_steps)."})
    eval_streams: int = field(default=16, metadata={"help": "Parallel streams the validation text is cut into for evaluation (state carried)."})

    def __post_init__(self):
        bad = [t for t in self.model_types if t not in CELL_TYPES]
        if bad:
            flag = "--compare" if self.compare else "--model_type"
            raise HfdlError(f"{flag} has unknown cell type {bad[0]!r}: use rnn, lstm or gru (comma-separated for --compare)")
        if len(set(self.model_types)) != len(self.model_types):
            raise HfdlError(f"--compare lists a cell type twice ({self.compare}): give each once")
        for name in ("seq_len", "eval_streams"):
            if getattr(self, name) < 1:
                raise HfdlError(f"--{name} must be >= 1, got {getattr(self, name)}")
        if self.max_steps is not None and self.max_steps < 1:
            raise HfdlError(f"--max_steps must be >= 1, got {self.max_steps}")
        self.config_for("lstm" if not self.compare else self.model_types[0], vocab_size=2)  # validate sizes early

    @property
    def model_types(self) -> list[str]:
        if self.compare:
            return [t.strip() for t in self.compare.split(",") if t.strip()]
        return [self.model_type]

    def config_for(self, cell_type: str, vocab_size: int) -> CharLMConfig:
        return CharLMConfig(
            cell_type=cell_type,
            vocab_size=vocab_size,
            embedding_dim=self.embedding_dim,
            hidden_size=self.hidden_size,
            num_layers=self.num_layers,
            dropout=self.dropout,
            tie_word_embeddings=self.tie_weights,
            unk_token_id=0,
        )


@dataclass
class TextDataArguments:
    """Where the text comes from."""

    train_file: str | None = field(default=None, metadata={"help": "Local text file."})
    dataset_name: str | None = field(default=None, metadata={"help": "Hub text dataset id (or a `save_to_disk` folder)."})
    dataset_config_name: str | None = field(default=None, metadata={"help": "Hub dataset configuration."})
    text_column: str | None = field(default=None, metadata={"help": "Text column of --dataset_name (default: 'text' or the first string column)."})
    corpus: str | None = field(default=None, metadata={"help": "Offline corpus: austen | kjv (Debian packages, see ASSETS)."})
    encoding: str = field(default="utf-8", metadata={"help": "Encoding of --train_file."})
    validation_split_percentage: float = field(default=10.0, metadata={"help": "The last N% of the text is the validation set (contiguous)."})
    max_train_chars: int | None = field(default=None, metadata={"help": "Use only the first N characters of the training part."})


@dataclass
class SamplingArguments:
    """Samples written at every evaluation and at the end."""

    sample_prompt: str = field(default="\n", metadata={"help": "Prompt of the samples."})
    sample_length: int = field(default=300, metadata={"help": "Characters per sample."})
    temperature: float = field(default=0.8, metadata={"help": "Sampling temperature of the samples (0 = greedy)."})
    top_k: int | None = field(default=None, metadata={"help": "Top-k filter of the samples (0/None = off)."})
    top_p: float | None = field(default=None, metadata={"help": "Nucleus filter of the samples, in (0, 1]."})

    def __post_init__(self):
        check_sampling(self.temperature, self.top_k, self.top_p, self.sample_length)


@dataclass
class CharLMTrainingArguments(TrainingArguments):
    """The shared loop's arguments with the char-LM recipe measured best on `austen` (README: GRU 1.778
    bits/char in 15 min): a linear decay from a high peak, fitted to `--time_budget_minutes` when given."""

    default_epochs = 2

    output_dir: str = field(default="outputs/char_lm", metadata={"help": "Where the model folder(s), results and checkpoints go."})
    per_device_train_batch_size: int = field(default=32, metadata={"help": "Parallel text streams per device (the BPTT batch)."})
    learning_rate: float = field(default=5e-3, metadata={"help": "Peak learning rate (AdamW; 5e-3 measured best for the default GRU at 14.7 min on austen)."})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay (not on norms and biases)."})
    warmup_ratio: float = field(default=0.02, metadata={"help": "Fraction of steps for linear warmup."})
    lr_scheduler_type: str = field(default="linear", metadata={"help": "cosine | linear | constant_with_warmup | constant."})
    eval_steps: int | None = field(default=300, metadata={"help": "Also evaluate (and write a sample) every N optimizer steps."})
