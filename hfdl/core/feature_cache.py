"""Frozen-backbone features, computed once and cached on disk (the feature-based strategy, the similarity
baseline, kNN anomaly detection), and what they are taken from: timm's pooled pre-logits."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import torch
from accelerate import Accelerator
from torch import nn

from hfdl.assets.cache import hfdl_cache_dir, private_tmp
from hfdl.core.labelled_images import TransformedImages


def head_parameter_names(model: nn.Module) -> set[str]:
    """Names of the classifier parameters (timm's `pretrained_cfg['classifier']`, possibly several)."""
    cfg = getattr(model, "pretrained_cfg", None)
    if cfg is None:  # not a timm model (an hfdl embedding model): no classifier to leave out
        return set()
    cls = cfg.get("classifier", "classifier")
    prefixes = (cls,) if isinstance(cls, str) else tuple(cls)
    return {n for n, _ in model.named_parameters() if n.startswith(prefixes)}


def pooled_features(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, num_features): the input the classifier sees (timm's pre_logits)."""
    return model.forward_head(model.forward_features(x), pre_logits=True)


def data_config_for(model: torch.nn.Module, image_size: int | None) -> dict:
    """timm's data config of `model` (mean, std, interpolation), at `image_size` with the whole image kept."""
    from timm.data import resolve_model_data_config

    cfg = resolve_model_data_config(model)
    if image_size is not None:
        cfg["input_size"] = (3, image_size, image_size)
        cfg["crop_pct"] = 1.0  # small inputs: keep the whole image
    return cfg


def weights_fingerprint(model: torch.nn.Module, skip: set[str] = frozenset()) -> str:
    """A digest of the model's tensors (names and values, `skip` left out): equal for the same weights, wherever they came from."""
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
    cache_dir: Path | None,
    batch_size: int,
    num_workers: int = 0,
    channels_last: bool = True,
    forward: Callable[[nn.Module, torch.Tensor], torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """Pooled frozen-backbone features of every image (eval transform), computed once and cached on disk.

    The key covers the backbone weights, the exact data (datasets fingerprint) and the transform.
    `forward(model, x)` computes the features (default: timm's pooled pre-logits, `pooled_features`; an embedding
    model passes its own). `cache_dir` None: $HF_HOME/hfdl/features. Returns (features, labels, cache_hit).
    """
    from safetensors.torch import load_file, save_file

    head = head_parameter_names(model)
    key_src = json.dumps(
        {
            "weights": weights_fingerprint(model, skip=head),
            "data": images.ds._fingerprint,
            "n": len(images),
            "transform": repr(images.transform),
            "image_column": images.image_column,
            "forward": getattr(forward, "__qualname__", "pooled_features"),
        },
        sort_keys=True,
    )
    key = hashlib.sha256(key_src.encode()).hexdigest()[:24]
    cache_dir = Path(cache_dir) if cache_dir is not None else hfdl_cache_dir() / "features"
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
                    feats.append((forward or pooled_features)(model, x).float().cpu())
                    labels.append(torch.as_tensor(y))
            cache_dir.mkdir(parents=True, exist_ok=True)
            tmp = private_tmp(path)
            save_file({"features": torch.cat(feats), "labels": torch.cat(labels)}, str(tmp), metadata={"key": key_src})
            tmp.replace(path)
            hit = False
        else:
            hit = True
    data = load_file(str(path))
    return data["features"], data["labels"], hit
