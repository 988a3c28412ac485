"""Similarity learning: labelled images -> a timm embedding network trained with triplets (or siamese pairs) on
class-balanced batches -> retrieval, one-shot and verification metrics beside the untrained backbone's -> a run folder."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict
from pathlib import Path

import torch
from accelerate import Accelerator
from timm.optim import param_groups_weight_decay

from hfdl import assets
from hfdl.core.backbones import base_model_id, create_backbone, resolve_model_source
from hfdl.core.feature_cache import cached_features, data_config_for
from hfdl.core.labelled_images import TransformedImages, build_transforms, load_labelled_data
from hfdl.core.rundir import ALL_RESULTS, RUN_CONFIG, check_output_dir, run_config, write_json
from hfdl.core.runtime import PeakMemory
from hfdl.core.training import make_accelerator, train
from hfdl.tasks.similarity.args import EmbeddingArguments, EmbeddingDataArguments, EmbeddingTrainingArguments
from hfdl.tasks.similarity.data import ClassBalancedSampler, hold_out, parse_classes
from hfdl.tasks.similarity.losses import build_loss
from hfdl.tasks.similarity.metrics import embedding_metrics
from hfdl.tasks.similarity.model import EmbeddingModel

logger = logging.getLogger(__name__)

TASK = "image-similarity"
OUTPUTS = ("config.json", "model.safetensors", "embeddings.png", "retrieval.png", "embeddings.safetensors")


def build_model(model_args: EmbeddingArguments, label_names: list[str], image_size: int | None) -> tuple[EmbeddingModel, torch.nn.Module, dict]:
    """(the embedding model with the pretrained backbone loaded, that backbone alone (the untrained baseline), its
    timm data config)."""
    backbone = create_backbone(model_args.model_name_or_path, pretrained=model_args.pretrained, num_classes=0)
    cfg = data_config_for(backbone, image_size)
    model = EmbeddingModel(
        backbone=backbone.pretrained_cfg.get("architecture") or model_args.model_name_or_path, embedding_dim=model_args.embedding_dim,
        image_size=cfg["input_size"][-1], mean=tuple(cfg["mean"]), std=tuple(cfg["std"]), interpolation=cfg.get("interpolation", "bicubic"),
        label_names=label_names,
    )  # fmt: skip
    model.backbone.load_state_dict(backbone.state_dict())  # strict: the same architecture
    return model, backbone, cfg


def optimizer_groups(model: EmbeddingModel, lr: float, weight_decay: float, backbone_lr_scale: float) -> list[dict]:
    """The projection head at `lr`, the backbone at `lr * backbone_lr_scale`; no decay on norms and biases."""
    groups = []
    for part, scale in ((model.head, 1.0), (model.backbone, backbone_lr_scale)):
        for g in param_groups_weight_decay(part, weight_decay):
            groups.append({**g, "lr": lr * scale})
    return groups


@torch.inference_mode()
def embed_split(accelerator: Accelerator, model: torch.nn.Module, loader, channels_last: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Embeddings and labels of every evaluation image exactly once (gathered across processes)."""
    was_training = model.training
    model.eval()
    embs, labels = [], []
    for x, y in loader:
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        e, y = accelerator.gather_for_metrics((model(x), y))
        embs.append(e.float().cpu())
        labels.append(y.cpu())
    model.train(was_training)
    return torch.cat(embs), torch.cat(labels)


def split_metrics(embeddings: torch.Tensor, labels: torch.Tensor, model_args: EmbeddingArguments, seed: int, unseen: list[int], prefix: str) -> dict:
    """Metrics on the whole evaluation split, and on its held-out (unseen) classes alone when there are any."""
    kw = dict(episodes=model_args.episodes, pairs=model_args.verification_pairs, seed=seed)
    out = {f"{prefix}{k}": v for k, v in embedding_metrics(embeddings, labels, n_way=model_args.n_way, **kw).items()}
    if unseen:
        mask = torch.isin(labels, torch.tensor(unseen))
        n_way = min(model_args.n_way, len(unseen))
        if n_way >= 2 and int(mask.sum()) >= 2:
            out.update({f"{prefix}unseen_{k}": v for k, v in embedding_metrics(embeddings[mask], labels[mask], n_way=n_way, **kw).items()})
    return out


def run(model_args: EmbeddingArguments, data_args: EmbeddingDataArguments, training_args: EmbeddingTrainingArguments, argv: list[str] | None = None) -> dict:
    """Train the embedding network, evaluate it and the untrained backbone, write the run folder and card."""
    from torch.utils.data import DataLoader

    t_wall = time.perf_counter()
    out = Path(training_args.output_dir)
    check_output_dir(out, [out], training_args, OUTPUTS)
    accelerator = make_accelerator(training_args)
    resolve_model_source(model_args.model_name_or_path)  # fail on an unknown model before loading data
    data = load_labelled_data(data_args, training_args.seed, accelerator)
    names = data.label_names
    unseen = parse_classes(model_args.holdout_classes, names)
    train_ds = hold_out(data.train, data.label_column, unseen, len(names))
    p, k = model_args.classes_per_batch, model_args.samples_per_class
    sampler = ClassBalancedSampler(train_ds[data.label_column], p, k, seed=training_args.seed)
    accelerator.print(
        f"data: {data.source}: {len(train_ds)} train / {len(data.eval)} eval ({data.eval_split}), {len(names)} classes"
        + (f", held out of training: {', '.join(names[c] for c in unseen)}" if unseen else "")
    )
    torch.manual_seed(training_args.seed)
    model, backbone, cfg = build_model(model_args, names, data_args.image_size)
    if model_args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    train_tf, eval_tf = build_transforms(cfg, data_args.augment())
    columns = (data.image_column, data.label_column)
    train_images, eval_images = TransformedImages(train_ds, *columns, train_tf, seed=training_args.seed), TransformedImages(data.eval, *columns, eval_tf)
    workers = training_args.dataloader_num_workers
    train_dl = DataLoader(train_images, batch_size=p * k, sampler=sampler, drop_last=True, num_workers=workers)
    eval_dl = accelerator.prepare(DataLoader(eval_images, training_args.per_device_eval_batch_size, num_workers=workers))

    # What metric learning buys: the same metrics on the untrained (pretrained) backbone's pooled features.
    t_base = time.perf_counter()
    feats, labels, hit = cached_features(
        accelerator, backbone, eval_images, model_args.feature_cache_dir, training_args.per_device_eval_batch_size, workers, model_args.channels_last
    )
    baseline = split_metrics(feats, labels, model_args, training_args.seed, unseen, "baseline_")
    baseline_seconds = time.perf_counter() - t_base
    del backbone

    criterion = build_loss(model_args.loss, model_args.margin, model_args.miner)
    out.mkdir(parents=True, exist_ok=True)
    config = run_config(
        TASK, argv, {"model_args": model_args, "data_args": {**asdict(data_args), "embedded_default": data_args.embedded_default}, "training_args": training_args},
        accelerator, base_model=base_model_id(model_args.model_name_or_path) if model_args.pretrained else None,
        data={
            "source": data.source, "eval_split": data.eval_split, "label_names": names, "holdout_classes": [names[c] for c in unseen],
            "train_fingerprint": train_ds._fingerprint, "eval_fingerprint": data.eval._fingerprint, "image_size": model.image_size,
        },
        offline_assets=[a.provenance() for n, a in {**assets.BACKBONES, **assets.DATASETS}.items() if n in (model_args.model_name_or_path, data_args.dataset_name)],
    )  # fmt: skip
    write_json(out / RUN_CONFIG, config, accelerator.is_main_process)
    last: dict = {}

    def evaluate(m):
        emb, lab = embed_split(accelerator, accelerator.unwrap_model(m), eval_dl, model_args.channels_last)
        last.update(embeddings=emb, labels=lab)
        return split_metrics(emb, lab, model_args, training_args.seed, unseen, "eval_")

    def compute_loss(m, batch):
        x, y = batch
        if model_args.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return criterion(m(x), y)

    mem = PeakMemory()
    with mem:
        model, result = train(
            accelerator, model, optimizer_groups(model, training_args.learning_rate, training_args.weight_decay, model_args.backbone_lr_scale),
            train_dl, training_args, out, compute_loss=compute_loss, evaluate=evaluate, run_name="embedding",
        )  # fmt: skip
    final = result.final_metrics
    if "embeddings" not in last:  # resumed past the last evaluation: evaluate the final weights
        final = {**final, **evaluate(model)}
    results = {
        **{k: v for k, v in final.items() if k.startswith("eval_") and isinstance(v, float)},
        **baseline,
        "train_seconds": result.train_seconds,
        "train_images_per_second": result.train_samples_per_second,
        "baseline_seconds": baseline_seconds,
        "baseline_feature_cache_hit": hit,
        "baseline_feature_dim": int(feats.shape[1]),
        "num_parameters": sum(p.numel() for p in model.parameters()),
        "peak_rss_mb": mem.peak_rss_mb,
        "completed_steps": result.completed_steps,
        "epochs": round(result.completed_steps / max(1, len(train_dl)), 3),
        **({"schedule_steps": result.schedule_steps} if result.schedule_steps else {}),
        "batch_size": p * k * accelerator.num_processes,
        "train_images": len(train_ds),
        "eval_images": len(data.eval),
    }
    if accelerator.is_main_process:
        from safetensors.torch import save_file

        from hfdl.tasks.similarity.card import write_cards
        from hfdl.tasks.similarity.pictures import write_pictures

        model = accelerator.unwrap_model(model).to(memory_format=torch.contiguous_format).eval()
        model.set_threshold(results.get("eval_verification_threshold"))
        model.save_pretrained(out)
        save_file({"embeddings": last["embeddings"].contiguous(), "labels": last["labels"].contiguous()}, str(out / "embeddings.safetensors"))
        write_pictures(last["embeddings"], last["labels"], data.eval, data.image_column, names, out, model_args.projection, training_args.seed)
        write_json(out / "history.json", result.history)
        results["wall_seconds"] = time.perf_counter() - t_wall
        write_json(out / ALL_RESULTS, results)
        write_cards(out, accelerator)
        accelerator.print(json.dumps({k: round(v, 4) for k, v in results.items() if k.startswith(("eval_", "baseline_")) and isinstance(v, float)}))
    accelerator.wait_for_everyone()
    accelerator.free_memory()
    return results
