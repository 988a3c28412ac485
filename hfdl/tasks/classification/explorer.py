"""The CNN chapter of the lectures as functions a student can call (and `spaces/cnn_explorer` shows): a convolution
with any kernel, stride, padding and dilation and its output size by the formula; pooling; the feature maps, first-layer
filters and receptive fields of a pretrained timm backbone; and the training augmentations of `finetune.py`.

    out, sizes = convolve(image, KERNELS["sobel x"], stride=1, padding="same")
    output_size(28, 3, 1, 2)                                   # floor((28 + 2*1 - 3) / 2) + 1 = 14
    grid, info = feature_maps(backbone, image, stage=2)         # the most active channels of stage 2
    receptive_fields(backbone)                                   # [{"stage": 0, "stride": 2, "receptive_field": 3}, ...]
    grid = augmentation_preview(image, AugmentConfig(rotation=15), seed=0)   # finetune.py's train transform, 8 samples

Images are PIL; a convolution runs on each colour channel with the same kernel (cross-correlation, as in CNNs).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from hfdl.errors import HfdlError

KERNELS: dict[str, list[list[float]]] = {
    "identity": [[0, 0, 0], [0, 1, 0], [0, 0, 0]],
    "box blur": [[1 / 9] * 3] * 3,
    "gaussian": [[v / 256 for v in row] for row in ([1, 4, 6, 4, 1], [4, 16, 24, 16, 4], [6, 24, 36, 24, 6], [4, 16, 24, 16, 4], [1, 4, 6, 4, 1])],
    "sharpen": [[0, -1, 0], [-1, 5, -1], [0, -1, 0]],
    "sobel x": [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]],
    "sobel y": [[-1, -2, -1], [0, 0, 0], [1, 2, 1]],
    "laplacian": [[0, 1, 0], [1, -4, 1], [0, 1, 0]],
    "emboss": [[-2, -1, 0], [-1, 1, 1], [0, 1, 2]],
}
MAX_SIDE = 512  # images are shrunk to this longer side first: the lesson is the operation, not megapixels


def output_size(n: int, k: int, p: int, s: int, d: int = 1) -> int:
    """The lectures' formula `floor((n + 2p - k) / s) + 1`, with a dilated kernel's extent `d (k - 1) + 1` as k."""
    return math.floor((n + 2 * p - (d * (k - 1) + 1)) / s) + 1


def padding_amount(padding: str | int, k: int, d: int = 1) -> int:
    """'valid' -> 0, 'same' -> d (k - 1) / 2 (the output keeps the input's size at stride 1), a number -> itself."""
    if isinstance(padding, str) and padding.strip().lower() in ("valid", "same"):
        return 0 if padding.strip().lower() == "valid" else d * (k - 1) // 2
    try:
        p = int(padding)
    except (TypeError, ValueError):
        raise HfdlError(f"padding {padding!r} is unknown: use valid, same or a whole number of pixels") from None
    if p < 0:
        raise HfdlError(f"padding must be >= 0, got {p}")
    return p


def image_tensor(image, max_side: int = MAX_SIDE) -> torch.Tensor:
    """A PIL image (any mode) as (1, 3, H, W) in [0, 1], its longer side at most `max_side`."""
    from hfdl.core.images import image_to_tensor

    side = max(image.size)
    return image_to_tensor(image, min(side, max_side) if side > max_side else None)


def _kernel(kernel) -> torch.Tensor:
    try:
        k = torch.tensor(kernel, dtype=torch.float32)
    except (TypeError, ValueError):
        raise HfdlError("the kernel must be a square grid of numbers (3 x 3 or 5 x 5)") from None
    if k.ndim != 2 or k.shape[0] != k.shape[1] or k.shape[0] not in (3, 5) or not torch.isfinite(k).all():
        raise HfdlError(f"the kernel must be a 3 x 3 or 5 x 5 grid of numbers, got {tuple(k.shape)}")
    return k


def _check(name: str, value: int, low: int, high: int) -> int:
    if not low <= int(value) <= high:
        raise HfdlError(f"{name} must be between {low} and {high}, got {value}")
    return int(value)


def convolve(image, kernel, stride: int = 1, padding: str | int = "same", dilation: int = 1) -> tuple[torch.Tensor, dict]:
    """The kernel slid over each colour channel -> ((1, 3, H', W') for display in [0, 1], sizes).

    A kernel whose weights sum to 0 (an edge detector) gives signed responses: shown as their magnitude scaled to its
    99.5th percentile; any other is shown as is, clipped to [0, 1]. `sizes` holds the formula's output size beside the measured one.
    """
    k = _kernel(kernel)
    stride, dilation = _check("stride", stride, 1, 8), _check("dilation", dilation, 1, 4)
    p = padding_amount(padding, k.shape[0], dilation)
    x = image_tensor(image)
    n_h, n_w = x.shape[-2:]
    if (d_k := dilation * (k.shape[0] - 1) + 1) > min(n_h, n_w) + 2 * p:
        raise HfdlError(f"the dilated kernel ({d_k} pixels) is larger than the padded image: lower the dilation or add padding")
    weight = k.expand(3, 1, *k.shape).contiguous()
    y = F.conv2d(x, weight, stride=stride, padding=p, dilation=dilation, groups=3)
    edge = abs(float(k.sum())) < 1e-6
    # an edge map is mostly near 0 with a few very strong responses: scaled to its 99.5th percentile, clipped above
    shown = (y.abs() / torch.quantile(y.abs().flatten(), 0.995).clamp(min=1e-8)).clamp(0, 1) if edge else y.clamp(0, 1)
    k_size = int(k.shape[0])
    sizes = {
        "input": [n_h, n_w],
        "kernel": k_size,
        "stride": stride,
        "padding": p,
        "dilation": dilation,
        "formula": [output_size(n_h, k_size, p, stride, dilation), output_size(n_w, k_size, p, stride, dilation)],
        "measured": list(y.shape[-2:]),
        "shown_as": "magnitude, scaled to its 99.5th percentile (the kernel sums to 0)" if edge else "values clipped to [0, 1]",
    }
    return shown, sizes


def pool(image, kind: str = "max", size: int = 2, stride: int | None = None) -> tuple[torch.Tensor, dict]:
    """Max or average pooling -> ((1, 3, H', W') in [0, 1], sizes)."""
    if kind not in ("max", "average"):
        raise HfdlError(f"pooling '{kind}' is unknown: use max or average")
    size = _check("pool size", size, 1, 16)
    stride = _check("stride", stride or size, 1, 16)
    x = image_tensor(image)
    if size > min(x.shape[-2:]):
        raise HfdlError(f"the pool size {size} is larger than the image ({x.shape[-1]} x {x.shape[-2]})")
    y = F.max_pool2d(x, size, stride) if kind == "max" else F.avg_pool2d(x, size, stride)
    n_h, n_w = x.shape[-2:]
    return y, {
        "input": [n_h, n_w],
        "size": size,
        "stride": stride,
        "formula": [output_size(n_h, size, 0, stride), output_size(n_w, size, 0, stride)],
        "measured": list(y.shape[-2:]),
    }


def _model_input(backbone: nn.Module, image) -> torch.Tensor:
    from timm.data import create_transform

    from hfdl.core.feature_cache import data_config_for
    from hfdl.core.images import to_rgb

    return create_transform(**data_config_for(backbone, None), is_training=False)(to_rgb(image))[None]


def _normalise_each(maps: torch.Tensor) -> torch.Tensor:
    """(N, H, W) -> each map scaled to [0, 1] on its own."""
    flat = maps.flatten(1)
    lo, hi = flat.min(1).values[:, None, None], flat.max(1).values[:, None, None]
    return (maps - lo) / (hi - lo).clamp(min=1e-8)


@torch.inference_mode()
def feature_maps(backbone: nn.Module, image, stage: int, count: int = 16) -> tuple[torch.Tensor, dict]:
    """A `features_only` backbone's stage output for an image -> (the `count` most active channels as a (count, 1,
    h, w) stack in [0, 1], info: the stage's shape, stride and the channels shown)."""
    info = backbone.feature_info
    if not 0 <= stage < len(info):
        raise HfdlError(f"stage {stage} does not exist: this backbone has stages 0 to {len(info) - 1}")
    backbone.eval()
    x = _model_input(backbone, image)
    f = backbone(x)[stage][0]
    top = f.mean((1, 2)).argsort(descending=True)[:count]
    return _normalise_each(f[top])[:, None], {
        "stage": stage,
        "input": list(x.shape[-2:]),
        "shape": list(f.shape),
        "stride": info[stage]["reduction"],
        "channels_shown": top.tolist(),
    }


def first_layer_filters(backbone: nn.Module) -> torch.Tensor:
    """The first convolution's kernels as small RGB images (each scaled to [0, 1] on its own): (C, 3, k, k)."""
    conv = next((m for m in backbone.modules() if isinstance(m, nn.Conv2d)), None)
    if conv is None or conv.in_channels != 3:
        raise HfdlError("this backbone has no RGB first convolution to show")
    w = conv.weight.detach().float()
    flat = w.flatten(1)
    lo, hi = flat.min(1).values[:, None, None, None], flat.max(1).values[:, None, None, None]
    return (w - lo) / (hi - lo).clamp(min=1e-8)


def receptive_fields(backbone: nn.Module, input_size: int = 224) -> list[dict]:
    """Each stage's theoretical receptive field (pixels of the input one output unit sees) and stride, from the
    convolutions and poolings the forward pass runs, in order: r += (k - 1) d j, then j *= s. Layers on 1 x 1 maps
    (squeeze-excitation) are left out (they would make it global)."""
    calls: list[tuple[int, int, int]] = []  # (kernel, stride, dilation) in call order

    def hook(module, inputs, output):
        if inputs[0].shape[-1] <= 1:
            return
        if isinstance(module, nn.Conv2d):
            calls.append((module.kernel_size[0], module.stride[0], module.dilation[0]))
        else:
            k, s = module.kernel_size, module.stride
            calls.append((k if isinstance(k, int) else k[0], s if isinstance(s, int) else s[0], 1))

    handles = [m.register_forward_hook(hook) for m in backbone.modules() if isinstance(m, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d))]
    outputs: list[int] = []  # how many calls had run when each stage's output was produced
    stage_handles = []
    try:
        modules = dict(backbone.named_modules())
        for feature in backbone.feature_info.get_dicts():
            module = modules.get(feature["module"]) or modules.get(feature["module"].replace(".", "_"))
            if module is None:
                raise HfdlError(f"cannot find the module of stage {feature['module']}")
            stage_handles.append(module.register_forward_hook(lambda m, i, o: outputs.append(len(calls))))
        backbone.eval()
        with torch.inference_mode():
            backbone(torch.zeros(1, 3, input_size, input_size))
    finally:
        for h in handles + stage_handles:
            h.remove()
    stages, r, j, done = [], 1, 1, 0
    for stage, n in enumerate(outputs[: len(backbone.feature_info)]):
        for k, s, d in calls[done:n]:
            r += (k - 1) * d * j
            j *= s
        done = n
        stages.append({"stage": stage, "stride": j, "receptive_field": r})
    return stages


def augmentation_preview(image, aug, seed: int = 0, count: int = 8, image_size: int = 224) -> torch.Tensor:
    """`count` samples of finetune.py's training transform (the same `build_transforms`, timm's ImageNet mean/std) for
    one image, seeded as training seeds them (`SeededImages`: sample i of epoch 0 with `seed`): the same seed, the same
    grid. Returns (count, 3, S, S) in [0, 1]."""
    from hfdl.core.images import SeededImages, to_rgb
    from hfdl.core.labelled_images import build_transforms

    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    cfg = {"input_size": (3, image_size, image_size), "interpolation": "bicubic", "mean": mean, "std": std, "crop_pct": 1.0}
    train_tf, _ = build_transforms(cfg, aug)
    img = to_rgb(image)
    seeded = SeededImages([img] * count, seed=seed)
    out = torch.stack([seeded.seeded(i, train_tf, img) for i in range(count)])
    return (out * torch.tensor(std)[:, None, None] + torch.tensor(mean)[:, None, None]).clamp(0, 1)
