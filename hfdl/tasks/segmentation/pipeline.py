"""Semantic segmentation: images + masks -> a decoder on a timm backbone (or a transformers segmenter) -> mean IoU -> a run folder."""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import replace
from pathlib import Path

import datasets
import torch
from accelerate import Accelerator, PartialState
from timm.optim import param_groups_weight_decay  # no decay on norms and biases

from hfdl import assets
from hfdl.core.backbones import base_model_id, create_backbone
from hfdl.core.rundir import ALL_RESULTS, RUN_CONFIG, check_output_dir, run_config, run_variants, write_json
from hfdl.core.runtime import PeakMemory
from hfdl.core.training import make_accelerator, train
from hfdl.errors import HfdlError
from hfdl.tasks.segmentation.args import (
    COMPARE_AXES,
    DEFAULT_DECODER,
    DEFAULT_OUTPUT_STRIDE,
    EMBEDDED_DEFAULT,
    EMBEDDED_EVAL_STRATEGY,
    EMBEDDED_TIME_BUDGET_MINUTES,
    MODEL_RECIPES,
    VALIDATION_MAX_OBJECTS,
    SegmentationDataArguments,
    SegmentationTrainingArguments,
    SegmenterArguments,
)
from hfdl.tasks.segmentation.card import write_cards
from hfdl.tasks.segmentation.data import (
    SegmentationData,
    SegmentationImages,
    build_segmentation_transforms,
    check_masks,
    load_segmentation_dataset,
)
from hfdl.tasks.segmentation.metrics import confusion_matrices, segmentation_loss, segmentation_scores
from hfdl.tasks.segmentation.model import IGNORE_INDEX, OUT_INDICES, TimmSegmenter, background_ids, default_palette, model_palette
from hfdl.tasks.segmentation.report import write_comparison, write_confusion_matrix, write_overlays
from hfdl.tasks.segmentation.transformers_segmenter import EXAMPLES, TransformersSegmenter, build_transformers_segmenter, is_transformers_segmenter_id

logger = logging.getLogger(__name__)

TASK = "image-segmentation"
LABEL_MAP = "label_map.json"
OUTPUTS = ("config.json", "model.safetensors", "preprocessor_config.json", LABEL_MAP, "overlays.png", "confusion_matrix.png", "confusion_matrix.json")


def load_data(data_args: SegmentationDataArguments, seed: int) -> SegmentationData:
    """The one form (train/validation with image + mask), class names, palette, source and statistics."""
    if data_args.embedded_default:
        dsd, about = embedded_composites(data_args.image_size, data_args.resolved_composite_max_objects())
        dsd, _ = check_masks(datasets.DatasetDict({split: ds.select_columns(["image", "mask"]) for split, ds in dsd.items()}), assets.SEGMENTATION_LABELS)
        data = SegmentationData(dsd, list(assets.SEGMENTATION_LABELS), None, f"offline composites: {assets.COMPOSITES.description}; {about}", {})
    else:
        data = load_segmentation_dataset(
            data_args.dataset_name, data_args.train_dir, data_args.validation_dir, data_args.image_column, data_args.mask_column,
            data_args.id2label, data_args.palette, data_args.reduce_labels, data_args.dataset_config_name, data_args.train_val_split, seed,
        )  # fmt: skip
    for split, limit in (("train", data_args.max_train_samples), ("validation", data_args.max_eval_samples)):
        if limit is not None and limit < len(data.dsd[split]):
            data.dsd[split] = data.dsd[split].select(range(limit))
    data.stats = {split: {**data.stats.get(split, {}), "images": len(ds)} for split, ds in data.dsd.items()}
    return data


def embedded_composites(image_size: int, max_objects: int) -> tuple[datasets.DatasetDict, str]:
    """The offline default: training scenes of up to `max_objects` items, validation scenes of up to
    VALIDATION_MAX_OBJECTS (the detection default's scenes, whatever the training density); and a line saying so.

    Each scene is a function of (seed, split, index, size, max_objects) only, so the validation split is the same
    400 scenes for every training density (and the same as `composite_dataset(..., image_size)["validation"]`)."""
    train = assets.composite_dataset(EMBEDDED_DEFAULT["num_train"], 1, image_size, max_objects=max_objects, seed=0)["train"]
    validation = assets.composite_dataset(1, EMBEDDED_DEFAULT["num_validation"], image_size, max_objects=VALIDATION_MAX_OBJECTS, seed=0)["validation"]
    about = f"training scenes of up to {max_objects} items, validation scenes of up to {VALIDATION_MAX_OBJECTS}, drawn at {image_size} px"
    return datasets.DatasetDict({"train": train, "validation": validation}), about


def segmenter_kind(segmenter_args: SegmenterArguments) -> str:
    """ "transformers" for a transformers segmenter checkpoint in --model_name_or_path, else "timm" (a decoder on a timm backbone)."""
    if is_transformers_segmenter_id(segmenter_args.model_name_or_path):
        return "transformers"
    if segmenter_args.model_type == "transformers":
        raise HfdlError(
            f"--model_type transformers needs a transformers segmenter in --model_name_or_path (e.g. {EXAMPLES}), got '{segmenter_args.model_name_or_path}'"
        )
    return "timm"


def build_segmenter(
    segmenter_args: SegmenterArguments, label_names: list[str], palette: list[list[int]] | None, image_size: int
) -> TimmSegmenter | TransformersSegmenter:
    """The segmenter with its pretrained weights (or random ones with `--pretrained false`): a decoder on a timm
    backbone, or a transformers segmenter re-headed for `label_names`."""
    if segmenter_kind(segmenter_args) == "transformers":
        return build_transformers_segmenter(
            segmenter_args.model_name_or_path, label_names, image_size, segmenter_args.pretrained, segmenter_args.trust_remote_code
        )
    backbone = create_backbone(segmenter_args.model_name_or_path, pretrained=segmenter_args.pretrained, features_only=True, out_indices=OUT_INDICES)
    cfg = backbone.pretrained_cfg
    model = TimmSegmenter(
        backbone=cfg.get("architecture") or segmenter_args.model_name_or_path, num_classes=len(label_names), label_names=label_names,
        image_size=image_size, decoder=segmenter_args.model_type, upsample=segmenter_args.upsample, decoder_channels=segmenter_args.decoder_channels,
        mean=tuple(cfg.get("mean", (0.5,) * 3)), std=tuple(cfg.get("std", (0.5,) * 3)), palette=palette or default_palette(label_names),
        frozen_stride=segmenter_args.frozen_stride, output_stride=segmenter_args.output_stride,
        test_time_flip=segmenter_args.resolved_test_time_flip(),
        **(
            {"skip_strides": segmenter_args.resolved_skip_strides(), "skip_channels": segmenter_args.resolved_skip_channels()}
            if segmenter_args.model_type == "lraspp"
            else {}
        ),
    )  # fmt: skip
    model.backbone.load_state_dict(backbone.state_dict())  # strict: the same architecture
    return model


@torch.inference_mode()
def evaluate_segmenter(accelerator: Accelerator, model, batches, label_names: list[str]) -> dict:
    """Mean IoU, accuracies and per-class IoU over every evaluation image exactly once, plus the cross-entropy per
    labelled pixel; the summed pixel confusion matrix under "confusion_matrix"."""
    was_training = model.training
    model.eval()
    confusion = torch.zeros(len(label_names), len(label_names), dtype=torch.int64)
    loss_sum, pixels = 0.0, 0
    for x, masks in batches:
        logits = model(model.normalize(x)).float()  # (B, K, S, S)
        losses = torch.nn.functional.cross_entropy(logits, masks, ignore_index=IGNORE_INDEX, reduction="none")  # (B, S, S), 0 where ignored
        per_image = torch.stack([losses.flatten(1).sum(1), (masks != IGNORE_INDEX).flatten(1).sum(1).float()], 1)  # (B, 2)
        matrices = confusion_matrices(logits.argmax(1), masks, len(label_names))  # (B, K, K)
        per_image, matrices = accelerator.gather_for_metrics((per_image, matrices))
        loss_sum, pixels = loss_sum + per_image[:, 0].sum().item(), pixels + int(per_image[:, 1].sum().item())
        confusion += matrices.sum(0).cpu()
    model.train(was_training)
    return {**segmentation_scores(confusion, label_names), "eval_loss": loss_sum / max(pixels, 1), "confusion_matrix": confusion}


def draw_overlays(model, images: SegmentationImages, palette: list[list[int]], path: Path, n: int = 6) -> None:
    """`overlays.png`: the first `n` evaluation images, their ground truth and the prediction."""
    rows = []
    for i in range(min(n, len(images))):
        x, truth = images[i]  # (3, S, S) in [0, 1], (S, S)
        predicted = model.predict(model.normalize(x[None].to(model.mean.device)))[0].cpu()
        rows.append((x, truth, predicted))
    write_overlays(rows, palette, path, transparent=background_ids(model.label_names))


def run(
    segmenter_args: SegmenterArguments, data_args: SegmentationDataArguments, training_args: SegmentationTrainingArguments, argv: list[str] | None = None
) -> dict:
    """Train the segmenter, evaluate it (mean IoU), write the run folder and its card; returns all_results.

    With `--compare a,b[,c]`, one variant per name (pretrained/scratch, unet/fpn/lraspp or interpolate/transposed) is
    trained into `OUTPUT/<name>` (each a complete run folder) and `OUTPUT/comparison.{md,json,png}` sets them side by
    side; returns {variant: all_results}. A resumed comparison reuses the variants that finished."""
    variants = segmenter_args.compare_variants()
    if data_args.embedded_default:
        capped = training_args.capped_by_clock(EMBEDDED_TIME_BUDGET_MINUTES)
        if capped is not training_args and not variants:  # one clock-capped run: its minutes go to training, not to curves
            capped = capped.with_unset(eval_strategy=EMBEDDED_EVAL_STRATEGY)
        training_args = capped
    if not variants:
        return run_one(segmenter_args, data_args, training_args, argv)
    if any(COMPARE_AXES[name][0] != "pretrained" for name in variants) and segmenter_kind(segmenter_args) == "transformers":
        raise HfdlError(f"--compare {segmenter_args.compare} varies the decoder of a timm backbone: for a transformers segmenter compare pretrained,scratch")
    out = Path(training_args.output_dir)

    def train_one(name: str, folder: Path, variant_training_args: SegmentationTrainingArguments) -> dict:
        return run_one(variants[name], data_args, replace(variant_training_args, output_dir=str(folder)), argv)

    results = run_variants(list(variants), [out / name for name in variants], training_args, train_one, logger.info, finished=ALL_RESULTS)
    if PartialState().is_main_process:
        print(write_comparison(results, out, Path(data_args.dataset_name or data_args.train_dir or "offline composites").name))
    return results


def run_one(
    segmenter_args: SegmenterArguments, data_args: SegmentationDataArguments, training_args: SegmentationTrainingArguments, argv: list[str] | None = None
) -> dict:
    """One segmenter into `--output_dir` (see `run`)."""
    t_wall = time.perf_counter()
    out = Path(training_args.output_dir)
    check_output_dir(out, [out], training_args, OUTPUTS)
    accelerator = make_accelerator(training_args)
    with accelerator.main_process_first():
        data = load_data(data_args, training_args.seed)
    names = data.label_names
    accelerator.print(
        f"data: {data.source}: {data.stats['train']['images']} train / {data.stats['validation']['images']} validation images, {len(names)} classes"
    )
    check_label_map(out, names, training_args.resume_from_checkpoint)
    kind = segmenter_kind(segmenter_args)
    if kind == "transformers" and (
        segmenter_args.model_type not in (DEFAULT_DECODER, "transformers")
        or segmenter_args.upsample != "interpolate"
        or segmenter_args.frozen_stride
        or segmenter_args.output_stride != DEFAULT_OUTPUT_STRIDE
        or segmenter_args.skip_strides
        or segmenter_args.skip_channels is not None
        or segmenter_args.test_time_flip is not None
    ):
        raise HfdlError(
            "--model_type / --upsample / --frozen_stride / --output_stride / --skip_strides / --skip_channels / --test_time_flip shape a decoder on a timm backbone: "
            "drop them (or the --compare of them) for a transformers segmenter"
        )
    training_args = training_args.with_unset(**MODEL_RECIPES[kind])
    torch.manual_seed(training_args.seed)
    run_size = data_args.run_size(kind)
    model = build_segmenter(segmenter_args, names, data.palette, run_size)  # its image_size is the size it runs at
    palette = model_palette(model)
    train_images, eval_images, train_dl, eval_dl = _loaders(data, data_args, training_args, accelerator, run_size)
    out.mkdir(parents=True, exist_ok=True)
    config = run_config(
        TASK, argv, {"model_args": segmenter_args, "data_args": {**vars(data_args)}, "training_args": training_args}, accelerator,
        base_model=_base_model(segmenter_args, kind),
        segmenter_kind=kind,
        inference_image_size=run_size,
        data={"source": data.source, "label_names": names, "palette": palette, "stats": data.stats,
              "train_fingerprint": data.dsd["train"]._fingerprint, "eval_fingerprint": data.dsd["validation"]._fingerprint},
        offline_assets=_offline_assets(segmenter_args, data_args),
    )  # fmt: skip
    write_json(out / RUN_CONFIG, config, accelerator.is_main_process)
    write_json(out / LABEL_MAP, {"id2label": dict(enumerate(names)), "palette": palette, "ignore_index": IGNORE_INDEX}, accelerator.is_main_process)

    def evaluate(m):
        return evaluate_segmenter(accelerator, accelerator.unwrap_model(m), eval_dl, names)

    normalize = model.normalize  # the model's own normalisation; `m` below may be a DDP wrapper without it

    def compute_loss(m, batch):
        return segmentation_loss(m(normalize(batch[0])), batch[1], segmenter_args.dice_weight)

    mem = PeakMemory()
    with mem:
        model, result = train(
            accelerator, model, param_groups_weight_decay(model, training_args.weight_decay), train_dl, training_args, out,
            compute_loss=compute_loss, evaluate=evaluate, run_name=kind,
        )  # fmt: skip
    final = result.final_metrics
    results = _results(final, names, data, result, model, len(train_dl), time.perf_counter() - t_wall, mem.peak_rss_mb)
    if accelerator.is_main_process:
        model.eval().save_pretrained(out)
        draw_overlays(model, eval_images, palette, out / "overlays.png")
        if "confusion_matrix" in final:
            write_confusion_matrix(final["confusion_matrix"], names, out)
        write_json(out / "history.json", result.history)
        write_json(out / ALL_RESULTS, results)
        write_cards(out)
    accelerator.wait_for_everyone()
    accelerator.print({k: round(v, 4) for k, v in results.items() if k.startswith("eval_") and not k.startswith("eval_iou_")})
    return results


def _loaders(
    data: SegmentationData, data_args: SegmentationDataArguments, training_args: SegmentationTrainingArguments, accelerator: Accelerator, run_size: int
):
    """(train images, evaluation images, train loader, prepared evaluation loader): pixels in [0, 1] (the model normalises),
    augmentation seeded per (seed, epoch, index)."""
    from torch.utils.data import DataLoader

    train_tf, eval_tf = build_segmentation_transforms(data_args.image_size, data_args.augment(), eval_size=run_size)
    train_images = SegmentationImages(data.dsd["train"], train_tf, seed=training_args.seed)
    eval_images = SegmentationImages(data.dsd["validation"], eval_tf)
    batch, workers = training_args.per_device_train_batch_size, training_args.dataloader_num_workers
    train_dl = DataLoader(train_images, batch, shuffle=True, num_workers=workers, drop_last=len(train_images) > batch)
    eval_dl = accelerator.prepare(DataLoader(eval_images, training_args.per_device_eval_batch_size, num_workers=workers))
    return train_images, eval_images, train_dl, eval_dl


def check_label_map(out: Path, label_names: list[str], resume: str | None) -> None:
    """Resuming a run whose label map differs from this data's -> a one-line error (the head's classes would mean other things)."""
    path = out / LABEL_MAP
    if not resume or not path.is_file():
        return
    before = [name for _, name in sorted(json.loads(path.read_text(encoding="utf-8"))["id2label"].items(), key=lambda item: int(item[0]))]
    if before != list(label_names):
        raise HfdlError(
            f"{out} was trained with the labels {before[:6]}{'...' if len(before) > 6 else ''}, this data has {list(label_names)[:6]}"
            f"{'...' if len(label_names) > 6 else ''}: resume with the same data and --id2label, or start afresh in another --output_dir"
        )


def _results(final: dict, names: list[str], data: SegmentationData, result, model, steps_per_epoch: int, wall_seconds: float, peak_rss_mb) -> dict:
    def by_class(values: list[float]) -> dict:
        return {name: (round(v, 4) if v == v else None) for name, v in zip(names, values)}  # None: the class appears nowhere

    unpaired = {key: sum(s.get(key, 0) for s in data.stats.values()) for key in ("unpaired_images", "unpaired_masks")}
    return {
        **{k: v for k, v in final.items() if k.startswith("eval_") and isinstance(v, float)},
        "per_class_iou": by_class(final.get("per_class_iou", [])),
        "per_class_accuracy": by_class(final.get("per_class_accuracy", [])),
        "pixel_share": by_class(final.get("pixel_share", [])),
        "train_seconds": result.train_seconds,
        "train_images_per_second": result.train_samples_per_second,
        "wall_seconds": wall_seconds,
        "num_parameters": sum(p.numel() for p in model.parameters()),
        "peak_rss_mb": peak_rss_mb,
        "completed_steps": result.completed_steps,
        "epochs": round(result.completed_steps / max(1, steps_per_epoch), 3),
        **({"schedule_steps": result.schedule_steps} if result.schedule_steps else {}),
        "train_images": data.stats["train"]["images"],
        "validation_images": data.stats["validation"]["images"],
        **{k: v for k, v in unpaired.items() if v},
    }


def _base_model(segmenter_args: SegmenterArguments, kind: str) -> str | None:
    if not segmenter_args.pretrained:
        return None
    if kind == "transformers":  # a Hub id, or a local folder of unknown origin
        return None if os.path.isdir(segmenter_args.model_name_or_path) else segmenter_args.model_name_or_path
    return base_model_id(segmenter_args.model_name_or_path)


def _offline_assets(segmenter_args: SegmenterArguments, data_args: SegmentationDataArguments) -> list[dict]:
    name = segmenter_args.model_name_or_path
    found = [assets.BACKBONES[name].provenance()] if name in assets.BACKBONES else []
    return found + ([assets.COMPOSITES.provenance()] if data_args.embedded_default else [])
