"""The semantic-segmentation card (`model_cards/semantic_segmentation.md`) and the one repo of a train_segmenter run:
the segmenter's folder, label map, overlays, confusion matrix, results, run config; mean IoU in `model-index`."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from hfdl.errors import HfdlError
from hfdl.hub.cards import (
    eval_results,
    hardware,
    image_sizes,
    indefinite_article,
    markdown_table,
    provenance,
    render_card,
    run_image_size,
    schedule,
    versions_table,
)
from hfdl.hub.registry import RepoPlan, finished_run, model_repo_files, register, repo_ids, write_cards
from hfdl.tasks.segmentation.args import resolve_skip_channels, resolve_skip_strides, resolve_test_time_flip
from hfdl.tasks.segmentation.metrics import class_keys

TASK = "image-segmentation"
METRICS = {
    "eval_mean_iou": ("mean_iou", "Mean IoU"),
    "eval_mean_accuracy": ("mean_accuracy", "Mean accuracy (per class)"),
    "eval_overall_accuracy": ("overall_accuracy", "Pixel accuracy"),
    "eval_loss": ("loss", "Cross-entropy per labelled pixel"),
}
DECODER_DESCRIPTIONS = {
    "unet": "a U-Net decoder (from stride 32 up to stride 4: upsample, concatenate the backbone's map of that stride, two 3x3 convolutions)",
    "fpn": "an FPN decoder (1x1 laterals, top-down upsample-and-add, every level brought to stride 4 and summed, then a 3x3 convolution)",
    "lraspp": "an LR-ASPP head (as torchvision's MobileNetV3 segmenter: the last map gated by its global average, upsampled to stride {finest} and added to {skips})",
}
UPSAMPLE_DESCRIPTIONS = {"interpolate": "bilinear interpolation", "transposed": "learned transposed convolutions"}
__all__ = ["plans", "segmentation_card", "write_cards"]


def metric_names(label_names: list[str]) -> dict[str, tuple[str, str]]:
    """model-index (type, name) of every evaluation key: the summary metrics and one IoU per class."""
    return {**METRICS, **{f"eval_iou_{key}": (f"iou_{key}", f"IoU {name}") for key, name in zip(class_keys(label_names), label_names)}}


def _dataset(run_config: dict) -> dict:
    d, data = run_config["data_args"], run_config["data"]
    if d.get("embedded_default"):
        return {"type": "hfdl-offline/composites", "name": "composites", "hub": None, "about": data["source"]}
    name = d.get("dataset_name")
    if name and not os.path.exists(name):
        return {"type": name, "name": name, "hub": name, "about": f"The Hub dataset [{name}](https://huggingface.co/datasets/{name})."}
    return {"type": "local", "name": Path(name or d.get("train_dir") or "images").name, "hub": None, "about": data["source"]}


def _how_to_use(repo_id: str, kind: str) -> tuple[str, str]:
    """(the sentence before the snippet, the snippet): hfdl's loader for the timm type, plain transformers otherwise."""
    if kind == "transformers":
        return "Plain transformers loads it (`AutoModelForSemanticSegmentation` with its image processor):", (
            "import torch\n"
            "from PIL import Image\n"
            "from transformers import AutoImageProcessor, AutoModelForSemanticSegmentation\n\n"
            f'processor = AutoImageProcessor.from_pretrained("{repo_id}")\n'
            f'model = AutoModelForSemanticSegmentation.from_pretrained("{repo_id}").eval()\n'
            'image = Image.open("image.jpg").convert("RGB")\n'
            "with torch.no_grad():\n"
            '    outputs = model(**processor(images=image, return_tensors="pt"))\n'
            "(mask,) = processor.post_process_semantic_segmentation(outputs, target_sizes=[image.size[::-1]])  # (H, W) class ids\n"
            "shares = mask.flatten().bincount(minlength=model.config.num_labels) / mask.numel()\n"
            "for label, share in enumerate(shares.tolist()):\n"
            "    if share > 0:\n"
            "        print(model.config.id2label[label], round(share, 4))  # the share of the image's pixels"
        )
    return "The segmenter is a `PyTorchModelHubMixin` module of hfdl (`pip install` hfdl from its repository), loaded strictly:", (
        "from PIL import Image\n"
        "from hfdl.tasks.segmentation.model import TimmSegmenter, segment_in_image\n\n"
        f'model = TimmSegmenter.from_pretrained("{repo_id}")\n'
        'mask = segment_in_image(model, Image.open("image.jpg").convert("RGB"))  # (H, W) class ids at the image\'s size\n'
        "shares = mask.flatten().bincount(minlength=model.num_classes) / mask.numel()\n"
        "for label, share in enumerate(shares.tolist()):\n"
        "    if share > 0:\n"
        "        print(model.label_names[label], round(share, 4))  # the share of the image's pixels"
    )


def _model_description(m: dict, kind: str, base: str | None, architecture: str) -> str:
    origin = f"[{base}](https://huggingface.co/{base})" if base else ("a local checkpoint" if m["pretrained"] else "random initialisation")
    loss = "pixel-wise cross-entropy (label 255 ignored)" + (f" plus {m['dice_weight']} x soft Dice" if m.get("dice_weight") else "")
    if kind == "transformers":
        return (
            f"A transformers `{architecture}` segmenter (`AutoModelForSemanticSegmentation`), started from {origin} with a new class head for "
            f"these classes (`ignore_mismatched_sizes`, as the transformers semantic-segmentation example); its logits upsampled to the input size, trained with {loss}."
        )
    return (
        f"The `{m['model_name_or_path']}` backbone ({'ImageNet-pretrained, ' + origin if base else origin}) as a timm `features_only` network "
        f"(maps at strides 4, 8, 16 and 32), {decoder_description(m)}, upsampling by {UPSAMPLE_DESCRIPTIONS[m['upsample']]}; "
        f"the logits are brought to the input size and trained with {loss}."
        + (
            " It predicts with the mean of the image's and its mirror image's logits (flip test-time augmentation, saved in its config: the evaluation below did the same)."
            if test_time_flip(m)
            else ""
        )
    )


def _hyperparameters(m: dict, d: dict, t: dict, kind: str, rc: dict, config: dict) -> dict:
    """The card's hyperparameter rows; the frozen layers from the saved model's config (a run folder from before
    session 18 may leave --frozen_stride unset in run_config.json, which then meant 4 for a pretrained backbone)."""
    model = (
        {"checkpoint": m["model_name_or_path"], "pretrained": m["pretrained"]}
        if kind == "transformers"
        else {
            "backbone": m["model_name_or_path"],
            "pretrained backbone": m["pretrained"],
            "decoder": m["model_type"],
            "upsampling": m["upsample"],
            "decoder channels": m["decoder_channels"],
            "frozen backbone layers": frozen_layers(config.get("frozen_stride", 0)),
            "backbone output stride": output_stride(m.get("output_stride", 32)),
            **({"skip maps (strides)": skip_maps(m)} if m["model_type"] == "lraspp" else {}),
            "test-time augmentation": "horizontal flip (the mean of the image's and its mirror image's logits)" if test_time_flip(m) else "none",
        }
    )
    return {
        **model, "image size": image_sizes(rc), "batch size (per device)": t["per_device_train_batch_size"],
        "learning rate": t["learning_rate"], "weight decay": t["weight_decay"], "optimizer": "AdamW",
        "schedule": schedule(t), "max grad norm": t["max_grad_norm"],
        "loss": "cross-entropy" + (f" + {m['dice_weight']} x Dice" if m.get("dice_weight") else ""),
        "augmentation": augmentation(d),
        "reduce labels": d.get("reduce_labels", False),
    }  # fmt: skip


def skip_strides(m: dict) -> tuple[int, ...]:
    """LR-ASPP's skip maps of a run: its --skip_strides or the default; torchvision's stride-8 map for a run from before the option."""
    return resolve_skip_strides(m["skip_strides"]) if "skip_strides" in m else (8,)


def skip_channels(m: dict) -> int:
    """LR-ASPP's skip-classifier width of a run: its --skip_channels or the default; 0 (1x1) for a run from before the option."""
    return resolve_skip_channels(m["skip_channels"]) if "skip_channels" in m else 0


def test_time_flip(m: dict) -> bool:
    """Whether a run's model predicts with flip test-time augmentation: its --test_time_flip or the default; off for a run from before the option."""
    return resolve_test_time_flip(m["test_time_flip"]) if "test_time_flip" in m else False


def skip_maps(m: dict) -> str:
    width = skip_channels(m)
    return ", ".join(map(str, skip_strides(m))) + (f" (each a 3x3 conv {width} wide, then 1x1)" if width else " (1x1 classifiers)")


def decoder_description(m: dict) -> str:
    strides = skip_strides(m)
    skips = f"a 1x1 classifier of the stride-{strides[0]} map" if len(strides) == 1 else f"1x1 classifiers of the stride-{' / '.join(map(str, strides))} maps"
    if skip_channels(m):
        skips += f", each after a 3x3 conv + BN + ReLU {skip_channels(m)} wide (DeepLabv3+'s low-level refinement)"
    return DECODER_DESCRIPTIONS[m["model_type"]].format(finest=strides[0], skips=skips)


def augmentation(d: dict) -> str:
    """The training augmentation of a run's data arguments, the steps it left off unnamed."""
    steps = [f"flip p={d['hflip']}", f"scale/crop p={d['crop']} (area from {d['scale_min']})"]
    steps += [f"rotation up to {d['rotation']:g} deg (p=0.5)"] if d.get("rotation") else []
    steps += [f"colour jitter {d['color_jitter']:g}"] if d.get("color_jitter") else []
    steps += [f"hue {d['hue']:g}"] if d.get("hue") else []
    return ", ".join(steps)


def frozen_layers(stride: int) -> str:
    return f"stem to the stride-{stride} level (weights and batch-norm statistics kept)" if stride else "none"


def output_stride(stride: int) -> str:
    return f"{stride} (the last stages dilated)" if stride != 32 else "32"


def _per_class_rows(r: dict, label_names: list[str]) -> list[dict]:
    iou, accuracy, share = r.get("per_class_iou", {}), r.get("per_class_accuracy", {}), r.get("pixel_share", {})
    return [{"class": name, "IoU": iou.get(name), "accuracy": accuracy.get(name), "share of pixels": share.get(name)} for name in label_names]


def _weakest(r: dict) -> str:
    scored = [(v, name) for name, v in r.get("per_class_iou", {}).items() if v is not None and not math.isnan(v)]
    return ", ".join(f"{name} ({v:.2f})" for v, name in sorted(scored)[:3]) or "-"


def segmentation_card(out: Path, repo_id: str):
    """Render the card of a finished segmentation run (`repo_id`: a Hub id, or the folder itself)."""
    from huggingface_hub import ModelCardData

    r, rc = finished_run(out)
    m, d, t, env, data = rc["model_args"], rc["data_args"], rc["training_args"], rc["environment"], rc["data"]
    ds, base, name = _dataset(rc), rc.get("base_model"), Path(repo_id).name
    kind, names = rc.get("segmenter_kind", "timm"), data["label_names"]
    config = json.loads((out / "config.json").read_text(encoding="utf-8"))
    architecture = (config.get("architectures") or [config.get("model_type", "")])[0] if kind == "transformers" else "TimmSegmenter"
    how_to_use_intro, how_to_use_code = _how_to_use(repo_id, kind)
    tags = (
        ["image-segmentation", "semantic-segmentation", "hfdl", "transformers", config.get("model_type", "")]
        if kind == "transformers"
        else ["image-segmentation", "semantic-segmentation", "hfdl", "timm", m["model_type"], "pytorch_model_hub_mixin", "model_hub_mixin"]
    )
    card_data = ModelCardData(
        model_name=name, library_name="transformers" if kind == "transformers" else "pytorch", license="apache-2.0", base_model=base,
        datasets=[ds["hub"]] if ds["hub"] else None, tags=tags, pipeline_tag=TASK,
        eval_results=eval_results(r, task_type=TASK, dataset_type=ds["type"], dataset_name=ds["name"], dataset_split="validation",
                                  dataset_revision=data.get("eval_fingerprint"), names=metric_names(names)),
    )  # fmt: skip
    rows = [{"metric": title, "value": round(r[k], 4)} for k, (_, title) in METRICS.items() if k in r]
    decoder = {"unet": "U-Net", "fpn": "FPN", "lraspp": "LR-ASPP"}.get(m["model_type"], architecture) if kind == "timm" else architecture
    return render_card(
        "semantic_segmentation",
        card_data,
        model_name=name,
        summary=(
            f"{indefinite_article(decoder).capitalize()} {decoder} semantic segmenter for {len(names)} classes, trained with hfdl's `train_segmenter.py` on {ds['name']}: "
            f"**mean IoU {r.get('eval_mean_iou', float('nan')):.3f}**, pixel accuracy {r.get('eval_overall_accuracy', float('nan')):.3f} on {r['validation_images']} validation images."
        ),
        eval_images=r["validation_images"],
        image_size=run_image_size(rc),
        metrics_table=markdown_table(rows),
        per_class_table=markdown_table(_per_class_rows(r, names)),
        model_description=_model_description(m, kind, base, architecture),
        num_parameters=f"{r['num_parameters']:,}",
        label_list=", ".join(f"`{i}` {n}" for i, n in enumerate(names)),
        data_description=_data_description(ds, r, d),
        command=rc["command"],
        hyperparameters_table=markdown_table([{"hyperparameter": k, "value": v} for k, v in _hyperparameters(m, d, t, kind, rc, config).items()]),
        seed=t["seed"],
        hardware=hardware(env),
        train_time=f"{r['train_seconds']:.0f} s",
        steps=r["completed_steps"],
        throughput=f"{r['train_images_per_second']:.1f} images/s",
        versions_table=versions_table(env),
        how_to_use_intro=how_to_use_intro,
        how_to_use_code=how_to_use_code,
        limitations=[
            f"Trained at {d['image_size']} px (evaluated and used at {run_image_size(rc)} px) on {r['train_images']} images of one source: thin structures and objects of a few pixels at that size are lost, "
            "and images unlike the training data are segmented poorly; measure it on your own images first.",
            f"Metrics are computed at the model's input size ({run_image_size(rc)} x {run_image_size(rc)}, masks resized with nearest neighbour), not at each image's own size.",
            f"The weakest classes here by IoU: {_weakest(r)}; similar-looking classes are confused (see the confusion matrix).",
            "A CPU-sized baseline, not a tuned segmenter: larger backbones, longer training and higher resolutions do better.",
        ],
        provenance=provenance(rc.get("offline_assets", [])) + "\n\nThe segmenter's weights are released under apache-2.0.",
    )


def _data_description(ds: dict, r: dict, d: dict) -> str:
    text = f"{ds['about'].rstrip('.')}. Train: {r['train_images']} images; validation: {r['validation_images']} images."
    skipped = [f"{r[k]} {what} skipped" for k, what in (("unpaired_images", "images without a mask"), ("unpaired_masks", "masks without an image")) if r.get(k)]
    if skipped:
        text += f" {' and '.join(skipped)}."
    if d.get("reduce_labels"):
        text += " Labels reduced as in the transformers example: mask value 0 ignored (255), every other value v is class v - 1."
    return text + " Pixels labelled 255 count in neither the loss nor the metrics."


def plans(out: Path, hub_model_id: str | None, only: list[str] | None = None) -> dict[str, RepoPlan]:
    """One repo: the segmenter folder, label map, overlays, confusion matrix, results, run config and card."""
    r, rc = finished_run(out)
    kind = rc.get("segmenter_kind", "timm")
    if only and only != [kind]:
        raise HfdlError(f"{out} holds one segmenter ('{kind}'): drop --only")
    need = ("config.json", "model.safetensors", *(("preprocessor_config.json",) if kind == "transformers" else ()))
    files = model_repo_files(out, out, kind, need)
    repo_id = repo_ids(hub_model_id, {kind: out})[kind]
    msg = f"hfdl train_segmenter: mean IoU {r.get('eval_mean_iou', float('nan')):.4f}"
    return {
        kind: RepoPlan(
            repo_id, files, segmentation_card(out, repo_id), msg, f"Uploaded by hfdl from {out.name}: weights, config, label map, overlays, results, card."
        )
    }


register(TASK, plans)
