"""Spaces: an app folder under spaces/ published as it is, plus the hfdl package it imports."""

from __future__ import annotations

import logging
from pathlib import Path

from hfdl.errors import HfdlError
from hfdl.hub.push import push_files
from hfdl.hub.registry import RepoPlan

logger = logging.getLogger(__name__)


# what a Space folder holds but must not upload (as in spaces/*/.gitignore)
SPACE_SKIP = ("__pycache__", ".gradio", "flagged", ".pytest_cache", ".ipynb_checkpoints")
SPACE_SKIP_SUFFIXES = (".pyc", ".pyi", ".tmp")


def _tree(root: Path, prefix: str = "") -> dict[str, Path]:
    return {
        prefix + p.relative_to(root).as_posix(): p
        for p in sorted(root.rglob("*"))
        if p.is_file() and not any(part in SPACE_SKIP for part in p.relative_to(root).parts) and not p.name.endswith(SPACE_SKIP_SUFFIXES)
    }


def space_plan(space_dir: str | Path, space_id: str) -> RepoPlan:
    """A Space repo: every file of `space_dir` (README.md with the Spaces front matter, app.py,
    requirements.txt, bundled models and examples) plus the `hfdl` package at the Space root, where
    `import hfdl` in app.py finds it (PyPI's `hfdl` is an unrelated project, so requirements.txt cannot
    name it). The front matter and requirements are checked first."""
    import re

    from huggingface_hub import metadata_load

    import hfdl

    space = Path(space_dir)
    if not (space / "app.py").is_file() or not (space / "README.md").is_file():
        raise HfdlError(f"{space} is not a Space folder (needs app.py and README.md): pass spaces/<name>")
    meta = metadata_load(space / "README.md") or {}
    if meta.get("sdk") != "gradio" or not (space / str(meta.get("app_file", ""))).is_file():
        raise HfdlError(f"{space}/README.md front matter needs `sdk: gradio` and an app_file that exists: fix the YAML header")
    reqs = (space / "requirements.txt").read_text() if (space / "requirements.txt").is_file() else ""
    if any(re.match(r"hfdl\s*([<>=!~;\[]|$)", line.strip()) for line in reqs.splitlines()):
        raise HfdlError(f"{space}/requirements.txt names `hfdl`, which on PyPI is another project: remove the line (the package is uploaded with the Space)")
    files = _tree(space)
    package = Path(hfdl.__file__).resolve().parent
    vendored = {k: v for k, v in _tree(package, "hfdl/").items() if k.endswith(".py")}
    clash = sorted(set(files) & set(vendored))
    if clash:
        raise HfdlError(f"{space} already holds {clash[0]}: remove it, the hfdl package is added at push time")
    msg = f"hfdl Space {space.name}: app, {len(files)} files, hfdl {hfdl.__version__} package"
    return RepoPlan(space_id, {**files, **vendored}, None, msg, f"Uploaded by scripts/push_space.py from {space.as_posix()}.")


def push_space(space_dir: str | Path, space_id: str, private: bool = False, revision: str | None = None) -> str:
    """Publish a Space folder (see `space_plan`) in one commit; returns the commit URL."""
    plan = space_plan(space_dir, space_id)  # push_files checks the id before any request
    return push_files(
        plan.files, None, plan.repo_id,
        commit_message=plan.commit_message, commit_description=plan.commit_description, private=private, revision=revision,
        retry=f"python scripts/push_space.py {space_dir} --space_id {space_id}", repo_type="space", space_sdk="gradio",
    )  # fmt: skip
