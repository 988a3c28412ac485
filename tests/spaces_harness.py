"""Test harness for every Gradio app under `spaces/<name>/app.py`.

- `launch_space(name)`: starts the app in a subprocess on 127.0.0.1 at a free port with the offline settings
  (no analytics, no telemetry, HF_HUB_OFFLINE), waits until it serves, and stops it afterwards.
- `space` fixture: `space("style_transfer")` -> a running `SpaceServer` (one per name per test session),
  with `.client()` (a `gradio_client.Client`) and `.url`.
- `browser_page` fixture: a fresh page in headless Debian Chromium (Playwright, never `playwright install`).
- `upload(page, elem_id, path)`, `screenshot(page, name)` (saved under `test-artifacts/`).
- `front_matter(readme)`, `requirement_names(requirements)`: what the README/requirements checks read.

tests/conftest.py loads this module as a plugin (`pytest_plugins`), so the fixtures are available everywhere.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SPACES = REPO / "spaces"
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = os.environ.get("HFDL_CHROMIUM", shutil.which("chromium") or "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
OFFLINE_ENV = {
    "GRADIO_ANALYTICS_ENABLED": "False",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "GRADIO_SERVER_NAME": "127.0.0.1",
    "PYTHONUNBUFFERED": "1",
}


def space_names() -> list[str]:
    """Every folder under spaces/ with an app.py."""
    return sorted(p.parent.name for p in SPACES.glob("*/app.py"))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class SpaceServer:
    name: str
    url: str
    process: subprocess.Popen
    log_path: Path
    _client: object | None = field(default=None, repr=False)

    def client(self):
        """A `gradio_client.Client` connected to this app (created once)."""
        if self._client is None:
            from gradio_client import Client

            self._client = Client(self.url, verbose=False, download_files=str(ARTIFACTS / "downloads" / self.name))
        return self._client

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.is_file() else ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)


def launch_space(name: str, env: dict[str, str] | None = None, timeout: float = 180.0, log_dir: Path | None = None) -> SpaceServer:
    """Start `spaces/<name>/app.py` as `python app.py` in its folder (as Spaces do) and wait until it answers."""
    import urllib.request

    app = SPACES / name / "app.py"
    if not app.is_file():
        raise FileNotFoundError(f"{app} does not exist")
    port = free_port()
    log_dir = log_dir or ARTIFACTS / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"space_{name}.log"
    full_env = {**os.environ, **OFFLINE_ENV, "GRADIO_SERVER_PORT": str(port), **(env or {})}
    full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), full_env.get("PYTHONPATH", "")]))
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "app.py"], cwd=app.parent, env=full_env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    server = SpaceServer(name, url, proc, log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"space {name} exited with {proc.returncode} before serving:\n{server.log()[-3000:]}")
        try:
            with urllib.request.urlopen(url + "config", timeout=5) as r:
                if r.status == 200:
                    return server
        except OSError:
            pass
        time.sleep(0.5)
    server.stop()
    raise TimeoutError(f"space {name} did not serve {url} within {timeout:.0f} s:\n{server.log()[-3000:]}")


@pytest.fixture(scope="session")
def space():
    """`space(name)` -> a running SpaceServer, launched once per session and stopped at the end."""
    servers: dict[str, SpaceServer] = {}

    def get(name: str, **env: str) -> SpaceServer:
        key = name + repr(sorted(env.items()))
        if key not in servers:
            servers[key] = launch_space(name, env=env or None)
        return servers[key]

    yield get
    for s in servers.values():
        s.stop()


@pytest.fixture(scope="session")
def chromium_browser():
    playwright_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"no Chromium at {CHROMIUM}: `apt-get install chromium` (make setup)")
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def browser_page(chromium_browser):
    """A fresh 1280x900 page; closed after the test."""
    context = chromium_browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    yield page
    context.close()


def upload(page, elem_id: str, path: str | Path) -> None:
    """Put a file into the upload input inside the component with `elem_id`."""
    page.locator(f"#{elem_id} input[type=file]").set_input_files(str(path))


def set_number(page, elem_id: str, value) -> None:
    """Set a slider/number component through its number box."""
    box = page.locator(f"#{elem_id} input[type=number]")
    box.fill(str(value))
    box.press("Enter")


def screenshot(page, name: str) -> Path:
    """Full-page screenshot saved as test-artifacts/<name>.png."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def front_matter(readme: Path) -> dict:
    """The YAML header of a Space README (between the first two `---` lines)."""
    import yaml

    text = readme.read_text()
    m = re.match(r"^---\n(.*?)\n---\n", text, re.S)
    if m is None:
        raise ValueError(f"{readme} has no YAML front matter")
    return yaml.safe_load(m.group(1))


def requirement_names(requirements: Path) -> list:
    """Parsed requirement lines (`packaging.requirements.Requirement`), comments and blanks skipped."""
    from packaging.requirements import Requirement

    out = []
    for line in requirements.read_text().splitlines():
        line = line.split(" #")[0].strip()
        if line and not line.startswith("#"):
            out.append(Requirement(line))
    return out
