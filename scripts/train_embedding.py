#!/usr/bin/env python
"""Similarity learning (the lectures' siamese networks and FaceNet triplets): a timm backbone + projection trained
so that images of one class embed close together; retrieval, one-shot and verification metrics beside the
untrained backbone's.

    accelerate launch -q scripts/train_embedding.py                                         # Fashion-MNIST, triplets (batch-all)
    accelerate launch -q scripts/train_embedding.py --loss contrastive --miner hard          # siamese pairs
    accelerate launch -q scripts/train_embedding.py --miner semihard                        # FaceNet's semihard triplets
    accelerate launch -q scripts/train_embedding.py --holdout_classes Shirt,Sneaker          # embed classes never trained on (one-shot)
    accelerate launch -q scripts/train_embedding.py --train_dir my_photos/ --classes_per_batch 8 --samples_per_class 4
    accelerate launch -q scripts/train_embedding.py --push_to_hub --hub_model_id me/fashion-embedding

A single .json or .yaml argument is read as a config file (HfArgumentParser).
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from hfdl.core.cli import parse_args, run_main  # noqa: E402
from hfdl.hub.args import HubArguments  # noqa: E402
from hfdl.hub.registry import check_before_training, push_after_training  # noqa: E402
from hfdl.tasks.similarity.args import EmbeddingArguments, EmbeddingDataArguments, EmbeddingTrainingArguments  # noqa: E402
from hfdl.tasks.similarity.pipeline import run  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    model_args, data_args, training_args, hub_args = parse_args((EmbeddingArguments, EmbeddingDataArguments, EmbeddingTrainingArguments, HubArguments), argv)
    check_before_training(hub_args)
    results = run(model_args, data_args, training_args, argv)
    push_after_training(hub_args, training_args.output_dir)
    return results


if __name__ == "__main__":
    run_main(main)
