#!/usr/bin/env python
"""Multi-step forecasting of one column of a multivariate series, networks beside common-sense baselines.

    accelerate launch -q scripts/train_forecaster.py                                  # offline weather year: temperature 24 h ahead
    accelerate launch -q scripts/train_forecaster.py --compare mlp,conv1d,gru,bigru,lstm --output_dir outputs/forecast_compare
    accelerate launch -q scripts/train_forecaster.py --train_file my.csv --time_column date --target load --season 24 --output_dir outputs/my_load

A single .json or .yaml argument is read as a config file (HfArgumentParser).
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from hfdl.core.cli import parse_args, run_main  # noqa: E402
from hfdl.hub.args import HubArguments  # noqa: E402
from hfdl.hub.registry import check_before_training, push_after_training  # noqa: E402
from hfdl.tasks.forecasting.args import ForecastModelArguments, ForecastTrainingArguments, SeriesArguments  # noqa: E402
from hfdl.tasks.forecasting.pipeline import run  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    model_args, series_args, training_args, hub_args = parse_args((ForecastModelArguments, SeriesArguments, ForecastTrainingArguments, HubArguments), argv)
    check_before_training(hub_args)
    results = run(model_args, series_args, training_args, argv)
    push_after_training(hub_args, training_args.output_dir)
    return results


if __name__ == "__main__":
    run_main(main)
