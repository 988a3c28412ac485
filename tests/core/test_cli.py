"""Every script answers --help; help texts may hold a plain "%"."""

from __future__ import annotations

import argparse
import importlib.util
import re
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from hfdl.core.cli import argument_parser, parse_args, with_positional

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = sorted((ROOT / "scripts").glob("*.py"))


@dataclass
class PercentArguments:
    share: float = field(default=10.0, metadata={"help": "The last N% of the data; 5%% escaped; the default is shown."})


def test_a_help_text_with_a_plain_percent_sign_prints(capsys):
    with pytest.raises(SystemExit) as exit_:
        parse_args((PercentArguments,), ["--help"])
    assert exit_.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "The last N% of the data; 5% escaped" in out and "(default: 10.0)" in out


def test_arguments_still_parse_after_the_help_texts_are_escaped():
    (args,) = parse_args((PercentArguments,), ["--share", "20"])
    assert args.share == 20.0


def load_script(script: Path):
    """A script as a module (registered, as its dataclasses need)."""
    name = f"hfdl_script_{script.stem}"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, script)
        sys.modules[name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules[name])
    return sys.modules[name]


@pytest.mark.parametrize("script", SCRIPTS, ids=[s.stem for s in SCRIPTS])
def test_every_script_prints_its_help(script, capsys):
    module = load_script(script)
    with pytest.raises(SystemExit) as exit_:
        module.main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage:") and "--" in out


DOCUMENTS = [ROOT / "README.md", *sorted(ROOT.glob("spaces/*/README.md")), *sorted(ROOT.glob("model_cards/*.md")), *SCRIPTS]
COMMAND = re.compile(r"(?:accelerate launch(?: -q| --\S+(?: \d+)?)*|python) (scripts/\w+\.py)([^`#\n]*)")


def documented_commands() -> list[tuple[str, str, str]]:
    """(where, script, arguments) of every `accelerate launch scripts/X.py ...` / `python scripts/X.py ...` in the docs:
    a code block's lines (with their `\\` continuations), or a paragraph of prose (an inline command may wrap)."""
    commands = []
    for path in DOCUMENTS:
        pieces, fenced, start, paragraph = [], False, 0, []
        for lineno, line in enumerate(path.read_text().replace("\\\n", " ").splitlines() + [""], 1):
            if path.suffix == ".py":  # a script's docstring: one command a line
                pieces.append((lineno, line))
            elif line.lstrip().startswith("```") or fenced or not line.strip():
                if paragraph:
                    pieces.append((start, " ".join(paragraph)))
                    paragraph = []
                if line.lstrip().startswith("```"):
                    fenced = not fenced
                elif fenced:
                    pieces.append((lineno, line))
            else:
                start, paragraph = (start if paragraph else lineno), [*paragraph, line.strip()]
        for lineno, text in pieces:
            if "{{" in text:  # a card template's placeholder, filled at render time
                continue
            for match in COMMAND.finditer(text):
                commands.append((f"{path.relative_to(ROOT)}:{lineno}", match.group(1), match.group(2).strip()))
    return commands


COMMANDS = documented_commands()


class _Captured(Exception):
    pass


def script_parser(script: str, monkeypatch):
    """The parser a script's main() builds and the positional names it takes, captured where it parses: hfdl's
    parse_args (the dataclass scripts) or argparse's parse_args (the few plain argparse scripts)."""
    module = load_script(ROOT / script)

    def capture(dataclass_types, argv=None, positional=()):
        raise _Captured(argument_parser(dataclass_types), positional)

    def capture_argparse(parser, args=None, namespace=None):
        raise _Captured(parser, ())

    if hasattr(module, "parse_args"):
        monkeypatch.setattr(module, "parse_args", capture)
    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", capture_argparse)
    with pytest.raises(_Captured) as captured:
        module.main([])
    return captured.value.args


def test_the_docs_show_commands_of_every_training_script():
    shown = {script for _, script, _ in COMMANDS}
    assert {f"scripts/{s.name}" for s in SCRIPTS if s.stem.startswith("train_")} <= shown
    assert len(COMMANDS) > 60


@pytest.mark.parametrize("script", sorted({script for _, script, _ in COMMANDS}))
def test_every_documented_command_names_only_flags_its_script_has(script, monkeypatch):
    parser, positional = script_parser(script, monkeypatch)
    for where, _, arguments in (c for c in COMMANDS if c[1] == script):
        argv = [a.strip("[]") for a in shlex.split(arguments) if a != "|"]  # "A | B": alternatives; "[--flag x]": optional
        if len(argv) == 1 and argv[0].endswith((".json", ".yaml", ".yml")):
            continue  # a config file
        _, unknown = parser.parse_known_args(with_positional(argv, positional))
        assert not unknown, f"{where}: `{script} {arguments}` has arguments the script does not take: {unknown}"
