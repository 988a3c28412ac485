"""transformers detectors (DETR, Conditional DETR, Deformable DETR, RT-DETR, YOLOS...) behind the YoloDetector interface.

A Hub id or folder of any `AutoModelForObjectDetection` checkpoint is re-headed for new classes as the transformers
object-detection example does (`id2label`, `label2id`, `ignore_mismatched_sizes=True`); its image processor is set to
the square input size the pipeline trains at, so the saved folder also works with plain transformers.

    model = build_transformers_detector("facebook/detr-resnet-50", label_names=["cat", "dog"], image_size=320)
    loss = model(model.normalize(images), targets).loss          # targets: [{"boxes" (N, 4) xyxy px, "labels" (N,)}]
    detections = model.detect(model.normalize(images))           # [{"boxes" (N, 4) xyxy px, "scores" (N,), "labels" (N,)}]
    model.save_pretrained("outputs/detector")                    # AutoModelForObjectDetection.from_pretrained loads it too

Inputs are (B, 3, S, S) images already resized to S = `image_size` and normalised with `mean` / `std` (the processor's
`image_mean` / `image_std`, or none when the processor does not normalise, as RT-DETR's), exactly like YoloDetector's.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torchvision.ops import clip_boxes_to_image

from hfdl.core.transformers_models import TransformersTask, read_config, square_size
from hfdl.core.transformers_models import is_transformers_checkpoint as is_transformers_checkpoint  # re-exported for load_detector
from hfdl.errors import HfdlError
from hfdl.tasks.detection import boxes as box_ops

EXAMPLES = "facebook/detr-resnet-50, microsoft/conditional-detr-resnet-50, PekingU/rtdetr_r50vd, hustvl/yolos-tiny..."
LOAD_HINT = "pass a transformers object-detection checkpoint (DETR, RT-DETR, YOLOS...) with its preprocessor_config.json"
DETECTOR = TransformersTask(
    auto_class="AutoModelForObjectDetection",
    mapping="MODEL_FOR_OBJECT_DETECTION_MAPPING_NAMES",
    kind="detector",
    description="an object detector",
    examples=EXAMPLES,
    load_hint=LOAD_HINT,
)


# --------------------------------------------------------------------------------------------------
# What a name is: a transformers detector checkpoint or not
# --------------------------------------------------------------------------------------------------


def detector_model_types() -> set[str]:
    """The `model_type`s transformers can build with `AutoModelForObjectDetection` (detr, rt_detr, yolos...)."""
    return DETECTOR.model_types()


def is_transformers_detector_id(model_name_or_path: str) -> bool:
    """For the training script: True for a transformers object-detection checkpoint (local folder or Hub id), False for a
    timm backbone (a timm name, an offline backbone, `timm/...`, `hf-hub:...`, or a folder/id whose config has no `model_type`).

    A transformers model that is not a detector (BERT, a classifier...) is an error, not a backbone."""
    return DETECTOR.is_task_id(model_name_or_path)


def check_detector_config(config: dict, path_or_id: str, trust_remote_code: bool = False, strict: bool = True) -> None:
    """One-line error unless the config is a transformers detector (or remote code registering one, when trusted)."""
    DETECTOR.check_config(config, path_or_id, trust_remote_code, strict)


# --------------------------------------------------------------------------------------------------
# The wrapper
# --------------------------------------------------------------------------------------------------


class TransformersDetector(nn.Module):
    """Wraps an AutoModelForObjectDetection and its image processor so the pipeline treats it like YoloDetector.

    Args:
        model: a transformers object-detection model (`logits`, `pred_boxes`, `.loss` with `labels`).
        processor: its image processor; its `size` is the square input size S, its `post_process_object_detection`
            turns the raw output into boxes.
    """

    def __init__(self, model: nn.Module, processor):
        super().__init__()
        self.model, self.processor = model, processor
        id2label = {int(i): name for i, name in model.config.id2label.items()}
        self.num_classes = model.config.num_labels
        self.label_names = [id2label.get(i, str(i)) for i in range(self.num_classes)]
        self.image_size = square_size(processor)
        normalizes = getattr(processor, "do_normalize", True)
        mean = processor.image_mean if normalizes else (0.0, 0.0, 0.0)
        std = processor.image_std if normalizes else (1.0, 1.0, 1.0)
        self.register_buffer("mean", torch.tensor(list(mean), dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(list(std), dtype=torch.float32).view(1, 3, 1, 1), persistent=False)

    def forward(self, pixel_values: torch.Tensor, targets: list[dict] | None = None):
        """Normalised (B, 3, S, S), optional targets [{"boxes" (N, 4) xyxy px, "labels" (N,)}] -> the transformers
        output (`logits`, `pred_boxes`; `loss` when targets are given)."""
        labels = None if targets is None else [self.to_labels(t, pixel_values) for t in targets]
        return self.model(pixel_values=pixel_values, labels=labels)

    @staticmethod
    def to_labels(target: dict, pixel_values: torch.Tensor) -> dict[str, torch.Tensor]:
        """One target in input pixels -> transformers' {"class_labels" (N,), "boxes" (N, 4) cx, cy, w, h in [0, 1]}."""
        height, width = pixel_values.shape[-2:]
        boxes = target["boxes"].to(pixel_values.device, torch.float32).reshape(-1, 4)
        boxes = box_ops.normalize_boxes(box_ops.xyxy_to_cxcywh(boxes), width, height)
        return {"class_labels": target["labels"].to(pixel_values.device, torch.long).reshape(-1), "boxes": boxes}

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] -> the processor's normalisation."""
        return (images - self.mean) / self.std

    def postprocess(
        self, raw, score_threshold: float = 0.25, iou_threshold: float = 0.5, max_detections: int = 100, multi_label: bool = False
    ) -> list[dict[str, torch.Tensor]]:
        """Raw output -> per image {"boxes" (N, 4) xyxy px of the S x S input, "scores" (N,), "labels" (N,)}: detections
        from `score_threshold` on, boxes clipped to the input, then class-wise non-max suppression (`boxes.postprocess`),
        so the IoU threshold means the same as for YoloDetector.

        `multi_label=False` is the processor's `post_process_object_detection` (each query its best class, or its
        top-k (query, class) pairs for sigmoid models); `True` keeps every (query, class) pair above the threshold,
        as YoloDetector does for mAP."""
        size = self.image_size
        if multi_label:
            found = self.query_class_pairs(raw, score_threshold)
        else:
            found = self.processor.post_process_object_detection(raw, threshold=score_threshold, target_sizes=[(size, size)] * raw.logits.shape[0])
        kept = (
            box_ops.postprocess(clip_boxes_to_image(f["boxes"], (size, size)), f["scores"], f["labels"], score_threshold, iou_threshold, max_detections)
            for f in found
        )
        return [dict(zip(("boxes", "scores", "labels"), k)) for k in kept]

    def class_probabilities(self, raw) -> torch.Tensor:
        """(B, Q, K) class probabilities of every query: a softmax without its no-object class (DETR, YOLOS: K + 1
        logits), else a sigmoid per class (Conditional and Deformable DETR, RT-DETR: K logits)."""
        logits = raw.logits.float()
        return logits.softmax(-1)[..., :-1] if logits.shape[-1] == self.num_classes + 1 else logits.sigmoid()

    def query_class_pairs(self, raw, score_threshold: float) -> list[dict[str, torch.Tensor]]:
        """Per image every (query, class) pair scoring at least `score_threshold`: {"boxes" xyxy px, "scores", "labels"}."""
        probabilities = self.class_probabilities(raw)  # (B, Q, K)
        boxes = box_ops.denormalize_boxes(box_ops.cxcywh_to_xyxy(raw.pred_boxes.float().reshape(-1, 4)), self.image_size, self.image_size)
        boxes = boxes.reshape(*raw.pred_boxes.shape)  # (B, Q, 4)
        found = []
        for b in range(probabilities.shape[0]):
            query, label = (probabilities[b] >= score_threshold).nonzero(as_tuple=True)
            found.append({"boxes": boxes[b][query], "scores": probabilities[b][query, label], "labels": label})
        return found

    @torch.inference_mode()
    def detect(
        self, pixel_values: torch.Tensor, score_threshold: float = 0.25, iou_threshold: float = 0.5, max_detections: int = 100
    ) -> list[dict[str, torch.Tensor]]:
        """Normalised (B, 3, S, S) -> per image {"boxes", "scores", "labels"} (see `postprocess`)."""
        return self.postprocess(self(pixel_values), score_threshold, iou_threshold, max_detections)

    def save_pretrained(self, folder: str | Path) -> None:
        """config.json + model.safetensors + preprocessor_config.json: loads with `load_detector` or plain transformers."""
        self.model.save_pretrained(folder)
        self.processor.save_pretrained(folder)

    @classmethod
    def from_pretrained(cls, path_or_id: str | Path, trust_remote_code: bool = False) -> TransformersDetector:
        """A folder or Hub id (cached when offline) with a detector and its image processor, in eval mode."""
        from transformers import AutoImageProcessor, AutoModelForObjectDetection

        path_or_id = str(path_or_id)
        check_detector_config(read_config(path_or_id), path_or_id, trust_remote_code)
        try:
            model = AutoModelForObjectDetection.from_pretrained(path_or_id, trust_remote_code=trust_remote_code)
            processor = AutoImageProcessor.from_pretrained(path_or_id, trust_remote_code=trust_remote_code)
        except Exception as err:
            raise _load_error(path_or_id, err) from err
        return cls(model, processor).eval()


def build_transformers_detector(
    model_name_or_path: str, label_names: list[str], image_size: int, pretrained: bool = True, trust_remote_code: bool = False
) -> TransformersDetector:
    """A transformers detector for `label_names`, in training mode: the checkpoint's weights with a new class head
    (`ignore_mismatched_sizes`), or random weights of its architecture (`pretrained=False`); the image processor
    resizes to `image_size` x `image_size` without padding, as the pipeline's transforms do."""
    from transformers import AutoConfig, AutoImageProcessor, AutoModelForObjectDetection

    if not label_names or len(set(label_names)) != len(label_names):
        raise HfdlError(f"label names must be distinct and at least one, got {list(label_names)}: fix --label_names or the dataset's class names")
    if image_size < 32:
        raise HfdlError(f"image_size must be >= 32, got {image_size}")
    check_detector_config(read_config(model_name_or_path), model_name_or_path, trust_remote_code)
    id2label = dict(enumerate(label_names))
    labels = {"id2label": id2label, "label2id": {name: i for i, name in id2label.items()}, "trust_remote_code": trust_remote_code}
    try:
        if pretrained:
            model = AutoModelForObjectDetection.from_pretrained(model_name_or_path, ignore_mismatched_sizes=True, **labels)
        else:
            config = AutoConfig.from_pretrained(model_name_or_path, **labels)
            model = AutoModelForObjectDetection.from_config(config, trust_remote_code=trust_remote_code)
        processor = AutoImageProcessor.from_pretrained(
            model_name_or_path, size={"height": image_size, "width": image_size}, do_resize=True, trust_remote_code=trust_remote_code
        )
    except Exception as err:
        raise _load_error(model_name_or_path, err) from err
    if getattr(processor, "do_pad", False):
        processor.do_pad = False  # square inputs: nothing to pad, and a Hub pad_size would change the input size
    return TransformersDetector(model, processor).train()


def _load_error(path_or_id: str, err: Exception) -> HfdlError:
    return DETECTOR.load_error(path_or_id, err)
