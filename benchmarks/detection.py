"""Claims (issue 11): the default detector (Lite0 backbone, 10 classes) runs at 320 px, batch 1, 2 cores in
<= 60 ms/image, and decoding + NMS take <= 5% of that. Measured side by side in one run: the network alone
against the whole `detect` (network + decode + score filter + class-wise NMS); medians of alternating rounds.
Also a training step (forward, loss, backward, AdamW) of the default recipe (160 px, batch 16) with the whole network
trained against `--freeze_until_stride 4` (stem and stride-2/4 stages frozen), alternating, as a speed ratio.

With a trained --model, also what the size it runs at buys (FixRes, `--eval_image_size`): mAP of the same weights
evaluated at each of --eval_sizes on 400 composites drawn with another seed than the training run's validation split
(so the chosen size is not fitted to the reported split).

    python benchmarks/detection.py [--model DIR_OR_ID] [--image_size 320 --rounds 30 --train_rounds 8]
    python benchmarks/detection.py --model outputs/detector --rounds 0 --train_rounds 0 --eval_sizes 160,192,224,256

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
    p.add_argument("--eval_sizes", default="", help="With --model: comma list of sizes to evaluate the detector at (mAP on held-out composites).")
    p.add_argument("--eval_seed", type=int, default=1, help="Seed of the held-out composites (the training default's are seed 0).")
    a = p.parse_args()
    torch.set_num_threads(2)
    if a.model:
        model = YoloDetector.from_pretrained(a.model)
    else:
        from hfdl.tasks.detection.args import DetectorArguments
        from hfdl.tasks.detection.pipeline import build_detector

        model = build_detector(DetectorArguments(), [str(i) for i in range(10)], a.image_size)
    model.eval()
    sizes = eval_sizes(model, [int(s) for s in a.eval_sizes.split(",") if s], a.eval_seed) if a.model and a.eval_sizes else {}
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
    net_ms, full_ms = (statistics.median(t) * 1000 if t else float("nan") for t in (net, full))
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
            **sizes,
        }
    )


def eval_sizes(model, sizes: list[int], seed: int) -> dict:
    """mAP@.50 and mAP of the same weights evaluated at each size on 400 held-out composites (160 px, `seed`)."""
    from accelerate import Accelerator
    from torch.utils.data import DataLoader

    from hfdl.assets.composites import composite_dataset
    from hfdl.tasks.detection.data import DetectionImages, build_detection_transforms, collate_detection
    from hfdl.tasks.detection.loss import YoloLoss
    from hfdl.tasks.detection.pipeline import evaluate_detector

    held_out = composite_dataset(num_train=16, num_validation=400, image_size=160, seed=seed)["validation"]
    mean, std = model.mean.flatten().tolist(), model.std.flatten().tolist()
    out, accelerator = {"eval_set": f"400 composites, seed {seed}", "runs_at": model.image_size}, Accelerator(cpu=True)
    for size in sizes:
        _, eval_tf = build_detection_transforms(size, mean, std, None)
        batches = DataLoader(DetectionImages(held_out, eval_tf), 32, collate_fn=collate_detection)
        found = evaluate_detector(accelerator, model, YoloLoss(model), batches, 0.001, 0.5)
        out[f"map_50_at_{size}"], out[f"map_at_{size}"] = found["eval_map_50"], found["eval_map"]
    return out


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
