"""Metric-learning data: class-balanced P x K batches, and whole classes held out of training (one-shot)."""

from __future__ import annotations

from collections import Counter

import datasets
import torch

from hfdl.errors import HfdlError


class ClassBalancedSampler(torch.utils.data.Sampler):
    """Indices in batches of `classes_per_batch` (P) classes x `samples_per_class` (K) images each, so every batch
    holds positives and negatives for every anchor (FaceNet, "In Defense of the Triplet Loss").

    Each batch draws P distinct classes, then K distinct images of each (with replacement only for a class with
    fewer than K images). An epoch has `len(labels) // (P K)` batches. The order is a pure function of (seed,
    epoch): the shared loop's `set_epoch` makes every epoch differ and a resumed run draw the same batches. Use it
    as a DataLoader `sampler` with `batch_size=P * K` (accelerate then shards whole batches across processes).
    """

    def __init__(self, labels: list[int], classes_per_batch: int, samples_per_class: int, seed: int = 0):
        counts = Counter(int(v) for v in labels)
        if classes_per_batch < 2 or samples_per_class < 2:
            raise HfdlError(
                f"--classes_per_batch and --samples_per_class must be >= 2 (a batch needs positives and negatives), got {classes_per_batch} and {samples_per_class}"
            )
        if classes_per_batch > len(counts):
            raise HfdlError(f"--classes_per_batch {classes_per_batch} is larger than the {len(counts)} classes in the training data: use at most {len(counts)}")
        lone = sorted(c for c, n in counts.items() if n < 2)
        if lone:
            raise HfdlError(f"class id(s) {lone[:10]} have a single training image (no positive for a triplet or pair): add images, or drop those classes")
        labels_t = torch.as_tensor([int(v) for v in labels])
        self.classes = sorted(counts)
        self.members = [torch.nonzero(labels_t == c).flatten() for c in self.classes]
        self.p, self.k, self.seed, self.epoch = classes_per_batch, samples_per_class, seed, 0
        self.num_batches = max(1, len(labels_t) // (self.p * self.k))

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num_batches * self.p * self.k

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        for _ in range(self.num_batches):
            for c in torch.randperm(len(self.classes), generator=g)[: self.p].tolist():
                idx = self.members[c]
                if len(idx) >= self.k:
                    pick = idx[torch.randperm(len(idx), generator=g)[: self.k]]
                else:
                    pick = idx[torch.randint(len(idx), (self.k,), generator=g)]
                yield from pick.tolist()


def parse_classes(spec: str | None, label_names: list[str]) -> list[int]:
    """'Shirt,7' -> class ids (names or ids; every one must be a label)."""
    if not spec:
        return []
    ids = []
    for item in (s.strip() for s in spec.split(",") if s.strip()):
        if item in label_names:
            ids.append(label_names.index(item))
        elif item.isdigit() and int(item) < len(label_names):
            ids.append(int(item))
        else:
            raise HfdlError(f"class '{item}' is not a label of this dataset (labels: {', '.join(label_names)}): pass names or ids from those")
    return sorted(set(ids))


def hold_out(train: datasets.Dataset, label_column: str, holdout: list[int], num_classes: int) -> datasets.Dataset:
    """The training split without the held-out classes (they stay in evaluation: embedding unseen classes)."""
    if not holdout:
        return train
    if num_classes - len(holdout) < 2:
        raise HfdlError(f"--holdout_classes leaves {num_classes - len(holdout)} class(es) to train on: keep at least 2")
    keep = set(range(num_classes)) - set(holdout)
    labels = train[label_column]
    return train.select([i for i, v in enumerate(labels) if v in keep])
