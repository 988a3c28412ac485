"""Shared script plumbing: dataclass argument parsing and one-line errors."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable

from hfdl.errors import HfdlError


def parse_args(dataclass_types: tuple, argv: list[str] | None = None, positional: tuple[str, ...] = ()) -> tuple:
    """`HfArgumentParser` over the dataclasses; one .json/.yaml argument is a config file.

    `positional` names fields that may also be given as leading bare arguments (`push_to_hub.py DIR`).
    """
    from transformers import HfArgumentParser

    argv = list(sys.argv[1:] if argv is None else argv)
    for i, name in enumerate(positional):
        if len(argv) > 2 * i and not argv[2 * i].startswith("-"):
            argv.insert(2 * i, f"--{name}")
    parser = HfArgumentParser(dataclass_types)
    if len(argv) == 1 and argv[0].endswith(".json"):
        return parser.parse_json_file(os.path.abspath(argv[0]))
    if len(argv) == 1 and argv[0].endswith((".yaml", ".yml")):
        return parser.parse_yaml_file(os.path.abspath(argv[0]))
    return parser.parse_args_into_dataclasses(args=argv)


def run_main(main: Callable[[list[str] | None], object]) -> None:
    """Run a script's `main`; a user error exits 1 with one line on stderr (`--debug` shows the traceback)."""
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s", level=logging.WARNING)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
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
