"""The YOLO-style detector's training loss: which cells answer for which object, and what they are taught.

Assignment (as YOLOv5, without anchors): an object belongs to every grid whose base size (4 strides) is
within a factor 4 of its longer side, and there to the cell holding its centre plus the two neighbouring
cells nearest to it (their decoded centre can reach it: it moves up to 1.5 cells). Those cells learn
- objectness: binary cross-entropy towards the IoU of their box with the object (0 everywhere else),
  with the grids weighted 4 : 1 : 0.4 (fine grids have many more empty cells);
- the box: complete-IoU loss (`torchvision.ops.complete_box_iou_loss`), or GIoU;
- the class: cross-entropy.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from hfdl.errors import HfdlError
from hfdl.tasks.detection import boxes as box_ops
from hfdl.tasks.detection.model import BASE_CELLS, YoloDetector

LEVEL_WEIGHTS = (4.0, 1.0, 0.4)
MAX_SIZE_RATIO = 4.0


class YoloLoss(torch.nn.Module):
    """`loss(raw, targets) -> {"loss", "obj_loss", "box_loss", "cls_loss"}`; `targets` is one dict per image
    with "boxes" (N, 4) xyxy in input pixels and "labels" (N,)."""

    def __init__(self, model: YoloDetector, box_loss: str = "ciou", obj_weight: float = 1.0, box_weight: float = 5.0, cls_weight: float = 1.0):
        super().__init__()
        if box_loss not in ("ciou", "giou"):
            raise HfdlError(f"--box_loss '{box_loss}' is unknown: use ciou or giou")
        self.model, self.box_loss = model, box_loss
        self.weights = (obj_weight, box_weight, cls_weight)

    def assign(self, raw: list[torch.Tensor], targets: list[dict]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(image index, flat cell index over all grids, object boxes (P, 4), object labels (P,)) of every positive."""
        device = raw[0].device
        images, cells, boxes, labels = [], [], [], []
        offset = 0
        for r, stride in zip(raw, self.model.strides):
            h, w = r.shape[-2:]
            base = BASE_CELLS * stride
            for b, t in enumerate(targets):
                gt = t["boxes"].to(device).float()
                if gt.numel() == 0:
                    continue
                side = (gt[:, 2:] - gt[:, :2]).max(1).values
                ratio = torch.maximum(side / base, base / side.clamp(min=1e-6))
                fit = ratio < MAX_SIZE_RATIO
                if not fit.any():
                    continue
                g, lab = gt[fit], t["labels"].to(device)[fit]
                centre = (g[:, :2] + g[:, 2:]) / 2 / stride  # (n, 2) in cells
                cell = centre.floor()
                frac = centre - cell
                # the centre cell, then the nearer horizontal and the nearer vertical neighbour
                shifts = [torch.zeros_like(cell), torch.stack([torch.where(frac[:, 0] < 0.5, -1.0, 1.0), torch.zeros_like(frac[:, 0])], 1)]
                shifts.append(torch.stack([torch.zeros_like(frac[:, 1]), torch.where(frac[:, 1] < 0.5, -1.0, 1.0)], 1))
                for s in shifts:
                    xy = cell + s
                    ok = (xy[:, 0] >= 0) & (xy[:, 0] < w) & (xy[:, 1] >= 0) & (xy[:, 1] < h)
                    idx = offset + (xy[ok, 1] * w + xy[ok, 0]).long()
                    images.append(torch.full_like(idx, b))
                    cells.append(idx)
                    boxes.append(g[ok])
                    labels.append(lab[ok])
            offset += h * w
        if not cells:
            empty = torch.zeros(0, dtype=torch.long, device=device)
            return empty, empty, torch.zeros(0, 4, device=device), empty
        return torch.cat(images), torch.cat(cells), torch.cat(boxes), torch.cat(labels).long()

    def forward(self, raw: list[torch.Tensor], targets: list[dict]) -> dict[str, torch.Tensor]:
        boxes, obj, cls = self.model.decode(raw)  # (B, N, 4), (B, N), (B, N, K)
        img, cell, gt, lab = self.assign(raw, targets)
        obj_target = torch.zeros_like(obj)
        if cell.numel():
            pred = boxes[img, cell]  # (P, 4)
            box_loss = box_ops.box_loss(pred.float(), gt, kind=self.box_loss)
            cls_loss = F.cross_entropy(cls[img, cell].float(), lab)
            with torch.no_grad():
                iou = box_ops.matched_iou(pred.float(), gt).clamp(min=0)
            obj_target[img, cell] = iou.to(obj_target.dtype)  # a cell two objects claim keeps one of them
        else:
            box_loss = cls_loss = obj.sum() * 0.0
        per_cell = F.binary_cross_entropy_with_logits(obj.float(), obj_target.float(), reduction="none")
        obj_loss, offset = obj.new_zeros((), dtype=torch.float32), 0
        for r, weight in zip(raw, LEVEL_WEIGHTS):
            n = r.shape[-2] * r.shape[-1]
            obj_loss = obj_loss + weight * per_cell[:, offset : offset + n].mean()
            offset += n
        w_obj, w_box, w_cls = self.weights
        total = w_obj * obj_loss + w_box * box_loss + w_cls * cls_loss
        return {"loss": total, "obj_loss": obj_loss.detach(), "box_loss": box_loss.detach(), "cls_loss": cls_loss.detach()}
