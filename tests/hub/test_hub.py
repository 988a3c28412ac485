"""Model cards (model-index = all_results.json), repo layout, bad input; pull and push against loopback servers."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import hub_servers
import pytest
from conftest import REPO
from hub_servers import TEST_TOKEN, refused_endpoint
from huggingface_hub import ModelCard

from hfdl import hub
from hfdl.core.backbones import base_model_id
from hfdl.errors import HfdlError
from hfdl.hub.cards import METRIC_NAMES
from hfdl.hub.registry import push_run
from hfdl.tasks.classification.card import METRICS, model_card, repo_files

NO_TOKEN = {"HF_TOKEN": "", "HUGGING_FACE_HUB_TOKEN": ""}
hub_client, olah_hub, write_endpoint = hub_servers.hub_client, hub_servers.olah_hub, hub_servers.write_endpoint


def _model_index(card: ModelCard) -> dict[str, float]:
    return {r.metric_type: r.metric_value for r in card.data.eval_results}


@pytest.mark.parametrize("strategy", ["feature", "finetune", "scratch"])
def test_card_model_index_equals_all_results(compare_run, tmp_path, strategy):
    out, _ = compare_run
    path = tmp_path / "README.md"
    model_card(out, strategy, f"hfdl-tester/tiny-{strategy}").save(path)
    card = ModelCard.load(path)  # what the Hub (and users) parse
    results = json.loads((out / "all_results.json").read_text())[strategy]
    numeric = _evaluation(results)
    index = _model_index(card)
    renamed = {METRICS.get(k, METRIC_NAMES.get(k, (k,)))[0]: v for k, v in numeric.items()}  # eval_accuracy -> accuracy, ...
    assert index == pytest.approx(renamed) and len(index) == len(numeric) >= 3
    assert not {"train_seconds", "epochs", "trainable_params", "peak_rss_mb"} & set(index)  # costs stay out of model-index
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


def _evaluation(results: dict, extra: tuple[str, ...] = ()) -> dict:
    """The evaluation results of all_results.json (what model-index holds): numeric eval_* keys and `extra`."""
    return {k: v for k, v in results.items() if (k.startswith("eval_") or k in extra) and isinstance(v, (int, float)) and not isinstance(v, bool)}


def _python_block(text: str) -> str:
    m = re.search(r"```python\n(.*?)```", text, re.S)
    assert m, "the card has no python snippet"
    return m.group(1)


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def at(monkeypatch):
    """Point the huggingface_hub client (HfApi()) at a loopback endpoint, as HF_ENDPOINT does for users."""
    from huggingface_hub import constants

    def point(url: str) -> None:
        monkeypatch.setattr(constants, "ENDPOINT", url)

    return point


def test_push_uploads_exactly_the_repo_files_and_the_card(compare_run, write_endpoint, hub_client, at, capsys, caplog):
    out, _ = compare_run
    before = _snapshot(out)
    at(write_endpoint.endpoint)
    urls = push_run(out, "hfdl-tester/tiny", ["feature", "finetune"])
    assert set(urls) == {"feature", "finetune"}
    results = json.loads((out / "all_results.json").read_text())
    for s in ("feature", "finetune"):
        repo = f"hfdl-tester/tiny-{s}"
        files = write_endpoint.files(repo)
        local = repo_files(out, s)
        assert set(files) == set(local) | {"README.md", ".gitattributes"}  # no checkpoints, no caches
        assert all(files[k] == Path(v).read_bytes() for k, v in local.items())
        (commit,) = [c for c in write_endpoint.commits(repo) if c.message.startswith("hfdl")]
        assert commit.message == f"hfdl finetune: {s} model, eval accuracy {results[s]['eval_accuracy']:.4f}"
        assert "model.safetensors" in commit.lfs_paths
        assert urls[s].startswith(write_endpoint.endpoint) and commit.oid in urls[s]
        card = ModelCard(files["README.md"].decode())
        assert _model_index(card)["accuracy"] == pytest.approx(results[s]["eval_accuracy"])
    assert _snapshot(out) == before  # the run folder is untouched
    assert all(a == f"Bearer {TEST_TOKEN}" for a in write_endpoint.authorizations if a)
    seen = capsys.readouterr()
    assert TEST_TOKEN not in seen.out + seen.err + caplog.text
    assert not any(TEST_TOKEN.encode() in b for b in _snapshot(out).values())


@pytest.mark.parametrize(
    "failure, message",
    [
        ("401", r"the Hub rejected the token \(401\).*hf auth login"),
        ("403", r"no write access to someone-else/tiny \(403\).*your own namespace"),
        ("500", r"the Hub answered 500 while trying to push hfdl-tester/tiny.*python scripts/push_to_hub.py .* --hub_model_id hfdl-tester/tiny`"),
        ("refused", r"cannot reach the Hub at http://127.0.0.1:\d+ \(ConnectError\).*retry with `python scripts/push_to_hub.py"),
    ],
)
def test_failed_push_is_one_line_and_loses_nothing(compare_run, write_endpoint, hub_client, at, monkeypatch, failure, message):
    out, _ = compare_run
    before = _snapshot(out)
    repo = "someone-else/tiny" if failure == "403" else "hfdl-tester/tiny"
    at(refused_endpoint() if failure == "refused" else write_endpoint.endpoint)
    if failure == "401":
        monkeypatch.setenv("HF_TOKEN", "hf_not_the_right_token_000000000000")
    if failure == "500":
        write_endpoint.fail_next(500, route_contains="/commit/")
    with pytest.raises(HfdlError, match=message) as info:
        push_run(out, repo, ["finetune"])
    assert "\n" not in str(info.value) and "hf_" not in str(info.value)
    assert _snapshot(out) == before
    if failure in ("500", "403"):
        assert not any(c.message.startswith("hfdl") for r in write_endpoint.repos for c in write_endpoint.commits(r))  # nothing half-published


def test_pull_prefetches_then_the_cards_snippet_runs_offline(compare_run, olah_hub, tmp_path, imagefolder):
    """Publish to a real Hub-API server (olah); `scripts/pull.py` prefetches; with HF_HUB_OFFLINE=1 the
    card's snippet, verbatim, loads the model through timm and prints the local model's prediction."""
    import timm
    import torch
    from PIL import Image

    out, _ = compare_run
    repo_id = "hfdl-tester/tiny-finetune"
    card = model_card(out, "finetune", repo_id)
    with hub.stage(repo_files(out, "finetune"), card) as staged:
        olah_hub.publish(repo_id, staged)
    home = tmp_path / "home"
    env = {**os.environ, "HF_HOME": str(home), "HF_HUB_CACHE": str(home / "hub"), "HF_HUB_OFFLINE": "0", "HF_ENDPOINT": olah_hub.endpoint}
    env.update(NO_TOKEN)
    pulled = subprocess.run([sys.executable, str(REPO / "scripts" / "pull.py"), repo_id], env=env, capture_output=True, text=True, timeout=120)
    assert pulled.returncode == 0, pulled.stderr[-2000:]
    snap = Path(pulled.stdout.strip().splitlines()[-1])
    assert (snap / "model.safetensors").read_bytes() == (out / "finetune" / "model.safetensors").read_bytes()
    assert (snap / "README.md").is_file()

    Image.open(next((imagefolder[1] / "green").iterdir())).save(tmp_path / "image.png")
    env |= {"HF_HUB_OFFLINE": "1", "HF_ENDPOINT": "http://127.0.0.1:9"}  # nothing reachable: the cache must serve
    code = re.search(r"```python\n(.*?)```", card.text, re.S).group(1)
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    model = timm.create_model(f"local-dir:{out / 'finetune'}", pretrained=True).eval()
    tf = timm.data.create_transform(**timm.data.resolve_model_data_config(model))
    with torch.no_grad():
        probs = model(tf(Image.open(tmp_path / "image.png").convert("RGB")).unsqueeze(0)).softmax(-1)[0]
    top = int(probs.argmax())
    assert proc.stdout.splitlines()[0] == f"{model.pretrained_cfg['label_names'][top]}: {probs[top]:.3f}"


def test_pull_of_a_missing_repo_is_one_line(olah_hub, monkeypatch, hub_client):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "ENDPOINT", olah_hub.endpoint)
    with pytest.raises(HfdlError, match=r"hfdl-tester/absent was not found on http://127.0.0.1:\d+"):
        hub.pull("hfdl-tester/absent")


# --------------------------------------------------------------------------------------------------
# Other tasks publish through the same module: the fast style network (PyTorchModelHubMixin layout)
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def style_run(tmp_path_factory):
    from PIL import Image
    from skimage import data

    sys.path.insert(0, str(REPO / "scripts"))
    import train_style

    root = tmp_path_factory.mktemp("style_pub")
    style = root / "style.png"
    Image.fromarray(data.immunohistochemistry()).resize((48, 48)).save(style)
    out = root / "run"
    argv = [
        "--style_image", str(style), "--output_dir", str(out), "--image_size", "32", "--samples_per_epoch", "8",
        "--per_device_train_batch_size", "2", "--num_train_epochs", "1", "--base_channels", "8", "--num_residual_blocks", "1",
        "--max_train_samples", "2", "--sample_size", "40", "--style_layers", "relu1_2,relu2_2", "--eval_size", "40", "--gatys_reference_steps", "2",
    ]  # fmt: skip
    return out, train_style.main(argv)


def test_style_card_and_push(style_run, write_endpoint, hub_client, at):
    from hfdl.hub.registry import plans

    out, _ = style_run
    (plan,) = plans(out, "hfdl-tester/tiny-style").values()
    results = json.loads((out / "all_results.json").read_text())
    numeric = {**_evaluation(results), **{k: results[k] for k in ("gatys_reference_loss", "loss_vs_gatys_reference")}}  # the comparison too
    assert sorted(_model_index(plan.card).values()) == pytest.approx(sorted(numeric.values()))
    assert plan.card.data.to_dict()["pipeline_tag"] == "image-to-image" and "![style](style.png)" in plan.card.text
    assert not any(p in plan.card.text for p in hub.PLACEHOLDERS)
    at(write_endpoint.endpoint)
    push_run(out, "hfdl-tester/tiny-style")
    files = write_endpoint.files("hfdl-tester/tiny-style")
    assert set(files) == set(plan.files) | {"README.md", ".gitattributes"}
    assert {"model.safetensors", "config.json", "style.png", "sample.png", "all_results.json", "run_config.json"} <= set(files)


def test_style_network_loads_from_the_hub_with_the_cards_snippet(style_run, olah_hub, tmp_path):
    """Published to olah, the card's snippet (TransformerNet.from_pretrained, strict) gives the local network's output."""
    import numpy as np
    from PIL import Image
    from skimage import data

    from hfdl.core.images import image_to_tensor, open_image, tensor_to_image
    from hfdl.hub.registry import plans
    from hfdl.tasks.style.model import TransformerNet

    out, _ = style_run
    (plan,) = plans(out, "hfdl-tester/tiny-style").values()
    with hub.stage(plan.files, plan.card) as staged:
        olah_hub.publish("hfdl-tester/tiny-style", staged)
    Image.fromarray(data.coffee()).resize((60, 40)).save(tmp_path / "photo.jpg")
    env = {**os.environ, "HF_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "0", "HF_ENDPOINT": olah_hub.endpoint, **NO_TOKEN}
    code = re.search(r"```python\n(.*?)```", plan.card.text, re.S).group(1).replace("512", "64")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    local = TransformerNet.from_pretrained(out).eval()
    want = tensor_to_image(local.stylize(image_to_tensor(open_image(tmp_path / "photo.jpg"), 64)))
    assert np.array_equal(np.asarray(Image.open(tmp_path / "stylised.png")), np.asarray(want))


# --------------------------------------------------------------------------------------------------
# Char-level LMs: transformers layout (model code + tokenizer), one repo per cell type under --compare
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def char_lm_run(tmp_path_factory):
    from conftest import TEXT

    sys.path.insert(0, str(REPO / "scripts"))
    import train_char_lm

    root = tmp_path_factory.mktemp("clm_pub")
    (root / "tiny.txt").write_text(TEXT * 3, encoding="utf-8")
    argv = [
        "--train_file", str(root / "tiny.txt"), "--output_dir", str(root / "run"), "--hidden_size", "16", "--embedding_dim", "8",
        "--seq_len", "16", "--per_device_train_batch_size", "4", "--num_train_epochs", "1", "--sample_length", "20", "--eval_streams", "2",
        "--compare", "rnn,gru", "--learning_rate", "1e-2",
    ]  # fmt: skip
    return root / "run", train_char_lm.main(argv)


def test_char_lm_cards_mirror_all_results_and_push_one_repo_per_cell(char_lm_run, write_endpoint, hub_client, at):
    from hfdl.hub.registry import plans

    out, results = char_lm_run
    ready = plans(out, "hfdl-tester/clm")
    assert {p.repo_id for p in ready.values()} == {"hfdl-tester/clm-rnn", "hfdl-tester/clm-gru"}
    for cell, plan in ready.items():
        numeric = _evaluation(results[cell], extra=("best_eval_bpc",))
        assert sorted(_model_index(plan.card).values()) == pytest.approx(sorted(numeric.values()))
        d = plan.card.data.to_dict()
        assert d["library_name"] == "transformers" and d["pipeline_tag"] == "text-generation" and cell in d["tags"]
        assert "| gru |" in plan.card.text and "| rnn |" in plan.card.text and "4-gram" in plan.card.text  # the comparison
        assert not any(p in plan.card.text for p in hub.PLACEHOLDERS)
    at(write_endpoint.endpoint)
    push_run(out, "hfdl-tester/clm-gru", ["gru"])  # one model of the run: the id as given
    files = write_endpoint.files("hfdl-tester/clm-gru")
    assert {"config.json", "model.safetensors", "tokenizer.json", "char_lm.py", "samples.txt", "README.md", "all_results.json"} <= set(files)
    assert not any(f.startswith(("step_", "epoch_")) for f in files) and "hfdl-tester/clm-rnn" not in write_endpoint.repos


def test_char_lm_snippet_runs_in_plain_transformers_from_the_hub(char_lm_run, olah_hub, tmp_path):
    """Published to a real Hub API and prefetched with pull.py, the card's transformers snippet (greedy, for a
    deterministic check; remote code from the repo) gives hfdl's own greedy text."""
    from hfdl.hub.registry import plans
    from hfdl.tasks.char_lm.model import load_char_lm

    out, _ = char_lm_run
    plan = plans(out, "hfdl-tester/clm-gru", ["gru"])["gru"]
    with hub.stage(plan.files, plan.card) as staged:
        olah_hub.publish("hfdl-tester/clm-gru", staged)
    code = re.search(r"```python\n(.*?)```", plan.card.text, re.S).group(1)
    code = re.sub(r"do_sample=True, temperature=[\d.]+, top_k=\d+", "do_sample=False", code).replace("max_new_tokens=200", "max_new_tokens=30")
    assert "do_sample=False" in code
    env = {**os.environ, "HF_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "0", "HF_ENDPOINT": olah_hub.endpoint, **NO_TOKEN}
    # olah does not serve the tree listing AutoTokenizer asks for (chat templates): prefetch, then load offline
    pulled = subprocess.run([sys.executable, str(REPO / "scripts" / "pull.py"), "hfdl-tester/clm-gru"], env=env, capture_output=True, text=True, timeout=120)
    assert pulled.returncode == 0, pulled.stderr[-2000:]
    env["HF_HUB_OFFLINE"] = "1"
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    prompt = json.loads((out / "run_config.json").read_text())["sampling_args"]["sample_prompt"]
    assert proc.stdout.rstrip("\n") == load_char_lm(str(out / "gru")).generate(prompt, 30, temperature=0).rstrip("\n")


def test_train_char_lm_push_to_hub_publishes_after_training(tmp_path, write_endpoint, hub_client, at):
    """The training script's --push_to_hub path, end to end: trained, then published with its card."""
    sys.path.insert(0, str(REPO / "scripts"))
    import train_char_lm
    from conftest import TEXT

    (tmp_path / "t.txt").write_text(TEXT * 3, encoding="utf-8")
    at(write_endpoint.endpoint)
    argv = [
        "--train_file", str(tmp_path / "t.txt"), "--output_dir", str(tmp_path / "run"), "--hidden_size", "8", "--embedding_dim", "4",
        "--seq_len", "16", "--per_device_train_batch_size", "4", "--max_steps", "3", "--sample_length", "10", "--eval_streams", "2",
        "--model_type", "gru", "--push_to_hub", "--hub_model_id", "hfdl-tester/clm-script",
    ]  # fmt: skip
    results = train_char_lm.main(argv)
    files = write_endpoint.files("hfdl-tester/clm-script")
    assert {"model.safetensors", "tokenizer.json", "char_lm.py", "README.md"} <= set(files)
    card = ModelCard(files["README.md"].decode())
    assert _model_index(card)["bits_per_character"] == pytest.approx(results["eval_bpc"])
    assert card.data.eval_results[0].dataset_revision == json.loads((tmp_path / "run" / "run_config.json").read_text())["data"]["fingerprint"]


def test_train_style_push_to_hub_publishes_after_training(tmp_path, write_endpoint, hub_client, at):
    from PIL import Image
    from skimage import data

    sys.path.insert(0, str(REPO / "scripts"))
    import train_style

    Image.fromarray(data.immunohistochemistry()).resize((40, 40)).save(tmp_path / "s.png")
    at(write_endpoint.endpoint)
    argv = [
        "--style_image", str(tmp_path / "s.png"), "--output_dir", str(tmp_path / "run"), "--image_size", "32", "--samples_per_epoch", "4",
        "--per_device_train_batch_size", "2", "--num_train_epochs", "1", "--base_channels", "4", "--num_residual_blocks", "1",
        "--max_train_samples", "2", "--sample_size", "32", "--style_layers", "relu1_2", "--push_to_hub", "--hub_model_id", "hfdl-tester/s",
        "--eval_size", "32", "--gatys_reference_steps", "0",
    ]  # fmt: skip
    results = train_style.main(argv)
    files = write_endpoint.files("hfdl-tester/s")
    assert {"model.safetensors", "config.json", results["style_image"], "sample.png", "README.md"} <= set(files)
    card = ModelCard(files["README.md"].decode())  # ours, not the mixin's generic card
    assert "fast neural style transfer network" in card.text and _model_index(card)["loss"] == pytest.approx(results["eval_loss"])


# --------------------------------------------------------------------------------------------------
# Spaces
# --------------------------------------------------------------------------------------------------


def test_space_push_uploads_the_folder_and_the_hfdl_package_and_runs_from_the_upload(write_endpoint, hub_client, at, tmp_path, capsys):
    """scripts/push_space.py uploads spaces/style_transfer as it is plus hfdl/ at the Space root; the uploaded
    tree alone (hfdl imported from it, not from this checkout) builds the app."""
    sys.path.insert(0, str(REPO / "scripts"))
    import push_space

    at(write_endpoint.endpoint)
    space = REPO / "spaces" / "style_transfer"
    push_space.main([str(space), "--space_id", "hfdl-tester/style-transfer"])
    assert "pushed Space hfdl-tester/style-transfer" in capsys.readouterr().out
    assert write_endpoint.repos["hfdl-tester/style-transfer"].repo_type == "space"
    files = write_endpoint.files("hfdl-tester/style-transfer")
    tracked = subprocess.run(["git", "ls-files", "spaces/style_transfer", "hfdl"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    want = {p.removeprefix("spaces/style_transfer/") for p in tracked if p.startswith("spaces/") or p.endswith(".py")}
    assert set(files) - {".gitattributes"} == want  # no caches, no stubs, no test artefacts
    assert files["hfdl/tasks/style/model.py"] == (REPO / "hfdl/tasks/style/model.py").read_bytes()
    assert write_endpoint.commits("hfdl-tester/style-transfer")[-1].message.startswith("hfdl Space style_transfer")

    upload = tmp_path / "space"
    for rel, data in files.items():
        (upload / rel).parent.mkdir(parents=True, exist_ok=True)
        (upload / rel).write_bytes(data)
    probe = "import app, hfdl, gradio; print(hfdl.__file__); print(type(app.demo).__name__)"
    proc = subprocess.run([sys.executable, "-c", probe], cwd=upload, capture_output=True, text=True, timeout=180, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    origin, demo = proc.stdout.split()[-2:]
    assert Path(origin).resolve().is_relative_to(upload.resolve()) and demo == "Blocks"


def test_space_push_refuses_a_bad_space_and_uploads_nothing(write_endpoint, hub_client, at, tmp_path):
    import shutil

    from hfdl.hub.spaces import push_space

    at(write_endpoint.endpoint)
    space = tmp_path / "app"
    shutil.copytree(REPO / "spaces" / "style_transfer", space, ignore=shutil.ignore_patterns("models", "examples", "styles"))
    (space / "requirements.txt").write_text("torch\nhfdl>=0.1\n")
    with pytest.raises(HfdlError, match="names `hfdl`, which on PyPI is another project") as err:
        push_space(space, "hfdl-tester/bad-space")
    assert "\n" not in str(err.value)
    (space / "requirements.txt").write_text("torch\n")
    (space / "README.md").write_text((space / "README.md").read_text().replace("app_file: app.py", "app_file: main.py"))
    with pytest.raises(HfdlError, match="front matter needs `sdk: gradio` and an app_file"):
        push_space(space, "hfdl-tester/bad-space")
    assert "hfdl-tester/bad-space" not in write_endpoint.repos


def test_the_wheel_ships_model_cards_and_renders_every_card(compare_run, style_run, char_lm_run, tmp_path):
    """A non-editable install of the wheel in a scratch venv (dependencies borrowed read-only from this
    one) renders the card of every task from its own copy of model_cards/."""
    import sysconfig

    wheels = tmp_path / "wheels"
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels), str(REPO)]
    subprocess.run(build, check=True, capture_output=True, text=True, cwd=tmp_path)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next(venv.glob("lib/python*/site-packages"))
    install = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--target", str(site), str(next(wheels.glob("hfdl-*.whl")))]
    subprocess.run(install, check=True, capture_output=True, text=True)
    (site / "borrowed_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")  # after site-packages: hfdl comes from the wheel
    code = (
        "import sys, hfdl\n"
        "from hfdl.hub.cards import cards_dir\n"
        "from hfdl.hub.registry import plans\n"
        "from hfdl.tasks import load_all\n"
        "load_all()\n"
        "print(hfdl.__file__)\n"
        "print(sorted(p.name for p in cards_dir().glob('*.md')))\n"
        "for out in sys.argv[1:]:\n"
        "    for plan in plans(out, 'hfdl-tester/wheel').values():\n"
        "        print(plan.card.data.to_dict()['pipeline_tag'])\n"
    )
    runs = [compare_run[0], style_run[0], char_lm_run[0]]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([str(venv / "bin" / "python"), "-c", code, *map(str, runs)], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert lines[0].startswith(str(site)) and "editable" not in lines[0]  # the installed copy, not this checkout
    assert lines[1] == str(sorted(p.name for p in (REPO / "model_cards").glob("*.md")))
    assert set(lines[2:]) == {"image-classification", "image-to-image", "text-generation"}


def test_pyproject_lists_every_package():
    import tomllib

    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "hfdl").rglob("__init__.py")}
    assert listed == found | {"hfdl.model_cards"}


@pytest.mark.parametrize(
    "phrase,article",
    [
        ("FPN", "an"),
        ("LR-ASPP", "an"),
        ("U-Net", "a"),
        ("UperNetForSemanticSegmentation", "a"),
        ("DCGAN", "a"),
        ("MLP VAE", "an"),
        ("autoencoder", "an"),
        ("variational autoencoder", "a"),
        ("", "a"),
    ],
)
def test_cards_pick_the_indefinite_article_by_sound(phrase, article):
    from hfdl.hub.cards import indefinite_article

    assert indefinite_article(phrase) == article
