"""Content images for fast style networks: the offline photos or any image dataset, as seeded random crops."""

from __future__ import annotations

import random
from collections.abc import Sequence

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


def load_content_images(dataset_name: str | None, config_name: str | None, image_column: str | None, max_samples: int | None) -> tuple[Sequence, str]:
    """Content images (indexable, RGB PIL) and a description of their source."""
    if dataset_name in (None, OFFLINE_PHOTOS):
        images = [img for _, img in offline_photos(max_samples)]
        source = f"offline {OFFLINE_PHOTOS} ({len(images)} real photos from scikit-image and scikit-learn)"
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
    if max_samples is not None:
        images = [images[i] for i in range(min(max_samples, len(images)))]
    if len(images) == 0:
        raise HfdlError(f"{source} holds no images: pass another --dataset_name")
    return images, source


class ContentCrops(torch.utils.data.Dataset):
    """Random square crops (side 50-100% of the shorter edge) resized to `size`, flipped half the time.

    The crop of sample i in epoch e is a function of (seed, epoch, i): resumed runs see the same data.
    """

    def __init__(self, images: Sequence, size: int, length: int, seed: int = 0):
        self.images, self.size, self.length, self.seed, self.epoch = images, size, length, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> torch.Tensor:
        from PIL import Image

        img = self.images[i % len(self.images)]
        rng = random.Random(f"{self.seed}-{self.epoch}-{i}")
        side = max(1, round(min(img.size) * rng.uniform(0.5, 1.0)))
        x0, y0 = rng.randint(0, img.width - side), rng.randint(0, img.height - side)
        crop = img.crop((x0, y0, x0 + side, y0 + side)).resize((self.size, self.size), Image.Resampling.BILINEAR)
        if rng.random() < 0.5:
            crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        return image_to_tensor(crop)[0]


def centre_crops(images: Sequence, size: int, n: int = 4) -> torch.Tensor:
    """A fixed evaluation batch: centre crops of the first `n` content images."""
    from PIL import Image

    out = []
    for i in range(min(n, len(images))):
        img = images[i]
        side = min(img.size)
        box = ((img.width - side) // 2, (img.height - side) // 2)
        out.append(image_to_tensor(img.crop((*box, box[0] + side, box[1] + side)).resize((size, size), Image.Resampling.BILINEAR))[0])
    return torch.stack(out)
