"""A one-stage, YOLO-style detector on any timm backbone: what the lectures teach, on the fused kernels.

Every cell of a grid predicts `[pc, bx, by, bw, bh, c1..cK]` (objectness, a box, class scores), as in the
lectures' `Y = [pc, bx, by, bh, bw, c1, c2]`; three grids (strides 8, 16, 32 of a timm `features_only`
backbone, joined by a light top-down neck) cover small to large objects. Boxes are decoded as in YOLOv5:
the centre may move half a cell beyond its own (so neighbouring cells can also predict an object), and
the size is `base * (2 sigmoid(t))^2` with `base = 4 * stride`, so each grid covers sizes up to 16 strides.

    model = YoloDetector("tf_efficientnet_lite0", num_classes=10, label_names=[...])
    detections = model.detect(pixel_values)          # [{"boxes" (N, 4) xyxy px, "scores" (N,), "labels" (N,)}]

Inference and save/load only (the Space imports it): `PyTorchModelHubMixin` folder (config.json +
model.safetensors), loaded strictly. Training (targets, losses) lives in `loss.py` and the pipeline.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import clip_boxes_to_image

from hfdl.core.hubmodel import StrictHubMixin
from hfdl.errors import HfdlError
from hfdl.tasks.detection import boxes as box_ops

OUT_INDICES = (-3, -2, -1)  # the last three stages: strides 8, 16, 32
BASE_CELLS = 4.0  # a grid's base box size, in strides


class ConvBnAct(nn.Sequential):
    def __init__(self, cin: int, cout: int, k: int = 3):
        super().__init__(nn.Conv2d(cin, cout, k, padding=k // 2, bias=False), nn.BatchNorm2d(cout), nn.SiLU(inplace=True))


class TopDownNeck(nn.Module):
    """A light FPN: 1x1 lateral convs to `channels`, the coarser map upsampled and added, then a 3x3 conv."""

    def __init__(self, in_channels: list[int], channels: int):
        super().__init__()
        self.lateral = nn.ModuleList(ConvBnAct(c, channels, 1) for c in in_channels)
        self.smooth = nn.ModuleList(ConvBnAct(channels, channels, 3) for _ in in_channels)

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        maps = [lat(f) for lat, f in zip(self.lateral, feats)]  # each (B, C, H_l, W_l), fine to coarse
        for i in range(len(maps) - 2, -1, -1):
            maps[i] = maps[i] + F.interpolate(maps[i + 1], size=maps[i].shape[-2:], mode="nearest")
        return [s(m) for s, m in zip(self.smooth, maps)]


class SharedHead(nn.Sequential):
    """One 3x3 conv, then a 1x1 conv giving every cell `[pc, bx, by, bw, bh, c1..cK]` (the lectures' vector)."""

    def __init__(self, channels: int, num_classes: int):
        super().__init__(ConvBnAct(channels, channels, 3), nn.Conv2d(channels, 5 + num_classes, 1))

    def init_bias(self) -> None:
        """Objectness starts near 0.01 (few cells hold an object), classes near uniform: a stable first step."""
        _init_outputs(self[-1].bias, self[-1].bias[:0])


class DecoupledHead(nn.Module):
    """As YOLOX: objectness + box from one 3x3 branch, the classes from a deeper one of their own (what is in a box
    and where it is want different features); the output layout is the shared head's."""

    def __init__(self, channels: int, num_classes: int):
        super().__init__()
        self.box = nn.Sequential(ConvBnAct(channels, channels, 3), nn.Conv2d(channels, 5, 1))
        self.cls = nn.Sequential(ConvBnAct(channels, channels, 3), ConvBnAct(channels, channels, 3), nn.Conv2d(channels, num_classes, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.box(x), self.cls(x)], 1)

    def init_bias(self) -> None:
        _init_outputs(self.box[-1].bias, self.cls[-1].bias)


def _init_outputs(box_bias: torch.Tensor, cls_bias: torch.Tensor) -> None:
    with torch.no_grad():
        box_bias.zero_()
        cls_bias.zero_()
        box_bias[0] = -math.log((1 - 0.01) / 0.01)


HEADS = {"shared": SharedHead, "decoupled": DecoupledHead}


class YoloDetector(
    nn.Module,
    StrictHubMixin,
    library_name="hfdl",
    tags=["object-detection", "yolo", "hfdl", "timm"],
    pipeline_tag="object-detection",
    license="apache-2.0",
):
    """Backbone (timm, `features_only`) -> neck -> one shared head per grid: (B, 5 + K, H_l, W_l) each.

    Args:
        backbone: a timm architecture name (the weights come from the checkpoint; the pipeline loads
            pretrained ones into `self.backbone` before training).
        num_classes: K.
        label_names: K class names, saved in config.json.
        image_size: the square input size the model was trained at.
        neck_channels: width of the neck and head.
        mean, std: input normalisation (the backbone's).
    """

    load_what = "a detector"
    load_hint = "pass a folder written by train_detector.py or a Hub id (cached when offline)"

    def __init__(
        self,
        backbone: str = "tf_efficientnet_lite0",
        num_classes: int = 1,
        label_names: list[str] | None = None,
        image_size: int = 160,
        neck_channels: int = 64,
        mean: tuple[float, ...] = (0.5, 0.5, 0.5),
        std: tuple[float, ...] = (0.5, 0.5, 0.5),
        head: str = "shared",
    ):
        super().__init__()
        import timm

        if num_classes < 1 or image_size < 32 or neck_channels < 1:
            raise HfdlError(f"num_classes, image_size and neck_channels must be >= 1, 32 and 1; got {num_classes}, {image_size}, {neck_channels}")
        if head not in HEADS:
            raise HfdlError(f"head '{head}' is unknown: use one of {', '.join(HEADS)}")
        if label_names is not None and len(label_names) != num_classes:
            raise HfdlError(f"{len(label_names)} label names for {num_classes} classes: give one name per class")
        self.num_classes, self.image_size = num_classes, image_size
        self.label_names = list(label_names) if label_names is not None else [str(i) for i in range(num_classes)]
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)
        try:
            self.backbone = timm.create_model(backbone, pretrained=False, features_only=True, out_indices=OUT_INDICES)
        except Exception as err:  # an unknown architecture name
            raise HfdlError(f"cannot build the detector backbone '{backbone}' ({type(err).__name__}): use a timm architecture name") from err
        self.strides = tuple(self.backbone.feature_info.reduction())
        self.neck = TopDownNeck(self.backbone.feature_info.channels(), neck_channels)
        self.head = HEADS[head](neck_channels, num_classes)
        self.head.init_bias()
        self.to(memory_format=torch.channels_last)  # NHWC: oneDNN's fast convolution layout (1.8x faster training on 2 CPU cores)
        self._grids: dict[tuple, torch.Tensor] = {}

    def forward(self, pixel_values: torch.Tensor) -> list[torch.Tensor]:
        """(B, 3, H, W) normalised -> one raw map (B, 5 + K, H_l, W_l) per grid, fine to coarse."""
        pixel_values = pixel_values.contiguous(memory_format=torch.channels_last)
        return [self.head(m) for m in self.neck(self.backbone(pixel_values))]

    def grid(self, level: int, height: int, width: int, device: torch.device) -> torch.Tensor:
        """Cell corners (H_l * W_l, 2) as (x, y) in cells, cached per size and device."""
        key = (level, height, width, str(device))
        if key not in self._grids:
            ys, xs = torch.meshgrid(torch.arange(height, device=device), torch.arange(width, device=device), indexing="ij")
            self._grids[key] = torch.stack([xs, ys], -1).reshape(-1, 2).float()
        return self._grids[key]

    def decode(self, raw: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Raw maps -> boxes (B, N, 4) xyxy in input pixels, objectness logits (B, N), class logits (B, N, K);
        N = all cells of all grids, fine to coarse, row-major."""
        boxes, obj, cls = [], [], []
        for level, (r, stride) in enumerate(zip(raw, self.strides)):
            b, _, h, w = r.shape
            r = r.float().flatten(2).transpose(1, 2)  # (B, H*W, 5 + K); float: bf16 would round boxes to 0.5 px
            xy = (self.grid(level, h, w, r.device) + r[..., 1:3].sigmoid() * 2 - 0.5) * stride  # centre
            wh = (r[..., 3:5].sigmoid() * 2) ** 2 * (BASE_CELLS * stride)  # size
            boxes.append(torch.cat([xy - wh / 2, xy + wh / 2], -1))
            obj.append(r[..., 0])
            cls.append(r[..., 5:])
        return torch.cat(boxes, 1), torch.cat(obj, 1), torch.cat(cls, 1)

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] -> the backbone's normalisation."""
        return (images - self.mean) / self.std

    def postprocess(
        self,
        raw: list[torch.Tensor],
        score_threshold: float = 0.25,
        iou_threshold: float = 0.5,
        max_detections: int = 100,
        multi_label: bool = False,
    ) -> list[dict[str, torch.Tensor]]:
        """Raw maps -> per image {"boxes" (N, 4) xyxy px, "scores" (N,), "labels" (N,)}: score = objectness x class
        probability, kept from `score_threshold` on, then class-wise non-max suppression (`boxes.postprocess`).

        `multi_label=False` gives each box its best class (what a user wants to see); `True` keeps every
        (box, class) pair above the threshold, as YOLOv5's and torchvision's detectors do for mAP, so a box whose
        class is uncertain also ranks under its second class."""
        boxes, obj, cls = self.decode(raw)
        probs = obj.sigmoid().unsqueeze(-1) * cls.softmax(-1)  # (B, N, K)
        found = []
        for b in range(boxes.shape[0]):
            if multi_label:
                cell, label = (probs[b] >= score_threshold).nonzero(as_tuple=True)
                picked = (boxes[b][cell], probs[b][cell, label], label)
            else:
                picked = (boxes[b], *probs[b].max(-1))
            found.append(dict(zip(("boxes", "scores", "labels"), box_ops.postprocess(*picked, score_threshold, iou_threshold, max_detections))))
        return found

    @torch.inference_mode()
    def detect(
        self, pixel_values: torch.Tensor, score_threshold: float = 0.25, iou_threshold: float = 0.5, max_detections: int = 100
    ) -> list[dict[str, torch.Tensor]]:
        """Normalised (B, 3, H, W) -> per image {"boxes", "scores", "labels"} (see `postprocess`)."""
        return self.postprocess(self(pixel_values), score_threshold, iou_threshold, max_detections)


def detect_in_image(model, image, score_threshold: float = 0.3, iou_threshold: float = 0.5, max_detections: int = 100) -> dict[str, torch.Tensor]:
    """One RGB PIL image -> {"boxes" (N, 4) xyxy in the image's pixels, clipped to it, "scores", "labels"}: the image is
    resized to the model's square input (as in training) and the boxes scaled back. Any model `load_detector` gives."""
    from hfdl.core.images import image_to_tensor

    x = image_to_tensor(image)  # (1, 3, H, W) in [0, 1]
    resized = torch.nn.functional.interpolate(x, size=(model.image_size, model.image_size), mode="bilinear", antialias=True, align_corners=False)
    (found,) = model.detect(model.normalize(resized.to(model.mean.device)), score_threshold, iou_threshold, max_detections)
    scale = torch.tensor([image.width, image.height, image.width, image.height], dtype=torch.float32) / model.image_size
    boxes = clip_boxes_to_image(found["boxes"].detach().float().cpu() * scale, (image.height, image.width))
    return {"boxes": boxes, "scores": found["scores"].detach().float().cpu(), "labels": found["labels"].detach().cpu()}


def detect_image(model, image, score_threshold: float = 0.3, iou_threshold: float = 0.5) -> tuple[list[dict], "PIL.Image.Image"]:  # noqa: F821
    """One image (path, PIL or array) -> ([{"label", "score", "box" xyxy in the image's pixels}], the image with its boxes)."""
    from torchvision.transforms.v2 import functional as tvf

    from hfdl.core.images import open_image, tensor_to_image

    img = open_image(image)
    found = detect_in_image(model, img, score_threshold, iou_threshold)
    detections = [
        {"label": model.label_names[c], "score": round(s, 4), "box": [round(v, 1) for v in b]}
        for c, s, b in zip(found["labels"].tolist(), found["scores"].tolist(), found["boxes"].tolist())
    ]
    drawn = draw_detections(tvf.pil_to_tensor(img), found, model.label_names, width=max(2, img.width // 200))
    return detections, tensor_to_image(drawn.float() / 255)


def draw_detections(pixels: torch.Tensor, found: dict[str, torch.Tensor], label_names: list[str], width: int = 2) -> torch.Tensor:
    """uint8 (3, H, W) -> the same with each detection's box and `label score` caption drawn."""
    from torchvision.utils import draw_bounding_boxes

    captions = [f"{label_names[c]} {s:.2f}" for c, s in zip(found["labels"].tolist(), found["scores"].tolist())]
    return draw_bounding_boxes(pixels, found["boxes"].cpu(), captions, colors="yellow", width=width) if captions else pixels


def load_detector(path_or_id: str, trust_remote_code: bool = False):
    """A detector folder or Hub id -> a model with `detect`, `normalize`, `image_size`, `label_names`, `mean`:
    the yolo type (hfdl's config.json) or a transformers detector (config.json with a `model_type`)."""
    from hfdl.tasks.detection.transformers_detector import TransformersDetector, is_transformers_checkpoint

    if is_transformers_checkpoint(path_or_id):
        return TransformersDetector.from_pretrained(path_or_id, trust_remote_code=trust_remote_code)
    return YoloDetector.from_pretrained(path_or_id)
