"""scripts/finetune.py end to end on a tiny backbone and a tiny imagefolder (in-process and via accelerate launch)."""

import json
import os
import sys

import pytest
import timm
import torch
from conftest import REPO, accelerate_launch, tiny_args

sys.path.insert(0, str(REPO / "scripts"))
import finetune  # noqa: E402

from hfdl.errors import HfdlError  # noqa: E402


def test_compare_writes_results_for_every_strategy(compare_run):
    out, results = compare_run
    saved = json.loads((out / "all_results.json").read_text())
    assert list(saved) == ["feature", "finetune", "scratch"] and saved == json.loads(json.dumps(results))
    for r in saved.values():
        for key in ("eval_accuracy", "eval_f1_macro", "train_seconds", "train_samples_per_second", "trainable_params", "total_params", "peak_rss_mb"):
            assert key in r
        assert "eval_top5" not in r  # 3 classes: top-5 would be meaningless
    assert saved["feature"]["trainable_params"] < saved["finetune"]["trainable_params"] == saved["finetune"]["total_params"]
    assert saved["feature"]["eval_accuracy"] > 0.6  # a learnable task, learned (chance is 0.33)
    table = (out / "comparison.md").read_text()
    assert all(f"| {s} |" in table for s in saved)
    assert (out / "comparison.png").stat().st_size > 10_000
    assert [r["strategy"] for r in json.loads((out / "comparison.json").read_text())] == list(saved)


def test_saved_strategy_folders_load_in_plain_timm_with_label_names(compare_run, imagefolder):
    from PIL import Image

    out, results = compare_run
    for strategy in results:
        model = timm.create_model(f"local-dir:{out / strategy}", pretrained=True).eval()
        assert model.pretrained_cfg["label_names"] == ["blue", "green", "red"]
        cfg = timm.data.resolve_model_data_config(model)
        assert cfg["input_size"] == (3, 32, 32)
        tf = timm.data.create_transform(**cfg)
        assert (out / strategy / "confusion_matrix.png").is_file()
    # the feature model, rebuilt from disk, reproduces the accuracy measured on cached features
    model = timm.create_model(f"local-dir:{out / 'feature'}", pretrained=True).eval()
    files = sorted((imagefolder[1] / c / f).as_posix() for c in ("blue", "green", "red") for f in os.listdir(imagefolder[1] / c))
    x = torch.stack([tf(Image.open(f).convert("RGB")) for f in files])
    y = torch.tensor([["blue", "green", "red"].index(f.split("/")[-2]) for f in files])
    with torch.no_grad():
        acc = (model(x).argmax(-1) == y).float().mean().item()
    assert acc == pytest.approx(results["feature"]["eval_accuracy"], abs=1e-6)


def test_finished_output_dir_is_never_overwritten(compare_run, tiny_backbone, imagefolder):
    out, _ = compare_run
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    with pytest.raises(HfdlError, match="already holds results.*pass --overwrite_output_dir"):
        finetune.main(tiny_args(out, tiny_backbone, *imagefolder))
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == before


def test_feature_cache_is_reused(compare_run, tiny_backbone, imagefolder, tmp_path):
    results = finetune.main(tiny_args(tmp_path, tiny_backbone, *imagefolder, "--strategy", "feature", "--head_epochs", "15", "--head_learning_rate", "0.03"))
    assert results["feature"]["feature_cache_hit"] is True
    assert results["feature"]["eval_accuracy"] == compare_run[1]["feature"]["eval_accuracy"]


def test_interrupted_compare_resumes_to_the_same_result(tiny_backbone, imagefolder, tmp_path):
    full = finetune.main(tiny_args(tmp_path / "full", tiny_backbone, *imagefolder, "--strategy", "finetune", "--checkpointing_steps", "3"))
    # simulate an interruption after step 3: keep only that checkpoint, drop the finished outputs
    part = tmp_path / "part"
    import shutil

    shutil.copytree(tmp_path / "full", part)
    for p in list((part / "finetune").iterdir()):
        if p.name != "step_3":
            shutil.rmtree(p) if p.is_dir() else p.unlink()
    (part / "all_results.json").unlink()
    with pytest.raises(HfdlError, match="holds an interrupted run.*--resume_from_checkpoint latest"):
        finetune.main(tiny_args(part, tiny_backbone, *imagefolder, "--strategy", "finetune"))
    resumed = finetune.main(
        tiny_args(part, tiny_backbone, *imagefolder, "--strategy", "finetune", "--checkpointing_steps", "3", "--resume_from_checkpoint", "latest")
    )
    a = timm.create_model(f"local-dir:{tmp_path / 'full' / 'finetune'}", pretrained=True).state_dict()
    b = timm.create_model(f"local-dir:{part / 'finetune'}", pretrained=True).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed["finetune"]["eval_accuracy"] == full["finetune"]["eval_accuracy"]


def _launch(args, env_extra=None, **kw):
    return accelerate_launch("finetune.py", args, env_extra, **kw)


def test_plain_accelerate_launch_uses_every_core_and_writes_the_card(tiny_backbone, imagefolder, tmp_path):
    """`accelerate launch scripts/finetune.py` as users type it: no config file (the launcher then sets
    OMP_NUM_THREADS=1), yet torch gets every core; the finished folder holds its model card."""
    proc = _launch(tiny_args(tmp_path, tiny_backbone, *imagefolder, "--strategy", "feature", "--head_epochs", "3"), config=None)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "feature" in json.loads((tmp_path / "all_results.json").read_text())
    run_config = json.loads((tmp_path / "run_config.json").read_text())
    assert run_config["task"] == "image-classification"
    assert run_config["environment"]["torch_threads"] == len(os.sched_getaffinity(0))
    card = (tmp_path / "feature" / "README.md").read_text()
    assert f'timm.create_model("local-dir:{(tmp_path / "feature").resolve()}", pretrained=True)' in card  # loads this folder


def test_failing_launch_is_one_line_on_stderr(tmp_path, imagefolder):
    """`accelerate launch -q`: hfdl's one `error:` line and no traceback. (A bare `accelerate launch` adds the
    launcher's own CalledProcessError traceback after any failing single-process script: accelerate's
    simple_launcher raises it unless --quiet; hfdl cannot suppress it from inside the script.)"""
    args = ["--model_name_or_path", "no_such_net", "--train_dir", str(imagefolder[0]), "--output_dir", str(tmp_path)]
    proc = _launch(args, launcher_args=("-q",))
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith("error: unknown model 'no_such_net'")
    assert "Traceback" not in proc.stderr


def test_two_processes_keep_the_results_contract(tiny_backbone, imagefolder, tmp_path):
    """`accelerate launch --num_processes 2` on CPU (gloo): fine-tuning under DDP writes the same folder."""
    from conftest import two_processes

    proc = _launch(tiny_args(tmp_path, tiny_backbone, *imagefolder, "--strategy", "finetune", "--num_train_epochs", "1"), **two_processes())
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((tmp_path / "all_results.json").read_text())["finetune"]
    assert results["eval_samples"] == 24 and 0 <= results["eval_accuracy"] <= 1  # every eval image counted once
    assert json.loads((tmp_path / "run_config.json").read_text())["environment"]["num_processes"] == 2
    assert (tmp_path / "finetune" / "README.md").is_file() and (tmp_path / "finetune" / "model.safetensors").is_file()
    history = json.loads((tmp_path / "finetune" / "history.json").read_text())
    assert history[-1]["lr"] < 1e-6  # the cosine schedule counts each process's steps: annealed to the end, as with one process
