"""Data resolution, columns, splits, bad images and transforms."""

import io

import datasets
import pytest
import torch
from PIL import Image

from hfdl.core.images import load_image_dataset
from hfdl.core.labelled_images import AugmentConfig, TransformedImages, build_transforms, find_columns, prepare_splits
from hfdl.errors import HfdlError


def _ds(n=40, classes=4, extra_label=False, corrupt=0):
    rows = {"img": [], "y": [], "note": []}
    for i in range(n):
        buf = io.BytesIO()
        Image.new("L", (10, 10), color=i * 5 % 255).save(buf, format="PNG")
        data = buf.getvalue() if i >= corrupt else b"not a png"
        rows["img"].append({"bytes": data, "path": None})
        rows["y"].append(i % classes)
        rows["note"].append("x")
    feats = {"img": datasets.Image(), "y": datasets.ClassLabel(names=[f"c{i}" for i in range(classes)]), "note": datasets.Value("string")}
    if extra_label:
        rows["y2"] = rows["y"]
        feats["y2"] = datasets.ClassLabel(names=[f"c{i}" for i in range(classes)])
    return datasets.Dataset.from_dict(rows, features=datasets.Features(feats))


def test_columns_are_detected():
    assert find_columns(_ds(), None, None) == ("img", "y")


def test_ambiguous_label_column_lists_the_columns():
    with pytest.raises(HfdlError, match=r"several label columns found among \['img', 'y', 'note', 'y2'\]: pass --label_column"):
        find_columns(_ds(extra_label=True), None, None)


def test_missing_column_names_the_columns():
    with pytest.raises(HfdlError, match=r"--label_column 'cls' is not a column; the columns are \['img', 'y', 'note'\]"):
        find_columns(_ds(), None, "cls")


def test_stratified_split_when_no_validation_split():
    data = prepare_splits(datasets.DatasetDict({"train": _ds(80)}), "t", train_val_split=0.25, seed=0)
    assert len(data.eval) == 20 and len(data.train) == 60
    assert sorted(data.eval["y"]) == sorted([0, 1, 2, 3] * 5)  # every class equally held out
    assert data.label_names == ["c0", "c1", "c2", "c3"]


def test_corrupt_images_are_skipped_and_counted(caplog):
    data = prepare_splits(datasets.DatasetDict({"train": _ds(200, corrupt=1)}), "t", train_val_split=0.5, seed=0, max_bad_image_fraction=0.05)
    assert len(data.train) + len(data.eval) == 199
    assert "skipped 1 unreadable" in caplog.text


def test_too_many_corrupt_images_is_an_error():
    with pytest.raises(HfdlError, match=r"images are unreadable \(over 1%\): fix or remove them, or raise --max_bad_image_fraction"):
        prepare_splits(datasets.DatasetDict({"train": _ds(40, corrupt=10)}), "t", seed=0)


def test_empty_dataset_is_an_error():
    empty = _ds(4).select([])
    with pytest.raises(HfdlError, match="train split is empty"):
        prepare_splits(datasets.DatasetDict({"train": empty}), "t")


def test_unknown_hub_dataset_offline_names_the_offline_alternatives():
    with pytest.raises(HfdlError, match=r"could not load dataset 'nobody/no-such-dataset'.*use an offline dataset: fashion_mnist, digits"):
        load_image_dataset("nobody/no-such-dataset")


def test_imagefolder_with_grayscale_images_gives_rgb_tensors(imagefolder):
    import timm

    dsd, source = load_image_dataset(train_dir=str(imagefolder[0]), validation_dir=str(imagefolder[1]))
    data = prepare_splits(dsd, source)
    assert data.eval_split == "validation" and data.label_names == ["blue", "green", "red"]
    cfg = timm.data.resolve_data_config({"input_size": (3, 32, 32), "crop_pct": 1.0})
    train_tf, eval_tf = build_transforms(cfg, AugmentConfig(rotation=10, translate=0.1, gaussian_noise=0.1, auto_augment="rand-m5"))
    modes = {data.train[i]["image"].mode for i in range(len(data.train))}
    assert "L" in modes  # the folder really mixes modes
    x, y = TransformedImages(data.train, "image", "label", train_tf, seed=1)[0]
    assert x.shape == (3, 32, 32) and isinstance(y, int)


def test_seeded_augmentation_depends_only_on_seed_epoch_and_index(imagefolder):
    import timm

    dsd, _ = load_image_dataset(train_dir=str(imagefolder[0]))
    cfg = timm.data.resolve_data_config({"input_size": (3, 32, 32)})
    train_tf, _ = build_transforms(cfg, AugmentConfig(rotation=20, auto_augment="rand-m9"))
    a = TransformedImages(dsd["train"], "image", "label", train_tf, seed=3)
    b = TransformedImages(dsd["train"], "image", "label", train_tf, seed=3)
    torch.manual_seed(123)
    xa = [a[i][0] for i in (5, 2, 9)]
    torch.manual_seed(999)  # global RNG state must not matter, nor call order
    xb = [b[i][0] for i in (9, 2, 5)][::-1]
    assert all(torch.equal(p, q) for p, q in zip(xa, xb))
    b.set_epoch(1)
    assert not torch.equal(a[5][0], b[5][0])  # a new epoch draws new augmentations
