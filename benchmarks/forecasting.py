"""Forecasting's claims, side by side in one run on the offline weather year (temperature 24 h ahead from 72 h):

1. Quality: the lecture's models (mlp, conv1d, gru, bidirectional gru, lstm) against the naive, seasonal naive and
   linear-regression baselines on the same chronological test windows (target: the best network's test MAE below
   naive and seasonal naive; linear regression reported beside it, honestly).
2. Speed: what recurrent dropout costs. A GRU training step with the fused kernel (nn.GRU) against the same
   parameters stepped in Python with one recurrent-dropout mask per sequence, as the ratio; and windows gathered
   by `Tensor.unfold` against a Python loop of slices.

    python benchmarks/forecasting.py                 # the comparison table + the speed ratios (a few minutes on 2 cores)
    python benchmarks/forecasting.py --speed_only
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
from _common import emit  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))


def _step_seconds(model, x, y, reps: int = 20) -> float:
    import torch

    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.train()
    for i in range(reps + 3):
        if i == 3:
            t = time.perf_counter()
        opt.zero_grad()
        torch.nn.functional.l1_loss(model(x), y).backward()
        opt.step()
    return (time.perf_counter() - t) / reps


def speed() -> dict:
    import numpy as np
    import torch

    from hfdl.tasks.forecasting.data import make_windows
    from hfdl.tasks.forecasting.model import Forecaster

    torch.manual_seed(0)
    x, y = torch.randn(128, 72, 12), torch.randn(128, 24)
    fused = Forecaster("gru", num_features=12, lookback=72, horizon=24, hidden_size=64)
    stepped = Forecaster("gru", num_features=12, lookback=72, horizon=24, hidden_size=64, recurrent_dropout=0.2)
    stepped.load_state_dict(fused.state_dict())
    t_fused, t_stepped = _step_seconds(fused, x, y), _step_seconds(stepped, x, y)
    series = np.random.default_rng(0).normal(size=(8760, 12)).astype(np.float32)
    anchors = np.arange(71, 8760 - 24)
    t = time.perf_counter()
    xs, ys = make_windows(series, 0, anchors, 72, 24)
    t_unfold = time.perf_counter() - t
    t = time.perf_counter()
    xl = torch.stack([torch.from_numpy(series[a - 71 : a + 1]) for a in anchors])
    yl = torch.stack([torch.from_numpy(series[a + 1 : a + 25, 0]) for a in anchors])
    t_loop = time.perf_counter() - t
    assert torch.equal(xs, xl) and torch.equal(ys, yl)
    return {
        "gru_step_ms_fused": t_fused * 1000,
        "gru_step_ms_recurrent_dropout": t_stepped * 1000,
        "recurrent_dropout_cost_ratio": t_stepped / t_fused,
        "windows_unfold_ms": t_unfold * 1000,
        "windows_python_loop_ms": t_loop * 1000,
        "unfold_speedup": t_loop / t_unfold,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--speed_only", action="store_true")
    p.add_argument("--compare", default="mlp,conv1d,gru,bigru,lstm")
    a = p.parse_args()
    import torch

    torch.set_num_threads(len(os.sched_getaffinity(0)))
    result = speed()
    if not a.speed_only:
        import train_forecaster

        with tempfile.TemporaryDirectory() as tmp:
            t = time.perf_counter()
            res = train_forecaster.main(["--compare", a.compare, "--output_dir", str(Path(tmp) / "compare")])
            wall = time.perf_counter() - t
            print((Path(tmp) / "compare" / "comparison.md").read_text())
        nets = {k: v for k, v in res.items() if v.get("kind") == "network"}
        best = min(nets, key=lambda k: nets[k]["test_mae"])
        result.update(
            best_network=best,
            best_test_mae=nets[best]["test_mae"],
            naive_test_mae=res["naive"]["test_mae"],
            seasonal_naive_test_mae=res["seasonal_naive"]["test_mae"],
            linear_test_mae=res["linear"]["test_mae"],
            best_over_seasonal_naive=nets[best]["test_mae"] / res["seasonal_naive"]["test_mae"],
            best_over_linear=nets[best]["test_mae"] / res["linear"]["test_mae"],
            target_met=nets[best]["test_mae"] < min(res["naive"]["test_mae"], res["seasonal_naive"]["test_mae"]),
            compare_wall_seconds=wall,
        )
    emit(result)


if __name__ == "__main__":
    main()
