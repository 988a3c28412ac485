"""Labelled text for sequence classification: sources, label maps, a `tokenizers` vocabulary, length-bucketed batches.

Sources, as transformers' text-classification example: a Hub dataset (`--dataset_name`, a `save_to_disk` folder too)
or local CSV / JSON-lines files (`--train_file`, `--validation_file`, `--test_file`), all loaded through `datasets`;
with neither, the offline default: which of Jane Austen's six novels a passage of a few sentences comes from
(`austen_passages`, built once from the `austen` corpus and cached). Label names come from a `ClassLabel` feature,
else they are the training split's sorted distinct values. Empty texts are skipped and counted.

Batches are padded to their own longest text (each direction of the model reads only the real tokens); texts of
similar length share a batch (sorted within shuffled pools of `POOL_BATCHES` batches), so little padding is ever
computed or stored.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from hfdl.assets.cache import hfdl_cache_dir, private_tmp
from hfdl.errors import HfdlError

if TYPE_CHECKING:
    import datasets

    from hfdl.tasks.text_classification.args import TextDataArguments

logger = logging.getLogger(__name__)

PAD_TOKEN, UNK_TOKEN = "[PAD]", "[UNK]"
PAD_ID = 0  # `build_tokenizer` gives [PAD] the first id
SPLITS = ("train", "validation", "test")

# --------------------------------------------------------------------------------------------------
# The offline default: passages of Jane Austen's novels, split by chapter
# --------------------------------------------------------------------------------------------------

AUSTEN_PASSAGES_VERSION = 1  # part of the cache key: bump it whenever the builder's output changes
HELD_OUT_FRACTION = 0.1  # of each novel's chapters, for validation and again for test
_CHAPTER = re.compile(r"^(?:CHAPTER|Chapter) +(?:\d+|[IVXLC]+)\.?[ \t]*$", re.M)
_BOOK_END = re.compile(r"^(?:THE END|FINIS|Finis|A NOTE ON THE TEXT)[ \t]*$", re.M)
_VOLUME = re.compile(r"^VOLUME [IVX]+[ \t]*$", re.M)
_ABBREVIATION = re.compile(r"\b(Mrs|Mr|Dr|St)\b(?!\.)")
# A sentence ends at . ! ? (and any closing quotes or brackets) before a space and an upper-case letter or an opening
# quote, except after a title (Mr. Darcy) or an initial (E. Ferrars).
_SENTENCE_END = re.compile(r"""[.!?]["')\]]*(?=\s+["'(]?[A-Z])""")
_NOT_AN_END = re.compile(r"(?:^|\W)(?:Mrs|Mr|Dr|St|[A-HJ-Z])\.$")


def split_chapters(book: str) -> list[str]:
    """A novel's chapters in order, without headings, volume titles, front matter or end notes."""
    heads = list(_CHAPTER.finditer(book))
    if not heads:
        raise HfdlError("no 'CHAPTER n' / 'Chapter n' heading found in a novel: the corpus is not janeaustenr's text; reinstall r-cran-janeaustenr")
    ends = [h.start() for h in heads[1:]] + [len(book)]
    chapters = [_VOLUME.sub("", book[h.end() : end]) for h, end in zip(heads, ends)]
    last_end = _BOOK_END.search(chapters[-1])
    if last_end:
        chapters[-1] = chapters[-1][: last_end.start()]
    return [c.strip() for c in chapters]


def normalize_text(text: str) -> str:
    """One line of plain prose: the editions' transcription marks would give the novel away without any style.

    The Gutenberg editions differ in ways Austen did not write: `_italics_` in three novels, two spaces after a full
    stop in two, "Mr" without a full stop in one. These are removed or unified; the words and punctuation stay.
    """
    text = _ABBREVIATION.sub(r"\1.", text.replace("_", ""))
    return " ".join(text.split())


def split_sentences(text: str) -> list[str]:
    """Sentences of normalized prose (a rule-based splitter: good enough to cut passages of N sentences)."""
    sentences, start = [], 0
    for end in _SENTENCE_END.finditer(text):
        if _NOT_AN_END.search(text[max(start, end.start() - 4) : end.start() + 1]):
            continue
        sentences.append(text[start : end.end()].strip())
        start = end.end()
    tail = text[start:].strip()
    return [*sentences, tail] if tail else sentences


def chapter_splits(num_chapters: int, key: str, seed: int = 0) -> list[str]:
    """The split of each chapter of one novel: its chapters ordered by a seeded hash, the first `HELD_OUT_FRACTION`
    to test, the next to validation, the rest to train (at least one each), so every novel is in every split and no
    chapter is in two."""
    order = sorted(range(num_chapters), key=lambda i: hashlib.sha256(f"{seed}:{key}:{i}".encode()).hexdigest())
    held = max(1, round(HELD_OUT_FRACTION * num_chapters))
    split = {i: "test" for i in order[:held]} | {i: "validation" for i in order[held : 2 * held]}
    return [split.get(i, "train") for i in range(num_chapters)]


def build_passages(books: dict[str, str], sentences_per_passage: int, seed: int = 0) -> datasets.DatasetDict:
    """`train` / `validation` / `test` of consecutive `sentences_per_passage`-sentence passages of each novel (text,
    label = the novel, `chapter` = "<novel> <n>"), split by chapter; a chapter's last incomplete passage is dropped."""
    import datasets

    if sentences_per_passage < 1:
        raise HfdlError(f"--sentences_per_passage must be >= 1, got {sentences_per_passage}")
    titles = list(books)
    rows: dict[str, dict[str, list]] = {s: {"text": [], "label": [], "chapter": []} for s in SPLITS}
    for label, title in enumerate(titles):
        chapters = split_chapters(books[title])
        for number, (chapter, split) in enumerate(zip(chapters, chapter_splits(len(chapters), title, seed)), start=1):
            sentences = split_sentences(normalize_text(chapter))
            for start in range(0, len(sentences) - sentences_per_passage + 1, sentences_per_passage):
                rows[split]["text"].append(" ".join(sentences[start : start + sentences_per_passage]))
                rows[split]["label"].append(label)
                rows[split]["chapter"].append(f"{title} {number}")
    features = datasets.Features({"text": datasets.Value("string"), "label": datasets.ClassLabel(names=titles), "chapter": datasets.Value("string")})
    return datasets.DatasetDict({s: datasets.Dataset.from_dict(rows[s], features=features) for s in SPLITS})


def austen_passages(sentences_per_passage: int, seed: int = 0) -> datasets.DatasetDict:
    """The offline default, built once from the `austen` corpus and cached under `hfdl_cache_dir()/datasets`."""
    import datasets

    from hfdl.assets.corpora import CORPORA, load_austen_books

    params = {"version": AUSTEN_PASSAGES_VERSION, "sentences_per_passage": sentences_per_passage, "seed": seed}
    key = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:16]
    cache = hfdl_cache_dir() / "datasets" / f"austen-passages-{key}"
    if not (cache / "dataset_dict.json").is_file():
        dsd = build_passages(load_austen_books(), sentences_per_passage, seed)
        _save_atomically(dsd, cache, {**CORPORA["austen"].provenance(), "arguments": params})
    return datasets.load_from_disk(str(cache))


def _save_atomically(dsd: datasets.DatasetDict, cache: Path, provenance: dict) -> None:
    """Build into a private sibling and rename it, so an interrupted or concurrent build never leaves half a dataset."""
    import shutil

    tmp = private_tmp(cache)
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        dsd.save_to_disk(str(tmp))
        (tmp / "provenance.json").write_text(json.dumps(provenance, indent=2))
        if (cache / "dataset_dict.json").is_file():  # another process finished the same build first
            return
        shutil.rmtree(cache, ignore_errors=True)
        tmp.rename(cache)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------------------------------------------
# Labelled splits from any source
# --------------------------------------------------------------------------------------------------


@dataclass
class LabelledSplit:
    """One split's texts and integer labels, empty texts and unlabelled rows already left out."""

    texts: list[str]
    labels: list[int]

    def __len__(self) -> int:
        return len(self.texts)


@dataclass
class LabelledTexts:
    """The labelled splits of a run (`validation` always; `test` when the source has one) and what was left out."""

    splits: dict[str, LabelledSplit]
    label_names: list[str]
    source: str
    skipped_empty: dict[str, int] = field(default_factory=dict)
    skipped_unlabelled: dict[str, int] = field(default_factory=dict)
    validation_from_train: bool = False

    @property
    def fingerprint(self) -> str:
        """sha256 (first 16 hex) of every split's texts and labels: the dataset revision the model card names."""
        h = hashlib.sha256(json.dumps(self.label_names).encode())
        for name, split in sorted(self.splits.items()):
            h.update(json.dumps([name, split.texts, split.labels], ensure_ascii=False).encode())
        return h.hexdigest()[:16]


def load_raw_splits(data_args: TextDataArguments) -> tuple[datasets.DatasetDict, str]:
    """The source as a `DatasetDict` (its own split names) and a human-readable name of it."""
    import datasets

    if data_args.offline_default:
        return austen_passages(data_args.sentences_per_passage), f"offline Austen passages ({data_args.sentences_per_passage} sentences each)"
    if data_args.train_file:
        files = {s: f for s, f in (("train", data_args.train_file), ("validation", data_args.validation_file), ("test", data_args.test_file)) if f}
        return _load_files(files), f"files {', '.join(Path(f).name for f in files.values())}"
    name = data_args.dataset_name
    try:
        if Path(name).is_dir() and (Path(name) / "dataset_dict.json").is_file():
            return datasets.load_from_disk(name), f"saved dataset {Path(name).name}"
        return datasets.load_dataset(name, data_args.dataset_config_name), f"dataset {name}"
    except (FileNotFoundError, ValueError, ConnectionError, OSError) as err:
        msg = str(err).splitlines()[0][:160] if str(err) else type(err).__name__
        raise HfdlError(f"could not load dataset '{name}' ({msg}): check the id (and internet), or use --train_file with CSV / JSON lines") from err


def _load_files(files: dict[str, str]) -> datasets.DatasetDict:
    """CSV or JSON-lines files through `datasets`' packaged loaders (`load_dataset("csv" / "json", data_files=...)`)."""
    import datasets

    kinds = set()
    for split, path in files.items():
        if not Path(path).is_file():
            raise HfdlError(f"--{split}_file {path} does not exist: pass an existing CSV or JSON-lines file")
        suffix = Path(path).suffix.lower()
        if suffix not in (".csv", ".json", ".jsonl"):
            raise HfdlError(f"--{split}_file {path} is neither .csv nor .json / .jsonl: convert it, or save it with those columns as CSV")
        kinds.add("csv" if suffix == ".csv" else "json")
    if len(kinds) > 1:
        raise HfdlError("the data files mix CSV and JSON lines: give every split in one format")
    try:
        return datasets.load_dataset(kinds.pop(), data_files=files)
    except (ValueError, datasets.exceptions.DatasetGenerationError) as err:
        raise HfdlError(f"could not read {', '.join(files.values())} ({str(err).splitlines()[0][:160]}): check the files are valid CSV / JSON lines") from err


def label_names_of(ds: datasets.Dataset, column: str) -> list[str]:
    """Names from a `ClassLabel` feature, else the sorted distinct values of the column (missing values left out)."""
    import datasets

    feature = ds.features[column]
    if isinstance(feature, datasets.ClassLabel):
        return list(feature.names)
    values = {v for v in ds.unique(column) if v is not None and v != ""}
    return [str(v) for v in sorted(values)]


def _labelled_split(ds: datasets.Dataset, split: str, data_args: TextDataArguments, label_names: list[str], source: str) -> tuple[LabelledSplit, int, int]:
    """(texts and label ids, empty texts skipped, unlabelled rows skipped) of one split."""
    import datasets

    text_col, label_col = data_args.text_column, data_args.label_column
    missing = [c for c in (text_col, label_col) if c not in ds.column_names]
    if missing:
        flags = " / ".join(f"--{'text' if c == text_col else 'label'}_column" for c in missing)
        raise HfdlError(
            f"the {split} split of {source} has no column {', '.join(map(repr, missing))} (columns: {', '.join(ds.column_names)}): pass {flags} naming its columns"
        )
    if ds.features[text_col].dtype not in ("string", "large_string"):
        raise HfdlError(f"--text_column '{text_col}' of {source} holds {ds.features[text_col].dtype}, not text: pass the column with the texts")
    class_label = isinstance(ds.features[label_col], datasets.ClassLabel)
    index = {name: i for i, name in enumerate(label_names)}
    texts, labels, empty, unlabelled = [], [], 0, 0
    for text, label in zip(ds[text_col], ds[label_col]):
        if label is None or label == "" or (class_label and label < 0):  # ClassLabel -1: no label (e.g. GLUE test)
            unlabelled += 1
            continue
        if text is None or not text.strip():
            empty += 1
            continue
        key = label_names[label] if class_label else str(label)
        if key not in index:
            raise HfdlError(f"the {split} split of {source} has label {key!r}, which the training split lacks: give every split the training labels")
        texts.append(text)
        labels.append(index[key])
    return LabelledSplit(texts, labels), empty, unlabelled


def load_labelled_texts(data_args: TextDataArguments, seed: int) -> LabelledTexts:
    """Every split as texts and label ids; without a validation split, a stratified `--validation_split_percentage` of train."""
    raw, source = load_raw_splits(data_args)
    if "train" not in raw:
        raise HfdlError(f"{source} has no 'train' split (it has {', '.join(raw)}): pass a dataset with one, or --train_file")
    if data_args.label_column in raw["train"].column_names:
        label_names = label_names_of(raw["train"], data_args.label_column)
    else:
        label_names = []  # the column check below names the problem
    data = LabelledTexts({}, label_names, source)
    for split in SPLITS:
        if split in raw:
            data.splits[split], data.skipped_empty[split], data.skipped_unlabelled[split] = _labelled_split(raw[split], split, data_args, label_names, source)
    train = data.splits["train"]
    classes = sorted(set(train.labels))
    if len(classes) < 2:
        found = f"only {label_names[classes[0]]!r}" if classes else "no labelled text"
        raise HfdlError(
            f"the training split of {source} has {found} in --label_column '{data_args.label_column}': a classifier needs two classes or more; check the column"
        )
    if "validation" not in data.splits:
        data.splits["train"], data.splits["validation"] = _stratified_split(train, data_args.validation_split_percentage / 100, seed)
        data.validation_from_train = True
    if not data.splits["validation"].texts:
        raise HfdlError(f"the validation split of {source} holds no labelled text: give it rows, or leave it out to split the training rows")
    if "test" in data.splits and not data.splits["test"].texts:  # e.g. a Hub test split whose labels are hidden (all -1)
        logger.warning("the test split of %s holds no labelled text: results are reported on the validation split", source)
        del data.splits["test"]
    return data


def _stratified_split(split: LabelledSplit, fraction: float, seed: int) -> tuple[LabelledSplit, LabelledSplit]:
    """(train, validation): `fraction` of each class (at least one row of each class with two or more rows), seeded."""
    gen = torch.Generator().manual_seed(seed)
    held: set[int] = set()
    for label in sorted(set(split.labels)):
        rows = [i for i, y in enumerate(split.labels) if y == label]
        take = min(len(rows) - 1, max(1, round(fraction * len(rows))))
        held.update(rows[j] for j in torch.randperm(len(rows), generator=gen)[:take].tolist())
    pick = [i for i in range(len(split)) if i not in held], sorted(held)
    return tuple(LabelledSplit([split.texts[i] for i in rows], [split.labels[i] for i in rows]) for rows in pick)


# --------------------------------------------------------------------------------------------------
# Tokenizer
# --------------------------------------------------------------------------------------------------


def build_tokenizer(texts: list[str], level: str, vocab_size: int, min_frequency: int, lowercase: bool, max_length: int):
    """A `tokenizers` vocabulary trained on the training texts, wrapped as a transformers `PreTrainedTokenizerFast`.

    `word`: words and runs of punctuation (`Whitespace` pre-tokenizer), the `vocab_size` most frequent seen at least
    `min_frequency` times; `char`: every character seen `min_frequency` times. `[PAD]` is id 0, `[UNK]` id 1; no other
    special tokens (a recurrent classifier needs no [CLS]). Saved with `save_pretrained`, it loads with `AutoTokenizer`.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(unk_token=UNK_TOKEN))
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), *([normalizers.Lowercase()] if lowercase else [])])
    if level == "word":
        tok.pre_tokenizer = pre_tokenizers.Whitespace()
    else:
        tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")  # every character, spaces included
        tok.decoder = decoders.Fuse()
    trainer = trainers.WordLevelTrainer(vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=[PAD_TOKEN, UNK_TOKEN], show_progress=False)
    tok.train_from_iterator(texts, trainer, length=len(texts))
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token=PAD_TOKEN, unk_token=UNK_TOKEN, model_max_length=max_length, padding_side="right", clean_up_tokenization_spaces=False
    )
    fast.model_input_names = ["input_ids", "attention_mask"]
    return fast


def vocabulary_fingerprint(tokenizer) -> str:
    """sha256 (first 16 hex) of the token -> id map: a resumed run must rebuild exactly the same vocabulary."""
    vocab = sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1])
    return hashlib.sha256(json.dumps(vocab, ensure_ascii=False).encode()).hexdigest()[:16]


def encode_texts(tokenizer, texts: list[str], max_length: int) -> list[torch.Tensor]:
    """Token ids of each text, cut to `max_length` (the Rust tokenizer, batched): the ids the saved tokenizer gives."""
    backend = tokenizer.backend_tokenizer
    return [torch.tensor(e.ids[:max_length] or [PAD_ID], dtype=torch.long) for e in backend.encode_batch(texts, add_special_tokens=False)]


# --------------------------------------------------------------------------------------------------
# Batches
# --------------------------------------------------------------------------------------------------

POOL_BATCHES = 50  # length bucketing: texts are sorted by length within shuffled pools of this many batches


def pad_batch(ids: list[torch.Tensor], labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(input_ids (B, T), attention_mask (B, T), labels (B,)), right-padded to the longest text of the batch."""
    lengths = torch.tensor([len(x) for x in ids])
    input_ids = torch.nn.utils.rnn.pad_sequence(ids, batch_first=True, padding_value=PAD_ID)
    mask = (torch.arange(input_ids.size(1))[None] < lengths[:, None]).long()
    return input_ids, mask, labels


class BucketedBatches(torch.utils.data.Dataset):
    """Training batches, each one item: a function of (seed, epoch) only, so a resumed run sees the same batches.

    Every epoch the texts are shuffled, cut into pools of `POOL_BATCHES` batches, sorted by length within each pool
    and batched; the batches are shuffled again. Item `i` is a whole padded batch: `accelerate` hands process `p` the
    items p, p + n, ..., and `skip_first_batches` resumes mid-epoch, as with any map-style dataset.
    """

    def __init__(self, ids: list[torch.Tensor], labels: torch.Tensor, batch_size: int, seed: int):
        self.ids, self.labels, self.batch_size, self.seed = ids, labels, batch_size, seed
        self.lengths = torch.tensor([len(x) for x in ids])
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        gen = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        order = torch.randperm(len(self.ids), generator=gen)
        pool = self.batch_size * POOL_BATCHES
        chunks = [order[i : i + pool] for i in range(0, len(order), pool)]
        order = torch.cat([c[torch.argsort(self.lengths[c], descending=True, stable=True)] for c in chunks])
        batches = list(order.split(self.batch_size))
        self.batches = [batches[i] for i in torch.randperm(len(batches), generator=gen).tolist()]

    def __len__(self) -> int:
        return math.ceil(len(self.ids) / self.batch_size)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, ...]:
        rows = self.batches[index].tolist()
        return pad_batch([self.ids[i] for i in rows], self.labels[rows])


class SortedExamples(torch.utils.data.Dataset):
    """Evaluation examples sorted by length (so a batch holds similar lengths); `accelerate` shards and gathers them."""

    def __init__(self, ids: list[torch.Tensor], labels: torch.Tensor):
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        self.ids, self.labels = [ids[i] for i in order], labels[order]

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.ids[index], self.labels[index]


def collate_examples(items: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[tuple[torch.Tensor, torch.Tensor], torch.Tensor]:
    """((input_ids, attention_mask), labels): the (inputs, labels) pairs `hfdl.core.metrics.evaluate_classifier` reads."""
    input_ids, mask, labels = pad_batch([x for x, _ in items], torch.stack([y for _, y in items]))
    return (input_ids, mask), labels


def whole_batch(items: list):
    """A loader of `BucketedBatches` at batch size 1: the one item is already the batch."""
    return items[0]
