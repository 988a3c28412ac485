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
from hub_servers import TEST_TOKEN, refused_endpoint, write_hub

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


# ----------------------------------------------------------------------------------------------- write endpoint


@pytest.fixture
def run_folder(tmp_path, timm_folder) -> Path:
    """A finished-run-like folder: a text file, an LFS-sized binary, the timm files and checkpoint folders."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(timm_folder, run)
    (run / "all_results.json").write_text(json.dumps({"eval_accuracy": 0.5}))
    (run / "big.dat").write_bytes(os.urandom(10 * 1024 * 1024 + 3))  # >= 10 MB: LFS by size, not by extension
    for ckpt in ("step_100", "epoch_1"):
        (run / ckpt).mkdir()
        (run / ckpt / "model.safetensors").write_bytes(b"checkpoint")
    (run / "logs").mkdir()
    (run / "logs" / "events.txt").write_text("nested files are kept")
    return run


def _local_files(folder: Path, exclude: tuple[str, ...] = ()) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file() and not p.relative_to(folder).as_posix().startswith(exclude)
    }


def test_push_create_repo_upload_folder_and_branch(write_endpoint, hub_client, run_folder):
    from huggingface_hub import HfApi

    hub = write_endpoint
    api = HfApi(endpoint=hub.endpoint)
    assert api.whoami()["name"] == "hfdl-tester"
    url = api.create_repo("hfdl-tester/tiny", private=True, exist_ok=True)
    assert url == f"{hub.endpoint}/hfdl-tester/tiny" and url.repo_id == "hfdl-tester/tiny"
    assert api.create_repo("hfdl-tester/tiny", private=True, exist_ok=True) == url  # 409 answered, exist_ok
    assert hub.repos["hfdl-tester/tiny"].private
    ignore = ["step_*", "epoch_*"]
    info = api.upload_folder(
        folder_path=run_folder, repo_id="hfdl-tester/tiny", commit_message="Upload tiny", commit_description="details", ignore_patterns=ignore
    )
    expected = _local_files(run_folder, exclude=("step_", "epoch_"))
    assert hub.files("hfdl-tester/tiny") == {**expected, ".gitattributes": hub_servers.GITATTRIBUTES}  # exact bytes
    last = hub.commits("hfdl-tester/tiny")[-1]
    assert (last.message, last.description) == ("Upload tiny", "details")
    assert info.oid == last.oid and info.commit_url == f"{hub.endpoint}/hfdl-tester/tiny/commit/{last.oid}"
    assert last.lfs_paths == {"model.safetensors", "big.dat"}  # by extension and by size
    assert set(last.changed) == set(expected)
    assert ignore[:2] == ["step_*", "epoch_*"] and len(ignore) > 2  # NB: upload_folder extends the caller's list in place

    api.create_branch("hfdl-tester/tiny", branch="finetune", exist_ok=True)
    api.create_branch("hfdl-tester/tiny", branch="finetune", exist_ok=True)  # 409, exist_ok
    (run_folder / "all_results.json").write_text(json.dumps({"eval_accuracy": 0.75}))
    api.upload_folder(
        folder_path=run_folder, repo_id="hfdl-tester/tiny", revision="finetune", commit_message="Finetune run", ignore_patterns=["step_*", "epoch_*"]
    )
    assert hub.branches("hfdl-tester/tiny") == ["finetune", "main"]
    assert json.loads(hub.files("hfdl-tester/tiny", "finetune")["all_results.json"]) == {"eval_accuracy": 0.75}
    assert json.loads(hub.files("hfdl-tester/tiny")["all_results.json"]) == {"eval_accuracy": 0.5}  # main untouched
    assert set(hub.commits("hfdl-tester/tiny", "finetune")[-1].changed) == {"all_results.json"}  # unchanged files skipped

    # every Hub API call carried the token; the LFS PUTs to the (pre-signed, S3-like) upload URL carry none, like on the Hub
    assert {auth for method, path, auth in hub.requests if not path.startswith("/__lfs/")} == {f"Bearer {TEST_TOKEN}"}
    assert {auth for method, path, auth in hub.requests if method == "PUT"} == {None}


def test_multipart_lfs_upload_is_reassembled(hub_client, tmp_path):
    from huggingface_hub import HfApi

    (tmp_path / "model.safetensors").write_bytes(os.urandom(2_500_001))
    with write_hub(lfs_chunk_size=1_000_000) as hub:
        api = HfApi(endpoint=hub.endpoint)
        api.create_repo("hfdl-tester/multi")
        api.upload_folder(folder_path=tmp_path, repo_id="hfdl-tester/multi", commit_message="m")
        assert hub.files("hfdl-tester/multi")["model.safetensors"] == (tmp_path / "model.safetensors").read_bytes()
        assert sum(method == "PUT" for method, _, _ in hub.requests) == 3  # three parts, then the completion POST


def _raised(fn) -> BaseException:
    with pytest.raises(Exception) as e:
        fn()
    print(f"{type(e.value).__module__}.{type(e.value).__name__} | {str(e.value)!r}")
    return e.value


@pytest.mark.parametrize("status", [401, 403, 500])
def test_failures_raise_hub_errors(write_endpoint, hub_client, tmp_path, status):
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    hub = write_endpoint
    api = HfApi(endpoint=hub.endpoint)
    (tmp_path / "a.txt").write_text("a")
    hub.fail_next(status, route_contains="/api/repos/create")
    err = _raised(lambda: api.create_repo("hfdl-tester/x"))
    assert isinstance(err, HfHubHTTPError) and err.response.status_code == status
    api.create_repo("hfdl-tester/x")
    hub.fail_next(status, route_contains="/commit/")
    err = _raised(lambda: api.upload_folder(folder_path=tmp_path, repo_id="hfdl-tester/x", commit_message="c"))
    assert isinstance(err, HfHubHTTPError) and err.response.status_code == status
    assert [c.message for c in hub.commits("hfdl-tester/x")] == ["initial commit"]  # nothing half-committed
    assert (tmp_path / "a.txt").read_text() == "a"


def test_wrong_token_foreign_namespace_missing_repo_and_refused_connection(write_endpoint, hub_client, tmp_path, monkeypatch):
    import httpx2
    from huggingface_hub import HfApi, constants
    from huggingface_hub.errors import HfHubHTTPError, HfUriError, RepositoryNotFoundError

    hub = write_endpoint
    (tmp_path / "a.txt").write_text("a")
    err = _raised(lambda: HfApi(endpoint=hub.endpoint, token="hf_test_token_wrong").create_repo("hfdl-tester/y"))
    assert isinstance(err, HfHubHTTPError) and err.response.status_code == 401
    err = _raised(lambda: HfApi(endpoint=hub.endpoint, token="hf_test_token_wrong").whoami())
    assert err.response.status_code == 401
    api = HfApi(endpoint=hub.endpoint)
    err = _raised(lambda: api.create_repo("someone-else/y", exist_ok=True))  # owner check, even with exist_ok
    assert isinstance(err, HfHubHTTPError) and err.response.status_code == 403
    hub.create_repo("someone-else/theirs")
    # exist_ok + 403 on a repo that exists: the client checks repo_info and returns a RepoUrl built WITHOUT its endpoint,
    # which only parses when constants.ENDPOINT (HF_ENDPOINT at import) is this host; else HfUriError (client quirk)
    err = _raised(lambda: api.create_repo("someone-else/theirs", exist_ok=True))
    assert isinstance(err, HfUriError)
    monkeypatch.setattr(constants, "ENDPOINT", hub.endpoint)
    assert api.create_repo("someone-else/theirs", exist_ok=True).repo_id == "someone-else/theirs"  # 403 swallowed
    err = _raised(lambda: api.upload_folder(folder_path=tmp_path, repo_id="someone-else/theirs", commit_message="c"))
    assert err.response.status_code == 403
    err = _raised(lambda: api.upload_folder(folder_path=tmp_path, repo_id="hfdl-tester/absent", commit_message="c"))
    assert isinstance(err, RepositoryNotFoundError)
    dead = HfApi(endpoint=refused_endpoint())
    err = _raised(lambda: dead.create_repo("hfdl-tester/y"))
    assert isinstance(err, httpx2.ConnectError)
    _raised(lambda: dead.whoami())


def test_constants_endpoint_monkeypatch_reaches_hfapi_but_not_module_functions(write_endpoint, hub_client, monkeypatch):
    import huggingface_hub
    from huggingface_hub import HfApi, constants

    monkeypatch.setattr(constants, "ENDPOINT", write_endpoint.endpoint)
    assert HfApi().whoami()["name"] == "hfdl-tester"  # HfApi() reads constants.ENDPOINT at construction
    assert huggingface_hub.hf_api.api.endpoint != write_endpoint.endpoint  # module-level create_repo/upload_folder/...: bound at import
    # and downloads: hf_hub_url formats constants.HUGGINGFACE_CO_URL_TEMPLATE (frozen at import) and swaps in `endpoint` only
    # when the URL starts with constants.ENDPOINT; with ENDPOINT patched, even an explicit endpoint= is dropped
    url = huggingface_hub.hf_hub_url("a/b", "config.json", endpoint=write_endpoint.endpoint)
    assert url.startswith("https://huggingface.co/")
    monkeypatch.setattr(constants, "ENDPOINT", "https://huggingface.co")
    assert huggingface_hub.hf_hub_url("a/b", "config.json", endpoint=write_endpoint.endpoint).startswith(write_endpoint.endpoint)


def test_offline_mode_blocks_hfapi_calls(write_endpoint, monkeypatch):
    from huggingface_hub import HfApi, constants
    from huggingface_hub.errors import OfflineModeIsEnabled

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    err = _raised(lambda: HfApi(endpoint=write_endpoint.endpoint, token=TEST_TOKEN).create_repo("hfdl-tester/z"))
    assert isinstance(err, OfflineModeIsEnabled)
    assert write_endpoint.requests == []
