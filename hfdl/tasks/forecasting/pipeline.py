"""Forecasting: series -> chronological split -> baselines and network(s) on the same windows -> test metrics,
plots, Hub-ready model folders, the card.

The baselines (naive, seasonal naive, linear regression on the window) are scored on exactly the test windows
the networks are, so the table says whether a network beats common sense. Every network trains with the shared
accelerate loop; validation MAE is tracked per epoch, the test part is touched once at the end.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from hfdl.core.rundir import ALL_RESULTS, RESULTS, RUN_CONFIG, check_output_dir, run_config, run_variants, write_json
from hfdl.core.runtime import PeakMemory
from hfdl.core.training import make_accelerator, tensor_loader, train
from hfdl.tasks.forecasting.args import ForecastModelArguments, ForecastTrainingArguments, SeriesArguments, variant
from hfdl.tasks.forecasting.baselines import fit_linear, forecast_metrics, linear_forecast, naive_forecast, seasonal_naive_forecast
from hfdl.tasks.forecasting.data import SeriesData, make_windows, prepare_series, window_anchors
from hfdl.tasks.forecasting.model import Forecaster, seasonal_scale

logger = logging.getLogger(__name__)

TASK = "time-series-forecasting"
OUTPUTS = ("config.json", "model.safetensors", "forecast.png", "mae_by_step.png")
LOSSES = {"mae": F.l1_loss, "mse": F.mse_loss, "huber": F.smooth_l1_loss}


class Windows:
    """The normalised windows of each part, and the raw targets and anchors the metrics need."""

    def __init__(self, data: SeriesData, lookback: int, horizon: int, stride: int):
        norm = data.normalised()
        self.anchors, self.x, self.y = {}, {}, {}
        for part, (a, b) in data.parts.items():
            anchors = window_anchors(a, b, lookback, horizon, stride if part == "train" else 1)
            self.anchors[part] = anchors
            self.x[part], self.y[part] = make_windows(norm, data.target_index, anchors, lookback, horizon)
        t = data.target_index
        self.target_raw = data.values[:, t]
        self.mean, self.std = float(data.mean[t]), float(data.std[t])

    def truth(self, part: str) -> np.ndarray:
        return (self.y[part].numpy() * self.std + self.mean).astype(np.float32)

    def raw(self, normalised: np.ndarray | torch.Tensor) -> np.ndarray:
        return (np.asarray(normalised) * self.std + self.mean).astype(np.float32)


@torch.inference_mode()
def predict(model: Forecaster, x: torch.Tensor, batch_size: int) -> np.ndarray:
    """Normalised forecasts of `x` in eval mode (batched)."""
    was = model.training
    model.eval()
    device = next(model.parameters()).device
    out = torch.cat([model(x[i : i + batch_size].to(device)).float().cpu() for i in range(0, len(x), batch_size)]) if len(x) else torch.zeros(0, model.horizon)
    model.train(was)
    return out.numpy()


def baselines(data: SeriesData, w: Windows, horizon: int, scale: float) -> dict[str, dict]:
    """Naive, seasonal naive and linear regression, scored on the validation and test windows."""
    t0 = time.perf_counter()
    linear = fit_linear(w.x["train"], w.y["train"])
    fit_seconds = time.perf_counter() - t0
    out = {}
    for name in ("naive", "seasonal_naive", "linear"):
        res: dict = {"kind": "baseline"}
        for part, prefix in (("validation", "eval"), ("test", "test")):
            if name == "naive":
                pred = naive_forecast(w.target_raw, w.anchors[part], horizon)
            elif name == "seasonal_naive":
                pred = seasonal_naive_forecast(w.target_raw, w.anchors[part], horizon, data.season)
            else:
                pred = w.raw(linear_forecast(linear, w.x[part]))
            res.update(forecast_metrics(pred, w.truth(part), scale, prefix))
        if name == "linear":
            res.update(num_params=int(linear.coef_.size + linear.intercept_.size), train_seconds=fit_seconds)
        out[name] = res
    return out


def run_one(
    name: str,
    run_dir: Path,
    model_args: ForecastModelArguments,
    series_args: SeriesArguments,
    training_args: ForecastTrainingArguments,
    accelerator,
    data: SeriesData,
    w: Windows,
    scale: float,
) -> dict:
    """Train one network; save its folder; return its validation and test metrics."""
    model_type, bidirectional = variant(name)
    t_wall = time.perf_counter()
    mem = PeakMemory()
    with mem:
        torch.manual_seed(training_args.seed)
        model = Forecaster(
            model_type=model_type,
            num_features=len(data.feature_names),
            lookback=series_args.lookback,
            horizon=series_args.horizon,
            hidden_size=model_args.hidden_size,
            num_layers=model_args.num_layers,
            bidirectional=bidirectional,
            dropout=model_args.dropout,
            recurrent_dropout=model_args.recurrent_dropout,
            residual=model_args.residual,
            target_index=data.target_index,
            feature_names=data.feature_names,
            target=data.target,
            mean=data.mean.tolist(),
            std=data.std.tolist(),
            frequency=data.frequency,
        )
        loader = tensor_loader(w.x["train"], w.y["train"], batch_size=training_args.per_device_train_batch_size, shuffle=True, drop_last=True)
        loss_fn = LOSSES[model_args.loss]

        def compute_loss(m, batch):
            x, y = batch
            return loss_fn(m(x), y)

        def evaluate(m):
            pred = w.raw(predict(accelerator.unwrap_model(m), w.x["validation"], training_args.per_device_eval_batch_size))
            found = forecast_metrics(pred, w.truth("validation"), scale, "eval")
            return {k: v for k, v in found.items() if not k.endswith("_by_step")}

        model, result = train(accelerator, model, None, loader, training_args, run_dir, compute_loss=compute_loss, evaluate=evaluate, run_name=name)
        model.eval()
        results: dict = {"kind": "network", "model_type": model_type, "bidirectional": bidirectional}
        for part, prefix in (("validation", "eval"), ("test", "test")):
            results.update(forecast_metrics(w.raw(predict(model, w.x[part], training_args.per_device_eval_batch_size)), w.truth(part), scale, prefix))
        with torch.inference_mode():
            model(w.x["test"][:1])  # warm-up
            reps = 50
            t = time.perf_counter()
            for _ in range(reps):
                model(w.x["test"][:1])
        latency_ms = (time.perf_counter() - t) / reps * 1000
    results.update(
        num_params=model.num_parameters,
        train_seconds=result.train_seconds,
        wall_seconds=time.perf_counter() - t_wall,
        completed_steps=result.completed_steps,
        train_windows_per_second=result.train_samples_per_second,
        inference_ms_per_window=latency_ms,
        peak_rss_mb=mem.peak_rss_mb,
    )
    if accelerator.is_main_process:
        run_dir.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(run_dir)
        write_json(run_dir / "history.json", result.history)
        write_json(run_dir / RESULTS, results)
    accelerator.wait_for_everyone()
    return results


def run(model_args: ForecastModelArguments, series_args: SeriesArguments, training_args: ForecastTrainingArguments, argv: list[str] | None = None) -> dict:
    """The whole pipeline; returns all_results (the network's metrics with the baselines beside them, or one entry per model under --compare)."""
    from hfdl.tasks.forecasting.card import write_cards
    from hfdl.tasks.forecasting.report import write_report

    t0 = time.perf_counter()
    out = Path(training_args.output_dir)
    names = model_args.variants
    run_dirs = [out / n for n in names] if model_args.compare else [out]
    check_output_dir(out, run_dirs, training_args, OUTPUTS)
    data, asset = prepare_series(series_args, series_args.lookback, series_args.horizon)
    w = Windows(data, series_args.lookback, series_args.horizon, series_args.stride)
    scale = seasonal_scale(data.values[: data.train_end, data.target_index], data.season)
    accelerator = make_accelerator(training_args)
    described = data.describe()
    accelerator.print(
        f"data: {data.source}: {described['train_rows']:,} / {described['validation_rows']:,} / {described['test_rows']:,} rows (train / validation / test, in time order); "
        f"{len(data.feature_names)} features, target {data.target}; {len(w.anchors['train']):,} training windows of {series_args.lookback} steps -> {series_args.horizon}"
    )
    out.mkdir(parents=True, exist_ok=True)
    config = run_config(
        TASK, argv, {"model_args": model_args, "data_args": series_args, "training_args": training_args}, accelerator,
        data={**described, "windows": {p: len(a) for p, a in w.anchors.items()}, "mase_scale": scale},
        offline_assets=[asset.provenance()] if asset is not None else [],
    )  # fmt: skip
    write_json(out / RUN_CONFIG, config, accelerator.is_main_process)
    base = baselines(data, w, series_args.horizon, scale)
    for name, r in base.items():
        accelerator.print(f"baseline {name}: validation MAE {r['eval_mae']:.4f}, test MAE {r['test_mae']:.4f} (MASE {r['test_mase']:.3f})")

    def train_one(name: str, folder: Path, args: ForecastTrainingArguments) -> dict:
        return run_one(name, folder, model_args, series_args, args, accelerator, data, w, scale)

    networks = run_variants(names, run_dirs, training_args, train_one, accelerator.print)
    if model_args.compare:
        results = {**networks, **base}
    else:
        results = {**networks[names[0]], "baselines": base}
    if accelerator.is_main_process:
        config["wall_seconds"] = time.perf_counter() - t0
        write_json(out / RUN_CONFIG, config)
        write_json(out / ALL_RESULTS, results)
        table = write_report(out, networks, base, data, w, run_dirs, names, series_args)
        accelerator.print(table)
        write_cards(out, accelerator)
    accelerator.wait_for_everyone()
    accelerator.free_memory()
    return results
