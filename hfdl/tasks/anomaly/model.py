"""Anomaly scores: an autoencoder's reconstruction error (the generative lecture's use), and the mean distance to
the nearest normal images in a pretrained network's feature space (DN2, Bergman et al. 2020).

    model = ConvAutoencoder.from_pretrained("outputs/anomaly/autoencoder/Trouser")
    scores = model.anomaly_score(images)            # (N,) higher: less like the normal class

The autoencoder's encoder and decoder are the generative models' convolutional bodies (`hfdl.core.conv_nets`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from hfdl.core.conv_nets import ConvDecoder, ConvEncoder
from hfdl.core.hubmodel import StrictHubMixin
from hfdl.errors import HfdlError


class ConvAutoencoder(
    nn.Module,
    StrictHubMixin,
    library_name="hfdl",
    tags=["anomaly-detection", "autoencoder", "hfdl"],
    license="apache-2.0",
):
    """Conv encoder -> `latent_dim` code -> conv decoder (logits of pixel values in [0, 1]), trained on one class.

    Args:
        image_size, channels: the square input (1 channel for grayscale).
        latent_dim, base_channels, hidden_dim: the bodies' sizes (`hfdl.core.conv_nets`).
        score: "mse" (mean squared error per pixel) or "ssim" (1 - SSIM) between an image and its reconstruction.
        normal_class: the class it was trained on (for reference).
    """

    load_what = "an anomaly autoencoder"
    load_hint = "pass a folder written by train_anomaly.py or a Hub id (cached when offline)"

    def __init__(
        self,
        image_size: int = 28,
        channels: int = 1,
        latent_dim: int = 32,
        base_channels: int = 32,
        hidden_dim: int = 256,
        score: str = "mse",
        normal_class: str | None = None,
    ):
        super().__init__()
        if score not in ("mse", "ssim"):
            raise HfdlError(f"score '{score}' is unknown: use mse or ssim")
        self.image_size, self.channels, self.score_kind, self.normal_class = image_size, channels, score, normal_class
        self.encoder = ConvEncoder(image_size, channels, base_channels, latent_dim, hidden=hidden_dim)
        self.decoder = ConvDecoder(image_size, channels, base_channels, latent_dim, hidden=hidden_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, S, S) in [0, 1] -> reconstruction logits (B, C, S, S)."""
        return self.decoder(self.encoder(x))

    @torch.inference_mode()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self(x))

    @torch.inference_mode()
    def anomaly_score(self, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
        """(N,) reconstruction error of images in [0, 1]: higher means less like the normal class."""
        was_training = self.training
        self.eval()
        out = [reconstruction_error(xb, self.reconstruct(xb), self.score_kind) for xb in x.split(batch_size)]
        self.train(was_training)
        return torch.cat(out)


def reconstruction_error(x: torch.Tensor, reconstruction: torch.Tensor, kind: str = "mse") -> torch.Tensor:
    """(B,) per-image error: mean squared error per pixel, or 1 - SSIM (torchmetrics, per image)."""
    if kind == "mse":
        return (reconstruction.float() - x.float()).pow(2).flatten(1).mean(1)
    from torchmetrics.functional.image import structural_similarity_index_measure

    ssim = structural_similarity_index_measure(reconstruction.float(), x.float(), data_range=1.0, reduction="none", kernel_size=7)
    return 1.0 - ssim


def knn_scores(normal: torch.Tensor, queries: torch.Tensor, k: int = 2, batch_size: int = 2048) -> torch.Tensor:
    """(N,) mean cosine distance of each query feature to its `k` nearest normal features."""
    if len(normal) < k:
        raise HfdlError(f"--k {k} needs at least {k} normal training images, got {len(normal)}: lower --k")
    bank = F.normalize(normal.float(), dim=1)
    out = []
    for q in F.normalize(queries.float(), dim=1).split(batch_size):
        out.append(1.0 - (q @ bank.T).topk(k, dim=1).values.mean(1))
    return torch.cat(out)
