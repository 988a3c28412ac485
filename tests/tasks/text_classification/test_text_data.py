"""Labelled text: the offline Austen passages (split by chapter), sources, label maps, skipped texts, tokenizer, batches."""

import json

import pytest
import torch
from tiny_texts import write_csv

from hfdl.errors import HfdlError
from hfdl.tasks.text_classification.args import TextDataArguments
from hfdl.tasks.text_classification.data import (
    BucketedBatches,
    build_passages,
    build_tokenizer,
    chapter_splits,
    encode_texts,
    load_labelled_texts,
    normalize_text,
    split_chapters,
    split_sentences,
)


def novel(title: str, chapters: int, heading: str = "CHAPTER {}", volumes: bool = False) -> str:
    """A text laid out as janeaustenr's: title page, headings, (volumes), 'THE END' and a note after the last chapter."""
    parts = [f"{title.upper()}\n\nby Jane Austen\n\n(1811)\n\n\n\n"]
    for n in range(1, chapters + 1):
        if volumes and n in (1, chapters // 2 + 1):
            parts.append(f"VOLUME {'I' if n == 1 else 'II'}\n\n\n\n")
        body = " ".join(f"{title} chapter {n} sentence {k} tells of Mr Knightley and _Miss_ Smith." for k in range(9))
        parts.append(f"{heading.format(n)}\n\n\n{body}\n\n\n")
    parts.append("THE END\n\n\n\nA NOTE ON THE TEXT\n\nNot by the author.")
    return "".join(parts)


BOOKS = {
    "Alpha": novel("Alpha", 20),
    "Beta": novel("Beta", 13, "Chapter {}", volumes=True),
    "Gamma": novel("Gamma", 7, "CHAPTER {}"),
}


def test_austen_passages_keep_every_chapter_in_one_split_and_every_novel_in_every_split():
    dsd = build_passages(BOOKS, sentences_per_passage=4)
    names = dsd["train"].features["label"].names
    assert names == ["Alpha", "Beta", "Gamma"] and set(dsd) == {"train", "validation", "test"}
    chapters = {split: set(dsd[split]["chapter"]) for split in dsd}
    assert not chapters["train"] & chapters["validation"] and not chapters["train"] & chapters["test"] and not chapters["validation"] & chapters["test"]
    assert sum(map(len, chapters.values())) == 20 + 13 + 7  # every chapter once
    for split in dsd:
        assert set(dsd[split]["label"]) == {0, 1, 2}  # every novel in every split
        for row in dsd[split]:
            assert row["chapter"].startswith(names[row["label"]] + " ")
            assert len(split_sentences(row["text"])) == 4
    assert len(chapters["test"]) == round(0.1 * 20) + 1 + 1  # 10% of each novel's chapters, at least one
    text = " ".join(dsd["train"]["text"])
    assert "Mr. Knightley" in text and "_" not in text and "  " not in text and "NOTE" not in text and "VOLUME" not in text
    assert build_passages(BOOKS, 4)["test"]["chapter"] == dsd["test"]["chapter"]  # deterministic
    assert build_passages(BOOKS, 4, seed=1)["test"]["chapter"] != dsd["test"]["chapter"]  # the seed moves chapters


def test_chapters_sentences_and_normalization():
    chapters = split_chapters(BOOKS["Beta"])
    assert len(chapters) == 13 and chapters[0].startswith("Beta chapter 1 sentence 0") and chapters[-1].endswith("Smith.")
    assert chapter_splits(30, "x").count("test") == 3 and chapter_splits(30, "x").count("validation") == 3
    text = normalize_text('"My dear Mr Bennet," said his lady.  "Have you _heard_ that Netherfield is let?" Mr. Bennet replied that E. Ferrars had not.')
    assert split_sentences(text) == [
        '"My dear Mr. Bennet," said his lady.',
        '"Have you heard that Netherfield is let?"',
        "Mr. Bennet replied that E. Ferrars had not.",
    ]
    with pytest.raises(HfdlError, match="no 'CHAPTER n' / 'Chapter n' heading"):
        split_chapters("A text without chapters.")


def test_csv_labels_are_the_sorted_values_and_empty_texts_are_skipped_and_counted(tmp_path):
    train = write_csv(tmp_path / "train.csv", [("good film", "pos"), ("bad film", "neg"), ("", "pos"), ("   ", "neg"), ("fine", "meh")] * 3)
    val = write_csv(tmp_path / "val.csv", [("great", "pos"), ("", "neg"), ("awful", "neg")])
    data = load_labelled_texts(TextDataArguments(train_file=train, validation_file=val), seed=0)
    assert data.label_names == ["meh", "neg", "pos"]
    assert data.splits["train"].texts[:3] == ["good film", "bad film", "fine"] and data.splits["train"].labels[:3] == [2, 1, 0]
    assert data.skipped_empty == {"train": 6, "validation": 1} and data.splits["validation"].labels == [2, 1]
    assert not data.validation_from_train and "test" not in data.splits


def test_class_label_names_and_json_lines_and_a_validation_split_drawn_per_class(tmp_path):
    import datasets

    rows = [{"sentence": f"text {i}", "y": i % 3} for i in range(60)]
    path = tmp_path / "train.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    args = TextDataArguments(train_file=str(path), text_column="sentence", label_column="y", validation_split_percentage=20)
    data = load_labelled_texts(args, seed=0)
    assert data.label_names == ["0", "1", "2"] and data.validation_from_train
    assert sorted(data.splits["validation"].labels) == [0] * 4 + [1] * 4 + [2] * 4  # 20% of each class
    assert not set(data.splits["validation"].texts) & set(data.splits["train"].texts)
    assert load_labelled_texts(args, seed=0).splits["validation"].texts == data.splits["validation"].texts

    features = datasets.Features({"text": datasets.Value("string"), "label": datasets.ClassLabel(names=["world", "sports", "business"])})
    dsd = datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_dict({"text": ["a", "b", "c", "d"], "label": [2, 0, 2, 0]}, features=features),
            "validation": datasets.Dataset.from_dict({"text": ["e", "f"], "label": [1, -1]}, features=features),
        }
    )
    dsd.save_to_disk(str(tmp_path / "saved"))
    data = load_labelled_texts(TextDataArguments(dataset_name=str(tmp_path / "saved")), seed=0)
    assert data.label_names == ["world", "sports", "business"]  # the ClassLabel's own names and order, a class unseen in training kept
    assert data.splits["train"].labels == [2, 0, 2, 0] and data.splits["validation"].labels == [1]
    assert data.skipped_unlabelled == {"train": 0, "validation": 1}


def test_bad_data_is_a_one_line_error_naming_the_fix(tmp_path):
    one_class = write_csv(tmp_path / "one.csv", [("good", "pos"), ("great", "pos"), ("", "neg")])
    with pytest.raises(HfdlError, match=r"has only 'pos' in --label_column 'label': a classifier needs two classes or more; check the column"):
        load_labelled_texts(TextDataArguments(train_file=one_class), seed=0)
    wrong = write_csv(tmp_path / "wrong.csv", [("good", "pos"), ("bad", "neg")], header=("review", "stars"))
    with pytest.raises(HfdlError, match=r"no column 'text', 'label' \(columns: review, stars\): pass --text_column / --label_column naming its columns"):
        load_labelled_texts(TextDataArguments(train_file=wrong), seed=0)
    train = write_csv(tmp_path / "t.csv", [("good", "pos"), ("bad", "neg")] * 2)
    unseen = write_csv(tmp_path / "v.csv", [("so-so", "meh")])
    with pytest.raises(HfdlError, match="label 'meh', which the training split lacks"):
        load_labelled_texts(TextDataArguments(train_file=train, validation_file=unseen), seed=0)
    (tmp_path / "t.tsv").write_text("text\tlabel\n")
    with pytest.raises(HfdlError, match=r"neither .csv nor .json / .jsonl"):
        load_labelled_texts(TextDataArguments(train_file=str(tmp_path / "t.tsv")), seed=0)
    with pytest.raises(HfdlError, match="does not exist"):
        load_labelled_texts(TextDataArguments(train_file=str(tmp_path / "absent.csv")), seed=0)
    with pytest.raises(HfdlError, match="--validation_file / --test_file need --train_file"):
        TextDataArguments(validation_file=unseen)


def test_word_and_char_tokenizers_and_the_saved_tokenizer_give_the_training_ids(tmp_path):
    from transformers import AutoTokenizer

    texts = ["Emma Woodhouse, handsome, clever, and rich.", "Emma was rich!", "A rare word."]
    word = build_tokenizer(texts, "word", vocab_size=100, min_frequency=2, lowercase=True, max_length=5)
    assert word.pad_token_id == 0 and word.unk_token_id == 1
    assert word.convert_ids_to_tokens(encode_texts(word, ["EMMA was clever"], 5)[0].tolist()) == ["emma", "[UNK]", "[UNK]"]
    assert len(encode_texts(word, ["rich, rich, rich, rich, rich"], 5)[0]) == 5  # cut to max_length
    word.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    assert loaded(texts[:1], truncation=True)["input_ids"][0] == encode_texts(word, texts[:1], 5)[0].tolist()
    char = build_tokenizer(texts, "char", vocab_size=100, min_frequency=1, lowercase=False, max_length=50)
    assert char.decode(encode_texts(char, ["Emma"], 50)[0]) == "Emma"


def test_bucketed_batches_are_a_function_of_seed_and_epoch_with_little_padding():
    torch.manual_seed(0)
    ids = [torch.randint(2, 50, (int(n),)) for n in torch.randint(1, 120, (1000,))]
    labels = torch.randint(0, 3, (1000,))
    batches = BucketedBatches(ids, labels, batch_size=16, seed=3)
    assert len(batches) == 63
    first = [batches[i][0] for i in range(len(batches))]
    seen = torch.cat([batches[i][2] for i in range(len(batches))])
    assert seen.numel() == 1000 and torch.equal(seen.sort().values, labels.sort().values)
    padded, real = sum(b.numel() for b in first), sum(len(x) for x in ids)
    assert padded / real < 1.1  # sorted within pools: almost no padding
    batches.set_epoch(1)
    assert not all(torch.equal(a, batches[i][0]) for i, a in enumerate(first))
    batches.set_epoch(0)
    assert all(torch.equal(a, batches[i][0]) for i, a in enumerate(first))
    assert all(torch.equal(a, BucketedBatches(ids, labels, 16, seed=3)[i][0]) for i, a in enumerate(first))
