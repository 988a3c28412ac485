"""Sample quality on one feature network: FID and KID (torchmetrics) on the penultimate features of a
classifier trained for the purpose on the same dataset.

Inception FID compares ImageNet features of 299 px RGB photos; on 28 px grayscale clothes it mostly
measures upsampling artefacts, and its weights need the internet. So hfdl names its default what it is:
"FID, <dataset> classifier features", with the classifier's test accuracy beside it. The classifier is
trained once per dataset (seeded, a few epochs of a small CNN) and cached; `--fid_features inception` uses
torchmetrics' Inception FID (torch-fidelity, weights from the internet).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import warnings

import torch
from safetensors.torch import load_file
from torch import nn

from hfdl.assets.cache import hfdl_cache_dir, save_tensors_atomically
from hfdl.errors import HfdlError

logger = logging.getLogger(__name__)

FEATURE_CLASSIFIER_VERSION = 1  # bump when the architecture or recipe changes (new cache key)


class FeatureClassifier(nn.Module):
    """A small CNN (three 3x3 convolutions with BatchNorm and ReLU, two max-pools, global average) whose 128-d
    penultimate activations are the features FID / KID compare. `forward` returns those features
    (torchmetrics calls it on images in [0, 1]); `classify` the logits."""

    num_features = 128

    def __init__(self, channels: int, num_classes: int):
        super().__init__()

        def block(i, o):
            return [nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU(True)]

        self.body = nn.Sequential(
            *block(channels, 32), nn.MaxPool2d(2), *block(32, 64), nn.MaxPool2d(2), *block(64, 128), nn.AdaptiveAvgPool2d(1), nn.Flatten()
        )
        self.head = nn.Linear(128, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, S, S) in [0, 1] -> (B, 128)
        return self.body(x.float() * 2 - 1)

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self(x))


def _key(train: torch.Tensor, train_labels: torch.Tensor, epochs: int, seed: int) -> str:
    h = hashlib.sha256()
    h.update(f"v{FEATURE_CLASSIFIER_VERSION};{tuple(train.shape)};{epochs};{seed};".encode())
    h.update(train.contiguous().numpy().tobytes())
    h.update(train_labels.numpy().astype("int64").tobytes())
    return h.hexdigest()[:16]


def feature_classifier(
    train: torch.Tensor, train_labels: torch.Tensor, test: torch.Tensor, test_labels: torch.Tensor, num_classes: int, epochs: int = 2, seed: int = 0
) -> tuple[FeatureClassifier, dict]:
    """The FID feature network of this dataset: trained once on `train` (uint8 (N, C, S, S)), scored on
    `test`, cached under the hfdl cache by a hash of the data; returns (network in eval mode, info with
    its test accuracy)."""
    key = _key(train, train_labels, epochs, seed)
    folder = hfdl_cache_dir() / "fid_classifiers" / key
    model = FeatureClassifier(train.shape[1], num_classes)
    if (folder / "info.json").is_file():
        model.load_state_dict(load_file(folder / "model.safetensors"))
        return model.eval(), json.loads((folder / "info.json").read_text())
    t0 = time.perf_counter()
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    steps = epochs * -(-len(train) // 128)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(train), generator=g)
        for i in range(0, len(train), 128):
            idx = order[i : i + 128]
            x = train[idx].float() / 255
            if torch.rand((), generator=g) < 0.5:
                x = x.flip(3)  # horizontal flips: features that do not hinge on a side
            loss = nn.functional.cross_entropy(model.classify(x), train_labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    model.eval()
    with torch.no_grad():
        pred = torch.cat([model.classify(test[i : i + 512].float() / 255).argmax(1) for i in range(0, len(test), 512)])
    info = {
        "name": "hfdl FeatureClassifier",
        "description": "a 3-convolution CNN trained for the purpose on the training split; FID/KID use its 128-d penultimate features",
        "test_accuracy": (pred == test_labels).float().mean().item(),
        "epochs": epochs,
        "seed": seed,
        "train_images": len(train),
        "train_seconds": time.perf_counter() - t0,
        "cache_key": key,
    }
    save_tensors_atomically(folder, "model.safetensors", model.state_dict(), info)
    logger.info("FID feature classifier trained: test accuracy %.4f in %.0f s", info["test_accuracy"], info["train_seconds"])
    return model, info


class _Precomputed(nn.Module):
    """The metrics' "network": features are computed once by the feature network and fed to FID and KID alike."""

    def __init__(self, num_features: int):
        super().__init__()
        self.num_features = num_features

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features


class SampleQuality:
    """FID and KID of generated images against a fixed real set, on one feature network (torchmetrics).

    Every process computes the same numbers on its own (no cross-process sync): evaluation stays collective-free.
    """

    def __init__(self, feature_net: nn.Module, real: torch.Tensor, batch_size: int = 500):
        from torchmetrics.image.fid import FrechetInceptionDistance
        from torchmetrics.image.kid import KernelInceptionDistance

        self.net, self.batch_size, self.num_real = feature_net, batch_size, len(real)
        identity = _Precomputed(feature_net.num_features)
        warnings.filterwarnings("ignore", message="Metric `Kernel Inception Distance` will save all extracted features")  # by design: features are small
        self.fid = FrechetInceptionDistance(feature=identity, reset_real_features=False, sync_on_compute=False)
        self.kid = KernelInceptionDistance(feature=identity, subset_size=min(1000, len(real)), subsets=50, reset_real_features=False, sync_on_compute=False)
        feats = self.features(real)
        self.fid.update(feats, real=True)
        self.kid.update(feats, real=True)

    @torch.no_grad()
    def features(self, images: torch.Tensor) -> torch.Tensor:
        """The feature network's (N, D) features of images (uint8, or float in [0, 1])."""
        return torch.cat([self.net(_as_float(images[i : i + self.batch_size])) for i in range(0, len(images), self.batch_size)])

    @torch.no_grad()
    def __call__(self, fake: torch.Tensor) -> dict[str, float]:
        """{"fid", "kid", "kid_std"} of `fake` (N, C, S, S), uint8 or float in [0, 1], against the real set."""
        feats = self.features(fake)
        self.fid.reset()  # the real statistics stay (reset_real_features=False)
        self.kid.reset()
        self.fid.update(feats, real=False)
        self.kid.update(feats, real=False)
        self.kid.subset_size = min(1000, len(fake), self.num_real)
        with torch.random.fork_rng():
            torch.manual_seed(0)  # KID draws random subsets: seeded, so the same images give the same number
            kid_mean, kid_std = self.kid.compute()
        return {"fid": float(self.fid.compute()), "kid": float(kid_mean), "kid_std": float(kid_std)}


def _as_float(x: torch.Tensor) -> torch.Tensor:
    return x.float() / 255 if x.dtype == torch.uint8 else x.float()


def inception_quality(real: torch.Tensor):
    """torchmetrics' Inception FID (needs torch-fidelity and its weights from the internet); same call as SampleQuality."""
    try:
        from torchmetrics.image.fid import FrechetInceptionDistance

        fid = FrechetInceptionDistance(feature=2048, normalize=True, reset_real_features=False)
    except Exception as err:
        raise HfdlError(
            f"--fid_features inception could not build torchmetrics' Inception network ({type(err).__name__}: {str(err).splitlines()[0][:160]}): "
            "`pip install torch-fidelity` with internet, or use --fid_features classifier"
        ) from err

    def rgb(x):
        x = _as_float(x)
        return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x

    for i in range(0, len(real), 200):
        fid.update(rgb(real[i : i + 200]), real=True)

    def score(fake: torch.Tensor) -> dict[str, float]:
        fid.reset()
        for i in range(0, len(fake), 200):
            fid.update(rgb(fake[i : i + 200]), real=False)
        return {"fid": float(fid.compute())}

    return score
