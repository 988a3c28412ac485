"""The shared loop: exact resume, checkpoint safety."""

import json

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from hfdl.core.checkpoints import list_checkpoints
from hfdl.core.training import TrainingArguments, fused_adamw_available, make_accelerator, tensor_loader, train
from hfdl.errors import HfdlError


def _setup(tmp_path, batched=False, **kw):
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(96, 8, generator=g), torch.randint(0, 3, (96,), generator=g)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Dropout(0.2), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    kw = {"num_train_epochs": 3, "gradient_accumulation_steps": 2, **kw}
    args = TrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=8, learning_rate=1e-2, seed=0, **kw)
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
        TrainingArguments(output_dir="out", checkpointing_steps="often")
    with pytest.raises(HfdlError, match="--lr_scheduler_type 'triangle' is unknown"):
        TrainingArguments(output_dir="out", lr_scheduler_type="triangle")
    with pytest.raises(HfdlError, match="--num_train_epochs must be > 0, got 0"):
        TrainingArguments(output_dir="out", num_train_epochs=0)


def test_a_fraction_of_an_epoch_is_that_share_of_its_steps_and_the_schedule_ends_there(tmp_path):
    """As transformers' num_train_epochs: 1.5 epochs of 6 optimizer steps = 9 steps, the cosine annealed at step 9."""
    _, result = _run(tmp_path, num_train_epochs=1.5)
    assert result.completed_steps == 9
    assert [(h["epoch"], h["step"]) for h in result.history] == [(1, 6), (2, 9)]  # evaluated after the first epoch and at the end
    assert result.history[-1]["lr"] < 1e-9


def test_eval_strategy_end_evaluates_once_after_training_and_logs_every_epochs_loss(tmp_path):
    calls = []

    def evaluate(m):
        calls.append(1)
        return {"eval_w": m[0].weight.sum().item()}

    model, dl, args = _setup(tmp_path, eval_strategy="end")
    acc = make_accelerator(args)
    _, result = train(acc, model, None, dl, args, tmp_path, compute_loss=lambda m, b: torch.nn.functional.cross_entropy(m(b[0]), b[1]), evaluate=evaluate)
    assert len(calls) == 1  # not after epochs 1 and 2
    assert [(h["epoch"], "eval_w" in h) for h in result.history] == [(1, False), (2, False), (3, True)]
    assert all(h["train_loss"] > 0 for h in result.history)
    assert result.final_metrics == {"eval_w": result.history[-1]["eval_w"]}
    _, every_epoch = _run(tmp_path / "b")
    assert [("eval_w" in h) for h in every_epoch.history] == [True, True, True]  # the default: each epoch's end
    assert every_epoch.history[-1]["eval_w"] == result.history[-1]["eval_w"]  # skipping evaluations changes no weight
    with pytest.raises(HfdlError, match="--eval_strategy 'steps' is unknown: use one of epoch, end"):
        TrainingArguments(output_dir="out", eval_strategy="steps")


def test_resuming_the_final_checkpoint_still_reports_metrics(tmp_path):
    full, full_result = _run(tmp_path / "a", checkpointing_steps="epoch")
    last = list_checkpoints(tmp_path / "a")[-1]
    assert last.name == "epoch_3"
    resumed, result = _run(tmp_path / "b", resume_from_checkpoint=str(last))
    assert result.final_metrics == full_result.final_metrics  # no epoch left to run, metrics still there
    assert all(torch.equal(p, q) for p, q in zip(full.parameters(), resumed.parameters()))


def test_budget_schedule_fits_the_schedule_length_to_the_measured_step_time():
    from hfdl.core.training import BudgetSchedule

    args = TrainingArguments(output_dir="out", lr_scheduler_type="cosine", warmup_ratio=0.1, learning_rate=1.0, time_budget_minutes=100 / 60)
    fit = BudgetSchedule(args, budget_s=100.0, max_steps=10_000, num_processes=1)
    seconds = lambda step: 0.5 + 1.0 * step  # noqa: E731  one second a step after a slow first one
    fitted_at = [step for step in range(1, 95) if fit.observe(step, seconds(step))]
    # provisional after 4 steps past the first, then at 10%, 25%, 50%, 75% and (final) 90% of the budget
    assert fitted_at == [5, 10, 25, 50, 75, 90] and fit.final
    assert fit.steps == 90 + int((100 - seconds(90)) / 1.0) == 99
    assert not fit.observe(95, seconds(95)) and fit.steps == 99  # final: nothing changes
    # the rebuilt cosine schedule warms up over 10% of the fitted length and ends at zero
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = fit.build(opt)
    lrs = []
    for _ in range(fit.steps):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == 0 and max(lrs) == pytest.approx(1.0) and lrs.index(max(lrs)) == 9
    assert opt.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-9)
    # rebuilt mid-run: the lr continues from the same step
    opt2 = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    fit.build(opt2)
    fit.build(opt2, completed_steps=40)
    assert opt2.param_groups[0]["lr"] == pytest.approx(lrs[40])
    # a schedule that cannot be fitted past the epoch-based length keeps it
    capped = BudgetSchedule(args, budget_s=100.0, max_steps=30, num_processes=1)
    for step in range(1, 12):
        capped.observe(step, seconds(step))
    assert capped.steps == 30


def test_budget_schedule_follows_steps_that_got_faster_and_uses_the_whole_budget():
    """Steps twice as fast after half the budget (a shared machine freed): fitted once at 50% from the mean, the
    schedule would end at step 100 with a quarter of the budget unused; the later refits time the recent steps."""
    from hfdl.core.training import BudgetSchedule

    args = TrainingArguments(output_dir="out", lr_scheduler_type="cosine", warmup_ratio=0.1, learning_rate=1.0, time_budget_minutes=100 / 60)
    fit = BudgetSchedule(args, budget_s=100.0, max_steps=10_000, num_processes=1)
    seconds = lambda step: step if step <= 50 else 50 + 0.5 * (step - 50)  # noqa: E731
    step = 0
    while step < fit.steps and seconds(step + 1) <= 100:  # the loop: on until the schedule's end or the clock
        step += 1
        fit.observe(step, seconds(step))
        if step == 50:
            assert fit.steps == 100  # the 50% fit, from the mean: what used to be final
    assert fit.final and fit.steps == 150 and step == 150 and seconds(step) == 100  # every second of the budget used


def test_budget_schedule_ahead_of_the_clock_is_refitted_before_it_ends_the_run():
    """Steps 10x faster after the first 20% of the budget (warm caches, a short run): the early fits expect the
    slow pace, so the schedule would end, and stop the run, at a quarter of the budget (a clean-clone run stopped
    at 1.5 of 3 s). Running ahead of the clock, it is refitted from the recent steps and uses the budget."""
    from hfdl.core.training import BudgetSchedule

    args = TrainingArguments(output_dir="out", lr_scheduler_type="cosine", warmup_ratio=0.1, learning_rate=1.0, time_budget_minutes=100 / 60)
    fit = BudgetSchedule(args, budget_s=100.0, max_steps=10_000, num_processes=1)
    seconds = lambda step: 3.0 * step if step <= 6 else 18 + 0.25 * (step - 6)  # noqa: E731
    step = 0
    while step < fit.steps and seconds(step + 1) <= 100:
        step += 1
        fit.observe(step, seconds(step))
    # every step the budget holds, at the end of the schedule (without the early refit: step 33, 25 s, lr zero)
    assert fit.final and seconds(step) == 100 and step == 334
    assert fit.steps == step


def test_time_budget_run_decays_to_the_end_and_checkpoints_the_fitted_schedule(tmp_path):
    import time as _time

    def slow_loss(m, b):
        _time.sleep(0.03)  # the step time the schedule is fitted to (long enough that a busy machine barely moves it)
        return torch.nn.functional.cross_entropy(m(b[0]), b[1])

    model, dl, args = _setup(
        tmp_path, num_train_epochs=1000, gradient_accumulation_steps=1, time_budget_minutes=3 / 60, warmup_ratio=0.05, checkpointing_steps="20"
    )
    acc = make_accelerator(args)
    _, result = train(acc, model, None, dl, args, tmp_path, compute_loss=slow_loss)
    acc.free_memory()
    planned = 1000 * 12
    assert result.schedule_steps is not None and result.completed_steps <= result.schedule_steps < planned
    # the run ended near the end of its fitted schedule, the LR decayed most of the way (unfitted, a 12,000-step cosine
    # would still be at its peak after ~80 steps). Margins for a loaded machine: another xdist worker slowing some
    # steps after the last refit stopped one clean-clone run at 57 of 79 fitted steps (lr 0.18 of the peak).
    assert result.completed_steps >= 0.6 * result.schedule_steps
    assert result.history[-1]["lr"] <= 0.35 * args.learning_rate
    state = json.loads((list_checkpoints(tmp_path)[-1] / "hfdl_trainer_state.json").read_text())
    # the length fitted by then, saved (the last checkpoint may be the run's end, when the schedule and the clock end together)
    assert state["completed_steps"] <= state["schedule_steps"] < planned
    assert abs(state["schedule_steps"] - result.schedule_steps) <= 0.25 * result.schedule_steps  # later refits only adjust it
    from hfdl.core.training import BudgetSchedule

    resumed = BudgetSchedule(args, 2.0, planned, 1, state)  # a resumed run starts from the fitted length
    assert resumed.steps == state["schedule_steps"]
    done = BudgetSchedule(args, 2.0, planned, 1, {**state, "schedule_final": True})  # and keeps a final one: no refit
    assert not done.observe(state["completed_steps"] + 5, 1.9) and done.steps == state["schedule_steps"]


def test_constant_schedule_under_a_time_budget_runs_until_the_clock_stops_it(tmp_path):
    import time as _time

    calls = []

    def loss(m, b):
        calls.append(_time.perf_counter())
        _time.sleep(0.02 if len(calls) < 30 else 0.005)  # steps get faster: the early fit underestimates the run
        return torch.nn.functional.cross_entropy(m(b[0]), b[1])

    model, dl, args = _setup(
        tmp_path,
        num_train_epochs=1000,
        gradient_accumulation_steps=1,
        time_budget_minutes=1.5 / 60,
        lr_scheduler_type="constant_with_warmup",
        warmup_ratio=0.05,
    )
    acc = make_accelerator(args)
    _, result = train(acc, model, None, dl, args, tmp_path, compute_loss=loss)
    acc.free_memory()
    assert result.train_seconds >= 1.5 * 60 / 60 * 0.95  # stopped by the clock, not by the fitted length
    assert result.history[-1]["lr"] == pytest.approx(args.learning_rate)


def test_weight_decay_skips_biases_and_norms_and_frozen_parameters():
    from hfdl.core.training import decay_groups

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Flatten(), torch.nn.LazyLinear(2))
    model(torch.randn(1, 3, 5, 5))
    model[0].weight.requires_grad_(False)
    decayed, plain = decay_groups(model)
    assert [p.shape for p in decayed["params"]] == [model[3].weight.shape]
    assert {id(p) for p in plain["params"]} == {id(model[0].bias), id(model[1].weight), id(model[1].bias), id(model[3].bias)}
    assert plain["weight_decay"] == 0.0 and "weight_decay" not in decayed  # the optimizer's own value


def test_model_ema_is_the_warmed_up_average_of_the_steps_weights_and_is_what_is_evaluated_and_returned(tmp_path):
    """timm's ModelEmaV3 in the loop: after step 1 the average is the weights; after step 2 it is d w1 + (1 - d) w2 with
    d = 1 - 2^-3/4. A constant schedule makes the 1- and 2-step runs share their first step."""
    constant = {"lr_scheduler_type": "constant", "warmup_ratio": 0.0, "gradient_accumulation_steps": 1}
    w1 = _run(tmp_path / "w1", max_train_steps=1, **constant)[0][0].weight.detach().clone()
    w2 = _run(tmp_path / "w2", max_train_steps=2, **constant)[0][0].weight.detach().clone()
    ema, result = _run(tmp_path / "ema", max_train_steps=2, model_ema_decay=0.999, **constant)
    d = 1 - 2**-0.75
    assert not torch.allclose(w1, w2)
    torch.testing.assert_close(ema[0].weight, d * w1 + (1 - d) * w2)  # the returned model holds the average
    assert result.final_metrics["eval_w"] == pytest.approx(ema[0].weight.sum().item(), abs=1e-5)  # and evaluation saw it
    from dataclasses import asdict

    from hfdl.hub.cards import schedule

    assert schedule(asdict(TrainingArguments(output_dir="o", model_ema_decay=0.999))).endswith(
        "the model is the EMA of the weights (timm ModelEmaV3, decay warmed up to at most 0.999)"
    )
    assert schedule(asdict(TrainingArguments(output_dir="o"))) == "cosine, warmup ratio 0.1"  # the card says so only when kept
    budgeted = asdict(TrainingArguments(output_dir="o", time_budget_minutes=8.5))
    assert schedule(budgeted) == "cosine, warmup ratio 0.1, its length fitted to a training budget of 8.5 minutes"


def test_model_ema_resumes_exactly_and_a_resume_without_it_is_refused(tmp_path):
    full, _ = _run(tmp_path / "a", checkpointing_steps="4", model_ema_decay=0.99)
    mid = list_checkpoints(tmp_path / "a")[1]
    resumed, _ = _run(tmp_path / "b", resume_from_checkpoint=str(mid), model_ema_decay=0.99)
    assert all(torch.equal(p, q) for p, q in zip(full.parameters(), resumed.parameters()))
    with pytest.raises(HfdlError, match="--model_ema_decay 0.99, this run asks for None: resume with the same value"):
        _run(tmp_path / "c", resume_from_checkpoint=str(mid))
    with pytest.raises(HfdlError, match=r"--model_ema_decay must be in \[0, 1\)"):
        TrainingArguments(output_dir="out", model_ema_decay=1.0)


def test_the_loop_takes_the_fused_adamw_kernel_where_every_trainable_parameter_can():
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
    assert fused_adamw_available(model) is True  # CPU float parameters: PyTorch's fused kernel
    model.requires_grad_(False)
    assert fused_adamw_available(model) is None  # nothing to train: AdamW's default
    assert fused_adamw_available(torch.nn.Linear(4, 3, device="meta")) is None  # a device without the kernel


def test_fused_adamw_takes_the_steps_of_the_default_one():
    torch.manual_seed(0)
    a = torch.nn.Linear(6, 4)
    b = torch.nn.Linear(6, 4)
    b.load_state_dict(a.state_dict())
    opts = [torch.optim.AdamW(m.parameters(), lr=1e-2, weight_decay=0.05, fused=f) for m, f in ((a, None), (b, True))]
    for _ in range(5):
        x = torch.randn(8, 6)
        for m, opt in zip((a, b), opts):
            m(x).square().mean().backward()
            opt.step()
            opt.zero_grad()
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.allclose(p, q, atol=1e-6)
