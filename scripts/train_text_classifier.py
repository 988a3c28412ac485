#!/usr/bin/env python
"""Text classification with recurrent networks: one-way vs bidirectional side by side, with a TF-IDF baseline.

    accelerate launch -q scripts/train_text_classifier.py                                  # offline default: which Austen novel? GRU vs biGRU
    accelerate launch -q scripts/train_text_classifier.py --train_file train.csv --validation_file val.csv --compare none --bidirectional
    accelerate launch -q scripts/train_text_classifier.py --dataset_name imdb --compare gru,bigru,lstm,bilstm --output_dir outputs/imdb

A single .json or .yaml argument is read as a config file (HfArgumentParser).
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from hfdl.core.cli import parse_args, run_main  # noqa: E402
from hfdl.hub.args import HubArguments  # noqa: E402
from hfdl.hub.registry import check_before_training, push_after_training  # noqa: E402
from hfdl.tasks.text_classification.args import TextClassifierArguments, TextClassifierTrainingArguments, TextDataArguments  # noqa: E402
from hfdl.tasks.text_classification.pipeline import run  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    model_args, data_args, training_args, hub_args = parse_args(
        (TextClassifierArguments, TextDataArguments, TextClassifierTrainingArguments, HubArguments), argv
    )
    check_before_training(hub_args)
    results = run(model_args, data_args, training_args, argv)
    push_after_training(hub_args, training_args.output_dir)
    return results


if __name__ == "__main__":
    run_main(main)
