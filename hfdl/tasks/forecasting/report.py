"""The forecasting run's table and pictures: every network and baseline on the same test windows.

comparison.md / .json   MAE, RMSE, MASE over all steps, MAE at the first and last step, size, time
mae_by_step.png         test MAE per step ahead, one line per model and baseline
forecast.png            a stretch of the test part: the truth and the forecasts issued along it
comparison.png          (--compare) validation MAE against training time
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from hfdl.core.report import comparison_table, figure, plot_curves, save_figure, write_markdown

COLUMNS = [
    ("name", "model", "{}"),
    ("test_mae", "test MAE", "{:.3f}"),
    ("test_rmse", "test RMSE", "{:.3f}"),
    ("test_mase", "test MASE", "{:.3f}"),
    ("mae_first", "MAE step 1", "{:.3f}"),
    ("mae_last", "MAE last step", "{:.3f}"),
    ("eval_mae", "validation MAE", "{:.3f}"),
    ("num_params", "parameters", "{:,}"),
    ("train_seconds", "train s", "{:.1f}"),
]
LABELS = {"naive": "naive (last value)", "seasonal_naive": "seasonal naive", "linear": "linear regression"}


def rows(networks: dict[str, dict], baselines: dict[str, dict]) -> list[dict]:
    """Table rows, networks first (in the order trained), then the baselines."""
    out = []
    for name, r in [*networks.items(), *baselines.items()]:
        out.append({**r, "name": LABELS.get(name, name), "mae_first": r["test_mae_by_step"][0], "mae_last": r["test_mae_by_step"][-1]})
    return out


def write_report(out: Path, networks: dict, baselines: dict, data, windows, run_dirs: list[Path], names: list[str], series_args) -> str:
    """Write the table and plots into `out`; return the Markdown table."""
    from hfdl.tasks.forecasting.model import Forecaster
    from hfdl.tasks.forecasting.pipeline import predict

    table = comparison_table(rows(networks, baselines), COLUMNS)
    best = min(networks, key=lambda n: networks[n]["test_mae"])
    beaten = [LABELS[b] for b in ("naive", "seasonal_naive") if networks[best]["test_mae"] < baselines[b]["test_mae"]]
    verdict = (
        f"The best network ({best}) beats {' and '.join(beaten)} on test MAE."
        if len(beaten) == 2
        else f"The best network ({best}) does NOT beat every common-sense baseline on test MAE (beaten: {', '.join(beaten) or 'none'})."
    )
    what = (
        f"{data.source}: forecast `{data.target}` {series_args.horizon} steps ahead from the last {series_args.lookback} steps of "
        f"{len(data.feature_names)} variables; MASE scaled by the training part's seasonal naive MAE (season {data.season})."
    )
    write_markdown(out, f"Forecasting {data.target}", [what, table, verdict])
    (out / "comparison.json").write_text(json.dumps({"networks": networks, "baselines": baselines}, indent=2), encoding="utf-8")

    fig, ax = figure()
    steps = np.arange(1, series_args.horizon + 1)
    for name, r in [*networks.items(), *baselines.items()]:
        ax.plot(
            steps, r["test_mae_by_step"], marker="o" if name in networks else None, ms=3, ls="-" if name in networks else "--", label=LABELS.get(name, name)
        )
    ax.set_xlabel("steps ahead")
    ax.set_ylabel(f"test MAE ({data.target})")
    ax.grid(alpha=0.3)
    ax.legend()
    save_figure(fig, out / "mae_by_step.png", "Test MAE by step ahead")

    model = Forecaster.from_pretrained(run_dirs[names.index(best)])
    anchors = windows.anchors["test"]
    span = min(len(anchors), 7 * max(series_args.horizon, data.season))
    issued = np.arange(0, span, series_args.horizon)
    pred = windows.raw(predict(model, windows.x["test"][issued], 1024))
    fig, ax = figure(size=(10, 4.5))
    first = anchors[0]
    t = np.arange(first - series_args.lookback + 1, anchors[span - 1] + series_args.horizon + 1)
    ax.plot(t - first, windows.target_raw[t], color="black", lw=1.2, label="truth")
    for k, i in enumerate(issued):
        a = anchors[i]
        ax.plot(np.arange(a + 1, a + 1 + series_args.horizon) - first, pred[k], color="tab:blue", lw=1.5, label=best if k == 0 else None)
        ax.axvline(a - first, color="grey", lw=0.5, alpha=0.5)
    ax.set_xlabel("steps after the start of the test part")
    ax.set_ylabel(data.target)
    ax.grid(alpha=0.3)
    ax.legend()
    save_figure(fig, out / "forecast.png", f"{best}: {series_args.horizon}-step forecasts issued along the test part")

    if len(networks) > 1:
        fig, ax = figure()
        plot_curves(ax, out, list(networks), "eval_mae")
        ax.set_ylabel("validation MAE")
        ax.legend()
        save_figure(fig, out / "comparison.png", "Validation MAE while training")
    return table
