"""The common-sense forecasts a network must beat first, and the metrics every forecaster is scored by.

- naive: the last observed value, repeated for every step ahead;
- seasonal naive: the value one season before each target time (`y[t+h-m*ceil(h/m)]`);
- linear: least-squares regression (scikit-learn `Ridge`, tiny penalty) of the whole window onto all horizon steps.

Metrics per horizon step, in the target's raw units (torchmetrics): MAE, RMSE, and MASE, the MAE divided by
the in-sample MAE of the seasonal naive forecast on the training part (Hyndman & Koehler 2006).
"""

from __future__ import annotations

import numpy as np
import torch

BASELINES = ("naive", "seasonal_naive", "linear")


def naive_forecast(target: np.ndarray, anchors: np.ndarray, horizon: int) -> np.ndarray:
    """(N, horizon): `target[t]` for every step after anchor t."""
    return np.repeat(target[anchors][:, None], horizon, axis=1).astype(np.float32)


def seasonal_naive_forecast(target: np.ndarray, anchors: np.ndarray, horizon: int, season: int) -> np.ndarray:
    """(N, horizon): step h after anchor t gets `target[t + h - m*ceil(h/m)]`, the last observed value one season (or more) back."""
    m = max(1, season)
    h = np.arange(1, horizon + 1)
    back = h - m * np.ceil(h / m).astype(np.int64)  # in (-m, 0]
    return target[anchors[:, None] + back[None, :]].astype(np.float32)


def fit_linear(train_x: torch.Tensor, train_y: torch.Tensor, alpha: float = 1e-3):
    """A ridge regression of the flattened (normalised) window onto the horizon's (normalised) targets."""
    from sklearn.linear_model import Ridge

    return Ridge(alpha=alpha).fit(train_x.flatten(1).numpy(), train_y.numpy())


def linear_forecast(model, x: torch.Tensor) -> np.ndarray:
    return model.predict(x.flatten(1).numpy()).astype(np.float32)


def forecast_metrics(pred: np.ndarray, truth: np.ndarray, scale: float, prefix: str) -> dict:
    """`{prefix}_mae`, `_rmse`, `_mase` over all steps, and `_by_step` lists (step 1 first), raw units."""
    from torchmetrics.functional import mean_absolute_error, mean_squared_error

    p, t = torch.as_tensor(pred, dtype=torch.float64), torch.as_tensor(truth, dtype=torch.float64)
    mae = [mean_absolute_error(p[:, h], t[:, h]).item() for h in range(p.shape[1])]
    rmse = [mean_squared_error(p[:, h], t[:, h], squared=False).item() for h in range(p.shape[1])]
    return {
        f"{prefix}_mae": mean_absolute_error(p, t).item(),
        f"{prefix}_rmse": mean_squared_error(p, t, squared=False).item(),
        f"{prefix}_mase": mean_absolute_error(p, t).item() / scale,
        f"{prefix}_mae_by_step": mae,
        f"{prefix}_rmse_by_step": rmse,
        f"{prefix}_mase_by_step": [v / scale for v in mae],
    }
