"""The one run folder: check_output_dir, run_config.json's schema, run_variants' reuse and resume."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import pytest

from hfdl.core.checkpoints import STATE_FILE
from hfdl.core.rundir import check_output_dir, run_config, run_variants
from hfdl.core.training import UNBOUNDED_EPOCHS, TrainingArguments
from hfdl.errors import HfdlError


def _args(tmp_path, **kw) -> TrainingArguments:
    return TrainingArguments(output_dir=str(tmp_path), **kw)


def _checkpoint(folder, step: int):
    (folder / f"step_{step}").mkdir(parents=True)
    (folder / f"step_{step}" / STATE_FILE).write_text(json.dumps({"completed_steps": step}))


def test_finished_run_is_refused_and_overwrite_removes_only_outputs(tmp_path):
    variant = tmp_path / "a"
    variant.mkdir()
    (variant / "results.json").write_text("{}")
    (variant / "model.safetensors").write_bytes(b"x")
    (tmp_path / "all_results.json").write_text("{}")
    (tmp_path / "notes.txt").write_text("mine")  # a user's file: never touched
    _checkpoint(variant, 3)
    with pytest.raises(HfdlError, match=r"already holds results \(a\): pass --overwrite_output_dir"):
        check_output_dir(tmp_path, [variant], _args(tmp_path))
    assert (variant / "model.safetensors").is_file()  # the refusal lost nothing
    check_output_dir(tmp_path, [variant], _args(tmp_path, overwrite_output_dir=True), outputs=("*.safetensors",))
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a", "notes.txt"]


def test_interrupted_run_needs_resume_or_overwrite(tmp_path):
    _checkpoint(tmp_path, 5)
    with pytest.raises(HfdlError, match=r"holds an interrupted run \(step_5\): pass --resume_from_checkpoint latest"):
        check_output_dir(tmp_path, [tmp_path], _args(tmp_path))
    check_output_dir(tmp_path, [tmp_path], _args(tmp_path, resume_from_checkpoint="latest"))  # goes on
    assert (tmp_path / "step_5").is_dir()


def test_run_variants_reuses_finished_and_resumes_each_from_its_own_checkpoint(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "results.json").write_text(json.dumps({"score": 1}))
    _checkpoint(tmp_path / "b", 2)
    seen = {}

    def train_one(name, folder, args):
        seen[name] = args.resume_from_checkpoint
        return {"score": 2}

    out = run_variants(["a", "b", "c"], [tmp_path / n for n in "abc"], _args(tmp_path, resume_from_checkpoint="latest"), train_one, log=lambda _: None)
    assert out == {"a": {"score": 1}, "b": {"score": 2}, "c": {"score": 2}}
    assert seen == {"b": "latest", "c": None}  # a reused, b resumed, c started afresh


@dataclass
class _Other:
    flag: int = 1


def test_run_config_schema(tmp_path):
    config = run_config("some-task", ["--x", "1"], {"other_args": _Other(), "training_args": _args(tmp_path, seed=7)}, data={"n": 3})
    assert config["task"] == "some-task" and config["seed"] == 7 and config["data"] == {"n": 3}
    assert config["other_args"] == {"flag": 1} and config["training_args"]["output_dir"] == str(tmp_path)
    assert config["command"].endswith("--x 1") and config["environment"]["torch_threads"] >= 1


def test_epochs_bound_a_budgeted_run_only_when_given(tmp_path):
    assert _args(tmp_path).epochs == TrainingArguments.default_epochs
    assert _args(tmp_path, time_budget_minutes=1.0).epochs == UNBOUNDED_EPOCHS
    assert _args(tmp_path, time_budget_minutes=1.0, num_train_epochs=3).epochs == 3
    with pytest.raises(HfdlError, match="no --output_dir"):
        TrainingArguments()


def test_use_every_core_restores_the_threads_accelerate_took(monkeypatch):
    import torch

    from hfdl.core.cli import use_every_core

    before = torch.get_num_threads()
    try:
        monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "no")  # under `accelerate launch`
        monkeypatch.setenv("ACCELERATE_USE_CPU", "False")  # ...without a CPU config
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        torch.set_num_threads(1)
        cores = len(os.sched_getaffinity(0))
        assert use_every_core() == (cores if cores > 1 else None) and torch.get_num_threads() == cores
        torch.set_num_threads(1)
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        monkeypatch.setenv("ACCELERATE_USE_CPU", "True")  # a config with use_cpu: its choice stands
        assert use_every_core() is None and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
