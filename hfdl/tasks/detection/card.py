"""The object-detection card (`model_cards/object_detection.md`) and the one repo of a train_detector run:
the detector's `PyTorchModelHubMixin` folder, predictions, results, run config; mAP in `model-index`."""

from __future__ import annotations

import json
import os
from pathlib import Path

from hfdl.errors import HfdlError
from hfdl.hub.cards import eval_results, hardware, image_sizes, markdown_table, provenance, render_card, run_image_size, schedule, versions_table
from hfdl.hub.registry import RepoPlan, finished_run, model_repo_files, register, repo_ids, write_cards

TASK = "object-detection"
METRICS = {
    "eval_map": ("map", "mAP@[.50:.95]"),
    "eval_map_50": ("map_50", "mAP@.50"),
    "eval_map_75": ("map_75", "mAP@.75"),
    "eval_map_small": ("map_small", "mAP small"),
    "eval_map_medium": ("map_medium", "mAP medium"),
    "eval_map_large": ("map_large", "mAP large"),
    "eval_mar_1": ("mar_1", "mAR@1"),
    "eval_mar_10": ("mar_10", "mAR@10"),
    "eval_mar_100": ("mar_100", "mAR@100"),
    "eval_loss": ("loss", "Detection loss (objectness + box + class)"),
}
HEAD_DESCRIPTIONS = {
    "shared": "one head shared by the three grids",
    "decoupled": "a decoupled head (as YOLOX: objectness and box from one branch, the classes from a deeper branch of their own) shared by the three grids",
}
__all__ = ["detection_card", "plans", "write_cards"]


def _dataset(run_config: dict) -> dict:
    d, data = run_config["data_args"], run_config["data"]
    if d.get("embedded_default"):
        return {"type": "hfdl-offline/composites", "name": "composites", "hub": None, "about": data["source"]}
    name = d.get("dataset_name")
    if name and not os.path.exists(name):
        return {"type": name, "name": name, "hub": name, "about": f"The Hub dataset [{name}](https://huggingface.co/datasets/{name})."}
    return {"type": "local", "name": Path(name or d.get("train_dir") or d.get("train_images") or "images").name, "hub": None, "about": data["source"]}


def _how_to_use(repo_id: str, kind: str) -> tuple[str, str]:
    """(the sentence before the snippet, the snippet): hfdl's loader for the yolo type, plain transformers otherwise."""
    if kind == "transformers":
        return "Plain transformers loads it (`AutoModelForObjectDetection` with its image processor):", (
            "import torch\n"
            "from PIL import Image\n"
            "from transformers import AutoImageProcessor, AutoModelForObjectDetection\n\n"
            f'processor = AutoImageProcessor.from_pretrained("{repo_id}")\n'
            f'model = AutoModelForObjectDetection.from_pretrained("{repo_id}").eval()\n'
            'image = Image.open("image.jpg").convert("RGB")\n'
            "with torch.no_grad():\n"
            '    outputs = model(**processor(images=image, return_tensors="pt"))\n'
            "(found,) = processor.post_process_object_detection(outputs, threshold=0.3, target_sizes=[image.size[::-1]])\n"
            'for box, score, label in zip(found["boxes"].tolist(), found["scores"].tolist(), found["labels"].tolist()):\n'
            "    print(model.config.id2label[label], round(score, 3), [round(v) for v in box])  # xyxy in the image's pixels"
        )
    return "The detector is a `PyTorchModelHubMixin` module of hfdl (`pip install` hfdl from its repository), loaded strictly:", (
        "import torch\n"
        "from hfdl.core.images import image_to_tensor\n"
        "from hfdl.tasks.detection.model import YoloDetector\n\n"
        f'model = YoloDetector.from_pretrained("{repo_id}")\n'
        'x = torch.nn.functional.interpolate(image_to_tensor("image.jpg"), size=(model.image_size,) * 2, mode="bilinear")\n'
        "(found,) = model.detect(model.normalize(x), score_threshold=0.3)\n"
        'for box, score, label in zip(found["boxes"].tolist(), found["scores"].tolist(), found["labels"].tolist()):\n'
        "    print(model.label_names[label], round(score, 3), [round(v) for v in box])  # xyxy in the resized image"
    )


def _model_description(m: dict, kind: str, base: str | None, architecture: str) -> str:
    origin = f"[{base}](https://huggingface.co/{base})" if base else ("a local checkpoint" if m["pretrained"] else "random initialisation")
    if kind == "transformers":
        return (
            f"A transformers `{architecture}` detector (`AutoModelForObjectDetection`), started from {origin} with a new class head for "
            "these classes (`ignore_mismatched_sizes`, as the transformers object-detection example), trained with its own set-prediction "
            "loss (Hungarian matching: class cross-entropy, L1 and GIoU box losses)."
        )
    return (
        f"A one-stage, YOLO-style detector: the `{m['model_name_or_path']}` backbone ({'ImageNet-pretrained, ' + origin if base else origin}) "
        f"as a timm `features_only` network, a light top-down neck over its stride-8, -16 and -32 maps, and {HEAD_DESCRIPTIONS[m.get('head', 'shared')]} "
        "that gives every grid cell an objectness score, a box (centre offset and size) and class scores. Trained with objectness BCE, "
        f"a {m['box_loss'].upper()} box loss and class cross-entropy."
    )


def _hyperparameters(m: dict, d: dict, t: dict, kind: str, rc: dict) -> dict:
    model = (
        {"checkpoint": m["model_name_or_path"], "pretrained": m["pretrained"]}
        if kind == "transformers"
        else {
            "backbone": m["model_name_or_path"],
            "pretrained backbone": m["pretrained"],
            "neck channels": m["neck_channels"],
            "head": m.get("head", "shared"),
            "box loss": m["box_loss"],
            **({"frozen backbone": f"stem and stages up to stride {m['freeze_until_stride']}"} if m.get("freeze_until_stride") else {}),
        }
    )
    return {
        **model, "image size": image_sizes(rc), "batch size (per device)": t["per_device_train_batch_size"],
        "learning rate": t["learning_rate"], "weight decay": t["weight_decay"], "optimizer": "AdamW",
        "schedule": schedule(t), "max grad norm": t["max_grad_norm"],
        "augmentation": f"flip p={d['hflip']}, scale/crop p={d['crop']}, colour jitter {d['color_jitter']}" + (f", hue {d['hue']}" if d.get("hue") else ""),
    }  # fmt: skip


def detection_card(out: Path, repo_id: str):
    """Render the card of a finished detection run (`repo_id`: a Hub id, or the folder itself)."""
    from huggingface_hub import ModelCardData

    r, rc = finished_run(out)
    m, d, t, env, data = rc["model_args"], rc["data_args"], rc["training_args"], rc["environment"], rc["data"]
    ds = _dataset(rc)
    base = rc.get("base_model")
    name = Path(repo_id).name
    kind = rc.get("detector_kind", "yolo")
    config = json.loads((out / "config.json").read_text(encoding="utf-8"))
    architecture = (config.get("architectures") or [config.get("model_type", "")])[0] if kind == "transformers" else "YoloDetector"
    how_to_use_intro, how_to_use_code = _how_to_use(repo_id, kind)
    tags = (
        ["object-detection", "hfdl", "transformers", config.get("model_type", "")]
        if kind == "transformers"
        else ["object-detection", "yolo", "hfdl", "timm", "pytorch_model_hub_mixin", "model_hub_mixin"]
    )
    card_data = ModelCardData(
        model_name=name, library_name="transformers" if kind == "transformers" else "pytorch", license="apache-2.0", base_model=base,
        datasets=[ds["hub"]] if ds["hub"] else None, tags=tags, pipeline_tag="object-detection",
        eval_results=eval_results(r, task_type=TASK, dataset_type=ds["type"], dataset_name=ds["name"], dataset_split="validation",
                                  dataset_revision=data.get("eval_fingerprint"), names=METRICS),
    )  # fmt: skip
    rows = [{"metric": title, "value": round(r[k], 4)} for k, (_, title) in METRICS.items() if k in r]
    per_class = [{"class": c, "AP": ap} for c, ap in r.get("per_class_ap", {}).items()]
    return render_card(
        "object_detection",
        card_data,
        model_name=name,
        summary=(
            f"A {'YOLO-style' if kind == 'yolo' else architecture} object detector for {len(data['label_names'])} classes, trained with hfdl's `train_detector.py` on {ds['name']}: "
            f"**mAP@.50 {r.get('eval_map_50', float('nan')):.3f}**, mAP@[.50:.95] {r.get('eval_map', float('nan')):.3f} on {r['validation_images']} validation images."
        ),
        eval_images=r["validation_images"],
        score_threshold=m["score_threshold"],
        iou_threshold=m["iou_threshold"],
        metrics_table=markdown_table(rows),
        per_class_table=markdown_table(per_class) or "(no class had an evaluation object)",
        model_description=_model_description(m, kind, base, architecture),
        num_parameters=f"{r['num_parameters']:,}",
        label_list=", ".join(f"`{n}`" for n in data["label_names"]),
        data_description=f"{ds['about']} Train: {r['train_images']} images; {r['clipped_boxes']} boxes clipped to their image and {r['dropped_boxes']} degenerate boxes dropped.",
        command=rc["command"],
        hyperparameters_table=markdown_table([{"hyperparameter": k, "value": v} for k, v in _hyperparameters(m, d, t, kind, rc).items()]),
        seed=t["seed"],
        hardware=hardware(env),
        train_time=f"{r['train_seconds']:.0f} s",
        steps=r["completed_steps"],
        throughput=f"{r['train_images_per_second']:.1f} images/s",
        versions_table=versions_table(env),
        how_to_use_intro=how_to_use_intro,
        how_to_use_code=how_to_use_code,
        limitations=[
            f"Trained at {d['image_size']} px (evaluated and used at {run_image_size(rc)} px) on {r['train_images']} images of one source: objects much smaller than "
            f"{'a few grid cells (8 px)' if kind == 'yolo' else 'the backbone stride'} or unlike the training data are missed; measure it on your own images first.",
            ("Scores are objectness x class probability" if kind == "yolo" else "Scores are class probabilities of set predictions")
            + ", not calibrated probabilities; choose the threshold on your data.",
            "A CPU-sized baseline, not a tuned detector: larger backbones, longer training and higher resolutions do better.",
        ],
        provenance=provenance(rc.get("offline_assets", [])) + "\n\nThe detector's weights are released under apache-2.0.",
    )


def plans(out: Path, hub_model_id: str | None, only: list[str] | None = None) -> dict[str, RepoPlan]:
    """One repo: the detector folder, predictions, results, run config and card."""
    r, rc = finished_run(out)
    kind = rc.get("detector_kind", "yolo")
    if only and only != [kind]:
        raise HfdlError(f"{out} holds one detector ('{kind}'): drop --only")
    need = ("config.json", "model.safetensors", *(("preprocessor_config.json",) if kind == "transformers" else ()))
    files = model_repo_files(out, out, kind, need)
    repo_id = repo_ids(hub_model_id, {kind: out})[kind]
    msg = f"hfdl train_detector: mAP@.50 {r.get('eval_map_50', float('nan')):.4f}"
    return {
        kind: RepoPlan(repo_id, files, detection_card(out, repo_id), msg, f"Uploaded by hfdl from {out.name}: weights, config, predictions, results, card.")
    }


register(TASK, plans)
