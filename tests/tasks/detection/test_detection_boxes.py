"""Boxes, hand-made cases: formats, IoU of known boxes, which boxes NMS keeps, clipping and degenerate counts."""

import pytest
import torch

from hfdl.tasks.detection import boxes as box_ops


def t(*rows):
    return torch.tensor(rows, dtype=torch.float32).reshape(-1, 4)


# --- formats ------------------------------------------------------------------------------------


def test_known_conversions():
    xywh = t([2, 4, 6, 10])  # COCO: corner (2, 4), 6 wide, 10 high
    assert torch.equal(box_ops.xywh_to_xyxy(xywh), t([2, 4, 8, 14]))
    assert torch.equal(box_ops.xywh_to_cxcywh(xywh), t([5, 9, 6, 10]))
    assert torch.equal(box_ops.cxcywh_to_xyxy(t([5, 9, 6, 10])), t([2, 4, 8, 14]))
    assert torch.equal(box_ops.normalize_boxes(t([8, 16, 4, 8]), 32, 64), t([0.25, 0.25, 0.125, 0.125]))


def test_round_trips():
    g = torch.Generator().manual_seed(0)
    xy = torch.rand(20, 2, generator=g) * 50
    xyxy = torch.cat([xy, xy + 1 + torch.rand(20, 2, generator=g) * 30], dim=1)
    assert torch.allclose(box_ops.xywh_to_xyxy(box_ops.xyxy_to_xywh(xyxy)), xyxy)
    assert torch.allclose(box_ops.cxcywh_to_xyxy(box_ops.xyxy_to_cxcywh(xyxy)), xyxy)
    xywh = box_ops.xyxy_to_xywh(xyxy)
    assert torch.allclose(box_ops.cxcywh_to_xywh(box_ops.xywh_to_cxcywh(xywh)), xywh, atol=1e-5)
    assert torch.allclose(box_ops.denormalize_boxes(box_ops.normalize_boxes(xyxy, 97, 61), 97, 61), xyxy, atol=1e-5)
    assert box_ops.normalize_boxes(torch.tensor([[1, 2, 3, 4]]), 10, 10).dtype == torch.float32  # integer pixels become fractions


# --- IoU ----------------------------------------------------------------------------------------


def test_iou_of_known_boxes():
    a = t([0, 0, 10, 10])
    others = t([0, 0, 10, 10], [20, 20, 30, 30], [10, 0, 20, 10], [5, 0, 15, 10], [2, 2, 6, 6], [0, 0, 10, 5])
    iou = box_ops.box_iou(a, others)[0]
    assert iou[0] == 1.0  # identical
    assert iou[1] == 0.0  # disjoint
    assert iou[2] == 0.0  # touching along an edge: no area in common
    assert iou[3] == pytest.approx(50 / 150)  # half of each overlaps: 50 / (100 + 100 - 50)
    assert iou[4] == pytest.approx(16 / 100)  # contained: the small box's area over the big one's
    assert iou[5] == 0.5  # the lower half
    assert box_ops.box_iou(a, others).shape == (1, 6)
    assert box_ops.matched_iou(a.expand(6, 4), others).tolist() == pytest.approx(iou.tolist())  # matched pairs: the same numbers


def test_box_losses_are_torchvisions():
    a = t([0, 0, 10, 10])
    for kind in ("giou", "diou", "ciou"):
        assert box_ops.box_loss(a, a, kind).item() == pytest.approx(0.0, abs=1e-6)
        assert box_ops.box_loss(a, t([20, 20, 30, 30]), kind).item() > 1.0  # disjoint: 1 - IoU plus a distance penalty
    with pytest.raises(ValueError, match="box loss 'l1'"):
        box_ops.box_loss(a, a, "l1")


# --- NMS ----------------------------------------------------------------------------------------


def test_nms_keeps_the_best_of_overlapping_same_class_boxes():
    boxes = t([0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60])
    keep = box_ops.nms(boxes, torch.tensor([0.6, 0.9, 0.5]), torch.tensor([0, 0, 0]), 0.5)
    assert keep.tolist() == [1, 2]  # the 0.9 box suppresses the 0.6 one (IoU 81/119); the far box stays; by decreasing score


def test_nms_never_suppresses_across_classes():
    boxes = t([0, 0, 10, 10], [1, 1, 11, 11])
    assert box_ops.nms(boxes, torch.tensor([0.6, 0.9]), torch.tensor([0, 1]), 0.5).tolist() == [1, 0]


def test_nms_threshold_is_strict():
    boxes = t([0, 0, 10, 10], [0, 0, 10, 5])  # IoU exactly 0.5
    scores, labels = torch.tensor([0.9, 0.8]), torch.tensor([0, 0])
    assert box_ops.nms(boxes, scores, labels, 0.5).tolist() == [0, 1]  # suppressed only when IoU > threshold
    assert box_ops.nms(boxes, scores, labels, 0.49).tolist() == [0]


def test_postprocess_filters_scores_then_nms_then_caps():
    boxes = t([0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60], [30, 30, 40, 40], [70, 70, 80, 80])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.2, 0.6])
    labels = torch.tensor([0, 0, 1, 1, 2])
    b, s, lab = box_ops.postprocess(boxes, scores, labels, score_threshold=0.3, iou_threshold=0.5, max_detections=100)
    assert s.tolist() == pytest.approx([0.9, 0.7, 0.6])  # 0.2 under the threshold, 0.8 suppressed
    assert lab.tolist() == [0, 1, 2] and torch.equal(b[0], boxes[0])
    assert box_ops.postprocess(boxes, scores, labels, 0.3, 0.5, max_detections=2)[1].tolist() == pytest.approx([0.9, 0.7])
    empty = box_ops.postprocess(boxes, scores, labels, score_threshold=0.95)
    assert empty[0].shape == (0, 4) and empty[1].shape == (0,)


# --- cleaning -----------------------------------------------------------------------------------


def test_clip_counts_the_boxes_it_changes():
    boxes = t([-5, 2, 10, 10], [5, 5, 20, 20], [30, -1, 40, 8], [25, 25, 31, 31], [-3, -3, 40, 40])
    clipped, n = box_ops.clip_boxes(boxes, width=32, height=24)
    assert n == 4  # every box but the second, which lies inside the 32 x 24 image
    assert torch.equal(clipped, t([0, 2, 10, 10], [5, 5, 20, 20], [30, 0, 32, 8], [25, 24, 31, 24], [0, 0, 32, 24]))  # the fourth lay below: now zero high
    assert box_ops.clip_boxes(torch.zeros(0, 4), 32, 32)[1] == 0


def test_drop_degenerate_counts_and_keeps_labels_aligned():
    boxes = t([0, 0, 10, 10], [5, 5, 5, 9], [3, 3, 2, 8], [0, 0, 0.5, 4], [1, 1, 2, 2], [float("nan"), 0, 4, 4])
    labels = torch.tensor([0, 1, 2, 3, 4, 5])
    kept, kept_labels, n = box_ops.drop_degenerate(boxes, labels)
    assert n == 4  # zero width, negative width, half a pixel wide, NaN
    assert kept_labels.tolist() == [0, 4] and torch.equal(kept, t([0, 0, 10, 10], [1, 1, 2, 2]))
    assert box_ops.drop_degenerate(boxes, labels, min_size=2.0)[2] == 5
    assert box_ops.drop_degenerate(torch.zeros(0, 4), torch.zeros(0, dtype=torch.int64))[2] == 0
