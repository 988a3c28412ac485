"""Segmentation data: every source into the one form, the mask check (bad inputs as one-line errors or counted
skips), and joint image + mask augmentation that keeps them aligned, seeded for exact resume."""

from __future__ import annotations

import json

import datasets
import numpy as np
import pytest
import torch
from PIL import Image

from hfdl.errors import HfdlError
from hfdl.tasks.segmentation.data import (
    SegmentationAugment,
    SegmentationImages,
    SegmentationTransform,
    check_masks,
    load_segmentation_dataset,
    segmentation_features,
)

NAMES = ["background", "square", "bar"]
PALETTE = [[0, 0, 0], [255, 0, 0], [0, 0, 255]]


def scene(index: int, size: tuple[int, int] = (32, 24)) -> tuple[Image.Image, np.ndarray]:
    """A dark image with a bright square (class 1) and a grey bar (class 2); the mask marks exactly those pixels."""
    width, height = size
    image, mask = np.full((height, width, 3), 20, dtype=np.uint8), np.zeros((height, width), dtype=np.uint8)
    x = 2 + index % 10
    image[4:14, x : x + 10], mask[4:14, x : x + 10] = 250, 1
    image[18:21, 4:28], mask[18:21, 4:28] = 130, 2
    return Image.fromarray(image), mask


def write_pairs(root, n: int, mask_mode: str = "L", extra_image: bool = False, extra_mask: bool = False, id2label: list[str] | None = NAMES):
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(n):
        image, mask = scene(i)
        image.save(root / "images" / f"{i:02d}.jpg" if i % 2 else root / "images" / f"{i:02d}.png")
        if mask_mode == "P":
            m = Image.fromarray(mask, mode="P")
            m.putpalette([v for c in PALETTE for v in c] + [0] * (768 - 9))
        elif mask_mode == "RGB":
            m = Image.fromarray(np.asarray(PALETTE, dtype=np.uint8)[mask])
        else:
            m = Image.fromarray(mask, mode="L")
        m.save(root / "masks" / f"{i:02d}.png")
    if extra_image:
        scene(0)[0].save(root / "images" / "lonely.png")
    if extra_mask:
        Image.fromarray(scene(0)[1]).save(root / "masks" / "orphan.png")
    if id2label:
        (root / "id2label.json").write_text(json.dumps(dict(enumerate(id2label))))
    return root


def mask_values(ds: datasets.Dataset) -> set[int]:
    return {int(v) for m in ds["mask"] for v in np.unique(np.asarray(m))}


def test_folder_pairs_with_unpaired_files_counted_and_palette_pngs_read_as_indices(tmp_path):
    train = write_pairs(tmp_path / "train", 6, "P", extra_image=True, extra_mask=True)
    val = write_pairs(tmp_path / "val", 3, id2label=None)
    data = load_segmentation_dataset(train_dir=str(train), validation_dir=str(val))
    assert data.label_names == NAMES and data.palette is None
    assert data.stats["train"] == {"images": 6, "unpaired_images": 1, "unpaired_masks": 1}
    assert len(data.dsd["validation"]) == 3 and mask_values(data.dsd["train"]) == {0, 1, 2}
    image, mask = data.dsd["train"][0]["image"], np.asarray(data.dsd["train"][0]["mask"])
    assert image.size == (32, 24) and mask.shape == (24, 32)


def test_hub_form_columns_are_detected_and_split(tmp_path):
    rows = [scene(i) for i in range(8)]
    ds = datasets.Dataset.from_dict(
        {"pixel_values": [r[0] for r in rows], "label": [Image.fromarray(r[1]) for r in rows], "note": ["x"] * 8},
        features=datasets.Features({"pixel_values": datasets.Image(), "label": datasets.Image(), "note": datasets.Value("string")}),
    )
    datasets.DatasetDict({"train": ds}).save_to_disk(str(tmp_path / "set"))
    (tmp_path / "set" / "id2label.json").write_text(json.dumps({"0": "background", "1": "square", "2": "bar"}))
    data = load_segmentation_dataset(str(tmp_path / "set"), train_val_split=0.25, seed=0)
    assert data.label_names == NAMES and data.dsd["train"].column_names == ["image", "mask"]
    assert (len(data.dsd["train"]), len(data.dsd["validation"])) == (6, 2) and "25% of train" in data.source
    with pytest.raises(HfdlError, match="--mask_column 'mask' is not an image column"):
        load_segmentation_dataset(str(tmp_path / "set"), mask_column="mask")


def test_reduce_labels_ignores_zero_and_shifts_the_rest(tmp_path):
    train = write_pairs(tmp_path / "train", 4, id2label=["square", "bar"])
    data = load_segmentation_dataset(train_dir=str(train), reduce_labels=True, train_val_split=0.5)
    assert data.label_names == ["square", "bar"] and mask_values(data.dsd["train"]) == {255, 0, 1}


def test_rgb_masks_need_a_palette_which_maps_colours_to_ids(tmp_path):
    train = write_pairs(tmp_path / "train", 4, "RGB")
    with pytest.raises(HfdlError, match="RGB image: save masks as index PNGs .* or pass --palette"):
        load_segmentation_dataset(train_dir=str(train))
    palette = tmp_path / "palette.json"
    palette.write_text(json.dumps({str(i): c for i, c in enumerate(PALETTE)}))
    data = load_segmentation_dataset(train_dir=str(train), palette=str(palette), train_val_split=0.5)
    assert data.palette == PALETTE and mask_values(data.dsd["train"]) == {0, 1, 2}
    palette.write_text(json.dumps(PALETTE[:2]))
    with pytest.raises(HfdlError, match=r"colour \[0, 0, 255\], which --palette does not list"):
        load_segmentation_dataset(train_dir=str(train), palette=str(palette))


def test_bad_masks_and_empty_data_are_one_line_errors(tmp_path):
    small = write_pairs(tmp_path / "small", 3)
    Image.fromarray(np.zeros((10, 10), dtype=np.uint8)).save(small / "masks" / "01.png")
    with pytest.raises(HfdlError, match=r"example \d+ \(.*01.png\): its mask is 10x10 but its image 32x24"):
        load_segmentation_dataset(train_dir=str(small), train_val_split=0.34)
    outside = write_pairs(tmp_path / "outside", 3, id2label=["background", "square"])
    with pytest.raises(HfdlError, match="mask value 2, outside the 2 classes .* --reduce_labels"):
        load_segmentation_dataset(train_dir=str(outside), train_val_split=0.34)
    lonely = write_pairs(tmp_path / "lonely", 0, extra_image=True)
    with pytest.raises(HfdlError, match="holds no image/mask pairs: name each mask masks/NAME.png"):
        load_segmentation_dataset(train_dir=str(lonely))
    with pytest.raises(HfdlError, match="needs images/ and masks/"):
        load_segmentation_dataset(train_dir=str(tmp_path))
    empty = datasets.Dataset.from_dict({"image": [], "mask": []}, features=segmentation_features())
    with pytest.raises(HfdlError, match="the train split is empty"):
        check_masks(datasets.DatasetDict({"train": empty, "validation": empty}), NAMES)


def test_ids_without_names_become_the_names(tmp_path):
    train = write_pairs(tmp_path / "train", 4, id2label=None)
    data = load_segmentation_dataset(train_dir=str(train), train_val_split=0.5)
    assert data.label_names == ["0", "1", "2"]
    bad = tmp_path / "id2label.json"
    bad.write_text("[1, 2")
    with pytest.raises(HfdlError, match="is not a JSON object"):
        load_segmentation_dataset(train_dir=str(train), id2label=str(bad))


def test_joint_augmentation_keeps_image_and_mask_aligned():
    """Flip, scale/crop and rotation on every image: wherever the mask says square the pixel is bright, wherever it
    says background the pixel is dark, and pixels rotated in from outside are ignored (255)."""
    image, mask = scene(3, size=(64, 48))
    augment = SegmentationAugment(hflip=0.5, crop=1.0, scale_min=0.3, rotation=30.0, color_jitter=0.0)
    transform = SegmentationTransform(64, augment)
    images = SegmentationImages([{"image": image, "mask": Image.fromarray(mask)}] * 12, transform, seed=0)
    ignored = 0
    for i in range(len(images)):
        pixels, target = images[i]
        assert pixels.shape == (3, 64, 64) and target.shape == (64, 64) and target.dtype == torch.int64
        assert set(target.unique().tolist()) <= {0, 1, 2, 255}  # nearest neighbour: no value between the classes
        brightness = pixels.mean(0)
        inner = _eroded(target)  # away from class borders, where bilinear image resampling blends
        assert (brightness[inner & (target == 1)] > 0.8).all() and (brightness[inner & (target == 0)] < 0.2).all()
        assert ((brightness[inner & (target == 2)] - 130 / 255).abs() < 0.05).all()
        ignored += int((target == 255).sum())
    assert ignored > 0  # some images were rotated


def _eroded(target: torch.Tensor) -> torch.Tensor:
    """Pixels whose 5 x 5 neighbourhood holds one class only."""
    padded = torch.nn.functional.pad(target[None, None].float(), (2, 2, 2, 2), mode="replicate")
    high = torch.nn.functional.max_pool2d(padded, 5, 1)[0, 0]
    low = -torch.nn.functional.max_pool2d(-padded, 5, 1)[0, 0]
    return high == low


def test_augmentation_is_a_function_of_seed_epoch_and_index():
    image, mask = scene(1)
    rows = [{"image": image, "mask": Image.fromarray(mask)}] * 2
    transform = SegmentationTransform(32, SegmentationAugment(crop=1.0, rotation=20.0))
    a, b = SegmentationImages(rows, transform, seed=7), SegmentationImages(rows, transform, seed=7)
    assert all(torch.equal(x, y) for x, y in zip(a[0], b[0]))
    b.set_epoch(1)
    assert not torch.equal(a[0][0], b[0][0])
    evaluation = SegmentationTransform(32)(image, torch.from_numpy(mask))
    assert torch.equal(evaluation[1], torch.nn.functional.interpolate(torch.from_numpy(mask)[None, None].float(), (32, 32), mode="nearest")[0, 0].long())


def test_timm_segmenters_run_at_1_4x_their_training_size_and_transformers_at_one_size():
    from hfdl.tasks.segmentation.args import EMBEDDED_TIME_BUDGET_MINUTES, SegmentationDataArguments, SegmentationTrainingArguments

    assert SegmentationDataArguments(image_size=160).run_size("timm") == 224  # FixRes
    assert SegmentationDataArguments(image_size=160, eval_image_size=192).run_size("timm") == 192
    assert SegmentationDataArguments(image_size=64).run_size("transformers") == 64
    with pytest.raises(HfdlError, match="trains and runs at one size"):
        SegmentationDataArguments(image_size=64, eval_image_size=96).run_size("transformers")
    plain = SegmentationTrainingArguments().capped_by_clock(EMBEDDED_TIME_BUDGET_MINUTES)  # the offline default's clock
    assert (plain.num_train_epochs, plain.time_budget_minutes) == (3, EMBEDDED_TIME_BUDGET_MINUTES)
    assert SegmentationTrainingArguments(max_train_steps=5).capped_by_clock(EMBEDDED_TIME_BUDGET_MINUTES).time_budget_minutes is None


def test_the_offline_defaults_clock_capped_run_evaluates_once_training_ends(monkeypatch, tmp_path):
    """A plain run's minutes go to training (--eval_strategy end); a --compare keeps its curves, anything given wins."""
    from hfdl.tasks.segmentation import pipeline
    from hfdl.tasks.segmentation.args import EMBEDDED_TIME_BUDGET_MINUTES, SegmentationDataArguments, SegmentationTrainingArguments, SegmenterArguments

    seen = {}
    monkeypatch.setattr(pipeline, "run_one", lambda s, d, t, argv=None: seen.setdefault("args", t))
    monkeypatch.setattr(pipeline, "run_variants", lambda names, folders, t, *a, **k: seen.setdefault("args", t) and {})
    monkeypatch.setattr(pipeline, "write_comparison", lambda *a, **k: "")

    def resolved(segmenter=None, **training) -> SegmentationTrainingArguments:
        seen.clear()
        pipeline.run(segmenter or SegmenterArguments(), SegmentationDataArguments(), SegmentationTrainingArguments(output_dir=str(tmp_path), **training))
        return seen["args"]

    plain = resolved()
    assert (plain.eval_strategy, plain.time_budget_minutes, plain.num_train_epochs) == ("end", EMBEDDED_TIME_BUDGET_MINUTES, 3)
    assert resolved(eval_strategy="epoch").eval_strategy == "epoch"
    assert resolved(num_train_epochs=1).eval_strategy is None  # not clock-capped: each epoch's end, the loop's default
    assert resolved(SegmenterArguments(compare="unet,lraspp")).eval_strategy is None


def test_offline_default_trains_on_denser_scenes_and_validates_on_the_detection_sets_scenes(monkeypatch):
    from hfdl import assets
    from hfdl.tasks.segmentation import pipeline
    from hfdl.tasks.segmentation.args import DEFAULT_COMPOSITE_MAX_OBJECTS, VALIDATION_MAX_OBJECTS, SegmentationDataArguments

    monkeypatch.setattr(pipeline, "EMBEDDED_DEFAULT", {"num_train": 24, "num_validation": 6})
    data = pipeline.load_data(SegmentationDataArguments(image_size=64, composite_max_objects=12), seed=0)
    plain = assets.composite_dataset(24, 6, 64, max_objects=VALIDATION_MAX_OBJECTS, seed=0)  # one density for both splits

    def items(ds) -> float:  # the share of item pixels
        return np.mean([(np.asarray(m) > 0).mean() for m in ds["mask"]])

    for column in ("image", "mask"):  # validation: the very same scenes, pixel for pixel
        assert [np.asarray(a).tolist() for a in data.dsd["validation"][column]] == [np.asarray(b).tolist() for b in plain["validation"][column]]
    assert items(data.dsd["train"]) > 1.4 * items(plain["train"])  # training: denser scenes of the same items and photos
    assert "up to 12 items" in data.source and f"up to {VALIDATION_MAX_OBJECTS}" in data.source
    assert SegmentationDataArguments().resolved_composite_max_objects() == DEFAULT_COMPOSITE_MAX_OBJECTS
    with pytest.raises(HfdlError, match="--composite_max_objects 12.*drop it with --dataset_name"):
        SegmentationDataArguments(dataset_name="segments/sidewalk-semantic", composite_max_objects=12)
    with pytest.raises(HfdlError, match="--composite_max_objects 0"):
        SegmentationDataArguments(composite_max_objects=0)


def test_skip_strides_are_lraspps_and_checked_before_any_data_loads():
    from hfdl.tasks.segmentation.args import DEFAULT_SKIP_STRIDES, SegmenterArguments

    assert SegmenterArguments().resolved_skip_strides() == DEFAULT_SKIP_STRIDES == (4, 8, 16)
    assert SegmenterArguments(skip_strides="16, 4,8").resolved_skip_strides() == (4, 8, 16)
    for bad in ("8,32", "8,8", "eight", ","):
        with pytest.raises(HfdlError, match=f"--skip_strides '{bad}': name one or more of 4, 8, 16"):
            SegmenterArguments(skip_strides=bad)
    with pytest.raises(HfdlError, match="--skip_strides shapes the LR-ASPP head, not --model_type unet"):
        SegmenterArguments(model_type="unet", skip_strides="8")
    assert SegmenterArguments().resolved_skip_channels() == 64 and SegmenterArguments(skip_channels=0).resolved_skip_channels() == 0
    with pytest.raises(HfdlError, match="--skip_channels must be 0"):
        SegmenterArguments(skip_channels=-2)
    with pytest.raises(HfdlError, match="--skip_channels shapes the LR-ASPP head, not --model_type fpn"):
        SegmenterArguments(model_type="fpn", skip_channels=32)


def test_the_offline_default_augments_with_flips_and_crops_only_your_data_also_with_rotation_and_jitter():
    from hfdl.tasks.segmentation.args import SegmentationDataArguments
    from hfdl.tasks.segmentation.card import augmentation

    plain = SegmentationDataArguments()  # the composites vary tint, mirror, scale, place and background themselves
    assert (plain.rotation, plain.color_jitter, plain.hue) == (0.0, 0.0, 0.0)
    assert augmentation(vars(plain)) == "flip p=0.5, scale/crop p=0.5 (area from 0.3)"
    theirs = SegmentationDataArguments(dataset_name="segments/sidewalk-semantic")
    assert (theirs.rotation, theirs.color_jitter, theirs.hue) == (10.0, 0.2, 0.02)
    assert augmentation(vars(theirs)).endswith("rotation up to 10 deg (p=0.5), colour jitter 0.2, hue 0.02")
    assert plain.augment() == SegmentationAugment(hflip=0.5, crop=0.5, scale_min=0.3, rotation=0.0, color_jitter=0.0, hue=0.0)
    assert theirs.augment() == SegmentationAugment(hflip=0.5, crop=0.5, scale_min=0.3, rotation=10.0, color_jitter=0.2, hue=0.02)
    assert SegmentationDataArguments(rotation=5.0).rotation == 5.0  # asked for: kept, offline default or not
    with pytest.raises(HfdlError, match="--rotation >= 0"):
        SegmentationDataArguments(rotation=-1.0)
