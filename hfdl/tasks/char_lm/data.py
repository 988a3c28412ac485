"""Text for character-level language models: sources, contiguous split, char tokenizer, stateful BPTT batches.

Sources: a local UTF-8 file (`--train_file`), a Hub dataset (`--dataset_name` + `--text_column`), or an offline
corpus (`--corpus austen|kjv`, see `hfdl.assets`). The split is contiguous, 90/10 (as nanoGPT's shakespeare_char):
the validation text is the end of the corpus, never interleaved with training text.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from hfdl.errors import HfdlError

if TYPE_CHECKING:
    from hfdl.tasks.char_lm.args import TextDataArguments

logger = logging.getLogger(__name__)

UNK_TOKEN = "<unk>"


# --------------------------------------------------------------------------------------------------
# Sources
# --------------------------------------------------------------------------------------------------


def read_text_file(path: str | Path, encoding: str = "utf-8") -> str:
    """Read a text file; a decoding error names the `--encoding` option."""
    path = Path(path)
    if not path.is_file():
        raise HfdlError(f"--train_file {path} does not exist: pass an existing UTF-8 text file")
    try:
        return path.read_text(encoding=encoding)
    except UnicodeDecodeError as err:
        raise HfdlError(
            f"--train_file {path} is not valid {encoding} (byte {err.start}: {err.reason}): pass its encoding with --encoding (e.g. --encoding latin-1)"
        ) from err
    except LookupError as err:
        raise HfdlError(f"--encoding '{encoding}' is not a known text encoding: use e.g. utf-8, latin-1 or cp1252") from err


def load_hub_text(dataset_name: str, text_column: str | None, config_name: str | None = None, split: str = "train") -> str:
    """Concatenate one column of a Hub (or local `datasets`) text dataset, rows joined by newlines."""
    import datasets

    try:
        if Path(dataset_name).is_dir() and (Path(dataset_name) / "dataset_dict.json").is_file():
            dsd = datasets.load_from_disk(dataset_name)
            ds = dsd[split] if split in dsd else dsd[next(iter(dsd))]
        else:
            ds = datasets.load_dataset(dataset_name, config_name, split=split)
    except (FileNotFoundError, ValueError, ConnectionError, OSError) as err:
        msg = str(err).splitlines()[0][:160] if str(err) else type(err).__name__
        raise HfdlError(f"could not load dataset '{dataset_name}' ({msg}): check the id (and internet), or use --train_file / --corpus austen") from err
    columns = ds.column_names
    if text_column is None:
        candidates = [c for c in columns if ds.features[c].dtype in ("string", "large_string")]
        if not candidates:
            raise HfdlError(f"dataset '{dataset_name}' has no text column ({columns}): pass --text_column")
        text_column = "text" if "text" in candidates else candidates[0]
    if text_column not in columns:
        raise HfdlError(f"--text_column '{text_column}' is not in dataset '{dataset_name}' (columns: {', '.join(columns)}): pass one of them")
    return "\n".join(t for t in ds[text_column] if t is not None)


def load_text(
    train_file: str | None = None,
    dataset_name: str | None = None,
    corpus: str | None = None,
    text_column: str | None = None,
    dataset_config_name: str | None = None,
    encoding: str = "utf-8",
) -> tuple[str, str]:
    """Exactly one source -> (text, human-readable source name)."""
    given = [n for n, v in (("--train_file", train_file), ("--dataset_name", dataset_name), ("--corpus", corpus)) if v]
    if len(given) != 1:
        raise HfdlError(
            f"give exactly one text source ({'got ' + ' and '.join(given) if given else 'got none'}): --train_file PATH, --dataset_name ID or --corpus austen|kjv"
        )
    if train_file:
        return read_text_file(train_file, encoding), f"file {train_file}"
    if corpus:
        from hfdl.assets import CORPORA, load_corpus

        if corpus not in CORPORA:
            raise HfdlError(f"--corpus '{corpus}' is unknown: use one of {', '.join(CORPORA)}")
        return load_corpus(corpus), f"corpus {corpus}"
    return load_hub_text(dataset_name, text_column, dataset_config_name), f"dataset {dataset_name}"


def split_text(text: str, validation_fraction: float = 0.1) -> tuple[str, str]:
    """Contiguous split: the first (1 - fraction) for training, the rest for validation."""
    if not 0 < validation_fraction < 1:
        raise HfdlError(f"--validation_split_percentage must give a fraction in (0, 1), got {validation_fraction}")
    cut = int(len(text) * (1 - validation_fraction))
    return text[:cut], text[cut:]


# --------------------------------------------------------------------------------------------------
# Tokenizer
# --------------------------------------------------------------------------------------------------


def build_char_tokenizer(train_text: str):
    """A `tokenizers`-based char-level tokenizer over the training text's characters (+ `<unk>` at id 0).

    Saved with `save_pretrained`, it loads with `AutoTokenizer.from_pretrained(folder)`.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    if not train_text:
        raise HfdlError("the training text is empty: give a longer --train_file / dataset")
    chars = sorted(set(train_text))
    vocab = {UNK_TOKEN: 0, **{c: i + 1 for i, c in enumerate(chars)}}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK_TOKEN))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")  # every character, newlines included
    tok.decoder = decoders.Fuse()  # characters join without spaces
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token=UNK_TOKEN, clean_up_tokenization_spaces=False)
    fast.model_input_names = ["input_ids"]
    return fast


def encode_text(text: str, vocab: dict[str, int], unk_id: int = 0) -> torch.Tensor:
    """Character ids of `text` (int64), identical to the tokenizer's, fast on millions of characters."""
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    uniq, inverse = np.unique(codes, return_inverse=True)
    table = np.array([vocab.get(chr(int(c)), unk_id) for c in uniq], dtype=np.int64)
    return torch.from_numpy(table[inverse].reshape(-1))


# --------------------------------------------------------------------------------------------------
# Stateful truncated-BPTT batches
# --------------------------------------------------------------------------------------------------


@dataclass
class BPTTLayout:
    """How one token stream is cut into parallel streams and windows."""

    num_streams: int  # per process
    seq_len: int
    num_processes: int = 1

    def windows(self, num_tokens: int) -> int:
        total_streams = self.num_streams * self.num_processes
        return (num_tokens // total_streams - 1) // self.seq_len


def stream_matrix(ids: torch.Tensor, num_streams: int) -> torch.Tensor:
    """(N,) -> (num_streams, N // num_streams): row s is the s-th contiguous slice of the text."""
    per = ids.numel() // num_streams
    return ids[: per * num_streams].view(num_streams, per)


def bptt_windows(ids: torch.Tensor, num_streams: int, seq_len: int, num_processes: int = 1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Stateful batches as tensors X, Y (num_items, num_streams, seq_len) and `first` (num_items,) bool.

    The text is split into `num_streams * num_processes` contiguous streams; window k of stream s is
    `streams[s, k*T : (k+1)*T]` (targets shifted by one). Item `k * num_processes + p` holds window k of
    process p's streams, so accelerate's per-process batch sharding (process p gets items p, p+n, ...)
    hands each process consecutive windows of its own streams: the carried hidden state stays valid.
    `first` marks window 0 (the state is reset there, i.e. once per epoch).
    """
    layout = BPTTLayout(num_streams, seq_len, num_processes)
    n_win = layout.windows(ids.numel())
    if n_win < 1:
        need = num_streams * num_processes * (seq_len + 1)
        raise HfdlError(
            f"the text has {ids.numel()} characters, fewer than one batch needs ({need} = streams x (seq_len + 1)): give more text or lower --per_device_train_batch_size / --seq_len"
        )
    streams = stream_matrix(ids, num_streams * num_processes)  # (S*P, L)
    used = n_win * seq_len
    x = streams[:, :used].reshape(num_processes, num_streams, n_win, seq_len)
    y = streams[:, 1 : used + 1].reshape(num_processes, num_streams, n_win, seq_len)
    # -> (n_win, P, B, T) -> (n_win * P, B, T)
    x = x.permute(2, 0, 1, 3).reshape(n_win * num_processes, num_streams, seq_len).contiguous()
    y = y.permute(2, 0, 1, 3).reshape(n_win * num_processes, num_streams, seq_len).contiguous()
    first = torch.zeros(n_win * num_processes, dtype=torch.bool)
    first[:num_processes] = True
    return x, y, first


def save_text_stats(path: Path, train_text: str, val_text: str, vocab_size: int, unk_in_val: int) -> None:
    path.write_text(
        json.dumps({"train_chars": len(train_text), "validation_chars": len(val_text), "vocab_size": vocab_size, "unknown_in_validation": unk_in_val})
    )


@dataclass
class PreparedText:
    tokenizer: object
    train_ids: torch.Tensor
    val_ids: torch.Tensor
    source: str
    train_chars: int
    val_chars: int
    unknown_in_validation: int
    fingerprint: str = ""  # sha256 of the whole text (first 16 hex): the dataset revision in model cards


def prepare_text(data_args: TextDataArguments, min_train_chars: int) -> PreparedText:
    text, source = load_text(
        data_args.train_file, data_args.dataset_name, data_args.corpus, data_args.text_column, data_args.dataset_config_name, data_args.encoding
    )
    if not text:
        raise HfdlError(f"{source} holds no text: give a non-empty file or dataset")
    train_text, val_text = split_text(text, data_args.validation_split_percentage / 100)
    if data_args.max_train_chars:
        train_text = train_text[: data_args.max_train_chars]
    if len(train_text) < min_train_chars or len(val_text) < 2:
        raise HfdlError(
            f"{source} is too short: {len(train_text)} training characters, one batch needs {min_train_chars} (streams x (seq_len + 1)): "
            "give more text or lower --per_device_train_batch_size / --seq_len"
        )
    tokenizer = build_char_tokenizer(train_text)
    vocab = tokenizer.get_vocab()
    train_ids, val_ids = encode_text(train_text, vocab), encode_text(val_text, vocab)
    unknown = int((val_ids == vocab[UNK_TOKEN]).sum())
    fingerprint = hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
    return PreparedText(tokenizer, train_ids, val_ids, source, len(train_text), len(val_text), unknown, fingerprint)
