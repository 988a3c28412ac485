"""scripts/train_text_classifier.py end to end on tiny CSV files: exact resume, bad input, two processes through
`accelerate launch`, and the saved folder in plain transformers."""

import json
import shutil
import sys

import pytest
import torch
from conftest import REPO, accelerate_launch, two_processes
from tiny_texts import one_torch_thread, texts, tiny_args, write_csv, write_splits  # noqa: F401 (a fixture)

sys.path.insert(0, str(REPO / "scripts"))
import train_text_classifier  # noqa: E402

from hfdl.errors import HfdlError  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return write_splits(tmp_path_factory.mktemp("texts"))


def test_resumed_run_equals_uninterrupted_run_and_refuses_another_label_map(files, tmp_path):
    """Interrupted mid-epoch (step 5 of 12 per epoch) and resumed: the same weights and scores, dropout and the
    per-sequence recurrent-dropout masks included."""
    extra = ("--compare", "none", "--bidirectional", "--dropout", "0.2", "--recurrent_dropout", "0.25", "--checkpointing_steps", "5")
    full = train_text_classifier.main(tiny_args(tmp_path / "full", files, *extra))
    assert full["completed_steps"] == 24 and full["model_type"] == "bigru"
    part = tmp_path / "part"
    shutil.copytree(tmp_path / "full", part)
    for p in list(part.iterdir()):
        if p.name not in ("step_5", "run_config.json"):
            shutil.rmtree(p) if p.is_dir() else p.unlink()
    with pytest.raises(HfdlError, match="holds an interrupted run.*--resume_from_checkpoint latest"):
        train_text_classifier.main(tiny_args(part, files, *extra))

    relabelled = dict(files, train_file=write_csv(tmp_path / "relabelled.csv", [(t, "sports" if y == "sport" else y) for t, y in texts(90, seed=0)]))
    relabelled.pop("validation_file"), relabelled.pop("test_file")
    with pytest.raises(HfdlError, match=r"was trained with labels \['food', 'sport', 'weather'\] but the data now gives \['food', 'sports', 'weather'\]"):
        train_text_classifier.main(tiny_args(part, relabelled, *extra, "--resume_from_checkpoint", "latest"))

    resumed = train_text_classifier.main(tiny_args(part, files, *extra, "--resume_from_checkpoint", "latest"))
    from safetensors.torch import load_file

    a, b = load_file(tmp_path / "full" / "model.safetensors"), load_file(part / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert resumed["eval_loss"] == full["eval_loss"] and resumed["test_accuracy"] == full["test_accuracy"]
    with pytest.raises(HfdlError, match="already holds results.*--overwrite_output_dir"):
        train_text_classifier.main(tiny_args(part, files, *extra))


def test_a_csv_without_the_named_columns_is_one_line_on_stderr_and_writes_nothing(tmp_path, monkeypatch, capsys):
    from hfdl.core.cli import run_main

    bad = write_csv(tmp_path / "bad.csv", [("good", "pos"), ("bad", "neg")], header=("review", "label"))
    monkeypatch.setattr(sys, "argv", ["train_text_classifier.py", "--train_file", bad, "--output_dir", str(tmp_path / "o")])
    with pytest.raises(SystemExit) as exit_:
        run_main(train_text_classifier.main)
    assert exit_.value.code == 1
    stderr = capsys.readouterr().err
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "no column 'text'" in errors[0] and "--text_column" in errors[0] and "Traceback" not in stderr
    assert not (tmp_path / "o").exists()


@pytest.fixture(scope="module")
def launched(tmp_path_factory):
    """The default comparison (GRU one-way vs bidirectional + TF-IDF) as `accelerate launch --num_processes 2` on CPU (gloo)."""
    root = tmp_path_factory.mktemp("launched")
    split_files = write_splits(root / "texts", empty_texts=3)
    proc = accelerate_launch("train_text_classifier.py", tiny_args(root / "run", split_files, "--max_train_steps", "6"), **two_processes())
    assert proc.returncode == 0, proc.stderr[-3000:]
    return root / "run"


def test_two_processes_keep_the_results_contract(launched):
    out = launched
    results = json.loads((out / "all_results.json").read_text())
    assert list(results) == ["gru", "bigru"]
    for name, r in results.items():
        assert r["completed_steps"] == 6 and r["bidirectional"] == (name == "bigru") and r["cell_type"] == "gru"
        for key in ("eval_accuracy", "eval_f1_macro", "eval_loss", "test_accuracy", "test_f1_macro", "test_loss", "num_params", "train_seconds"):
            assert key in r
        assert r["eval_samples"] == 30 and r["test_samples"] == 30 and r["train_samples"] == 90
        files = {p.name for p in (out / name).iterdir()}
        assert {
            "model.safetensors",
            "config.json",
            "tokenizer.json",
            "text_rnn.py",
            "results.json",
            "history.json",
            "confusion_matrix.png",
            "README.md",
        } <= files
    assert results["gru"]["num_params"] < results["bigru"]["num_params"]
    cfg = json.loads((out / "run_config.json").read_text())
    assert cfg["task"] == "text-classification" and cfg["environment"]["num_processes"] == 2 and cfg["command"].startswith("accelerate launch")
    assert cfg["data"]["skipped_empty_texts"] == {"train": 3, "validation": 0, "test": 0} and cfg["data"]["label_names"] == ["food", "sport", "weather"]
    table = (out / "comparison.md").read_text()
    assert "| gru |" in table and "| bigru |" in table and "| TF-IDF + logistic regression |" in table
    assert len(json.loads((out / "comparison.json").read_text())["rows"]) == 3 and (out / "comparison.png").stat().st_size > 10_000
    card = (out / "bigru" / "README.md").read_text()
    assert f'pipeline("text-classification", model="{(out / "bigru").resolve()}", trust_remote_code=True)' in card


def test_the_saved_folder_runs_in_the_transformers_pipeline_as_in_hfdl(launched):
    from transformers import pipeline

    from hfdl.tasks.text_classification.model import load_text_classifier

    folder = str(launched / "bigru")
    sentences = ["The team scored a late goal", "Rain and cold wind today", "We bake bread with cheese and salt, then soup for dinner"]
    pipe = pipeline("text-classification", model=folder, trust_remote_code=True)
    assert type(pipe.model).__module__.startswith("transformers_modules")  # the folder's own copy of the code, not hfdl's
    ours = load_text_classifier(folder).predict(sentences)
    theirs = pipe(sentences, truncation=True)
    assert [t["label"] for t in theirs] == [o["label"] for o in ours]
    assert [t["score"] for t in theirs] == pytest.approx([o["score"] for o in ours], abs=1e-5)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--bidirectional"], r"--bidirectional trains one bidirectional model: add --compare none"),
        (["--compare", "gru,bitransformer"], r"--compare has unknown model 'bitransformer'"),
        (["--compare", "gru,gru"], "--compare lists a model twice"),
        (["--tokenizer", "bpe"], "--tokenizer 'bpe' is unknown: use word or char"),
        (["--pooling", "first"], "--pooling 'first' is unknown"),
    ],
)
def test_bad_flags_are_one_line_errors_before_any_work(argv, message, tmp_path):
    with pytest.raises(HfdlError, match=message):
        train_text_classifier.main([*argv, "--output_dir", str(tmp_path / "o")])
    assert not (tmp_path / "o").exists()
