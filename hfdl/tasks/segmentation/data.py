"""Semantic-segmentation data: every source in one form, a mask check, and joint image + mask transforms.

The one form: a DatasetDict with "train" and "validation" splits whose columns are `image` and `mask` (both
datasets.Image); a mask is a single-channel PNG (mode L or P) whose pixel values are class ids 0..K-1, or 255 for
pixels that count nowhere (IGNORE_INDEX), with the class names (and maybe a palette) beside it. Sources:

    a Hub id or a `save_to_disk` folder   an image column and a mask column (label, annotation, mask, semantic_map or --mask_column)
    a folder of pairs                     DIR/images/NAME.(jpg|png...) with DIR/masks/NAME.png (index or palette PNGs)

Names come from `--id2label FILE`, else the dataset's `id2label.json` (Hub repo or folder), else a ClassLabel in its
features, else the ids. `--reduce_labels` maps 0 to 255 and v to v - 1, as transformers' example does for ADE20k.
RGB masks are read through a palette file (`--palette`), a colour per class id.
"""

from __future__ import annotations

import io
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import datasets
import numpy as np
import torch
from PIL import Image

from hfdl.core.images import EVAL_SPLIT_NAMES, SeededImages, color_jitter, load_image_dataset, to_rgb
from hfdl.errors import HfdlError
from hfdl.tasks.segmentation.model import IGNORE_INDEX

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
MASK_EXTENSIONS = (".png", ".bmp", ".tif", ".tiff")  # lossless only: a JPEG mask has values between the classes
MASK_COLUMNS = ("label", "annotation", "mask", "semantic_map")  # auto-detected in this order, as the transformers example's datasets name them
IMAGE_COLUMNS = ("image", "pixel_values", "img")


@dataclass
class SegmentationData:
    """What `load_segmentation_dataset` gives: the one form, names, palette (None: the default), source, per-split statistics."""

    dsd: datasets.DatasetDict
    label_names: list[str]
    palette: list[list[int]] | None
    source: str
    stats: dict[str, dict]


def segmentation_features() -> datasets.Features:
    return datasets.Features({"image": datasets.Image(), "mask": datasets.Image()})


# --------------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------------


def load_segmentation_dataset(
    dataset_name: str | None = None,
    train_dir: str | None = None,
    validation_dir: str | None = None,
    image_column: str | None = None,
    mask_column: str | None = None,
    id2label: str | None = None,
    palette: str | None = None,
    reduce_labels: bool = False,
    dataset_config_name: str | None = None,
    train_val_split: float = 0.15,
    seed: int = 42,
) -> SegmentationData:
    """Any segmentation source -> `SegmentationData` with train/validation in the one form, masks checked.

    `dataset_name` is a Hub id, a `save_to_disk` folder, or a folder of pairs; `train_dir` / `validation_dir` are
    folders of pairs. Without a validation source, a seeded `train_val_split` of train is held out.
    """
    if dataset_name and (train_dir or validation_dir):
        raise HfdlError("pass either --dataset_name or --train_dir (with --validation_dir), not both")
    if validation_dir and not train_dir:
        raise HfdlError("--validation_dir needs --train_dir too")
    if not 0.0 < train_val_split < 1.0:
        raise HfdlError(f"--train_val_split must be in (0, 1), got {train_val_split}")
    unpaired = {}
    if dataset_name:
        train, validation, names, source = _from_name(dataset_name, dataset_config_name, image_column, mask_column, unpaired)
    elif train_dir:
        train, names = _read_pairs(Path(train_dir), "--train_dir", unpaired.setdefault("train", {}))
        validation, source = None, f"folder of image/mask pairs {train_dir}"
        if validation_dir:
            validation, val_names = _read_pairs(Path(validation_dir), "--validation_dir", unpaired.setdefault("validation", {}))
            names, source = names or val_names, f"{source}, validation {validation_dir}"
    else:
        raise HfdlError("no data: pass --dataset_name (Hub id, saved dataset or folder of pairs) or --train_dir DIR (images/ + masks/)")
    if validation is None:
        parts = train.train_test_split(test_size=train_val_split, seed=seed)
        train, validation = parts["train"], parts["test"]
        source += f" (validation: {train_val_split:.0%} of train, seed {seed})"
    if id2label:
        names = read_id2label(Path(id2label), "--id2label")
    colours = read_palette(Path(palette)) if palette else None
    dsd, found = check_masks(datasets.DatasetDict({"train": train, "validation": validation}), names, colours, reduce_labels)
    names = names or [str(i) for i in range(found)]
    if colours is not None and len(colours) < len(names):
        raise HfdlError(f"--palette has {len(colours)} colours for {len(names)} classes: give every class id a colour")
    stats = {split: {"images": len(ds), **unpaired.get(split, {})} for split, ds in dsd.items()}
    return SegmentationData(dsd, names, colours[: len(names)] if colours else None, source, stats)


def _from_name(dataset_name: str, config: str | None, image_column: str | None, mask_column: str | None, unpaired: dict):
    """(train, validation or None, names or None, source) of a Hub id, a saved dataset or a folder of pairs."""
    if os.path.isdir(dataset_name) and _pairs_layout(Path(dataset_name)):
        train, names = _read_pairs(Path(dataset_name), "--dataset_name", unpaired.setdefault("train", {}))
        return train, None, names, f"folder of image/mask pairs {dataset_name}"
    dsd, source = load_image_dataset(dataset_name=dataset_name, dataset_config_name=config)
    if "train" not in dsd:
        raise HfdlError(f"the dataset has no 'train' split (splits: {list(dsd)}): pass a dataset with a train split or --train_dir")
    train = to_segmentation_form(dsd["train"], f"{dataset_name} train", image_column, mask_column)
    eval_split = next((s for s in EVAL_SPLIT_NAMES if s in dsd), None)
    validation = to_segmentation_form(dsd[eval_split], f"{dataset_name} {eval_split}", image_column, mask_column) if eval_split else None
    if eval_split:
        source += f" (validation: its '{eval_split}' split)"
    names = _dataset_id2label(dataset_name) or _classlabel_names(dsd["train"].features)
    return train, validation, names, source


def to_segmentation_form(ds: datasets.Dataset, what: str, image_column: str | None = None, mask_column: str | None = None) -> datasets.Dataset:
    """A Dataset with an image column and a mask column (both images) -> columns `image` and `mask` only."""
    feats = ds.features
    images = [c for c, f in feats.items() if isinstance(f, datasets.Image)]
    for flag, column in (("--mask_column", mask_column), ("--image_column", image_column)):
        if column is not None and column not in images:
            raise HfdlError(f"{flag} '{column}' is not an image column of {what} (image columns: {images}): pick one of those")
    mask_column = mask_column or next((c for c in MASK_COLUMNS if c in images and c != image_column), None)
    if mask_column is None:
        raise HfdlError(f"{what} has no mask column among {list(feats)} (looked for image columns named {', '.join(MASK_COLUMNS)}): pass --mask_column")
    rest = [c for c in images if c != mask_column]
    image_column = image_column or next((c for c in IMAGE_COLUMNS if c in rest), rest[0] if len(rest) == 1 else None)
    if image_column is None:
        raise HfdlError(f"{what} has {'no' if not rest else 'several'} image columns besides the mask '{mask_column}' ({rest}): pass --image_column")
    ds = ds.select_columns([image_column, mask_column])
    if (image_column, mask_column) != ("image", "mask"):
        ds = ds.rename_columns({image_column: "_image", mask_column: "_mask"}).rename_columns({"_image": "image", "_mask": "mask"})
    return ds


# --------------------------------------------------------------------------------------------------
# Class names and palettes
# --------------------------------------------------------------------------------------------------


def read_id2label(path: Path, what: str) -> list[str]:
    """An `id2label.json` ({"0": "wall", ...}) -> names by id; ids missing in between are named by their number."""
    try:
        mapping = {int(k): str(v) for k, v in json.loads(path.read_text(encoding="utf-8")).items()}
    except FileNotFoundError:
        raise HfdlError(f"{what} {path} does not exist: pass a JSON file {{id: name}}") from None
    except (OSError, ValueError, AttributeError, TypeError) as err:
        raise HfdlError(f'{what} {path} is not a JSON object {{id: name}} ({type(err).__name__}): fix it, e.g. {{"0": "background", "1": "cat"}}') from err
    if not mapping or min(mapping) < 0 or max(mapping) >= IGNORE_INDEX:
        raise HfdlError(f"{what} {path} needs ids from 0 to at most 254 (255 is the ignore index), got {sorted(mapping)[:3]}...: fix its ids")
    return [mapping.get(i, str(i)) for i in range(max(mapping) + 1)]


def read_palette(path: Path) -> list[list[int]]:
    """A palette file ({"0": [r, g, b], ...} or [[r, g, b], ...]) -> colours by class id."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        items = raw.items() if isinstance(raw, dict) else enumerate(raw)
        mapping = {int(k): [int(v) for v in colour] for k, colour in items}
        if any(len(c) != 3 or not all(0 <= v <= 255 for v in c) for c in mapping.values()):
            raise ValueError("colour")
    except FileNotFoundError:
        raise HfdlError(f"--palette {path} does not exist: pass a JSON file {{id: [r, g, b]}}") from None
    except (OSError, ValueError, TypeError, AttributeError) as err:
        raise HfdlError(f"--palette {path} is not a JSON {{id: [r, g, b]}} with values 0-255 ({type(err).__name__}): fix it") from err
    if sorted(mapping) != list(range(len(mapping))):
        raise HfdlError(f"--palette {path} must give a colour to every id from 0 to {max(mapping, default=0)}: add the missing ids")
    if len({tuple(c) for c in mapping.values()}) < len(mapping):
        raise HfdlError(f"--palette {path} gives two classes the same colour: RGB masks could not tell them apart; make the colours distinct")
    return [mapping[i] for i in range(len(mapping))]


def _dataset_id2label(dataset_name: str) -> list[str] | None:
    """The `id2label.json` of a local dataset folder or a Hub dataset repo (as the transformers example reads it), or None."""
    if os.path.isdir(dataset_name):
        path = Path(dataset_name) / "id2label.json"
        return read_id2label(path, "the dataset's") if path.is_file() else None
    from huggingface_hub import hf_hub_download

    try:
        path = hf_hub_download(dataset_name, "id2label.json", repo_type="dataset")
    except Exception:  # no such file, or offline and not cached: the names come from elsewhere
        return None
    return read_id2label(Path(path), f"{dataset_name}'s")


def _classlabel_names(features: datasets.Features) -> list[str] | None:
    for feature in features.values():
        while isinstance(feature, datasets.List | datasets.LargeList):
            feature = feature.feature
        if isinstance(feature, datasets.ClassLabel):
            return list(feature.names)
    return None


# --------------------------------------------------------------------------------------------------
# Folders of pairs: images/NAME.ext + masks/NAME.png
# --------------------------------------------------------------------------------------------------


def _pairs_layout(root: Path) -> bool:
    return (root / "images").is_dir() and (root / "masks").is_dir()


def _files(folder: Path, extensions: tuple[str, ...]) -> dict[Path, Path]:
    return {p.relative_to(folder).with_suffix(""): p for p in sorted(folder.rglob("*")) if p.suffix.lower() in extensions and p.is_file()}


def _read_pairs(root: Path, flag: str, counts: dict) -> tuple[datasets.Dataset, list[str] | None]:
    """images/**/NAME.ext with masks/**/NAME.png; an image without a mask or a mask without an image is skipped and counted."""
    if not root.is_dir() or not _pairs_layout(root):
        raise HfdlError(f"{flag} {root} needs images/ and masks/ folders (images/NAME.jpg with masks/NAME.png): arrange it so")
    images, masks = _files(root / "images", IMAGE_EXTENSIONS), _files(root / "masks", MASK_EXTENSIONS)
    counts["unpaired_images"], counts["unpaired_masks"] = len(images.keys() - masks.keys()), len(masks.keys() - images.keys())
    for kind, alone, n in (
        ("image", images.keys() - masks.keys(), counts["unpaired_images"]),
        ("mask", masks.keys() - images.keys(), counts["unpaired_masks"]),
    ):
        if n:
            logger.warning("%s %s: skipped %d %s(s) without a partner, e.g. %s", flag, root, n, kind, sorted(alone)[0])
    paired = sorted(images.keys() & masks.keys())
    if not paired:
        raise HfdlError(f"{flag} {root} holds no image/mask pairs: name each mask masks/NAME.png after its image images/NAME.jpg (or .png)")
    rows = {"image": [str(images[k]) for k in paired], "mask": [str(masks[k]) for k in paired]}
    id2label = root / "id2label.json"
    names = read_id2label(id2label, f"{flag}'s") if id2label.is_file() else None
    return datasets.Dataset.from_dict(rows, features=segmentation_features()), names


# --------------------------------------------------------------------------------------------------
# The mask check: same size as the image, ids in the label map, RGB through a palette, canonical PNGs
# --------------------------------------------------------------------------------------------------


def check_masks(
    dsd: datasets.DatasetDict, label_names: list[str] | None, palette: list[list[int]] | None = None, reduce_labels: bool = False
) -> tuple[datasets.DatasetDict, int]:
    """Every mask checked against its image and the label map (one-line errors naming the example), RGB masks mapped
    through `palette`, `reduce_labels` applied; masks that change are stored as mode-L PNGs.

    Returns the checked DatasetDict and the number of classes the masks show (largest id + 1).
    """
    for split, ds in dsd.items():
        if len(ds) == 0:
            raise HfdlError(f"the {split} split is empty: pass a dataset with images and masks in both splits (or a larger --train_val_split)")
    colours = {tuple(c): i for i, c in enumerate(palette)} if palette else None
    checked, largest = {}, -1
    for split, ds in dsd.items():
        features = datasets.Features({"image": datasets.Image(decode=False), "mask": datasets.Image(decode=False), "_max": datasets.Value("int64")})
        out = ds.cast(datasets.Features({"image": datasets.Image(decode=False), "mask": datasets.Image(decode=False)})).map(
            _check_batch,
            with_indices=True,
            batched=True,
            fn_kwargs={"colours": colours, "reduce_labels": reduce_labels, "split": split},
            features=features,
            desc=f"checking {split} masks",
        )
        maxima = out["_max"]
        if label_names is not None:
            bad = next((i for i, m in enumerate(maxima) if m >= len(label_names)), None)
            if bad is not None:
                raise HfdlError(
                    f"{split} example {bad} has mask value {maxima[bad]}, outside the {len(label_names)} classes (ids 0..{len(label_names) - 1}, 255 ignored): "
                    "pass --id2label with every class, --reduce_labels if 0 is an unlabeled background, or fix the mask"
                )
        largest = max(largest, max(maxima))
        checked[split] = out.remove_columns("_max").cast(segmentation_features())
    return datasets.DatasetDict(checked), largest + 1


def _open(image: dict) -> Image.Image:
    return Image.open(io.BytesIO(image["bytes"]) if image.get("bytes") else image["path"])


def _check_batch(batch: dict, indices: list[int], colours: dict | None, reduce_labels: bool, split: str) -> dict:
    masks, maxima = [], []
    for image, mask, i in zip(batch["image"], batch["mask"], indices):
        where = f"{split} example {i}" + (f" ({mask['path']})" if mask.get("path") else "")
        try:
            with _open(image) as im:
                size = im.size
            ids, changed = _mask_ids(_open(mask), colours, where)
        except HfdlError:
            raise
        except Exception as err:  # PIL raises several types for a bad file
            raise HfdlError(f"{where}: its image or mask is unreadable ({type(err).__name__}): fix or remove it") from err
        if (ids.shape[1], ids.shape[0]) != size:
            raise HfdlError(f"{where}: its mask is {ids.shape[1]}x{ids.shape[0]} but its image {size[0]}x{size[1]}: give each image a mask of the same size")
        if reduce_labels:
            ids, changed = np.where(ids == 0, IGNORE_INDEX, np.where(ids == IGNORE_INDEX, IGNORE_INDEX, ids - 1)), True
        labelled = ids[ids != IGNORE_INDEX]
        maxima.append(int(labelled.max()) if labelled.size else -1)
        masks.append(_encode(ids) if changed else mask)
    return {"image": batch["image"], "mask": masks, "_max": maxima}


def _mask_ids(mask: Image.Image, colours: dict | None, where: str) -> tuple[np.ndarray, bool]:
    """A mask image -> (class ids (H, W) int64, whether they differ from the stored pixel values)."""
    if mask.mode in ("L", "P"):
        return np.asarray(mask, dtype=np.int64), False
    if mask.mode in ("1", "I", "I;16", "I;16B", "I;16L"):
        values = np.asarray(mask, dtype=np.int64)
        if values.size and (values.min() < 0 or values.max() > IGNORE_INDEX):
            raise HfdlError(f"{where}: its mask has value {values.max()}, above 255: store class ids 0..254 (255 ignored)")
        return values, True
    if mask.mode not in ("RGB", "RGBA"):
        raise HfdlError(f"{where}: its mask has mode {mask.mode}: save masks as single-channel index PNGs (mode L or P)")
    if colours is None:
        raise HfdlError(
            f"{where}: its mask is an RGB image: save masks as index PNGs (mode L or P), or pass --palette FILE mapping each [r, g, b] to its class id"
        )
    rgb = np.asarray(mask.convert("RGB"), dtype=np.int64)
    keys = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    lookup = {(r << 16) | (g << 8) | b: i for (r, g, b), i in colours.items()}
    found = np.unique(keys)
    unknown = [k for k in found.tolist() if k not in lookup]
    if unknown:
        colour = [(unknown[0] >> 16) & 255, (unknown[0] >> 8) & 255, unknown[0] & 255]
        raise HfdlError(f"{where}: its mask has colour {colour}, which --palette does not list: add it to the palette with its class id")
    ids = np.zeros(keys.shape, dtype=np.int64)
    for k in found.tolist():
        ids[keys == k] = lookup[k]
    return ids, True


def _encode(ids: np.ndarray) -> dict:
    buffer = io.BytesIO()
    Image.fromarray(ids.astype(np.uint8), mode="L").save(buffer, format="PNG")
    return {"bytes": buffer.getvalue(), "path": None}


# --------------------------------------------------------------------------------------------------
# Joint transforms (torchvision.transforms.v2 with tv_tensors.Mask)
# --------------------------------------------------------------------------------------------------


@dataclass
class SegmentationAugment:
    hflip: float = 0.5  # probability of a horizontal flip
    crop: float = 0.5  # probability of a random scale/crop
    scale_min: float = 0.3  # smallest crop, as a fraction of the image area
    rotation: float = 10.0  # degrees, applied to half of the images; 0 turns it off
    color_jitter: float = 0.2  # brightness, contrast and saturation strength; the image only
    hue: float = 0.0  # hue jitter, the image only (0: off)


class SegmentationTransform:
    """(PIL image, mask (H, W) uint8) -> (pixels (3, S, S) float in [0, 1], mask (S, S) int64); the model's `normalize`
    comes after (on the batch), so either kind of segmenter brings its own normalisation and channel order.

    Train: flip, scale/crop, rotation (pixels rotated in from outside get mask 255, ignored), colour jitter (image
    only), resize. Evaluation (`augment=None`): resize only. The mask always follows the image's geometry with
    nearest-neighbour resampling (`tv_tensors.Mask`), so its values stay class ids.
    """

    def __init__(self, image_size: int, augment: SegmentationAugment | None = None):
        from torchvision import tv_tensors
        from torchvision.transforms import v2

        steps = []
        if augment is not None:
            if augment.hflip:
                steps.append(v2.RandomHorizontalFlip(p=augment.hflip))
            if augment.crop:
                steps.append(v2.RandomApply([v2.RandomResizedCrop((image_size, image_size), scale=(augment.scale_min, 1.0), antialias=True)], p=augment.crop))
            if augment.rotation:
                fill = {tv_tensors.Mask: IGNORE_INDEX, "others": 0}  # the image (PIL) black, the mask ignored
                steps.append(v2.RandomApply([v2.RandomRotation(augment.rotation, fill=fill)], p=0.5))
            if augment.color_jitter or augment.hue:
                steps.append(color_jitter(augment.color_jitter, augment.hue))
        steps += [v2.Resize((image_size, image_size), antialias=True), v2.PILToTensor(), v2.ToDtype(torch.float32, scale=True)]
        self.pipeline = v2.Compose(steps)
        self.image_size = image_size

    def __call__(self, image: Image.Image, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        from torchvision import tv_tensors

        # The image stays PIL until its last resize: PIL's resampling, rotation and HSV conversion (hue jitter) run in
        # C: 2.5 vs 3.1 ms per 192 px image on uint8 tensors with rotation and colour jitter (benchmarks/segmentation.py);
        # with flips and crops alone (the offline default) 0.57 vs 0.40 ms, under 1% of a training step.
        pixels, target = self.pipeline(image, tv_tensors.Mask(mask[None]))  # (3, S, S) float, (1, S, S) uint8
        return pixels.as_subclass(torch.Tensor), target.as_subclass(torch.Tensor)[0].long()


def build_segmentation_transforms(
    image_size: int, augment: SegmentationAugment | None = None, eval_size: int | None = None
) -> tuple[SegmentationTransform, SegmentationTransform]:
    """(train, eval) transforms: train augments when `augment` is set, at `image_size`; eval resizes only, to `eval_size` (default `image_size`)."""
    return SegmentationTransform(image_size, augment), SegmentationTransform(eval_size or image_size, None)


class SegmentationImages(SeededImages):
    """(pixels (3, S, S) in [0, 1], mask (S, S) int64) view of a Dataset in the one form; grayscale/RGBA images as RGB.

    With `seed` set, the augmentation is a pure function of (seed, epoch, index) (`SeededImages`): resume is exact.
    """

    def __init__(self, ds: datasets.Dataset, transform: Callable, seed: int | None = None):
        super().__init__(ds, seed)
        self.transform = transform

    def __getitem__(self, idx: int) -> tuple[torch.Tensor, torch.Tensor]:
        ex = self.ds[int(idx)]
        mask = torch.from_numpy(np.array(ex["mask"], dtype=np.uint8))  # (H, W): L or P pixel values are the ids
        return self.seeded(idx, self.transform, to_rgb(ex["image"]), mask)
