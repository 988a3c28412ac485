"""Claim: hfdl's accelerate loop (what finetune.py runs) trains within 10% of a bare PyTorch loop's
throughput on the same model, batch and data. Arms alternate (A B A B ...) to spread machine noise.

    python benchmarks/loop_overhead.py [--model tf_efficientnet_lite0 --steps 30 --rounds 3]
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import time

import torch
from _common import emit, fashion_subset
from torch.utils.data import DataLoader

from hfdl.core.labelled_images import AugmentConfig, TransformedImages, build_transforms
from hfdl.core.training import TrainingArguments, make_accelerator, train
from hfdl.tasks.classification.model import apply_strategy, create_classifier, frozen_modules_to_eval, optimizer_param_groups
from hfdl.tasks.classification.pipeline import data_config_for


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="tf_efficientnet_lite0")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--batch_size", type=int, default=64)
    p.add_argument("--image_size", type=int, default=64)
    a = p.parse_args()

    n = a.steps * a.batch_size
    data = fashion_subset(n, 10)
    n_cls = len(data.label_names)
    proto = create_classifier(a.model, n_cls)
    train_tf, _ = build_transforms(data_config_for(proto, a.image_size), AugmentConfig())
    images = TransformedImages(data.train, data.image_column, data.label_column, train_tf, seed=0)

    def fresh():
        torch.manual_seed(0)
        m = create_classifier(a.model, n_cls).to(memory_format=torch.channels_last)
        apply_strategy(m, "finetune")
        return m

    def loss_fn(m, b):
        return torch.nn.functional.cross_entropy(m(b[0].contiguous(memory_format=torch.channels_last)), b[1])

    def bare() -> float:
        from transformers import get_scheduler

        m = fresh()
        opt = torch.optim.AdamW(optimizer_param_groups(m, 1e-3, 0.05, 0.1), lr=1e-3, weight_decay=0.05)
        sched = get_scheduler("cosine", opt, num_warmup_steps=int(0.1 * a.steps), num_training_steps=a.steps)
        dl = DataLoader(images, batch_size=a.batch_size, shuffle=True, drop_last=True)
        m.train()
        t = time.perf_counter()
        for x, y in dl:
            loss = loss_fn(m, (x, y))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            loss.item()
        return n / (time.perf_counter() - t)

    def hfdl_loop() -> float:
        m = fresh()
        with tempfile.TemporaryDirectory() as d:
            args = TrainingArguments(output_dir=d, num_train_epochs=1, per_device_train_batch_size=a.batch_size, learning_rate=1e-3, seed=0)
            acc = make_accelerator(args)
            dl = DataLoader(images, batch_size=a.batch_size, shuffle=True, drop_last=True)
            _, result = train(acc, m, optimizer_param_groups(m, 1e-3, 0.05, 0.1), dl, args, d, compute_loss=loss_fn,
                              train_mode=lambda mm: frozen_modules_to_eval(mm.train()))  # fmt: skip
            acc.free_memory()
        return result.train_samples_per_second

    bare_tp, hfdl_tp = [], []
    bare()  # warm-up (allocator, kernels)
    for _ in range(a.rounds):
        bare_tp.append(bare())
        hfdl_tp.append(hfdl_loop())
    ratio = statistics.median(hfdl_tp) / statistics.median(bare_tp)
    emit({
        "throughput_ratio": ratio, "within_10_percent": ratio >= 0.9,
        "hfdl_samples_per_second": statistics.median(hfdl_tp), "bare_samples_per_second": statistics.median(bare_tp),
        "rounds": a.rounds, "steps": a.steps, "batch_size": a.batch_size, "image_size": a.image_size, "model": a.model,
        "torch_threads": torch.get_num_threads(), "finite": all(math.isfinite(v) for v in hfdl_tp + bare_tp),
    })  # fmt: skip


if __name__ == "__main__":
    main()
