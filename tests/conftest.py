"""Shared fixtures: offline settings, a tiny local timm backbone and tiny learnable image datasets."""

from __future__ import annotations

import os

# Tests never touch the network, and never write to the user's caches.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# The suite runs two xdist workers (and their launched scripts) on the cores at once: OpenMP threads that spin while
# waiting would burn the time another process needs (a 2-layer RNN step 14x slower, busy machine). Set before torch
# loads; the scripts leave the policy to the user (spinning is 1.7x faster for a run that has the cores to itself).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import random  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
pytest_plugins = ["spaces_harness"]  # fixtures `space` and `browser_page` for every spaces/<name> app
CLASSES = ["red", "green", "blue"]
# A tiny English text for the char-LM tests (the opening of Pride and Prejudice, public domain).
TEXT = (
    "It is a truth universally acknowledged, that a single man in possession of a good fortune, must be in want of a wife.\n"
    "However little known the feelings or views of such a man may be on his first entering a neighbourhood, this truth is so well fixed.\n"
) * 4


@pytest.fixture(scope="session", autouse=True)
def _isolated_caches(tmp_path_factory):
    root = tmp_path_factory.mktemp("hf_home")
    os.environ["HF_HOME"] = str(root)
    os.environ["HFDL_CACHE"] = str(root / "hfdl")
    os.environ["HF_DATASETS_CACHE"] = str(root / "datasets")
    yield


def colour_image(rng: random.Random, cls: int, size: int = 24) -> Image.Image:
    """A noisy image whose dominant colour channel is the class: easy but not trivial."""
    arr = np.array([[rng.randint(0, 90) for _ in range(3)] for _ in range(size * size)], dtype=np.uint8).reshape(size, size, 3)
    y0, x0 = rng.randint(0, size // 2), rng.randint(0, size // 2)
    arr[y0 : y0 + size // 2, x0 : x0 + size // 2, cls] = rng.randint(170, 255)
    return Image.fromarray(arr, mode="RGB")


def write_imagefolder(root: Path, per_class: int, seed: int, grayscale_every: int = 0) -> Path:
    rng = random.Random(seed)
    for c, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            img = colour_image(rng, c)
            if grayscale_every and i % grayscale_every == 0:
                img = img.convert("L")  # mixed modes, as real folders have
            img.save(root / name / f"{i:03d}.png")
    return root


@pytest.fixture(scope="session")
def imagefolder(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("imgs")
    return write_imagefolder(root / "train", 24, seed=0, grayscale_every=7), write_imagefolder(root / "val", 8, seed=1)


@pytest.fixture(scope="session")
def tiny_backbone(tmp_path_factory) -> Path:
    """timm's tiny `test_efficientnet`, saved in the timm Hub layout: a stand-in 'pretrained' model."""
    import timm
    from timm.models import save_for_hf

    torch.manual_seed(0)
    model = timm.create_model("test_efficientnet", num_classes=1000)
    path = tmp_path_factory.mktemp("tiny_backbone")
    save_for_hf(model, path, safe_serialization=True)
    return path


def tiny_args(out: Path, backbone: Path, train_dir: Path, val_dir: Path, *extra: str) -> list[str]:
    return [
        "--model_name_or_path", str(backbone), "--train_dir", str(train_dir), "--validation_dir", str(val_dir),
        "--output_dir", str(out), "--image_size", "32", "--num_train_epochs", "2",
        "--per_device_train_batch_size", "16", "--per_device_eval_batch_size", "32", "--learning_rate", "3e-3",
        "--channels_last", "false", *extra,
    ]  # fmt: skip


@pytest.fixture(scope="session")
def compare_run(tmp_path_factory, tiny_backbone, imagefolder):
    """A finished `finetune.py` run of all three strategies on the tiny backbone and imagefolder."""
    import sys

    sys.path.insert(0, str(REPO / "scripts"))
    import finetune

    out = tmp_path_factory.mktemp("compare")
    argv = tiny_args(
        out, tiny_backbone, *imagefolder, "--compare_strategies", "feature,finetune,scratch", "--head_epochs", "15", "--head_learning_rate", "0.03"
    )
    return out, finetune.main(argv)


def accelerate_launch(
    script: str, args: list[str], env_extra: dict | None = None, config: str | None = "configs/accelerate/cpu.yaml", launcher_args: tuple[str, ...] = ()
):
    """Run `scripts/<script>` through the real `accelerate launch` (with the checked-in CPU config, or
    `config=None`: as a user types it, with no config file; the tests' HF_HOME holds no default config)."""
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "accelerate.commands.launch", *launcher_args]
    if config is not None:
        cmd += ["--config_file", str(REPO / config)]
    cmd += [str(REPO / "scripts" / script), *args]
    env = {**os.environ, **(env_extra or {})}
    env.pop("OMP_NUM_THREADS", None)  # what a user's shell has: the launcher decides
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO, timeout=600, stdin=subprocess.DEVNULL)


def two_processes() -> dict:
    """`accelerate_launch` keywords for two CPU processes over gloo. accelerate 1.15 starts several processes
    only on its torchrun (`--multi_gpu`) path, and a process there is a CPU one (MULTI_CPU, gloo) only with
    ACCELERATE_USE_CPU set: `--cpu --num_processes 2` silently starts one."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return {
        "config": None,
        "launcher_args": ("--multi_gpu", "--num_processes", "2", "--main_process_port", str(port)),
        "env_extra": {"ACCELERATE_USE_CPU": "true"},
    }
