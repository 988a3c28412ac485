"""Convolutional encoder and decoder bodies in DCGAN's shape (stride-2 4x4 (transposed) convolutions, no pooling),
shared by the generative models (VAE, autoencoder, GAN) and the anomaly-detection autoencoder."""

from __future__ import annotations

import torch
from torch import nn


def stride2_stages(image_size: int) -> int:
    """How many stride-2 (de)convolutions a conv body uses: halve while the side stays even and >= 4 (at most 4).
    28 -> 14 -> 7 (2 stages), 32 -> 4 (3), 64 -> 4 (4), 8 -> 4 (1)."""
    stages, side = 0, image_size
    while stages < 4 and side % 2 == 0 and side // 2 >= 4:
        side, stages = side // 2, stages + 1
    return stages


class ConvEncoder(nn.Module):
    """Stride-2 4x4 convolutions (DCGAN's shape: no pooling, LeakyReLU), then a linear map to `out_features`
    (through a `hidden`-unit layer when `hidden` > 0)."""

    def __init__(self, image_size: int, channels: int, base_channels: int, out_features: int, norm: str = "batch", first_norm: bool = True, hidden: int = 0):
        super().__init__()
        stages = stride2_stages(image_size)
        layers, width = [], channels
        for i in range(stages):
            out = base_channels * 2**i
            use_norm = norm == "batch" and (first_norm or i > 0)
            layers += [nn.Conv2d(width, out, 4, 2, 1, bias=not use_norm), *([nn.BatchNorm2d(out)] if use_norm else []), nn.LeakyReLU(0.2, inplace=True)]
            width = out
        if stages == 0:  # a side too small or odd to halve: one 3x3 convolution
            layers += [nn.Conv2d(width, base_channels, 3, 1, 1), nn.LeakyReLU(0.2, inplace=True)]
            width = base_channels
        self.body = nn.Sequential(*layers)
        side = image_size // 2**stages
        flat = width * side * side
        self.out = nn.Sequential(nn.Linear(flat, hidden), nn.LeakyReLU(0.2, True), nn.Linear(hidden, out_features)) if hidden else nn.Linear(flat, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, S, S) -> (B, out_features)
        return self.out(self.body(x).flatten(1))


class ConvDecoder(nn.Module):
    """DCGAN's generator shape: a linear map (through a `hidden`-unit layer when `hidden` > 0) to the smallest map,
    stride-2 4x4 transposed convolutions with BatchNorm + ReLU, the last one straight to the image's channels
    (logits; no full-resolution hidden layer), plus one bias per pixel."""

    def __init__(self, image_size: int, channels: int, base_channels: int, in_features: int, hidden: int = 0):
        super().__init__()
        stages = stride2_stages(image_size)
        self.side = image_size // 2**stages
        self.width = base_channels * 2 ** max(stages - 1, 0)
        first = [nn.Linear(in_features, hidden), nn.ReLU(True)] if hidden else []
        flat = self.width * self.side * self.side
        self.inp = nn.Sequential(*first, nn.Linear(hidden or in_features, flat, bias=False), nn.BatchNorm1d(flat), nn.ReLU(True))
        layers, width = [], self.width
        for i in reversed(range(1, stages)):
            out = base_channels * 2 ** (i - 1)
            layers += [nn.ConvTranspose2d(width, out, 4, 2, 1, bias=False), nn.BatchNorm2d(out), nn.ReLU(True)]
            width = out
        layers.append(nn.ConvTranspose2d(width, channels, 4, 2, 1, bias=False) if stages else nn.Conv2d(width, channels, 3, 1, 1, bias=False))
        self.body = nn.Sequential(*layers)
        self.pixel_bias = nn.Parameter(torch.zeros(channels, image_size, image_size))  # one bias per pixel (as an MLP decoder's last layer has)

    def forward(self, z: torch.Tensor) -> torch.Tensor:  # (B, in_features) -> (B, C, S, S) logits
        return self.body(self.inp(z).view(-1, self.width, self.side, self.side)) + self.pixel_bias
