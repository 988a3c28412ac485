"""scripts/train_detector.py end to end on a tiny composite set: folder, mAP results, card, resume, launcher."""

from __future__ import annotations

import json
import sys

import pytest
import torch
from conftest import REPO, accelerate_launch
from huggingface_hub import ModelCard
from safetensors.torch import load_file

sys.path.insert(0, str(REPO / "scripts"))
import train_detector  # noqa: E402

from hfdl.errors import HfdlError  # noqa: E402
from hfdl.tasks.detection.model import YoloDetector  # noqa: E402


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory):
    """A tiny composite set (real Fashion-MNIST items on real photos) saved like a Hub dataset."""
    from hfdl import assets

    if not (assets.datasets.FASHION_MNIST_DIR / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip("Debian dataset-fashion-mnist not installed")
    path = tmp_path_factory.mktemp("composites") / "set"
    assets.composite_dataset(num_train=24, num_validation=8, image_size=64, max_objects=3, seed=1).save_to_disk(str(path))
    return path


def tiny(out, data, *extra):
    return [
        "--dataset_name", str(data), "--output_dir", str(out), "--model_name_or_path", "test_efficientnet", "--pretrained", "false",
        "--image_size", "64", "--neck_channels", "16", "--per_device_train_batch_size", "8", "--per_device_eval_batch_size", "8",
        "--num_train_epochs", "2", "--learning_rate", "3e-3", "--seed", "0", *extra,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def launched(tiny_set, tmp_path_factory):
    out = tmp_path_factory.mktemp("det")
    proc = accelerate_launch("train_detector.py", tiny(out, tiny_set), config=None)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def test_run_folder_results_and_card(launched):
    out = launched
    assert {"config.json", "model.safetensors", "predictions.png", "pr_curve.png", "all_results.json", "run_config.json", "history.json", "README.md"} <= {
        p.name for p in out.iterdir()
    }
    results = json.loads((out / "all_results.json").read_text())
    curve = json.loads((out / "pr_curve.json").read_text())  # COCO's interpolated precision at IoU .5: its mean is mAP@.50
    curves = list(curve["precision"].values())
    assert curve["iou"] == 0.5 and len(curve["recall"]) == 101 and all(len(c) == 101 for c in curves)
    assert sum(sum(c) / 101 for c in curves) / len(curves) == pytest.approx(results["eval_map_50"], abs=2e-3)
    for key in ("eval_map", "eval_map_50", "eval_map_75", "eval_mar_100", "eval_loss"):
        assert 0 <= results[key] <= (1 if key != "eval_loss" else 1e6), key
    assert results["validation_images"] == 8 and results["train_images"] == 24 and results["completed_steps"] == 6
    assert set(results["per_class_ap"]) <= set(json.loads((out / "config.json").read_text())["label_names"])
    config = json.loads((out / "run_config.json").read_text())
    assert config["task"] == "object-detection" and config["environment"]["torch_threads"] >= 1
    card = ModelCard.load(out / "README.md")
    index = {m["type"]: m["value"] for m in card.data.to_dict()["model-index"][0]["results"][0]["metrics"]}
    evaluation = {k: v for k, v in results.items() if k.startswith("eval_")}
    assert sorted(index.values()) == pytest.approx(sorted(evaluation.values()))  # evaluation results only, all of them
    assert f'YoloDetector.from_pretrained("{out.resolve()}")' in card.text and "![detections on validation images](predictions.png)" in card.text
    model = YoloDetector.from_pretrained(out)  # trained at 64 px, evaluated and run at 1.4x (FixRes), to a multiple of 32
    assert model.image_size == config["inference_image_size"] == 96 and len(model.label_names) == 10
    assert "| image size | 64 px in training, 96 px in evaluation and use (FixRes) |" in card.text and "evaluated and used at 96 px" in card.text
    (found,) = model.detect(torch.zeros(1, 3, 64, 64), score_threshold=0.0)
    assert found["boxes"].shape[-1] == 4


def test_resumed_run_equals_uninterrupted_run(tiny_set, tmp_path):
    import shutil

    full = train_detector.main(tiny(tmp_path / "full", tiny_set, "--checkpointing_steps", "2"))
    part = tmp_path / "part"
    shutil.copytree(tmp_path / "full", part)
    for p in part.iterdir():  # as if killed right after the step-2 checkpoint: later checkpoints and outputs never written
        if p.name != "step_2" and p.name != "run_config.json":
            shutil.rmtree(p) if p.is_dir() else p.unlink()
    resumed = train_detector.main(tiny(part, tiny_set, "--checkpointing_steps", "2", "--resume_from_checkpoint", "latest"))
    a, b = load_file(str(tmp_path / "full" / "model.safetensors")), load_file(str(part / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed["eval_map"] == full["eval_map"] and resumed["eval_loss"] == pytest.approx(full["eval_loss"])


def test_compare_scratch_trains_both_side_by_side(tiny_set, tmp_path):
    """--compare_scratch: the pretrained and the scratch detector, each a complete run folder, and the comparison."""
    args = tiny(tmp_path, tiny_set, "--compare_scratch", "true", "--max_train_steps", "2")
    args[args.index("test_efficientnet")] = "tf_efficientnet_lite0"  # an offline pretrained backbone
    del args[args.index("--pretrained") : args.index("--pretrained") + 2]
    results = train_detector.main(args)
    assert set(results) == {"pretrained", "scratch"}
    for name, pretrained in (("pretrained", True), ("scratch", False)):
        folder = tmp_path / name
        assert json.loads((folder / "all_results.json").read_text()) == results[name]
        config = json.loads((folder / "run_config.json").read_text())
        assert config["model_args"]["pretrained"] is pretrained and (config["base_model"] is not None) is pretrained
        assert (folder / "model.safetensors").is_file() and (folder / "README.md").is_file()
    a, b = (load_file(str(tmp_path / n / "model.safetensors")) for n in ("pretrained", "scratch"))
    assert not torch.equal(a["backbone.conv_stem.weight"], b["backbone.conv_stem.weight"])
    table = (tmp_path / "comparison.md").read_text()
    assert "pretrained (ImageNet)" in table and "from scratch" in table and f"{results['scratch']['eval_map_50']:.4f}" in table
    assert (tmp_path / "comparison.png").stat().st_size > 1000
    assert [r["variant"] for r in json.loads((tmp_path / "comparison.json").read_text())] == ["pretrained", "scratch"]


def test_bad_input_is_one_line(tiny_set, tmp_path):
    with pytest.raises(HfdlError, match="outside the 2 classes"):
        train_detector.main(tiny(tmp_path / "o", tiny_set, "--label_names", "a,b"))
    with pytest.raises(HfdlError, match="multiple of 32"):
        train_detector.main(tiny(tmp_path / "o", tiny_set, "--image_size", "50"))
    with pytest.raises(HfdlError, match="--eval_image_size must be a multiple of 32"):
        train_detector.main(tiny(tmp_path / "o", tiny_set, "--eval_image_size", "100"))


def test_two_processes_keep_the_results_contract(tiny_set, tmp_path):
    """`accelerate launch --num_processes 2` on CPU (gloo): the same folder and results."""
    from conftest import two_processes

    proc = accelerate_launch("train_detector.py", tiny(tmp_path, tiny_set, "--max_train_steps", "2"), **two_processes())
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((tmp_path / "all_results.json").read_text())
    assert results["validation_images"] == 8 and 0 <= results["eval_map_50"] <= 1
    assert json.loads((tmp_path / "run_config.json").read_text())["environment"]["num_processes"] == 2
    assert (tmp_path / "README.md").is_file() and (tmp_path / "model.safetensors").is_file()


def test_detect_script_prints_json_and_draws_boxes(launched, tmp_path, capsys):
    import detect
    from PIL import Image

    photo = tmp_path / "photo.png"
    Image.new("RGB", (120, 90), (40, 90, 160)).save(photo)
    detections = detect.main(["--model", str(launched), "--image", str(photo), "--threshold", "0.0", "--output", str(tmp_path / "out.png")])
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed == detections and all({"label", "score", "box"} == set(d) for d in detections)
    assert all(
        0 <= d["box"][0] <= d["box"][2] <= 120
        and 0 <= d["box"][1] <= d["box"][3] <= 90
        and d["label"] in json.loads((launched / "config.json").read_text())["label_names"]
        for d in detections
    )
    assert Image.open(tmp_path / "out.png").size == (120, 90)
    with pytest.raises(HfdlError, match="not a readable image|does not exist"):
        detect.main(["--model", str(launched), "--image", str(tmp_path / "missing.png")])
