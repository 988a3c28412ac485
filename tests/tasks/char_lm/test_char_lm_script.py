"""scripts/train_char_lm.py and sample_char_lm.py end to end on a tiny corpus (in-process and via accelerate launch)."""

import json
import shutil
import sys

import pytest
import torch
from conftest import REPO, TEXT, accelerate_launch

sys.path.insert(0, str(REPO / "scripts"))
import sample_char_lm  # noqa: E402
import train_char_lm  # noqa: E402

from hfdl.errors import HfdlError  # noqa: E402


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("text") / "tiny.txt"
    path.write_text(TEXT * 3, encoding="utf-8")
    return path


def tiny(out, corpus, *extra):
    return [
        "--train_file", str(corpus), "--output_dir", str(out), "--hidden_size", "16", "--embedding_dim", "8", "--num_layers", "2",
        "--dropout", "0.1", "--seq_len", "16", "--per_device_train_batch_size", "4", "--learning_rate", "1e-2", "--num_train_epochs", "2",
        "--sample_length", "20", "--eval_streams", "2", "--seed", "0", *extra,
    ]  # fmt: skip


def test_resumed_run_equals_uninterrupted_run_mid_epoch(corpus, tmp_path):
    # 2700 train chars / 4 streams = 675 per stream -> 42 windows of 16 per epoch; 2 epochs
    full = train_char_lm.main(tiny(tmp_path / "full", corpus, "--model_type", "gru", "--checkpointing_steps", "10"))
    assert full["completed_steps"] == 84
    part = tmp_path / "part"
    shutil.copytree(tmp_path / "full", part)
    for p in list(part.iterdir()):
        if p.name != "step_10":  # interrupted after step 10: the carried hidden state is mid-epoch
            shutil.rmtree(p) if p.is_dir() else p.unlink()
    with pytest.raises(HfdlError, match="holds an interrupted run.*--resume_from_checkpoint latest"):
        train_char_lm.main(tiny(part, corpus, "--model_type", "gru"))
    resumed = train_char_lm.main(tiny(part, corpus, "--model_type", "gru", "--checkpointing_steps", "10", "--resume_from_checkpoint", "latest"))
    from safetensors.torch import load_file

    a, b = load_file(tmp_path / "full" / "model.safetensors"), load_file(part / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert resumed["eval_loss"] == full["eval_loss"]
    # a finished run is never overwritten by accident
    before = {p: p.stat().st_mtime_ns for p in part.rglob("*") if p.is_file()}
    with pytest.raises(HfdlError, match="already holds results.*--overwrite_output_dir"):
        train_char_lm.main(tiny(part, corpus, "--model_type", "gru"))
    assert {p: p.stat().st_mtime_ns for p in part.rglob("*") if p.is_file()} == before


def test_time_budget_stops_training_and_still_evaluates(corpus, tmp_path):
    res = train_char_lm.main(tiny(tmp_path, corpus, "--model_type", "rnn", "--num_train_epochs", "50", "--time_budget_minutes", "0.002"))
    assert res["stopped_by_time_budget"] and res["completed_steps"] < 50 * 42
    hist = json.loads((tmp_path / "history.json").read_text())
    assert hist[-1]["step"] == res["completed_steps"] and "eval_bpc" in hist[-1]


def test_a_budget_without_epochs_trains_until_the_clock_stops_it(corpus, tmp_path):
    """Only data and --time_budget_minutes: the default epochs do not cut the budget short."""
    args = tiny(tmp_path, corpus, "--model_type", "rnn", "--time_budget_minutes", "0.05", "--eval_steps", "1000")
    i = args.index("--num_train_epochs")
    del args[i : i + 2]
    res = train_char_lm.main(args)
    # The clock ended it, not the default 2 epochs (which, on a quiet machine, take well under the budget: cut short by
    # them, the run would not be stopped by the budget and would train for less than it). No epoch count is asserted:
    # how many fit in 3 s depends on the machine's load.
    assert res["stopped_by_time_budget"]
    assert res["train_seconds"] >= 0.6 * 3.0  # about the budget (the fitted decay ends at its estimated step), not 2 epochs


def test_too_short_and_empty_text_are_one_line_errors(tmp_path):
    short = tmp_path / "short.txt"
    short.write_text("too short to train on\n" * 3)
    with pytest.raises(HfdlError, match="too short.*lower --per_device_train_batch_size / --seq_len"):
        train_char_lm.main(tiny(tmp_path / "o", short))
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(HfdlError, match="holds no text"):
        train_char_lm.main(tiny(tmp_path / "o", empty))
    assert not (tmp_path / "o" / "all_results.json").exists()


def _launch(script, args):
    return accelerate_launch(script, args)


@pytest.fixture(scope="module")
def compare_run(tmp_path_factory, corpus):
    out = tmp_path_factory.mktemp("compare")
    proc = _launch("train_char_lm.py", tiny(out, corpus, "--compare", "rnn,lstm,gru", "--max_steps", "8", "--eval_steps", "4"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def test_compare_through_accelerate_launch(compare_run):
    out = compare_run
    results = json.loads((out / "all_results.json").read_text())
    assert list(results) == ["rnn", "lstm", "gru"]
    for r in results.values():
        for key in ("eval_loss", "eval_bpc", "eval_perplexity", "train_chars_per_second", "num_params", "generation_chars_per_second", "sample"):
            assert key in r
        assert r["eval_bpc"] == pytest.approx(r["eval_loss"] / 0.6931471805599453)
    assert results["rnn"]["num_params"] < results["gru"]["num_params"] < results["lstm"]["num_params"]
    table = (out / "comparison.md").read_text()
    assert all(f"| {t} |" in table for t in results) and "4-gram (Kneser-Ney)" in table
    assert (out / "comparison.png").stat().st_size > 10_000
    assert len(json.loads((out / "comparison.json").read_text())["rows"]) == 4
    hist = json.loads((out / "lstm" / "history.json").read_text())
    assert [h["step"] for h in hist] == [4, 8]  # --eval_steps evaluates mid-epoch
    cfg = json.loads((out / "run_config.json").read_text())
    assert cfg["command"].startswith("accelerate launch") and cfg["seed"] == 0 and cfg["environment"]["torch"] == torch.__version__
    for t in results:
        folder = out / t
        assert {"model.safetensors", "config.json", "tokenizer.json", "char_lm.py", "samples.txt", "results.json"} <= {p.name for p in folder.iterdir()}
        card = (folder / "README.md").read_text()  # the card, written after training, loads this folder
        assert f'AutoModelForCausalLM.from_pretrained("{folder.resolve()}", trust_remote_code=True)' in card
        assert f"**{results[t]['eval_bpc']:.4f} bits per character**" in card
    assert cfg["task"] == "char-lm"


def test_saved_folder_runs_in_plain_transformers_with_the_state_as_cache(compare_run):
    from transformers import AutoModelForCausalLM, AutoTokenizer, pipeline

    from hfdl.tasks.char_lm.model import load_char_lm

    folder = str(compare_run / "lstm")
    ours = load_char_lm(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True).eval()
    tok = AutoTokenizer.from_pretrained(folder, trust_remote_code=True)
    assert type(model).__module__.startswith("transformers_modules")  # the folder's own copy of the code, not hfdl's
    ids = tok("It is a truth", return_tensors="pt", add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        assert torch.equal(model(ids).logits, ours.model(ids).logits)
    calls = []
    model.register_forward_pre_hook(lambda m, args, kwargs: calls.append(kwargs["input_ids"].shape[1]), with_kwargs=True)
    out = model.generate(ids, max_new_tokens=12, do_sample=False)
    assert calls == [ids.shape[1]] + [1] * 11  # prompt once, then one character per step with the carried state
    hf_text = tok.decode(out[0])
    # hfdl's greedy generator never emits <unk>; on a trained model the argmax is never <unk> here
    assert hf_text == ours.generate("It is a truth", 12, temperature=0)
    pipe = pipeline("text-generation", model=model, tokenizer=tok)
    assert pipe("It is a truth", max_new_tokens=12, do_sample=False)[0]["generated_text"] == hf_text


def test_sample_script_prints_seeded_text(compare_run, capsys):
    argv = ["--model", str(compare_run / "gru"), "--prompt", "It is", "--max_new_tokens", "30", "--temperature", "0.9", "--top_k", "5", "--seed", "1"]
    text = sample_char_lm.main(argv)
    assert capsys.readouterr().out.strip("\n") == text.strip("\n") and text.startswith("It is") and len(text) == 35
    assert sample_char_lm.main(argv) == text
    with pytest.raises(HfdlError, match=r"--top_p must be in \(0, 1\]"):
        sample_char_lm.main(["--model", str(compare_run / "gru"), "--top_p", "1.5"])


def test_a_failing_run_is_one_line_on_stderr(tmp_path, monkeypatch, capsys):
    """The script's entry point (`run_main`, what `accelerate launch` runs; the launch itself is tested once, by finetune)."""
    from hfdl.core.cli import run_main

    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"\xff\xfe\xfa not utf-8")
    monkeypatch.setattr(sys, "argv", ["train_char_lm.py", "--train_file", str(bad), "--output_dir", str(tmp_path / "o")])
    with pytest.raises(SystemExit) as exit_:
        run_main(train_char_lm.main)
    assert exit_.value.code == 1
    stderr = capsys.readouterr().err
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "--encoding" in errors[0] and "Traceback" not in stderr
    assert not (tmp_path / "o").exists()  # nothing written


def test_two_processes_keep_the_results_contract(corpus, tmp_path):
    """`accelerate launch --num_processes 2` on CPU (gloo): the same output folder, results and card."""
    from conftest import two_processes

    from hfdl.tasks.char_lm.model import load_char_lm

    proc = accelerate_launch("train_char_lm.py", tiny(tmp_path, corpus, "--model_type", "rnn", "--max_steps", "6"), **two_processes())
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((tmp_path / "all_results.json").read_text())
    assert results["completed_steps"] == 6 and results["eval_bpc"] > 0 and results["model_type"] == "rnn"
    cfg = json.loads((tmp_path / "run_config.json").read_text())
    assert cfg["environment"]["num_processes"] == 2 and cfg["task"] == "char-lm"
    assert (tmp_path / "README.md").is_file() and load_char_lm(str(tmp_path)).generate("a", 5, temperature=0)
