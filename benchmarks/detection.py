"""Claims (issue 11): the default detector (Lite0 backbone, 10 classes) runs at 320 px, batch 1, 2 cores in
<= 60 ms/image, and decoding + NMS take <= 5% of that. Measured side by side in one run: the network alone
against the whole `detect` (network + decode + score filter + class-wise NMS); medians of alternating rounds.

    python benchmarks/detection.py [--model DIR_OR_ID] [--image_size 320 --rounds 30]

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
        }
    )


if __name__ == "__main__":
    main()
