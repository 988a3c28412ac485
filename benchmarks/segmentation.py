"""Claims (issue 12): the default segmenter (Lite0 backbone, LR-ASPP decoder at the default width, 11 classes) runs at
256 px, batch 1, 2 cores in <= 80 ms/image; and the decoders side by side (LR-ASPP, U-Net, FPN on the same backbone, each
at the default --decoder_channels): ms/image and parameters, as ratios to the default measured in one run (medians of
alternating rounds, so a busy machine slows each alike).

    python benchmarks/segmentation.py [--model DIR_OR_ID] [--image_size 256 --rounds 30 --upsample interpolate]

Without --model the default architecture with its pretrained backbone is timed (the weights do not change the cost).
Each round times `predict` (network, logits at the input size, argmax) once per decoder.

Every timm decoder predicts with flip test-time augmentation (the mean of the image's and its mirror image's logits, the
default), so each is two passes. Also timed, as ratios to the default: torchvision's LR-ASPP head (`--skip_strides 8
--skip_channels 0`: one skip map, a 1x1 classifier; the default adds the stride-4 and -16 maps and a 3x3 conv before
each skip's classifier), the default decoder on MobileNetV2 (the other offline backbone) and the default in one pass
(`--test_time_flip false`).

Evaluation (`--eval_rounds`, 0 to skip): the default's predictions over 32 images at --image_size in batches of the
default --per_device_eval_batch_size (8) against batches of 32, ms per image (the smaller batch's tensors stay in the
CPU's caches).

Training (`--train_rounds`, 0 to skip): one optimizer step of the default recipe (a batch of the default size at the
default --image_size, cross-entropy + Dice, AdamW; the whole backbone trained) against the same step with the stem
frozen (`--frozen_stride 4`: no backward through the stride-2 and -4 layers), with a dilated backbone (`--output_stride 16`), with torchvision's head and on MobileNetV2,
alternating, each as a ratio to the default's step.

The training step's parts (`--part_rounds`, 0 to skip), each against the textbook form in alternating rounds:
the LR-ASPP head's forward + backward on a batch's backbone maps, classifying the last map before its bilinear resize
(K = 11 maps resized, not C = 256) against torchvision's resize-then-classify order (the same logits); the loss
(cross-entropy + soft Dice from one log-softmax, Dice summing p(true class) per class) against
cross-entropy + the one-hot Dice on the same logits (8 x 11 x 192 x 192, forward + backward); the training
augmentation on PIL images against the same steps on uint8 tensors (ms/image on real composites), both for your
data's (rotation, colour and hue jitter) and the offline default's (flips and crops only); and PyTorch's
fused AdamW step (what the loop takes on CPU) against the default foreach one on the default segmenter's parameters.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F
from _common import emit

from hfdl.assets import composite_dataset
from hfdl.core.training import fused_adamw_available
from hfdl.tasks.segmentation.args import (
    DECODERS,
    DEFAULT_COMPOSITE_MAX_OBJECTS,
    DEFAULT_DECODER,
    SegmentationDataArguments,
    SegmentationTrainingArguments,
    SegmenterArguments,
)
from hfdl.tasks.segmentation.data import SegmentationTransform
from hfdl.tasks.segmentation.metrics import segmentation_loss
from hfdl.tasks.segmentation.model import IGNORE_INDEX, load_segmenter
from hfdl.tasks.segmentation.pipeline import build_segmenter

NUM_CLASSES = 11  # the offline default's: background + 10 Fashion-MNIST classes
TORCHVISION_HEAD = {"skip_strides": "8", "skip_channels": 0}
TORCHVISION = "lraspp_torchvision"  # torchvision's LR-ASPP head: one skip map, a 1x1 classifier (--skip_strides 8 --skip_channels 0)
MNV2 = "lraspp_mobilenetv2"  # the default decoder on MobileNetV2 (--model_name_or_path mobilenetv2_100), the other offline backbone
SINGLE_PASS = "lraspp_single_pass"  # the default without flip test-time augmentation (--test_time_flip false): one pass per image


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", default=None, help="A trained segmenter folder or Hub id, timed as the default (decoders still built untrained).")
    p.add_argument("--image_size", type=int, default=256)
    p.add_argument("--rounds", type=int, default=30)
    p.add_argument("--upsample", default="interpolate", choices=("interpolate", "transposed"))
    p.add_argument("--train_rounds", type=int, default=8, help="Training steps timed per variant (the default, a frozen stem, ...); 0 skips them.")
    p.add_argument("--part_rounds", type=int, default=20, help="Rounds of the loss / augmentation / optimizer timings; 0 skips them.")
    p.add_argument("--eval_rounds", type=int, default=5, help="Rounds of the evaluation-batch timing (32 images each); 0 skips it.")
    a = p.parse_args()
    torch.set_num_threads(2)
    names = [str(i) for i in range(NUM_CLASSES)]
    models = {decoder: build_segmenter(SegmenterArguments(model_type=decoder, upsample=a.upsample), names, None, a.image_size).eval() for decoder in DECODERS}
    if a.model:
        models[DEFAULT_DECODER] = load_segmenter(a.model).eval()
    models[TORCHVISION] = build_segmenter(SegmenterArguments(upsample=a.upsample, **TORCHVISION_HEAD), names, None, a.image_size).eval()
    models[MNV2] = build_segmenter(SegmenterArguments(model_name_or_path="mobilenetv2_100", upsample=a.upsample), names, None, a.image_size).eval()
    models[SINGLE_PASS] = build_segmenter(SegmenterArguments(upsample=a.upsample, test_time_flip=False), names, None, a.image_size).eval()
    x = torch.rand(1, 3, a.image_size, a.image_size)
    ms = alternate({decoder: functools.partial(model.predict, x) for decoder, model in models.items()}, a.rounds, warmup=3)  # predict: inference mode
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
            "test_time_flip": models[DEFAULT_DECODER].test_time_flip,
            **(eval_batches(models[DEFAULT_DECODER], a.image_size, a.eval_rounds) if a.eval_rounds else {}),
            **(train_steps(names, a.train_rounds) if a.train_rounds else {}),
            **(step_parts(names, a.part_rounds) if a.part_rounds else {}),
        }
    )


def train_steps(names: list[str], rounds: int) -> dict:
    """Median milliseconds of one training step of the default recipe and of its variants, alternating rounds."""
    size, batch = SegmentationDataArguments.image_size, SegmentationTrainingArguments.per_device_train_batch_size
    default = SegmenterArguments()
    variants = {
        "default": default,
        "frozen4": SegmenterArguments(frozen_stride=4),
        "output_stride16": SegmenterArguments(output_stride=16),
        TORCHVISION: SegmenterArguments(**TORCHVISION_HEAD),
        MNV2: SegmenterArguments(model_name_or_path="mobilenetv2_100"),
    }
    steps = {}
    for name, args in variants.items():
        model = build_segmenter(args, names, None, size).train()
        optimizer = torch.optim.AdamW([q for q in model.parameters() if q.requires_grad], lr=1e-3, fused=fused_adamw_available(model))  # as the loop
        steps[name] = (model, optimizer)
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(batch, 3, size, size, generator=g), torch.randint(0, len(names), (batch, size, size), generator=g)

    def step(model, optimizer):
        def run():
            segmentation_loss(model(model.normalize(x)), y, default.dice_weight).backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        return run

    ms = alternate({name: step(model, optimizer) for name, (model, optimizer) in steps.items()}, rounds)
    return {
        "train_image_size": size,
        "train_batch": batch,
        "frozen_stride": default.frozen_stride,
        **{f"train_step_ms_{name}": value for name, value in ms.items()},
        **{f"train_step_ratio_{name}_to_default": ms[name] / ms["default"] for name in ms if name != "default"},
    }


def eval_batches(model, size: int, rounds: int) -> dict:
    """Milliseconds per image of evaluation's prediction (the network, flip included, and the argmax) over 32 images in
    batches of the default --per_device_eval_batch_size against batches of 32, alternating rounds."""
    default = SegmentationTrainingArguments.per_device_eval_batch_size
    x = torch.rand(32, 3, size, size)

    def run(batch: int):
        return lambda: [model.predict(chunk) for chunk in x.split(batch)]

    ms = alternate({"default": run(default), "32": run(32)}, rounds)
    return {
        "eval_batch": default,
        "eval_ms_per_image": ms["default"] / len(x),
        "eval_ms_per_image_batch_32": ms["32"] / len(x),
        "eval_speedup_batch": ms["32"] / ms["default"],
    }


def alternate(candidates: dict, rounds: int, warmup: int = 2) -> dict:
    """Median milliseconds of each no-argument callable, called in turn each round (`warmup` untimed rounds first:
    allocations, oneDNN primitives)."""
    times = {name: [] for name in candidates}
    for r in range(rounds + warmup):
        for name, call in candidates.items():
            t0 = time.perf_counter()
            call()
            if r >= warmup:
                times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(t) * 1000 for name, t in times.items()}


def textbook_loss(logits: torch.Tensor, masks: torch.Tensor, dice_weight: float) -> torch.Tensor:
    """Cross-entropy + the one-hot soft Dice (the form `segmentation_loss` replaced: the same value and gradient, tested)."""
    valid = (masks != IGNORE_INDEX).unsqueeze(1)
    probs = logits.float().softmax(1) * valid
    truth = F.one_hot(masks.masked_fill(~valid[:, 0], 0), logits.shape[1]).permute(0, 3, 1, 2) * valid
    dice = 1 - ((2 * (probs * truth).sum((0, 2, 3)) + 1) / ((probs + truth).sum((0, 2, 3)) + 1)).mean()
    return F.cross_entropy(logits.float(), masks, ignore_index=IGNORE_INDEX) + dice_weight * dice


def resize_then_classify(d, feats: list[torch.Tensor]) -> torch.Tensor:
    """The LR-ASPP head's logits in torchvision's order: the last map's C channels resized to the skip's stride, then
    classified (the default classifies the small map and resizes K maps: the same logits, tested)."""
    low = feats[d.skips[0]]
    logits = d.low_classifier(low) + d.high_classifier(d.resize(d.cbr(feats[-1]) * d.scale(feats[-1]), low.shape[-2:]))
    for level, classify, resize in zip(d.skips[1:], d.skip_classifiers, d.skip_resizes):
        logits = logits + resize(classify(feats[level]), low.shape[-2:])
    return logits


def step_parts(names: list[str], rounds: int) -> dict:
    """The loss, the augmentation and the optimizer step of the default recipe, each against the textbook form."""
    from torchvision import tv_tensors
    from torchvision.transforms.v2 import functional as TF

    size, batch = SegmentationDataArguments.image_size, SegmentationTrainingArguments.per_device_train_batch_size
    dice_weight = SegmenterArguments().dice_weight
    g = torch.Generator().manual_seed(0)
    coarse = torch.randn(batch, len(names), size // 8, size // 8, generator=g, requires_grad=True)  # the head's stride-8 scores
    masks = torch.randint(0, len(names), (batch, size, size), generator=g)

    def loss_with(fn):
        return lambda: fn(F.interpolate(coarse, size=(size, size), mode="bilinear"), masks, dice_weight).backward()

    loss_ms = alternate({"default": loss_with(segmentation_loss), "one_hot": loss_with(textbook_loss)}, rounds)

    scenes = composite_dataset(64, 1, size, max_objects=DEFAULT_COMPOSITE_MAX_OBJECTS, seed=1)["train"]
    samples = [(ex["image"].convert("RGB"), torch.from_numpy(np.array(ex["mask"], dtype=np.uint8))) for ex in scenes]

    def augment(transform: SegmentationTransform, as_tensor: bool):
        def run():
            for image, mask in samples:
                image = tv_tensors.Image(TF.pil_to_tensor(image)) if as_tensor else image
                transform.pipeline(image, tv_tensors.Mask(mask[None]))

        return run

    transforms = {}  # your data's augmentation (rotation, colour and hue jitter) and the offline default's (flips, crops)
    for data, d in (("data", SegmentationDataArguments(dataset_name="your/data")), ("offline", SegmentationDataArguments())):
        transforms[data] = SegmentationTransform(size, d.augment())
    aug_ms = alternate({f"{form}_{data}": augment(t, form == "tensor") for data, t in transforms.items() for form in ("pil", "tensor")}, max(1, rounds // 4))

    model = build_segmenter(SegmenterArguments(), names, None, size).train()
    with torch.no_grad():
        feats = [
            f.detach().requires_grad_()
            for f in model.backbone(model.normalize(torch.rand(batch, 3, size, size, generator=g)).contiguous(memory_format=torch.channels_last))
        ]
    weights = torch.randn(batch, len(names), size // model.decoder.stride, size // model.decoder.stride, generator=g)

    def head_with(fn):
        return lambda: (fn(model.decoder, feats) * weights).sum().backward()

    head_ms = alternate({"default": head_with(lambda d, f: d(f)), "torchvision": head_with(resize_then_classify)}, rounds)
    params = [q for q in model.parameters() if q.requires_grad]
    for q in params:
        q.grad = torch.randn_like(q)
    optimizers = {"fused": torch.optim.AdamW(params, lr=1e-6, fused=True), "foreach": torch.optim.AdamW(params, lr=1e-6)}
    opt_ms = alternate({name: opt.step for name, opt in optimizers.items()}, rounds)
    return {
        "loss_ms": loss_ms["default"],
        "loss_ms_one_hot_dice": loss_ms["one_hot"],
        "loss_speedup": loss_ms["one_hot"] / loss_ms["default"],
        **{f"augment_ms_per_image_{key}": value / len(samples) for key, value in aug_ms.items()},
        **{f"augment_speedup_pil_{data}": aug_ms[f"tensor_{data}"] / aug_ms[f"pil_{data}"] for data in transforms},
        "head_ms": head_ms["default"],
        "head_ms_resize_then_classify": head_ms["torchvision"],
        "head_speedup_classify_then_resize": head_ms["torchvision"] / head_ms["default"],
        "adamw_ms_fused": opt_ms["fused"],
        "adamw_ms_foreach": opt_ms["foreach"],
        "adamw_speedup_fused": opt_ms["foreach"] / opt_ms["fused"],
    }


if __name__ == "__main__":
    main()
