"""Object detection: data in the Hub's form -> a YOLO-style detector on a timm backbone (or a transformers detector) -> mAP -> a run folder."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import replace
from pathlib import Path

import torch
from accelerate import Accelerator, PartialState
from timm.optim import param_groups_weight_decay  # no decay on norms and biases

from hfdl import assets
from hfdl.core.backbones import base_model_id, create_backbone, freeze_until_stride, train_except
from hfdl.core.rundir import ALL_RESULTS, RUN_CONFIG, check_output_dir, run_config, run_variants, write_json
from hfdl.core.runtime import PeakMemory
from hfdl.core.training import make_accelerator, train
from hfdl.errors import HfdlError
from hfdl.tasks.detection.args import (
    EMBEDDED_DEFAULT,
    EMBEDDED_TIME_BUDGET_MINUTES,
    MODEL_RECIPES,
    DetectionDataArguments,
    DetectionTrainingArguments,
    DetectorArguments,
)
from hfdl.tasks.detection.card import write_cards
from hfdl.tasks.detection.data import (
    DetectionAugment,
    DetectionImages,
    box_stats,
    build_detection_transforms,
    check_objects,
    collate_detection,
    load_detection_dataset,
    to_detection_form,
)
from hfdl.tasks.detection.loss import YoloLoss
from hfdl.tasks.detection.model import OUT_INDICES, YoloDetector, draw_detections
from hfdl.tasks.detection.report import pr_curve, write_comparison, write_pr_curve
from hfdl.tasks.detection.transformers_detector import EXAMPLES, TransformersDetector, build_transformers_detector, is_transformers_detector_id

logger = logging.getLogger(__name__)

TASK = "object-detection"
OUTPUTS = ("config.json", "model.safetensors", "preprocessor_config.json", "predictions.png", "pr_curve.png", "pr_curve.json")
VARIANTS = {"pretrained": True, "scratch": False}  # --compare_scratch: the variant folders and their backbone start
MAP_KEYS = ("map", "map_50", "map_75", "map_small", "map_medium", "map_large", "mar_1", "mar_10", "mar_100")


def load_data(data_args: DetectionDataArguments, seed: int):
    """(DatasetDict with train/validation in the one form, class names, source, box statistics)."""
    if data_args.embedded_default:
        dsd = assets.composite_dataset(EMBEDDED_DEFAULT["num_train"], EMBEDDED_DEFAULT["num_validation"], data_args.image_size, seed=0)
        names = assets.category_names(dsd["train"].features)
        dsd = type(dsd)({split: to_detection_form(ds, split)[0] for split, ds in dsd.items()})
        source = f"offline composites: {assets.COMPOSITES.description}"
    else:
        dsd, names, source = load_detection_dataset(
            data_args.dataset_name, data_args.train_dir, data_args.validation_dir, data_args.train_annotations, data_args.train_images,
            data_args.validation_annotations, data_args.validation_images, data_args.label_names, data_args.dataset_config_name,
            data_args.train_val_split, seed,
        )  # fmt: skip
    for split, limit in (("train", data_args.max_train_samples), ("validation", data_args.max_eval_samples)):
        if limit is not None and limit < len(dsd[split]):
            dsd[split] = dsd[split].select(range(limit))
    dsd, fixes = check_objects(dsd, len(names))
    stats = {split: {**box_stats(ds), **fixes[split]} for split, ds in dsd.items()}
    return dsd, names, source, stats


def detector_kind(detector_args: DetectorArguments) -> str:
    """ "transformers" for a transformers detector checkpoint in --model_name_or_path, else "yolo" (a timm backbone)."""
    if is_transformers_detector_id(detector_args.model_name_or_path):
        if detector_args.freeze_until_stride:
            raise HfdlError(
                "--freeze_until_stride applies to the yolo type's timm backbone, not to a transformers detector: drop it (or use --model_type yolo with a timm backbone)"
            )
        return "transformers"
    if detector_args.model_type == "transformers":
        raise HfdlError(
            f"--model_type transformers needs a transformers detector in --model_name_or_path (e.g. {EXAMPLES}), got '{detector_args.model_name_or_path}'"
        )
    return "yolo"


def build_detector(detector_args: DetectorArguments, label_names: list[str], image_size: int) -> YoloDetector | TransformersDetector:
    """The detector with its pretrained weights (or random ones with `--pretrained false`): the yolo type on a timm
    backbone, or a transformers detector re-headed for `label_names`."""
    if detector_kind(detector_args) == "transformers":
        return build_transformers_detector(detector_args.model_name_or_path, label_names, image_size, detector_args.pretrained, detector_args.trust_remote_code)
    backbone = create_backbone(detector_args.model_name_or_path, pretrained=detector_args.pretrained, features_only=True, out_indices=OUT_INDICES)
    cfg = backbone.pretrained_cfg
    model = YoloDetector(
        backbone=cfg.get("architecture") or detector_args.model_name_or_path, num_classes=len(label_names), label_names=label_names,
        image_size=image_size, neck_channels=detector_args.neck_channels, head=detector_args.head, mean=tuple(cfg.get("mean", (0.5,) * 3)), std=tuple(cfg.get("std", (0.5,) * 3)),
    )  # fmt: skip
    model.backbone.load_state_dict(backbone.state_dict())  # strict: the same architecture
    return model


def loss_and_output(model, criterion: YoloLoss | None, pixel_values: torch.Tensor, targets: list[dict]):
    """(loss, raw output) of one batch: the yolo type's raw maps through `YoloLoss`, a transformers detector's own
    loss (Hungarian matching) from its output."""
    if criterion is None:
        raw = model(pixel_values, targets)
        return raw.loss, raw
    raw = model(pixel_values)
    return criterion(raw, targets)["loss"], raw


@torch.inference_mode()
def evaluate_detector(accelerator: Accelerator, model, criterion: YoloLoss | None, batches, score_threshold: float, iou_threshold: float) -> dict:
    """mAP (COCO, torchmetrics) over every evaluation image exactly once, plus the loss; per-class AP as lists."""
    from torchmetrics.detection import MeanAveragePrecision

    was_training = model.training
    model.eval()
    pairs, loss_sum, n = [], 0.0, 0
    for x, targets in batches:
        loss, raw = loss_and_output(model, criterion, x, targets)
        loss_sum += loss.item() * len(targets)
        n += len(targets)
        detections = model.postprocess(raw, score_threshold, iou_threshold, multi_label=True)  # the loss's forward pass
        pairs += [({k: v.cpu() for k, v in d.items()}, {"boxes": t["boxes"].cpu(), "labels": t["labels"].cpu()}) for d, t in zip(detections, targets)]
    pairs = accelerator.gather_for_metrics(pairs, use_gather_object=True)
    metric = MeanAveragePrecision(class_metrics=True, extended_summary=True, sync_on_compute=False)
    metric.update([p for p, _ in pairs], [t for _, t in pairs])
    found = metric.compute()
    model.train(was_training)
    out = {f"eval_{k}": found[k].item() for k in MAP_KEYS if found[k].item() >= 0}  # -1: no object of that size
    out["eval_loss"] = loss_sum / max(n, 1)
    out["per_class_ap"] = [round(v, 4) for v in found["map_per_class"].reshape(-1).tolist()]
    out["per_class_classes"] = found["classes"].reshape(-1).tolist()
    out["pr_curve"] = pr_curve(found)
    return out


def draw_predictions(model: YoloDetector, images: DetectionImages, label_names: list[str], path: Path, score_threshold: float, n: int = 8) -> None:
    """`predictions.png`: the first `n` evaluation images with the detections (score >= max(threshold, 0.3))."""
    import torchvision
    from torchvision.utils import make_grid

    tiles = []
    for i in range(min(n, len(images))):
        x, _ = images[i]
        (det,) = model.detect(x[None].to(model.mean.device), max(score_threshold, 0.3))
        pixels = ((x * model.std[0].cpu() + model.mean[0].cpu()).clamp(0, 1) * 255).to(torch.uint8)
        tiles.append(draw_detections(pixels, det, label_names))
    if tiles:
        torchvision.io.write_png(make_grid(tiles, nrow=4, padding=4), str(path))


def run(detector_args: DetectorArguments, data_args: DetectionDataArguments, training_args: DetectionTrainingArguments, argv: list[str] | None = None) -> dict:
    """Train the detector, evaluate it (mAP), write the run folder and its card; returns all_results.

    With `--compare_scratch`, the same detector is trained twice, from the pretrained backbone into
    `OUTPUT/pretrained` and from random weights into `OUTPUT/scratch` (each a complete run folder), and
    `OUTPUT/comparison.{md,json,png}` sets them side by side; returns {variant: all_results}."""
    if data_args.embedded_default:
        training_args = training_args.capped_by_clock(EMBEDDED_TIME_BUDGET_MINUTES)
    if not detector_args.compare_scratch:
        return run_one(detector_args, data_args, training_args, argv)
    out = Path(training_args.output_dir)

    def train_one(name: str, folder: Path, variant_args: DetectionTrainingArguments) -> dict:
        one = replace(detector_args, pretrained=VARIANTS[name], compare_scratch=False)
        return run_one(one, data_args, replace(variant_args, output_dir=str(folder)), argv)

    results = run_variants(list(VARIANTS), [out / name for name in VARIANTS], training_args, train_one, logger.info, finished=ALL_RESULTS)
    if PartialState().is_main_process:
        table = write_comparison(results, out, Path(data_args.dataset_name or data_args.train_dir or "offline composites").name)
        print(table)
    return results


def run_one(
    detector_args: DetectorArguments, data_args: DetectionDataArguments, training_args: DetectionTrainingArguments, argv: list[str] | None = None
) -> dict:
    """One detector into `--output_dir` (see `run`)."""
    from torch.utils.data import DataLoader

    t_wall = time.perf_counter()
    out = Path(training_args.output_dir)
    check_output_dir(out, [out], training_args, OUTPUTS)
    accelerator = make_accelerator(training_args)
    with accelerator.main_process_first():
        dsd, names, source, stats = load_data(data_args, training_args.seed)
    accelerator.print(f"data: {source}: {stats['train']['images']} train / {stats['validation']['images']} validation images, {len(names)} classes")
    kind = detector_kind(detector_args)
    training_args = training_args.with_unset(**MODEL_RECIPES[kind])
    torch.manual_seed(training_args.seed)
    run_size = data_args.run_size(kind)
    model = build_detector(detector_args, names, run_size)  # its image_size is the size it runs at
    frozen = freeze_until_stride(model.backbone, detector_args.freeze_until_stride) if kind == "yolo" else []
    mean, std = model.mean.flatten().tolist(), model.std.flatten().tolist()
    augment = DetectionAugment(hflip=data_args.hflip, crop=data_args.crop, color_jitter=data_args.color_jitter, hue=data_args.hue)
    train_tf, eval_tf = build_detection_transforms(data_args.image_size, mean, std, augment, eval_size=run_size)
    train_images, eval_images = DetectionImages(dsd["train"], train_tf, seed=training_args.seed), DetectionImages(dsd["validation"], eval_tf)
    batch = training_args.per_device_train_batch_size
    workers = training_args.dataloader_num_workers
    train_dl = DataLoader(train_images, batch, shuffle=True, collate_fn=collate_detection, num_workers=workers, drop_last=len(train_images) > batch)
    eval_dl = accelerator.prepare(DataLoader(eval_images, training_args.per_device_eval_batch_size, collate_fn=collate_detection, num_workers=workers))
    criterion = YoloLoss(model, box_loss=detector_args.box_loss) if kind == "yolo" else None
    out.mkdir(parents=True, exist_ok=True)
    config = run_config(
        TASK, argv, {"model_args": detector_args, "data_args": {**vars(data_args)}, "training_args": training_args}, accelerator,
        base_model=_base_model(detector_args, kind),
        detector_kind=kind,
        inference_image_size=run_size,
        data={"source": source, "label_names": names, "stats": stats, "train_fingerprint": dsd["train"]._fingerprint, "eval_fingerprint": dsd["validation"]._fingerprint},
        offline_assets=_offline_assets(detector_args, data_args),
    )  # fmt: skip
    write_json(out / RUN_CONFIG, config, accelerator.is_main_process)

    def evaluate(m):
        return evaluate_detector(accelerator, accelerator.unwrap_model(m), criterion, eval_dl, detector_args.score_threshold, detector_args.iou_threshold)

    mem = PeakMemory()
    with mem:
        model, result = train(
            accelerator, model, param_groups_weight_decay(model, training_args.weight_decay), train_dl, training_args, out,
            compute_loss=lambda m, b: loss_and_output(m, criterion, *b)[0], evaluate=evaluate, run_name=kind, train_mode=train_except(frozen),
        )  # fmt: skip
    final = result.final_metrics
    results = {
        **{k: v for k, v in final.items() if k.startswith("eval_") and isinstance(v, float)},
        "per_class_ap": {names[c]: ap for c, ap in zip(final.get("per_class_classes", []), final.get("per_class_ap", []))},
        "train_seconds": result.train_seconds,
        "train_images_per_second": result.train_samples_per_second,
        "wall_seconds": time.perf_counter() - t_wall,
        "num_parameters": sum(p.numel() for p in model.parameters()),
        "peak_rss_mb": mem.peak_rss_mb,
        "completed_steps": result.completed_steps,
        "epochs": round(result.completed_steps / max(1, len(train_dl)), 3),
        **({"schedule_steps": result.schedule_steps} if result.schedule_steps else {}),
        "train_images": stats["train"]["images"],
        "validation_images": stats["validation"]["images"],
        "clipped_boxes": sum(s["clipped_boxes"] for s in stats.values()),
        "dropped_boxes": sum(s["dropped_boxes"] for s in stats.values()),
    }
    if accelerator.is_main_process:
        model.eval().save_pretrained(out)
        draw_predictions(model, eval_images, names, out / "predictions.png", detector_args.score_threshold)
        write_json(out / "pr_curve.json", final.get("pr_curve", {}))
        write_pr_curve(final.get("pr_curve"), names, out / "pr_curve.png")
        write_json(out / "history.json", result.history)
        write_json(out / ALL_RESULTS, results)
        write_cards(out)
    accelerator.wait_for_everyone()
    accelerator.print({k: round(v, 4) for k, v in results.items() if k.startswith("eval_")})
    return results


def _base_model(detector_args: DetectorArguments, kind: str) -> str | None:
    if not detector_args.pretrained:
        return None
    if kind == "transformers":  # a Hub id, or a local folder of unknown origin
        return None if os.path.isdir(detector_args.model_name_or_path) else detector_args.model_name_or_path
    return base_model_id(detector_args.model_name_or_path)


def _offline_assets(detector_args: DetectorArguments, data_args: DetectionDataArguments) -> list[dict]:
    found = [assets.BACKBONES[detector_args.model_name_or_path].provenance()] if detector_args.model_name_or_path in assets.BACKBONES else []
    return found + ([assets.COMPOSITES.provenance()] if data_args.embedded_default else [])
