"""Tiny learnable labelled texts for the text-classification tests: the label is the topic of a few keywords mixed
into filler words (3 classes), written as CSV files like a user's; and the one-thread fixture their modules use."""

from __future__ import annotations

import csv
import random
from pathlib import Path

import pytest
import torch

TOPICS = {
    "sport": ["goal", "match", "team", "score", "coach", "ball", "league", "win"],
    "food": ["bread", "soup", "bake", "salt", "cheese", "apple", "dinner", "taste"],
    "weather": ["rain", "cloud", "storm", "sunny", "wind", "snow", "cold", "forecast"],
}


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models run fastest on one thread: two threads on a busy 2-core machine (another xdist worker) made a step of
    them 20x slower when they spun (tests/conftest.py now sets OMP_WAIT_POLICY=PASSIVE, too)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


FILLER = ["the", "a", "and", "then", "we", "saw", "it", "was", "very", "today", "after", "with", "our", "new", "old", "big"]


def texts(n: int, seed: int) -> list[tuple[str, str]]:
    """(text, label) pairs, the labels in turn; 4 to 16 words, 2 to 4 of them from the topic."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = list(TOPICS)[i % len(TOPICS)]
        words = rng.choices(FILLER, k=rng.randint(2, 12)) + rng.choices(TOPICS[label], k=rng.randint(2, 4))
        rng.shuffle(words)
        rows.append((" ".join(words).capitalize() + ".", label))
    return rows


def write_csv(path: Path, rows: list[tuple], header: tuple[str, ...] = ("text", "label")) -> str:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return str(path)


def write_splits(folder: Path, empty_texts: int = 0) -> dict[str, str]:
    """train.csv (90 texts, plus `empty_texts` empty ones), validation.csv and test.csv (30 each)."""
    folder.mkdir(parents=True, exist_ok=True)
    train = texts(90, seed=0) + [("", "food")] * empty_texts
    return {
        "train_file": write_csv(folder / "train.csv", train),
        "validation_file": write_csv(folder / "validation.csv", texts(30, seed=1)),
        "test_file": write_csv(folder / "test.csv", texts(30, seed=2)),
    }


def tiny_args(out: Path, files: dict[str, str], *extra: str) -> list[str]:
    """A few seconds of training on 2 cores: 12 batches of 8 per epoch, 2 epochs."""
    data = [a for name, path in files.items() for a in (f"--{name}", path)]
    return [
        *data, "--output_dir", str(out), "--hidden_size", "8", "--embedding_dim", "8", "--min_frequency", "1", "--max_length", "24",
        "--per_device_train_batch_size", "8", "--per_device_eval_batch_size", "16", "--learning_rate", "1e-2", "--num_train_epochs", "2",
        "--seed", "0", *extra,
    ]  # fmt: skip
