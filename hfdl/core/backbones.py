"""timm backbones from any source: a local folder, an offline asset, a Hub id or a timm name.

One resolver and one constructor that every image task uses (classification heads today; detection,
segmentation and similarity build on `create_backbone(..., features_only=True)` or `num_classes=0`).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import timm
from torch import nn

from hfdl import assets
from hfdl.errors import HfdlError

logger = logging.getLogger(__name__)


def resolve_model_source(model_name_or_path: str) -> tuple[str, str]:
    """Return (kind, name) with kind in local | offline | hub | timm, in that resolution order."""
    if os.path.isdir(model_name_or_path):
        if not os.path.isfile(os.path.join(model_name_or_path, "config.json")):
            raise HfdlError(f"{model_name_or_path} is a directory without config.json: pass a folder saved by hfdl or timm.save_for_hf")
        return "local", model_name_or_path
    if model_name_or_path in assets.BACKBONES:
        return "offline", model_name_or_path
    name = model_name_or_path.removeprefix("hf-hub:")
    if "/" in name:
        return "hub", name
    if timm.is_model(name):
        return "timm", name
    raise HfdlError(
        f"unknown model '{model_name_or_path}': pass a local folder, an offline backbone ({', '.join(assets.BACKBONES)}), "
        "a Hub id like timm/resnet50.a1_in1k or a timm architecture name (see timm.list_models())"
    )


def base_model_id(model_name_or_path: str) -> str | None:
    """The Hub id of the pretrained weights a run starts from (None for a local folder of unknown origin)."""
    kind, name = resolve_model_source(model_name_or_path)
    if kind == "offline":
        return assets.BACKBONES[name].hub_equivalent
    if kind == "hub":
        return name
    if kind == "timm":
        cfg = timm.models.get_pretrained_cfg(name)
        return getattr(cfg, "hf_hub_id", None) or None
    base = json.loads((Path(name) / "config.json").read_text()).get("hfdl", {}).get("base_model")
    return base_model_id(base) if base and base != model_name_or_path and not os.path.isdir(base) else None


def create_backbone(model_name_or_path: str, pretrained: bool = True, **kwargs) -> nn.Module:
    """`timm.create_model` for any source, with timm's keyword arguments (`num_classes`, `features_only`,
    `drop_rate`...). Offline assets load their real weights strictly; Hub ids go through `hf-hub:`."""
    kind, name = resolve_model_source(model_name_or_path)
    if kind == "offline":
        asset = assets.BACKBONES[name]
        if not pretrained:
            return timm.create_model(asset.architecture, pretrained=False, pretrained_cfg_overlay=asset.pretrained_cfg, **kwargs)
        return assets.create_offline_backbone(name, **kwargs)
    timm_name = {"local": f"local-dir:{name}", "hub": f"hf-hub:{name}"}.get(kind, name)
    try:
        return timm.create_model(timm_name, pretrained=pretrained, **kwargs)
    except HfdlError:
        raise
    except Exception as err:
        raise _load_error(model_name_or_path, err) from err


def _hub_id(name: str) -> str:
    """The Hub repo behind a model name: the id itself, or the repo timm downloads a bare architecture from."""
    name = name.removeprefix("hf-hub:")
    if "/" in name:
        return name
    try:
        return timm.models.get_pretrained_cfg(name).hf_hub_id or name
    except Exception:
        return name


def _load_error(name: str, err: Exception) -> HfdlError:
    text = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
    offline = ", ".join(assets.BACKBONES)
    if os.environ.get("HF_HUB_OFFLINE") == "1" or any(w in text.lower() for w in ("offline", "connect", "resolve", "network", "timed out")):
        return HfdlError(
            f"could not fetch '{name}' from the Hub (offline and not cached: {type(err).__name__}): "
            f"prefetch it online with `python scripts/pull.py {_hub_id(name)}`, or use an offline backbone: {offline}"
        )
    return HfdlError(f"could not load model '{name}' ({type(err).__name__}: {text}): check the name, or use an offline backbone: {offline}")


def freeze_until_stride(backbone: nn.Module, stride: int) -> list[nn.Module]:
    """Freeze a timm `features_only` backbone's stem and early stages: every module that runs up to and including
    its output at `stride` (torchvision's `trainable_backbone_layers`, Detectron2's `freeze_at`).

    Their weights stop requiring gradients, so backward skips the costliest, highest-resolution layers; the
    returned modules must stay in eval mode while the rest trains (their BatchNorm statistics stay the pretrained
    ones): see `train_except`. `stride` 0 freezes nothing."""
    if not stride:
        return []
    stages = {info["reduction"]: info["module"] for info in backbone.feature_info.info}
    if stride not in stages:
        raise HfdlError(
            f"--freeze_until_stride {stride}: this backbone's stages end at strides {', '.join(map(str, sorted(stages)))}: use one of them, or 0 to train every layer"
        )
    target, units = stages[stride], []  # (name, module) in execution order: registration order in timm's feature nets
    for name, child in backbone.named_children():
        if target.startswith(name + "."):  # a stage inside a container (efficientnet's blocks.1): its stages one by one
            units += [(f"{name}.{sub}", grandchild) for sub, grandchild in child.named_children()]
        else:
            units.append((name, child))
    names = [name for name, _ in units]
    if target not in names:
        raise HfdlError(f"--freeze_until_stride {stride}: cannot find the stage {target} in this backbone: use 0 to train every layer")
    frozen = [module for _, module in units[: names.index(target) + 1]]
    for module in frozen:
        module.requires_grad_(False)
    return frozen


def train_except(frozen: list[nn.Module]):
    """The shared loop's `train_mode` for a model whose `frozen` modules keep their pretrained BatchNorm statistics."""

    def train_mode(model: nn.Module) -> None:
        model.train()
        for module in frozen:
            module.eval()

    return train_mode
