"""An image embedding network: a timm backbone, a linear projection, L2-normalised (FaceNet's shape).

Two images are "the same" when their embeddings are close: the cosine similarity of two embeddings is
their dot product, and their squared Euclidean distance is `2 - 2 cos`. One network embeds both images of
a pair (the siamese idea) and every image of a triplet.

    model = EmbeddingModel.from_pretrained("outputs/embedding")     # or a Hub id
    vectors = model.embed_images([pil_a, pil_b])                     # (2, embedding_dim), unit length
    same = (vectors[0] @ vectors[1]) >= model.threshold              # the verification threshold at the EER

Inference and save/load only (the Space and the index scripts import it): a `PyTorchModelHubMixin` folder
(config.json + model.safetensors), loaded strictly. Training lives in the pipeline.
"""

from __future__ import annotations

import timm
import torch
import torch.nn.functional as F
from torch import nn

from hfdl.core.feature_cache import pooled_features
from hfdl.core.hubmodel import StrictHubMixin
from hfdl.core.images import to_rgb
from hfdl.errors import HfdlError


class EmbeddingModel(
    nn.Module,
    StrictHubMixin,
    library_name="hfdl",
    tags=["image-feature-extraction", "metric-learning", "hfdl", "timm"],
    pipeline_tag="image-feature-extraction",
    license="apache-2.0",
):
    """timm backbone (pooled pre-logits) -> Linear(num_features, embedding_dim) -> L2 normalisation.

    Args:
        backbone: a timm architecture name (the weights come from the checkpoint; the pipeline loads the
            pretrained ones into `self.backbone` before training).
        embedding_dim: size of the embedding.
        image_size: the square input size the model was trained at.
        mean, std, interpolation: the backbone's timm data config (what `embed_images` applies).
        label_names: the training classes (for reference; an embedding model is not a classifier).
        threshold: cosine similarity from which two images count as the same class (the validation EER's).
    """

    load_what = "an embedding model"
    load_hint = "pass a folder written by train_embedding.py or a Hub id (cached when offline)"

    def __init__(
        self,
        backbone: str = "tf_efficientnet_lite0",
        embedding_dim: int = 128,
        image_size: int = 64,
        mean: tuple[float, ...] = (0.5, 0.5, 0.5),
        std: tuple[float, ...] = (0.5, 0.5, 0.5),
        interpolation: str = "bicubic",
        label_names: list[str] | None = None,
        threshold: float | None = None,
    ):
        super().__init__()
        if embedding_dim < 1 or image_size < 16:
            raise HfdlError(f"embedding_dim must be >= 1 and image_size >= 16, got {embedding_dim} and {image_size}")
        self.backbone = timm.create_model(backbone, pretrained=False, num_classes=0)
        self.head = nn.Linear(self.backbone.num_features, embedding_dim)
        self.embedding_dim, self.image_size, self.interpolation = embedding_dim, image_size, interpolation
        self.mean_std = (tuple(mean), tuple(std))
        self.label_names = list(label_names or [])
        self.threshold = threshold

    def set_threshold(self, threshold: float | None) -> None:
        """Set the verification threshold, in the saved config too (the mixin saves the init arguments)."""
        self.threshold = None if threshold is None else float(threshold)
        if isinstance(self._hub_mixin_config, dict):
            self._hub_mixin_config["threshold"] = self.threshold

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) normalised pixels -> (B, embedding_dim) unit vectors."""
        return F.normalize(self.head(pooled_features(self.backbone, pixel_values)).float(), dim=-1)

    @property
    def data_config(self) -> dict:
        """timm's data config of the model (for `timm.data.create_transform`)."""
        mean, std = self.mean_std
        return {"input_size": (3, self.image_size, self.image_size), "interpolation": self.interpolation, "mean": mean, "std": std, "crop_pct": 1.0}

    def transform(self):
        from timm.data import create_transform

        return create_transform(**self.data_config, is_training=False)

    @torch.inference_mode()
    def embed_images(self, images: list, batch_size: int = 64) -> torch.Tensor:
        """PIL images of any size and mode -> (N, embedding_dim) unit vectors (eval mode, the model's transform)."""
        if not images:
            raise HfdlError("no images to embed: pass at least one image")
        tf, device = self.transform(), next(self.parameters()).device
        was_training = self.training
        self.eval()
        out = []
        for i in range(0, len(images), batch_size):
            x = torch.stack([tf(to_rgb(im)) for im in images[i : i + batch_size]]).to(device)
            out.append(self(x.contiguous(memory_format=torch.channels_last)).cpu())
        self.train(was_training)
        return torch.cat(out)


def cosine_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """1 - cos(a, b) of unit vectors (0: identical direction, 2: opposite)."""
    return 1.0 - (a * b).sum(-1)
