"""Detection data: every source into the one form, bad inputs as one-line errors, the box check, box-safe transforms."""

import json

import datasets
import numpy as np
import pytest
import torch
from PIL import Image

from hfdl.errors import HfdlError
from hfdl.tasks.detection.data import (
    DetectionAugment,
    DetectionImages,
    DetectionTransform,
    build_detection_transforms,
    check_objects,
    collate_detection,
    load_detection_dataset,
)

MEAN, STD = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)  # pixel_values stay in [0, 1]: easy to read back
# Three 32 x 32 images: COCO [x, y, w, h] boxes in pixels and category ids; "c" is a negative.
KNOWN = {
    "a": ([[2.0, 4.0, 8.0, 12.0]], [0]),
    "b": ([[16.0, 8.0, 12.0, 16.0], [0.0, 0.0, 8.0, 8.0]], [1, 2]),
    "c": ([], []),
}
NAMES = ["cat", "dog", "bird"]


def draw(boxes, size=(32, 32)) -> Image.Image:
    """A dark image with each box painted white: the pixels show where the boxes are."""
    arr = np.zeros((size[1], size[0], 3), dtype=np.uint8)
    for x, y, w, h in boxes:
        arr[int(y) : int(y + h), int(x) : int(x + w)] = 255
    return Image.fromarray(arr)


def write_images(folder, names=KNOWN):
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        draw(KNOWN[name][0]).save(folder / f"{name}.png")
    return folder


def objects_by_box(ds):
    """{(sorted boxes, categories)} of a split, order-free."""
    return sorted((tuple(map(tuple, ex["bbox"])), tuple(ex["category"])) for ex in ds["objects"])


def expected(names=KNOWN):
    return sorted((tuple(map(tuple, KNOWN[n][0])), tuple(KNOWN[n][1])) for n in names)


def assert_one_line(err):
    assert "\n" not in str(err.value)


# --- imagefolder with metadata.jsonl ---------------------------------------------------------------


def write_metadata_folder(folder, names=KNOWN):
    write_images(folder, names)
    lines = [json.dumps({"file_name": f"{n}.png", "objects": {"bbox": KNOWN[n][0], "category": KNOWN[n][1]}}) for n in names]
    (folder / "metadata.jsonl").write_text("\n".join(lines) + "\n")
    return folder


def test_imagefolder_train_and_validation(tmp_path):
    train = write_metadata_folder(tmp_path / "train")
    val = write_metadata_folder(tmp_path / "val", ["a", "c"])
    dsd, names, source = load_detection_dataset(train_dir=str(train), validation_dir=str(val), label_names="cat, dog,bird")
    assert list(dsd) == ["train", "validation"] and names == NAMES
    assert objects_by_box(dsd["train"]) == expected() and objects_by_box(dsd["validation"]) == expected(["a", "c"])
    assert dsd["train"].features == datasets.Features(
        {
            "image": datasets.Image(),
            "objects": {"bbox": datasets.List(datasets.List(datasets.Value("float32"), length=4)), "category": datasets.List(datasets.Value("int64"))},
        }
    )
    assert dsd["train"][0]["image"].size == (32, 32)
    assert "imagefolder" in source and "validation imagefolder" in source


def test_one_folder_is_split_with_a_seed_and_ids_name_themselves(tmp_path):
    for i in range(4):  # 12 images
        write_metadata_folder(tmp_path / "train" / f"part{i}")
    first = load_detection_dataset(train_dir=str(tmp_path / "train"), train_val_split=0.25, seed=3)
    again = load_detection_dataset(train_dir=str(tmp_path / "train"), train_val_split=0.25, seed=3)
    dsd, names, source = first
    assert (len(dsd["train"]), len(dsd["validation"])) == (9, 3)
    assert objects_by_box(dsd["validation"]) == objects_by_box(again[0]["validation"])
    assert names == ["0", "1", "2"]  # no names anywhere: the ids are the names
    assert "25% of train, seed 3" in source


def test_folder_of_no_known_kind_is_a_one_line_error(tmp_path):
    write_images(tmp_path / "plain")
    with pytest.raises(HfdlError, match="neither images/ \\+ labels/ \\(YOLO\\) nor a metadata.jsonl") as err:
        load_detection_dataset(train_dir=str(tmp_path / "plain"))
    assert_one_line(err)


# --- Hub form (saved DatasetDict), as cppe-5 --------------------------------------------------------


def test_saved_hub_form_with_classlabel_and_extra_columns(tmp_path):
    rows = {"image_id": [], "image": [], "width": [], "objects": []}
    for i, n in enumerate(KNOWN):
        rows["image_id"].append(i)
        rows["image"].append(draw(KNOWN[n][0]))
        rows["width"].append(32)
        rows["objects"].append({"id": list(range(len(KNOWN[n][1]))), "bbox": KNOWN[n][0], "category": KNOWN[n][1]})
    feats = datasets.Features(  # cppe-5's features, written the datasets 2.x way
        {
            "image_id": datasets.Value("int64"),
            "image": datasets.Image(),
            "width": datasets.Value("int32"),
            "objects": datasets.Sequence(
                {"id": datasets.Value("int64"), "bbox": datasets.Sequence(datasets.Value("float32"), length=4), "category": datasets.ClassLabel(names=NAMES)}
            ),
        }
    )
    ds = datasets.Dataset.from_dict(rows, features=feats)
    datasets.DatasetDict({"train": ds, "test": ds.select([0])}).save_to_disk(tmp_path / "saved")
    dsd, names, source = load_detection_dataset(dataset_name=str(tmp_path / "saved"))
    assert names == NAMES
    assert dsd["train"].column_names == ["image", "objects"]
    assert objects_by_box(dsd["train"]) == expected() and objects_by_box(dsd["validation"]) == expected(["a"])
    assert "its 'test' split" in source


def test_list_of_dicts_with_categories_key(tmp_path):
    feats = datasets.Features(
        {"img": datasets.Image(), "objects": datasets.List({"bbox": datasets.List(datasets.Value("float64")), "categories": datasets.ClassLabel(names=NAMES)})}
    )
    rows = {"img": [draw(KNOWN[n][0]) for n in KNOWN], "objects": [[{"bbox": b, "categories": c} for b, c in zip(*KNOWN[n])] for n in KNOWN]}
    datasets.DatasetDict({"train": datasets.Dataset.from_dict(rows, features=feats)}).save_to_disk(tmp_path / "saved")
    dsd, names, _ = load_detection_dataset(dataset_name=str(tmp_path / "saved"), train_val_split=0.34)
    assert names == NAMES
    assert sorted(objects_by_box(dsd["train"]) + objects_by_box(dsd["validation"])) == expected()


def test_a_classification_dataset_is_refused_in_one_line(tmp_path):
    ds = datasets.Dataset.from_dict(
        {"image": [draw([])], "label": [0]}, features=datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["x"])})
    )
    datasets.DatasetDict({"train": ds}).save_to_disk(tmp_path / "cls")
    with pytest.raises(HfdlError, match="no `objects` column with `bbox` and `category`") as err:
        load_detection_dataset(dataset_name=str(tmp_path / "cls"))
    assert_one_line(err)


# --- COCO json ------------------------------------------------------------------------------------


def write_coco(folder, names=KNOWN, categories=((7, "cat"), (3, "dog"), (9, "bird")), drop_image=None):
    images = write_images(folder / "images", names)
    ids = dict(zip(range(len(categories)), (c for c, _ in categories)))  # our id -> the json's
    coco = {"images": [], "annotations": [], "categories": [{"id": c, "name": n} for c, n in categories]}
    for i, n in enumerate(names):
        coco["images"].append({"id": 100 + i, "file_name": f"{n}.png", "width": 32, "height": 32})
        for box, cat in zip(*KNOWN[n]):
            coco["annotations"].append({"id": len(coco["annotations"]), "image_id": 100 + i, "bbox": box, "category_id": ids[cat], "iscrowd": 0})
    if drop_image:
        (images / f"{drop_image}.png").unlink()
    (folder / "ann.json").write_text(json.dumps(coco))
    return folder / "ann.json", images


def test_coco_ids_follow_the_categories_order_and_negatives_stay(tmp_path):
    ann, images = write_coco(tmp_path / "train")
    val_ann, val_images = write_coco(tmp_path / "val", ["b", "c"])
    dsd, names, source = load_detection_dataset(
        train_annotations=str(ann), train_images=str(images), validation_annotations=str(val_ann), validation_images=str(val_images)
    )
    assert names == NAMES  # json ids 7, 3, 9 -> 0, 1, 2 in the order of `categories`
    assert objects_by_box(dsd["train"]) == expected() and objects_by_box(dsd["validation"]) == expected(["b", "c"])
    assert "COCO json" in source


def test_coco_naming_a_missing_image_is_a_one_line_error(tmp_path):
    ann, images = write_coco(tmp_path / "train", drop_image="b")
    with pytest.raises(HfdlError, match=r"names image b.png, which is not in .*images: put it there") as err:
        load_detection_dataset(train_annotations=str(ann), train_images=str(images))
    assert_one_line(err)


def test_coco_pairs_go_together(tmp_path):
    ann, _ = write_coco(tmp_path / "train")
    with pytest.raises(HfdlError, match="--train_annotations and --train_images go together"):
        load_detection_dataset(train_annotations=str(ann))


# --- YOLO txt folders -----------------------------------------------------------------------------


def write_yolo(folder, names=KNOWN, classes_txt=True):
    write_images(folder / "images", names)
    (folder / "labels").mkdir(parents=True)
    for n in names:
        if not KNOWN[n][0]:
            continue  # a negative has no label file
        lines = [f"{c} {(x + w / 2) / 32} {(y + h / 2) / 32} {w / 32} {h / 32}" for (x, y, w, h), c in zip(*KNOWN[n])]
        (folder / "labels" / f"{n}.txt").write_text("\n".join(lines) + "\n")
    if classes_txt:
        (folder / "classes.txt").write_text("\n".join(NAMES) + "\n")
    return folder


def test_yolo_folders_with_classes_txt(tmp_path):
    train, val = write_yolo(tmp_path / "train"), write_yolo(tmp_path / "val", ["a", "c"])
    dsd, names, source = load_detection_dataset(train_dir=str(train), validation_dir=str(val))
    assert names == NAMES
    assert objects_by_box(dsd["train"]) == expected() and objects_by_box(dsd["validation"]) == expected(["a", "c"])
    assert source.startswith("YOLO folder")


def test_yolo_names_from_data_yaml_and_label_names_win(tmp_path):
    root = write_yolo(tmp_path / "ds", classes_txt=False)
    (root / "data.yaml").write_text("path: .\nnames:\n  0: cat\n  1: dog\n  2: bird\n")
    assert load_detection_dataset(dataset_name=str(root), train_val_split=0.34)[1] == NAMES
    assert load_detection_dataset(dataset_name=str(root), train_val_split=0.34, label_names=["x", "y", "z"])[1] == ["x", "y", "z"]


def test_yolo_label_without_its_image_is_a_one_line_error(tmp_path):
    root = write_yolo(tmp_path / "ds")
    (root / "labels" / "ghost.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    with pytest.raises(HfdlError, match=r"YOLO label .*ghost.txt has no image .*ghost.png/.jpg/...: add the image or delete the label file") as err:
        load_detection_dataset(train_dir=str(root))
    assert_one_line(err)


def test_yolo_malformed_line_is_a_one_line_error(tmp_path):
    root = write_yolo(tmp_path / "ds")
    (root / "labels" / "a.txt").write_text("0 0.5 0.5 0.2\n")
    with pytest.raises(HfdlError, match=r"a.txt line 1: expected 'class cx cy w h'") as err:
        load_detection_dataset(train_dir=str(root))
    assert_one_line(err)


# --- the box check --------------------------------------------------------------------------------


def one_split(objects):
    rows = {"image": [draw([]) for _ in objects], "objects": objects}
    return datasets.Dataset.from_dict(rows, features=load_features())


def load_features():
    from hfdl.tasks.detection.data import detection_features

    return detection_features()


def test_check_clips_and_drops_with_counts():
    ds = one_split(
        [
            {"bbox": [[-4.0, 2.0, 10.0, 10.0], [4.0, 4.0, 8.0, 8.0]], "category": [0, 1]},  # first box clipped
            {"bbox": [[28.0, 28.0, 10.0, 10.0], [5.0, 5.0, 0.0, 6.0], [5.0, 5.0, 6.0, -2.0]], "category": [2, 0, 1]},  # clipped; zero; negative
            {"bbox": [[40.0, 40.0, 5.0, 5.0]], "category": [1]},  # all outside: clipped to nothing, then dropped
            {"bbox": [], "category": []},  # a negative
        ]
    )
    checked, counts = check_objects(ds, num_classes=3)
    assert counts == {"clipped_boxes": 3, "dropped_boxes": 3}  # the zero and negative ones lie inside: dropped, not clipped
    assert checked["objects"] == [
        {"bbox": [[0.0, 2.0, 6.0, 10.0], [4.0, 4.0, 8.0, 8.0]], "category": [0, 1]},
        {"bbox": [[28.0, 28.0, 4.0, 4.0]], "category": [2]},
        {"bbox": [], "category": []},
        {"bbox": [], "category": []},
    ]
    assert checked.features["image"] == datasets.Image() and checked[0]["image"].size == (32, 32)


def test_check_out_of_range_category_names_the_first_bad_example():
    ds = one_split([{"bbox": [[1.0, 1.0, 4.0, 4.0]], "category": [1]}, {"bbox": [[1.0, 1.0, 4.0, 4.0]], "category": [3]}, {"bbox": [], "category": []}])
    with pytest.raises(HfdlError, match=r"validation example 1 has category 3, outside the 3 classes \(ids 0..2\): pass --label_names") as err:
        check_objects(datasets.DatasetDict({"train": ds.select([0]), "validation": ds}), num_classes=3)
    assert_one_line(err)
    with pytest.raises(HfdlError, match="category -1"):
        check_objects(one_split([{"bbox": [[1.0, 1.0, 4.0, 4.0]], "category": [-1]}]), num_classes=3)


def test_check_on_a_datasetdict_counts_per_split(tmp_path):
    dsd, names, _ = load_detection_dataset(train_dir=str(write_yolo(tmp_path / "t")), validation_dir=str(write_yolo(tmp_path / "v", ["a"])))
    checked, counts = check_objects(dsd, len(names))
    assert counts == {"train": {"clipped_boxes": 0, "dropped_boxes": 0}, "validation": {"clipped_boxes": 0, "dropped_boxes": 0}}
    assert objects_by_box(checked["train"]) == expected()


# --- transforms -----------------------------------------------------------------------------------


def xyxy(*rows):
    return torch.tensor(rows, dtype=torch.float32).reshape(-1, 4)


def test_flip_moves_a_known_box_with_its_pixels():
    flip = DetectionTransform(32, MEAN, STD, DetectionAugment(hflip=1.0, crop=0.0, color_jitter=0.0))
    x, boxes, labels, dropped = flip(draw([[2, 4, 8, 12]]), xyxy([2, 4, 10, 16]), torch.tensor([1]))
    assert torch.equal(boxes, xyxy([22, 4, 30, 16])) and labels.tolist() == [1] and dropped == 0  # x -> 32 - x
    white = (x[0] > 0.5).nonzero()
    assert (white[:, 1].min().item(), white[:, 1].max().item() + 1, white[:, 0].min().item(), white[:, 0].max().item() + 1) == (22, 30, 4, 16)


def test_eval_resizes_boxes_and_keeps_every_box():
    train_tf, eval_tf = build_detection_transforms(16, MEAN, STD, DetectionAugment(hflip=0.0, crop=0.0, color_jitter=0.0))
    boxes, labels = xyxy([2, 4, 10, 16], [20, 20, 21.5, 30]), torch.tensor([0, 2])  # the second is 1.5 px wide: 0.75 at 16 px
    x, out, out_labels, dropped = eval_tf(draw([]), boxes, labels)
    assert x.shape == (3, 16, 16) and torch.equal(out, boxes / 2) and out_labels.tolist() == [0, 2] and dropped == 0
    _, out, out_labels, dropped = train_tf(draw([]), boxes, labels)
    assert torch.equal(out, xyxy([1, 2, 5, 8])) and out_labels.tolist() == [0] and dropped == 1


def test_colour_jitter_keeps_hue_unless_asked():
    """Brightness, contrast and saturation blend a pure red with grays: green stays equal to blue. --hue rotates it."""
    from torchvision.transforms.v2 import functional as F

    from hfdl.core.images import color_jitter

    red = F.pil_to_tensor(Image.new("RGB", (8, 8), (200, 0, 0)))
    for hue, rotates in ((0.0, False), (0.1, True)):
        jitter, moved = color_jitter(0.4, hue), []
        for s in range(10):
            torch.manual_seed(s)
            out = jitter(red).int()
            moved.append(not torch.equal(out[1], out[2]))
        assert any(moved) == rotates and (all(moved) or not rotates)


def test_random_crops_keep_boxes_on_the_canvas_and_count_drops():
    tf = DetectionTransform(24, MEAN, STD, DetectionAugment(crop=1.0, scale_min=0.1))
    boxes, labels = xyxy([2, 4, 10, 16], [16, 8, 28, 24], [0, 0, 8, 8]), torch.tensor([0, 1, 2])
    seen_drop = False
    for s in range(30):
        torch.manual_seed(s)
        x, out, out_labels, dropped = tf(draw([]), boxes, labels)
        assert x.shape == (3, 24, 24)
        assert len(out) == len(out_labels) == 3 - dropped
        assert out.min() >= 0 and out.max() <= 24
        assert ((out[:, 2] - out[:, 0]) >= 1).all() and ((out[:, 3] - out[:, 1]) >= 1).all()
        seen_drop |= dropped > 0
    assert seen_drop  # a tenth of the image often misses a box


def test_detection_images_are_a_pure_function_of_seed_epoch_index(tmp_path):
    dsd, _, _ = load_detection_dataset(train_dir=str(write_metadata_folder(tmp_path / "t")), validation_dir=str(write_metadata_folder(tmp_path / "v")))
    train = dsd["train"]
    tf, eval_tf = build_detection_transforms(24, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), DetectionAugment(crop=0.7))
    a, b = DetectionImages(train, tf, seed=5), DetectionImages(train, tf, seed=5)
    torch.manual_seed(123)  # the global generator plays no part
    x1, t1 = a[1]
    torch.manual_seed(456)
    x2, t2 = b[1]
    assert torch.equal(x1, x2) and torch.equal(t1["boxes"], t2["boxes"]) and torch.equal(t1["labels"], t2["labels"])
    differs = []
    for epoch in range(1, 6):
        a.set_epoch(epoch)
        differs.append(not torch.equal(a[1][0], x1))
    assert any(differs)
    x, target = DetectionImages(train, eval_tf)[1]
    assert target["orig_size"].tolist() == [32, 32] and target["n_dropped"] == 0
    assert target["boxes"].dtype == torch.float32 and target["labels"].dtype == torch.int64


def test_collate_stacks_images_and_keeps_targets_as_a_list(tmp_path):
    dsd, _, _ = load_detection_dataset(train_dir=str(write_metadata_folder(tmp_path / "t")), validation_dir=str(write_metadata_folder(tmp_path / "v")))
    _, eval_tf = build_detection_transforms(16, MEAN, STD)
    loader = torch.utils.data.DataLoader(DetectionImages(dsd["validation"], eval_tf), batch_size=3, collate_fn=collate_detection)
    x, targets = next(iter(loader))
    assert x.shape == (3, 3, 16, 16) and len(targets) == 3
    assert sorted(len(t["boxes"]) for t in targets) == [0, 1, 2]  # the negative has boxes of shape (0, 4)
    assert all(t["boxes"].shape[1:] == (4,) for t in targets)


def test_the_yolo_type_runs_at_1_4x_its_training_size_and_a_transformers_detector_at_one_size():
    from hfdl.tasks.detection.args import DetectionDataArguments

    sizes = {size: DetectionDataArguments(image_size=size).run_size("yolo") for size in (64, 160, 320)}
    assert sizes == {64: 96, 160: 224, 320: 448}  # FixRes: 1.4x, to the coarsest grid's multiple of 32
    assert DetectionDataArguments(image_size=160, eval_image_size=160).run_size("yolo") == 160
    assert DetectionDataArguments(image_size=160).run_size("transformers") == 160
    with pytest.raises(HfdlError, match="trains and runs at one size") as info:
        DetectionDataArguments(image_size=160, eval_image_size=224).run_size("transformers")
    assert "\n" not in str(info.value)


def test_the_offline_default_is_capped_by_the_clock_unless_a_length_is_given():
    from hfdl.tasks.detection.args import EMBEDDED_TIME_BUDGET_MINUTES, DetectionTrainingArguments

    plain = DetectionTrainingArguments().capped_by_clock(EMBEDDED_TIME_BUDGET_MINUTES)
    assert (plain.num_train_epochs, plain.time_budget_minutes) == (2, EMBEDDED_TIME_BUDGET_MINUTES)  # 2 epochs or the clock
    for given in ({"num_train_epochs": 3.0}, {"max_train_steps": 50}, {"time_budget_minutes": 20.0}):
        args = DetectionTrainingArguments(**given)
        assert args.capped_by_clock(EMBEDDED_TIME_BUDGET_MINUTES) == args  # what the user asks for, alone
