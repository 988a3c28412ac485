"""scripts/train_generative.py end to end on the offline digits (8x8): every model type, the run folder, the
card's model-index, exact resume of a GAN (both optimizers and the EMA), two processes, and bad input."""

from __future__ import annotations

import json
import shutil
import sys

import pytest
import torch
from conftest import REPO, accelerate_launch, two_processes
from huggingface_hub import ModelCard
from PIL import Image
from safetensors.torch import load_file

sys.path.insert(0, str(REPO / "scripts"))
import train_generative  # noqa: E402

from hfdl.errors import HfdlError  # noqa: E402
from hfdl.tasks.generative import losses  # noqa: E402
from hfdl.tasks.generative.model import ImageGenerator  # noqa: E402


def tiny(out, *extra):
    return [
        "--dataset_name", "digits", "--output_dir", str(out), "--num_train_epochs", "2", "--per_device_train_batch_size", "64",
        "--base_channels", "8", "--hidden_dim", "32", "--fid_samples", "120", "--eval_fid_samples", "60", "--iw_samples", "16",
        "--iw_images", "8", "--num_samples_grid", "16", "--seed", "0", *extra,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def launched(tmp_path_factory):
    out = tmp_path_factory.mktemp("gen") / "conv_vae"
    proc = accelerate_launch("train_generative.py", tiny(out, "--model_type", "conv_vae", "--latent_dim", "2"), config=None)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def test_run_folder_results_pictures_and_card(launched):
    out = launched
    files = {p.name for p in out.iterdir()}
    assert {"config.json", "model.safetensors", "samples.png", "reconstructions.png", "interpolation.png", "latent_space.png", "README.md"} <= files
    r = json.loads((out / "all_results.json").read_text())
    assert r["model_type"] == "conv_vae" and r["test_images"] == 180 and r["train_images"] == 1617  # digits: 10% seeded holdout
    assert r["eval_neg_elbo"] == pytest.approx(r["eval_reconstruction"] + r["eval_kl"], rel=1e-6)
    assert r["eval_iw_nll"] <= r["neg_elbo_on_iw_images"] + 1e-3
    assert r["fid_feature_network"] == "FID, digits classifier features" and 0 < r["fid_feature_network_test_accuracy"] <= 1
    assert r["data_fid_floor"] < r["eval_fid"]  # two epochs of a tiny model do not match the data
    history = json.loads((out / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2] and all("eval_fid" in h and "eval_neg_elbo" in h for h in history)
    assert Image.open(out / "samples.png").size[0] > 8 * 4
    model = ImageGenerator.from_pretrained(out)
    assert model.model_type == "conv_vae" and model.latent_dim == 2 and model.image_size == 8
    card = ModelCard.load(out / "README.md")
    metrics = {m["type"]: m["value"] for m in card.data.to_dict()["model-index"][0]["results"][0]["metrics"]}
    assert metrics["fid"] == r["eval_fid"] and metrics["neg_elbo"] == r["eval_neg_elbo"] and metrics["iw_nll"] == r["eval_iw_nll"]
    assert metrics["fid_data_floor"] == r["data_fid_floor"]
    names = {m["type"]: m["name"] for m in card.data.to_dict()["model-index"][0]["results"][0]["metrics"]}
    assert names["fid"] == "FID, digits classifier features"  # named as what it is, never Inception FID
    assert "Not Inception FID" in card.text and "latent_space.png" in card.text
    cfg = json.loads((out / "run_config.json").read_text())
    assert cfg["task"] == "image-generation" and cfg["feature_network"]["test_accuracy"] == r["fid_feature_network_test_accuracy"]


@pytest.mark.parametrize(
    "extra",
    [["--model_type", "vae"], ["--model_type", "autoencoder", "--noise_std", "0.2"], ["--model_type", "dcgan", "--conditional", "--gan_loss", "hinge"]],
    ids=["vae", "denoising-autoencoder", "conditional-dcgan-hinge"],
)
def test_every_model_type_trains_and_reports(tmp_path, extra):
    r = train_generative.main(tiny(tmp_path / "o", *extra))
    model = ImageGenerator.from_pretrained(tmp_path / "o")
    assert model.model_type == extra[1]
    assert r["eval_fid"] > r["data_fid_floor"] and r["sampling_images_per_second"] > 0
    if extra[1] == "vae":
        assert r["eval_loss_pytorch_example"] == pytest.approx(r["eval_neg_elbo"])  # Bernoulli: the example's loss is the negative ELBO
        assert r["eval_loss"] < 60 * 8 * 8  # far below the uninformed 64 * log 2 * ... baseline of random logits
    if extra[1] == "autoencoder":
        assert "eval_mse" in r and "eval_neg_elbo" not in r and (tmp_path / "o" / "reconstructions.png").is_file()
    if extra[1] == "dcgan":
        assert model.num_classes == 10 and "fid_raw_generator" in r and "train_generator_loss" in r
        assert not (tmp_path / "o" / "reconstructions.png").exists()


def test_gan_resume_is_exact_with_both_optimizers_and_the_ema(tmp_path):
    args = ["--model_type", "dcgan", "--fid_features", "none"]
    train_generative.main(tiny(tmp_path / "a", *args, "--checkpointing_steps", "10"))
    ckpt = tmp_path / "a" / "step_20"  # 25 steps per epoch... step 20 is mid-epoch 1 (1617 // 64 = 25 full batches)
    assert ckpt.is_dir()
    saved = {p.name for p in ckpt.iterdir()}
    assert {"optimizer.bin", "optimizer_1.bin", "scheduler.bin", "scheduler_1.bin", "model.safetensors", "model_1.safetensors"} <= saved
    train_generative.main(tiny(tmp_path / "b", *args, "--resume_from_checkpoint", str(ckpt)))
    a, b = load_file(tmp_path / "a" / "model.safetensors"), load_file(tmp_path / "b" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_resuming_a_checkpoint_of_another_model_type_is_refused(tmp_path):
    train_generative.main(tiny(tmp_path / "o", "--model_type", "vae", "--fid_features", "none", "--checkpointing_steps", "epoch", "--num_train_epochs", "1"))
    (tmp_path / "o" / "all_results.json").unlink()  # as if interrupted after the checkpoint
    before = sorted(p.name for p in (tmp_path / "o").iterdir())
    with pytest.raises(
        HfdlError, match="checkpoint .*epoch_1 is of a run with --model_type vae, this run has --model_type conv_vae: resume with --model_type vae"
    ):
        train_generative.main(tiny(tmp_path / "o", "--model_type", "conv_vae", "--fid_features", "none", "--resume_from_checkpoint", "latest"))
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == before  # nothing lost


def test_a_diverging_gan_stops_naming_the_step_and_the_last_good_checkpoint(tmp_path, monkeypatch):
    calls = {"n": 0}
    real = losses.discriminator_loss

    def poisoned(kind, real_scores, fake_scores):
        calls["n"] += 1
        out = real(kind, real_scores, fake_scores)
        return out * float("nan") if calls["n"] >= 13 else out

    monkeypatch.setattr(losses, "discriminator_loss", poisoned)
    with pytest.raises(HfdlError, match=r"the GAN diverged at step 13 \(discriminator loss nan.*the last good checkpoint is .*step_10; lower --learning_rate"):
        train_generative.main(tiny(tmp_path / "o", "--model_type", "dcgan", "--fid_features", "none", "--checkpointing_steps", "5"))
    assert (tmp_path / "o" / "step_10").is_dir()


def test_bad_input_gets_one_line_errors(tmp_path):
    with pytest.raises(HfdlError, match="--latent_dim must be >= 1, got 0"):
        train_generative.main(tiny(tmp_path / "a", "--latent_dim", "0"))
    mixed = tmp_path / "mixed"
    for i, size in enumerate((16, 16, 20)):
        (mixed / "a").mkdir(parents=True, exist_ok=True)
        Image.new("L", (size, size), color=i * 40).save(mixed / "a" / f"{i}.png")
    with pytest.raises(HfdlError, match="mixed-size images \\((16x16 and 20x20|20x20 and 16x16) at image .*\\): pass --image_size N"):
        train_generative.main(["--train_dir", str(mixed), "--output_dir", str(tmp_path / "b"), "--fid_features", "none", "--train_val_split", "0.34"])
    with pytest.raises(HfdlError, match="--conditional needs class labels"):
        shutil.rmtree(mixed / "a")
        (mixed / "x.png").parent.mkdir(exist_ok=True)
        for i in range(4):
            Image.new("L", (16, 16), color=i * 40).save(mixed / f"{i}.png")
        train_generative.main(
            ["--dataset_name", str(mixed), "--output_dir", str(tmp_path / "c"), "--fid_features", "none", "--conditional", "--train_val_split", "0.5"]
        )


def test_two_processes_give_the_same_results_contract(tmp_path):
    out = tmp_path / "ddp"
    proc = accelerate_launch("train_generative.py", tiny(out, "--model_type", "dcgan", "--num_train_epochs", "1"), **two_processes())
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads((out / "all_results.json").read_text())
    cfg = json.loads((out / "run_config.json").read_text())
    assert cfg["environment"]["num_processes"] == 2
    assert r["completed_steps"] == 12  # 1617 images / (2 x 64) per step, last partial batch dropped
    assert r["eval_fid"] > 0 and (out / "model.safetensors").is_file() and (out / "README.md").is_file()
