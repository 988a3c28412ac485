#!/usr/bin/env python
"""Character-level RNN / LSTM / GRU language model with stateful truncated BPTT, or a side-by-side comparison.

    accelerate launch -q scripts/train_char_lm.py --corpus austen --time_budget_minutes 15       # the best measured recipe (GRU)
    accelerate launch -q scripts/train_char_lm.py --train_file my.txt --model_type lstm --output_dir outputs/my_lstm
    accelerate launch -q scripts/train_char_lm.py --corpus austen --compare rnn,lstm,gru --time_budget_minutes 5 --output_dir outputs/austen_compare

A single .json or .yaml argument is read as a config file (HfArgumentParser).
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from hfdl.core.cli import parse_args, run_main  # noqa: E402
from hfdl.hub.args import HubArguments  # noqa: E402
from hfdl.hub.registry import check_before_training, push_after_training  # noqa: E402
from hfdl.tasks.char_lm.args import CharLMArguments, CharLMTrainingArguments, SamplingArguments, TextDataArguments  # noqa: E402
from hfdl.tasks.char_lm.pipeline import run  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    model_args, data_args, sampling_args, training_args, hub_args = parse_args(
        (CharLMArguments, TextDataArguments, SamplingArguments, CharLMTrainingArguments, HubArguments), argv
    )
    check_before_training(hub_args)
    results = run(model_args, data_args, sampling_args, training_args, argv)
    push_after_training(hub_args, training_args.output_dir)
    return results


if __name__ == "__main__":
    run_main(main)
