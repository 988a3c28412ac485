"""Publishing finished runs: each task registers how its run folder becomes Hub repos.

A task calls `register(TASK, plans)` where `plans(out, hub_model_id, only) -> {name: RepoPlan}` says which
files form each repo and renders its card; `push_run` reads the task from `run_config.json`, checks every
repo is ready, then pushes. `write_cards` puts the same cards into the model folders after training.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hfdl.errors import HfdlError
from hfdl.hub.push import check_repo_id, push_files, require_token, slug

RUN_FILES = ("all_results.json", "run_config.json", "comparison.md", "comparison.json", "comparison.png")


@dataclass
class RepoPlan:
    """One Hub repo of a finished run: its id, its files (repo path -> local file), card and commit message."""

    repo_id: str
    files: dict[str, Path]
    card: object
    commit_message: str
    commit_description: str

    @property
    def model_folder(self) -> Path:
        """The local folder whose model files this repo holds (where its card is written after training)."""
        return next(p for name, p in self.files.items() if name.endswith((".safetensors", "config.json"))).parent


Plans = Callable[[Path, "str | None", "list[str] | None"], "dict[str, RepoPlan]"]
TASKS: dict[str, Plans] = {}  # run_config.json "task" -> that task's plans


def register(task: str, plans: Plans) -> None:
    """Called by each task's card module at import."""
    TASKS[task] = plans


def finished_run(out: Path) -> tuple[dict, dict]:
    """(all_results, run_config) of a finished run, or a one-line error."""
    res, cfg = Path(out) / "all_results.json", Path(out) / "run_config.json"
    if not res.is_file() or not cfg.is_file():
        raise HfdlError(f"{out} is not a finished hfdl run (no all_results.json / run_config.json): finish training first, or pass the run's --output_dir")
    return json.loads(res.read_text(encoding="utf-8")), json.loads(cfg.read_text(encoding="utf-8"))


def pick(available: list[str], only: list[str] | None, what: str, out: Path) -> list[str]:
    """The models of a run to publish: all of them, or `only` (each must exist)."""
    chosen = only or available
    unknown = [s for s in chosen if s not in available]
    if unknown:
        raise HfdlError(f"{what} {unknown} is not in {out}/all_results.json (it has {', '.join(available)}): pick from those")
    return chosen


def folder_files(folder: Path) -> dict[str, Path]:
    """A model folder's top-level files (checkpoint folders, partial writes and an old card left out)."""
    return {p.name: p for p in sorted(Path(folder).iterdir()) if p.is_file() and not p.name.endswith(".tmp") and p.name != "README.md"}


def model_repo_files(out: Path, folder: Path, name: str, need: tuple[str, ...]) -> dict[str, Path]:
    """One model's folder plus the run-level results and comparison; refuses a folder missing `need`."""
    files = folder_files(folder)
    for run_file in RUN_FILES:
        if (out / run_file).is_file():
            files.setdefault(run_file, out / run_file)
    for required in need:
        if required not in files:
            raise HfdlError(f"{folder} has no {required}: the '{name}' run did not finish; finish it with --resume_from_checkpoint latest")
    return files


def repo_ids(hub_model_id: str | None, folders: dict[str, Path]) -> dict[str, str]:
    """One repo per model: the id itself for one model, `<id>-<name>` for several. Without a Hub id (the
    cards written after training) each model is named by its local folder, which the snippets then load."""
    if hub_model_id is None:
        return {n: str(Path(f).resolve()) for n, f in folders.items()}
    if len(folders) == 1:
        return {next(iter(folders)): hub_model_id}
    return {n: f"{hub_model_id}-{slug(n)}" for n in folders}


def plans(out_dir: str | Path, hub_model_id: str | None, only: list[str] | None = None) -> dict[str, RepoPlan]:
    """Every repo a finished run publishes, cards rendered (so a bad card fails before any upload).
    `hub_model_id=None`: the cards of the local folders (snippets load the folder, not a Hub id)."""
    out = Path(out_dir)
    if hub_model_id is not None:
        check_repo_id(hub_model_id)
    _, config = finished_run(out)
    task = config.get("task")
    if task not in TASKS:
        raise HfdlError(f"{out} is a '{task}' run, which hfdl cannot publish (known tasks: {', '.join(TASKS)}): import its hfdl.tasks module first")
    return TASKS[task](out, hub_model_id, only)


def write_cards(out_dir: str | Path, accelerator=None, hub_model_id: str | None = None) -> dict[str, Path]:
    """After training: each model folder gets the `README.md` card its Hub repo would get (same renderer).

    Without `hub_model_id` the card's snippets load the local folder. Main process only.
    """
    if accelerator is not None and not accelerator.is_main_process:
        return {}
    out = Path(out_dir)
    written = {}
    for name, plan in plans(out, hub_model_id).items():
        path = plan.model_folder / "README.md"
        plan.card.save(str(path))
        written[name] = path
    return written


def check_before_training(hub_args) -> None:
    """With --push_to_hub, fail on a missing token before any training (the repo id was checked at parse time)."""
    if hub_args is not None and hub_args.push_to_hub:
        require_token()


def push_after_training(hub_args, out_dir: str | Path, only: list[str] | None = None) -> dict[str, str]:
    """With --push_to_hub, publish the finished run from the main process and print each commit URL."""
    if hub_args is None or not hub_args.push_to_hub:
        return {}
    from accelerate import PartialState

    state = PartialState()
    urls = {}
    if state.is_main_process:
        urls = push_run(out_dir, hub_args.hub_model_id, only, private=hub_args.hub_private, revision=hub_args.hub_revision)
        for name, url in urls.items():
            print(f"pushed {name}: {url}")
    state.wait_for_everyone()
    return urls


def push_run(out_dir: str | Path, hub_model_id: str, only: list[str] | None = None, private: bool = False, revision: str | None = None) -> dict[str, str]:
    """Publish a finished run of any task; returns {name: commit URL}. Nothing is uploaded unless every
    repo's files and card are ready."""
    ready = plans(out_dir, hub_model_id, only)
    require_token()
    urls = {}
    for name, plan in ready.items():
        flag = f" --only {name}" if len(ready) > 1 else ""
        urls[name] = push_files(
            plan.files, plan.card, plan.repo_id,
            commit_message=plan.commit_message, commit_description=plan.commit_description, private=private, revision=revision,
            retry=f"python scripts/push_to_hub.py {out_dir} --hub_model_id {hub_model_id}{flag}",
        )  # fmt: skip
    return urls
