"""Two Hugging Face Hub servers on 127.0.0.1 for tests, both driven by the real `huggingface_hub` client.

* `olah_server(root)`: the real, read-only Hub-API server from PyPI (`olah`) serving local git repos. Pull paths
  (`snapshot_download`, `hf_hub_download`, `timm.create_model("hf-hub:...")`, `from_pretrained`) run unchanged
  against it with `HF_ENDPOINT=server.endpoint`. `server.publish(repo_id, folder)` commits a folder to `main`.
* `write_hub()`: a minimal write endpoint (stdlib `ThreadingHTTPServer`) implementing exactly the routes that
  `HfApi(endpoint=...).create_repo / create_branch / upload_folder / create_commit / whoami / repo_info /
  list_repo_refs` call, with the legacy LFS protocol (needs `HF_HUB_DISABLE_XET=1`, see `hub_client`). It records
  commits, final file sets (exact bytes) and the Authorization headers it saw; `fail_next` injects Hub-like errors.

Routes and payloads follow the installed huggingface_hub (`hf_api.py`, `_commit_api.py`, `lfs.py`).

Import from tests as `from hub_servers import ...` (pytest puts tests/ on sys.path: rootdir-based import, no
`__init__.py`). Fixtures `olah_hub`, `write_endpoint` and `hub_client` are defined here; bind them to module-level
names in a test module (`hub_client, olah_hub = hub_servers.hub_client, hub_servers.olah_hub`: no ruff F811).
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

DEFAULT_USER = "hfdl-tester"
TEST_TOKEN = "hf_test_token_hfdl_0123456789abcdef"  # fake; never a real token
_GIT_ENV = {
    "GIT_AUTHOR_NAME": "hfdl-tests",
    "GIT_AUTHOR_EMAIL": "tests@hfdl.invalid",
    "GIT_COMMITTER_NAME": "hfdl-tests",
    "GIT_COMMITTER_EMAIL": "tests@hfdl.invalid",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_TERMINAL_PROMPT": "0",
}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def refused_endpoint() -> str:
    """An endpoint URL whose connection is refused (free port, nothing listening)."""
    return f"http://127.0.0.1:{free_port()}"


# --------------------------------------------------------------------------------------------------------------------
# Client-side settings
# --------------------------------------------------------------------------------------------------------------------


@pytest.fixture
def hub_client(monkeypatch):
    """Lets the in-process huggingface_hub client talk to a loopback server.

    tests/conftest.py sets `HF_HUB_OFFLINE=1` before huggingface_hub is imported, and huggingface_hub reads
    `HF_HUB_OFFLINE` / `HF_HUB_DISABLE_XET` into `constants` at import time, so the env vars alone do not help:
    patch the constants (and the env, for subprocesses). Xet is disabled (the write endpoint speaks legacy LFS only).
    Sets `HF_TOKEN` to the fake `TEST_TOKEN`. Yields the token.
    """
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", True, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.setenv("HF_TOKEN", TEST_TOKEN)
    yield TEST_TOKEN


# --------------------------------------------------------------------------------------------------------------------
# 1. olah: a real read-only Hub-API server over local git repos
# --------------------------------------------------------------------------------------------------------------------


class OlahServer:
    """A running `olah` subprocess (offline mode) serving git repos under `root/mirrors`."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.mirrors = self.root / "mirrors"
        self.port = 0
        self.endpoint = ""
        self.log_file = self.root / "olah.out"
        self._proc: subprocess.Popen | None = None

    def publish(self, repo_id: str, folder: str | os.PathLike, *, message: str = "Upload model", branch: str = "main", repo_type: str = "model") -> str:
        """Makes the content of `folder` the tip of `branch` of `repo_id` (a git commit; files are plain git blobs).

        A second call replaces the whole tree with a new commit. Returns the 40-hex commit sha.
        """
        org, name = repo_id.split("/")
        repo = self.mirrors / f"{repo_type}s" / org / name
        git = ["git", "-c", "commit.gpgsign=false", "-c", "core.autocrlf=false"]
        env = {**os.environ, **_GIT_ENV}

        def run(*args: str) -> str:
            proc = subprocess.run([*git, *args], cwd=repo, env=env, capture_output=True, text=True)
            if proc.returncode:
                raise RuntimeError(f"git {' '.join(args)} failed: {proc.stderr.strip()}")
            return proc.stdout.strip()

        if not (repo / ".git").is_dir():
            repo.mkdir(parents=True, exist_ok=True)
            run("init", "-q", "-b", branch)
        elif branch not in run("branch", "--list", "--format=%(refname:short)").split():
            run("checkout", "-q", "-b", branch)
        else:
            run("checkout", "-q", branch)
        for entry in repo.iterdir():  # replace the tree
            if entry.name != ".git":
                shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
        shutil.copytree(folder, repo, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".git"))
        run("add", "-A")
        run("commit", "-q", "--allow-empty", "-m", message)
        return run("rev-parse", "HEAD")

    def logs(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""

    def start(self, timeout: float = 90.0) -> None:
        for d in (self.mirrors, self.root / "cache", self.root / "logs"):
            d.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        config = self.root / "olah.toml"
        config.write_text(
            "[basic]\n"
            'host = "127.0.0.1"\n'
            f"port = {self.port}\n"
            f"repos-path = {json.dumps(str(self.root / 'cache'))}\n"
            f"mirrors-path = [{json.dumps(str(self.mirrors))}]\n"
            "metadata-cache-ttl = 0\n"  # a re-publish is seen at once
            "\n[accessibility]\noffline = true\n"
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("HF_") or k in ("HF_HUB_DISABLE_TELEMETRY",)}
        env["PYTHONUNBUFFERED"] = "1"
        with open(self.log_file, "wb") as log:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "olah.server", "--config", str(config), "--log-path", str(self.root / "logs")],
                cwd=self.root,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + timeout
        while True:
            if self._proc.poll() is not None:
                raise RuntimeError(f"olah exited with code {self._proc.returncode} before answering:\n{self.logs()[-4000:]}")
            try:  # urllib, not huggingface_hub: the test process may be in HF_HUB_OFFLINE mode
                urllib.request.urlopen(f"{self.endpoint}/api/models/olah-probe/none/revision/main", timeout=5).close()
                return
            except urllib.error.HTTPError:
                return  # any HTTP answer means it is up
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"olah did not answer on {self.endpoint} within {timeout:.0f} s:\n{self.logs()[-4000:]}") from None
                time.sleep(0.1)

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None


@contextmanager
def olah_server(root: str | os.PathLike) -> Iterator[OlahServer]:
    """Starts `olah` on a free 127.0.0.1 port with its files under `root`; stops it on exit.

    On an exception inside the block, olah's log tail is attached to the error as a note.
    """
    server = OlahServer(Path(root))
    server.start()
    try:
        yield server
    except BaseException as e:
        if hasattr(e, "add_note"):
            e.add_note(f"--- olah log ({server.log_file}) ---\n{server.logs()[-3000:]}")
        raise
    finally:
        server.stop()


@pytest.fixture(scope="module")
def olah_hub(tmp_path_factory) -> Iterator[OlahServer]:
    """One olah server per test module (startup takes a second or two)."""
    with olah_server(tmp_path_factory.mktemp("olah")) as server:
        yield server


# --------------------------------------------------------------------------------------------------------------------
# 2. A minimal write endpoint
# --------------------------------------------------------------------------------------------------------------------

# The Hub's default .gitattributes for new repos: files matching these go through LFS (as do files >= 10 MB).
LFS_PATTERNS = (
    "*.7z *.arrow *.bin *.bz2 *.ckpt *.ftz *.gz *.h5 *.joblib *.lfs.* *.mlmodel *.model *.msgpack *.npy *.npz *.onnx *.ot "
    "*.parquet *.pb *.pickle *.pkl *.pt *.pth *.rar *.safetensors saved_model/**/* *.tar.* *.tar *.tflite *.tgz *.wasm "
    "*.xz *.zip *.zst *tfevents*"
).split()
LFS_SIZE_THRESHOLD = 10 * 1024 * 1024
GITATTRIBUTES = "".join(f"{p} filter=lfs diff=lfs merge=lfs -text\n" for p in LFS_PATTERNS).encode()
HUB_500_MESSAGE = "Internal Error - We're working hard to fix this as soon as possible!"
_DEFAULT_ERRORS = {
    400: "Bad request",
    401: "Invalid credentials in Authorization header",
    403: "You don't have the rights to write to this repository",
    404: "Repository not found",
    409: "Conflict",
    429: "Too many requests",
    500: HUB_500_MESSAGE,
    502: "Bad gateway",
    503: "Service unavailable",
}


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def is_lfs_path(path: str, size: int) -> bool:
    name = path.rsplit("/", 1)[-1]
    return size >= LFS_SIZE_THRESHOLD or any(fnmatch.fnmatch(name, p) or fnmatch.fnmatch(path, p) for p in LFS_PATTERNS)


@dataclass
class CommitRecord:
    oid: str
    message: str
    description: str
    files: dict[str, bytes]  # the full tree after this commit
    changed: dict[str, bytes | None]  # paths this commit added/changed (bytes) or deleted (None)
    lfs_paths: set[str] = field(default_factory=set)  # paths in `files` stored through LFS
    authorization: str | None = None


@dataclass
class RepoRecord:
    repo_id: str
    repo_type: str
    private: bool
    branches: dict[str, list[CommitRecord]] = field(default_factory=dict)  # branch -> commit history, oldest first


@dataclass
class _Failure:
    status: int
    times: int
    route_contains: str | None
    message: str | None
    headers: dict[str, str]


class HubError(Exception):
    def __init__(self, status: int, message: str | None = None, code: str | None = None, extra: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.extra = status, message or _DEFAULT_ERRORS.get(status, "Error"), code, extra or {}


class WriteHub:
    """State and knobs of the write endpoint (see `write_hub`). Thread-safe."""

    def __init__(self, user: str = DEFAULT_USER, token: str | None = TEST_TOKEN, orgs: tuple[str, ...] = (), lfs_chunk_size: int | None = None):
        self.user = user
        self.token = token  # None: any bearer token is accepted as `user`
        self.orgs = tuple(orgs)
        self.lfs_chunk_size = lfs_chunk_size  # set: LFS uploads larger than this use the multipart protocol
        self.endpoint = ""
        self.repos_by_id: dict[str, RepoRecord] = {}
        self.requests: list[tuple[str, str, str | None]] = []  # (method, path, Authorization header)
        self._lfs: dict[tuple[str, str], bytes] = {}  # (repo_id, sha256) -> bytes
        self._parts: dict[tuple[str, str], dict[int, bytes]] = {}
        self._failures: list[_Failure] = []
        self._lock = threading.RLock()

    # ---- test-facing API ----
    @property
    def repos(self) -> dict[str, RepoRecord]:
        return self.repos_by_id

    def files(self, repo_id: str, revision: str = "main") -> dict[str, bytes]:
        """The file tree at the tip of `revision` (path -> exact bytes), `.gitattributes` of the initial commit included."""
        with self._lock:
            return dict(self.repos_by_id[repo_id].branches[revision][-1].files)

    def commits(self, repo_id: str, revision: str = "main") -> list[CommitRecord]:
        """Commit history of `revision`, oldest first (the first is the repo's 'initial commit')."""
        with self._lock:
            return list(self.repos_by_id[repo_id].branches[revision])

    def branches(self, repo_id: str) -> list[str]:
        with self._lock:
            return sorted(self.repos_by_id[repo_id].branches)

    @property
    def authorizations(self) -> list[str | None]:
        """Every Authorization header received, in order (None where absent)."""
        with self._lock:
            return [auth for _, _, auth in self.requests]

    def fail_next(
        self, status: int, times: int = 1, route_contains: str | None = None, message: str | None = None, headers: dict[str, str] | None = None
    ) -> None:
        """The next `times` requests whose path contains `route_contains` (any request if None) answer `status`
        with a Hub-like JSON body `{"error": message}` and `X-Error-Message` header. Note the client retries 408/429/5xx
        on the routes it calls via `http_backoff` (preupload, LFS batch/upload) with 1-8 s sleeps: fail `/commit`,
        `/api/repos/create`, `/branch/` or `/api/whoami-v2` to stay fast."""
        with self._lock:
            self._failures.append(_Failure(status, times, route_contains, message, dict(headers or {})))

    def create_repo(self, repo_id: str, private: bool = False, repo_type: str = "model") -> RepoRecord:
        """Server-side creation (as if it existed before the test), with the Hub's initial commit."""
        with self._lock:
            rec = RepoRecord(repo_id, repo_type, private)
            init = CommitRecord(_oid(repo_id, "initial commit", ""), "initial commit", "", {".gitattributes": GITATTRIBUTES}, {".gitattributes": GITATTRIBUTES})
            rec.branches["main"] = [init]
            self.repos_by_id[repo_id] = rec
            return rec

    # ---- request handling ----
    def _take_failure(self, path: str) -> _Failure | None:
        with self._lock:
            for f in self._failures:
                if f.route_contains is None or f.route_contains in path:
                    f.times -= 1
                    if f.times <= 0:
                        self._failures.remove(f)
                    return f
        return None

    def _auth_user(self, auth: str | None) -> str:
        if not auth or not auth.lower().startswith("bearer "):
            raise HubError(401, "Invalid username or password.")
        if self.token is not None and auth.split(" ", 1)[1].strip() != self.token:
            raise HubError(401, "Invalid credentials in Authorization header")
        return self.user

    def _check_owner(self, user: str, repo_id: str, what: str = "write to") -> None:
        namespace = repo_id.split("/")[0]
        if namespace not in (user, *self.orgs):
            raise HubError(403, f"You don't have the rights to {what} {repo_id} (you are {user})")

    def _repo(self, repo_type: str, repo_id: str, user: str | None) -> RepoRecord:
        rec = self.repos_by_id.get(repo_id)
        if rec is None or rec.repo_type != repo_type or (rec.private and user is None):
            raise HubError(404, "Repository not found", code="RepoNotFound")
        return rec

    @staticmethod
    def _branch(rec: RepoRecord, revision: str) -> list[CommitRecord]:
        if revision not in rec.branches:
            raise HubError(404, f"Invalid rev id: {revision}", code="RevisionNotFound")
        return rec.branches[revision]

    def handle(self, method: str, url: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        parts = urlsplit(url)
        path, query = parts.path, parse_qs(parts.query)
        auth = headers.get("authorization")
        with self._lock:
            self.requests.append((method, path, auth))
        failure = self._take_failure(path)
        if failure is not None:
            message = failure.message or _DEFAULT_ERRORS.get(failure.status, "Error")
            return _json(failure.status, {"error": message}, {"X-Error-Message": message, **failure.headers})
        try:
            return self._route(method, path, query, headers, body, auth)
        except HubError as e:
            extra = {"X-Error-Message": e.message}
            if e.code:
                extra["X-Error-Code"] = e.code
            return _json(e.status, {"error": e.message, **e.extra}, extra)

    def _route(self, method: str, path: str, query: dict, headers: dict[str, str], body: bytes, auth: str | None) -> tuple[int, dict[str, str], bytes]:
        seg = [unquote(s) for s in path.strip("/").split("/")]
        if method == "GET" and path == "/api/whoami-v2":
            user = self._auth_user(auth)
            orgs = [{"type": "org", "name": o, "roleInOrg": "write"} for o in self.orgs]
            return _json(
                200,
                {
                    "type": "user",
                    "id": "0" * 24,
                    "name": user,
                    "fullname": user,
                    "orgs": orgs,
                    "auth": {"type": "access_token", "accessToken": {"displayName": "test", "role": "write"}},
                },
            )
        if method == "POST" and path == "/api/validate-yaml":
            return self._validate_yaml(json.loads(body or b"{}"))
        if method == "POST" and path == "/api/repos/create":
            return self._create_repo(json.loads(body or b"{}"), auth)
        # /api/{models,datasets,spaces}/{ns}/{name}[/...]
        if len(seg) >= 4 and seg[0] == "api" and seg[1] in ("models", "datasets", "spaces"):
            repo_type, repo_id, rest = seg[1][:-1], f"{seg[2]}/{seg[3]}", seg[4:]
            if method == "GET" and (not rest or rest[0] == "revision"):
                return self._repo_info(repo_type, repo_id, "/".join(rest[1:]) or "main", auth)
            if method == "GET" and rest == ["refs"]:
                rec = self._repo(repo_type, repo_id, self._optional_user(auth))
                branches = [{"name": b, "ref": f"refs/heads/{b}", "targetCommit": c[-1].oid} for b, c in sorted(rec.branches.items())]
                return _json(200, {"branches": branches, "tags": [], "converts": []})
            if method == "POST" and rest and rest[0] == "preupload":
                return self._preupload(repo_type, repo_id, "/".join(rest[1:]), json.loads(body), auth)
            if method == "POST" and rest and rest[0] == "commit":
                return self._commit(repo_type, repo_id, "/".join(rest[1:]), body, auth)
            if method == "POST" and rest and rest[0] == "branch":
                return self._create_branch(repo_type, repo_id, "/".join(rest[1:]), json.loads(body or b"{}"), auth)
        # LFS batch: /{datasets/|spaces/}{ns}/{name}.git/info/lfs/objects/batch
        if method == "POST" and path.endswith(".git/info/lfs/objects/batch"):
            prefix = path[1 : -len(".git/info/lfs/objects/batch")]
            repo_type = "model"
            for t in ("datasets", "spaces"):
                if prefix.startswith(t + "/"):
                    repo_type, prefix = t[:-1], prefix[len(t) + 1 :]
            return self._lfs_batch(repo_type, prefix, json.loads(body), auth)
        if seg and seg[0] == "__lfs":  # /__lfs/{ns}/{name}/{oid}[/verify|/complete]
            return self._lfs_transfer(method, f"{seg[1]}/{seg[2]}", seg[3], seg[4] if len(seg) > 4 else "", query, body)
        raise HubError(404, f"Route not implemented by the test endpoint: {method} {path}")

    def _optional_user(self, auth: str | None) -> str | None:
        return self._auth_user(auth) if auth else None

    def _validate_yaml(self, payload: dict) -> tuple[int, dict[str, str], bytes]:
        import yaml

        content = payload.get("content", "")
        if content.startswith("---"):
            end = content.find("\n---", 3)
            if end < 0:
                return _json(400, {"errors": [{"message": "README.md metadata block is not closed"}], "warnings": []})
            try:
                meta = yaml.safe_load(content[3:end])
            except yaml.YAMLError as e:
                return _json(400, {"errors": [{"message": f"Invalid YAML: {e}"}], "warnings": []})
            if meta is not None and not isinstance(meta, dict):
                return _json(400, {"errors": [{"message": "Metadata must be a mapping"}], "warnings": []})
        return _json(200, {"errors": [], "warnings": []})

    def _create_repo(self, payload: dict, auth: str | None) -> tuple[int, dict[str, str], bytes]:
        user = self._auth_user(auth)
        name, org = payload.get("name"), payload.get("organization") or user
        repo_type = payload.get("type") or "model"
        repo_id = f"{org}/{name}"
        self._check_owner(user, repo_id, f"create a {repo_type} repo")
        url = f"{self.endpoint}/{'' if repo_type == 'model' else repo_type + 's/'}{repo_id}"
        with self._lock:
            if repo_id in self.repos_by_id:
                raise HubError(409, f"You already created this {repo_type} repo", extra={"url": url})
            self.create_repo(repo_id, private=payload.get("visibility") == "private" or bool(payload.get("private")), repo_type=repo_type)
        return _json(200, {"url": url, "name": repo_id, "id": "0" * 24})

    def _repo_info(self, repo_type: str, repo_id: str, revision: str, auth: str | None) -> tuple[int, dict[str, str], bytes]:
        with self._lock:
            rec = self._repo(repo_type, repo_id, self._optional_user(auth))
            head = self._branch(rec, revision)[-1]
            siblings = [{"rfilename": p, "size": len(b)} for p, b in sorted(head.files.items())]
            return _json(
                200,
                {
                    "_id": "0" * 24,
                    "id": repo_id,
                    "author": repo_id.split("/")[0],
                    "sha": head.oid,
                    "private": rec.private,
                    "siblings": siblings,
                    "tags": [],
                    "downloads": 0,
                    "likes": 0,
                    "lastModified": "2026-01-01T00:00:00.000Z",
                },
            )

    def _preupload(self, repo_type: str, repo_id: str, revision: str, payload: dict, auth: str | None) -> tuple[int, dict[str, str], bytes]:
        user = self._auth_user(auth)
        self._check_owner(user, repo_id)
        with self._lock:
            rec = self._repo(repo_type, repo_id, user)
            head = self._branch(rec, revision)[-1]
            out = []
            for f in payload.get("files", []):
                lfs = is_lfs_path(f["path"], int(f["size"]))
                entry: dict[str, Any] = {"path": f["path"], "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False}
                if f["path"] in head.files:  # lets the client skip unchanged files, like the Hub
                    data = head.files[f["path"]]
                    entry["oid"] = hashlib.sha256(data).hexdigest() if lfs else git_blob_sha1(data)
                out.append(entry)
        return _json(200, {"files": out, "commitOid": head.oid})

    def _lfs_batch(self, repo_type: str, repo_id: str, payload: dict, auth: str | None) -> tuple[int, dict[str, str], bytes]:
        user = self._auth_user(auth)
        self._check_owner(user, repo_id)
        self._repo(repo_type, repo_id, user)
        objects = []
        for obj in payload.get("objects", []):
            oid, size = obj["oid"], int(obj["size"])
            base = f"{self.endpoint}/__lfs/{repo_id}/{oid}"
            with self._lock:
                present = (repo_id, oid) in self._lfs
            if present:
                objects.append({"oid": oid, "size": size})  # no actions: already uploaded
                continue
            verify = {"href": f"{base}/verify", "header": {}}
            if self.lfs_chunk_size and size > self.lfs_chunk_size:
                n = -(-size // self.lfs_chunk_size)
                header = {"chunk_size": str(self.lfs_chunk_size), **{str(i): f"{base}?part={i}" for i in range(1, n + 1)}}
                upload = {"href": f"{base}/complete", "header": header}
            else:
                upload = {"href": base}
            objects.append({"oid": oid, "size": size, "authenticated": True, "actions": {"upload": upload, "verify": verify}})
        return _json(200, {"transfer": "basic", "objects": objects}, {"Content-Type": "application/vnd.git-lfs+json"})

    def _lfs_transfer(self, method: str, repo_id: str, oid: str, action: str, query: dict, body: bytes) -> tuple[int, dict[str, str], bytes]:
        key = (repo_id, oid)
        if method == "PUT" and not action:
            if "part" in query:
                part = int(query["part"][0])
                with self._lock:
                    self._parts.setdefault(key, {})[part] = body
                return 200, {"ETag": f'"{hashlib.md5(body).hexdigest()}"', "Content-Length": "0"}, b""
            self._store_lfs(key, body)
            return 200, {"Content-Length": "0"}, b""
        if method == "POST" and action == "complete":
            payload = json.loads(body)
            with self._lock:
                parts = self._parts.pop(key, {})
            numbers = [p["partNumber"] for p in payload["parts"]]
            if sorted(parts) != numbers:
                raise HubError(400, f"Parts {numbers} do not match the uploaded parts {sorted(parts)}")
            for p in payload["parts"]:
                if p["etag"].strip('"') != hashlib.md5(parts[p["partNumber"]]).hexdigest():
                    raise HubError(400, f"ETag mismatch for part {p['partNumber']}")
            self._store_lfs(key, b"".join(parts[n] for n in numbers))
            return _json(200, {"success": True})
        if method == "POST" and action == "verify":
            payload = json.loads(body)
            with self._lock:
                data = self._lfs.get(key)
            if data is None or len(data) != int(payload["size"]) or payload["oid"] != oid:
                raise HubError(404, f"LFS object {oid} not found or wrong size")
            return _json(200, {"success": True})
        raise HubError(404, f"Route not implemented by the test endpoint: {method} LFS {action}")

    def _store_lfs(self, key: tuple[str, str], data: bytes) -> None:
        if hashlib.sha256(data).hexdigest() != key[1]:
            raise HubError(400, f"sha256 of the uploaded content does not match the LFS oid {key[1]}")
        with self._lock:
            self._lfs[key] = data

    def _commit(self, repo_type: str, repo_id: str, revision: str, body: bytes, auth: str | None) -> tuple[int, dict[str, str], bytes]:
        user = self._auth_user(auth)
        self._check_owner(user, repo_id)
        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        if not lines or lines[0].get("key") != "header":
            raise HubError(400, "The commit payload must start with a header line")
        header = lines[0]["value"]
        with self._lock:
            rec = self._repo(repo_type, repo_id, user)
            history = self._branch(rec, revision)
            parent = history[-1]
            if header.get("parentCommit") and header["parentCommit"] != parent.oid:
                raise HubError(412, "A commit has happened since. Please refresh and try again.")
            files, lfs_paths, changed = dict(parent.files), set(parent.lfs_paths), {}
            for item in lines[1:]:
                key, value = item["key"], item["value"]
                path = value["path"]
                if key == "file":
                    data = base64.b64decode(value["content"]) if value.get("encoding") == "base64" else value["content"].encode()
                    files[path], changed[path] = data, data
                    lfs_paths.discard(path)
                elif key == "lfsFile":
                    data = self._lfs.get((repo_id, value["oid"]))
                    if data is None:
                        raise HubError(422, f"LFS file {path} (oid {value['oid']}) was not uploaded")
                    files[path], changed[path] = data, data
                    lfs_paths.add(path)
                elif key == "deletedFile":
                    if path not in files:
                        raise HubError(404, f"A file with this name doesn't exist: {path}", code="EntryNotFound")
                    del files[path]
                    changed[path] = None
                    lfs_paths.discard(path)
                elif key == "deletedFolder":
                    for p in [p for p in files if p.startswith(path.rstrip("/") + "/")]:
                        del files[p]
                        changed[p] = None
                        lfs_paths.discard(p)
                else:
                    raise HubError(400, f"Unknown commit operation {key!r}")
            commit = CommitRecord(
                _oid(parent.oid, header.get("summary", ""), json.dumps(sorted((p, hashlib.sha256(b).hexdigest()) for p, b in files.items()))),
                header.get("summary", ""),
                header.get("description", ""),
                files,
                changed,
                lfs_paths,
                auth,
            )
            history.append(commit)
        prefix = "" if repo_type == "model" else f"{repo_type}s/"
        return _json(
            200, {"success": True, "commitOid": commit.oid, "commitUrl": f"{self.endpoint}/{prefix}{repo_id}/commit/{commit.oid}", "pullRequestUrl": None}
        )

    def _create_branch(self, repo_type: str, repo_id: str, branch: str, payload: dict, auth: str | None) -> tuple[int, dict[str, str], bytes]:
        user = self._auth_user(auth)
        self._check_owner(user, repo_id)
        with self._lock:
            rec = self._repo(repo_type, repo_id, user)
            if branch in rec.branches:
                raise HubError(409, f"Reference already exists: refs/heads/{branch}")
            start = payload.get("startingPoint") or "main"
            source = next((h for h in rec.branches.values() if h[-1].oid == start), None) or self._branch(rec, start)
            rec.branches[branch] = list(source)
        return _json(200, {"success": True})


def _oid(*parts: str) -> str:
    return hashlib.sha1("\0".join(parts).encode()).hexdigest()


def _json(status: int, payload: Any, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    return status, {"Content-Type": "application/json", **(headers or {})}, json.dumps(payload).encode()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: httpx pools connections
    hub: WriteHub

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _serve(self) -> None:
        body = self._read_body()
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            status, out_headers, payload = self.hub.handle(self.command, self.path, headers, body)
        except Exception as e:  # a bug in the test server: answer 500 with the reason, never hang the client
            status, out_headers, payload = _json(500, {"error": f"test endpoint crashed: {type(e).__name__}: {e}"})
        self.send_response(status)
        for k, v in out_headers.items():
            if k.lower() != "content-length":
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass


@contextmanager
def write_hub(user: str = DEFAULT_USER, token: str | None = TEST_TOKEN, orgs: tuple[str, ...] = (), lfs_chunk_size: int | None = None) -> Iterator[WriteHub]:
    """Runs the write endpoint on a free 127.0.0.1 port in a background thread; stops it on exit.

    `token`: the only bearer token accepted (others: 401); None accepts any. `whoami()` returns `user`; repos may be
    created/committed only under `user` or `orgs` (else 403). `lfs_chunk_size`: if set, LFS uploads larger than it
    use the multipart protocol.
    """
    hub = WriteHub(user=user, token=token, orgs=orgs, lfs_chunk_size=lfs_chunk_size)
    handler = type("Handler", (_Handler,), {"hub": hub})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    hub.endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield hub
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def write_endpoint() -> Iterator[WriteHub]:
    with write_hub() as hub:
        yield hub
