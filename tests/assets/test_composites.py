"""The offline detection / segmentation set: Fashion-MNIST items on real photo crops, boxes and masks that agree."""

import os
import sys
from pathlib import Path

import datasets
import numpy as np
import pytest

from hfdl import assets
from hfdl.assets import composites
from hfdl.assets import datasets as dataset_assets
from hfdl.errors import HfdlError

TINY = dict(num_train=12, num_validation=4, image_size=64, max_objects=6, seed=0)
needs_fashion_mnist = pytest.mark.skipif(
    not (dataset_assets.FASHION_MNIST_DIR / "t10k-images-idx3-ubyte.gz").is_file(), reason="Debian dataset-fashion-mnist not installed"
)


@pytest.fixture(scope="module")
def tiny():
    return composites.composite_dataset(**TINY)


def raw_rows(ds) -> list[dict]:
    """Rows with the encoded image and mask bytes, not decoded pictures."""
    return ds.cast_column("image", datasets.Image(decode=False)).cast_column("mask", datasets.Image(decode=False)).to_list()


@needs_fashion_mnist
def test_hub_detection_columns_and_class_names(tiny):
    assert list(tiny) == ["train", "validation"] and (len(tiny["train"]), len(tiny["validation"])) == (12, 4)
    features = tiny["train"].features
    assert list(features) == ["image_id", "image", "width", "height", "objects", "mask"]
    assert features["objects"]["category"].feature.names == assets.FASHION_MNIST_LABELS  # the accessor category_names documents
    assert composites.category_names(features) == composites.category_names(tiny["train"]) == assets.FASHION_MNIST_LABELS
    assert composites.SEGMENTATION_LABELS == ["background", *assets.FASHION_MNIST_LABELS]
    row = tiny["train"][0]
    assert row["image"].mode == "RGB" and row["image"].size == (64, 64) == (row["width"], row["height"])
    assert row["mask"].mode == "L" and row["mask"].size == (64, 64)
    assert set(row["objects"]) == {"id", "area", "bbox", "category"}


@needs_fashion_mnist
def test_boxes_lie_inside_the_image_with_exact_areas_and_valid_categories(tiny):
    for split in tiny.values():
        ids = []
        for row in split:
            objects = row["objects"]
            for (x, y, w, h), area, category in zip(objects["bbox"], objects["area"], objects["category"], strict=True):
                assert w > 0 and h > 0 and x >= 0 and y >= 0 and x + w <= row["width"] and y + h <= row["height"]
                assert area == w * h and 0 <= category < 10
            ids += objects["id"]
        assert len(ids) == len(set(ids))


@needs_fashion_mnist
def test_the_mask_agrees_with_the_boxes(tiny):
    for split in tiny.values():
        for row in split:
            mask = np.asarray(row["mask"])
            covered = np.zeros(mask.shape, dtype=bool)  # pixels inside a box of the mask's class
            for (x, y, w, h), category in zip(row["objects"]["bbox"], row["objects"]["category"], strict=True):
                x, y, w, h = int(x), int(y), int(w), int(h)
                inside = mask[y : y + h, x : x + w] == category + 1
                assert inside.any(), "an item keeps at least half its foreground visible"
                covered[y : y + h, x : x + w] |= inside
            assert covered[mask > 0].all() and mask.max() <= 10
            if not row["objects"]["id"]:
                assert not mask.any()


@needs_fashion_mnist
def test_negatives_and_crowded_images_both_occur(tiny):
    counts = [len(objects["id"]) for objects in tiny["train"]["objects"]]
    assert 0 in counts and max(counts) >= 4 and max(counts) <= TINY["max_objects"]


@needs_fashion_mnist
def test_the_build_is_deterministic_and_each_image_depends_on_seed_split_index_only(tiny):
    fresh = composites._build(dict(TINY))  # in memory, not through the cache
    for split in ("train", "validation"):
        assert raw_rows(fresh[split]) == raw_rows(tiny[split])
    shorter = composites._build(dict(TINY, num_train=5, num_validation=2))
    assert raw_rows(shorter["train"]) == raw_rows(tiny["train"])[:5]
    assert raw_rows(shorter["validation"]) == raw_rows(tiny["validation"])[:2]
    other = composites._build(dict(TINY, num_train=3, num_validation=0, seed=1))
    assert [r["image"]["bytes"] for r in raw_rows(other["train"])] != [r["image"]["bytes"] for r in raw_rows(tiny["train"])[:3]]


@needs_fashion_mnist
def test_the_cache_is_reused_and_carries_provenance(tiny, monkeypatch):
    def no_rebuild(params):
        raise AssertionError("rebuilt instead of loading the cache")

    monkeypatch.setattr(composites, "_build", no_rebuild)
    again = composites.composite_dataset(**TINY)
    assert again["train"]._fingerprint == tiny["train"]._fingerprint
    root = assets.hfdl_cache_dir() / "datasets"
    assert not [p for p in root.iterdir() if ".tmp-" in p.name]
    folder = root / f"composites-{composites._cache_key(TINY)}"
    assert (folder / "dataset_dict.json").is_file()
    assert '"arguments"' in (folder / "provenance.json").read_text()


@needs_fashion_mnist
def test_worker_processes_draw_the_same_images_as_one_process(tiny, monkeypatch):
    """A large split is shared out among forked worker processes: the rows, in order, are those one process draws."""
    monkeypatch.setattr(composites, "PARALLEL_MIN_IMAGES", 1)  # share out even these 12
    monkeypatch.setattr(composites, "MAX_WORKERS", 2)
    if not sys.platform.startswith("linux") or len(os.sched_getaffinity(0)) < 2:
        pytest.skip("one process draws: not Linux, or one CPU")
    rows = composites._draw("train", TINY["num_train"], composites._checked_arguments(**TINY))
    assert [r["image_id"] for r in rows] == list(range(TINY["num_train"]))
    expected = raw_rows(tiny["train"])
    assert [r["image"]["bytes"] for r in rows] == [r["image"]["bytes"] for r in expected]
    assert [r["mask"]["bytes"] for r in rows] == [r["mask"]["bytes"] for r in expected]
    assert [r["objects"]["bbox"] for r in rows] == [r["objects"]["bbox"] for r in expected]


def test_an_interrupted_build_leaves_no_half_dataset(monkeypatch, tmp_path):
    monkeypatch.setenv("HFDL_CACHE", str(tmp_path))

    class Interrupted:
        def save_to_disk(self, path):
            Path(path).mkdir(parents=True)
            (Path(path) / "data-00000-of-00001.arrow").write_bytes(b"half")
            raise KeyboardInterrupt

    monkeypatch.setattr(composites, "_build", lambda params: Interrupted())
    with pytest.raises(KeyboardInterrupt):
        composites.composite_dataset(**TINY)
    assert not list((tmp_path / "datasets").iterdir())


@pytest.mark.parametrize(
    "bad",
    [
        dict(image_size=31),
        dict(max_objects=-1),
        dict(num_train=-1),
        dict(num_train=0),
        dict(num_validation=0),
        dict(seed=-1),
        dict(image_size=64.0),
        dict(num_train=True),
    ],
)
def test_bad_arguments_are_one_line_errors(bad):
    with pytest.raises(HfdlError) as err:
        composites.composite_dataset(**dict(TINY, **bad))
    assert "\n" not in str(err.value) and next(iter(bad)) in str(err.value)


def test_missing_fashion_mnist_files_say_how_to_get_them(monkeypatch, tmp_path):
    monkeypatch.setenv("HFDL_CACHE", str(tmp_path / "cache"))  # no cached Fashion-MNIST either
    monkeypatch.setattr(dataset_assets, "FASHION_MNIST_DIR", tmp_path / "absent")
    with pytest.raises(HfdlError, match=r"apt-get install dataset-fashion-mnist.*make setup") as err:
        composites.composite_dataset(**TINY)
    assert "\n" not in str(err.value)


def test_category_names_reads_both_objects_forms():
    label = datasets.ClassLabel(names=["a", "b"])
    as_dict_of_lists = datasets.Features({"objects": datasets.Sequence({"bbox": datasets.Sequence(datasets.Value("float32"), length=4), "category": label})})
    as_list_of_dicts = datasets.Features({"objects": datasets.List({"bbox": datasets.List(datasets.Value("float32"), length=4), "categories": label})})
    assert composites.category_names(as_dict_of_lists) == composites.category_names(as_list_of_dicts) == ["a", "b"]
    with pytest.raises(HfdlError, match="--label_names"):
        composites.category_names(datasets.Features({"objects": datasets.Sequence({"category": datasets.Value("int64")})}))


def test_provenance_names_every_source_and_license():
    record = composites.COMPOSITES.provenance()
    assert set(record) == {"name", "source", "license", "hub_equivalent", "description"}
    assert "dataset-fashion-mnist" in record["source"] and "china.jpg" in record["source"] and "brick" in record["source"]
    assert "MIT" in record["license"] and "CC0" in record["license"] and "CC-BY-2.0" in record["license"]
    assert "cppe-5" in record["hub_equivalent"]
