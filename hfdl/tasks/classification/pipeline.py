"""Transfer learning with timm backbones: feature-based vs fine-tuning vs scratch, measured side by side."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch
from accelerate import Accelerator

from hfdl import assets
from hfdl.core.backbones import base_model_id, resolve_model_source
from hfdl.core.feature_cache import cached_features, data_config_for
from hfdl.core.labelled_images import PreparedData, TransformedImages, build_transforms, load_labelled_data
from hfdl.core.metrics import evaluate_classifier, plot_confusion_matrix
from hfdl.core.rundir import ALL_RESULTS, RESULTS, RUN_CONFIG, check_output_dir, run_config, run_variants, write_json
from hfdl.core.runtime import PeakMemory
from hfdl.core.training import make_accelerator, tensor_loader, train
from hfdl.tasks.classification import model as classifier
from hfdl.tasks.classification.args import ClassificationTrainingArguments, DataArguments, ModelArguments
from hfdl.tasks.classification.card import write_cards
from hfdl.tasks.classification.report import write_comparison

logger = logging.getLogger(__name__)

TASK = "image-classification"
OUTPUTS = ("config.json", "model.safetensors", "confusion_matrix.png")  # each strategy folder, besides the common files


def _cl(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last) if channels_last and x.ndim == 4 else x


def _train_head_on_features(model, strategy, model_args, training_args, accelerator, data, images, run_dir, evaluator):
    """feature: pooled features of the frozen backbone, computed once (cached), then the head alone on them."""
    kw = dict(
        cache_dir=model_args.feature_cache_dir,
        batch_size=training_args.per_device_eval_batch_size, num_workers=training_args.dataloader_num_workers,
        channels_last=model_args.channels_last,
    )  # fmt: skip
    t_feat = time.perf_counter()
    xtr, ytr, hit_tr = cached_features(accelerator, model, images["train_eval_transform"], **kw)
    xev, yev, hit_ev = cached_features(accelerator, model, images["eval"], **kw)
    extra = {"feature_extraction_seconds": time.perf_counter() - t_feat, "feature_cache_hit": hit_tr and hit_ev}
    torch.manual_seed(training_args.seed)  # the head's init must not depend on whether the cache was hit
    head = classifier.make_head(model.num_features, len(data.label_names), model_args.head, model_args.head_hidden_size, model_args.head_dropout)
    train_dl = tensor_loader(xtr, ytr, batch_size=training_args.per_device_train_batch_size, shuffle=True)
    eval_dl = accelerator.prepare(tensor_loader(xev, yev, batch_size=training_args.per_device_eval_batch_size))
    head_args = replace(training_args, num_train_epochs=model_args.head_epochs, max_train_steps=None, weight_decay=model_args.head_weight_decay)
    head, result = train(
        accelerator, head, None, train_dl, head_args, run_dir,
        compute_loss=lambda m, b: torch.nn.functional.cross_entropy(m(b[0]), b[1]),
        evaluate=evaluator(eval_dl), run_name=strategy, learning_rate=model_args.head_learning_rate,
    )  # fmt: skip
    return classifier.attach_head(model, head), result, head_args.num_train_epochs, extra


def _train_network(model, strategy, model_args, training_args, accelerator, images, run_dir, evaluator):
    """finetune / scratch: the network itself (its unfrozen part), with augmentation, backbone at a lower rate."""
    from torch.utils.data import DataLoader

    workers, channels_last = training_args.dataloader_num_workers, model_args.channels_last
    train_images = images["train"]
    train_dl = DataLoader(
        train_images, batch_size=training_args.per_device_train_batch_size, shuffle=True, num_workers=workers,
        drop_last=len(train_images) > training_args.per_device_train_batch_size,
    )  # fmt: skip
    eval_dl = accelerator.prepare(DataLoader(images["eval"], batch_size=training_args.per_device_eval_batch_size, num_workers=workers))

    def forward(m, x):
        return m(_cl(x, channels_last))

    def train_mode(m):
        classifier.frozen_modules_to_eval(m.train())

    lr_scale = model_args.backbone_lr_scale if strategy == "finetune" else 1.0
    groups = classifier.optimizer_param_groups(model, training_args.learning_rate, training_args.weight_decay, lr_scale)
    model, result = train(
        accelerator, model, groups, train_dl, training_args, run_dir,
        compute_loss=lambda m, b: torch.nn.functional.cross_entropy(forward(m, b[0]), b[1]),
        evaluate=evaluator(eval_dl, forward), train_mode=train_mode, run_name=strategy,
    )  # fmt: skip
    return model, result, training_args.epochs, {}


def _build_model(strategy: str, model_args: ModelArguments, num_classes: int):
    model = classifier.create_classifier(model_args.model_name_or_path, num_classes, pretrained=strategy != "scratch")
    if model_args.head == "mlp":
        classifier.set_classifier(model, classifier.make_head(model.num_features, num_classes, "mlp", model_args.head_hidden_size, model_args.head_dropout))
    return model.to(memory_format=torch.channels_last) if model_args.channels_last else model


def run_strategy(
    strategy: str,
    model_args: ModelArguments,
    data_args: DataArguments,
    training_args: ClassificationTrainingArguments,
    accelerator: Accelerator,
    data: PreparedData,
) -> dict:
    """Train one strategy; save `<output_dir>/<strategy>/` (timm layout + confusion matrix); return its results."""
    run_dir = Path(training_args.output_dir) / strategy
    num_classes = len(data.label_names)
    t_wall = time.perf_counter()
    mem = PeakMemory()
    with mem:
        torch.manual_seed(training_args.seed)
        model = _build_model(strategy, model_args, num_classes)
        data_cfg = data_config_for(model, data_args.image_size)
        train_tf, eval_tf = build_transforms(data_cfg, data_args.augment())
        frozen = classifier.apply_strategy(model, strategy, model_args.unfreeze)
        total_params, trainable = sum(p.numel() for p in model.parameters()), classifier.trainable_parameters(model)
        columns = (data.image_column, data.label_column)
        images = {
            "train": TransformedImages(data.train, *columns, train_tf, seed=training_args.seed),
            "train_eval_transform": TransformedImages(data.train, *columns, eval_tf),
            "eval": TransformedImages(data.eval, *columns, eval_tf),
        }

        def evaluator(eval_dl, forward=None):
            """Every epoch's evaluation, confusion matrix included (the last one is the reported one)."""
            return lambda m: evaluate_classifier(accelerator, m, eval_dl, num_classes, forward=forward, confusion=True)

        if strategy == "feature":
            model, result, epochs, extra = _train_head_on_features(model, strategy, model_args, training_args, accelerator, data, images, run_dir, evaluator)
        else:
            model, result, epochs, extra = _train_network(model, strategy, model_args, training_args, accelerator, images, run_dir, evaluator)
        wall = time.perf_counter() - t_wall
    final = result.final_metrics  # the last evaluation
    results = {
        **{k: final[k] for k in ("eval_accuracy", "eval_f1_macro", "eval_top5", "eval_loss") if k in final},
        "train_seconds": result.train_seconds,
        "train_samples_per_second": result.train_samples_per_second,
        "wall_seconds": wall,
        "trainable_params": trainable,
        "total_params": total_params,
        "frozen_params": total_params - trainable,
        "peak_rss_mb": mem.peak_rss_mb,
        **({"peak_cuda_mb": mem.peak_cuda_mb} if mem.peak_cuda_mb is not None else {}),
        "epochs": epochs,
        "train_samples": len(data.train),
        "eval_samples": len(data.eval),
        **extra,
    }
    if accelerator.is_main_process:
        classifier.save_classifier(
            model.to(memory_format=torch.contiguous_format), run_dir, data.label_names, data_cfg, head=model_args.head,
            extra={"hfdl": {"strategy": strategy, "base_model": model_args.model_name_or_path, "frozen_param_tensors": len(frozen)}},
        )  # fmt: skip
        title = f"{strategy}: accuracy {final['eval_accuracy']:.4f}"
        plot_confusion_matrix(final["confusion_matrix"], data.label_names, str(run_dir / "confusion_matrix.png"), title)
        write_json(run_dir / "history.json", result.history)
        write_json(run_dir / RESULTS, results)
    accelerator.wait_for_everyone()
    accelerator.free_memory()
    return results


def run(model_args: ModelArguments, data_args: DataArguments, training_args: ClassificationTrainingArguments, argv: list[str] | None = None) -> dict:
    """The whole pipeline: data, each strategy, all_results.json, and the comparison for several strategies."""
    out = Path(training_args.output_dir)
    strategies = model_args.strategies
    check_output_dir(out, [out / s for s in strategies], training_args, OUTPUTS)
    accelerator = make_accelerator(training_args)
    resolve_model_source(model_args.model_name_or_path)  # fail on an unknown model before loading data
    data = load_labelled_data(data_args, training_args.seed, accelerator)
    accelerator.print(f"data: {data.source}: {len(data.train)} train / {len(data.eval)} eval ({data.eval_split}), {len(data.label_names)} classes")
    out.mkdir(parents=True, exist_ok=True)
    config = run_config(
        TASK, argv, {"model_args": model_args, "data_args": {**asdict(data_args), "embedded_default": data_args.embedded_default}, "training_args": training_args},
        accelerator, base_model=base_model_id(model_args.model_name_or_path),
        data={
            "source": data.source,
            "eval_split": data.eval_split,
            "train_fingerprint": data.train._fingerprint,
            "eval_fingerprint": data.eval._fingerprint,
            "label_names": data.label_names,
        },
        offline_assets=[a.provenance() for n, a in {**assets.BACKBONES, **assets.DATASETS}.items() if n in (model_args.model_name_or_path, data_args.dataset_name)],
    )  # fmt: skip
    write_json(out / RUN_CONFIG, config, accelerator.is_main_process)

    def train_one(strategy: str, folder: Path, args: ClassificationTrainingArguments) -> dict:
        return run_strategy(strategy, model_args, data_args, args, accelerator, data)

    all_results = run_variants(strategies, [out / s for s in strategies], training_args, train_one, accelerator.print)
    if accelerator.is_main_process:
        write_json(out / ALL_RESULTS, all_results)
        if len(all_results) > 1:
            table = write_comparison(all_results, out, title=f"{model_args.model_name_or_path} on {data_args.dataset_name or data_args.train_dir}")
            accelerator.print(table)
        write_cards(out, accelerator)
    return all_results
