"""scripts/train_segmenter.py end to end on a tiny composite set: folder, mIoU results, card, resume, side by side,
two processes, bad input, a tiny random SegFormer, and scripts/segment.py."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import REPO, accelerate_launch
from huggingface_hub import ModelCard
from PIL import Image
from safetensors.torch import load_file

sys.path.insert(0, str(REPO / "scripts"))
import train_segmenter  # noqa: E402

from hfdl.errors import HfdlError  # noqa: E402
from hfdl.tasks.segmentation.card import segmentation_card  # noqa: E402
from hfdl.tasks.segmentation.model import TimmSegmenter, load_segmenter  # noqa: E402


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory):
    """A tiny composite set (real Fashion-MNIST items on real photos, with masks) saved like a Hub dataset, with its id2label.json."""
    from hfdl import assets

    if not (assets.datasets.FASHION_MNIST_DIR / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip("Debian dataset-fashion-mnist not installed")
    path = tmp_path_factory.mktemp("composites") / "set"
    assets.composite_dataset(num_train=16, num_validation=8, image_size=64, max_objects=3, seed=1).save_to_disk(str(path))
    (path / "id2label.json").write_text(json.dumps(dict(enumerate(assets.SEGMENTATION_LABELS))))
    return path


def tiny(out, data, *extra):
    return [
        "--dataset_name", str(data), "--output_dir", str(out), "--model_name_or_path", "test_efficientnet", "--pretrained", "false",
        "--image_size", "64", "--decoder_channels", "8", "--per_device_train_batch_size", "8", "--per_device_eval_batch_size", "8",
        "--num_train_epochs", "2", "--learning_rate", "3e-3", "--seed", "0", *extra,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def launched(tiny_set, tmp_path_factory):
    out = tmp_path_factory.mktemp("seg")
    proc = accelerate_launch("train_segmenter.py", tiny(out, tiny_set), config=None)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def test_run_folder_results_and_card(launched, tmp_path):
    out = launched
    files = {p.name for p in out.iterdir()}
    assert {"config.json", "model.safetensors", "label_map.json", "overlays.png", "confusion_matrix.png", "confusion_matrix.json"} <= files
    assert {"all_results.json", "run_config.json", "history.json", "README.md"} <= files
    results = json.loads((out / "all_results.json").read_text())
    for key in ("eval_mean_iou", "eval_mean_accuracy", "eval_overall_accuracy", "eval_iou_background"):
        assert 0 <= results[key] <= 1, key
    assert results["validation_images"] == 8 and results["train_images"] == 16 and results["completed_steps"] == 4
    assert results["per_class_iou"]["background"] == pytest.approx(results["eval_iou_background"], abs=1e-4)
    confusion = json.loads((out / "confusion_matrix.json").read_text())
    # every validation pixel once, at the size the segmenter runs at: trained at 64 px, evaluated at 1.4x (FixRes), to 32
    assert len(confusion["pixels"]) == 11 and sum(map(sum, confusion["pixels"])) == 8 * 96 * 96
    label_map = json.loads((out / "label_map.json").read_text())
    assert label_map["id2label"]["4"] == "Dress" and len(label_map["palette"]) == 11 and label_map["ignore_index"] == 255
    config = json.loads((out / "run_config.json").read_text())
    assert config["task"] == "image-segmentation" and config["segmenter_kind"] == "timm" and config["command"].startswith("accelerate launch")
    card = ModelCard.load(out / "README.md")
    index = {m["type"]: m["value"] for m in card.data.to_dict()["model-index"][0]["results"][0]["metrics"]}
    evaluation = {k: v for k, v in results.items() if k.startswith("eval_")}
    assert sorted(index.values()) == pytest.approx(sorted(evaluation.values()))  # evaluation results only, all of them
    assert index["mean_iou"] == pytest.approx(results["eval_mean_iou"])
    assert card.data.pipeline_tag == "image-segmentation" and f'TimmSegmenter.from_pretrained("{out.resolve()}")' in card.text
    assert "![pixel confusion matrix](confusion_matrix.png)" in card.text and "| Dress |" in card.text
    legacy = tmp_path / "legacy"  # a folder from before session 18: run_config leaves --frozen_stride unset, the model froze to 4
    shutil.copytree(out, legacy)
    config["model_args"]["frozen_stride"] = None
    (legacy / "run_config.json").write_text(json.dumps(config))
    saved = json.loads((legacy / "config.json").read_text())
    (legacy / "config.json").write_text(json.dumps({**saved, "frozen_stride": 4}))
    assert "| frozen backbone layers | stem to the stride-4 level (weights and batch-norm statistics kept) |" in str(segmentation_card(legacy, "legacy"))
    assert "| frozen backbone layers | none |" in card.text  # from scratch: every layer trains
    saved = json.loads((out / "config.json").read_text())
    assert (saved["skip_strides"], saved["skip_channels"]) == ([4, 8, 16], 64)  # LR-ASPP with the default skip maps, said on the card
    assert (
        saved["test_time_flip"] is True and "| test-time augmentation | horizontal flip (the mean of the image's and its mirror image's logits) |" in card.text
    )
    assert "1x1 classifiers of the stride-4 / 8 / 16 maps, each after a 3x3 conv + BN + ReLU 64 wide" in card.text
    assert "| skip maps (strides) | 4, 8, 16 (each a 3x3 conv 64 wide, then 1x1) |" in card.text
    assert "| image size | 64 px in training, 96 px in evaluation and use (FixRes) |" in card.text and "input size (96 x 96" in card.text
    model = TimmSegmenter.from_pretrained(out)
    assert model.frozen_stride == 0 and all(p.requires_grad for p in model.parameters())  # from scratch: nothing frozen
    assert model.image_size == config["inference_image_size"] == 96 and model.label_names[0] == "background"
    assert model(torch.zeros(1, 3, 64, 64)).shape == (1, 11, 64, 64)


def test_resumed_run_equals_uninterrupted_run_and_refuses_another_label_map(tiny_set, tmp_path):
    full = train_segmenter.main(tiny(tmp_path / "full", tiny_set, "--checkpointing_steps", "2"))
    part = tmp_path / "part"
    shutil.copytree(tmp_path / "full", part)
    for p in part.iterdir():  # as if killed right after the step-2 checkpoint: later checkpoints and outputs never written
        if p.name not in ("step_2", "run_config.json", "label_map.json"):
            shutil.rmtree(p) if p.is_dir() else p.unlink()
    resumed = train_segmenter.main(tiny(part, tiny_set, "--checkpointing_steps", "2", "--resume_from_checkpoint", "latest"))
    a, b = load_file(str(tmp_path / "full" / "model.safetensors")), load_file(str(part / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed["eval_mean_iou"] == full["eval_mean_iou"] and resumed["eval_loss"] == pytest.approx(full["eval_loss"])
    id2label = tmp_path / "id2label.json"  # the same data under other names: the head's classes would mean other things
    id2label.write_text(json.dumps({i: f"class {i}" for i in range(11)}))
    with pytest.raises(HfdlError, match=r"was trained with the labels \['background', .* start afresh"):
        train_segmenter.main(tiny(part, tiny_set, "--id2label", str(id2label), "--resume_from_checkpoint", "latest"))


def test_compare_trains_the_decoders_side_by_side(tiny_set, tmp_path):
    """--compare unet,lraspp: each a complete run folder, and the comparison table and plot."""
    results = train_segmenter.main(tiny(tmp_path, tiny_set, "--compare", "unet,lraspp", "--max_train_steps", "2"))
    assert list(results) == ["unet", "lraspp"]
    for name in results:
        assert json.loads((tmp_path / name / "all_results.json").read_text()) == results[name]
        assert json.loads((tmp_path / name / "config.json").read_text())["decoder"] == name and (tmp_path / name / "README.md").is_file()
    assert results["lraspp"]["num_parameters"] != results["unet"]["num_parameters"]
    table = (tmp_path / "comparison.md").read_text()
    assert "U-Net decoder" in table and "LR-ASPP head" in table and "only the decoder differs" in table
    assert f"{results['lraspp']['eval_mean_iou']:.4f}" in table and (tmp_path / "comparison.png").stat().st_size > 1000
    assert [r["variant"] for r in json.loads((tmp_path / "comparison.json").read_text())] == ["unet", "lraspp"]


def test_bad_input_is_one_line(tiny_set, tmp_path):
    with pytest.raises(HfdlError, match="multiple of 32"):
        train_segmenter.main(tiny(tmp_path / "o", tiny_set, "--image_size", "50"))
    with pytest.raises(HfdlError, match="--eval_image_size must be a multiple of 32"):
        train_segmenter.main(tiny(tmp_path / "o", tiny_set, "--eval_image_size", "100"))
    with pytest.raises(HfdlError, match="mixes model_type and pretrained"):
        train_segmenter.main(tiny(tmp_path / "o", tiny_set, "--compare", "unet,scratch"))
    with pytest.raises(HfdlError, match="needs a transformers segmenter"):
        train_segmenter.main(tiny(tmp_path / "o", tiny_set, "--model_type", "transformers"))
    with pytest.raises(HfdlError, match="--frozen_stride 2 is not one of the backbone's feature strides"):
        train_segmenter.main(tiny(tmp_path / "o", tiny_set, "--frozen_stride", "2"))


def test_the_whole_backbone_trains_by_default_and_frozen_stride_freezes_its_stem():
    from hfdl.tasks.segmentation.args import SegmenterArguments
    from hfdl.tasks.segmentation.pipeline import build_segmenter

    names = ["background", "a", "b"]
    assert SegmenterArguments().frozen_stride == 0  # measured better on the offline default than freezing the stem (README)
    assert SegmenterArguments(compare="pretrained,scratch").compare_variants()["pretrained"].frozen_stride == 0
    trained = build_segmenter(SegmenterArguments(decoder_channels=8), names, None, 64)
    assert all(p.requires_grad for p in trained.parameters())
    frozen = build_segmenter(SegmenterArguments(decoder_channels=8, frozen_stride=4), names, None, 64)  # Detectron2's freeze_at=2
    assert frozen.frozen_stride == 4 and not frozen.backbone.conv_stem.weight.requires_grad
    assert all(p.requires_grad for p in frozen.decoder.parameters()) and any(p.requires_grad for p in frozen.backbone.parameters())


def test_two_processes_keep_the_results_contract(tiny_set, tmp_path):
    """`accelerate launch --num_processes 2` on CPU (gloo): the same folder and results, every validation pixel once."""
    from conftest import two_processes

    proc = accelerate_launch("train_segmenter.py", tiny(tmp_path, tiny_set, "--max_train_steps", "2"), **two_processes())
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((tmp_path / "all_results.json").read_text())
    assert results["validation_images"] == 8 and 0 <= results["eval_mean_iou"] <= 1
    assert sum(map(sum, json.loads((tmp_path / "confusion_matrix.json").read_text())["pixels"])) == 8 * 96 * 96  # at the size it runs at (FixRes)
    assert json.loads((tmp_path / "run_config.json").read_text())["environment"]["num_processes"] == 2
    assert (tmp_path / "README.md").is_file() and (tmp_path / "model.safetensors").is_file()


def test_segment_script_writes_overlay_and_mask_and_prints_shares(launched, tmp_path, capsys):
    import segment

    photo = tmp_path / "photo.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (45, 70, 3), dtype=np.uint8)).save(photo)
    shares = segment.main(["--model", str(launched), "--image", str(photo), "--output", str(tmp_path / "out.png"), "--alpha", "0.7"])
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    names = json.loads((launched / "config.json").read_text())["label_names"]
    assert printed == shares and set(shares) <= set(names) and sum(shares.values()) == pytest.approx(1.0, abs=1e-3)
    assert Image.open(tmp_path / "out.png").size == (70, 45)
    mask = Image.open(tmp_path / "out_mask.png")
    assert mask.mode == "P" and mask.size == (70, 45) and int(np.asarray(mask).max()) < len(names)
    with pytest.raises(HfdlError, match="not a readable image|does not exist"):
        segment.main(["--model", str(launched), "--image", str(tmp_path / "missing.png")])


def test_a_tiny_random_segformer_trains_through_the_script_and_its_snippet_runs(tiny_set, tmp_path):
    """A transformers segmenter in --model_name_or_path: re-headed for the 11 classes, trained with the same loss and
    metrics, saved for plain transformers; the card's plain-transformers snippet runs on the saved folder."""
    import transformers as tf

    checkpoint = tmp_path / "segformer"
    config = tf.SegformerConfig(
        num_encoder_blocks=2, depths=[1, 1], sr_ratios=[2, 1], hidden_sizes=[8, 16], patch_sizes=[7, 3], strides=[4, 2],
        num_attention_heads=[1, 2], mlp_ratios=[2, 2], decoder_hidden_size=16, num_labels=3,
    )  # fmt: skip
    torch.manual_seed(0)
    tf.SegformerForSemanticSegmentation(config).save_pretrained(checkpoint)
    tf.SegformerImageProcessor(size={"height": 512, "width": 512}, do_reduce_labels=True).save_pretrained(checkpoint)
    out = tmp_path / "run"
    argv = tiny(out, tiny_set, "--max_train_steps", "2")
    argv[argv.index("test_efficientnet")] = str(checkpoint)
    for flag, value in (("--frozen_stride", "4"), ("--output_stride", "16"), ("--test_time_flip", "false")):  # no timm stem to freeze, no timm stages to dilate
        with pytest.raises(HfdlError, match="--skip_channels / --test_time_flip shape a decoder on a timm backbone"):
            train_segmenter.main([*argv, flag, value])
    results = train_segmenter.main(argv)
    assert 0 <= results["eval_mean_iou"] <= 1 and results["completed_steps"] == 2
    run_config = json.loads((out / "run_config.json").read_text())
    assert run_config["segmenter_kind"] == "transformers" and run_config["training_args"]["learning_rate"] == 3e-3
    model = load_segmenter(str(out))
    names = list(json.loads((tiny_set / "id2label.json").read_text()).values())
    assert type(model).__name__ == "TransformersSegmenter" and model.label_names == names and model.image_size == 64
    card = (out / "README.md").read_text()
    assert "library_name: transformers" in card and "AutoModelForSemanticSegmentation" in card
    Image.fromarray(np.full((40, 50, 3), 90, dtype=np.uint8)).save(tmp_path / "image.jpg")
    code = re.search(r"```python\n(.*?)```", card, re.S).group(1)
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env={**os.environ}, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.strip().splitlines()
    assert lines and all(line.rsplit(" ", 1)[0] in model.label_names for line in lines)
    assert sum(float(line.rsplit(" ", 1)[1]) for line in lines) == pytest.approx(1.0, abs=1e-3)
