"""Publishing finished runs: per task, which files form the Hub repo and how its card is filled.

Adding a task = a Jinja template in `model_cards/` plus a `<task>_repo(out_dir, repo_id) -> (files, card)`
function here; `hfdl.hub` stages, pushes and maps errors. `push_run` picks the task from `run_config.json`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from hfdl import assets
from hfdl.errors import HfdlError

# --------------------------------------------------------------------------------------------------
# Publishing: one Hub repo per strategy, timm layout, a card with every result in model-index
# --------------------------------------------------------------------------------------------------

STRATEGY_DESCRIPTIONS = {
    "feature": "the pretrained backbone stays frozen (BatchNorm statistics untouched) and only a new {head} head is trained, "
    "on features computed once per image with the evaluation transform and cached.",
    "finetune": "the whole network (or its last stages, see `unfreeze`) is trained from the pretrained weights, the backbone at a lower learning rate.",
    "scratch": "the same architecture trained from random initialisation: the baseline that shows what pretraining buys.",
}


CLASSIFIER_METRICS = {"eval_loss": ("loss", "Cross-entropy loss")}


def _finished(out: Path) -> tuple[dict, dict]:
    res, cfg = out / "all_results.json", out / "run_config.json"
    if not res.is_file() or not cfg.is_file():
        raise HfdlError(f"{out} is not a finished hfdl run (no all_results.json / run_config.json): finish training first, or pass the run's --output_dir")
    return json.loads(res.read_text()), json.loads(cfg.read_text())


def _dataset_ref(run_config: dict) -> dict:
    d = run_config["data_args"]
    name = d.get("dataset_name")
    if name in assets.DATASETS:
        a = assets.DATASETS[name]
        short = a.description.split(":")[0]
        link = f"[{a.hub_equivalent}](https://huggingface.co/datasets/{a.hub_equivalent})"
        return {"type": a.hub_equivalent, "name": short, "title": f"{short} ({link})", "about": f"{a.description}; read offline from {a.source}", "hub": a.hub_equivalent}  # fmt: skip
    if name and not os.path.exists(name):
        link = f"[{name}](https://huggingface.co/datasets/{name})"
        return {"type": name, "name": name, "title": f"the Hub dataset {link}", "about": f"the Hub dataset {link}", "hub": name, "config": d.get("dataset_config_name")}  # fmt: skip
    folder = Path(name or d.get("train_dir") or "images").name
    return {"type": "imagefolder", "name": folder, "title": f"a local image folder `{folder}`", "about": f"a local image folder `{folder}`", "hub": None}


def model_card(out_dir: str | Path, strategy: str, repo_id: str):
    """Render the image-classification card of one strategy of a finished run."""
    from huggingface_hub import ModelCardData

    from hfdl import hub

    out = Path(out_dir)
    all_results, rc = _finished(out)
    if strategy not in all_results:
        raise HfdlError(f"strategy '{strategy}' is not in {out}/all_results.json (it has {', '.join(all_results)}): pick one of those")
    r = all_results[strategy]
    m, d, t, data, env = rc["model_args"], rc["data_args"], rc["training_args"], rc["data"], rc["environment"]
    config = json.loads((out / strategy / "config.json").read_text())
    ds = _dataset_ref(rc)
    arch = config["architecture"]
    base = rc.get("base_model") if strategy != "scratch" else None
    license_ = config.get("pretrained_cfg", {}).get("license") or "apache-2.0"
    results = hub.eval_results(
        r, task_type="image-classification", dataset_type=ds["type"], dataset_name=ds["name"],
        dataset_split=data["eval_split"], dataset_revision=data["eval_fingerprint"], dataset_config=ds.get("config"), names=CLASSIFIER_METRICS,
    )  # fmt: skip
    card_data = ModelCardData(
        model_name=repo_id.split("/")[-1],
        library_name="timm",
        license=license_,
        base_model=base,
        datasets=[ds["hub"]] if ds["hub"] else None,
        tags=["image-classification", "timm", "hfdl", "transfer-learning", f"strategy-{strategy}"],
        pipeline_tag="image-classification",
        metrics=["accuracy", "f1"],
        eval_results=results,
    )
    head = config.get("hfdl_head", "linear")
    origin = f"ImageNet-pretrained `{arch}` ([{base}](https://huggingface.co/{base}))" if base else f"`{arch}` (random initialisation)"
    summary = (
        f"An image classifier for {len(config['label_names'])} classes of {ds['title']}: {origin}, "
        f"trained with the **{strategy}** strategy. Accuracy {r['eval_accuracy']:.4f}, macro-F1 {r['eval_f1_macro']:.4f} "
        f"on {r.get('eval_samples', '?')} held-out `{data['eval_split']}` images."
    )
    metric_rows = [
        {"metric": {**hub.METRIC_NAMES, **CLASSIFIER_METRICS}[k][1], "value": round(r[k], 4)}
        for k in ("eval_accuracy", "eval_f1_macro", "eval_top5", "eval_loss")
        if k in r
    ]
    cmp_md = None
    if len(all_results) > 1:
        from hfdl.report import comparison_table

        cmp_md = comparison_table(all_results)
    if strategy == "feature":
        hp = {"head": head, "head epochs": m["head_epochs"], "head learning rate": m["head_learning_rate"], "head weight decay": m["head_weight_decay"]}
    else:
        hp = {"epochs": t["num_train_epochs"], "learning rate": t["learning_rate"], "weight decay": t["weight_decay"]}
        if strategy == "finetune":
            hp |= {"backbone lr scale": m["backbone_lr_scale"], "unfrozen stages": m["unfreeze"] if m["unfreeze"] is not None else "all"}
    hp |= {
        "batch size (per device)": t["per_device_train_batch_size"],
        "gradient accumulation": t["gradient_accumulation_steps"],
        "optimizer": "AdamW (no weight decay on norms and biases)",
        "schedule": f"{t['lr_scheduler_type']}, warmup ratio {t['warmup_ratio']}",
        "max grad norm": t["max_grad_norm"],
        "mixed precision": t["mixed_precision"] or "no",
        "image size": d["image_size"],
    }
    aug = [f"horizontal flip p={d['hflip']}" if d["hflip"] else None, f"random-resized-crop scale [{d['scale_min']}, 1]" if d["scale_min"] < 1 else None,
           f"rotation ±{d['rotation']}°" if d["rotation"] else None, f"translation {d['translate']}" if d["translate"] else None,
           f"gaussian noise σ={d['gaussian_noise']}" if d["gaussian_noise"] else None, f"RandAugment `{d['auto_augment']}`" if d["auto_augment"] else None]  # fmt: skip
    aug_text = ", ".join(a for a in aug if a) or "none"
    if strategy == "feature":
        aug_text = "none (features are cached from the deterministic evaluation transform)"
    pc = config.get("pretrained_cfg", {})
    if head == "linear":
        intro = "The repository is in timm's layout, so timm alone loads it, label names included:"
        load = f'model = timm.create_model("hf-hub:{repo_id}", pretrained=True).eval()\nlabels = model.pretrained_cfg["label_names"]'
        imports = "import timm\nimport torch\nfrom PIL import Image"
    else:
        intro = f"The classifier head is an MLP ({head}), which timm's `create_model` does not build; load it with hfdl:"
        load = f'model = load_classifier(pull("{repo_id}")).eval()\nlabels = model.pretrained_cfg["label_names"]'
        imports = "import timm\nimport torch\nfrom PIL import Image\n\nfrom hfdl.hub import pull\nfrom hfdl.models.classifier import load_classifier"
    code = (
        f"{imports}\n\n{load}\ntransform = timm.data.create_transform(**timm.data.resolve_model_data_config(model))\n\n"
        'image = Image.open("image.png").convert("RGB")\nwith torch.inference_mode():\n'
        "    probs = model(transform(image).unsqueeze(0)).softmax(-1)[0]\n"
        "for p, i in zip(*probs.topk(min(3, len(labels)))):\n"
        '    print(f"{labels[i]}: {p:.3f}")'
    )
    limitations = [
        f"Evaluated on {r.get('eval_samples', '?')} images of one dataset ({ds['name']}); expect lower accuracy on images "
        "that look different (other cameras, backgrounds, lighting, sizes). Measure it on your own data before relying on it.",
        f"It always answers with one of its {config['num_classes']} classes, even for an image of something else, "
        "and its softmax scores are not calibrated probabilities.",
        f"Inputs are resized to {d['image_size']} px; small details that need a higher resolution are lost.",
        f"A baseline: {'the head trained for' if strategy == 'feature' else 'trained for'} {r.get('epochs', '?')} epochs on "
        f"{r.get('train_samples', '?')} images on {env.get('cpu_count', '?')} CPU cores{' and a GPU' if env.get('cuda') else ''}, not a tuned model.",
    ]
    if ds["type"] == "zalando-datasets/fashion_mnist":
        limitations.append(
            "Fashion-MNIST images are 28x28 grayscale product shots on a black background, upscaled here: the model has not seen photos of worn clothing."
        )
    if strategy == "feature":
        limitations.append(f"The backbone is frozen: the model is only as good as {arch}'s ImageNet features are for this domain.")
    if strategy == "scratch":
        limitations.append("No pretraining: this model exists to show what pretraining buys; use a feature or finetune model instead.")
    prov_rows = [{"asset": a["name"], "from": a.get("package") or a.get("source"), "origin": a.get("origin") or a.get("description"),
                  "license": a["license"], "Hub equivalent": a.get("hub_equivalent")} for a in rc.get("offline_assets", [])]  # fmt: skip
    provenance = (
        "Offline assets used by this run (hfdl reads package-shipped files when there is no internet):\n\n" + hub.markdown_table(prov_rows)
        if prov_rows
        else "No offline assets: weights and data came from the Hugging Face Hub or local files as named above."
    )
    provenance += f"\n\nThis model's weights are released under the license of its base weights: `{license_}`."
    versions = {k: v for k, v in env.items() if k in ("python", "torch", "torchvision", "timm", "transformers", "datasets", "accelerate")}
    card = hub.render_card(
        "image_classification",
        card_data,
        model_name=repo_id.split("/")[-1],
        summary=summary,
        strategy=strategy,
        strategy_description=STRATEGY_DESCRIPTIONS[strategy].format(head=head),
        num_classes=config["num_classes"],
        label_list=", ".join(f"`{n}`" for n in config["label_names"]),
        eval_split=data["eval_split"],
        dataset_title=ds["title"],
        eval_samples=r.get("eval_samples", "?"),
        train_samples=r.get("train_samples", "?"),
        metrics_table=hub.markdown_table(metric_rows),
        comparison_table=cmp_md,
        comparison_png=(out / "comparison.png").is_file(),
        data_description=f"{ds['about']}.",
        feature_note=(
            f"Feature extraction (frozen backbone over train and evaluation images, once): {r['feature_extraction_seconds']:.1f} s"
            + (" (features read from the cache of an earlier run)" if r.get("feature_cache_hit") else "")
            + "."
            if "feature_extraction_seconds" in r
            else None
        ),
        train_fingerprint=data["train_fingerprint"],
        eval_fingerprint=data["eval_fingerprint"],
        image_size=d["image_size"],
        preprocessing=f"{pc.get('interpolation', '?')} resize, crop_pct {pc.get('crop_pct', '?')}, mean {pc.get('mean')}, std {pc.get('std')}",
        augmentation=aug_text,
        command=rc["command"],
        hyperparameters_table=hub.markdown_table([{"hyperparameter": k, "value": v} for k, v in hp.items()]),
        seed=t["seed"],
        hardware=_hardware(env),
        wall_time=f"{r['wall_seconds']:.0f} s",
        throughput=f"{r['train_samples_per_second']:.1f} samples/s",
        trainable_params=f"{r['trainable_params']:,}",
        total_params=f"{r['total_params']:,}",
        versions_table=hub.markdown_table([{"library": k, "version": v} for k, v in versions.items()]),
        how_to_use_intro=intro,
        how_to_use_code=code,
        limitations=limitations,
        provenance=provenance,
    )
    return card


def _hardware(env: dict) -> str:
    dev = f"GPU {env['cuda']}" if env.get("cuda") else f"CPU only, {env.get('torch_threads', '?')} torch threads"
    return f"{env.get('cpu_count', '?')} CPU cores, {dev} ({env.get('platform', '?')})"


def repo_files(out_dir: str | Path, strategy: str) -> dict[str, Path]:
    """What a strategy's repo holds: its timm folder (no checkpoints) plus the run's results and comparison."""
    out = Path(out_dir)
    return _model_repo_files(out, out / strategy, strategy, ("config.json", "model.safetensors"))


def _model_repo_files(out: Path, folder: Path, name: str, need: tuple[str, ...]) -> dict[str, Path]:
    """One model's folder plus the run-level results and comparison; refuses a folder missing `need`."""
    files = _folder_files(folder)
    for run_file in ("all_results.json", "run_config.json", "comparison.md", "comparison.json", "comparison.png"):
        if (out / run_file).is_file():
            files.setdefault(run_file, out / run_file)
    for required in need:
        if required not in files:
            raise HfdlError(f"{folder} has no {required}: the '{name}' run did not finish; finish it with --resume_from_checkpoint latest")
    return files


@dataclass
class RepoPlan:
    """One Hub repo of a finished run: its id, its files (repo path -> local file), card and commit message."""

    repo_id: str
    files: dict[str, Path]
    card: object
    commit_message: str
    commit_description: str


def _pick(available: list[str], only: list[str] | None, what: str, out: Path) -> list[str]:
    chosen = only or available
    unknown = [s for s in chosen if s not in available]
    if unknown:
        raise HfdlError(f"{what} {unknown} is not in {out}/all_results.json (it has {', '.join(available)}): pick from those")
    return chosen


def classifier_plans(out: Path, hub_model_id: str, only: list[str] | None = None) -> dict[str, RepoPlan]:
    """Image classification: one repo per strategy (`<id>-<strategy>` when several)."""
    from hfdl import hub

    all_results, _ = _finished(out)
    strategies = _pick(list(all_results), only, "strategy", out)
    ids = hub.strategy_repo_ids(hub_model_id, strategies)
    return {
        s: RepoPlan(
            ids[s],
            repo_files(out, s),
            model_card(out, s, ids[s]),
            f"hfdl finetune: {s} model, eval accuracy {all_results[s]['eval_accuracy']:.4f}",
            f"Uploaded by hfdl from {out.name}/{s}: timm weights + config, results, run config and model card.",
        )  # fmt: skip
        for s in strategies
    }


# task (run_config.json "task") -> plans(out_dir, hub_model_id, only) -> {name: RepoPlan}
TASKS = {"image-classification": classifier_plans}


def plans(out_dir: str | Path, hub_model_id: str, only: list[str] | None = None) -> dict[str, RepoPlan]:
    """Every repo a finished run publishes, cards rendered (so a bad card fails before any upload)."""
    from hfdl import hub

    out = Path(out_dir)
    hub.check_repo_id(hub_model_id)
    _, rc = _finished(out)
    task = rc.get("task") or ("style-transfer" if "style_args" in rc else "char-lm" if "sampling_args" in rc else "image-classification")
    if task not in TASKS:
        raise HfdlError(f"{out} is a '{task}' run, which hfdl cannot publish yet (known: {', '.join(TASKS)})")
    return TASKS[task](out, hub_model_id, only)


def check_before_training(hargs) -> None:
    """With --push_to_hub, fail on a missing token before any training (the repo id was checked at parse time)."""
    if hargs is not None and hargs.push_to_hub:
        from hfdl import hub

        hub.require_token()


def push_after_training(hargs, out_dir: str | Path, only: list[str] | None = None) -> dict[str, str]:
    """With --push_to_hub, publish the finished run from the main process and print each commit URL."""
    if hargs is None or not hargs.push_to_hub:
        return {}
    from accelerate import PartialState

    state = PartialState()
    urls = {}
    if state.is_main_process:
        urls = push_run(out_dir, hargs.hub_model_id, only, private=hargs.hub_private, revision=hargs.hub_revision)
        for name, url in urls.items():
            print(f"pushed {name}: {url}")
    state.wait_for_everyone()
    return urls


def push_run(out_dir: str | Path, hub_model_id: str, only: list[str] | None = None, private: bool = False, revision: str | None = None) -> dict[str, str]:
    """Publish a finished run of any task; returns {name: commit URL}. Nothing is uploaded unless every
    repo's files and card are ready."""
    from hfdl import hub

    ready = plans(out_dir, hub_model_id, only)
    hub.require_token()
    urls = {}
    for name, plan in ready.items():
        flag = f" --only {name}" if len(ready) > 1 else ""
        urls[name] = hub.push_files(
            plan.files, plan.card, plan.repo_id,
            commit_message=plan.commit_message, commit_description=plan.commit_description, private=private, revision=revision,
            retry=f"python scripts/push_to_hub.py {out_dir} --hub_model_id {hub_model_id}{flag}",
        )  # fmt: skip
    return urls


# --------------------------------------------------------------------------------------------------
# Fast style transfer (train_style.py): one repo, PyTorchModelHubMixin layout + style image + sample
# --------------------------------------------------------------------------------------------------


def style_plans(out: Path, hub_model_id: str, only: list[str] | None = None) -> dict[str, RepoPlan]:
    from huggingface_hub import ModelCardData

    from hfdl import hub

    r, rc = _finished(out)
    sa, t, env = rc["style_args"], rc["training_args"], rc["environment"]
    files = _folder_files(out)
    style_file = r.get("style_image") or "style.png"
    for need in ("config.json", "model.safetensors", style_file, "sample.png"):
        if need not in files:
            raise HfdlError(f"{out} has no {need}: the style run did not finish; train it again with train_style.py")
    content = rc.get("content_source") or r.get("content_source", "content images")
    offline = [a for a in rc.get("offline_assets", []) if a]
    hub_content = sa.get("dataset_name") if sa.get("dataset_name") and sa["dataset_name"] != "photos" and not os.path.exists(sa["dataset_name"]) else None
    losses = ("loss", "content_loss", "style_loss", "tv_loss")
    rows = [{"loss": k.replace("_", " "), "untrained": r.get(f"initial_eval_{k}"), "trained": r.get(f"eval_{k}")} for k in losses if f"eval_{k}" in r]
    name = hub_model_id.split("/")[-1]
    card_data = ModelCardData(
        model_name=name,
        library_name="pytorch",
        license="apache-2.0",
        datasets=[hub_content] if hub_content else None,
        tags=["style-transfer", "image-to-image", "hfdl", "pytorch_model_hub_mixin", "model_hub_mixin", "fast-neural-style"],
        pipeline_tag="image-to-image",
        eval_results=hub.eval_results(
            r,
            task_type="image-to-image",
            dataset_type=hub_content or "content-crops",
            dataset_name=content,
            dataset_split="train (center crops)",
            names={"eval_loss": ("loss", "Perceptual loss (weighted sum)")},
        ),
    )
    code = (
        "from hfdl.models.style import TransformerNet, image_to_tensor, open_image, tensor_to_image\n\n"
        f'net = TransformerNet.from_pretrained("{hub_model_id}").eval()\n'
        'photo = image_to_tensor(open_image("photo.jpg"), 512)  # (1, 3, H, W) in [0, 1], longer side 512 px\n'
        'tensor_to_image(net.stylize(photo, strength=1.0, preserve_colour=False)).save("stylised.png")'
    )
    hp = {
        "image size (training crops)": sa["image_size"], "style image size": sa.get("style_size") or sa["image_size"],
        "crops per epoch": sa["samples_per_epoch"], "steps": r["steps"], "batch size": t["per_device_train_batch_size"],
        "learning rate": t["learning_rate"], "optimizer": "AdamW", "schedule": f"{t['lr_scheduler_type']}, warmup ratio {t['warmup_ratio']}",
        "max grad norm": t["max_grad_norm"], "base channels": sa["base_channels"], "residual blocks": sa["num_residual_blocks"],
    }  # fmt: skip
    provenance = _provenance(offline) + (
        f"\n\nThe style image (`{style_file}`) is the one the user trained with; its rights stay with its author. "
        "The network weights are released under apache-2.0."
    )
    card = hub.render_card(
        "style_transfer",
        card_data,
        model_name=name,
        summary=(
            f"A fast neural style transfer network (Johnson et al., 2016) for one style, shown below: one forward pass "
            f"stylises a photo of any size. Trained with hfdl's `train_style.py` for {r['steps']} steps on {content}."
        ),
        style_file=style_file,
        feature_net=r.get("feature_net", sa["feature_net"]),
        eval_description="fixed centre crops of the content images",
        loss_table=hub.markdown_table(rows),
        content_weight=r["content_weight"],
        style_weight=r["style_weight"],
        tv_weight=r["tv_weight"],
        content_layer=r["content_layer"],
        style_layers=", ".join(f"`{x}`" for x in r["style_layers"]),
        data_description=f"Content: {content}, as random {sa['image_size']} px crops with horizontal flips. Style: `{style_file}`.",
        command=rc["command"],
        hyperparameters_table=hub.markdown_table([{"hyperparameter": k, "value": v} for k, v in hp.items()]),
        seed=rc.get("seed", t["seed"]),
        hardware=_hardware(env),
        train_time=f"{r['train_seconds']:.0f} s",
        steps=r["steps"],
        throughput=f"{r['train_images_per_second']:.2f} crops/s",
        sample_time=f"{r.get('sample_seconds', 0):.2f} s",
        num_parameters=f"{r['num_parameters']:,}",
        num_residual_blocks=sa["num_residual_blocks"],
        versions_table=_versions(env),
        how_to_use_code=code,
        limitations=[
            f"One style per network, learned from {r['steps']} steps at {sa['image_size']} px: textures are coarser than Gatys optimisation, "
            "and much larger inputs show the style at a smaller scale than during training.",
            f"Trained on {content}; photos far from those (night scenes, line art, faces in close-up) stylise less evenly.",
            "Instance normalisation makes the output depend on the whole image: tiles of a large image stylised separately will not match at the seams.",
        ],
        provenance=provenance,
    )
    msg = f"hfdl train_style: style network, {r['steps']} steps, final loss {r.get('eval_loss', float('nan')):.4g}"
    return {
        "style": RepoPlan(hub_model_id, files, card, msg, f"Uploaded by hfdl from {out.name}: weights, config, style image, sample, results, run config, card.")
    }


def _folder_files(folder: Path) -> dict[str, Path]:
    """A model folder's top-level files (checkpoint folders, partial writes and an old card left out)."""
    return {p.name: p for p in sorted(folder.iterdir()) if p.is_file() and not p.name.endswith(".tmp") and p.name != "README.md"}


def _provenance(offline: list[dict]) -> str:
    if not offline:
        return "No offline assets: weights and data came from the Hugging Face Hub or local files as named above."
    rows = [
        {"asset": a.get("name"), "from": a.get("package") or a.get("source") or ", ".join(a.get("debian_packages", [])),
         "origin": a.get("origin") or a.get("description"), "license": a.get("license")}
        for a in offline
    ]  # fmt: skip
    return "Offline assets used by this run (hfdl reads package-shipped files when there is no internet):\n\n" + _table(rows)


def _table(rows):
    from hfdl import hub

    return hub.markdown_table(rows)


def _versions(env: dict) -> str:
    keep = ("python", "torch", "torchvision", "timm", "transformers", "tokenizers", "datasets", "accelerate", "huggingface_hub")
    return _table([{"library": k, "version": v} for k, v in env.items() if k in keep])


TASKS["style-transfer"] = style_plans


# --------------------------------------------------------------------------------------------------
# Character-level RNN / LSTM / GRU (train_char_lm.py): transformers layout with the model code + tokenizer
# --------------------------------------------------------------------------------------------------

CHAR_LM_METRICS = {"eval_loss": ("loss", "Cross-entropy (nats/char)"), "best_eval_bpc": ("best_bits_per_character", "Best bits per character")}


def char_lm_plans(out: Path, hub_model_id: str, only: list[str] | None = None) -> dict[str, RepoPlan]:
    """One repo per cell type (`<id>-<type>` under --compare), each a transformers folder."""
    from hfdl import hub

    all_results, rc = _finished(out)
    compared = bool(rc["model_args"].get("compare"))
    per_type = all_results if compared else {all_results["model_type"]: all_results}
    types = _pick(list(per_type), only, "cell type", out)
    ids = hub.strategy_repo_ids(hub_model_id, types)
    result = {}
    for t in types:
        folder = out / t if compared else out
        files = _model_repo_files(out, folder, t, ("config.json", "model.safetensors", "tokenizer.json"))
        r = per_type[t]
        msg = f"hfdl train_char_lm: {t}, validation {r['eval_bpc']:.4f} bits/char"
        result[t] = RepoPlan(
            ids[t],
            files,
            char_lm_card(out, folder, t, r, rc, ids[t]),
            msg,
            f"Uploaded by hfdl from {out.name}: weights, model code, tokenizer, samples, results, card.",
        )
    return result


def char_lm_card(out: Path, folder: Path, cell: str, r: dict, rc: dict, repo_id: str):
    from huggingface_hub import ModelCardData

    from hfdl import hub

    m, d, s, t, env, data = rc["model_args"], rc["data_args"], rc["sampling_args"], rc["training_args"], rc["environment"], rc["data"]
    cfg = json.loads((folder / "config.json").read_text())
    offline = rc.get("offline_assets", [])
    if d.get("corpus"):
        from hfdl.assets import CORPORA

        a = CORPORA[d["corpus"]]
        ds_type, ds_name, ds_hub, about = f"hfdl-offline/{a.name}", a.description.split(" (")[0], None, f"{a.origin}: {a.description}."
        ds_name = f"{a.name}: {ds_name}"
    elif d.get("dataset_name") and not os.path.exists(d["dataset_name"]):
        ds_type = ds_name = ds_hub = d["dataset_name"]
        about = f"The Hub dataset [{ds_hub}](https://huggingface.co/datasets/{ds_hub}), text column `{d.get('text_column') or 'text'}`."
    else:
        src = Path(d.get("train_file") or d.get("dataset_name") or "text").name
        ds_type, ds_name, ds_hub, about = "text", src, None, f"A local UTF-8 text file `{src}` ({data['source']})."
    layers, hidden = cfg.get("num_layers", m["num_layers"]), cfg.get("hidden_size", m["hidden_size"])
    names = {"rnn": "vanilla RNN (tanh)", "lstm": "LSTM", "gru": "GRU"}
    arch = f"{layers}-layer {names.get(cell, cell)}, {hidden} units, {cfg.get('embedding_dim', m['embedding_dim'])}-dim character embeddings"
    card_data = ModelCardData(
        model_name=repo_id.split("/")[-1],
        library_name="transformers",
        license="apache-2.0",
        datasets=[ds_hub] if ds_hub else None,
        tags=["text-generation", "character-level", cell, "rnn", "hfdl", "custom_code"],
        pipeline_tag="text-generation",
        metrics=["perplexity", "bits_per_character"],
        eval_results=hub.eval_results(
            {k: v for k, v in r.items() if k != "model_type"}, task_type="text-generation", dataset_type=ds_type, dataset_name=ds_name,
            dataset_split="validation", dataset_revision=data.get("fingerprint"), names=CHAR_LM_METRICS,
        ),
    )  # fmt: skip
    rows = [
        {"metric": "bits per character", "value": round(r["eval_bpc"], 4)},
        {"metric": "cross-entropy (nats/char)", "value": round(r["eval_loss"], 4)},
        {"metric": "perplexity (per character)", "value": round(r["eval_perplexity"], 3)},
        {"metric": "best bits per character during training", "value": round(r["best_eval_bpc"], 4)},
        {"metric": "parameters", "value": f"{r['num_params']:,}"},
        {"metric": "training throughput (chars/s)", "value": f"{r['train_chars_per_second']:,.0f}"},
        {"metric": "generation speed (chars/s, batch 1)", "value": f"{r['generation_chars_per_second']:,.0f}"},
    ]
    comparison = None
    if (out / "comparison.md").is_file() and rc["model_args"].get("compare"):
        text = (out / "comparison.md").read_text(encoding="utf-8")
        body = text.split("\n", 1)[1] if text.startswith("# ") else text
        comparison = body.split("## Samples")[0].strip()
    samples_file = folder / "samples.json"
    finals = json.loads(samples_file.read_text(encoding="utf-8")).get("final", []) if samples_file.is_file() else []
    samples = [{"prompt_repr": repr(x["prompt"])[1:-1], "temperature": x["temperature"], "text": x["text"].strip("\n")[:500]} for x in finals[:3]]
    if not samples:
        samples = [{"prompt_repr": repr(s["sample_prompt"])[1:-1], "temperature": s["temperature"], "text": r["sample"].strip("\n")[:500]}]
    prompt = s.get("sample_prompt") or "The "
    hp = {
        "cell": names.get(cell, cell), "layers": layers, "hidden size": hidden, "embedding dim": m["embedding_dim"], "dropout": m["dropout"],
        "tied embeddings": m["tie_weights"], "BPTT length": m["seq_len"], "parallel streams (batch)": t["per_device_train_batch_size"],
        "learning rate": t["learning_rate"], "weight decay": t["weight_decay"], "optimizer": "AdamW",
        "schedule": f"{t['lr_scheduler_type']}, warmup ratio {t['warmup_ratio']}", "max grad norm": t["max_grad_norm"],
        "epochs (planned)": t["num_train_epochs"], "max steps": m.get("max_steps") or t.get("max_train_steps"),
        "time budget (min)": t.get("time_budget_minutes"),
    }  # fmt: skip
    budget = ", stopped by the time budget" if r.get("stopped_by_time_budget") else ""
    code = (
        "from transformers import AutoModelForCausalLM, AutoTokenizer\n\n"
        f'tokenizer = AutoTokenizer.from_pretrained("{repo_id}", trust_remote_code=True)  # a plain char tokenizer; the flag only silences the prompt\n'
        f'model = AutoModelForCausalLM.from_pretrained("{repo_id}", trust_remote_code=True).eval()\n'
        f'ids = tokenizer({prompt!r}, return_tensors="pt", add_special_tokens=False)["input_ids"]\n'
        f"out = model.generate(ids, max_new_tokens=200, do_sample=True, temperature={s['temperature'] or 0.8}, top_k={s.get('top_k') or 0})\n"
        "print(tokenizer.decode(out[0]))"
    )
    hfdl_code = (
        "from hfdl.models.char_lm import load_char_lm\n\n"
        f'generator = load_char_lm("{repo_id}")\n'
        f"print(generator.generate({prompt!r}, 200, temperature={s['temperature']}, seed=0))"
    )
    return hub.render_card(
        "char_lm",
        card_data,
        model_name=repo_id.split("/")[-1],
        summary=(
            f"A character-level language model: {arch} ({r['num_params']:,} parameters), trained with hfdl's `train_char_lm.py` on {ds_name}. "
            f"Validation: **{r['eval_bpc']:.4f} bits per character** ({r['eval_loss']:.4f} nats/char, perplexity {r['eval_perplexity']:.3f})."
        ),
        validation_chars=f"{data['validation_chars']:,}",
        split=data["split"],
        metrics_table=hub.markdown_table(rows),
        comparison=comparison,
        seed=t["seed"],
        top_k=s.get("top_k") or "off",
        top_p=s.get("top_p") or "off",
        samples=samples,
        data_description=about,
        train_chars=f"{data['train_chars']:,}",
        vocab_size=data["vocab_size"],
        streams=t["per_device_train_batch_size"],
        seq_len=m["seq_len"],
        command=rc["command"],
        hyperparameters_table=hub.markdown_table([{"hyperparameter": k, "value": v} for k, v in hp.items()]),
        hardware=_hardware(env),
        train_time=f"{r['train_seconds']:.0f} s",
        steps=r["completed_steps"],
        chars_trained=f"{r['chars_trained']:,}",
        epochs=f"{r['epochs']:.2f}",
        budget_note=budget,
        versions_table=_versions(env),
        how_to_use_code=code,
        hfdl_code=hfdl_code,
        limitations=[
            "It predicts one character at a time from what it saw in training: the text it writes imitates the spelling, punctuation and "
            "style of the corpus, but it has no knowledge and states nothing reliably.",
            f"A small baseline ({r['num_params']:,} parameters, {r['train_seconds'] / 60:.1f} min of training on {env.get('cpu_count', '?')} CPU cores"
            f"{' and a GPU' if env.get('cuda') else ''}); larger models and longer training write far more coherent text.",
            f"Characters outside its {data['vocab_size']}-symbol vocabulary become `<unk>` (hfdl warns when a prompt has them).",
            "It reproduces the biases and the language of its training text (for the offline corpora: 19th-century novels or the 1611 Bible).",
        ],
        provenance=_provenance(offline) + "\n\nThe model weights are released under apache-2.0.",
    )


TASKS["char-lm"] = char_lm_plans


# --------------------------------------------------------------------------------------------------
# Spaces: the app folder as it is, plus the hfdl package it imports
# --------------------------------------------------------------------------------------------------

# what a Space folder holds but must not upload (as in spaces/*/.gitignore)
SPACE_SKIP = ("__pycache__", ".gradio", "flagged", ".pytest_cache", ".ipynb_checkpoints")
SPACE_SKIP_SUFFIXES = (".pyc", ".pyi", ".tmp")


def _tree(root: Path, prefix: str = "") -> dict[str, Path]:
    return {
        prefix + p.relative_to(root).as_posix(): p
        for p in sorted(root.rglob("*"))
        if p.is_file() and not any(part in SPACE_SKIP for part in p.relative_to(root).parts) and not p.name.endswith(SPACE_SKIP_SUFFIXES)
    }


def space_plan(space_dir: str | Path, space_id: str) -> RepoPlan:
    """A Space repo: every file of `space_dir` (README.md with the Spaces front matter, app.py,
    requirements.txt, bundled models and examples) plus the `hfdl` package at the Space root, where
    `import hfdl` in app.py finds it (PyPI's `hfdl` is an unrelated project, so requirements.txt cannot
    name it). The front matter and requirements are checked first."""
    import re

    from huggingface_hub import metadata_load

    import hfdl

    space = Path(space_dir)
    if not (space / "app.py").is_file() or not (space / "README.md").is_file():
        raise HfdlError(f"{space} is not a Space folder (needs app.py and README.md): pass spaces/<name>")
    meta = metadata_load(space / "README.md") or {}
    if meta.get("sdk") != "gradio" or not (space / str(meta.get("app_file", ""))).is_file():
        raise HfdlError(f"{space}/README.md front matter needs `sdk: gradio` and an app_file that exists: fix the YAML header")
    reqs = (space / "requirements.txt").read_text() if (space / "requirements.txt").is_file() else ""
    if any(re.match(r"hfdl\s*([<>=!~;\[]|$)", line.strip()) for line in reqs.splitlines()):
        raise HfdlError(f"{space}/requirements.txt names `hfdl`, which on PyPI is another project: remove the line (the package is uploaded with the Space)")
    files = _tree(space)
    package = Path(hfdl.__file__).resolve().parent
    vendored = {k: v for k, v in _tree(package, "hfdl/").items() if k.endswith(".py")}
    clash = sorted(set(files) & set(vendored))
    if clash:
        raise HfdlError(f"{space} already holds {clash[0]}: remove it, the hfdl package is added at push time")
    msg = f"hfdl Space {space.name}: app, {len(files)} files, hfdl {hfdl.__version__} package"
    return RepoPlan(space_id, {**files, **vendored}, None, msg, f"Uploaded by scripts/push_space.py from {space.as_posix()}.")


def push_space(space_dir: str | Path, space_id: str, private: bool = False, revision: str | None = None) -> str:
    """Publish a Space folder (see `space_plan`) in one commit; returns the commit URL."""
    from hfdl import hub

    plan = space_plan(space_dir, space_id)  # push_files checks the id before any request
    return hub.push_files(
        plan.files, None, plan.repo_id,
        commit_message=plan.commit_message, commit_description=plan.commit_description, private=private, revision=revision,
        retry=f"python scripts/push_space.py {space_dir} --space_id {space_id}", repo_type="space", space_sdk="gradio",
    )  # fmt: skip
