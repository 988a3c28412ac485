"""Content images for fast style networks: the offline photos or any image dataset, as seeded random crops."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from hfdl.assets import OFFLINE_PHOTOS, offline_photos
from hfdl.core.images import image_to_tensor, load_image_dataset, open_image
from hfdl.errors import HfdlError


class _DatasetImages:
    """Lazy RGB images of one column of a `datasets.Dataset`."""

    def __init__(self, ds, column: str):
        self.ds, self.column = ds, column

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int):
        return open_image(self.ds[int(i)][self.column])


# the style Space's example photos: the offline default evaluates on them and never trains on them
HELD_OUT_PHOTOS = ("astronaut", "chelsea")
EVAL_IMAGES = 4  # a Hub / folder dataset: evaluate on the first images of its validation split, else of its training images


@dataclass
class ContentImages:
    """Training images (indexable, RGB PIL), evaluation photos and where both come from."""

    train: Sequence
    eval: list  # RGB PIL images, evaluated whole
    source: str
    eval_source: str


def load_content_images(dataset_name: str | None, config_name: str | None, image_column: str | None, max_samples: int | None) -> ContentImages:
    """The training images and the evaluation photos (held out where the data allows)."""
    if dataset_name in (None, OFFLINE_PHOTOS):
        photos = offline_photos()
        images = [img for name, img in photos if name not in HELD_OUT_PHOTOS]
        held_out = [img for name, img in photos if name in HELD_OUT_PHOTOS]
        source = f"offline {OFFLINE_PHOTOS} ({len(photos) - len(held_out)} real photos from scikit-image and scikit-learn)"
        eval_source = f"the held-out photos {' and '.join(HELD_OUT_PHOTOS)} (scikit-image, the Space's examples; never trained on)"
    else:
        import datasets

        dsd, source = load_image_dataset(dataset_name, dataset_config_name=config_name)
        split = "train" if "train" in dsd else next(iter(dsd))
        ds = dsd[split]
        columns = [c for c, f in ds.features.items() if isinstance(f, datasets.Image)]
        column = image_column or (columns[0] if columns else None)
        if column is None or column not in ds.column_names:
            raise HfdlError(f"{source} has no image column {image_column or ''}: pass --image_column (columns: {', '.join(ds.column_names)})")
        images = _DatasetImages(ds, column)
        held = next((name for name in ("validation", "test") if name in dsd and name != split and len(dsd[name])), None)
        eval_from = _DatasetImages(dsd[held], column) if held else images
        held_out = [eval_from[i] for i in range(min(EVAL_IMAGES, len(eval_from)))]
        eval_source = (
            f"the first {len(held_out)} images of the {held} split" if held else f"the first {len(held_out)} training images (the data has no validation split)"
        )
    if max_samples is not None:
        images = [images[i] for i in range(min(max_samples, len(images)))]
    if len(images) == 0:
        raise HfdlError(f"{source} holds no images: pass another --dataset_name")
    return ContentImages(images, held_out, source, eval_source)


def eval_photos(images: Sequence, size: int) -> list[torch.Tensor]:
    """Each image whole, resized to longer side `size`: (1, 3, H, W) in [0, 1]."""
    return [image_to_tensor(img, size) for img in images]


class ContentCrops(torch.utils.data.Dataset):
    """Random square crops (side 50-100% of the shorter edge) resized to `size`, flipped half the time; each image
    first resized to longer side `content_size` when given.

    The crop of sample i in epoch e is a function of (seed, epoch, i): resumed runs see the same data.
    """

    def __init__(self, images: Sequence, size: int, length: int, seed: int = 0, content_size: int | None = None):
        self.images, self.size, self.length, self.seed, self.epoch, self.content_size = images, size, length, seed, 0, content_size

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> torch.Tensor:
        from PIL import Image

        img = self.images[i % len(self.images)]
        if self.content_size:  # the scale of the photos the network will stylise
            scale = self.content_size / max(img.size)
            img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.Resampling.BILINEAR)
        rng = random.Random(f"{self.seed}-{self.epoch}-{i}")
        side = max(1, round(min(img.size) * rng.uniform(0.5, 1.0)))
        x0, y0 = rng.randint(0, img.width - side), rng.randint(0, img.height - side)
        crop = img.crop((x0, y0, x0 + side, y0 + side)).resize((self.size, self.size), Image.Resampling.BILINEAR)
        if rng.random() < 0.5:
            crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        return image_to_tensor(crop)[0]
