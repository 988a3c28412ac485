"""The loopback Hub servers of tests/hub_servers.py work with the real huggingface_hub client (and timm)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import hub_servers
import pytest
import torch
from hub_servers import refused_endpoint

# The fixtures live in hub_servers.py; a module-level name makes pytest find them here.
hub_client, olah_hub, write_endpoint = hub_servers.hub_client, hub_servers.olah_hub, hub_servers.write_endpoint

REPO_ID = "hfdl-tester/tiny-timm"
LABELS = ["red", "green", "blue"]


@pytest.fixture(scope="module")
def timm_folder(tmp_path_factory) -> Path:
    """A tiny timm classifier saved in the Hub layout (config.json with label names + model.safetensors)."""
    import timm
    from timm.models import save_for_hf

    torch.manual_seed(0)
    model = timm.create_model("test_efficientnet", num_classes=3).eval()
    folder = tmp_path_factory.mktemp("timm_repo")
    save_for_hf(model, folder, model_config={"label_names": LABELS}, safe_serialization=True)
    (folder / "README.md").write_text("---\nlibrary_name: timm\n---\n# tiny\n")
    torch.save(torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(1)), folder.parent / "x.pt")
    with torch.no_grad():
        torch.save(model(torch.load(folder.parent / "x.pt")), folder.parent / "logits.pt")
    return folder


@pytest.fixture(scope="module")
def published(olah_hub, timm_folder) -> str:
    return olah_hub.publish(REPO_ID, timm_folder, message="Add tiny timm model")


def _hub_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_"))}
    return {**env, "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_XET": "1", **extra}


# ------------------------------------------------------------------------------------------------------------ olah


def test_olah_serves_exact_bytes_to_snapshot_and_hf_hub_download(olah_hub, published, timm_folder, tmp_path, hub_client):
    from huggingface_hub import HfApi, hf_hub_download, snapshot_download

    local = {p.relative_to(timm_folder).as_posix(): p.read_bytes() for p in timm_folder.rglob("*") if p.is_file()}
    assert {"config.json", "model.safetensors", "README.md"} <= set(local)
    snap = Path(snapshot_download(REPO_ID, endpoint=olah_hub.endpoint, cache_dir=tmp_path / "a"))
    assert {p.relative_to(snap).as_posix(): p.read_bytes() for p in snap.rglob("*") if p.is_file()} == local
    assert snap.name == published  # the snapshot is the published git commit
    one = hf_hub_download(REPO_ID, "model.safetensors", endpoint=olah_hub.endpoint, cache_dir=tmp_path / "b")
    assert Path(one).read_bytes() == local["model.safetensors"]
    info = HfApi(endpoint=olah_hub.endpoint).model_info(REPO_ID, revision="main")  # olah needs revision="main"
    assert info.sha == published and {s.rfilename for s in info.siblings} == set(local)


_TIMM_LOAD = textwrap.dedent(
    """
    import sys, timm, torch
    model = timm.create_model("hf-hub:{repo}", pretrained=True).eval()
    with torch.no_grad():
        logits = model(torch.load(sys.argv[1]))
    assert torch.equal(logits, torch.load(sys.argv[2])), (logits, torch.load(sys.argv[2]))
    print(",".join(model.pretrained_cfg["label_names"]))
    """
).format(repo=REPO_ID)


def test_timm_hf_hub_loads_through_olah_then_offline_from_the_cache(olah_hub, published, timm_folder, tmp_path, monkeypatch):
    """A fresh process with HF_ENDPOINT=olah and an empty HF_HOME gets identical logits and label names;
    then HF_HUB_OFFLINE=1 loads from the populated cache with no server involved (in-process, to save a
    torch/timm import: the test process has HF_HUB_OFFLINE=1 from conftest, re-asserted on `constants`)."""
    import timm
    from huggingface_hub import constants

    x, logits = timm_folder.parent / "x.pt", timm_folder.parent / "logits.pt"
    home = tmp_path / "hf_home"
    env = _hub_env(HF_ENDPOINT=olah_hub.endpoint, HF_HOME=str(home))
    online = subprocess.run([sys.executable, "-c", _TIMM_LOAD, str(x), str(logits)], env=env, capture_output=True, text=True, timeout=300)
    assert online.returncode == 0, online.stderr[-3000:] + olah_hub.logs()[-2000:]
    assert online.stdout.strip() == ",".join(LABELS)
    assert (home / "hub" / "models--hfdl-tester--tiny-timm" / "snapshots" / published / "model.safetensors").is_file()

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "ENDPOINT", refused_endpoint())  # nothing could answer anyway
    model = timm.create_model(f"hf-hub:{REPO_ID}", pretrained=True, cache_dir=home / "hub").eval()
    with torch.no_grad():
        assert torch.equal(model(torch.load(x)), torch.load(logits))
    assert model.pretrained_cfg["label_names"] == LABELS


def test_olah_republish_serves_the_new_commit(olah_hub, tmp_path, hub_client):
    from huggingface_hub import HfApi, hf_hub_download

    folder = tmp_path / "f"
    folder.mkdir()
    (folder / "a.txt").write_text("one")
    first = olah_hub.publish("hfdl-tester/republish", folder)
    (folder / "a.txt").write_text("two")
    second = olah_hub.publish("hfdl-tester/republish", folder, message="second")
    assert first != second
    assert HfApi(endpoint=olah_hub.endpoint).model_info("hfdl-tester/republish", revision="main").sha == second
    path = hf_hub_download("hfdl-tester/republish", "a.txt", endpoint=olah_hub.endpoint, cache_dir=tmp_path / "c")
    assert Path(path).read_text() == "two"
    old = hf_hub_download("hfdl-tester/republish", "a.txt", revision=first, endpoint=olah_hub.endpoint, cache_dir=tmp_path / "c")
    assert Path(old).read_text() == "one"


def test_olah_missing_repo_raises_repository_not_found(olah_hub, tmp_path, hub_client):
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError

    with pytest.raises(HfHubHTTPError) as e:
        hf_hub_download("hfdl-tester/absent", "config.json", endpoint=olah_hub.endpoint, cache_dir=tmp_path)
    print(type(e.value).__name__, str(e.value).splitlines()[0])


def test_offline_mode_without_cache_raises(tmp_path, monkeypatch):
    """What HF_HUB_OFFLINE=1 with an empty cache raises (conftest sets HF_HUB_OFFLINE=1 for the test process)."""
    from huggingface_hub import constants, hf_hub_download, snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(LocalEntryNotFoundError):
        hf_hub_download(REPO_ID, "config.json", cache_dir=tmp_path)
    with pytest.raises(LocalEntryNotFoundError):
        snapshot_download(REPO_ID, cache_dir=tmp_path)


def _unused():  # keep json import used in later sections
    return json
