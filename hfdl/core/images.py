"""Image I/O every task shares: image datasets (Hub id, imagefolder, saved folder, offline name) and single
images (path, PIL or array -> RGB; tensors in [0, 1])."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

import datasets
import torch

from hfdl import assets
from hfdl.errors import HfdlError

logger = logging.getLogger(__name__)

EVAL_SPLIT_NAMES = ("validation", "valid", "val", "test")


def load_image_dataset(
    dataset_name: str | None = None,
    train_dir: str | None = None,
    validation_dir: str | None = None,
    dataset_config_name: str | None = None,
    cache_dir: str | None = None,
) -> tuple[datasets.DatasetDict, str]:
    """Resolve a dataset and return it with a description of where it came from.

    Order: `--train_dir/--validation_dir` imagefolders, a local directory given as `dataset_name`,
    an offline asset name (`fashion_mnist`, `digits`), then a Hub dataset id (real Hub path, HF cache,
    `HF_HUB_OFFLINE` honoured).
    """
    if train_dir or validation_dir:
        if dataset_name:
            raise HfdlError("pass either --dataset_name or --train_dir/--validation_dir, not both")
        data_files = {}
        for split, d in (("train", train_dir), ("validation", validation_dir)):
            if d is None:
                continue
            if not os.path.isdir(d):
                raise HfdlError(f"--{split if split == 'train' else 'validation'}_dir {d} is not a directory: pass a folder with one subfolder per class")
            data_files[split] = os.path.join(d, "**")
        if "train" not in data_files:
            raise HfdlError("--validation_dir needs --train_dir too")
        return _guard(lambda: datasets.load_dataset("imagefolder", data_files=data_files, cache_dir=cache_dir), "imagefolder"), f"imagefolder {train_dir}"
    if not dataset_name:
        raise HfdlError("no data: pass --dataset_name (Hub id or one of: fashion_mnist, digits) or --train_dir DIR")
    if os.path.isdir(dataset_name):
        if os.path.isfile(os.path.join(dataset_name, "dataset_dict.json")):
            return datasets.load_from_disk(dataset_name), f"saved DatasetDict {dataset_name}"
        return _guard(lambda: datasets.load_dataset("imagefolder", data_dir=dataset_name, cache_dir=cache_dir), dataset_name), f"imagefolder {dataset_name}"
    if dataset_name in assets.DATASETS:
        return assets.load_offline_dataset(dataset_name), f"offline asset {dataset_name} ({assets.DATASETS[dataset_name].source})"
    # datasets >= 4 runs no dataset scripts: Hub datasets load as data files only (no remote code).
    hub = _guard(lambda: datasets.load_dataset(dataset_name, dataset_config_name, cache_dir=cache_dir), dataset_name)
    return hub, f"Hub dataset {dataset_name}"


def find_columns(ds: datasets.Dataset, image_column: str | None, label_column: str | None, label_required: bool = True) -> tuple[str, str | None]:
    """Auto-detect the image and label columns (or validate the given ones) with listing errors; without
    `label_required`, a dataset with no label column gives `None` for it."""
    feats = ds.features
    cols = list(feats)
    if image_column is None:
        found = [c for c, f in feats.items() if isinstance(f, datasets.Image)]
        if len(found) != 1:
            what = "no" if not found else "several"
            raise HfdlError(f"{what} image columns found among {cols}: pass --image_column NAME")
        image_column = found[0]
    elif image_column not in feats:
        raise HfdlError(f"--image_column '{image_column}' is not a column; the columns are {cols}")
    if label_column is None:
        found = [c for c, f in feats.items() if isinstance(f, datasets.ClassLabel)]
        if not found:
            found = [c for c in ("label", "labels", "class", "target") if c in feats]
        if not found and not label_required:
            return image_column, None
        if len(found) != 1:
            what = "no" if not found else "several"
            raise HfdlError(f"{what} label columns found among {cols}: pass --label_column NAME")
        label_column = found[0]
    elif label_column not in feats:
        raise HfdlError(f"--label_column '{label_column}' is not a column; the columns are {cols}")
    return image_column, label_column


def _guard(fn: Callable[[], datasets.DatasetDict], name: str) -> datasets.DatasetDict:
    try:
        out = fn()
    except HfdlError:
        raise
    except Exception as err:  # datasets raises many types; the user needs one line
        offline = ", ".join(assets.DATASETS)
        msg = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        hint = "check the id or connect to the internet"
        if os.environ.get("HF_HUB_OFFLINE") == "1" or "offline" in msg.lower() or "connect" in msg.lower():
            hint = "you seem to be offline and it is not cached: prefetch it with internet"
        raise HfdlError(f"could not load dataset '{name}' ({type(err).__name__}: {msg[:200]}); {hint}, or use an offline dataset: {offline}") from err
    if not isinstance(out, datasets.DatasetDict):
        out = datasets.DatasetDict({"train": out})
    return out


MAX_INPUT_PIXELS = 50_000_000  # refuse decompression bombs before resizing


# A dense predictor trained on random crops sees objects larger than at the same input size in use; it runs at this
# multiple of its training size (Touvron et al. 2019, FixRes). Chosen for detection on composites drawn with another
# seed than the validation split: mAP@.50 at 160 / 192 / 224 / 256 px 0.802 / 0.823 / 0.833 / 0.826; segmentation's
# LR-ASPP mean IoU on the same images 0.547 / 0.577 / 0.586 / 0.576.
FIXRES_RATIO = 1.4


def fixres_size(image_size: int, eval_image_size: int | None, one_size: bool = False, multiple: int = 32) -> int:
    """The square size a model trained at `image_size` evaluates and runs at: `eval_image_size` when given, else
    FIXRES_RATIO x `image_size` rounded to `multiple`. `one_size` (a transformers model told one size for training
    and use): `image_size`, and a different `eval_image_size` is a one-line error."""
    if one_size:
        if eval_image_size not in (None, image_size):
            raise HfdlError(
                f"--eval_image_size {eval_image_size} differs from --image_size {image_size}: a transformers model trains and runs at one size; drop it"
            )
        return image_size
    return eval_image_size or max(multiple, round(image_size * FIXRES_RATIO / multiple) * multiple)


def check_square_sizes(image_size: int, eval_image_size: int | None, multiple: int = 32) -> None:
    """One-line error unless --image_size (and --eval_image_size, when given) are multiples of the backbone's
    coarsest stride, `multiple`, and at least that."""
    for name, value in (("image_size", image_size), ("eval_image_size", eval_image_size)):
        if value is not None and (value < multiple or value % multiple):
            raise HfdlError(f"--{name} must be a multiple of {multiple} (the backbone's coarsest stride) and >= {multiple}, got {value}")


def color_jitter(strength: float, hue: float = 0.0):
    """A `torchvision.transforms.v2.ColorJitter` for training: brightness, contrast and saturation by `strength`, hue
    by `hue` (0: no hue step; its HSV round trip costs about 3 ms per 160 px image on one core, twice the rest of the
    detection augmentation together)."""
    from torchvision.transforms import v2

    return v2.ColorJitter(brightness=strength, contrast=strength, saturation=strength, hue=hue or None)


def open_image(source) -> "PIL.Image.Image":  # noqa: F821
    """A path, PIL image or HxWx3 uint8 array as an RGB PIL image; a one-line error if it is not an image."""
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    if isinstance(source, Image.Image):
        img = source
    elif isinstance(source, np.ndarray):
        img = Image.fromarray(source)
    else:
        path = Path(source)
        if not path.is_file():
            raise HfdlError(f"image {path} does not exist: pass the path of a PNG/JPEG file")
        try:
            img = Image.open(path)
            if img.width * img.height > MAX_INPUT_PIXELS:
                raise HfdlError(f"image {path} has {img.width}x{img.height} pixels, more than we decode: downscale it first")
            img.load()
        except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as err:
            raise HfdlError(f"{path} is not a readable image ({type(err).__name__}): pass a PNG or JPEG file") from err
    return to_rgb(img)


def image_to_tensor(image, size: int | None = None) -> torch.Tensor:
    """RGB image -> (1, 3, H, W) in [0, 1], its longer side resized to `size` (aspect kept)."""
    import numpy as np
    from PIL import Image

    img = open_image(image)
    if size is not None:
        scale = size / max(img.size)
        new = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
        if new != img.size:
            img = img.resize(new, Image.Resampling.LANCZOS if scale < 1 else Image.Resampling.BICUBIC)
    arr = np.asarray(img, dtype=np.float32) / 255.0
    return torch.from_numpy(arr).permute(2, 0, 1).unsqueeze(0).contiguous()


def tensor_to_image(x: torch.Tensor) -> "PIL.Image.Image":  # noqa: F821
    """(1, 3, H, W) or (3, H, W) in [0, 1] -> RGB PIL image."""
    from PIL import Image

    x = x.detach().float().cpu()
    if x.ndim == 4:
        x = x[0]
    arr = (x.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    return Image.fromarray(arr, mode="RGB")


def to_rgb(img: "PIL.Image.Image") -> "PIL.Image.Image":  # noqa: F821
    """Any PIL mode as RGB (transparency and palettes through RGBA, so transparent pixels are not garbage)."""
    if img.mode == "RGB":
        return img
    return img.convert("RGBA").convert("RGB") if "A" in img.getbands() or img.mode == "P" else img.convert("RGB")


class SeededImages(torch.utils.data.Dataset):
    """A view of a `datasets.Dataset` whose random transforms are a pure function of (seed, epoch, index).

    The same sample gets the same augmentation whatever the worker count, and a resumed run sees exactly
    the batches an uninterrupted one would. Subclasses call `self.seeded(index, fn, *args)` to run their
    transform; without a seed it runs as is. The shared loop calls `set_epoch` each epoch.
    """

    def __init__(self, ds, seed: int | None = None):
        self.ds, self.seed, self.epoch = ds, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.ds)

    def seeded(self, index: int, fn: Callable, *args):
        if self.seed is None:
            return fn(*args)
        import random

        import numpy as np

        sample_seed = (self.seed * 1_000_003 + self.epoch * 10_007 + int(index)) % (2**63)
        py_state, np_state = random.getstate(), np.random.get_state()
        try:
            with torch.random.fork_rng(devices=[]):  # timm / torchvision draw from all three generators
                torch.manual_seed(sample_seed)
                random.seed(sample_seed)
                np.random.seed(sample_seed % 2**32)
                return fn(*args)
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)


def fit_square(img: "PIL.Image.Image", size: int | None, channels: int) -> "PIL.Image.Image":  # noqa: F821
    """An image in the model's mode (L or RGB; palettes and transparency through RGBA), its shorter side resized
    to `size` and centre-cropped to `size` x `size` (`size` None: left as it is)."""
    from PIL import Image

    mode = "L" if channels == 1 else "RGB"
    img = img.convert("RGBA").convert(mode) if (img.mode == "P" or "A" in img.getbands()) else img.convert(mode)
    if size is None:
        return img
    scale = size / min(img.size)
    new = (max(size, round(img.width * scale)), max(size, round(img.height * scale)))
    if new != img.size:
        img = img.resize(new, Image.Resampling.BICUBIC if scale > 1 else Image.Resampling.LANCZOS)
    left, top = (img.width - size) // 2, (img.height - size) // 2
    return img.crop((left, top, left + size, top + size))


def square_tensor(img: "PIL.Image.Image", size: int | None, channels: int) -> torch.Tensor:  # noqa: F821
    """Any PIL image as a small model's input: (1, C, size, size) in [0, 1] (`fit_square`, then a tensor)."""
    import numpy as np

    arr = np.asarray(fit_square(img, size, channels), dtype=np.float32) / 255
    x = torch.from_numpy(arr)
    return (x[None] if x.ndim == 2 else x.permute(2, 0, 1))[None].contiguous()
