#!/usr/bin/env python
"""Forecast the next steps of a series with a trained forecaster: print them as JSON, plot them after the recent past.

    python scripts/forecast.py --model outputs/forecaster --output forecast.png                # the offline weather year's last days
    python scripts/forecast.py --model me/my-forecaster --train_file recent.csv --horizon 12   # a Hub id (cached when offline), your data

The model reads the last `lookback` rows of its input columns (named in its config, raw units) from the end of
the file; times continue the file's time column at the model's frequency.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from hfdl.core.cli import parse_args, run_main  # noqa: E402
from hfdl.errors import HfdlError  # noqa: E402


@dataclass
class ForecastArguments:
    model: str = field(metadata={"help": "Folder written by scripts/train_forecaster.py, or a Hub id."})
    train_file: str | None = field(
        default=None, metadata={"help": "CSV / Parquet / JSON-lines series whose last rows are the past (default: the offline series)."}
    )
    series: str = field(default="tmy3_greensboro", metadata={"help": "Offline series used without --train_file."})
    time_column: str | None = field(default=None, metadata={"help": "Time column (default: time, date, datetime, timestamp or ds when present)."})
    horizon: int | None = field(default=None, metadata={"help": "Steps to forecast (default: all the model gives)."})
    output: str | None = field(default="forecast.png", metadata={"help": "Plot of the recent past and the forecast (empty: no plot)."})
    debug: bool = field(default=False, metadata={"help": "Show full tracebacks."})


def main(argv: list[str] | None = None) -> dict:
    (args,) = parse_args((ForecastArguments,), argv)
    import numpy as np
    import pandas as pd

    from hfdl.core.report import figure, save_figure
    from hfdl.tasks.forecasting.data import load_table, time_column_of
    from hfdl.tasks.forecasting.model import Forecaster

    model = Forecaster.from_pretrained(args.model)
    if args.horizon is not None and not 1 <= args.horizon <= model.horizon:
        raise HfdlError(f"--horizon {args.horizon} is beyond what this model forecasts (1..{model.horizon}): ask for at most {model.horizon} steps")
    source = type("Source", (), {"train_file": args.train_file, "dataset_name": None, "series": args.series})()
    table, described, _ = load_table(source)
    missing = [c for c in model.feature_names if c not in table.columns]
    if missing:
        raise HfdlError(f"{described} lacks the model's input column(s) {', '.join(missing)}: give a table with {', '.join(model.feature_names)}")
    if len(table) < model.lookback:
        raise HfdlError(f"{described} has {len(table)} rows but the model reads the last {model.lookback}: give a longer series")
    past = table[model.feature_names].to_numpy(dtype=np.float32)[-model.lookback :]
    if np.isnan(past).any():
        raise HfdlError(f"the last {model.lookback} rows of {described} hold missing values: fill them first")
    values = model.forecast(past, args.horizon)
    time_col = time_column_of(table, args.time_column)
    times = None
    if time_col is not None:
        t = pd.to_datetime(table[time_col])
        step = pd.tseries.frequencies.to_offset(model.frequency) if model.frequency else t.iloc[-1] - t.iloc[-2]
        times = [t.iloc[-1] + step * (i + 1) for i in range(len(values))]
    result = {"target": model.target, "times": [x.isoformat() for x in times] if times else None, "forecast": [round(float(v), 4) for v in values]}
    print(json.dumps(result))
    if args.output:
        fig, ax = figure(size=(9, 4))
        shown = min(len(table), 3 * model.lookback)
        past_x = np.arange(-shown + 1, 1)
        ax.plot(past_x, table[model.target].to_numpy()[-shown:], color="black", lw=1.2, label=f"{model.target} (last {shown} steps)")
        ax.plot(np.arange(1, len(values) + 1), values, color="tab:blue", lw=1.8, marker="o", ms=3, label="forecast")
        ax.axvline(0.5, color="grey", lw=0.6)
        ax.set_xlabel("steps (0: the last observed)")
        ax.set_ylabel(model.target)
        ax.grid(alpha=0.3)
        ax.legend()
        save_figure(fig, args.output, f"{model.model_type} forecast of {model.target}")
    return result


if __name__ == "__main__":
    run_main(main)
