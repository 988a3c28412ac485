"""The shared loop: exact resume, checkpoint safety."""

import json

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from hfdl.errors import HfdlError
from hfdl.training import TrainingArguments, list_checkpoints, make_accelerator, tensor_loader, train


def _setup(tmp_path, batched=False, **kw):
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(96, 8, generator=g), torch.randint(0, 3, (96,), generator=g)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Dropout(0.2), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    args = TrainingArguments(
        output_dir=str(tmp_path), num_train_epochs=3, per_device_train_batch_size=8, gradient_accumulation_steps=2, learning_rate=1e-2, seed=0, **kw
    )
    dl = tensor_loader(x, y, batch_size=8, shuffle=True) if batched else DataLoader(TensorDataset(x, y), batch_size=8, shuffle=True)
    return model, dl, args


def _run(tmp_path, batched=False, **kw):
    model, dl, args = _setup(tmp_path, batched, **kw)
    acc = make_accelerator(args)
    model, result = train(acc, model, None, dl, args, tmp_path, compute_loss=lambda m, b: torch.nn.functional.cross_entropy(m(b[0]), b[1]),
                          evaluate=lambda m: {"eval_w": m[0].weight.sum().item()})  # fmt: skip
    acc.free_memory()
    return model, result


@pytest.mark.parametrize("batched", [False, True], ids=["per-sample", "tensor_loader"])
@pytest.mark.parametrize("which", [1, 2])  # mid-epoch, and at an epoch boundary (step 12 = end of epoch 2)
def test_resumed_run_ends_with_the_same_weights(tmp_path, which, batched):
    full, full_result = _run(tmp_path / "a", batched, checkpointing_steps="4")
    ckpts = list_checkpoints(tmp_path / "a")
    # 96 samples / batch 8 = 12 batches = 6 optimizer steps per epoch (accumulation 2), 18 in all
    assert [c.name for c in ckpts] == ["step_4", "step_8", "step_12", "step_16"]
    mid = ckpts[which]  # step 8: two steps (four batches) into the second epoch
    assert json.loads((mid / "hfdl_trainer_state.json").read_text())["completed_steps"] == 4 * (which + 1)
    resumed, result = _run(tmp_path / "b", batched, resume_from_checkpoint=str(mid))
    for p, q in zip(full.parameters(), resumed.parameters()):
        assert torch.equal(p, q)
    assert result.completed_steps == full_result.completed_steps
    assert [h["epoch"] for h in result.history] == [h["epoch"] for h in full_result.history]


def test_tensor_loader_yields_the_per_sample_loaders_batches_under_accelerate(tmp_path):
    x, y = torch.randn(50, 4), torch.arange(50)
    acc = make_accelerator(TrainingArguments(output_dir=str(tmp_path), seed=3))
    a = acc.prepare(DataLoader(TensorDataset(x, y), batch_size=8, shuffle=True))
    b = acc.prepare(tensor_loader(x, y, batch_size=8, shuffle=True))
    for epoch in range(2):
        a.set_epoch(epoch)
        b.set_epoch(epoch)
        got_a, got_b = list(a), list(b)
        assert len(got_a) == len(got_b) == 7
        for (xa, ya), (xb, yb) in zip(got_a, got_b):
            assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert sorted(torch.cat([bb[1] for bb in got_b]).tolist()) == list(range(50))
    acc.free_memory()


def test_checkpoint_of_another_model_is_refused(tmp_path):
    _run(tmp_path / "a", checkpointing_steps="epoch")
    ckpt = list_checkpoints(tmp_path / "a")[0]
    model = torch.nn.Linear(8, 3)
    args = TrainingArguments(output_dir=str(tmp_path / "b"), resume_from_checkpoint=str(ckpt), per_device_train_batch_size=8)
    acc = make_accelerator(args)
    dl = DataLoader(TensorDataset(torch.randn(16, 8), torch.zeros(16, dtype=torch.long)), batch_size=8)
    before = sorted(p.name for p in ckpt.iterdir())
    with pytest.raises(HfdlError, match="was saved from a different model.*start afresh without --resume_from_checkpoint"):
        train(acc, model, None, dl, args, tmp_path / "b", compute_loss=lambda m, b: m(b[0]).sum())
    acc.free_memory()
    assert sorted(p.name for p in ckpt.iterdir()) == before  # nothing lost


def test_not_a_checkpoint_is_refused(tmp_path):
    model, dl, args = _setup(tmp_path, resume_from_checkpoint=str(tmp_path))
    with pytest.raises(HfdlError, match="is not an hfdl checkpoint"):
        train(make_accelerator(args), model, None, dl, args, tmp_path, compute_loss=lambda m, b: m(b[0]).sum())


def test_bad_arguments_are_one_line_errors():
    with pytest.raises(HfdlError, match="--checkpointing_steps must be a number or 'epoch'"):
        TrainingArguments(checkpointing_steps="often")
    with pytest.raises(HfdlError, match="--lr_scheduler_type 'triangle' is unknown"):
        TrainingArguments(lr_scheduler_type="triangle")


def test_resuming_the_final_checkpoint_still_reports_metrics(tmp_path):
    full, full_result = _run(tmp_path / "a", checkpointing_steps="epoch")
    last = list_checkpoints(tmp_path / "a")[-1]
    assert last.name == "epoch_3"
    resumed, result = _run(tmp_path / "b", resume_from_checkpoint=str(last))
    assert result.final_metrics == full_result.final_metrics  # no epoch left to run, metrics still there
    assert all(torch.equal(p, q) for p, q in zip(full.parameters(), resumed.parameters()))
