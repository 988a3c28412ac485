"""Model cards (model-index = all_results.json), repo layout, bad input; pull and push against loopback servers."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO
from huggingface_hub import ModelCard

from hfdl import hub
from hfdl.errors import HfdlError
from hfdl.transfer import base_model_id, model_card, push_run, repo_files

NO_TOKEN = {"HF_TOKEN": "", "HUGGING_FACE_HUB_TOKEN": ""}


def _model_index(card: ModelCard) -> dict[str, float]:
    return {r.metric_type: r.metric_value for r in card.data.eval_results}


@pytest.mark.parametrize("strategy", ["feature", "finetune", "scratch"])
def test_card_model_index_equals_all_results(compare_run, tmp_path, strategy):
    out, _ = compare_run
    path = tmp_path / "README.md"
    model_card(out, strategy, f"hfdl-tester/tiny-{strategy}").save(path)
    card = ModelCard.load(path)  # what the Hub (and users) parse
    results = json.loads((out / "all_results.json").read_text())[strategy]
    numeric = {k: v for k, v in results.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    index = _model_index(card)
    renamed = {hub.METRIC_NAMES.get(k, (k,))[0]: v for k, v in numeric.items()}
    assert index == pytest.approx(renamed) and len(index) == len(numeric) >= 12
    r0 = card.data.eval_results[0]
    assert r0.task_type == "image-classification" and r0.dataset_type == "imagefolder" and r0.dataset_split == "validation"
    run_config = json.loads((out / "run_config.json").read_text())
    assert r0.dataset_revision == run_config["data"]["eval_fingerprint"]
    d = card.data.to_dict()
    assert d["library_name"] == "timm" and d["pipeline_tag"] == "image-classification" and d["license"]
    assert f"strategy-{strategy}" in d["tags"] and d["model-index"][0]["name"] == f"tiny-{strategy}"
    text = card.text
    for bad in hub.PLACEHOLDERS:
        assert bad not in text, bad
    assert not re.search(r"\b(None|nan|null)\b", text)  # no missing value rendered as text
    for section in ("## Evaluation", "## Training data", "## Training procedure", "## How to use", "## Limitations", "## Provenance and licenses"):
        assert section in text
    assert run_config["command"] in text and f"Seed: {run_config['training_args']['seed']}" in text
    assert all(f"| {s} |" in text for s in ("feature", "finetune", "scratch"))  # the comparison table
    assert f'timm.create_model("hf-hub:hfdl-tester/tiny-{strategy}", pretrained=True)' in text
    assert "`blue`, `green`, `red`" in text


def test_base_model_ids_name_the_pretrained_weights():
    assert base_model_id("tf_efficientnet_lite0") == "timm/tf_efficientnet_lite0.in1k"
    assert base_model_id("hf-hub:timm/resnet50.a1_in1k") == "timm/resnet50.a1_in1k"
    assert base_model_id("resnet18").startswith("timm/resnet18.")


def test_repo_files_hold_the_timm_folder_and_results_but_no_checkpoints(compare_run):
    out, _ = compare_run
    (out / "finetune" / "step_1").mkdir(exist_ok=True)
    (out / "finetune" / "step_1" / "model.safetensors").write_bytes(b"x")
    files = repo_files(out, "finetune")
    assert set(files) == {
        "config.json", "model.safetensors", "confusion_matrix.png", "history.json", "results.json",
        "all_results.json", "run_config.json", "comparison.md", "comparison.json", "comparison.png",
    }  # fmt: skip


def test_unfinished_run_and_bad_ids_are_refused_before_any_upload(tmp_path, compare_run, monkeypatch):
    with pytest.raises(HfdlError, match="is not a finished hfdl run.*finish training first"):
        push_run(tmp_path, "me/x")
    with pytest.raises(HfdlError, match="invalid Hub repo id 'me/bad name'"):
        hub.HubArguments(push_to_hub=True, hub_model_id="me/bad name")
    with pytest.raises(HfdlError, match="--push_to_hub needs --hub_model_id"):
        hub.HubArguments(push_to_hub=True)
    out, _ = compare_run
    with pytest.raises(HfdlError, match=r"strategy \['nope'\] is not in"):
        push_run(out, "me/x", ["nope"])


def test_missing_token_fails_before_training_and_leaves_outputs(tmp_path, tiny_backbone, imagefolder, monkeypatch):
    from conftest import tiny_args

    sys.path.insert(0, str(REPO / "scripts"))
    import finetune

    for k, v in NO_TOKEN.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty_home"))
    with pytest.raises(HfdlError, match="no Hugging Face token found: run `hf auth login`"):
        finetune.main(tiny_args(tmp_path / "out", tiny_backbone, *imagefolder, "--push_to_hub", "--hub_model_id", "me/tiny"))
    assert not (tmp_path / "out").exists()  # nothing trained, nothing written


def test_pull_offline_without_cache_names_the_prefetch_command():
    with pytest.raises(HfdlError, match=r"hfdl-tester/absent is not in the local Hub cache.*python scripts/pull.py hfdl-tester/absent"):
        hub.pull("hfdl-tester/absent")


def test_card_only_writes_readme_and_uploads_nothing(compare_run, tmp_path, monkeypatch):
    sys.path.insert(0, str(REPO / "scripts"))
    import push_to_hub

    out, _ = compare_run
    paths = push_to_hub.main([str(out), "--hub_model_id", "me/tiny", "--strategy", "feature", "--card_only"])
    assert list(paths) == ["feature"]
    card = ModelCard.load(paths["feature"])
    assert card.data.to_dict()["model-index"][0]["name"] == "tiny"  # one strategy: the id itself


def _python_block(text: str) -> str:
    m = re.search(r"```python\n(.*?)```", text, re.S)
    assert m, "the card has no python snippet"
    return m.group(1)


def test_how_to_use_snippet_runs_from_an_offline_hub_cache(compare_run, tmp_path, imagefolder):
    """The card's snippet, verbatim, loads the repo from a populated HF cache (HF_HUB_OFFLINE=1) and
    prints the local model's top prediction for an image."""
    import timm
    import torch
    from PIL import Image

    out, _ = compare_run
    repo_id = "hfdl-tester/tiny-finetune"
    card = model_card(out, "finetune", repo_id)
    cache = tmp_path / "hub"
    snap = cache / "models--hfdl-tester--tiny-finetune" / "snapshots" / ("0" * 40)
    snap.mkdir(parents=True)
    for rel, src in repo_files(out, "finetune").items():
        (snap / rel).write_bytes(Path(src).read_bytes())
    (snap.parent.parent / "refs").mkdir()
    (snap.parent.parent / "refs" / "main").write_text("0" * 40)
    img = next((imagefolder[1] / "green").iterdir())
    Image.open(img).save(tmp_path / "image.png")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache), "HF_HOME": str(tmp_path / "home")}
    proc = subprocess.run([sys.executable, "-c", _python_block(card.text)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    model = timm.create_model(f"local-dir:{out / 'finetune'}", pretrained=True).eval()
    tf = timm.data.create_transform(**timm.data.resolve_model_data_config(model))
    with torch.no_grad():
        probs = model(tf(Image.open(tmp_path / "image.png").convert("RGB")).unsqueeze(0)).softmax(-1)[0]
    top = int(probs.argmax())
    assert proc.stdout.splitlines()[0] == f"{model.pretrained_cfg['label_names'][top]}: {probs[top]:.3f}"
