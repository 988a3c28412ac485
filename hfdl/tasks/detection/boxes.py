"""Boxes as the lectures teach them: formats, IoU, non-max suppression, clipping, and post-processing.

Formats (all float tensors of shape (N, 4), one row per box):
  xywh    COCO and the Hub (cppe-5): top-left corner x, y, then width, height, in pixels
  xyxy    corners x1, y1, x2, y2 (what torchvision.ops and tv_tensors XYXY take)
  cxcywh  the lecture's (bx, by, bw, bh): centre, then width, height (YOLO labels, normalised to [0, 1])
Normalised boxes are divided by the image's (width, height, width, height); any of the three formats scales the same way.

IoU, NMS and the box losses are torchvision.ops's (`box_iou`, `batched_nms`; `generalized_box_iou_loss`,
`distance_box_iou_loss` and `complete_box_iou_loss` exist in torchvision >= 0.15, so GIoU, DIoU and CIoU are all available).
NMS, as torchvision does it and the lecture states it: a box is suppressed by a higher-scoring one of the same class
when their IoU is strictly greater than the threshold.
"""

from __future__ import annotations

import torch
from torchvision import ops

BOX_LOSSES = {
    "giou": ops.generalized_box_iou_loss,
    "diou": ops.distance_box_iou_loss,
    "ciou": ops.complete_box_iou_loss,
}


# --------------------------------------------------------------------------------------------------
# Formats: (N, 4) -> (N, 4)
# --------------------------------------------------------------------------------------------------


def xywh_to_xyxy(boxes: torch.Tensor) -> torch.Tensor:
    """COCO [x, y, w, h] -> [x1, y1, x2, y2]."""
    return ops.box_convert(boxes, "xywh", "xyxy")


def xyxy_to_xywh(boxes: torch.Tensor) -> torch.Tensor:
    """[x1, y1, x2, y2] -> COCO [x, y, w, h]."""
    return ops.box_convert(boxes, "xyxy", "xywh")


def cxcywh_to_xyxy(boxes: torch.Tensor) -> torch.Tensor:
    """[cx, cy, w, h] (the lecture's bx, by, bw, bh) -> [x1, y1, x2, y2]."""
    return ops.box_convert(boxes, "cxcywh", "xyxy")


def xyxy_to_cxcywh(boxes: torch.Tensor) -> torch.Tensor:
    """[x1, y1, x2, y2] -> [cx, cy, w, h]."""
    return ops.box_convert(boxes, "xyxy", "cxcywh")


def xywh_to_cxcywh(boxes: torch.Tensor) -> torch.Tensor:
    """COCO [x, y, w, h] -> [cx, cy, w, h]."""
    return ops.box_convert(boxes, "xywh", "cxcywh")


def cxcywh_to_xywh(boxes: torch.Tensor) -> torch.Tensor:
    """[cx, cy, w, h] -> COCO [x, y, w, h]."""
    return ops.box_convert(boxes, "cxcywh", "xywh")


def _scale(width: float, height: float, like: torch.Tensor) -> torch.Tensor:
    return torch.tensor([width, height, width, height], dtype=like.dtype, device=like.device)  # (4,)


def normalize_boxes(boxes: torch.Tensor, width: float, height: float) -> torch.Tensor:
    """Pixels -> fractions of the image (any of the three formats)."""
    boxes = boxes.float() if not boxes.is_floating_point() else boxes
    return boxes / _scale(width, height, boxes)


def denormalize_boxes(boxes: torch.Tensor, width: float, height: float) -> torch.Tensor:
    """Fractions of the image -> pixels (any of the three formats)."""
    boxes = boxes.float() if not boxes.is_floating_point() else boxes
    return boxes * _scale(width, height, boxes)


# --------------------------------------------------------------------------------------------------
# IoU, NMS, losses
# --------------------------------------------------------------------------------------------------


def box_iou(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    """Intersection area over union area of every pair: xyxy (N, 4), (M, 4) -> (N, M)."""
    return ops.box_iou(boxes1, boxes2)


def matched_iou(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    """IoU of matched pairs: xyxy (N, 4), (N, 4) -> (N,), the diagonal of `box_iou` without its N x N matrix."""
    lt, rb = torch.maximum(boxes1[:, :2], boxes2[:, :2]), torch.minimum(boxes1[:, 2:], boxes2[:, 2:])  # (N, 2) each
    inter = (rb - lt).clamp(min=0).prod(1)  # (N,)
    return inter / (ops.box_area(boxes1) + ops.box_area(boxes2) - inter)


def nms(boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Class-wise non-max suppression: xyxy (N, 4), scores (N,), labels (N,) -> kept indices (K,), by decreasing score.

    Boxes of different classes never suppress each other (torchvision's `batched_nms`)."""
    return ops.batched_nms(boxes.float(), scores.float(), labels, iou_threshold)


def box_loss(pred: torch.Tensor, target: torch.Tensor, kind: str = "giou", reduction: str = "mean") -> torch.Tensor:
    """GIoU / DIoU / CIoU loss of matched xyxy pairs (N, 4), (N, 4) -> a scalar ("mean", "sum") or (N,) ("none")."""
    if kind not in BOX_LOSSES:
        raise ValueError(f"box loss {kind!r} is not one of {sorted(BOX_LOSSES)}")
    return BOX_LOSSES[kind](pred, target, reduction=reduction)


# --------------------------------------------------------------------------------------------------
# Cleaning: clip to the image, drop degenerate boxes
# --------------------------------------------------------------------------------------------------


def clip_boxes(boxes: torch.Tensor, width: float, height: float) -> tuple[torch.Tensor, int]:
    """Clip xyxy boxes (N, 4) to the image [0, width] x [0, height] -> (clipped (N, 4), how many boxes changed)."""
    if boxes.numel() == 0:
        return boxes.reshape(0, 4), 0
    boxes = boxes.float() if not boxes.is_floating_point() else boxes
    clipped = boxes.clamp(min=torch.zeros_like(boxes[0]), max=_scale(width, height, boxes))  # (N, 4)
    changed = ((clipped != boxes) & ~boxes.isnan()).any(dim=1)  # (N,)
    return clipped, int(changed.sum())


def drop_degenerate(boxes: torch.Tensor, labels: torch.Tensor, min_size: float = 1.0) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Drop xyxy boxes (N, 4) narrower or lower than `min_size` (zero, negative or NaN size) and their labels (N,).

    -> (kept boxes (K, 4), kept labels (K,), N - K)."""
    if boxes.numel() == 0:
        return boxes.reshape(0, 4), labels.reshape(0), 0
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    keep = (w >= min_size) & (h >= min_size)  # (N,); NaN compares False, so NaN boxes go too
    return boxes[keep], labels[keep], int((~keep).sum())


# --------------------------------------------------------------------------------------------------
# Post-processing of one image's raw detections
# --------------------------------------------------------------------------------------------------


def postprocess(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    labels: torch.Tensor,
    score_threshold: float = 0.3,
    iou_threshold: float = 0.5,
    max_detections: int = 100,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The lecture's two steps: keep scores >= `score_threshold`, then class-wise NMS; at most `max_detections`.

    xyxy boxes (N, 4), scores (N,), labels (N,) -> (boxes (K, 4), scores (K,), labels (K,)), by decreasing score."""
    confident = scores >= score_threshold  # (N,)
    boxes, scores, labels = boxes[confident], scores[confident], labels[confident]
    keep = nms(boxes, scores, labels, iou_threshold)[:max_detections]  # (K,)
    return boxes[keep], scores[keep], labels[keep]
