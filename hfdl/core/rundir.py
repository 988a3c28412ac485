"""The run folder every task writes, in one shape.

    out/run_config.json     task, command, every argument group, data description, offline assets, environment
    out/all_results.json    the results (one dict, or one per variant: strategies, cell types)
    out/<variant>/          one model folder per variant when a run compares several (else `out` itself)

`check_output_dir` refuses to overwrite a finished run or to restart an interrupted one silently;
`run_variants` trains each variant in turn, reusing the ones a resumed run already finished and
resuming the interrupted one from its own latest checkpoint.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterable
from dataclasses import asdict, is_dataclass, replace
from pathlib import Path

from hfdl.core.checkpoints import is_checkpoint_folder, list_checkpoints
from hfdl.core.cli import command_line
from hfdl.core.runtime import environment_info
from hfdl.errors import HfdlError

RUN_CONFIG = "run_config.json"
ALL_RESULTS = "all_results.json"
RESULTS = "results.json"  # one variant's results, in its model folder
# what every run writes besides a task's own files; removed by --overwrite_output_dir
COMMON_OUTPUTS = (RUN_CONFIG, ALL_RESULTS, RESULTS, "history.json", "README.md", "comparison.md", "comparison.json", "comparison.png")


def check_output_dir(out: Path, variant_dirs: Iterable[Path], args, outputs: Iterable[str] = ()) -> None:
    """Refuse to overwrite a finished run or to silently restart an interrupted one.

    `variant_dirs` are the model folders (`[out]` for a single model); `outputs` are the glob patterns of
    the files the task writes there. `--overwrite_output_dir` removes exactly those files, the checkpoints
    and the tracking logs (nothing else a user keeps in the folder); `--resume_from_checkpoint` goes on.
    """
    out = Path(out)
    dirs = list(dict.fromkeys(Path(d) for d in variant_dirs))
    if not out.exists():
        return
    if args.overwrite_output_dir:
        for d in dict.fromkeys([out, *dirs]):
            _remove_outputs(d, (*COMMON_OUTPUTS, *outputs))
        return
    if args.resume_from_checkpoint:
        return
    finished = [d for d in dirs if (d / RESULTS).is_file()]
    if (out / ALL_RESULTS).is_file() or finished:
        what = ", ".join(d.name for d in finished if d != out) or ALL_RESULTS
        raise HfdlError(f"{out} already holds results ({what}): pass --overwrite_output_dir to replace them or choose another --output_dir")
    partial = [d for d in dirs if list_checkpoints(d)]
    if partial:
        where = ", ".join(d.name if d != out else list_checkpoints(d)[-1].name for d in partial)
        raise HfdlError(f"{out} holds an interrupted run ({where}): pass --resume_from_checkpoint latest to continue it or --overwrite_output_dir to restart")


def _remove_outputs(folder: Path, patterns: Iterable[str]) -> None:
    if not folder.is_dir():
        return
    doomed = {p for pattern in (*patterns, "runs") for p in folder.glob(pattern)}  # runs/: the tracking logs
    doomed |= {p for p in folder.iterdir() if p.is_dir() and is_checkpoint_folder(p.name)}
    for p in doomed:
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()


def write_json(path: Path, data, main_process: bool = True) -> None:
    """Write `data` as indented UTF-8 JSON (only on the main process), atomically."""
    if not main_process:
        return
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str, ensure_ascii=False), encoding="utf-8")
    tmp.replace(path)


def run_config(task: str, argv: list[str] | None, args: dict, accelerator=None, **sections) -> dict:
    """The one `run_config.json` schema: task, command, each argument group by name, then `sections`
    (data, offline_assets, ...), the seed and the environment."""
    groups = {name: asdict(value) if is_dataclass(value) else value for name, value in args.items()}
    training = groups.get("training_args", {})
    return {
        "task": task,
        "command": command_line(argv),
        **groups,
        **sections,
        "seed": training.get("seed"),
        "environment": environment_info(accelerator),
    }


def run_variants(
    names: list[str],
    folders: list[Path],
    training_args,
    train_one: Callable[[str, Path, object], dict],
    log: Callable[[str], None] = print,
    finished: str = RESULTS,
) -> dict[str, dict]:
    """Train each variant (`train_one(name, folder, training_args)`) in turn; returns {name: results}.

    With `--resume_from_checkpoint`, a variant that already wrote its results is reused, and `latest`
    resumes each unfinished variant from its own latest checkpoint (or starts it afresh if it has none).
    `finished` names the file a finished variant holds (a variant that is a complete run folder: ALL_RESULTS).
    """
    results = {}
    for name, folder in zip(names, folders):
        done = Path(folder) / finished
        resume = training_args.resume_from_checkpoint
        if resume and done.is_file() and len(names) > 1:
            log(f"{name}: already finished, reusing {done}")
            results[name] = json.loads(done.read_text(encoding="utf-8"))
            continue
        if resume == "latest" and not list_checkpoints(folder):
            resume = None
        results[name] = train_one(name, Path(folder), replace(training_args, resume_from_checkpoint=resume))
    return results
