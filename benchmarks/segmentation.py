"""Claims (issue 12): the default segmenter (Lite0 backbone, LR-ASPP decoder at the default width, 11 classes) runs at
256 px, batch 1, 2 cores in <= 80 ms/image; and the decoders side by side (LR-ASPP, U-Net, FPN on the same backbone, each
at the default --decoder_channels): ms/image and parameters, as ratios to the default measured in one run (medians of
alternating rounds, so a busy machine slows each alike).

    python benchmarks/segmentation.py [--model DIR_OR_ID] [--image_size 256 --rounds 30 --upsample interpolate]

Without --model the default architecture with its pretrained backbone is timed (the weights do not change the cost).
Each round times `predict` (network, logits at the input size, argmax) once per decoder.

Also timed, as ratios to the default: torchvision's LR-ASPP head (`--skip_strides 8 --skip_channels 0`: one skip map,
a 1x1 classifier; the default adds the stride-16 map and a 3x3 conv before each skip's classifier).

Training (`--train_rounds`, 0 to skip): one optimizer step of the default recipe (a batch of the default size at the
default --image_size, cross-entropy + Dice, AdamW) against the same step with the whole backbone trained
(`--frozen_stride 0`), with a dilated backbone (`--output_stride 16`) and with torchvision's head,
alternating, each as a ratio to the default's step.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from _common import emit

from hfdl.tasks.segmentation.args import DECODERS, DEFAULT_DECODER, SegmentationDataArguments, SegmentationTrainingArguments, SegmenterArguments
from hfdl.tasks.segmentation.metrics import segmentation_loss
from hfdl.tasks.segmentation.model import load_segmenter
from hfdl.tasks.segmentation.pipeline import build_segmenter

NUM_CLASSES = 11  # the offline default's: background + 10 Fashion-MNIST classes
TORCHVISION_HEAD = {"skip_strides": "8", "skip_channels": 0}
TORCHVISION = "lraspp_torchvision"  # torchvision's LR-ASPP head: one skip map, a 1x1 classifier (--skip_strides 8 --skip_channels 0)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", default=None, help="A trained segmenter folder or Hub id, timed as the default (decoders still built untrained).")
    p.add_argument("--image_size", type=int, default=256)
    p.add_argument("--rounds", type=int, default=30)
    p.add_argument("--upsample", default="interpolate", choices=("interpolate", "transposed"))
    p.add_argument("--train_rounds", type=int, default=8, help="Training steps timed per variant (frozen stem or not); 0 skips them.")
    a = p.parse_args()
    torch.set_num_threads(2)
    names = [str(i) for i in range(NUM_CLASSES)]
    models = {decoder: build_segmenter(SegmenterArguments(model_type=decoder, upsample=a.upsample), names, None, a.image_size).eval() for decoder in DECODERS}
    if a.model:
        models[DEFAULT_DECODER] = load_segmenter(a.model).eval()
    models[TORCHVISION] = build_segmenter(SegmenterArguments(upsample=a.upsample, **TORCHVISION_HEAD), names, None, a.image_size).eval()
    x = torch.rand(1, 3, a.image_size, a.image_size)
    times = {decoder: [] for decoder in models}
    with torch.inference_mode():
        for model in models.values():  # warm-up: allocations, oneDNN primitives
            for _ in range(3):
                model.predict(x)
        for _ in range(a.rounds):
            for decoder, model in models.items():
                t0 = time.perf_counter()
                model.predict(x)
                times[decoder].append(time.perf_counter() - t0)
    ms = {decoder: statistics.median(t) * 1000 for decoder, t in times.items()}
    params = {decoder: sum(p.numel() for p in model.parameters()) for decoder, model in models.items()}
    emit(
        {
            "benchmark": "segmentation",
            "image_size": a.image_size,
            "upsample": a.upsample,
            "default_decoder": DEFAULT_DECODER,
            "default_ms": ms[DEFAULT_DECODER],
            "meets_80ms": ms[DEFAULT_DECODER] <= 80,
            **{f"{decoder}_ms": value for decoder, value in ms.items()},
            **{f"{decoder}_parameters": value for decoder, value in params.items()},
            **{f"{d}_time_ratio_to_{DEFAULT_DECODER}": ms[d] / ms[DEFAULT_DECODER] for d in models if d != DEFAULT_DECODER},
            **{f"{d}_parameter_ratio_to_{DEFAULT_DECODER}": params[d] / params[DEFAULT_DECODER] for d in models if d != DEFAULT_DECODER},
            **(train_steps(names, a.train_rounds) if a.train_rounds else {}),
        }
    )


def train_steps(names: list[str], rounds: int) -> dict:
    """Median milliseconds of one training step of the default recipe and of its variants, alternating rounds."""
    size, batch = SegmentationDataArguments.image_size, SegmentationTrainingArguments.per_device_train_batch_size
    default = SegmenterArguments()
    variants = {
        "default": default,
        "unfrozen": SegmenterArguments(frozen_stride=0),
        "output_stride16": SegmenterArguments(output_stride=16),
        TORCHVISION: SegmenterArguments(**TORCHVISION_HEAD),
    }
    steps = {}
    for name, args in variants.items():
        model = build_segmenter(args, names, None, size).train()
        optimizer = torch.optim.AdamW([q for q in model.parameters() if q.requires_grad], lr=1e-3)
        steps[name] = (model, optimizer)
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(batch, 3, size, size, generator=g), torch.randint(0, len(names), (batch, size, size), generator=g)
    times = {name: [] for name in steps}
    for r in range(rounds + 2):  # two warm-up rounds
        for name, (model, optimizer) in steps.items():
            t0 = time.perf_counter()
            segmentation_loss(model(model.normalize(x)), y, default.dice_weight).backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if r >= 2:
                times[name].append(time.perf_counter() - t0)
    ms = {name: statistics.median(t) * 1000 for name, t in times.items()}
    return {
        "train_image_size": size,
        "train_batch": batch,
        "frozen_stride": default.resolved_frozen_stride(),
        **{f"train_step_ms_{name}": value for name, value in ms.items()},
        "train_step_speedup_frozen": ms["unfrozen"] / ms["default"],  # the default freezes the stem: --frozen_stride's claim
        **{f"train_step_ratio_{name}_to_default": ms[name] / ms["default"] for name in ms if name != "default"},
    }


if __name__ == "__main__":
    main()
