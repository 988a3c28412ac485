"""Shared script plumbing: dataclass argument parsing and one-line errors."""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Callable

from hfdl.errors import HfdlError


def parse_args(dataclass_types: tuple, argv: list[str] | None = None, positional: tuple[str, ...] = ()) -> tuple:
    """`HfArgumentParser` over the dataclasses; one .json/.yaml argument is a config file.

    `positional` names fields that may also be given as leading bare arguments (`push_to_hub.py DIR`).
    """
    argv = with_positional(list(sys.argv[1:] if argv is None else argv), positional)
    parser = argument_parser(dataclass_types)
    if len(argv) == 1 and argv[0].endswith(".json"):
        return parser.parse_json_file(os.path.abspath(argv[0]))
    if len(argv) == 1 and argv[0].endswith((".yaml", ".yml")):
        return parser.parse_yaml_file(os.path.abspath(argv[0]))
    return parser.parse_args_into_dataclasses(args=argv)


def argument_parser(dataclass_types: tuple):
    """The scripts' `HfArgumentParser`, its help texts escaped for argparse (which %-formats them: a plain "10%" crashed `--help`)."""
    from transformers import HfArgumentParser

    parser = HfArgumentParser(dataclass_types)
    for action in parser._actions:
        if action.help:
            action.help = re.sub(r"%%|%(?!\()", "%%", action.help)
    return parser


def with_positional(argv: list[str], positional: tuple[str, ...]) -> list[str]:
    """`VALUE --flag x` -> `--NAME VALUE --flag x` for the fields named in `positional`, in order."""
    argv = list(argv)
    for i, name in enumerate(positional):
        if len(argv) > 2 * i and not argv[2 * i].startswith("-"):
            argv.insert(2 * i, f"--{name}")
    return argv


def use_every_core() -> int | None:
    """Undo `accelerate launch`'s one thread on a CPU-only machine without an accelerate config.

    With no config file (and no `--cpu`), the launcher sets `OMP_NUM_THREADS=1` for the script, which halves
    the speed of a 2-core machine. When that is what happened (launched by accelerate, `ACCELERATE_USE_CPU`
    not set by a config, no CUDA, one thread), torch gets the cores this process may use divided by the
    processes on this machine. A config with `use_cpu: true` (what `setup.sh` writes, or
    `accelerate config default`), `--num_cpu_threads_per_process N` with `--cpu`, or a GPU keep the
    launcher's choice. Returns the new thread count, or None when nothing changed.
    """
    import torch

    launched = "ACCELERATE_MIXED_PRECISION" in os.environ
    cpu_config = os.environ.get("ACCELERATE_USE_CPU", "false").lower() in ("1", "true", "yes")
    if not launched or cpu_config or os.environ.get("OMP_NUM_THREADS") != "1" or torch.cuda.is_available():
        return None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    threads = max(1, cores // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1"))))
    if threads <= torch.get_num_threads():
        return None
    torch.set_num_threads(threads)
    os.environ["OMP_NUM_THREADS"] = str(threads)
    return threads


def run_main(main: Callable[[list[str] | None], object]) -> None:
    """Run a script's `main`; a user error exits 1 with one line on stderr (`--debug` shows the traceback).

    Under `accelerate launch` the launcher adds its own `CalledProcessError` traceback after any non-zero
    exit of a single process; `accelerate launch -q` (`--quiet`) leaves exactly hfdl's one line.
    """
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s", level=logging.WARNING)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    use_every_core()
    debug = "--debug" in sys.argv[1:]
    try:
        main(None)
    except HfdlError as err:
        if debug:
            raise
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("interrupted: continue with --resume_from_checkpoint latest (if --checkpointing_steps was set)", file=sys.stderr)
        sys.exit(130)


def command_line(argv: list[str] | None = None) -> str:
    """The command that ran this script, as a user would retype it (`accelerate launch ...` when launched so)."""
    import shlex

    script = sys.argv[0]
    try:
        rel = os.path.relpath(script)
        script = rel if not rel.startswith("..") else script
    except ValueError:
        pass
    args = sys.argv[1:] if argv is None else argv
    launcher = "accelerate launch" if any(k.startswith("ACCELERATE_") for k in os.environ) else "python"
    return " ".join([launcher, shlex.quote(script), *(shlex.quote(a) for a in args)])
