"""Image data decoded once into uint8 tensors (N, C, S, S) and cached, for models that train on whole images held in
memory (the generative models, the anomaly autoencoder): any image dataset the other tasks read (Fashion-MNIST:
70,000 images in 55 MB, read back in a fraction of a second).

Grayscale when every image is single-channel, RGB otherwise. Square images at their own size, or at
`--image_size` (shorter side resized, centre crop); images of mixed sizes need `--image_size`.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

import datasets
import torch
from safetensors.torch import load_file

from hfdl.assets.cache import hfdl_cache_dir, save_tensors_atomically
from hfdl.core.images import EVAL_SPLIT_NAMES, find_columns, fit_square, load_image_dataset
from hfdl.errors import HfdlError

logger = logging.getLogger(__name__)

DECODE_VERSION = 1


@dataclass
class ImageTensors:
    """Decoded train and test images (uint8 (N, C, S, S)) with labels (None without a label column)."""

    train: torch.Tensor
    test: torch.Tensor
    train_labels: torch.Tensor | None
    test_labels: torch.Tensor | None
    label_names: list[str]
    source: str
    test_split: str

    @property
    def channels(self) -> int:
        return self.train.shape[1]

    @property
    def image_size(self) -> int:
        return self.train.shape[-1]


def _decode(ds: datasets.Dataset, image_column: str, image_size: int | None, channels: int, what: str) -> torch.Tensor:
    import numpy as np

    out, first = [], None
    for i, img in enumerate(ds[image_column]):
        if img is None:
            raise HfdlError(f"{what} image {i} is missing: drop empty rows from the dataset")
        if image_size is None:
            if first is None:
                first = img.size
            if img.size != first or img.width != img.height:
                shape = "non-square" if img.width != img.height else "mixed-size"
                raise HfdlError(
                    f"{what} has {shape} images ({first[0]}x{first[1]} and {img.width}x{img.height} at image {i}): pass --image_size N to resize and centre-crop them to N x N"
                )
        img = fit_square(img, image_size, channels)
        arr = np.asarray(img, dtype=np.uint8)
        out.append(arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1))
    if not out:
        raise HfdlError(f"{what} has no images: point --dataset_name / --train_dir at image data")
    return torch.from_numpy(np.stack(out))


def _channels(ds: datasets.Dataset, image_column: str) -> int:
    modes = {img.mode for img in ds.select(range(min(len(ds), 200)))[image_column] if img is not None}
    return 1 if modes and modes <= {"L", "1", "I", "I;16", "F"} else 3


def decode_images(ds: datasets.Dataset, image_column: str, image_size: int | None = None, channels: int | None = None, what: str = "the data") -> torch.Tensor:
    """A dataset's images as one uint8 tensor (N, C, S, S): grayscale when every image is (or `channels`), at their own
    size or `image_size` (shorter side resized, centre crop)."""
    return _decode(ds, image_column, image_size, channels or _channels(ds, image_column), what)


def load_image_tensors(
    dataset_name: str | None = None,
    train_dir: str | None = None,
    validation_dir: str | None = None,
    dataset_config_name: str | None = None,
    image_column: str | None = None,
    label_column: str | None = None,
    image_size: int | None = None,
    train_val_split: float = 0.1,
    max_train_samples: int | None = None,
    max_eval_samples: int | None = None,
    seed: int = 42,
) -> ImageTensors:
    """Load, split (the dataset's test/validation split, else a seeded holdout), subsample, decode (cached)."""
    dsd, source = load_image_dataset(dataset_name, train_dir, validation_dir, dataset_config_name)
    if "train" not in dsd:
        raise HfdlError(f"the dataset has no 'train' split (splits: {list(dsd)}): pass a dataset with a train split or --train_dir")
    train = dsd["train"]
    image_column, label_column = find_columns(train, image_column, label_column, label_required=False)
    if label_column is not None and not isinstance(train.features[label_column], datasets.ClassLabel):
        train = train.class_encode_column(label_column)
    label_names = list(train.features[label_column].names) if label_column else []
    test_split = next((s for s in EVAL_SPLIT_NAMES if s in dsd), None)
    if test_split is not None:
        test = dsd[test_split]
        if label_column is not None and not isinstance(test.features[label_column], datasets.ClassLabel):
            test = test.cast_column(label_column, train.features[label_column])
    else:
        if not 0.0 < train_val_split < 1.0:
            raise HfdlError(f"--train_val_split must be in (0, 1), got {train_val_split}")
        parts = train.train_test_split(test_size=train_val_split, seed=seed)
        train, test, test_split = parts["train"], parts["test"], f"train[{train_val_split:.0%} holdout, seed {seed}]"
    if max_train_samples is not None and max_train_samples < len(train):
        train = train.shuffle(seed=seed).select(range(max_train_samples))
    if max_eval_samples is not None and max_eval_samples < len(test):
        test = test.shuffle(seed=seed).select(range(max_eval_samples))
    if len(train) == 0 or len(test) == 0:
        raise HfdlError(f"the {'train' if len(train) == 0 else 'test'} split is empty: pass data with images in both, or a larger --train_val_split")
    train = train.select_columns([c for c in (image_column, label_column) if c])
    test = test.select_columns([c for c in (image_column, label_column) if c])
    channels = _channels(train, image_column)
    key = hashlib.sha256(f"v{DECODE_VERSION};{train._fingerprint};{test._fingerprint};{image_size};{channels}".encode()).hexdigest()[:16]
    folder = hfdl_cache_dir() / "decoded_images" / key
    if (folder / "images.safetensors").is_file():
        tensors = load_file(folder / "images.safetensors")
    else:
        tensors = {
            "train": _decode(train, image_column, image_size, channels, "the train split"),
            "test": _decode(test, image_column, image_size, channels, "the test split"),
        }
        if tensors["train"].shape[1:] != tensors["test"].shape[1:]:
            a, b = tensors["train"].shape[-1], tensors["test"].shape[-1]
            raise HfdlError(f"train images are {a}x{a} but test images {b}x{b}: pass --image_size N to bring both to N x N")
        if label_column:
            tensors["train_labels"] = torch.tensor(train[label_column], dtype=torch.long)
            tensors["test_labels"] = torch.tensor(test[label_column], dtype=torch.long)
        save_tensors_atomically(folder, "images.safetensors", tensors, {"source": source, "image_column": image_column, "label_column": label_column})
    if tensors["train"].shape[-1] < 4:
        raise HfdlError(f"images of {tensors['train'].shape[-1]} px are too small: pass --image_size 8 or more")
    return ImageTensors(tensors["train"], tensors["test"], tensors.get("train_labels"), tensors.get("test_labels"), label_names, source, test_split)
