"""The YOLO-style detector: grids and decoding, which cells answer for an object, the loss learns, save/load."""

from __future__ import annotations

import pytest
import torch

from hfdl.errors import HfdlError
from hfdl.tasks.detection.loss import YoloLoss
from hfdl.tasks.detection.model import YoloDetector


def tiny(num_classes: int = 3, image_size: int = 64) -> YoloDetector:
    torch.manual_seed(0)
    return YoloDetector("test_efficientnet", num_classes=num_classes, image_size=image_size, neck_channels=16)


def test_grids_and_decoding():
    model = tiny().eval()
    raw = model(torch.zeros(2, 3, 64, 64))
    assert model.strides == (8, 16, 32)
    assert [tuple(r.shape) for r in raw] == [(2, 8, 8, 8), (2, 8, 4, 4), (2, 8, 2, 2)]  # 5 + 3 outputs per cell
    zero = [torch.zeros_like(r) for r in raw]
    boxes, obj, cls = model.decode(zero)
    assert boxes.shape == (2, 64 + 16 + 4, 4) and obj.shape == (2, 84) and cls.shape == (2, 84, 3)
    # a zero output: centre in the middle of its cell, size = 4 strides
    assert boxes[0, 0].tolist() == [4 - 16, 4 - 16, 4 + 16, 4 + 16]  # cell (0, 0) of stride 8
    assert boxes[0, 64 + 5].tolist() == [24 - 32, 24 - 32, 24 + 32, 24 + 32]  # cell (1, 1) of stride 16


def test_an_object_is_assigned_to_its_cell_and_two_neighbours_on_fitting_grids():
    model = tiny()
    raw = model(torch.zeros(1, 3, 64, 64))
    loss = YoloLoss(model)
    target = [{"boxes": torch.tensor([[6.0, 6.0, 38.0, 38.0]]), "labels": torch.tensor([2])}]  # 32 px, centre (22, 22)
    img, cell, boxes, labels = loss.assign(raw, target)
    # stride 8 (base 32, ratio 1): centre cell (2, 2), neighbours (3, 2) and (2, 3) since 22/8 = 2.75
    # stride 16 (base 64, ratio 2): centre cell (1, 1), neighbours (2, 1) and (1, 2) since 22/16 = 1.375 -> (0, 1), (1, 0)
    # stride 32 (base 128, ratio 4): too far from the object's size
    assert cell.tolist() == [2 * 8 + 2, 2 * 8 + 3, 3 * 8 + 2, 64 + 1 * 4 + 1, 64 + 1 * 4 + 0, 64 + 0 * 4 + 1]
    assert img.tolist() == [0] * 6 and labels.tolist() == [2] * 6 and boxes.shape == (6, 4)
    empty = loss.assign(raw, [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)}])
    assert empty[1].numel() == 0


def _squares(n: int, seed: int) -> tuple[torch.Tensor, list[dict]]:
    """White squares (class 0) and bars (class 1) on black: one object per image."""
    g = torch.Generator().manual_seed(seed)
    images, targets = torch.zeros(n, 3, 64, 64), []
    for i in range(n):
        cls = i % 2
        w, h = (20, 20) if cls == 0 else (30, 10)
        x, y = torch.randint(0, 64 - w, (1,), generator=g).item(), torch.randint(0, 64 - h, (1,), generator=g).item()
        images[i, :, y : y + h, x : x + w] = 1.0
        targets.append({"boxes": torch.tensor([[x, y, x + w, y + h]], dtype=torch.float), "labels": torch.tensor([cls])})
    return images, targets


def test_the_loss_teaches_a_tiny_detector_to_find_objects():
    model = tiny(num_classes=2).train()
    criterion = YoloLoss(model)
    images, targets = _squares(16, seed=0)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    first = None
    for _ in range(80):
        losses = criterion(model(model.normalize(images)), targets)
        opt.zero_grad()
        losses["loss"].backward()
        opt.step()
        first = first if first is not None else losses["loss"].item()
    assert losses["loss"].item() < 0.35 * first
    assert {"obj_loss", "box_loss", "cls_loss"} <= set(losses)
    model.eval()
    found = model.detect(model.normalize(images[:4]), score_threshold=0.05)
    hits = 0
    for det, t in zip(found, targets[:4]):
        if len(det["boxes"]):
            from torchvision.ops import box_iou

            hits += int(box_iou(det["boxes"][:1], t["boxes"]).item() > 0.5 and det["labels"][0] == t["labels"][0])
    assert hits >= 2  # the best detection matches the object (box and class) on training images


def test_detect_filters_by_score_and_suppresses_overlaps(monkeypatch):
    model = tiny(num_classes=2).eval()
    raw = [torch.full_like(r, -20.0) for r in model(torch.zeros(1, 3, 64, 64))]  # nothing anywhere
    raw[0][0, 0, 2, 2] = raw[0][0, 0, 2, 3] = 5.0  # two neighbouring cells, same object: NMS keeps one
    raw[0][0, 5:, 2, 2] = raw[0][0, 5:, 2, 3] = torch.tensor([4.0, -4.0])
    raw[0][0, 1:5, 2, 2] = raw[0][0, 1:5, 2, 3] = 0.0
    raw[0][0, 0, 6, 6] = 5.0  # far away, class 1
    raw[0][0, 5:, 6, 6] = torch.tensor([-4.0, 4.0])
    raw[0][0, 1:5, 6, 6] = 0.0
    monkeypatch.setattr(model, "forward", lambda x: raw)
    (det,) = model.detect(torch.zeros(1, 3, 64, 64), score_threshold=0.5, iou_threshold=0.5)
    assert sorted(det["labels"].tolist()) == [0, 1] and (det["scores"] > 0.9).all()
    (none,) = model.detect(torch.zeros(1, 3, 64, 64), score_threshold=0.999)
    assert len(none["boxes"]) == 0


def test_multi_label_also_ranks_an_uncertain_box_under_its_second_class(monkeypatch):
    """For mAP (as YOLOv5's validation): a box whose classes are 60/40 appears once per class above the threshold;
    what a user sees (`multi_label=False`) keeps only its best class."""
    model = tiny(num_classes=3).eval()
    raw = [torch.full_like(r, -20.0) for r in model(torch.zeros(1, 3, 64, 64))]
    raw[0][0, 0, 3, 3] = 20.0  # objectness ~1
    raw[0][0, 1:5, 3, 3] = 0.0
    raw[0][0, 5:, 3, 3] = torch.tensor([0.6, 0.4, 1e-6]).log()  # class probabilities 0.6, 0.4, ~0
    monkeypatch.setattr(model, "forward", lambda x: raw)
    (single,) = model.postprocess(raw, score_threshold=0.3)
    (multi,) = model.postprocess(raw, score_threshold=0.3, multi_label=True)
    assert single["labels"].tolist() == [0] and single["scores"].tolist() == pytest.approx([0.6], abs=1e-3)
    assert multi["labels"].tolist() == [0, 1] and multi["scores"].tolist() == pytest.approx([0.6, 0.4], abs=1e-3)
    assert torch.equal(multi["boxes"][0], multi["boxes"][1])  # the same box: class-wise NMS keeps both


@pytest.mark.parametrize("head", ["shared", "decoupled"])
def test_heads_give_the_lectures_cell_vector_and_start_with_rare_objects(head):
    model = YoloDetector("test_efficientnet", num_classes=3, image_size=64, neck_channels=16, head=head).eval()
    raw = model(torch.rand(2, 3, 64, 64))
    assert [r.shape[1] for r in raw] == [8, 8, 8]  # [pc, bx, by, bw, bh, c1, c2, c3]
    _, obj, _ = model.decode(raw)
    assert obj.sigmoid().mean() < 0.05  # objectness starts near 0.01
    with pytest.raises(HfdlError, match="head 'wide' is unknown"):
        YoloDetector("test_efficientnet", num_classes=3, head="wide")


def test_save_and_load_round_trip_is_strict(tmp_path):
    model = tiny(num_classes=2).eval()
    model.label_names = ["square", "bar"]
    model._hub_mixin_config["label_names"] = ["square", "bar"]
    model.save_pretrained(tmp_path)
    again = YoloDetector.from_pretrained(tmp_path)
    x = torch.rand(1, 3, 64, 64)
    assert all(torch.equal(a, b) for a, b in zip(model(x), again(x))) and again.label_names == ["square", "bar"]
    with pytest.raises(HfdlError, match="could not load a detector"):
        YoloDetector.from_pretrained(tmp_path / "missing")
    with pytest.raises(HfdlError, match="label names for"):
        YoloDetector("test_efficientnet", num_classes=2, label_names=["one"])
