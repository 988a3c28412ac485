"""Labelled image data (classification, similarity): columns, splits (stratified holdout and subsets), unreadable images, timm transforms."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

import datasets
import torch
from PIL import Image

from hfdl.core.images import EVAL_SPLIT_NAMES, SeededImages, find_columns, to_rgb
from hfdl.errors import HfdlError

logger = logging.getLogger(__name__)


@dataclass
class PreparedData:
    train: datasets.Dataset
    eval: datasets.Dataset
    eval_split: str
    label_names: list[str]
    image_column: str
    label_column: str
    source: str


def prepare_splits(
    dsd: datasets.DatasetDict,
    source: str,
    image_column: str | None = None,
    label_column: str | None = None,
    train_val_split: float = 0.15,
    max_train_samples: int | None = None,
    max_eval_samples: int | None = None,
    seed: int = 42,
    max_bad_image_fraction: float = 0.01,
) -> PreparedData:
    """Pick train/eval splits (stratified split when there is no eval split), subsample, drop corrupt images."""
    if "train" not in dsd:
        raise HfdlError(f"the dataset has no 'train' split (splits: {list(dsd)}): pass a dataset with a train split or --train_dir")
    train = dsd["train"]
    image_column, label_column = find_columns(train, image_column, label_column)
    if not isinstance(train.features[label_column], datasets.ClassLabel):
        train = train.class_encode_column(label_column)
    label_names = list(train.features[label_column].names)
    if len(train) == 0:
        raise HfdlError("the train split is empty: point --dataset_name/--train_dir at data with images")
    eval_split = next((s for s in EVAL_SPLIT_NAMES if s in dsd), None)
    if eval_split is not None:
        evald = dsd[eval_split]
        if not isinstance(evald.features[label_column], datasets.ClassLabel):
            evald = evald.cast_column(label_column, train.features[label_column])
        elif evald.features[label_column].names != label_names:
            raise HfdlError(f"the '{eval_split}' split has labels {evald.features[label_column].names} but train has {label_names}: fix the split folders")
    else:
        if not 0.0 < train_val_split < 1.0:
            raise HfdlError(f"--train_val_split must be in (0, 1), got {train_val_split}")
        try:
            parts = train.train_test_split(test_size=train_val_split, stratify_by_column=label_column, seed=seed)
        except ValueError:  # a class too small to stratify
            parts = train.train_test_split(test_size=train_val_split, seed=seed)
        train, evald, eval_split = parts["train"], parts["test"], f"train[{train_val_split:.0%} stratified holdout, seed {seed}]"
    if max_train_samples is not None and max_train_samples < len(train):
        train = _stratified_subset(train, label_column, max_train_samples, seed)
    if max_eval_samples is not None and max_eval_samples < len(evald):
        evald = _stratified_subset(evald, label_column, max_eval_samples, seed)
    train = drop_unreadable(train, image_column, max_bad_image_fraction, "train")
    evald = drop_unreadable(evald, image_column, max_bad_image_fraction, "eval")
    return PreparedData(train, evald, eval_split, label_names, image_column, label_column, source)


def load_labelled_data(data_args: "ImageDataArguments", seed: int, accelerator=None) -> PreparedData:
    """The data arguments' dataset (`load_image_dataset`), split and checked (`prepare_splits`): the main process
    first, so the other processes read what it built and cached."""
    from contextlib import nullcontext

    from hfdl.core.images import load_image_dataset

    with accelerator.main_process_first() if accelerator is not None else nullcontext():  # an offline dataset is built once
        dsd, source = load_image_dataset(data_args.dataset_name, data_args.train_dir, data_args.validation_dir, data_args.dataset_config_name)
        return prepare_splits(
            dsd, source, data_args.image_column, data_args.label_column, data_args.train_val_split,
            data_args.max_train_samples, data_args.max_eval_samples, seed, data_args.max_bad_image_fraction,
        )  # fmt: skip


def _stratified_subset(ds: datasets.Dataset, label_column: str, n: int, seed: int) -> datasets.Dataset:
    try:
        return ds.train_test_split(train_size=n, stratify_by_column=label_column, seed=seed)["train"]
    except ValueError:
        return ds.shuffle(seed=seed).select(range(n))


def _readable(example: dict, image_column: str) -> bool:
    img = example[image_column]
    try:
        if isinstance(img, Image.Image):
            img.load()
            return True
        if img is None:
            return False
        import io

        with Image.open(io.BytesIO(img["bytes"]) if img.get("bytes") else img["path"]) as im:
            im.load()
        return True
    except Exception:  # any decoding failure marks the image unreadable
        return False


def drop_unreadable(ds: datasets.Dataset, image_column: str, max_fraction: float, split: str) -> datasets.Dataset:
    """Skip images PIL cannot decode; raise when more than `max_fraction` of them are bad."""
    if len(ds) == 0:
        raise HfdlError(f"the {split} split is empty after selection: lower --train_val_split or raise --max_{split}_samples")
    raw = ds.cast_column(image_column, datasets.Image(decode=False))
    keep = raw.map(
        lambda ex: {"_ok": _readable(ex, image_column)}, remove_columns=[c for c in raw.column_names if c != image_column], desc=f"checking {split} images"
    )["_ok"]
    bad = len(keep) - sum(keep)
    if bad == 0:
        return ds
    if bad / len(keep) > max_fraction:
        raise HfdlError(f"{bad} of {len(keep)} {split} images are unreadable (over {max_fraction:.0%}): fix or remove them, or raise --max_bad_image_fraction")
    logger.warning("skipped %d unreadable %s images of %d", bad, split, len(keep))
    return ds.select([i for i, ok in enumerate(keep) if ok])


# --------------------------------------------------------------------------------------------------
# Transforms
# --------------------------------------------------------------------------------------------------


@dataclass
class AugmentConfig:
    hflip: float = 0.5
    rotation: float = 0.0  # degrees
    translate: float = 0.0  # fraction of the image size
    scale_min: float = 0.08  # RandomResizedCrop lower scale bound ("scale" and "random crop")
    gaussian_noise: float = 0.0  # std in normalised units
    auto_augment: str | None = None  # timm string, e.g. "rand-m9-mstd0.5"


def build_transforms(data_config: dict, aug: AugmentConfig | None) -> tuple[Callable, Callable]:
    """Train and eval transforms from the backbone's own timm data config (plus the lecture's augmentations)."""
    from timm.data import create_transform
    from torchvision.transforms import v2

    eval_tf = create_transform(**data_config, is_training=False)
    if aug is None:
        return eval_tf, eval_tf
    primary, secondary, final = create_transform(
        **{k: v for k, v in data_config.items() if k != "crop_pct" and k != "crop_mode"},
        is_training=True,
        scale=(aug.scale_min, 1.0),
        hflip=aug.hflip,
        auto_augment=aug.auto_augment,
        color_jitter=None,
        re_prob=0.0,
        separate=True,
    )
    steps = list(primary.transforms)
    if aug.rotation or aug.translate:
        steps.append(v2.RandomAffine(degrees=aug.rotation, translate=(aug.translate, aug.translate) if aug.translate else None))
    steps += list(secondary.transforms) + list(final.transforms)
    if aug.gaussian_noise:
        steps.append(v2.GaussianNoise(sigma=aug.gaussian_noise, clip=False))
    return v2.Compose(steps), eval_tf


class TransformedImages(SeededImages):
    """(pixel_values, label) view of a Dataset; grayscale/RGBA converted to RGB; with `seed`, the augmentation
    is a pure function of (seed, epoch, index) (see `SeededImages`)."""

    def __init__(self, ds: datasets.Dataset, image_column: str, label_column: str | None, transform: Callable, seed: int | None = None):
        super().__init__(ds, seed)
        self.image_column, self.label_column, self.transform = image_column, label_column, transform

    def __getitem__(self, idx: int) -> tuple[torch.Tensor, int]:
        ex = self.ds[int(idx)]
        label = ex[self.label_column] if self.label_column is not None else -1  # unlabelled images (a search gallery)
        return self.seeded(idx, self.transform, to_rgb(ex[self.image_column])), label


# --------------------------------------------------------------------------------------------------
# Arguments
# --------------------------------------------------------------------------------------------------


@dataclass
class ImageDataArguments:
    """Labelled images from any source `finetune.py` reads: a Hub dataset, a saved dataset, an imagefolder, an offline
    name. With no data argument a task's `embedded_defaults` (dataset_name, max_train_samples, image_size) apply."""

    embedded_defaults: ClassVar[dict] = {}

    dataset_name: str | None = field(
        default=None,
        metadata={"help": "Hub dataset id, saved/imagefolder dir, or offline name (fashion_mnist, digits). None with no --train_dir: the embedded default."},
    )
    dataset_config_name: str | None = field(default=None, metadata={"help": "Hub dataset configuration."})
    train_dir: str | None = field(default=None, metadata={"help": "imagefolder with one subfolder per class."})
    validation_dir: str | None = field(default=None, metadata={"help": "imagefolder for evaluation."})
    image_column: str | None = field(default=None, metadata={"help": "Image column (auto-detected)."})
    label_column: str | None = field(default=None, metadata={"help": "Label column (auto-detected)."})
    train_val_split: float = field(default=0.15, metadata={"help": "Stratified holdout fraction when there is no validation/test split."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Stratified subsample of the training set."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Stratified subsample of the evaluation set."})
    image_size: int | None = field(default=None, metadata={"help": "Input resolution (default: the backbone's)."})
    hflip: float = field(default=0.5, metadata={"help": "Horizontal flip probability."})
    rotation: float = field(default=0.0, metadata={"help": "Random rotation, degrees."})
    translate: float = field(default=0.0, metadata={"help": "Random translation, fraction of the size."})
    scale_min: float = field(default=0.8, metadata={"help": "Random resized crop: smallest area fraction (scale + random crop)."})
    gaussian_noise: float = field(default=0.0, metadata={"help": "Gaussian noise std on the normalised tensor."})
    auto_augment: str | None = field(default=None, metadata={"help": "timm auto-augment, e.g. rand-m9-mstd0.5 (RandAugment)."})
    max_bad_image_fraction: float = field(default=0.01, metadata={"help": "Fail when more images than this are unreadable (fewer are skipped)."})

    def __post_init__(self):
        self.embedded_default = self.dataset_name is None and self.train_dir is None and self.validation_dir is None
        if self.embedded_default:
            for name, value in self.embedded_defaults.items():
                if getattr(self, name) is None:
                    setattr(self, name, value)
        if not 0 < self.scale_min <= 1:
            raise HfdlError(f"--scale_min must be in (0, 1], got {self.scale_min}")
        for name in ("max_train_samples", "max_eval_samples", "image_size"):
            v = getattr(self, name)
            if v is not None and v < 1:
                raise HfdlError(f"--{name} must be >= 1, got {v}")

    def augment(self) -> AugmentConfig:
        return AugmentConfig(self.hflip, self.rotation, self.translate, self.scale_min, self.gaussian_noise, self.auto_augment)
