"""Transfer learning with timm backbones: feature-based vs fine-tuning vs scratch, measured side by side."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from accelerate import Accelerator

from hfdl import assets
from hfdl.cli import command_line
from hfdl.data.images import AugmentConfig, PreparedData, TransformedImages, build_transforms, load_image_dataset, prepare_splits
from hfdl.errors import HfdlError
from hfdl.metrics import evaluate_classifier, plot_confusion_matrix
from hfdl.models import classifier as C
from hfdl.training import PeakMemory, TrainingArguments, environment_info, list_checkpoints, make_accelerator, tensor_loader, train

logger = logging.getLogger(__name__)

# The embedded offline default: what `accelerate launch scripts/finetune.py` runs with no data arguments.
EMBEDDED_DEFAULT = {"dataset_name": "fashion_mnist", "max_train_samples": 10000, "image_size": 64}


@dataclass
class ModelArguments:
    model_name_or_path: str = field(
        default="tf_efficientnet_lite0",
        metadata={"help": "Local folder, offline backbone (tf_efficientnet_lite0, mobilenetv2_100), Hub id (timm/resnet50.a1_in1k) or timm name."},
    )
    strategy: str = field(default="compare", metadata={"help": "feature | finetune | scratch | compare."})
    compare_strategies: str = field(
        default="feature,finetune", metadata={"help": "Strategies run by --strategy compare (add scratch for the no-pretraining baseline)."}
    )
    unfreeze: int | None = field(default=None, metadata={"help": "finetune: train only the last N backbone stages (+ head); default all."})
    backbone_lr_scale: float = field(default=0.5, metadata={"help": "finetune: backbone learning rate = learning_rate x this."})
    head: str = field(default="linear", metadata={"help": "linear | mlp classifier head."})
    head_hidden_size: int = field(default=512, metadata={"help": "Hidden units of the mlp head."})
    head_dropout: float = field(default=0.0, metadata={"help": "Dropout before the head's last layer."})
    head_epochs: int = field(default=30, metadata={"help": "feature: epochs over the cached features (cheap)."})
    head_learning_rate: float = field(default=1e-3, metadata={"help": "feature: head learning rate."})
    head_weight_decay: float = field(
        default=1.0, metadata={"help": "feature: head weight decay (a linear probe wants strong L2: 0.858 vs 0.847 at 0.05 on the default)."}
    )
    channels_last: bool = field(default=True, metadata={"help": "channels_last memory format (faster convolutions)."})
    feature_cache_dir: str | None = field(default=None, metadata={"help": "Cache of frozen-backbone features (default $HF_HOME/hfdl/features)."})

    def __post_init__(self):
        if self.strategy not in (*C.STRATEGIES, "compare"):
            raise HfdlError(f"--strategy '{self.strategy}' is unknown: use feature, finetune, scratch or compare")
        bad = [s for s in self.strategies if s not in C.STRATEGIES]
        if bad:
            raise HfdlError(f"--compare_strategies has unknown {bad}: use a comma list of feature, finetune, scratch")
        if self.head not in ("linear", "mlp"):
            raise HfdlError(f"--head '{self.head}' is unknown: use linear or mlp")
        if self.backbone_lr_scale <= 0:
            raise HfdlError(f"--backbone_lr_scale must be > 0, got {self.backbone_lr_scale}")

    @property
    def strategies(self) -> list[str]:
        if self.strategy != "compare":
            return [self.strategy]
        return [s.strip() for s in self.compare_strategies.split(",") if s.strip()]


@dataclass
class DataArguments:
    dataset_name: str | None = field(
        default=None,
        metadata={"help": "Hub dataset id, saved/imagefolder dir, or offline name (fashion_mnist, digits). None with no --train_dir: the embedded default."},
    )
    dataset_config_name: str | None = field(default=None, metadata={"help": "Hub dataset configuration."})
    train_dir: str | None = field(default=None, metadata={"help": "imagefolder with one subfolder per class."})
    validation_dir: str | None = field(default=None, metadata={"help": "imagefolder for evaluation."})
    image_column: str | None = field(default=None, metadata={"help": "Image column (auto-detected)."})
    label_column: str | None = field(default=None, metadata={"help": "Label column (auto-detected)."})
    train_val_split: float = field(default=0.15, metadata={"help": "Stratified holdout fraction when there is no validation/test split."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Stratified subsample of the training set."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Stratified subsample of the evaluation set."})
    image_size: int | None = field(default=None, metadata={"help": "Input resolution (default: the backbone's)."})
    hflip: float = field(default=0.5, metadata={"help": "Horizontal flip probability."})
    rotation: float = field(default=0.0, metadata={"help": "Random rotation, degrees."})
    translate: float = field(default=0.0, metadata={"help": "Random translation, fraction of the size."})
    scale_min: float = field(default=0.8, metadata={"help": "Random resized crop: smallest area fraction (scale + random crop)."})
    gaussian_noise: float = field(default=0.0, metadata={"help": "Gaussian noise std on the normalised tensor."})
    auto_augment: str | None = field(default=None, metadata={"help": "timm auto-augment, e.g. rand-m9-mstd0.5 (RandAugment)."})
    max_bad_image_fraction: float = field(default=0.01, metadata={"help": "Fail when more images than this are unreadable (fewer are skipped)."})

    def __post_init__(self):
        self.embedded_default = self.dataset_name is None and self.train_dir is None and self.validation_dir is None
        if self.embedded_default:
            self.dataset_name = EMBEDDED_DEFAULT["dataset_name"]
            if self.max_train_samples is None:
                self.max_train_samples = EMBEDDED_DEFAULT["max_train_samples"]
            if self.image_size is None:
                self.image_size = EMBEDDED_DEFAULT["image_size"]
        if not 0 < self.scale_min <= 1:
            raise HfdlError(f"--scale_min must be in (0, 1], got {self.scale_min}")
        for name in ("max_train_samples", "max_eval_samples", "image_size"):
            v = getattr(self, name)
            if v is not None and v < 1:
                raise HfdlError(f"--{name} must be >= 1, got {v}")

    def augment(self) -> AugmentConfig:
        return AugmentConfig(self.hflip, self.rotation, self.translate, self.scale_min, self.gaussian_noise, self.auto_augment)


# --------------------------------------------------------------------------------------------------


def data_config_for(model: torch.nn.Module, image_size: int | None) -> dict:
    from timm.data import resolve_model_data_config

    cfg = resolve_model_data_config(model)
    if image_size is not None:
        cfg["input_size"] = (3, image_size, image_size)
        cfg["crop_pct"] = 1.0  # small inputs: keep the whole image
    return cfg


def check_output_dir(out: Path, strategies: list[str], args: TrainingArguments) -> None:
    """Refuse to overwrite a finished run or to silently restart an interrupted one."""
    if not out.exists():
        return
    finished = [s for s in strategies if (out / s / "results.json").is_file()]
    partial = [s for s in strategies if list_checkpoints(out / s) and s not in finished]
    if args.overwrite_output_dir:
        for s in strategies:
            if (out / s).exists():
                shutil.rmtree(out / s)
        return
    if args.resume_from_checkpoint:
        return
    if (out / "all_results.json").is_file() or finished:
        raise HfdlError(
            f"{out} already holds results ({', '.join(finished) or 'all_results.json'}): pass --overwrite_output_dir to replace them or choose another --output_dir"
        )
    if partial:
        raise HfdlError(
            f"{out} holds an interrupted run ({', '.join(partial)}): pass --resume_from_checkpoint latest to continue it or --overwrite_output_dir to restart"
        )


def _weights_fingerprint(model: torch.nn.Module, skip: set[str]) -> str:
    h = hashlib.sha256()
    for n, t in model.state_dict().items():
        if n not in skip:
            h.update(n.encode())
            h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def cached_features(
    accelerator: Accelerator,
    model: torch.nn.Module,
    images: TransformedImages,
    cache_dir: Path,
    batch_size: int,
    num_workers: int,
    channels_last: bool,
) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """Pooled frozen-backbone features of every image (eval transform), computed once and cached on disk.

    The key covers the backbone weights, the exact data (datasets fingerprint) and the transform.
    Returns (features, labels, cache_hit).
    """
    from safetensors.torch import load_file, save_file

    head = C.head_parameter_names(model)
    key_src = json.dumps(
        {
            "weights": _weights_fingerprint(model, skip=head),
            "data": images.ds._fingerprint,
            "n": len(images),
            "transform": repr(images.transform),
            "image_column": images.image_column,
        },
        sort_keys=True,
    )
    key = hashlib.sha256(key_src.encode()).hexdigest()[:24]
    path = cache_dir / f"{key}.safetensors"
    with accelerator.main_process_first():
        if not path.is_file() and accelerator.is_main_process:
            loader = torch.utils.data.DataLoader(images, batch_size=batch_size, num_workers=num_workers, shuffle=False)
            feats, labels = [], []
            model.eval().to(accelerator.device)
            from tqdm.auto import tqdm

            with torch.inference_mode(), accelerator.autocast():
                for x, y in tqdm(loader, desc="caching features", disable=not accelerator.is_local_main_process, dynamic_ncols=True):
                    x = x.to(accelerator.device)
                    if channels_last:
                        x = x.contiguous(memory_format=torch.channels_last)
                    feats.append(C.pooled_features(model, x).float().cpu())
                    labels.append(torch.as_tensor(y))
            cache_dir.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            save_file({"features": torch.cat(feats), "labels": torch.cat(labels)}, str(tmp), metadata={"key": key_src})
            tmp.replace(path)
            hit = False
        else:
            hit = True
    data = load_file(str(path))
    return data["features"], data["labels"], hit


def _cl(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last) if channels_last and x.ndim == 4 else x


def run_strategy(
    strategy: str,
    margs: ModelArguments,
    dargs: DataArguments,
    targs: TrainingArguments,
    accelerator: Accelerator,
    data: PreparedData,
) -> dict:
    """Train one strategy; save `<output_dir>/<strategy>/` (timm layout + confusion matrix); return its results."""
    from torch.utils.data import DataLoader

    run_dir = Path(targs.output_dir) / strategy
    num_classes = len(data.label_names)
    t_wall = time.perf_counter()
    mem = PeakMemory()
    with mem:
        torch.manual_seed(targs.seed)
        model = C.create_classifier(margs.model_name_or_path, num_classes, pretrained=strategy != "scratch")
        if margs.head == "mlp":
            C.set_classifier(model, C.make_head(model.num_features, num_classes, "mlp", margs.head_hidden_size, margs.head_dropout))
        if margs.channels_last:
            model = model.to(memory_format=torch.channels_last)
        data_cfg = data_config_for(model, dargs.image_size)
        train_tf, eval_tf = build_transforms(data_cfg, dargs.augment())
        frozen = C.apply_strategy(model, strategy, margs.unfreeze)
        total_params = sum(p.numel() for p in model.parameters())
        trainable = C.trainable_parameters(model)
        eval_images = TransformedImages(data.eval, data.image_column, data.label_column, eval_tf)
        extra: dict = {}
        cl = margs.channels_last

        def evaluator(eval_dl, forward=None):
            """Every epoch's evaluation, confusion matrix included (the last one is the reported one)."""
            return lambda m: evaluate_classifier(accelerator, m, eval_dl, num_classes, forward=forward, confusion=True)

        if strategy == "feature":
            cache = Path(margs.feature_cache_dir) if margs.feature_cache_dir else assets.hfdl_cache_dir() / "features"
            t_feat = time.perf_counter()
            kw = dict(cache_dir=cache, batch_size=targs.per_device_eval_batch_size, num_workers=targs.dataloader_num_workers, channels_last=cl)
            train_images = TransformedImages(data.train, data.image_column, data.label_column, eval_tf)
            xtr, ytr, hit_tr = cached_features(accelerator, model, train_images, **kw)
            xev, yev, hit_ev = cached_features(accelerator, model, eval_images, **kw)
            extra["feature_extraction_seconds"] = time.perf_counter() - t_feat
            extra["feature_cache_hit"] = hit_tr and hit_ev
            torch.manual_seed(targs.seed)  # the head's init must not depend on whether the cache was hit
            head = C.make_head(model.num_features, num_classes, margs.head, margs.head_hidden_size, margs.head_dropout)
            train_dl = tensor_loader(xtr, ytr, batch_size=targs.per_device_train_batch_size, shuffle=True)
            eval_dl = accelerator.prepare(tensor_loader(xev, yev, batch_size=targs.per_device_eval_batch_size))
            head_args = TrainingArguments(
                **{**asdict(targs), "num_train_epochs": margs.head_epochs, "max_train_steps": None, "weight_decay": margs.head_weight_decay}
            )

            head, result = train(
                accelerator, head, None, train_dl, head_args, run_dir,
                compute_loss=lambda m, b: torch.nn.functional.cross_entropy(m(b[0]), b[1]),
                evaluate=evaluator(eval_dl), run_name=strategy, learning_rate=margs.head_learning_rate,
            )  # fmt: skip
            final = result.final_metrics  # the last epoch's evaluation
            model = C.attach_head(model, head)
            epochs = head_args.num_train_epochs
        else:
            train_images = TransformedImages(data.train, data.image_column, data.label_column, train_tf, seed=targs.seed)
            train_dl = DataLoader(
                train_images,
                batch_size=targs.per_device_train_batch_size,
                shuffle=True,
                num_workers=targs.dataloader_num_workers,
                drop_last=len(train_images) > targs.per_device_train_batch_size,
            )
            eval_dl = accelerator.prepare(DataLoader(eval_images, batch_size=targs.per_device_eval_batch_size, num_workers=targs.dataloader_num_workers))

            def forward(m, x):
                return m(_cl(x, cl))

            def train_mode(m):
                C.frozen_modules_to_eval(m.train())

            groups = C.optimizer_param_groups(model, targs.learning_rate, targs.weight_decay, margs.backbone_lr_scale if strategy == "finetune" else 1.0)
            model, result = train(
                accelerator, model, groups, train_dl, targs, run_dir,
                compute_loss=lambda m, b: torch.nn.functional.cross_entropy(forward(m, b[0]), b[1]),
                evaluate=evaluator(eval_dl, forward), train_mode=train_mode, run_name=strategy,
            )  # fmt: skip
            final = result.final_metrics
            epochs = targs.num_train_epochs
        wall = time.perf_counter() - t_wall

    results = {
        "eval_accuracy": final["eval_accuracy"],
        "eval_f1_macro": final["eval_f1_macro"],
        **({"eval_top5": final["eval_top5"]} if "eval_top5" in final else {}),
        "eval_loss": final["eval_loss"],
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
        C.save_classifier(
            model.to(memory_format=torch.contiguous_format), run_dir, data.label_names, data_cfg, head=margs.head,
            extra={"hfdl": {"strategy": strategy, "base_model": margs.model_name_or_path, "frozen_param_tensors": len(frozen)}},
        )  # fmt: skip
        plot_confusion_matrix(
            final["confusion_matrix"], data.label_names, str(run_dir / "confusion_matrix.png"), f"{strategy}: accuracy {final['eval_accuracy']:.4f}"
        )
        (run_dir / "history.json").write_text(json.dumps(result.history, indent=2))
        (run_dir / "results.json").write_text(json.dumps(results, indent=2))
    accelerator.wait_for_everyone()
    accelerator.free_memory()
    return results


def run(margs: ModelArguments, dargs: DataArguments, targs: TrainingArguments, argv: list[str] | None = None) -> dict:
    """The whole pipeline: data, each strategy, all_results.json, and the comparison for several strategies."""
    out = Path(targs.output_dir)
    strategies = margs.strategies
    check_output_dir(out, strategies, targs)
    accelerator = make_accelerator(targs)
    C.resolve_model_source(margs.model_name_or_path)  # fail on an unknown model before loading data
    dsd, source = load_image_dataset(dargs.dataset_name, dargs.train_dir, dargs.validation_dir, dargs.dataset_config_name)
    with accelerator.main_process_first():
        data = prepare_splits(
            dsd, source, dargs.image_column, dargs.label_column, dargs.train_val_split,
            dargs.max_train_samples, dargs.max_eval_samples, targs.seed, dargs.max_bad_image_fraction,
        )  # fmt: skip
    accelerator.print(f"data: {source}: {len(data.train)} train / {len(data.eval)} eval ({data.eval_split}), {len(data.label_names)} classes")
    out.mkdir(parents=True, exist_ok=True)
    if accelerator.is_main_process:
        run_config = {
            "task": "image-classification",
            "command": command_line(argv),
            "base_model": C.base_model_id(margs.model_name_or_path),
            "model_args": asdict(margs),
            "data_args": {**asdict(dargs), "embedded_default": dargs.embedded_default},
            "training_args": asdict(targs),
            "data": {
                "source": source,
                "eval_split": data.eval_split,
                "train_fingerprint": data.train._fingerprint,
                "eval_fingerprint": data.eval._fingerprint,
                "label_names": data.label_names,
            },
            "offline_assets": [
                a.provenance() for n, a in {**assets.BACKBONES, **assets.DATASETS}.items() if n in (margs.model_name_or_path, dargs.dataset_name)
            ],
            "environment": environment_info(accelerator),
        }
        (out / "run_config.json").write_text(json.dumps(run_config, indent=2, default=str))
    all_results = {}
    for strategy in strategies:
        done = out / strategy / "results.json"
        if targs.resume_from_checkpoint and done.is_file():
            accelerator.print(f"{strategy}: already finished, reusing {done}")
            all_results[strategy] = json.loads(done.read_text())
            continue
        resume = targs.resume_from_checkpoint
        if resume == "latest" and not list_checkpoints(out / strategy):
            resume = None
        s_args = TrainingArguments(**{**asdict(targs), "resume_from_checkpoint": resume})
        all_results[strategy] = run_strategy(strategy, margs, dargs, s_args, accelerator, data)
    if accelerator.is_main_process:
        (out / "all_results.json").write_text(json.dumps(all_results, indent=2))
        if len(all_results) > 1:
            from hfdl.report import write_comparison

            table = write_comparison(all_results, out, title=f"{margs.model_name_or_path} on {dargs.dataset_name or dargs.train_dir}")
            accelerator.print(table)
    return all_results
