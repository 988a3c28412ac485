"""Anomaly detection: the scores and metrics on hand-made cases, then scripts/train_anomaly.py end to end on the
offline digits (both methods side by side, the card's model-index, every class in turn, exact resume, bad input)."""

from __future__ import annotations

import json
import sys

import pytest
import torch
from conftest import REPO, accelerate_launch, two_processes
from huggingface_hub import ModelCard
from safetensors.torch import load_file

sys.path.insert(0, str(REPO / "scripts"))
import train_anomaly  # noqa: E402

import hfdl.tasks.anomaly.card  # noqa: E402, F401 (registers the task's Hub plans)
from hfdl.errors import HfdlError  # noqa: E402
from hfdl.hub.registry import plans  # noqa: E402
from hfdl.tasks.anomaly.model import ConvAutoencoder, knn_scores, reconstruction_error  # noqa: E402
from hfdl.tasks.anomaly.pipeline import detection_metrics  # noqa: E402


def test_auroc_of_a_perfect_a_reversed_and_a_random_scorer():
    anomalous = torch.tensor([0, 0, 0, 1, 1, 1], dtype=torch.bool)
    perfect = detection_metrics(torch.tensor([0.1, 0.2, 0.3, 0.7, 0.8, 0.9]), anomalous)
    assert perfect == {"auroc": pytest.approx(1.0), "auprc": pytest.approx(1.0)}
    assert detection_metrics(torch.tensor([0.9, 0.8, 0.7, 0.3, 0.2, 0.1]), anomalous)["auroc"] == pytest.approx(0.0)
    torch.manual_seed(0)
    labels = torch.rand(4000) < 0.5
    assert abs(detection_metrics(torch.rand(4000), labels)["auroc"] - 0.5) < 0.03
    with pytest.raises(HfdlError, match="only one kind"):
        detection_metrics(torch.rand(3), torch.zeros(3, dtype=torch.bool))


def test_knn_score_is_the_mean_cosine_distance_to_the_k_nearest_normal_features():
    normal = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    queries = torch.tensor([[2.0, 0.0], [-1.0, 0.0]])
    # query 1 is (1, 0): cosines 1, 0, 0.7071 -> the 2 nearest: 1 and 0.7071; query 2 (-1, 0): 0, -0.7071, -1 -> 0, -0.7071
    expected = torch.tensor([1 - (1 + 0.5**0.5) / 2, 1 - (0 - 0.5**0.5) / 2])
    assert torch.allclose(knn_scores(normal, queries, k=2), expected, atol=1e-6)
    with pytest.raises(HfdlError, match="--k 5 needs at least 5 normal training images"):
        knn_scores(normal, queries, k=5)


def test_reconstruction_error_mse_and_ssim():
    x = torch.zeros(2, 1, 16, 16)
    recon = x.clone()
    recon[1] += 0.5
    mse = reconstruction_error(x, recon, "mse")
    assert torch.allclose(mse, torch.tensor([0.0, 0.25]))
    ssim = reconstruction_error(torch.rand(2, 1, 16, 16, generator=torch.Generator().manual_seed(0)), recon, "ssim")
    assert ssim.shape == (2,) and (ssim > 0).all()
    same = torch.rand(1, 1, 16, 16)
    assert reconstruction_error(same, same, "ssim").abs().item() < 1e-5


def tiny(out, *extra):
    return ["--dataset_name", "digits", "--image_size", "32", "--output_dir", str(out), "--max_train_steps", "3", "--base_channels", "8", "--hidden_dim", "32", "--seed", "0", *extra]  # fmt: skip


@pytest.fixture(scope="module")
def launched(tmp_path_factory):
    """One real `accelerate launch --num_processes 2` on CPU (gloo): the run folder the next tests read."""
    out = tmp_path_factory.mktemp("anomaly") / "run"
    proc = accelerate_launch("train_anomaly.py", tiny(out, "--normal_class", "3"), **two_processes())
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def test_both_methods_side_by_side_with_pictures_model_and_card(launched):
    out = launched
    r = json.loads((out / "all_results.json").read_text())
    assert r["normal_classes"] == ["3"] and r["test_images"] == 270
    assert json.loads((out / "run_config.json").read_text())["environment"]["num_processes"] == 2
    assert json.loads((out / "autoencoder" / "3" / "results.json").read_text())["completed_steps"] == 3
    for method in ("knn", "autoencoder"):
        assert 0 <= r[f"eval_{method}_auroc"] <= 1 and r[f"eval_{method}_auroc"] == r["per_class"][method]["3"]["auroc"]
        assert (out / f"most_anomalous_{method}.png").is_file()
    assert r["eval_knn_auroc"] > 0.7  # digits are easy for pretrained features; far above chance
    assert (out / "roc.png").is_file() and (out / "reconstructions.png").is_file()
    model = ConvAutoencoder.from_pretrained(out / "autoencoder" / "3")
    assert model.normal_class == "3" and model.image_size == 8
    scores = load_file(out / "autoencoder" / "3" / "scores.safetensors")["scores"]
    assert scores.shape == (270,)
    card = ModelCard.load(out / "autoencoder" / "3" / "README.md")
    metrics = {m["type"]: m["value"] for m in card.data.to_dict()["model-index"][0]["results"][0]["metrics"]}
    assert metrics == {"roc_auc": r["per_class"]["autoencoder"]["3"]["auroc"], "average_precision": r["per_class"]["autoencoder"]["3"]["auprc"]}
    assert "kNN on frozen pretrained" in card.text
    (plan,) = plans(out, "hfdl-tester/ae-3").values()
    assert {"config.json", "model.safetensors", "roc.png", "all_results.json"} <= set(plan.files)


def test_every_class_in_turn_reports_the_mean(tmp_path):
    r = train_anomaly.main(tiny(tmp_path / "o", "--all_classes", "--method", "knn"))
    assert r["normal_classes"] == [str(i) for i in range(10)] and "eval_autoencoder_auroc" not in r
    assert r["eval_knn_auroc"] == pytest.approx(sum(v["auroc"] for v in r["per_class"]["knn"].values()) / 10)
    with pytest.raises(HfdlError, match="kNN-only run: it trained no model to publish"):
        plans(tmp_path / "o", "hfdl-tester/x")


def test_autoencoder_resume_is_exact(tmp_path):
    args = ["--normal_class", "5", "--method", "autoencoder", "--max_train_steps", "6"]
    train_anomaly.main(tiny(tmp_path / "a", *args, "--checkpointing_steps", "3"))
    ckpt = tmp_path / "a" / "autoencoder" / "5" / "step_3"
    assert ckpt.is_dir()
    train_anomaly.main(tiny(tmp_path / "b", *args, "--resume_from_checkpoint", str(ckpt)))
    a = load_file(tmp_path / "a" / "autoencoder" / "5" / "model.safetensors")
    b = load_file(tmp_path / "b" / "autoencoder" / "5" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    ra, rb = (json.loads((tmp_path / d / "all_results.json").read_text()) for d in "ab")
    assert ra["per_class"] == rb["per_class"]


def test_bad_input_gets_one_line_errors(tmp_path):
    with pytest.raises(HfdlError, match="--normal_class 'Cat' is not among the labels"):
        train_anomaly.main(tiny(tmp_path / "a", "--normal_class", "Cat"))
    with pytest.raises(HfdlError, match="pass --normal_class NAME .* or --all_classes"):
        train_anomaly.main(tiny(tmp_path / "b"))
    with pytest.raises(HfdlError, match="--method 'svdd' is unknown"):
        train_anomaly.main(tiny(tmp_path / "c", "--normal_class", "1", "--method", "svdd"))
