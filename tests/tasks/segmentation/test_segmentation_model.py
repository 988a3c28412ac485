"""The segmenter: every decoder and upsampling gives logits at the input size, transposed upsampling starts as
bilinear, strict save/load, segmenting an image at its own size, overlays and mask PNGs, a tiny model learns."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from hfdl.errors import HfdlError
from hfdl.tasks.segmentation.metrics import confusion_matrices, segmentation_loss, segmentation_scores
from hfdl.tasks.segmentation.model import (
    DECODERS,
    UPSAMPLES,
    Resize,
    TimmSegmenter,
    background_ids,
    default_palette,
    load_segmenter,
    mask_image,
    overlay,
    segment_in_image,
)

NAMES = ["background", "square", "bar"]


def tiny(decoder: str = "unet", upsample: str = "interpolate", num_classes: int = 3, image_size: int = 64) -> TimmSegmenter:
    torch.manual_seed(0)
    names = NAMES if num_classes == 3 else None
    return TimmSegmenter("test_efficientnet", num_classes, names, image_size, decoder, upsample, decoder_channels=8)


@pytest.mark.parametrize("decoder", list(DECODERS))
@pytest.mark.parametrize("upsample", UPSAMPLES)
def test_every_decoder_gives_logits_at_the_input_size(decoder, upsample):
    model = tiny(decoder, upsample).eval()
    assert model.strides == (4, 8, 16, 32)
    assert model(torch.zeros(2, 3, 64, 64)).shape == (2, 3, 64, 64)
    assert model(torch.zeros(1, 3, 64, 96)).shape == (1, 3, 64, 96)  # not square
    predicted = model.predict(torch.zeros(2, 3, 64, 64))
    assert predicted.shape == (2, 64, 64) and predicted.dtype == torch.int64 and predicted.max() < 3


def test_transposed_upsampling_starts_as_bilinear():
    x = torch.randn(1, 5, 8, 8)
    learned = Resize(5, 4, "transposed")(x, (32, 32))
    fixed = torch.nn.functional.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False)
    assert torch.allclose(learned[..., 2:-2, 2:-2], fixed[..., 2:-2, 2:-2], atol=1e-5)  # the same away from the border
    assert Resize(5, 4, "transposed").deconv.weight.requires_grad


def test_strict_round_trip_keeps_logits_names_and_palette(tmp_path):
    model = tiny("fpn", "transposed").eval()
    model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["label_names"] == NAMES and config["decoder"] == "fpn" and "model_type" not in config and config["upsample"] == "transposed"
    loaded = load_segmenter(str(tmp_path))
    assert isinstance(loaded, TimmSegmenter) and not loaded.training and loaded.palette == model.palette
    x = torch.randn(1, 3, 64, 64)
    assert torch.equal(model(x), loaded(x))
    weights = load_file(str(tmp_path / "model.safetensors"))
    weights["stray.weight"] = torch.zeros(1)
    save_file(weights, str(tmp_path / "model.safetensors"))
    with pytest.raises(HfdlError, match="could not load a segmenter"):
        TimmSegmenter.from_pretrained(tmp_path)


@pytest.mark.parametrize("backbone", ["test_efficientnet", "test_byobnet"])  # timm's two feature wrappers: EfficientNetFeatures, FeatureListNet
def test_frozen_stride_keeps_the_stem_pretrained_and_trains_the_rest(backbone):
    torch.manual_seed(0)
    model = TimmSegmenter(backbone, 3, NAMES, 64, "lraspp", decoder_channels=8, frozen_stride=4)
    level = dict(zip(model.backbone.feature_info.reduction(), model.backbone.feature_info.module_name()))[4]
    params = dict(model.backbone.named_parameters())
    frozen = {n for n, p in params.items() if not p.requires_grad}
    first, stride4 = next(iter(params)), [n for n in params if n.startswith((level + ".", level.replace(".", "_") + "."))]
    assert first in frozen and set(stride4) <= frozen and len(frozen) < len(params)  # the stem and the stride-4 level, not the rest
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    model.train()
    assert model._frozen_norms and not any(m.training for m in model._frozen_norms)  # their statistics stay the pretrained ones
    x, y = torch.randn(4, 3, 64, 64) * 3 + 1, torch.randint(0, 3, (4, 64, 64))
    segmentation_loss(model(x), y, 1.0).backward()
    assert all(params[n].grad is None for n in frozen)  # no gradient computed through the frozen layers
    opt.step()
    after = model.state_dict()
    unchanged = {k for k in before if torch.equal(before[k], after[k])}
    assert {f"backbone.{n}" for n in frozen} <= unchanged
    bn_stats = [f"backbone.{n}.running_mean" for n, m in model.backbone.named_modules() if m in model._frozen_norms]
    assert bn_stats and set(bn_stats) <= unchanged
    assert any(k.startswith("backbone.") and k not in unchanged for k in before) and "decoder.low_classifier.weight" not in unchanged
    with pytest.raises(HfdlError, match="--frozen_stride 2 is not one of the backbone's feature strides"):
        TimmSegmenter(backbone, 3, NAMES, 64, "lraspp", decoder_channels=8, frozen_stride=2)


@pytest.mark.parametrize("decoder", list(DECODERS))
@pytest.mark.parametrize("upsample", UPSAMPLES)
def test_a_dilated_backbone_keeps_the_weights_and_gives_a_finer_last_map(decoder, upsample, tmp_path):
    strided, dilated = tiny(decoder, upsample), TimmSegmenter("test_efficientnet", 3, NAMES, 64, decoder, upsample, decoder_channels=8, output_stride=16)
    assert dilated.strides == (4, 8, 16, 16)
    backbone = {k: v.shape for k, v in strided.backbone.state_dict().items()}
    assert {k: v.shape for k, v in dilated.backbone.state_dict().items()} == backbone  # pretrained weights load strictly
    dilated.backbone.load_state_dict(strided.backbone.state_dict())
    x = torch.randn(1, 3, 64, 64)
    last_strided, last_dilated = strided.eval().backbone(x)[-1], dilated.eval().backbone(x)[-1]
    assert last_strided.shape[-1] == 2 and last_dilated.shape[-1] == 4  # the same view, twice as fine
    assert dilated(x).shape == (1, 3, 64, 64)
    dilated.save_pretrained(tmp_path)
    loaded = load_segmenter(str(tmp_path))
    assert loaded.output_stride == 16 and torch.equal(loaded(x), dilated(x))
    with pytest.raises(HfdlError, match="output_stride 4 is not supported"):
        TimmSegmenter("test_efficientnet", 3, NAMES, 64, decoder, output_stride=4)


@pytest.mark.parametrize("upsample", UPSAMPLES)
def test_lraspp_skip_maps_add_their_scores_and_a_folder_without_them_loads_as_torchvisions_head(upsample, tmp_path):
    torch.manual_seed(0)
    head = TimmSegmenter("test_efficientnet", 3, NAMES, 64, "lraspp", upsample, decoder_channels=8)  # torchvision's: the stride-8 map
    skips = TimmSegmenter("test_efficientnet", 3, NAMES, 64, "lraspp", upsample, decoder_channels=8, skip_strides=[16, 8])
    fine = TimmSegmenter("test_efficientnet", 3, NAMES, 64, "lraspp", upsample, decoder_channels=8, skip_strides=(4, 8, 16))
    assert (head.skip_strides, skips.skip_strides, fine.skip_strides) == ((8,), (8, 16), (4, 8, 16))
    assert (head.decoder.stride, skips.decoder.stride, fine.decoder.stride) == (8, 8, 4)  # the finest skip sets the logits' stride
    extra = {k for k in skips.state_dict()} - {k for k in head.state_dict()}
    resized = {"decoder.skip_resizes.0.deconv.weight"} if upsample == "transposed" else set()  # a transposed resize learns
    assert extra == {"decoder.skip_classifiers.0.weight", "decoder.skip_classifiers.0.bias", *resized}
    skips.load_state_dict({**skips.state_dict(), **head.state_dict()})  # same weights, the stride-16 classifier aside
    x = torch.rand(2, 3, 64, 64)
    shift = 0.25 if upsample == "interpolate" else 0.0  # a constant map stays constant through a bilinear resize
    with torch.no_grad():
        skips.decoder.skip_classifiers[0].weight.zero_(), skips.decoder.skip_classifiers[0].bias.fill_(shift)
        assert torch.allclose(skips.eval()(x), head.eval()(x) + shift, atol=1e-5)  # its scores are added at stride 8
        assert fine.eval()(x).shape == (2, 3, 64, 64)
    skips.save_pretrained(tmp_path / "skips")
    loaded = TimmSegmenter.from_pretrained(tmp_path / "skips")
    assert loaded.skip_strides == (8, 16) and torch.equal(loaded(x), skips(x))
    head.save_pretrained(tmp_path / "head")  # a folder written before skip_strides / skip_channels existed: no such keys in its config
    config = json.loads((tmp_path / "head" / "config.json").read_text())
    config.pop("skip_strides"), config.pop("skip_channels")
    (tmp_path / "head" / "config.json").write_text(json.dumps(config))
    assert torch.equal(TimmSegmenter.from_pretrained(tmp_path / "head")(x), head(x))
    for bad in ((), (8, 8), (32,)):
        with pytest.raises(HfdlError, match="skip_strides"):
            TimmSegmenter("test_efficientnet", 3, NAMES, 64, "lraspp", skip_strides=bad)
    with pytest.raises(HfdlError, match="skip_channels must be 0"):
        TimmSegmenter("test_efficientnet", 3, NAMES, 64, "lraspp", skip_channels=-1)


@pytest.mark.parametrize("upsample", UPSAMPLES)
def test_lraspp_gives_torchvisions_logits_classifying_the_last_map_before_a_bilinear_resize(upsample):
    """Bilinear resizing and the 1x1 classifier commute: the head classifies the 6x6 map and resizes K maps instead of
    C (a training step 4.5% faster); a learned transposed resize is per channel, so it still resizes first."""
    torch.manual_seed(0)
    model = TimmSegmenter("test_efficientnet", 3, NAMES, 64, "lraspp", upsample, decoder_channels=8, skip_strides=(8, 16), skip_channels=4).eval()
    d = model.decoder
    with torch.no_grad():
        d.high_classifier.bias.uniform_(-1, 1)  # a bias too: the bilinear weights sum to one
        feats = model.backbone(torch.rand(2, 3, 64, 64))
        low = feats[d.skips[0]]
        expected = d.low_classifier(low) + d.high_classifier(d.resize(d.cbr(feats[-1]) * d.scale(feats[-1]), low.shape[-2:]))  # torchvision's order
        expected = expected + d.skip_resizes[0](d.skip_classifiers[0](feats[d.skips[1]]), low.shape[-2:])
        assert torch.allclose(d(feats), expected, atol=1e-5)


def test_skip_channels_classify_each_skip_map_after_a_3x3_conv(tmp_path):
    torch.manual_seed(0)
    model = TimmSegmenter("test_efficientnet", 3, NAMES, 64, "lraspp", decoder_channels=8, skip_strides=(8, 16), skip_channels=12)
    for classifier in (model.decoder.low_classifier, model.decoder.skip_classifiers[0]):
        conv, bn, classify = classifier[0][0], classifier[0][1], classifier[1]
        assert conv.kernel_size == (3, 3) and conv.out_channels == bn.num_features == classify.in_channels == 12 and classify.out_channels == 3
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        out = model.eval()(x)
    assert out.shape == (2, 3, 64, 64)
    model.save_pretrained(tmp_path / "m")
    loaded = TimmSegmenter.from_pretrained(tmp_path / "m")
    assert (loaded.skip_strides, loaded.skip_channels) == ((8, 16), 12) and torch.equal(loaded(x), out)


def test_test_time_flip_averages_the_mirror_images_logits_in_eval_mode_only(tmp_path):
    torch.manual_seed(0)
    plain = TimmSegmenter("test_efficientnet", 3, NAMES, 64, "lraspp", decoder_channels=8, skip_strides=(4, 8, 16))
    flipped = TimmSegmenter("test_efficientnet", 3, NAMES, 64, "lraspp", decoder_channels=8, skip_strides=(4, 8, 16), test_time_flip=True)
    flipped.load_state_dict(plain.state_dict())
    x = torch.rand(2, 3, 64, 96)
    with torch.no_grad():
        plain.eval(), flipped.eval()
        one, mirror = plain(x), plain(x.flip(3)).flip(3)
        assert not torch.allclose(one, mirror, atol=1e-3)  # the mirror image gives other logits: the average is not the plain pass
        assert torch.allclose(flipped(x), (one + mirror) / 2, atol=1e-6)
        assert torch.allclose(flipped(x.flip(3)), flipped(x).flip(3), atol=1e-6)  # so its prediction is mirror-symmetric
        assert torch.equal(flipped.predict(x), flipped(x).argmax(1))
        plain.train(), flipped.train()
        assert torch.allclose(flipped(x), plain(x), atol=1e-6)  # training runs the image once
    flipped.eval().save_pretrained(tmp_path / "flip")
    assert json.loads((tmp_path / "flip" / "config.json").read_text())["test_time_flip"] is True
    loaded = TimmSegmenter.from_pretrained(tmp_path / "flip")
    assert loaded.test_time_flip and torch.equal(loaded(x), flipped(x))
    config = json.loads((tmp_path / "flip" / "config.json").read_text())
    config.pop("test_time_flip")  # a folder written before the option: predicts once, as it was evaluated
    (tmp_path / "flip" / "config.json").write_text(json.dumps(config))
    assert not TimmSegmenter.from_pretrained(tmp_path / "flip").test_time_flip


def test_bad_configurations_are_one_line_errors():
    with pytest.raises(HfdlError, match="one name per class"):
        TimmSegmenter("test_efficientnet", 3, ["a", "b"])
    with pytest.raises(HfdlError, match="decoder 'segnet'"):
        TimmSegmenter("test_efficientnet", 3, decoder="segnet")
    with pytest.raises(HfdlError, match="cannot build the segmenter backbone"):
        TimmSegmenter("no_such_net", 3)


def test_segment_in_image_answers_at_the_images_own_size():
    model = tiny().eval()
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (30, 50, 3), dtype=np.uint8))
    mask = segment_in_image(model, image)
    assert mask.shape == (30, 50) and mask.dtype == torch.int64


def test_overlay_paints_classes_but_not_background_and_mask_png_holds_the_ids(tmp_path):
    image = Image.new("RGB", (4, 2), (100, 100, 100))
    mask = torch.tensor([[0, 1, 2, 255], [1, 1, 0, 2]])
    palette = default_palette(NAMES)
    assert palette[0] == [0, 0, 0] and len({tuple(c) for c in palette}) == 3 and background_ids(NAMES) == (0,)
    painted = np.asarray(overlay(image, mask, palette, alpha=1.0, transparent=background_ids(NAMES)))
    assert painted[0, 0].tolist() == [100, 100, 100] and painted[0, 3].tolist() == [100, 100, 100]  # background and ignored stay
    assert painted[0, 1].tolist() == palette[1] and painted[1, 3].tolist() == palette[2]
    with pytest.raises(HfdlError, match="the mask is"):
        overlay(image, mask[:, :3], palette)
    mask_image(mask, palette).save(tmp_path / "mask.png")
    back = Image.open(tmp_path / "mask.png")
    assert back.mode == "P" and np.asarray(back).tolist() == mask.tolist()


def _squares(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Bright squares (class 1) and bars (class 2) on a dark background (class 0), one per image."""
    g = torch.Generator().manual_seed(seed)
    images, masks = torch.zeros(n, 3, 32, 32), torch.zeros(n, 32, 32, dtype=torch.long)
    for i in range(n):
        cls = 1 + i % 2
        w, h = (12, 12) if cls == 1 else (20, 6)
        x, y = (torch.randint(0, 32 - w, (1,), generator=g).item(), torch.randint(0, 32 - h, (1,), generator=g).item())
        images[i, :, y : y + h, x : x + w] = 1.0
        masks[i, y : y + h, x : x + w] = cls
    return images, masks


def test_the_loss_teaches_a_tiny_segmenter_the_shapes():
    model = tiny("unet", image_size=32).train()
    images, masks = _squares(8, 0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(40):
        loss = segmentation_loss(model(images), masks)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    scores = segmentation_scores(confusion_matrices(model.predict(images), masks, 3).sum(0), NAMES)
    assert scores["eval_mean_iou"] > 0.7, scores
