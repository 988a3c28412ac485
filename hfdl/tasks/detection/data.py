"""Object-detection data: every source in one form, a box check, and box-safe transforms.

The one form is the Hub's (as cppe-5): a DatasetDict with "train" and "validation" splits whose columns are
`image` (datasets.Image) and `objects` = {`bbox`: COCO [x, y, w, h] in pixels, `category`: int ids 0..K-1},
with the class names beside it. Sources: a Hub id or a `save_to_disk` folder, an imagefolder whose metadata.jsonl
carries `objects`, COCO json (annotations file + images folder), and YOLO txt folders (images/ + labels/).

In datasets >= 4, `Sequence({...})` of a dict is stored as a dict of lists (`{"bbox": List(List(float32, length=4)),
"category": List(ClassLabel)}`, a struct of lists: cppe-5's layout and ours), while `List({...})` is a list of dicts
(a list of structs); both are read, and a ClassLabel inside either gives the class names.
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
import pyarrow.compute as pc
import torch
from PIL import Image

from hfdl.core.images import EVAL_SPLIT_NAMES, SeededImages, color_jitter, load_image_dataset, to_rgb
from hfdl.errors import HfdlError
from hfdl.tasks.detection import boxes as box_ops

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".gif")


def detection_features() -> datasets.Features:
    """The one form's features: category ids stay plain ints (the names travel beside them, checked by check_objects)."""
    return datasets.Features(
        {
            "image": datasets.Image(),
            "objects": {"bbox": datasets.List(datasets.List(datasets.Value("float32"), length=4)), "category": datasets.List(datasets.Value("int64"))},
        }
    )


# --------------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------------


def load_detection_dataset(
    dataset_name: str | None = None,
    train_dir: str | None = None,
    validation_dir: str | None = None,
    train_annotations: str | None = None,
    train_images: str | None = None,
    validation_annotations: str | None = None,
    validation_images: str | None = None,
    label_names: list[str] | str | None = None,
    dataset_config_name: str | None = None,
    train_val_split: float = 0.15,
    seed: int = 42,
) -> tuple[datasets.DatasetDict, list[str], str]:
    """Any detection source -> (DatasetDict with "train" and "validation" in the one form, class names, source description).

    `dataset_name` is a Hub id, a `save_to_disk` folder, or a folder (YOLO or imagefolder); `train_dir` / `validation_dir`
    are folders of either kind (found by their layout); the COCO pairs are a json file and its images folder. Without a
    validation source, a seeded `train_val_split` of train is held out. Names: `label_names` (a list or "a,b,c"), else
    the source's (ClassLabel, COCO categories, classes.txt / data.yaml), else the ids as strings.
    """
    folders = train_dir or validation_dir
    coco = train_annotations or train_images or validation_annotations or validation_images
    if dataset_name and (folders or coco):
        raise HfdlError("pass either --dataset_name or --train_dir/--train_annotations (with their validation pairs), not both")
    if not 0.0 < train_val_split < 1.0:
        raise HfdlError(f"--train_val_split must be in (0, 1), got {train_val_split}")
    if dataset_name:
        train, validation, names, source = _from_name(dataset_name, dataset_config_name)
    else:
        train, names, source, coco_ids = _split_source("train", train_dir, train_annotations, train_images)
        validation, val_names, val_source, _ = _split_source("validation", validation_dir, validation_annotations, validation_images, coco_ids)
        names = names or val_names
        if validation is not None:
            source += f", validation {val_source}"
    if validation is None:
        parts = train.train_test_split(test_size=train_val_split, seed=seed)
        train, validation = parts["train"], parts["test"]
        source += f" (validation: {train_val_split:.0%} of train, seed {seed})"
    dsd = datasets.DatasetDict({"train": train, "validation": validation})
    names = _resolve_names(dsd, names, label_names)
    return dsd, names, source


def _from_name(dataset_name: str, config: str | None) -> tuple[datasets.Dataset, datasets.Dataset | None, list[str] | None, str]:
    if os.path.isdir(dataset_name) and _yolo_layout(Path(dataset_name)):
        train, names = _read_yolo(Path(dataset_name), "--dataset_name")
        return train, None, names, f"YOLO folder {dataset_name}"
    dsd, source = load_image_dataset(dataset_name=dataset_name, dataset_config_name=config)
    if "train" not in dsd:
        raise HfdlError(f"the dataset has no 'train' split (splits: {list(dsd)}): pass a dataset with a train split or --train_dir")
    train, names = to_detection_form(dsd["train"], f"{dataset_name} train")
    eval_split = next((s for s in EVAL_SPLIT_NAMES if s in dsd), None)
    validation = to_detection_form(dsd[eval_split], f"{dataset_name} {eval_split}")[0] if eval_split else None
    if eval_split:
        source += f" (validation: its '{eval_split}' split)"
    return train, validation, names, source


def _split_source(
    split: str, folder: str | None, annotations: str | None, images: str | None, coco_ids: dict[int, int] | None = None
) -> tuple[datasets.Dataset | None, list[str] | None, str, dict[int, int] | None]:
    """One split from a folder or a COCO pair -> (dataset, names, description, COCO category ids -> 0..K-1).

    A validation COCO json maps its category ids through train's (`coco_ids`) when train is COCO too."""
    if folder and (annotations or images):
        raise HfdlError(f"pass either --{split}_dir or --{split}_annotations/--{split}_images, not both")
    if bool(annotations) != bool(images):
        raise HfdlError(f"--{split}_annotations and --{split}_images go together: pass the COCO json and its images folder")
    if annotations:
        ds, names, ids = _read_coco(Path(annotations), Path(images), split, coco_ids)
        return ds, names, f"COCO json {annotations}", ids
    if folder:
        ds, names = _read_folder(Path(folder), f"--{split}_dir")
        return ds, names, f"{_folder_kind(Path(folder))} {folder}", None
    if split == "train":
        raise HfdlError("no data: pass --dataset_name (Hub id or folder), --train_dir DIR, or --train_annotations JSON with --train_images DIR")
    return None, None, "", None


def _resolve_names(dsd: datasets.DatasetDict, names: list[str] | None, label_names: list[str] | str | None) -> list[str]:
    if isinstance(label_names, str):
        label_names = [n.strip() for n in label_names.split(",") if n.strip()]
    if label_names:
        if names and len(names) != len(label_names):
            logger.warning("--label_names has %d names, the data names %d classes; using --label_names", len(label_names), len(names))
        return list(label_names)
    if names:
        return list(names)
    top = max((_max_category(ds) for ds in dsd.values()), default=-1)
    return [str(i) for i in range(top + 1)]


def _max_category(ds: datasets.Dataset) -> int:
    table = ds.select_columns(["objects"]).with_format("arrow")[:]
    ids = pc.list_flatten(pc.struct_field(table.column("objects"), "category"))
    return -1 if len(ids) == 0 else int(pc.max(ids).as_py())


# --------------------------------------------------------------------------------------------------
# Hub / saved / imagefolder datasets -> the one form
# --------------------------------------------------------------------------------------------------


def _unwrap(feature):
    """The item feature of List / LargeList / Sequence (datasets 5.x spells a sequence as List)."""
    while isinstance(feature, datasets.List | datasets.LargeList):
        feature = feature.feature
    return feature


def to_detection_form(ds: datasets.Dataset, what: str) -> tuple[datasets.Dataset, list[str] | None]:
    """A Dataset with an image column and `objects` ({bbox, category|categories}, as a dict of lists or a list of dicts)
    -> (the one form, class names from a ClassLabel or None)."""
    feats = ds.features
    images = [c for c, f in feats.items() if isinstance(f, datasets.Image)]
    image_column = "image" if "image" in images else (images[0] if len(images) == 1 else None)
    if image_column is None:
        raise HfdlError(f"{what} has {'no' if not images else 'several'} image columns among {list(feats)}: pass a detection dataset with one `image` column")
    objects = feats.get("objects")
    list_of_dicts = isinstance(objects, datasets.List | datasets.LargeList) and isinstance(objects.feature, dict)
    fields = objects.feature if list_of_dicts else objects
    if not isinstance(fields, dict) or "bbox" not in fields or not ({"category", "categories"} & set(fields)):
        raise HfdlError(
            f"{what} has no `objects` column with `bbox` and `category` (columns: {list(feats)}): pass a detection dataset in the Hub's form, as cppe-5"
        )
    key = "category" if "category" in fields else "categories"
    label = _unwrap(fields[key])
    names = list(label.names) if isinstance(label, datasets.ClassLabel) else None
    if image_column != "image":
        ds = ds.rename_column(image_column, "image")
    ds = ds.map(
        _canonical_batch,
        input_columns=["objects"],
        with_indices=True,
        batched=True,
        fn_kwargs={"key": key, "list_of_dicts": list_of_dicts, "what": what},
        remove_columns=[c for c in ds.column_names if c not in ("image", "objects")],
        features=detection_features(),
        desc=f"reading {what} boxes",
    )
    return ds, names


def _canonical_batch(objects: list, indices: list[int], key: str, list_of_dicts: bool, what: str) -> dict:
    out = []
    for objs, i in zip(objects, indices):
        if list_of_dicts:
            bbox, category = [o["bbox"] for o in objs], [o[key] for o in objs]
        else:
            bbox, category = objs["bbox"] or [], objs[key] or []
        if len(bbox) != len(category) or any(b is None or len(b) != 4 for b in bbox):
            raise HfdlError(f"{what} example {i} has boxes {bbox} for categories {category}: each object needs one [x, y, w, h] box and one category")
        out.append({"bbox": [[float(v) for v in b] for b in bbox], "category": [int(c) for c in category]})
    return {"objects": out}


# --------------------------------------------------------------------------------------------------
# Folders: imagefolder + metadata.jsonl, or YOLO images/ + labels/
# --------------------------------------------------------------------------------------------------


def _yolo_layout(root: Path) -> bool:
    return (root / "images").is_dir() and (root / "labels").is_dir()


def _folder_kind(root: Path) -> str:
    return "YOLO folder" if _yolo_layout(root) else "imagefolder"


def _read_folder(root: Path, flag: str) -> tuple[datasets.Dataset, list[str] | None]:
    if not root.is_dir():
        raise HfdlError(f"{flag} {root} is not a directory: pass a YOLO folder (images/ + labels/) or an imagefolder with metadata.jsonl")
    if _yolo_layout(root):
        return _read_yolo(root, flag)
    if not any(root.rglob("metadata.jsonl")):
        raise HfdlError(
            f"{flag} {root} has neither images/ + labels/ (YOLO) nor a metadata.jsonl with `objects`: add one of them (see the README's detection data)"
        )
    dsd, _ = load_image_dataset(train_dir=str(root))
    return to_detection_form(dsd["train"], f"{flag} {root}")


def _image_size(path: Path) -> tuple[int, int]:
    try:
        with Image.open(path) as im:  # reads the header only
            return im.size
    except Exception as err:  # PIL raises several types for a bad file
        raise HfdlError(f"{path} is not a readable image ({type(err).__name__}): fix or remove it") from err


def _read_yolo(root: Path, flag: str) -> tuple[datasets.Dataset, list[str] | None]:
    """images/**/x.ext with labels/**/x.txt (`class cx cy w h` normalised per line); no label file = a negative."""
    images_dir, labels_dir = root / "images", root / "labels"
    images = sorted(p for p in images_dir.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
    by_stem = {p.relative_to(images_dir).with_suffix(""): p for p in images}
    labels = sorted(p for p in labels_dir.rglob("*.txt") if p.name != "classes.txt")
    for label in labels:
        if label.relative_to(labels_dir).with_suffix("") not in by_stem:
            stem = images_dir / label.relative_to(labels_dir).with_suffix("")
            raise HfdlError(f"YOLO label {label} has no image {stem}.png/.jpg/...: add the image or delete the label file")
    if not images:
        raise HfdlError(f"{flag} {root}: images/ holds no images ({', '.join(IMAGE_EXTENSIONS)}): put the images there")
    rows = {"image": [], "objects": []}
    for image in images:
        label = labels_dir / image.relative_to(images_dir).with_suffix(".txt")
        width, height = _image_size(image)
        bbox, category = _parse_yolo_label(label, width, height) if label.is_file() else ([], [])
        rows["image"].append(str(image))
        rows["objects"].append({"bbox": bbox, "category": category})
    return datasets.Dataset.from_dict(rows, features=detection_features()), _yolo_names(root)


def _parse_yolo_label(label: Path, width: int, height: int) -> tuple[list[list[float]], list[int]]:
    bbox, category = [], []
    for n, line in enumerate(label.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        try:
            if len(parts) != 5 or float(parts[0]) != int(float(parts[0])):
                raise ValueError
            c, (cx, cy, w, h) = int(float(parts[0])), (float(v) for v in parts[1:])
        except ValueError:
            raise HfdlError(f"{label} line {n}: expected 'class cx cy w h' (normalised), got {line.strip()!r}: fix the line") from None
        bbox.append([(cx - w / 2) * width, (cy - h / 2) * height, w * width, h * height])
        category.append(c)
    return bbox, category


def _yolo_names(root: Path) -> list[str] | None:
    """Class names from classes.txt (one per line) or data.yaml `names:` in the folder, its labels/ or its parent."""
    for folder in (root, root / "labels", root.parent):
        classes = folder / "classes.txt"
        if classes.is_file():
            return [line.strip() for line in classes.read_text().splitlines() if line.strip()]
        for name in ("data.yaml", "data.yml"):
            if (folder / name).is_file():
                names = _yaml_names(folder / name)
                if names:
                    return names
    return None


def _yaml_names(path: Path) -> list[str] | None:
    try:
        import yaml
    except ImportError:  # PyYAML comes with transformers/huggingface_hub, but stays optional here
        logger.warning("%s found but PyYAML is not installed: pass --label_names", path)
        return None
    try:
        names = (yaml.safe_load(path.read_text()) or {}).get("names")
    except (yaml.YAMLError, AttributeError) as err:
        raise HfdlError(f"{path} is not a YAML mapping with `names:` ({type(err).__name__}): fix it or pass --label_names") from err
    if isinstance(names, dict):  # Ultralytics: {0: person, 1: car}
        return [str(names[k]) for k in sorted(names, key=int)]
    return [str(n) for n in names] if isinstance(names, list) else None


# --------------------------------------------------------------------------------------------------
# COCO json
# --------------------------------------------------------------------------------------------------


def _read_coco(annotations: Path, images_dir: Path, split: str, id_map: dict[int, int] | None = None) -> tuple[datasets.Dataset, list[str], dict[int, int]]:
    """COCO json -> (the one form, names, {json category id: 0..K-1}). Ids follow the order of `categories`;
    images without annotations are negatives; every listed image must be on disk."""
    if not annotations.is_file():
        raise HfdlError(f"--{split}_annotations {annotations} does not exist: pass the COCO json file")
    if not images_dir.is_dir():
        raise HfdlError(f"--{split}_images {images_dir} is not a directory: pass the folder holding the json's images")
    try:
        coco = json.loads(annotations.read_text())
        listed, anns, cats = coco["images"], coco.get("annotations", []), coco.get("categories", [])
    except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError) as err:
        raise HfdlError(f"{annotations} is not COCO json with `images` ({type(err).__name__}): pass a COCO annotations file") from err
    names = [str(c.get("name", c["id"])) for c in cats]
    if id_map is None:
        id_map = {int(c["id"]): k for k, c in enumerate(cats)}
    objects = {int(im["id"]): {"bbox": [], "category": []} for im in listed}
    for n, ann in enumerate(anns):
        image_id, cat = int(ann["image_id"]), int(ann["category_id"])
        if image_id not in objects:
            raise HfdlError(f"{annotations}: annotation {n} names image_id {image_id}, which is not in `images`: fix the json")
        if cat not in id_map:
            raise HfdlError(f"{annotations}: annotation {n} has category_id {cat}, not among the categories {sorted(id_map)}: fix the json")
        objects[image_id]["bbox"].append([float(v) for v in ann["bbox"]])
        objects[image_id]["category"].append(id_map[cat])
    rows = {"image": [], "objects": []}
    for im in listed:
        path = images_dir / im["file_name"]
        if not path.is_file():
            raise HfdlError(
                f"{annotations} names image {im['file_name']}, which is not in {images_dir}: put it there, pass its folder as --{split}_images, or remove it from the json"
            )
        rows["image"].append(str(path))
        rows["objects"].append(objects[int(im["id"])])
    return datasets.Dataset.from_dict(rows, features=detection_features()), names, id_map


# --------------------------------------------------------------------------------------------------
# The box check: ids in the label map, boxes clipped to the image, degenerate boxes dropped (counted)
# --------------------------------------------------------------------------------------------------


def check_objects(ds: datasets.Dataset | datasets.DatasetDict, num_classes: int, min_size: float = 1.0, split: str = "train"):
    """Category ids outside 0..num_classes-1 -> a one-line error naming the first bad example; boxes clipped to their
    image and boxes under `min_size` pixels wide or high dropped.

    A Dataset -> (Dataset, {"clipped_boxes": n, "dropped_boxes": n}); a DatasetDict -> (DatasetDict, {split: counts}).
    """
    if isinstance(ds, datasets.DatasetDict):
        checked = {name: check_objects(part, num_classes, min_size, name) for name, part in ds.items()}
        return datasets.DatasetDict({name: c[0] for name, c in checked.items()}), {name: c[1] for name, c in checked.items()}
    if len(ds) == 0:
        return ds, {"clipped_boxes": 0, "dropped_boxes": 0}
    features = detection_features()
    features["_clipped"], features["_dropped"] = datasets.Value("int64"), datasets.Value("int64")
    features["image"] = datasets.Image(decode=False)
    out = ds.cast_column("image", datasets.Image(decode=False)).map(
        _check_batch,
        input_columns=["image", "objects"],
        with_indices=True,
        batched=True,
        fn_kwargs={"num_classes": num_classes, "min_size": min_size, "split": split},
        features=features,
        desc=f"checking {split} boxes",
    )
    counts = {"clipped_boxes": int(sum(out["_clipped"])), "dropped_boxes": int(sum(out["_dropped"]))}
    out = out.remove_columns(["_clipped", "_dropped"]).cast_column("image", datasets.Image())
    return out, counts


def _open_size(image: dict) -> tuple[int, int]:
    with Image.open(io.BytesIO(image["bytes"]) if image.get("bytes") else image["path"]) as im:
        return im.size


def _check_batch(images: list, objects: list, indices: list[int], num_classes: int, min_size: float, split: str) -> dict:
    out, clipped, dropped = [], [], []
    for image, objs, i in zip(images, objects, indices):
        bad = [c for c in objs["category"] if not 0 <= c < num_classes]
        if bad:
            raise HfdlError(
                f"{split} example {i} has category {bad[0]}, outside the {num_classes} classes (ids 0..{num_classes - 1}): "
                "pass --label_names with every class name, or fix its annotations"
            )
        try:
            width, height = _open_size(image)
        except Exception as err:  # PIL raises several types for a bad file
            raise HfdlError(f"{split} example {i}: its image is unreadable ({type(err).__name__}): fix or remove it") from err
        xyxy = box_ops.xywh_to_xyxy(torch.tensor(objs["bbox"], dtype=torch.float32).reshape(-1, 4))  # (N, 4)
        xyxy, n_clipped = box_ops.clip_boxes(xyxy, width, height)
        xyxy, labels, n_dropped = box_ops.drop_degenerate(xyxy, torch.tensor(objs["category"], dtype=torch.int64), min_size)
        out.append({"bbox": box_ops.xyxy_to_xywh(xyxy).tolist(), "category": labels.tolist()})
        clipped.append(n_clipped)
        dropped.append(n_dropped)
    return {"objects": out, "_clipped": clipped, "_dropped": dropped}


# --------------------------------------------------------------------------------------------------
# Box-safe transforms (torchvision.transforms.v2 with tv_tensors)
# --------------------------------------------------------------------------------------------------


@dataclass
class DetectionAugment:
    hflip: float = 0.5  # probability of a horizontal flip
    crop: float = 0.5  # probability of a random scale/crop (boxes cropped with the image, then clipped)
    scale_min: float = 0.3  # smallest crop, as a fraction of the image area
    color_jitter: float = 0.2  # brightness, contrast and saturation strength; 0 turns it off
    hue: float = 0.0  # hue jitter (0: off; the tinted items already vary in hue, and the HSV round trip is the costliest step)


class DetectionTransform:
    """(PIL image, xyxy boxes (N, 4) in its pixels, labels (N,)) -> (pixel_values (3, S, S) normalised, boxes (K, 4) xyxy
    in the S x S pixels, labels (K,), N - K dropped). Train: flip, scale/crop, colour jitter, resize, then boxes under
    `min_size` dropped (`sanitize`). Evaluation (`augment=None`, `sanitize=False`): resize only, every box kept."""

    def __init__(
        self,
        image_size: int,
        mean: tuple[float, float, float],
        std: tuple[float, float, float],
        augment: DetectionAugment | None = None,
        sanitize: bool = True,
        min_size: float = 1.0,
    ):
        from torchvision.transforms import v2

        steps = []
        if augment is not None:
            if augment.hflip:
                steps.append(v2.RandomHorizontalFlip(p=augment.hflip))
            if augment.crop:
                steps.append(v2.RandomApply([v2.RandomResizedCrop((image_size, image_size), scale=(augment.scale_min, 1.0), antialias=True)], p=augment.crop))
            if augment.color_jitter or augment.hue:
                steps.append(color_jitter(augment.color_jitter, augment.hue))
        steps += [v2.Resize((image_size, image_size), antialias=True), v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(mean), list(std))]
        if sanitize:
            steps.append(v2.SanitizeBoundingBoxes(min_size=min_size, min_area=min_size * min_size))
        self.pipeline = v2.Compose(steps)
        self.image_size = image_size

    def __call__(self, image: Image.Image, boxes: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
        from torchvision import tv_tensors
        from torchvision.transforms.v2 import functional as F

        pixels = tv_tensors.Image(F.pil_to_tensor(image))  # (3, H, W) uint8
        canvas = tuple(pixels.shape[-2:])
        sample = {"image": pixels, "boxes": tv_tensors.BoundingBoxes(boxes.reshape(-1, 4).float(), format="XYXY", canvas_size=canvas), "labels": labels}
        out = self.pipeline(sample)
        kept = out["boxes"].as_subclass(torch.Tensor)
        return out["image"].as_subclass(torch.Tensor), kept, out["labels"], len(labels) - len(kept)


def build_detection_transforms(
    image_size: int,
    mean: tuple[float, float, float],
    std: tuple[float, float, float],
    augment: DetectionAugment | None = None,
    min_size: float = 1.0,
    eval_size: int | None = None,
) -> tuple[DetectionTransform, DetectionTransform]:
    """(train, eval) transforms: train augments (when `augment` is set) and drops degenerate boxes at `image_size`;
    eval resizes only, to `eval_size` (default `image_size`)."""
    train = DetectionTransform(image_size, mean, std, augment, sanitize=True, min_size=min_size)
    return train, DetectionTransform(eval_size or image_size, mean, std, None, sanitize=False)


class DetectionImages(SeededImages):
    """(pixel_values (3, S, S), target) view of a Dataset in the one form; grayscale/RGBA converted to RGB.

    target: boxes (K, 4) xyxy in the resized pixels, labels (K,) int64, orig_size (2,) = (H, W), n_dropped (boxes the
    transform dropped). With `seed` set, the augmentation is a pure function of (seed, epoch, index) (`SeededImages`).
    """

    def __init__(self, ds: datasets.Dataset, transform: Callable, seed: int | None = None):
        super().__init__(ds, seed)
        self.transform = transform

    def __getitem__(self, idx: int) -> tuple[torch.Tensor, dict]:
        ex = self.ds[int(idx)]
        img = to_rgb(ex["image"])
        boxes = box_ops.xywh_to_xyxy(torch.tensor(ex["objects"]["bbox"], dtype=torch.float32).reshape(-1, 4))  # (N, 4)
        labels = torch.tensor(ex["objects"]["category"], dtype=torch.int64)  # (N,)
        x, boxes, labels, dropped = self.seeded(idx, self.transform, img, boxes, labels)
        return x, {"boxes": boxes, "labels": labels, "orig_size": torch.tensor([img.height, img.width]), "n_dropped": dropped}


def collate_detection(batch: list[tuple[torch.Tensor, dict]]) -> tuple[torch.Tensor, list[dict]]:
    """[(pixel_values (3, S, S), target)] -> (pixel_values (B, 3, S, S), [target] * B): boxes per image differ in number."""
    return torch.stack([x for x, _ in batch]), [t for _, t in batch]


def box_stats(ds: datasets.Dataset) -> dict:
    """Images, negatives (no objects) and boxes of a split in the one form, for logs and run records."""
    table = ds.select_columns(["objects"]).with_format("arrow")[:]
    per_image = pc.list_value_length(pc.struct_field(table.column("objects"), "category")).to_pylist()
    return {"images": len(per_image), "negatives": sum(1 for n in per_image if not n), "boxes": int(sum(n or 0 for n in per_image))}
