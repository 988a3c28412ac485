"""Offline detection and segmentation data: real Fashion-MNIST items pasted on real photo and texture crops.

One generator, two label kinds. Every image carries COCO boxes in the Hub's detection convention (as cppe-5:
`image_id`, `image`, `width`, `height`, `objects` with `id`, `area`, `bbox` = [x, y, w, h] and `category`) and a
semantic `mask` (0 = background, c + 1 = Fashion-MNIST class c, names in `SEGMENTATION_LABELS`). It is the offline
default of the detection and segmentation tasks; with internet, Hub datasets (--dataset_name) are the first-class path.

An item's foreground is its pixels above `ITEM_THRESHOLD`; its box is the exact extent of that foreground after
scaling, and the foreground is the paste's alpha, so the photo shows around the item. Each image is a function of
(seed, split, index) only, so the same call gives a byte-identical DatasetDict, built once and cached.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

from hfdl.assets import datasets as dataset_assets
from hfdl.assets.cache import hfdl_cache_dir
from hfdl.assets.datasets import FASHION_MNIST_LABELS, DatasetAsset, load_offline_dataset
from hfdl.assets.photos import OFFLINE_PHOTOS_PROVENANCE, offline_photos
from hfdl.errors import HfdlError

COMPOSITES_VERSION = 1  # part of the cache key: bump it whenever the generator's output changes
SEGMENTATION_LABELS = ["background", *FASHION_MNIST_LABELS]  # mask value v is SEGMENTATION_LABELS[v]
TEXTURES = ("brick", "grass", "gravel")  # scikit-image textures (grayscale, used as RGB)
SPLITS = {"train": ("train", 0), "validation": ("test", 1)}  # split -> (Fashion-MNIST split of its items, seed stream)
ITEM_THRESHOLD = 16  # an item pixel is foreground above this gray value (0..255)
ITEM_SCALE = (0.16, 0.45)  # an item's longer side as a fraction of the image side
EMPTY_FRACTION = 0.1  # images drawn with no object: valid negatives
MAX_IOU = 0.3  # a placement whose box IoU with an earlier box exceeds this is rejected
MAX_HIDDEN = 0.5  # ... and so is one that would hide more than this fraction of an earlier item's foreground
PLACEMENT_TRIES = 10  # positions tried per item before it is skipped
TINT_FRACTION = 0.7  # items given a random colour (the rest stay gray)
JPEG_QUALITY = 90  # images are JPEG as on the Hub; masks are lossless PNG
PARALLEL_MIN_IMAGES = 1000  # a split this large is drawn by worker processes (each costs ~2 s to start)
MAX_WORKERS = 8

COMPOSITES = DatasetAsset(
    name="composites",
    source=(
        "Fashion-MNIST items from the Debian package dataset-fashion-mnist (train items in train, test items in validation) "
        f"pasted on crops of {OFFLINE_PHOTOS_PROVENANCE['source']} and the scikit-image textures {', '.join(TEXTURES)}"
    ),
    license=(
        "Fashion-MNIST items: MIT; backgrounds: scikit-image photos and textures CC0 / public domain, scikit-learn china.jpg and flower.jpg CC-BY-2.0 (Flickr)"
    ),
    hub_equivalent="cppe-5 or any Hub detection dataset with image + objects (--dataset_name); for segmentation any Hub dataset with image + mask",
    description=(
        "Synthetic multi-object scenes from real images: 0-N Fashion-MNIST items (10 classes) at 16-45% of the image side "
        "on real photo and texture crops, with COCO boxes (the exact foreground extent) and a semantic mask (11 classes)"
    ),
)


def composite_dataset(num_train: int = 2000, num_validation: int = 400, image_size: int = 160, max_objects: int = 6, seed: int = 0):
    """The offline detection + segmentation set as a `datasets.DatasetDict` (`train`, `validation`), built once, then loaded from the cache.

    Columns: `image_id`, `image` (JPEG), `width`, `height`, `objects` {`id`, `area`, `bbox` [x, y, w, h], `category`}
    (dict of lists per row, as cppe-5; names via `category_names(features)`) and `mask` (mode "L" PNG, names `SEGMENTATION_LABELS`).
    """
    import datasets

    params = _checked_arguments(num_train=num_train, num_validation=num_validation, image_size=image_size, max_objects=max_objects, seed=seed)
    cache = hfdl_cache_dir() / "datasets" / f"composites-{_cache_key(params)}"
    if not (cache / "dataset_dict.json").is_file():
        _save_atomically(_build(params), cache, params)
    return datasets.load_from_disk(str(cache))


def category_names(features) -> list[str]:
    """The class names of a detection dataset's `objects` (features, or a Dataset), in either form `datasets` 5.x gives.

    `Sequence({...})` (cppe-5 and this module) is a dict of lists: `features["objects"]["category"].feature.names`.
    `List({...})`, a list of dicts: `features["objects"].feature["category"].names`. The key may also be `categories`.
    """
    import datasets

    features = getattr(features, "features", features)
    objects = features.get("objects") if hasattr(features, "get") else None
    inner = objects if isinstance(objects, dict) else getattr(objects, "feature", None)
    for key in ("category", "categories"):
        label = inner.get(key) if isinstance(inner, dict) else None
        label = getattr(label, "feature", label)
        if isinstance(label, datasets.ClassLabel):
            return list(label.names)
    raise HfdlError("the dataset's `objects` carry no ClassLabel `category`: pass the class names with --label_names")


def _checked_arguments(**params) -> dict:
    for name, value in params.items():
        if isinstance(value, bool) or not isinstance(value, int):
            raise HfdlError(f"composite_dataset: {name} must be an integer, got {value!r}")
    for name in ("num_train", "num_validation"):  # datasets cannot load back a split saved with no rows
        if params[name] < 1:
            raise HfdlError(f"composite_dataset: {name} must be >= 1 (each split needs an image), got {params[name]}")
    for name in ("max_objects", "seed"):
        if params[name] < 0:
            raise HfdlError(f"composite_dataset: {name} must be >= 0, got {params[name]}")
    if params["image_size"] < 32:
        raise HfdlError(f"composite_dataset: image_size must be >= 32 pixels, got {params['image_size']}")
    return params


def _cache_key(params: dict) -> str:
    text = json.dumps({"version": COMPOSITES_VERSION, **params}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _save_atomically(dsd, cache: Path, params: dict) -> None:
    """Build into a temporary folder and rename it, so an interrupted build never leaves half a dataset."""
    tmp = cache.with_name(f"{cache.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        dsd.save_to_disk(str(tmp))
        provenance = {**COMPOSITES.provenance(), "version": COMPOSITES_VERSION, "arguments": params, "segmentation_labels": SEGMENTATION_LABELS}
        (tmp / "provenance.json").write_text(json.dumps(provenance, indent=2))
        if (cache / "dataset_dict.json").is_file():  # another process finished the same build first
            return
        shutil.rmtree(cache, ignore_errors=True)  # an incomplete folder never comes from here, but may be left by hand
        tmp.rename(cache)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _fashion_mnist():
    try:
        return load_offline_dataset("fashion_mnist")
    except HfdlError:
        folder = dataset_assets.FASHION_MNIST_DIR
        if (folder / "train-images-idx3-ubyte.gz").is_file() and (folder / "t10k-images-idx3-ubyte.gz").is_file():
            raise
        raise HfdlError(
            f"the offline detection / segmentation set pastes Fashion-MNIST items, and {folder} lacks them: "
            "run `apt-get install dataset-fashion-mnist` (or `make setup`), or pass a Hub dataset with --dataset_name"
        ) from None


def _item_pool(split: str) -> "_Items":
    """The items of a Fashion-MNIST split ("train" / "test") as arrays: read from the Debian package's IDX files where
    they are (~0.3 s), else decoded from the cached dataset (the same pixels, ~3 s for the 60,000 training items)."""
    return _item_pool_from(dataset_assets.FASHION_MNIST_DIR, split)


@functools.cache
def _item_pool_from(folder: Path, split: str) -> "_Items":
    prefix = {"train": "train", "test": "t10k"}[split]
    images, labels = folder / f"{prefix}-images-idx3-ubyte.gz", folder / f"{prefix}-labels-idx1-ubyte.gz"
    if images.is_file() and labels.is_file():
        return _Items(dataset_assets._read_idx(images), dataset_assets._read_idx(labels))
    rows = _fashion_mnist()[split].with_format("numpy")[:]
    return _Items(rows["image"], rows["label"])


@functools.cache
def _backgrounds() -> list:
    from PIL import Image
    from skimage import data

    photos = [image for _, image in offline_photos()]
    return photos + [Image.fromarray(getattr(data, name)()).convert("RGB") for name in TEXTURES]


def _features():
    import datasets

    objects = {
        "id": datasets.Value("int64"),
        "area": datasets.Value("float32"),
        "bbox": datasets.Sequence(datasets.Value("float32"), length=4),
        "category": datasets.ClassLabel(names=FASHION_MNIST_LABELS),
    }
    return datasets.Features(
        {
            "image_id": datasets.Value("int64"),
            "image": datasets.Image(),
            "width": datasets.Value("int32"),
            "height": datasets.Value("int32"),
            "objects": datasets.Sequence(objects),  # a dict of lists per row, as cppe-5
            "mask": datasets.Image(),
        }
    )


def _build(params: dict):
    import datasets

    info = datasets.DatasetInfo(description=COMPOSITES.description, license=COMPOSITES.license, features=_features())
    counts = {"train": params["num_train"], "validation": params["num_validation"]}
    splits = {}
    for split, count in counts.items():
        rows = _draw(split, count, params)
        columns = {name: [row[name] for row in rows] for name in info.features}
        splits[split] = datasets.Dataset.from_dict(columns, features=info.features, info=info.copy(), split=split)
    return datasets.DatasetDict(splits)


def _draw(split: str, count: int, params: dict) -> list[dict]:
    """Images 0..count-1 of `split`, in order. On Linux a large split is drawn by one forked worker per CPU (each image
    is a function of (seed, split, index) only, so the rows are the same however they are shared out): the offline
    segmentation default's 6,000 training scenes take ~20 s on 2 cores instead of ~40 s."""
    import multiprocessing

    workers = min(MAX_WORKERS, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)
    if count < PARALLEL_MIN_IMAGES or workers < 2 or not sys.platform.startswith("linux"):
        return _draw_range(split, 0, count, params)
    from concurrent.futures import ProcessPoolExecutor

    _item_pool(SPLITS[split][0]), _backgrounds()  # loaded once, here: the forked workers inherit them
    bounds = [count * k // (4 * workers) for k in range(4 * workers + 1)]  # a few chunks per worker, so none waits long
    # fork, not spawn: spawn would re-run a caller's unguarded script; the workers only run numpy and PIL (never the
    # thread pools torch may hold in this process)
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
        chunks = pool.map(_draw_range, *zip(*[(split, a, b, params) for a, b in zip(bounds, bounds[1:])]))
        return [row for rows in chunks for row in rows]


def _draw_range(split: str, start: int, stop: int, params: dict) -> list[dict]:
    items, backgrounds = _item_pool(SPLITS[split][0]), _backgrounds()
    return [_example(items, backgrounds, split, index, params) for index in range(start, stop)]


class _Items:
    """The item pool of one split: (N, 28, 28) uint8 images and their N labels, rows as the Dataset gives them."""

    def __init__(self, images, labels):
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict:
        return {"image": self.images[index], "label": self.labels[index]}


def _example(items, backgrounds, split: str, index: int, params: dict) -> dict:
    """Image `index` of `split`: a function of (seed, split, index) only."""
    import numpy as np

    rng = np.random.default_rng([params["seed"], SPLITS[split][1], index])
    size, max_objects = params["image_size"], params["max_objects"]
    canvas = _background(rng, backgrounds, size)
    instances = np.full((size, size), -1, dtype=np.int16)  # which placed item shows at each pixel
    placed: list[tuple[tuple[int, int, int, int], int, int]] = []  # (box, category, foreground pixels)
    wanted = 0 if max_objects == 0 or rng.random() < EMPTY_FRACTION else int(rng.integers(1, max_objects + 1))
    for _ in range(wanted):
        row = items[int(rng.integers(len(items)))]
        values = _scaled_item(rng, np.asarray(row["image"]), size)
        if values is None:
            continue
        foreground = values > ITEM_THRESHOLD
        position = _place(rng, foreground, placed, instances, size)
        if position is None:
            continue
        x, y = position
        _paste(rng, canvas, values, foreground, x, y)
        instances[y : y + foreground.shape[0], x : x + foreground.shape[1]][foreground] = len(placed)
        placed.append(((x, y, foreground.shape[1], foreground.shape[0]), int(row["label"]), int(foreground.sum())))
    categories = np.array([category for _, category, _ in placed] + [-1], dtype=np.int16)  # index -1 -> background
    mask = (categories[instances] + 1).astype(np.uint8)
    objects = {
        "id": [index * max(max_objects, 1) + k for k in range(len(placed))],
        "area": [float(w * h) for (_, _, w, h), _, _ in placed],
        "bbox": [[float(v) for v in box] for box, _, _ in placed],
        "category": [category for _, category, _ in placed],
    }
    image, mask = _encode(canvas, "JPEG"), _encode(mask, "PNG")
    return {"image_id": index, "image": image, "width": size, "height": size, "objects": objects, "mask": mask}


def _background(rng, backgrounds: list, size: int):
    """A random square crop of a random photo or texture, maybe mirrored, resized to `size`, as a writable uint8 array."""
    import numpy as np
    from PIL import Image

    source = backgrounds[int(rng.integers(len(backgrounds)))]
    width, height = source.size
    side = max(16, int(rng.uniform(0.3, 1.0) * min(width, height)))
    x, y = int(rng.integers(0, width - side + 1)), int(rng.integers(0, height - side + 1))
    crop = source.resize((size, size), Image.BILINEAR, box=(x, y, x + side, y + side))
    if rng.random() < 0.5:
        crop = crop.transpose(Image.FLIP_LEFT_RIGHT)
    return np.array(crop)


def _tight(values):
    """`values` cropped to the extent of its foreground, or None when it has none."""
    import numpy as np

    rows, cols = np.nonzero(values > ITEM_THRESHOLD)
    if rows.size == 0:
        return None
    return values[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]


def _scaled_item(rng, values, size: int):
    """A 28x28 item cropped to its foreground, maybe mirrored, scaled so its longer side is ITEM_SCALE of `size`, cropped again."""
    import numpy as np
    from PIL import Image

    crop = _tight(values)
    if crop is None:
        return None
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    factor = rng.uniform(*ITEM_SCALE) * size / max(crop.shape)
    width, height = max(1, round(crop.shape[1] * factor)), max(1, round(crop.shape[0] * factor))
    scaled = Image.fromarray(np.ascontiguousarray(crop)).resize((width, height), Image.BILINEAR)
    return _tight(np.asarray(scaled))


def _place(rng, foreground, placed: list, instances, size: int):
    """A top-left corner where the box overlaps no earlier box by IoU > MAX_IOU and hides at most MAX_HIDDEN of any earlier item."""
    import numpy as np

    height, width = foreground.shape
    for _ in range(PLACEMENT_TRIES):
        x, y = int(rng.integers(0, size - width + 1)), int(rng.integers(0, size - height + 1))
        if any(_iou((x, y, width, height), box) > MAX_IOU for box, _, _ in placed):
            continue
        if placed:
            covered = instances[y : y + height, x : x + width][foreground]
            hidden = np.bincount(covered[covered >= 0], minlength=len(placed))
            visible = np.bincount(instances[instances >= 0], minlength=len(placed))
            totals = np.array([pixels for _, _, pixels in placed])
            if np.any(visible - hidden < (1 - MAX_HIDDEN) * totals):
                continue
        return x, y
    return None


def _iou(a, b) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    inter = max(0, min(ax + aw, bx + bw) - max(ax, bx)) * max(0, min(ay + ah, by + bh) - max(ay, by))
    return inter / (aw * ah + bw * bh - inter)


def _paste(rng, canvas, values, foreground, x: int, y: int) -> None:
    """Alpha-composite the item (its foreground as alpha) at (x, y), gray or tinted, in place."""
    import numpy as np

    tint = np.ones(3)
    if rng.random() < TINT_FRACTION:
        tint = rng.uniform(0.15, 1.0, 3)
        tint /= tint.max()
    shade = values.astype(np.float32) / float(values.max())
    rgb = np.rint(255.0 * (0.2 + 0.8 * shade)[..., None] * tint).astype(np.uint8)
    height, width = foreground.shape
    canvas[y : y + height, x : x + width][foreground] = rgb[foreground]


def _encode(array, fmt: str) -> dict:
    import io

    from PIL import Image

    buffer = io.BytesIO()  # uint8 (H, W, 3) -> RGB, (H, W) -> L
    Image.fromarray(array).save(buffer, format=fmt, **({"quality": JPEG_QUALITY} if fmt == "JPEG" else {}))
    return {"bytes": buffer.getvalue(), "path": None}
