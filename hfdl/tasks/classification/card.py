"""The image-classification card (`model_cards/image_classification.md`) and the repos of a finetune run:
one repo per strategy, in timm's layout, every evaluation result in `model-index`."""

from __future__ import annotations

import json
from pathlib import Path

from hfdl.errors import HfdlError
from hfdl.hub.cards import dataset_ref, eval_results, hardware, markdown_table, provenance, render_card, schedule, versions_table
from hfdl.hub.registry import RepoPlan, finished_run, model_repo_files, pick, register, repo_ids, write_cards

TASK = "image-classification"
STRATEGY_DESCRIPTIONS = {
    "feature": "the pretrained backbone stays frozen (BatchNorm statistics untouched) and only a new {head} head is trained, "
    "on features computed once per image with the evaluation transform and cached.",
    "finetune": "the whole network (or its last stages, see `unfreeze`) is trained from the pretrained weights, the backbone at a lower learning rate.",
    "scratch": "the same architecture trained from random initialisation: the baseline that shows what pretraining buys.",
}
METRICS = {"eval_loss": ("loss", "Cross-entropy loss"), "eval_top5": ("top_5_accuracy", "Top-5 accuracy")}
METRIC_TITLES = {"eval_accuracy": "Accuracy", "eval_f1_macro": "Macro F1", "eval_top5": "Top-5 accuracy", "eval_loss": "Cross-entropy loss"}
VERSIONS = ("python", "torch", "torchvision", "timm", "transformers", "datasets", "accelerate")

__all__ = ["model_card", "plans", "repo_files", "write_cards"]


def _hyperparameters(strategy: str, model_args: dict, training_args: dict, data_args: dict, epochs) -> dict:
    if strategy == "feature":
        hp = {"head": model_args["head"], "head epochs": model_args["head_epochs"], "head learning rate": model_args["head_learning_rate"],
              "head weight decay": model_args["head_weight_decay"]}  # fmt: skip
    else:
        hp = {"epochs": epochs, "learning rate": training_args["learning_rate"], "weight decay": training_args["weight_decay"]}
        if strategy == "finetune":
            unfrozen = model_args["unfreeze"] if model_args["unfreeze"] is not None else "all"
            hp |= {"backbone lr scale": model_args["backbone_lr_scale"], "unfrozen stages": unfrozen}
    return hp | {
        "batch size (per device)": training_args["per_device_train_batch_size"],
        "gradient accumulation": training_args["gradient_accumulation_steps"],
        "optimizer": "AdamW (no weight decay on norms and biases)",
        "schedule": schedule(training_args),
        "max grad norm": training_args["max_grad_norm"],
        "mixed precision": training_args["mixed_precision"] or "no",
        "image size": data_args["image_size"],
    }


def _augmentation(strategy: str, d: dict) -> str:
    if strategy == "feature":
        return "none (features are cached from the deterministic evaluation transform)"
    aug = [f"horizontal flip p={d['hflip']}" if d["hflip"] else None, f"random-resized-crop scale [{d['scale_min']}, 1]" if d["scale_min"] < 1 else None,
           f"rotation ±{d['rotation']}°" if d["rotation"] else None, f"translation {d['translate']}" if d["translate"] else None,
           f"gaussian noise σ={d['gaussian_noise']}" if d["gaussian_noise"] else None, f"RandAugment `{d['auto_augment']}`" if d["auto_augment"] else None]  # fmt: skip
    return ", ".join(a for a in aug if a) or "none"


def _how_to_use(repo_id: str, head: str, local: bool) -> tuple[str, str]:
    """(intro, code): plain timm for a linear head, hfdl's loader for an MLP head; a Hub id or the local folder."""
    if head == "linear":
        source = f"local-dir:{repo_id}" if local else f"hf-hub:{repo_id}"
        intro = "The repository is in timm's layout, so timm alone loads it, label names included:"
        load = f'model = timm.create_model("{source}", pretrained=True).eval()\nlabels = model.pretrained_cfg["label_names"]'
        imports = "import timm\nimport torch\nfrom PIL import Image"
    else:
        intro = f"The classifier head is an MLP ({head}), which timm's `create_model` does not build; load it with hfdl:"
        folder = f'"{repo_id}"' if local else f'pull("{repo_id}")'
        load = f'model = load_classifier({folder}).eval()\nlabels = model.pretrained_cfg["label_names"]'
        imports = (
            "import timm\nimport torch\nfrom PIL import Image\n\n"
            + ("" if local else "from hfdl.hub import pull\n")
            + "from hfdl.tasks.classification.model import load_classifier"
        )
    code = (
        f"{imports}\n\n{load}\ntransform = timm.data.create_transform(**timm.data.resolve_model_data_config(model))\n\n"
        'image = Image.open("image.png").convert("RGB")\nwith torch.inference_mode():\n'
        "    probs = model(transform(image).unsqueeze(0)).softmax(-1)[0]\n"
        "for p, i in zip(*probs.topk(min(3, len(labels)))):\n"
        '    print(f"{labels[i]}: {p:.3f}")'
    )
    return intro, code


def _limitations(strategy: str, results: dict, config: dict, dataset: dict, image_size, env: dict) -> list[str]:
    out = [
        f"Evaluated on {results.get('eval_samples', '?')} images of one dataset ({dataset['name']}); expect lower accuracy on images "
        "that look different (other cameras, backgrounds, lighting, sizes). Measure it on your own data before relying on it.",
        f"It always answers with one of its {config['num_classes']} classes, even for an image of something else, "
        "and its softmax scores are not calibrated probabilities.",
        f"Inputs are resized to {image_size} px; small details that need a higher resolution are lost.",
        f"A baseline: {'the head trained for' if strategy == 'feature' else 'trained for'} {results.get('epochs', '?')} epochs on "
        f"{results.get('train_samples', '?')} images on {env.get('cpu_count', '?')} CPU cores{' and a GPU' if env.get('cuda') else ''}, not a tuned model.",
    ]
    if dataset["type"] == "zalando-datasets/fashion_mnist":
        out.append(
            "Fashion-MNIST images are 28x28 grayscale product shots on a black background, upscaled here: the model has not seen photos of worn clothing."
        )
    if strategy == "feature":
        out.append(f"The backbone is frozen: the model is only as good as {config['architecture']}'s ImageNet features are for this domain.")
    if strategy == "scratch":
        out.append("No pretraining: this model exists to show what pretraining buys; use a feature or finetune model instead.")
    return out


def _card_data(repo_id: str, strategy: str, results: dict, run_config: dict, dataset: dict, base: str | None, license_: str):
    from huggingface_hub import ModelCardData

    data = run_config["data"]
    return ModelCardData(
        model_name=Path(repo_id).name,
        library_name="timm",
        license=license_,
        base_model=base,
        datasets=[dataset["hub"]] if dataset["hub"] else None,
        tags=["image-classification", "timm", "hfdl", "transfer-learning", f"strategy-{strategy}"],
        pipeline_tag="image-classification",
        metrics=["accuracy", "f1"],
        eval_results=eval_results(
            results, task_type=TASK, dataset_type=dataset["type"], dataset_name=dataset["name"], dataset_split=data["eval_split"],
            dataset_revision=data["eval_fingerprint"], dataset_config=dataset.get("config"), names=METRICS,
        ),
    )  # fmt: skip


def _feature_note(results: dict) -> str | None:
    if "feature_extraction_seconds" not in results:
        return None
    cached = " (features read from the cache of an earlier run)" if results.get("feature_cache_hit") else ""
    return f"Feature extraction (frozen backbone over train and evaluation images, once): {results['feature_extraction_seconds']:.1f} s{cached}."


def model_card(out_dir: str | Path, strategy: str, repo_id: str, local: bool = False):
    """Render the image-classification card of one strategy of a finished run (`local`: `repo_id` is its folder)."""
    from hfdl.tasks.classification.report import comparison_table

    out = Path(out_dir)
    all_results, rc = finished_run(out)
    if strategy not in all_results:
        raise HfdlError(f"strategy '{strategy}' is not in {out}/all_results.json (it has {', '.join(all_results)}): pick one of those")
    r, data, env, d = all_results[strategy], rc["data"], rc["environment"], rc["data_args"]
    config = json.loads((out / strategy / "config.json").read_text())
    ds = dataset_ref(rc)
    base = rc.get("base_model") if strategy != "scratch" else None
    license_ = config.get("pretrained_cfg", {}).get("license") or "apache-2.0"
    head = config.get("hfdl_head", "linear")
    origin = (
        f"ImageNet-pretrained `{config['architecture']}` ([{base}](https://huggingface.co/{base}))"
        if base
        else f"`{config['architecture']}` (random initialisation)"
    )
    intro, code = _how_to_use(repo_id, head, local)
    pc = config.get("pretrained_cfg", {})
    return render_card(
        "image_classification",
        _card_data(repo_id, strategy, r, rc, ds, base, license_),
        model_name=Path(repo_id).name,
        summary=(
            f"An image classifier for {len(config['label_names'])} classes of {ds['title']}: {origin}, "
            f"trained with the **{strategy}** strategy. Accuracy {r['eval_accuracy']:.4f}, macro-F1 {r['eval_f1_macro']:.4f} "
            f"on {r.get('eval_samples', '?')} held-out `{data['eval_split']}` images."
        ),
        strategy=strategy,
        strategy_description=STRATEGY_DESCRIPTIONS[strategy].format(head=head),
        num_classes=config["num_classes"],
        label_list=", ".join(f"`{n}`" for n in config["label_names"]),
        eval_split=data["eval_split"],
        dataset_title=ds["title"],
        eval_samples=r.get("eval_samples", "?"),
        train_samples=r.get("train_samples", "?"),
        metrics_table=markdown_table([{"metric": title, "value": round(r[k], 4)} for k, title in METRIC_TITLES.items() if k in r]),
        comparison_table=comparison_table(all_results) if len(all_results) > 1 else None,
        comparison_png=(out / "comparison.png").is_file(),
        data_description=f"{ds['about']}.",
        feature_note=_feature_note(r),
        train_fingerprint=data["train_fingerprint"],
        eval_fingerprint=data["eval_fingerprint"],
        image_size=d["image_size"],
        preprocessing=f"{pc.get('interpolation', '?')} resize, crop_pct {pc.get('crop_pct', '?')}, mean {pc.get('mean')}, std {pc.get('std')}",
        augmentation=_augmentation(strategy, d),
        command=rc["command"],
        hyperparameters_table=markdown_table([{"hyperparameter": k, "value": v} for k, v in _hyperparameters(strategy, rc["model_args"], rc["training_args"], d, r.get("epochs")).items()]),
        seed=rc["training_args"]["seed"],
        hardware=hardware(env),
        wall_time=f"{r['wall_seconds']:.0f} s",
        throughput=f"{r['train_samples_per_second']:.1f} samples/s",
        trainable_params=f"{r['trainable_params']:,}",
        total_params=f"{r['total_params']:,}",
        versions_table=versions_table(env, VERSIONS),
        how_to_use_intro=intro,
        how_to_use_code=code,
        limitations=_limitations(strategy, r, config, ds, d["image_size"], env),
        provenance=provenance(rc.get("offline_assets", [])) + f"\n\nThis model's weights are released under the license of its base weights: `{license_}`.",
    )  # fmt: skip


def repo_files(out_dir: str | Path, strategy: str) -> dict[str, Path]:
    """What a strategy's repo holds: its timm folder (no checkpoints) plus the run's results and comparison."""
    out = Path(out_dir)
    return model_repo_files(out, out / strategy, strategy, ("config.json", "model.safetensors"))


def plans(out: Path, hub_model_id: str | None, only: list[str] | None = None) -> dict[str, RepoPlan]:
    """Image classification: one repo per strategy (`<id>-<strategy>` when several)."""
    all_results, _ = finished_run(out)
    strategies = pick(list(all_results), only, "strategy", out)
    ids = repo_ids(hub_model_id, {s: out / s for s in strategies})
    return {
        s: RepoPlan(
            ids[s],
            repo_files(out, s),
            model_card(out, s, ids[s], local=hub_model_id is None),
            f"hfdl finetune: {s} model, eval accuracy {all_results[s]['eval_accuracy']:.4f}",
            f"Uploaded by hfdl from {out.name}/{s}: timm weights + config, results, run config and model card.",
        )
        for s in strategies
    }


register(TASK, plans)
