"""One-class anomaly detection, the standard protocol: train on one class of the training split, score the whole
test split, the normal class against the rest (AUROC, AUPRC; anomalous = positive). Two methods side by side:
an autoencoder's reconstruction error (trained on the shared loop, one per normal class) and kNN on frozen
pretrained features (through the shared feature cache, one extraction for every class)."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict
from pathlib import Path

import torch
import torch.nn.functional as F

from hfdl import assets
from hfdl.core.backbones import base_model_id, create_backbone
from hfdl.core.feature_cache import cached_features, data_config_for
from hfdl.core.image_tensors import decode_images
from hfdl.core.labelled_images import PreparedData, TransformedImages, build_transforms, load_labelled_data
from hfdl.core.rundir import ALL_RESULTS, RESULTS, RUN_CONFIG, check_output_dir, run_config, run_variants, write_json
from hfdl.core.training import make_accelerator, tensor_loader, train
from hfdl.errors import HfdlError
from hfdl.hub.push import slug
from hfdl.tasks.anomaly.args import AnomalyArguments, AnomalyDataArguments, AnomalyTrainingArguments
from hfdl.tasks.anomaly.model import ConvAutoencoder, knn_scores

logger = logging.getLogger(__name__)

TASK = "anomaly-detection"
OUTPUTS = ("roc.png", "most_anomalous_*.png", "reconstructions.png", "scores.safetensors", "config.json", "model.safetensors")


def normal_classes(args: AnomalyArguments, names: list[str]) -> list[int]:
    """Every class with --all_classes, else the one --normal_class names (a name or an id)."""
    if args.all_classes:
        return list(range(len(names)))
    c = args.normal_class.strip()
    if c in names:
        return [names.index(c)]
    if c.isdigit() and int(c) < len(names):
        return [int(c)]
    raise HfdlError(f"--normal_class '{c}' is not among the labels ({', '.join(names)}): pass one of those names or ids")


def detection_metrics(scores: torch.Tensor, anomalous: torch.Tensor) -> dict[str, float]:
    """AUROC and AUPRC (torchmetrics) of anomaly scores, anomalous = positive."""
    from torchmetrics.functional.classification import binary_auroc, binary_average_precision

    target = anomalous.long()
    if target.min() == target.max():
        raise HfdlError("the test split holds only one kind (all normal or all anomalous): score a split with both")
    return {"auroc": binary_auroc(scores, target).item(), "auprc": binary_average_precision(scores, target).item()}


def _knn(args, data_args, training_args, accelerator, data: PreparedData, classes: list[int]) -> tuple[dict[int, torch.Tensor], dict]:
    t = time.perf_counter()
    backbone = create_backbone(args.model_name_or_path, pretrained=True, num_classes=0).to(memory_format=torch.channels_last)
    _, eval_tf = build_transforms(data_config_for(backbone, data_args.image_size), None)
    kw = dict(cache_dir=args.feature_cache_dir, batch_size=training_args.per_device_eval_batch_size, num_workers=training_args.dataloader_num_workers)
    columns = (data.image_column, data.label_column)
    xtr, ytr, hit_tr = cached_features(accelerator, backbone, TransformedImages(data.train, *columns, eval_tf), **kw)
    xte, _, hit_te = cached_features(accelerator, backbone, TransformedImages(data.eval, *columns, eval_tf), **kw)
    scores = {c: knn_scores(xtr[ytr == c], xte, args.k) for c in classes}
    return scores, {"knn_seconds": time.perf_counter() - t, "knn_feature_cache_hit": hit_tr and hit_te, "knn_feature_dim": int(xtr.shape[1])}


def _autoencoders(args, training_args, accelerator, data: PreparedData, classes: list[int], out: Path) -> tuple[dict[int, torch.Tensor], dict, dict]:
    from safetensors.torch import load_file, save_file

    t = time.perf_counter()
    train_x = decode_images(data.train, data.image_column, args.autoencoder_image_size, what="the train split")
    test_x = decode_images(data.eval, data.image_column, args.autoencoder_image_size, channels=train_x.shape[1], what="the evaluation split")
    if train_x.shape[1:] != test_x.shape[1:]:
        raise HfdlError(f"train images are {tuple(train_x.shape[1:])} but evaluation images {tuple(test_x.shape[1:])}: pass --autoencoder_image_size N")
    ytr = torch.tensor(data.train[data.label_column])
    test_f = test_x.float() / 255
    names = data.label_names
    folders = {names[c]: out / "autoencoder" / slug(names[c]) for c in classes}
    models: dict[str, ConvAutoencoder] = {}

    def train_one(name: str, folder: Path, class_args: AnomalyTrainingArguments) -> dict:
        c = names.index(name)
        x = train_x[ytr == c].float() / 255
        torch.manual_seed(class_args.seed)
        model = ConvAutoencoder(x.shape[-1], x.shape[1], args.latent_dim, args.base_channels, args.hidden_dim, args.score, normal_class=name)
        loader = tensor_loader(x, batch_size=class_args.per_device_train_batch_size, shuffle=True, drop_last=len(x) > class_args.per_device_train_batch_size)

        def compute_loss(m, batch):
            (clean,) = batch if isinstance(batch, (list, tuple)) else (batch,)
            noisy = (clean + args.noise_std * torch.randn_like(clean)).clamp(0, 1) if args.noise_std else clean
            return F.binary_cross_entropy_with_logits(m(noisy), clean)

        model, result = train(accelerator, model, None, loader, class_args, folder, compute_loss=compute_loss, run_name=f"autoencoder {name}")
        model = accelerator.unwrap_model(model).eval()
        scores = model.anomaly_score(test_f)
        res = {"train_seconds": result.train_seconds, "completed_steps": result.completed_steps, "train_images": len(x)}
        if accelerator.is_main_process:
            model.save_pretrained(folder)
            save_file({"scores": scores.contiguous()}, str(folder / "scores.safetensors"))
            write_json(folder / RESULTS, res)
        accelerator.wait_for_everyone()
        models[name] = model
        return res

    per_class = run_variants(list(folders), list(folders.values()), training_args, train_one, accelerator.print)
    scores = {c: load_file(str(folders[names[c]] / "scores.safetensors"))["scores"] for c in classes}
    extra = {
        "autoencoder_seconds": time.perf_counter() - t,
        "autoencoder_train_seconds": sum(r["train_seconds"] for r in per_class.values()),
        "autoencoder_image_size": int(train_x.shape[-1]),
    }
    first = names[classes[0]]
    model = models.get(first) or ConvAutoencoder.from_pretrained(folders[first])
    return scores, extra, {"model": model, "test": test_f}


def run(args: AnomalyArguments, data_args: AnomalyDataArguments, training_args: AnomalyTrainingArguments, argv: list[str] | None = None) -> dict:
    """The protocol for --normal_class (or every class), each method; all_results.json, pictures, autoencoders, the card."""
    t_wall = time.perf_counter()
    out = Path(training_args.output_dir)
    check_output_dir(out, [out], training_args, OUTPUTS)
    accelerator = make_accelerator(training_args)
    data = load_labelled_data(data_args, training_args.seed, accelerator)
    names = data.label_names
    classes = normal_classes(args, names)
    labels = torch.tensor(data.eval[data.label_column])
    accelerator.print(
        f"data: {data.source}: {len(data.train)} train / {len(data.eval)} test ({data.eval_split}); normal: {', '.join(names[c] for c in classes)}"
    )
    out.mkdir(parents=True, exist_ok=True)
    config = run_config(
        TASK, argv, {"model_args": args, "data_args": {**asdict(data_args), "embedded_default": data_args.embedded_default}, "training_args": training_args},
        accelerator, base_model=base_model_id(args.model_name_or_path) if "knn" in args.methods else None,
        data={"source": data.source, "eval_split": data.eval_split, "label_names": names, "normal_classes": [names[c] for c in classes]},
        offline_assets=[a.provenance() for n, a in {**assets.BACKBONES, **assets.DATASETS}.items() if n in (args.model_name_or_path, data_args.dataset_name)],
    )  # fmt: skip
    write_json(out / RUN_CONFIG, config, accelerator.is_main_process)
    scores, extra, shown = {}, {}, {}
    if "knn" in args.methods:
        scores["knn"], info = _knn(args, data_args, training_args, accelerator, data, classes)
        extra.update(info)
    if "autoencoder" in args.methods:
        scores["autoencoder"], info, shown = _autoencoders(args, training_args, accelerator, data, classes, out)
        extra.update(info)
    results: dict = {"normal_classes": [names[c] for c in classes]}
    per_class: dict = {}
    for method, by_class in scores.items():
        found = {names[c]: detection_metrics(s, labels != c) for c, s in by_class.items()}
        per_class[method] = found
        results[f"eval_{method}_auroc"] = sum(m["auroc"] for m in found.values()) / len(found)
        results[f"eval_{method}_auprc"] = sum(m["auprc"] for m in found.values()) / len(found)
    results["per_class"] = per_class
    results.update(extra)
    results["train_images"], results["test_images"] = len(data.train), len(data.eval)
    if accelerator.is_main_process:
        from hfdl.tasks.anomaly.card import write_cards
        from hfdl.tasks.anomaly.pictures import write_pictures

        write_pictures(scores, labels, data.eval, data.image_column, names, classes, out, shown)
        results["wall_seconds"] = time.perf_counter() - t_wall
        write_json(out / ALL_RESULTS, results)
        if "autoencoder" in scores:  # the trained models' cards (a kNN-only run trains none)
            write_cards(out, accelerator)
        accelerator.print(json.dumps({k: round(v, 4) for k, v in results.items() if k.startswith("eval_")}))
    accelerator.wait_for_everyone()
    return results
