"""transformers semantic segmenters (SegFormer, UperNet, DPT, BEiT, MobileViT...) behind the segmenter interface.

A Hub id or folder of any `AutoModelForSemanticSegmentation` checkpoint (a bare encoder such as `nvidia/mit-b0` too) is
re-headed for new classes as the transformers semantic-segmentation example does (`id2label`, `label2id`,
`ignore_mismatched_sizes=True`); its image processor is set to the square input size the pipeline trains at, so the
saved folder also works with plain transformers.

    model = build_transformers_segmenter("nvidia/mit-b0", label_names=["background", "cat"], image_size=256)
    logits = model(model.normalize(images))                      # (B, K, S, S): upsampled to the input, for the pipeline's loss
    loss = torch.nn.functional.cross_entropy(logits, masks, ignore_index=255)
    masks = model.predict(model.normalize(images))               # (B, S, S) class indices
    model.save_pretrained("outputs/segmenter")                   # AutoModelForSemanticSegmentation.from_pretrained loads it too

Inputs are (B, 3, S, S) images already resized to S = `image_size` and normalised with `mean` / `std` (the processor's
`image_mean` / `image_std`, or none when the processor does not normalise), as for the timm segmenter. The pipeline's
data step applies `--reduce_labels` itself, so the processor never reduces labels. Auxiliary heads (UperNet, DPT, BEiT)
are left out: the pipeline's loss reads the main logits only, and an unused head would stall distributed training.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.nn import functional

from hfdl.core.transformers_models import TransformersTask, read_config, square_size
from hfdl.errors import HfdlError

EXAMPLES = "nvidia/mit-b0, nvidia/segformer-b0-finetuned-ade-512-512, openmmlab/upernet-convnext-tiny, Intel/dpt-large-ade..."
SEGMENTER = TransformersTask(
    auto_class="AutoModelForSemanticSegmentation",
    mapping="MODEL_FOR_SEMANTIC_SEGMENTATION_MAPPING_NAMES",
    kind="segmenter",
    description="a semantic segmenter",
    examples=EXAMPLES,
    load_hint="pass a transformers semantic-segmentation checkpoint (SegFormer, UperNet, DPT...) with its preprocessor_config.json",
)


def is_transformers_segmenter_id(model_name_or_path: str) -> bool:
    """For the training script: True for a transformers semantic-segmentation checkpoint (local folder or Hub id), False for
    a timm backbone (a timm name, an offline backbone, `timm/...`, `hf-hub:...`, or a folder/id whose config has no `model_type`).

    A transformers model that is not a segmenter (BERT, a detector...) is an error, not a backbone."""
    return SEGMENTER.is_task_id(model_name_or_path)


class TransformersSegmenter(nn.Module):
    """Wraps an AutoModelForSemanticSegmentation and its image processor so the pipeline treats it like the timm segmenter.

    Args:
        model: a transformers semantic-segmentation model (`logits` of shape (B, K, h, w), often at a fraction of the input).
        processor: its image processor; its `size` is the square input size S, its `image_mean` / `image_std` the
            normalisation (and `do_flip_channel_order`, MobileViT's, the BGR input).
    """

    def __init__(self, model: nn.Module, processor):
        super().__init__()
        self.model, self.processor = model, processor
        id2label = {int(i): name for i, name in model.config.id2label.items()}
        self.num_classes = model.config.num_labels
        self.label_names = [id2label.get(i, str(i)) for i in range(self.num_classes)]
        self.image_size = square_size(processor)
        normalizes = getattr(processor, "do_normalize", True)
        mean = getattr(processor, "image_mean", None) if normalizes else None
        std = getattr(processor, "image_std", None) if normalizes else None
        self.register_buffer("mean", torch.tensor(list(mean or (0.0, 0.0, 0.0)), dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(list(std or (1.0, 1.0, 1.0)), dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.flip_channel_order = bool(getattr(processor, "do_flip_channel_order", False))

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Normalised (B, 3, S, S) -> logits (B, K, S, S), upsampled bilinearly to the input size as the transformers
        example does before its loss (models that already predict at the input size are returned as they are)."""
        logits = self.model(pixel_values=pixel_values).logits
        if logits.shape[-2:] != pixel_values.shape[-2:]:
            logits = functional.interpolate(logits, size=pixel_values.shape[-2:], mode="bilinear", align_corners=False)
        return logits

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) RGB in [0, 1] -> the processor's normalisation (and channel order)."""
        images = (images - self.mean) / self.std
        return images.flip(1) if self.flip_channel_order else images

    @torch.inference_mode()
    def predict(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Normalised (B, 3, S, S) -> (B, S, S) class indices (long)."""
        return self(pixel_values).argmax(1)

    def save_pretrained(self, folder: str | Path) -> None:
        """config.json + model.safetensors + preprocessor_config.json: loads with `from_pretrained` or plain transformers."""
        self.model.save_pretrained(folder)
        self.processor.save_pretrained(folder)

    @classmethod
    def from_pretrained(cls, path_or_id: str | Path, trust_remote_code: bool = False) -> TransformersSegmenter:
        """A folder or Hub id (cached when offline) with a segmenter and its image processor, in eval mode."""
        from transformers import AutoImageProcessor

        path_or_id = str(path_or_id)
        SEGMENTER.check_config(read_config(path_or_id), path_or_id, trust_remote_code)
        try:
            model = SEGMENTER.auto_model().from_pretrained(path_or_id, trust_remote_code=trust_remote_code)
            processor = AutoImageProcessor.from_pretrained(path_or_id, trust_remote_code=trust_remote_code)
        except Exception as err:
            raise SEGMENTER.load_error(path_or_id, err) from err
        return cls(model, processor).eval()


def build_transformers_segmenter(
    model_name_or_path: str, label_names: list[str], image_size: int, pretrained: bool = True, trust_remote_code: bool = False
) -> TransformersSegmenter:
    """A transformers segmenter for `label_names`, in training mode: the checkpoint's weights with a new decode-head
    classifier (`ignore_mismatched_sizes`), or random weights of its architecture (`pretrained=False`); the image
    processor resizes to `image_size` x `image_size` without reducing labels, padding or cropping, as the pipeline does."""
    from transformers import AutoConfig, AutoImageProcessor

    check_label_names(label_names)
    if image_size < 32:
        raise HfdlError(f"image_size must be >= 32, got {image_size}")
    name = model_name_or_path
    SEGMENTER.check_config(read_config(name), name, trust_remote_code)
    id2label = dict(enumerate(label_names))
    try:
        config = AutoConfig.from_pretrained(name, id2label=id2label, label2id={n: i for i, n in id2label.items()}, trust_remote_code=trust_remote_code)
        if getattr(config, "use_auxiliary_head", False):
            config.use_auxiliary_head = False  # the pipeline's loss reads `logits` only; see the module docstring
        auto_model = SEGMENTER.auto_model()
        if pretrained:
            model = auto_model.from_pretrained(name, config=config, ignore_mismatched_sizes=True, trust_remote_code=trust_remote_code)
        else:
            model = auto_model.from_config(config, trust_remote_code=trust_remote_code)
        processor = AutoImageProcessor.from_pretrained(
            name, size={"height": image_size, "width": image_size}, do_resize=True, trust_remote_code=trust_remote_code
        )
    except Exception as err:
        raise SEGMENTER.load_error(name, err) from err
    for step in ("do_reduce_labels", "do_pad", "do_center_crop", "keep_aspect_ratio"):
        if getattr(processor, step, False):
            setattr(processor, step, False)  # the pipeline reduces labels itself; square inputs need no padding or cropping
    return TransformersSegmenter(model, processor).train()


def check_label_names(label_names: list[str]) -> None:
    """One-line error unless the names are distinct, non-empty and at least two (a background counts as one)."""
    names = list(label_names)
    if len(names) < 2 or len(set(names)) != len(names) or not all(isinstance(n, str) and n.strip() for n in names):
        raise HfdlError(
            f"label names must be distinct, non-empty and at least two (background counts), got {names}: fix --label_names or the dataset's class names"
        )
