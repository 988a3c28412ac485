"""A semantic segmenter on any timm backbone: a class for every pixel, as the lectures end their CNN use cases.

A timm `features_only` backbone gives maps at strides 4, 8, 16 and 32; one of three decoders turns them into
class scores for every pixel:

    unet     the encoder-decoder with skip connections: upsample, concatenate the skip map of that stride, two 3x3 convs
    fpn      a feature pyramid: 1x1 laterals, top-down upsample-and-add, each level upsampled to stride 4 and summed
    lraspp   torchvision's LR-ASPP head (MobileNetV3): the last map gated by its global average, upsampled to stride 8
             and added to a 1x1 classifier of the stride-8 map

`upsample="interpolate"` upsamples bilinearly (after a 1x1 conv); `"transposed"` uses learned transposed convolutions
instead (the lectures' comparison), those that replace a plain bilinear resize started as one.

    model = TimmSegmenter("tf_efficientnet_lite0", num_classes=11, label_names=[...], decoder="unet")
    logits = model(model.normalize(images))          # (B, K, H, W) at the input size
    masks = model.predict(model.normalize(images))   # (B, H, W) class ids
    mask = segment_in_image(load_segmenter("outputs/segmenter"), Image.open("photo.jpg"))  # at the photo's own size

Inference and save/load only (the Space imports it): a `PyTorchModelHubMixin` folder (config.json + model.safetensors)
loaded strictly; `load_segmenter` loads a transformers segmenter folder (SegFormer...) too.
"""

from __future__ import annotations

import colorsys

import torch
import torch.nn.functional as F
from torch import nn

from hfdl.core.hubmodel import StrictHubMixin
from hfdl.errors import HfdlError

OUT_INDICES = (-4, -3, -2, -1)  # the last four stages: strides 4, 8, 16, 32
IGNORE_INDEX = 255  # mask value of pixels that count in neither the loss nor the metrics
BACKGROUND_NAMES = ("background", "_background_", "unlabeled", "unlabelled", "void")  # left uncoloured in overlays
UPSAMPLES = ("interpolate", "transposed")
OUTPUT_STRIDES = (32, 16, 8)  # the backbone's last map: strided (32) or dilated (16, 8)
SKIP_STRIDES = (4, 8, 16)  # LR-ASPP's skip maps, by the stride of their level in the undilated backbone (index 0, 1, 2 of OUT_INDICES)


class ConvBnAct(nn.Sequential):
    def __init__(self, cin: int, cout: int, k: int = 3):
        super().__init__(nn.Conv2d(cin, cout, k, padding=k // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def bilinear_kernel(channels: int, factor: int) -> torch.Tensor:
    """The (channels, 1, 2f, 2f) weights of a depthwise transposed convolution that upsamples bilinearly by `factor` (FCN)."""
    size = 2 * factor
    centre = factor - 0.5
    ramp = 1 - (torch.arange(size, dtype=torch.float32) - centre).abs() / factor  # (2f,)
    return (ramp[:, None] * ramp[None, :]).expand(channels, 1, size, size).clone()


class Resize(nn.Module):
    """(B, C, h, w) -> (B, C, H, W): bilinear ("interpolate") or a depthwise transposed conv started as bilinear ("transposed")."""

    def __init__(self, channels: int, factor: int, mode: str):
        super().__init__()
        self.deconv = None
        if mode == "transposed" and factor > 1:  # factor 1: a dilated backbone's levels of one stride, nothing to upsample
            self.deconv = nn.ConvTranspose2d(channels, channels, 2 * factor, factor, factor // 2, groups=channels, bias=False)
            with torch.no_grad():
                self.deconv.weight.copy_(bilinear_kernel(channels, factor))

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        if self.deconv is not None:
            x = self.deconv(x)
        return x if tuple(x.shape[-2:]) == tuple(size) else F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class Up(nn.Module):
    """(B, cin, h, w) -> (B, cout, H, W), H = h x factor: a 1x1 conv then bilinear ("interpolate"), or a learned
    stride-`factor` transposed convolution ("transposed"); each followed by batch norm and ReLU."""

    def __init__(self, cin: int, cout: int, factor: int, mode: str):
        super().__init__()
        if mode == "interpolate" or factor == 1:  # factor 1: a dilated backbone's levels of one stride
            self.conv = ConvBnAct(cin, cout, 1)  # at the low resolution, before the resize: 4x cheaper than after it
        else:
            self.conv = nn.Sequential(nn.ConvTranspose2d(cin, cout, 2 * factor, factor, factor // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        x = self.conv(x)
        return x if tuple(x.shape[-2:]) == tuple(size) else F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class UNetDecoder(nn.Module):
    """From stride 32 up to stride 4: upsample, concatenate the backbone's map of that stride, two 3x3 convs; 1x1 classifier.
    Widths 4C, 2C, C at strides 16, 8, 4."""

    stride = 4

    def __init__(self, in_channels: list[int], channels: int, num_classes: int, mode: str, strides=(4, 8, 16, 32)):
        super().__init__()
        widths = [channels * 4, channels * 2, channels]  # strides 16, 8, 4
        skips = in_channels[-2::-1]  # the stride-16, 8, 4 maps' channels
        cins = [in_channels[-1], *widths[:-1]]
        factors = [hi // lo for hi, lo in zip(strides[:0:-1], strides[-2::-1])]  # 2, 2, 2 (1 where the backbone is dilated)
        self.ups = nn.ModuleList(Up(cin, w, f, mode) for cin, w, f in zip(cins, widths, factors))
        self.blocks = nn.ModuleList(nn.Sequential(ConvBnAct(w + s, w), ConvBnAct(w, w)) for w, s in zip(widths, skips))
        self.classifier = nn.Conv2d(channels, num_classes, 1)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        x = feats[-1]  # (B, C32, H/32, W/32)
        for up, block, skip in zip(self.ups, self.blocks, feats[-2::-1]):
            x = block(torch.cat([up(x, skip.shape[-2:]), skip], 1))  # (B, w, H/s, W/s)
        return self.classifier(x)  # (B, K, H/4, W/4)


class FPNDecoder(nn.Module):
    """Feature pyramid: 1x1 laterals to one width, top-down upsample-and-add, a 3x3 conv per level; every level resized
    to stride 4 and summed, then a 3x3 conv and a 1x1 classifier."""

    stride = 4

    def __init__(self, in_channels: list[int], channels: int, num_classes: int, mode: str, strides=(4, 8, 16, 32)):
        super().__init__()
        self.lateral = nn.ModuleList(ConvBnAct(c, channels, 1) for c in in_channels)
        self.ups = nn.ModuleList(Up(channels, channels, hi // lo, mode) for lo, hi in zip(strides, strides[1:]))
        self.smooth = nn.ModuleList(ConvBnAct(channels, channels, 3) for _ in in_channels)
        self.merge = nn.ModuleList(Resize(channels, s // strides[0], mode) for s in strides[1:])
        self.head = nn.Sequential(ConvBnAct(channels, channels, 3), nn.Conv2d(channels, num_classes, 1))

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        maps = [lat(f) for lat, f in zip(self.lateral, feats)]  # each (B, C, H_l, W_l), fine to coarse
        for i in range(len(maps) - 2, -1, -1):
            maps[i] = maps[i] + self.ups[i](maps[i + 1], maps[i].shape[-2:])
        maps = [s(m) for s, m in zip(self.smooth, maps)]
        size = maps[0].shape[-2:]
        merged = maps[0] + sum(resize(m, size) for resize, m in zip(self.merge, maps[1:]))  # (B, C, H/4, W/4)
        return self.head(merged)


class LRASPPDecoder(nn.Module):
    """torchvision's LR-ASPP head on the last ("high") map and finer skip maps: the high map's 1x1 conv gated by a
    sigmoid of its global average, resized to the finest skip's stride and classified, plus a classifier of each skip
    map (torchvision: a 1x1 classifier of the stride-8 map; `skips` (1, 2) adds the stride-16 one, as FCN-16s adds its
    pool4 scores; `skip_channels` > 0 puts a 3x3 conv + BN + ReLU of that width before each skip's 1x1 classifier,
    as DeepLabv3+ refines its low-level map, so the skip maps are classified from their neighbourhood)."""

    def __init__(self, in_channels: list[int], channels: int, num_classes: int, mode: str, strides=(4, 8, 16, 32), skips=(1,), skip_channels: int = 0):
        super().__init__()
        high, finest, coarser = in_channels[-1], min(skips), sorted(set(skips) - {min(skips)})
        self.stride = strides[finest]  # of the logits
        self.skips = (finest, *coarser)
        self.cbr = ConvBnAct(high, channels, 1)
        self.scale = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(high, channels, 1, bias=False), nn.Sigmoid())
        self.resize = Resize(channels, strides[-1] // self.stride, mode)
        self.low_classifier = skip_classifier(in_channels[finest], skip_channels, num_classes)  # the finest skip's (torchvision's name)
        self.skip_classifiers = nn.ModuleList(skip_classifier(in_channels[level], skip_channels, num_classes) for level in coarser)
        self.skip_resizes = nn.ModuleList(Resize(num_classes, strides[level] // self.stride, mode) for level in coarser)
        self.high_classifier = nn.Conv2d(channels, num_classes, 1)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        low, high = feats[self.skips[0]], feats[-1]
        size = low.shape[-2:]
        high = self.cbr(high) * self.scale(high)  # (B, C, H/32, W/32)
        if self.resize.deconv is None:  # bilinear: it commutes with the 1x1 classifier, so classify the small map and resize K maps, not C
            high = self.resize(self.high_classifier(high), size)
        else:  # a learned depthwise transposed conv per channel: resize first (torchvision's order)
            high = self.high_classifier(self.resize(high, size))
        logits = self.low_classifier(low) + high  # (B, K, H/s, W/s)
        for level, classify, resize in zip(self.skips[1:], self.skip_classifiers, self.skip_resizes):
            logits = logits + resize(classify(feats[level]), size)
        return logits


def skip_classifier(cin: int, width: int, num_classes: int) -> nn.Module:
    """A skip map's classifier: 1x1 (width 0, torchvision's LR-ASPP), or a 3x3 conv + BN + ReLU of `width` then 1x1."""
    if not width:
        return nn.Conv2d(cin, num_classes, 1)
    return nn.Sequential(ConvBnAct(cin, width, 3), nn.Conv2d(width, num_classes, 1))


DECODERS = {"unet": UNetDecoder, "fpn": FPNDecoder, "lraspp": LRASPPDecoder}
DECODER_WIDTH = {"unet": 1, "fpn": 1, "lraspp": 4}  # decoder width in units of `decoder_channels`


class TimmSegmenter(
    nn.Module,
    StrictHubMixin,
    library_name="hfdl",
    tags=["image-segmentation", "semantic-segmentation", "hfdl", "timm"],
    pipeline_tag="image-segmentation",
    license="apache-2.0",
):
    """Backbone (timm, `features_only`, strides 4-32) -> decoder -> logits (B, K, H, W) at the input size.

    Args:
        backbone: a timm architecture name (the weights come from the checkpoint; the pipeline loads pretrained
            ones into `self.backbone` before training).
        num_classes: K, background included when the data has one.
        label_names: K class names, saved in config.json.
        image_size: the square input size the model was trained at.
        decoder: unet | fpn | lraspp (`decoder`, not `model_type`: config.json's `model_type` marks a transformers checkpoint).
        upsample: interpolate | transposed.
        decoder_channels: the decoder's width unit (U-Net: C at stride 4, 2C at 8, 4C at 16; FPN: C; LR-ASPP: 4C).
        mean, std: input normalisation (the backbone's).
        palette: K [r, g, b] colours for overlays (default: `default_palette`).
        frozen_stride: freeze the backbone's layers up to its feature level of this stride (0: none; 4: the stem and
            the stride-2 and -4 blocks, Detectron2's `freeze_at=2`): their weights and batch-norm statistics stay
            pretrained and no gradient flows through them, the costliest full-resolution part of a training step.
        output_stride: 32, or 16 / 8: the backbone's last stages dilated instead of strided (timm's `output_stride`,
            DeepLab's atrous backbone; torchvision's LR-ASPP MobileNetV3 runs at 16), the same weights on a finer last map.
        skip_strides: LR-ASPP only: the backbone levels (by their undilated stride, 4 / 8 / 16) whose maps get a 1x1
            classifier added to the head's scores; the finest sets the logits' stride. (8,) is torchvision's head.
        skip_channels: LR-ASPP only: 0, a 1x1 classifier per skip map (torchvision's); else a 3x3 conv + BN + ReLU of
            this width before it.
        test_time_flip: in eval mode, the logits are the mean of the image's and its mirror image's (flip test-time
            augmentation): evaluation, `predict`, `segment_in_image` and the Space all see it, for twice the inference
            time. Training (train mode) runs the image once. Off in configs saved before the option.
    """

    load_what = "a segmenter"
    load_hint = "pass a folder written by train_segmenter.py or a Hub id (cached when offline)"

    def __init__(
        self,
        backbone: str = "tf_efficientnet_lite0",
        num_classes: int = 2,
        label_names: list[str] | None = None,
        image_size: int = 160,
        decoder: str = "unet",
        upsample: str = "interpolate",
        decoder_channels: int = 32,
        mean: tuple[float, ...] = (0.5, 0.5, 0.5),
        std: tuple[float, ...] = (0.5, 0.5, 0.5),
        palette: list[list[int]] | None = None,
        frozen_stride: int = 0,
        output_stride: int = 32,
        skip_strides: tuple[int, ...] | list[int] = (8,),
        skip_channels: int = 0,
        test_time_flip: bool = False,
    ):
        super().__init__()
        import timm

        _check_config(num_classes, label_names, image_size, decoder, upsample, decoder_channels, palette, output_stride, skip_strides, skip_channels)
        self.num_classes, self.image_size, self.decoder_type = num_classes, image_size, decoder
        self.label_names = list(label_names) if label_names is not None else [str(i) for i in range(num_classes)]
        self.palette = [list(map(int, c)) for c in palette] if palette is not None else default_palette(self.label_names)
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)
        try:
            dilation = {"output_stride": output_stride} if output_stride != 32 else {}  # not every timm model takes the argument
            self.backbone = timm.create_model(backbone, pretrained=False, features_only=True, out_indices=OUT_INDICES, **dilation)
        except Exception as err:  # an unknown architecture name, or one without four feature levels
            raise HfdlError(
                f"cannot build the segmenter backbone '{backbone}' ({type(err).__name__}): use a timm architecture name with features_only"
            ) from err
        self.strides = tuple(self.backbone.feature_info.reduction())
        self.frozen_stride, self.output_stride = frozen_stride, output_stride
        self._frozen_norms = freeze_backbone_to(self.backbone, frozen_stride)
        channels = decoder_channels * DECODER_WIDTH[decoder]
        self.skip_strides, self.skip_channels = tuple(sorted(skip_strides)), skip_channels
        skips = {"skips": tuple(SKIP_STRIDES.index(s) for s in self.skip_strides), "skip_channels": skip_channels} if decoder == "lraspp" else {}
        self.decoder = DECODERS[decoder](self.backbone.feature_info.channels(), channels, num_classes, upsample, self.strides, **skips)
        self.upsample_logits = Resize(num_classes, self.decoder.stride, upsample)
        self.test_time_flip = bool(test_time_flip)
        self.to(memory_format=torch.channels_last)  # NHWC: oneDNN's fast convolution layout (as the detector; ~1.8x faster training on 2 CPU cores)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) normalised -> logits (B, K, H, W); in eval mode with `test_time_flip`, the mean of the image's
        and its mirror image's (two passes: on 2 CPU cores faster than one pass over both as a batch of 2B)."""
        pixel_values = pixel_values.contiguous(memory_format=torch.channels_last)
        logits = self._logits(pixel_values)
        if self.test_time_flip and not self.training:
            logits = (logits + self._logits(pixel_values.flip(3)).flip(3)) / 2
        return logits

    def _logits(self, pixel_values: torch.Tensor) -> torch.Tensor:
        logits = self.decoder(self.backbone(pixel_values))  # (B, K, H/s, W/s)
        return self.upsample_logits(logits, pixel_values.shape[-2:])

    def train(self, mode: bool = True):
        super().train(mode)
        for norm in self._frozen_norms:  # frozen layers keep their pretrained statistics
            norm.eval()
        return self

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] -> the backbone's normalisation."""
        return (images - self.mean) / self.std

    @torch.inference_mode()
    def predict(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Normalised (B, 3, H, W) -> class ids (B, H, W) int64."""
        return self(pixel_values).argmax(1)


def freeze_backbone_to(backbone: nn.Module, stride: int) -> list[nn.Module]:
    """Freeze a timm `features_only` backbone's parameters from its stem up to its feature level of `stride` (0: none);
    returns the batch norms in the frozen part (the model keeps them in eval mode). Any timm backbone: the level's module
    is named by `feature_info`, and parameters register in forward order (stem first)."""
    if not stride:
        return []
    levels = dict(zip(reversed(backbone.feature_info.reduction()), reversed(backbone.feature_info.module_name())))  # a dilated stride's first level
    if stride not in levels:
        raise HfdlError(f"--frozen_stride {stride} is not one of the backbone's feature strides {sorted(levels)}: pass one of them, or 0")
    prefixes = (levels[stride] + ".", levels[stride].replace(".", "_") + ".")  # FeatureListNet flattens "stages.0" to "stages_0"
    names = [name for name, _ in backbone.named_parameters()]
    last = max(i for i, name in enumerate(names) if name.startswith(prefixes))
    frozen = set(names[: last + 1])
    for name, param in backbone.named_parameters():
        param.requires_grad_(name not in frozen)
    norms = (m for m in backbone.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm))
    frozen_norms = [m for m in norms if any(True for _ in m.parameters()) and not any(p.requires_grad for p in m.parameters())]
    for norm in frozen_norms:
        norm.eval()  # from the start: a step before the loop's first model.train() must not move their statistics
    return frozen_norms


def valid_skip_strides(skip_strides) -> bool:
    """One or more of SKIP_STRIDES, each once (the rule of `--skip_strides` and of a saved config)."""
    return bool(skip_strides) and all(s in SKIP_STRIDES for s in skip_strides) and len(set(skip_strides)) == len(skip_strides)


def _check_config(
    num_classes, label_names, image_size, decoder, upsample, decoder_channels, palette, output_stride=32, skip_strides=(8,), skip_channels=0
) -> None:
    if not 1 <= num_classes < IGNORE_INDEX or image_size < 32 or decoder_channels < 1:
        raise HfdlError(f"num_classes must be in 1..254, image_size >= 32, decoder_channels >= 1; got {num_classes}, {image_size}, {decoder_channels}")
    if decoder not in DECODERS or upsample not in UPSAMPLES:
        raise HfdlError(f"decoder '{decoder}' / upsample '{upsample}' unknown: use one of {', '.join(DECODERS)} / {', '.join(UPSAMPLES)}")
    if label_names is not None and len(label_names) != num_classes:
        raise HfdlError(f"{len(label_names)} label names for {num_classes} classes: give one name per class")
    if output_stride not in OUTPUT_STRIDES:
        raise HfdlError(f"output_stride {output_stride} is not supported: use one of {', '.join(map(str, OUTPUT_STRIDES))}")
    if not isinstance(skip_channels, int) or skip_channels < 0:
        raise HfdlError(f"skip_channels must be 0 (a 1x1 classifier) or a width >= 1, got {skip_channels}")
    if not valid_skip_strides(skip_strides):
        raise HfdlError(f"skip_strides {list(skip_strides)}: name one or more of {', '.join(map(str, SKIP_STRIDES))}, each once")
    if palette is not None and (len(palette) != num_classes or any(len(c) != 3 for c in palette)):
        raise HfdlError(f"the palette needs one [r, g, b] per class ({num_classes}), got {len(palette)} entries")


def default_palette(label_names: list[str]) -> list[list[int]]:
    """One distinct colour per class: black for a background class, evenly spaced hues (varied in lightness) otherwise."""
    colours = []
    for i, name in enumerate(label_names):
        if name.lower() in BACKGROUND_NAMES:
            colours.append([0, 0, 0])
            continue
        hue = (i * 0.618033988749895) % 1.0  # golden-ratio steps: neighbouring ids get far-apart hues
        r, g, b = colorsys.hsv_to_rgb(hue, 0.75, (1.0, 0.8, 0.6)[(i // 3) % 3])
        colours.append([round(r * 255), round(g * 255), round(b * 255)])
    return colours


def model_palette(model) -> list[list[int]]:
    """The model's palette (a TimmSegmenter's config), else the default one for its label names."""
    return getattr(model, "palette", None) or default_palette(model.label_names)


def background_ids(label_names: list[str]) -> tuple[int, ...]:
    """Ids of classes named background / unlabeled / void: left uncoloured in overlays."""
    return tuple(i for i, name in enumerate(label_names) if name.lower() in BACKGROUND_NAMES)


@torch.inference_mode()
def segment_in_image(model, image) -> torch.Tensor:
    """One RGB PIL image (or path / array) -> class ids (H, W) int64 at the image's own size: the image is resized to the
    model's square input (as in training), the logits resized back bilinearly, then the argmax. Any model `load_segmenter` gives."""
    from hfdl.core.images import image_to_tensor, open_image

    img = open_image(image)
    x = image_to_tensor(img)  # (1, 3, H, W) in [0, 1]
    resized = F.interpolate(x, size=(model.image_size, model.image_size), mode="bilinear", antialias=True, align_corners=False)
    logits = model(model.normalize(resized.to(model.mean.device))).float()  # (1, K, S, S)
    logits = F.interpolate(logits, size=(img.height, img.width), mode="bilinear", align_corners=False)
    return logits[0].argmax(0).cpu()


def overlay(image, mask: torch.Tensor, palette: list[list[int]], alpha: float = 0.5, transparent: tuple[int, ...] = ()) -> "PIL.Image.Image":  # noqa: F821
    """The image with each pixel's class colour blended in at `alpha`; classes in `transparent` and ignored pixels (255) stay as they are."""
    import numpy as np
    from PIL import Image

    from hfdl.core.images import open_image

    img = np.asarray(open_image(image), dtype=np.float32)  # (H, W, 3)
    ids = mask.cpu().numpy().astype(np.int64)
    if ids.shape != img.shape[:2]:
        raise HfdlError(f"the mask is {ids.shape[1]}x{ids.shape[0]}, the image {img.shape[1]}x{img.shape[0]}: pass a mask of the image's size")
    colours = np.zeros((256, 3), dtype=np.float32)
    colours[: len(palette)] = np.asarray(palette, dtype=np.float32).reshape(-1, 3)
    painted = (ids < len(palette)) & ~np.isin(ids, list(transparent))
    blended = img.copy()
    blended[painted] = (1 - alpha) * img[painted] + alpha * colours[ids[painted]]
    return Image.fromarray(np.rint(blended).clip(0, 255).astype(np.uint8), mode="RGB")


def mask_image(mask: torch.Tensor, palette: list[list[int]]) -> "PIL.Image.Image":  # noqa: F821
    """Class ids (H, W) -> a palette PNG image: its pixel values are the ids (as datasets and train_segmenter read them), shown in colour."""
    import numpy as np
    from PIL import Image

    img = Image.fromarray(mask.cpu().numpy().astype(np.uint8), mode="P")
    flat = [v for colour in palette for v in colour]
    img.putpalette(flat + [0] * (768 - len(flat)))
    return img


def load_segmenter(path_or_id: str, trust_remote_code: bool = False):
    """A segmenter folder or Hub id -> a model with `forward` (logits at input size), `predict`, `normalize`, `image_size`,
    `label_names`, `mean`: a TimmSegmenter (hfdl's config.json) or a transformers segmenter (config.json with a `model_type`)."""
    from hfdl.core.transformers_models import is_transformers_checkpoint
    from hfdl.tasks.segmentation.transformers_segmenter import TransformersSegmenter

    if is_transformers_checkpoint(path_or_id):
        return TransformersSegmenter.from_pretrained(path_or_id, trust_remote_code=trust_remote_code)
    return TimmSegmenter.from_pretrained(path_or_id)
