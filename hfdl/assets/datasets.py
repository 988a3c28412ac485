"""Real image datasets shipped by Debian and scikit-learn, built once into the `datasets.DatasetDict` the Hub would give."""

from __future__ import annotations

import gzip
import json
import logging
import os
import struct
from dataclasses import asdict, dataclass
from pathlib import Path

from hfdl.assets.cache import hfdl_cache_dir, private_tmp
from hfdl.errors import HfdlError

logger = logging.getLogger(__name__)

FASHION_MNIST_DIR = Path(os.environ.get("HFDL_FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist"))
FASHION_MNIST_LABELS = [
    "T - shirt / top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]  # exactly the ClassLabel names of the Hub dataset zalando-datasets/fashion_mnist


@dataclass(frozen=True)
class DatasetAsset:
    name: str
    source: str
    license: str
    hub_equivalent: str
    description: str

    def provenance(self) -> dict:
        return asdict(self)

    @property
    def hub_id(self) -> str | None:
        """The Hub dataset with the same data, or None where there is none (`hub_equivalent` then says why, in brackets)."""
        return None if self.hub_equivalent.startswith("(") else self.hub_equivalent


DATASETS: dict[str, DatasetAsset] = {
    "fashion_mnist": DatasetAsset(
        name="fashion_mnist",
        source="Debian package dataset-fashion-mnist (/usr/share/datasets/fashion-mnist)",
        license="mit",
        hub_equivalent="zalando-datasets/fashion_mnist",
        description="Zalando Fashion-MNIST: 60k train / 10k test 28x28 grayscale images, 10 classes",
    ),
    "digits": DatasetAsset(
        name="digits",
        source="scikit-learn sklearn.datasets.load_digits",
        license="bsd-3-clause",
        hub_equivalent="(none; UCI optical recognition of handwritten digits)",
        description="UCI handwritten digits: 1797 8x8 grayscale images, 10 classes (no predefined split)",
    ),
}


def _read_idx(path: Path) -> "numpy.ndarray":  # noqa: F821
    import numpy as np

    with gzip.open(path, "rb") as f:
        data = f.read()
    zero, dtype, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype != 0x08:
        raise HfdlError(f"{path} is not an IDX ubyte file: reinstall dataset-fashion-mnist")
    shape = struct.unpack(">" + "I" * ndim, data[4 : 4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _build_fashion_mnist(splits: tuple[str, ...] = ("train", "test")):
    import datasets

    files = {
        s: (FASHION_MNIST_DIR / f"{p}-images-idx3-ubyte.gz", FASHION_MNIST_DIR / f"{p}-labels-idx1-ubyte.gz")
        for s, p in (("train", "train"), ("test", "t10k"))
        if s in splits
    }
    missing = [str(p) for pair in files.values() for p in pair if not p.is_file()]
    if missing:
        raise HfdlError(
            f"offline dataset 'fashion_mnist' needs {missing[0]}: run `apt-get install dataset-fashion-mnist` "
            "(or `make setup`), or use --dataset_name zalando-datasets/fashion_mnist with internet"
        )
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=FASHION_MNIST_LABELS)})
    splits = {}
    for split, (img_path, lbl_path) in files.items():
        images, labels = _read_idx(img_path), _read_idx(lbl_path)
        splits[split] = _dataset_from_arrays(images, labels, features)
    return datasets.DatasetDict(splits)


def _build_digits():
    import datasets
    import numpy as np
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.clip(bunch.images * (255.0 / 16.0), 0, 255).round().astype(np.uint8)
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=[str(i) for i in range(10)])})
    return datasets.DatasetDict({"train": _dataset_from_arrays(images, bunch.target, features)})


def _dataset_from_arrays(images, labels, features):
    """uint8 (N, H, W) arrays -> a Dataset with PNG-encoded `Image` column, as the Hub stores them."""
    import io

    import datasets
    from PIL import Image

    def png(a) -> dict:
        buf = io.BytesIO()
        Image.fromarray(a, mode="L").save(buf, format="PNG")
        return {"bytes": buf.getvalue(), "path": None}

    return datasets.Dataset.from_dict({"image": [png(a) for a in images], "label": [int(v) for v in labels]}, features=features)


_DATASET_BUILDERS = {"fashion_mnist": _build_fashion_mnist, "digits": _build_digits}


def load_offline_dataset(name: str):
    """Return an offline dataset as a `datasets.DatasetDict` (built once, then loaded from the cache)."""
    import datasets

    cache = hfdl_cache_dir() / "datasets" / name
    if (cache / "dataset_dict.json").is_file():
        return datasets.load_from_disk(str(cache))
    import shutil

    dsd = _DATASET_BUILDERS[name]()
    tmp = private_tmp(cache)
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        dsd.save_to_disk(str(tmp))
        (tmp / "provenance.json").write_text(json.dumps(DATASETS[name].provenance(), indent=2))
        if not (cache / "dataset_dict.json").is_file():  # else another process finished the same build first
            shutil.rmtree(cache, ignore_errors=True)
            tmp.rename(cache)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return datasets.load_from_disk(str(cache))


def load_offline_split(name: str, split: str):
    """One split of an offline dataset: from the cache when the dataset was built, else (Fashion-MNIST) only that
    split, built now (its 10k test images in about a second) and not cached."""
    if name == "fashion_mnist" and not (hfdl_cache_dir() / "datasets" / name / "dataset_dict.json").is_file():
        return _build_fashion_mnist(splits=(split,))[split]
    return load_offline_dataset(name)[split]
