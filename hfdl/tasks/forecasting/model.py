"""Forecasters: a window of the past (lookback x features) -> the next `horizon` values of the target.

Encoders are the lecture's family: `mlp` (the flattened window), `conv1d`, and `rnn` / `lstm` / `gru`, stacked
(`num_layers`) and optionally bidirectional over the past window. Recurrent layers take Keras' two dropouts:
`dropout` on each layer's inputs and `recurrent_dropout` on the hidden state inside the recurrence, each with ONE
mask per sequence, the same at every time step (Gal & Ghahramani 2015). Without recurrent dropout (and at
evaluation) the fused cuDNN / oneDNN kernels of `nn.GRU` / `nn.LSTM` / `nn.RNN` run; with it, the same
parameters are stepped in Python (the input projections of every step in one matmul).

The model holds the training part's normalisation, so `forecast` takes and returns raw units.
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hfdl.core.hubmodel import StrictHubMixin
from hfdl.errors import HfdlError

RECURRENT = ("rnn", "lstm", "gru")
MODEL_TYPES = (*RECURRENT, "conv1d", "mlp")
_MODULES = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


def sequence_mask(batch: int, size: int, p: float, like: torch.Tensor) -> torch.Tensor:
    """A dropout mask (batch, size) scaled by 1/(1-p): one draw per sequence, reused at every time step."""
    return torch.empty(batch, size, dtype=like.dtype, device=like.device).bernoulli_(1 - p) / (1 - p)


def recurrence(cell: str, x_proj: torch.Tensor, h: torch.Tensor, c: torch.Tensor | None, w_hh: torch.Tensor, b_hh: torch.Tensor, mask: torch.Tensor | None):
    """Step one direction of one layer over time, PyTorch's cell equations, the hidden state times `mask` in the
    recurrent product. `x_proj` (B, T, G*H) is W_ih x + b_ih of every step. Returns outputs (B, T, H) and (h, c)."""
    outputs = []
    for t in range(x_proj.shape[1]):
        hm = h if mask is None else h * mask
        gh = F.linear(hm, w_hh, b_hh)
        gx = x_proj[:, t]
        if cell == "gru":
            xr, xz, xn = gx.chunk(3, 1)
            hr, hz, hn = gh.chunk(3, 1)
            r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
            h = (1 - z) * torch.tanh(xn + r * hn) + z * h  # Keras / Gal: the carried h itself is not masked
        elif cell == "lstm":
            i, f, g, o = (gx + gh).chunk(4, 1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
        else:
            h = torch.tanh(gx + gh)
        outputs.append(h)
    return torch.stack(outputs, 1), (h, c)


class RecurrentStack(nn.Module):
    """`num_layers` recurrent layers (each its own `nn.GRU` / `nn.LSTM` / `nn.RNN`, optionally bidirectional)
    with per-sequence input and recurrent dropout. Returns the last layer's outputs (B, T, D*H) and the
    summary of the window (B, D*H): the forward state after the last step (and the backward state after
    the first)."""

    def __init__(self, cell: str, input_size: int, hidden_size: int, num_layers: int, bidirectional: bool, dropout: float, recurrent_dropout: float):
        super().__init__()
        self.cell, self.hidden_size, self.dirs = cell, hidden_size, 2 if bidirectional else 1
        self.dropout, self.recurrent_dropout = dropout, recurrent_dropout
        extra = {"nonlinearity": "tanh"} if cell == "rnn" else {}
        self.layers = nn.ModuleList(
            _MODULES[cell](input_size if i == 0 else hidden_size * self.dirs, hidden_size, batch_first=True, bidirectional=bidirectional, **extra)
            for i in range(num_layers)
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        summary = None
        for layer in self.layers:
            if self.training and self.dropout > 0:
                x = x * sequence_mask(x.shape[0], x.shape[2], self.dropout, x).unsqueeze(1)
            if self.training and self.recurrent_dropout > 0:
                x, summary = self._stepped(layer, x)
            else:
                x, state = layer(x)
                h = state[0] if self.cell == "lstm" else state  # (D, B, H)
                summary = torch.cat(list(h), dim=-1)
        return x, summary

    def _stepped(self, layer: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The layer's own parameters stepped in Python with one recurrent-dropout mask per sequence and direction."""
        b, H = x.shape[0], self.hidden_size
        outs, finals = [], []
        for d, suffix in enumerate(["_l0", "_l0_reverse"][: self.dirs]):
            w_ih, w_hh = getattr(layer, "weight_ih" + suffix), getattr(layer, "weight_hh" + suffix)
            b_ih, b_hh = getattr(layer, "bias_ih" + suffix), getattr(layer, "bias_hh" + suffix)
            seq = x.flip(1) if d == 1 else x
            h0 = x.new_zeros(b, H)
            out, (h, _) = recurrence(
                self.cell, F.linear(seq, w_ih, b_ih), h0, x.new_zeros(b, H) if self.cell == "lstm" else None, w_hh, b_hh,
                sequence_mask(b, H, self.recurrent_dropout, x),
            )  # fmt: skip
            outs.append(out.flip(1) if d == 1 else out)
            finals.append(h)
        return torch.cat(outs, -1), torch.cat(finals, -1)


class Forecaster(nn.Module, StrictHubMixin):
    """Past window -> the next `horizon` values of the target, with the data's normalisation inside.

    `residual=True` predicts the change from the last observed target value (the naive forecast plus a
    learned correction), so an untrained network starts at the naive baseline rather than at the mean.
    """

    load_what: ClassVar[str] = "a forecaster"

    def __init__(
        self,
        model_type: str = "gru",
        num_features: int = 1,
        lookback: int = 72,
        horizon: int = 24,
        hidden_size: int = 64,
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        residual: bool = True,
        target_index: int = 0,
        feature_names: list[str] | None = None,
        target: str | None = None,
        mean: list[float] | None = None,
        std: list[float] | None = None,
        frequency: str | None = None,
    ):
        super().__init__()
        if model_type not in MODEL_TYPES:
            raise HfdlError(f"model type '{model_type}' is unknown: use one of {', '.join(MODEL_TYPES)}")
        self.model_type, self.lookback, self.horizon, self.residual = model_type, lookback, horizon, residual
        self.target_index, self.frequency = target_index, frequency
        self.feature_names = feature_names or [f"x{i}" for i in range(num_features)]
        self.target = target or self.feature_names[target_index]
        self.register_buffer("mean", torch.tensor(mean if mean is not None else [0.0] * num_features, dtype=torch.float32))
        self.register_buffer("std", torch.tensor(std if std is not None else [1.0] * num_features, dtype=torch.float32))
        if model_type in RECURRENT:
            self.encoder = RecurrentStack(model_type, num_features, hidden_size, num_layers, bidirectional, dropout, recurrent_dropout)
            width = hidden_size * (2 if bidirectional else 1)
        elif model_type == "conv1d":
            blocks, channels = [], num_features
            for _ in range(num_layers):
                blocks += [nn.Conv1d(channels, hidden_size, 5, padding=2), nn.ReLU(), nn.MaxPool1d(2, ceil_mode=True)]
                channels = hidden_size
            self.encoder = nn.Sequential(*blocks, nn.AdaptiveAvgPool1d(1), nn.Flatten())
            width = hidden_size
        else:
            layers, width = [nn.Flatten()], lookback * num_features
            for _ in range(num_layers):
                layers += [nn.Linear(width, hidden_size), nn.ReLU(), nn.Dropout(dropout)]
                width = hidden_size
            self.encoder = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Dropout(dropout if model_type != "mlp" else 0.0), nn.Linear(width, horizon))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised window (B, lookback, F) -> normalised target forecast (B, horizon)."""
        if self.model_type in RECURRENT:
            _, features = self.encoder(x)
        elif self.model_type == "conv1d":
            features = self.encoder(x.transpose(1, 2))
        else:
            features = self.encoder(x)
        out = self.head(features)
        return out + x[:, -1, self.target_index : self.target_index + 1] if self.residual else out

    @torch.inference_mode()
    def forecast(self, window: np.ndarray | torch.Tensor, horizon: int | None = None) -> np.ndarray:
        """Raw window(s) (lookback, F) or (B, lookback, F), features in `feature_names` order -> raw forecast(s) (horizon,) / (B, horizon)."""
        x = torch.as_tensor(
            np.array(window, dtype=np.float32) if not torch.is_tensor(window) else window, dtype=torch.float32
        )  # a copy: pandas views are read-only
        single = x.dim() == 2
        x = x.unsqueeze(0) if single else x
        if x.shape[1:] != (self.lookback, len(self.feature_names)):
            raise HfdlError(
                f"the window is {tuple(x.shape[1:])} but this model reads ({self.lookback}, {len(self.feature_names)}): the last {self.lookback} rows of {', '.join(self.feature_names)}"
            )
        if horizon is not None and not 1 <= horizon <= self.horizon:
            raise HfdlError(f"--horizon {horizon} is beyond what this model forecasts (1..{self.horizon}): ask for at most {self.horizon} steps")
        self.eval()
        t = self.target_index
        y = self((x.to(self.mean.device) - self.mean) / self.std) * self.std[t] + self.mean[t]
        y = y[:, :horizon] if horizon else y
        return (y[0] if single else y).cpu().numpy()

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def seasonal_scale(train_target: np.ndarray, season: int) -> float:
    """The MASE denominator: the in-sample MAE of the seasonal naive forecast on the training part (Hyndman & Koehler 2006)."""
    m = max(1, season)
    if len(train_target) <= m:
        raise HfdlError(f"the training part ({len(train_target)} rows) is not longer than the season ({m}): lower --season or use a longer series")
    scale = float(np.abs(train_target[m:] - train_target[:-m]).mean())
    return scale if scale > 0 else math.nan
