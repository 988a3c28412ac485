"""Claims (issue 11): the default detector (Lite0 backbone, 10 classes) runs at 320 px, batch 1, 2 cores in
<= 60 ms/image, and decoding + NMS take <= 5% of that. Measured side by side in one run: the network alone
against the whole `detect` (network + decode + score filter + class-wise NMS); medians of alternating rounds.
Also a training step (forward, loss, backward, AdamW) of the default recipe (160 px, batch 16) with the whole network
trained against `--freeze_until_stride 4` (stem and stride-2/4 stages frozen), alternating, as a speed ratio.

    python benchmarks/detection.py [--model DIR_OR_ID] [--image_size 320 --rounds 30 --train_rounds 8]

Without --model the default architecture with its pretrained backbone is timed (the weights do not change
the cost; a trained model's many more boxes above threshold only change the NMS share, reported too).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from _common import emit

from hfdl.tasks.detection.model import YoloDetector


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", default=None, help="A trained detector folder or Hub id (default: the untrained default architecture).")
    p.add_argument("--image_size", type=int, default=320)
    p.add_argument("--rounds", type=int, default=30)
    p.add_argument("--score_threshold", type=float, default=0.05)
    p.add_argument("--train_rounds", type=int, default=8, help="Timed training steps per arm (0: skip the training arms).")
    a = p.parse_args()
    torch.set_num_threads(2)
    if a.model:
        model = YoloDetector.from_pretrained(a.model)
    else:
        from hfdl.tasks.detection.args import DetectorArguments
        from hfdl.tasks.detection.pipeline import build_detector

        model = build_detector(DetectorArguments(), [str(i) for i in range(10)], a.image_size)
    model.eval()
    x = torch.rand(1, 3, a.image_size, a.image_size)
    with torch.inference_mode():
        for _ in range(3):  # warm-up: allocations, oneDNN primitives
            model.detect(x, a.score_threshold)
        net, full, boxes = [], [], 0
        for _ in range(a.rounds):
            t0 = time.perf_counter()
            model(x)
            t1 = time.perf_counter()
            (found,) = model.detect(x, a.score_threshold)
            t2 = time.perf_counter()
            net.append(t1 - t0)
            full.append(t2 - t1)
            boxes = len(found["boxes"])
    net_ms, full_ms = statistics.median(net) * 1000, statistics.median(full) * 1000
    train = train_step_ms(a.train_rounds) if a.train_rounds else {}
    emit(
        {
            "benchmark": "detection",
            "image_size": a.image_size,
            "network_ms": net_ms,
            "detect_ms": full_ms,
            "decode_nms_ms": max(full_ms - net_ms, 0.0),
            "decode_nms_share": max(full_ms - net_ms, 0.0) / full_ms,
            "detections_kept": boxes,
            "meets_60ms": full_ms <= 60,
            **train,
        }
    )


def train_step_ms(rounds: int, image_size: int = 160, batch: int = 16) -> dict:
    """Median ms of a training step, the whole network against the stem and stride-2/4 stages frozen (alternating)."""
    from timm.optim import param_groups_weight_decay

    from hfdl.core.backbones import freeze_until_stride, train_except
    from hfdl.tasks.detection.args import DetectorArguments
    from hfdl.tasks.detection.loss import YoloLoss
    from hfdl.tasks.detection.pipeline import build_detector

    g = torch.Generator().manual_seed(0)
    x = torch.rand(batch, 3, image_size, image_size, generator=g).contiguous(memory_format=torch.channels_last)
    targets = [{"boxes": torch.tensor([[20.0, 30.0, 70.0, 90.0], [90.0, 40.0, 150.0, 120.0]]), "labels": torch.tensor([1, 7])} for _ in range(batch)]
    arms = {}
    for stride in (0, 4):
        torch.manual_seed(0)
        model = build_detector(DetectorArguments(), [str(i) for i in range(10)], image_size)
        train_except(freeze_until_stride(model.backbone, stride))(model)
        arms[stride] = (model, YoloLoss(model), torch.optim.AdamW(param_groups_weight_decay(model, 0.05), lr=1e-3))
    times = {0: [], 4: []}
    for r in range(rounds + 2):  # two warm-up rounds
        for stride, (model, criterion, opt) in arms.items():
            t0 = time.perf_counter()
            criterion(model(x), targets)["loss"].backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            if r >= 2:
                times[stride].append(time.perf_counter() - t0)
    full, frozen = (statistics.median(times[s]) * 1000 for s in (0, 4))
    return {"train_step_ms": full, "train_step_ms_frozen_stride4": frozen, "freeze_stride4_speedup": full / frozen}


if __name__ == "__main__":
    main()
