"""The one accelerate training loop every hfdl task uses.

accumulate, clip, schedule, evaluate every epoch, checkpoint (`step_N` / `epoch_N`), resume exactly
(model, optimizer, scheduler, RNG and data position), track (TensorBoard), show progress (tqdm).
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

import torch
from accelerate import Accelerator
from accelerate.utils import DataLoaderConfiguration, ProjectConfiguration
from tqdm.auto import tqdm

from hfdl.core.checkpoints import STATE_FILE, model_signature, resolve_checkpoint
from hfdl.errors import HfdlError

logger = logging.getLogger(__name__)


SCHEDULERS = ("cosine", "linear", "constant_with_warmup", "constant")
EVAL_STRATEGIES = ("epoch", "end")


@dataclass
class TrainingArguments:
    """Arguments of the shared loop (transformers-example flag names).

    No task defaults live here: each task subclasses it with its own `output_dir` and its best measured
    recipe, and sets `default_epochs`, the epochs a run without `--num_train_epochs` trains for. With
    `--time_budget_minutes` and no `--num_train_epochs`, the clock alone ends training (with the LR
    schedule fitted to it): epochs cut a budgeted run short only when given explicitly.
    """

    default_epochs: ClassVar[float] = 2

    output_dir: str | None = field(default=None, metadata={"help": "Where results, models and checkpoints go."})
    overwrite_output_dir: bool = field(default=False, metadata={"help": "Replace the results of a finished run in --output_dir."})
    num_train_epochs: float | None = field(
        default=None,
        metadata={
            "help": "Training epochs, fractions allowed as in transformers (default: the task's; with --time_budget_minutes: as many as the budget allows)."
        },
    )
    max_train_steps: int | None = field(default=None, metadata={"help": "Stop after this many optimizer steps (overrides epochs)."})
    per_device_train_batch_size: int = field(default=64, metadata={"help": "Batch size per device for training."})
    per_device_eval_batch_size: int = field(
        default=64, metadata={"help": "Batch size per device for evaluation and feature caching (CPU: Lite0 at 64 px runs 500 img/s at 64, 357 at 256)."}
    )
    learning_rate: float = field(default=2e-3, metadata={"help": "Peak learning rate (AdamW)."})
    weight_decay: float = field(default=0.05, metadata={"help": "AdamW weight decay (not on norms and biases)."})
    warmup_ratio: float = field(default=0.1, metadata={"help": "Fraction of steps for linear warmup."})
    lr_scheduler_type: str = field(default="cosine", metadata={"help": f"One of {', '.join(SCHEDULERS)}."})
    gradient_accumulation_steps: int = field(default=1, metadata={"help": "Batches accumulated per optimizer step."})
    max_grad_norm: float | None = field(default=1.0, metadata={"help": "Gradient clipping norm (0 or None: off)."})
    mixed_precision: str | None = field(default=None, metadata={"help": "no | fp16 | bf16; default: what `accelerate launch` says."})
    seed: int = field(default=42, metadata={"help": "Seed for split, init, order and augmentation."})
    checkpointing_steps: str | None = field(default=None, metadata={"help": "Save state every N optimizer steps, or 'epoch'."})
    resume_from_checkpoint: str | None = field(default=None, metadata={"help": "A checkpoint folder, or 'latest'."})
    with_tracking: bool = field(default=False, metadata={"help": "Log metrics to TensorBoard under --output_dir."})
    eval_steps: int | None = field(default=None, metadata={"help": "Also evaluate every N optimizer steps (default: at epoch ends only)."})
    eval_strategy: str | None = field(
        default=None,
        metadata={
            "help": f"When to evaluate: {' | '.join(EVAL_STRATEGIES)}: at every epoch's end (default), or only once training ends "
            "(the epoch ends still log the training loss; --eval_steps still adds its own). Default: epoch, or the task's."
        },
    )
    time_budget_minutes: float | None = field(
        default=None,
        metadata={
            "help": "Stop training after this much training wall-clock time (evaluation excluded), then evaluate and save; the LR schedule is fitted to it (reported as schedule_steps)."
        },
    )
    dataloader_num_workers: int = field(default=0, metadata={"help": "DataLoader worker processes."})
    model_ema_decay: float | None = field(
        default=None,
        metadata={
            "help": "Keep an exponential moving average of the weights (timm's ModelEmaV3, decay warmed up as 1 - (1 + step)^-3/4 to at most this): "
            "evaluated, saved and published in place of the raw weights. 0 or None: off."
        },
    )
    debug: bool = field(default=False, metadata={"help": "Show full tracebacks instead of one-line errors."})

    def capped_by_clock(self, minutes: float):
        """A task's offline default run: when none of --num_train_epochs, --max_train_steps, --time_budget_minutes is
        given, its default epochs capped at `minutes` of training (the schedule fitted to the clock), so a slower
        machine shortens the run instead of overrunning the time the task promises; anything given wins."""
        if self.num_train_epochs is None and self.max_train_steps is None and self.time_budget_minutes is None:
            return replace(self, num_train_epochs=self.default_epochs, time_budget_minutes=minutes)
        return self

    def with_unset(self, **defaults):
        """These arguments with each field still None (not given) set from `defaults`, e.g. a task's recipe per
        model kind: `training_args.with_unset(learning_rate=5e-5, weight_decay=1e-4)`."""
        return replace(self, **{name: value for name, value in defaults.items() if getattr(self, name) is None})

    def __post_init__(self):
        if not self.output_dir:
            raise HfdlError("no --output_dir: pass the folder where results, models and checkpoints go")
        if self.lr_scheduler_type is not None and self.lr_scheduler_type not in SCHEDULERS:  # None: a task resolves it
            raise HfdlError(f"--lr_scheduler_type '{self.lr_scheduler_type}' is unknown: use one of {', '.join(SCHEDULERS)}")
        if self.num_train_epochs is not None and not self.num_train_epochs > 0:
            raise HfdlError(f"--num_train_epochs must be > 0, got {self.num_train_epochs}")
        for name in ("per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise HfdlError(f"--{name} must be >= 1, got {getattr(self, name)}")
        if self.max_train_steps is not None and self.max_train_steps < 1:
            raise HfdlError(f"--max_train_steps must be >= 1, got {self.max_train_steps}")
        if self.learning_rate is not None and self.learning_rate <= 0:  # None: a task resolves it (e.g. by model kind)
            raise HfdlError(f"--learning_rate must be > 0, got {self.learning_rate}")
        if self.warmup_ratio is not None and not 0 <= self.warmup_ratio < 1:
            raise HfdlError(f"--warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        if self.eval_strategy is not None and self.eval_strategy not in EVAL_STRATEGIES:
            raise HfdlError(f"--eval_strategy '{self.eval_strategy}' is unknown: use one of {', '.join(EVAL_STRATEGIES)}")
        if self.eval_steps is not None and self.eval_steps < 1:
            raise HfdlError(f"--eval_steps must be >= 1, got {self.eval_steps}")
        if self.time_budget_minutes is not None and not self.time_budget_minutes > 0:
            raise HfdlError(f"--time_budget_minutes must be > 0, got {self.time_budget_minutes}")
        if self.model_ema_decay is not None and not 0 <= self.model_ema_decay < 1:
            raise HfdlError(f"--model_ema_decay must be in [0, 1) (e.g. 0.999), got {self.model_ema_decay}")
        if self.checkpointing_steps is not None and self.checkpointing_steps != "epoch" and not str(self.checkpointing_steps).isdigit():
            raise HfdlError(f"--checkpointing_steps must be a number or 'epoch', got '{self.checkpointing_steps}'")

    @property
    def epochs(self) -> float:
        """Epochs to plan for: `--num_train_epochs`, else unbounded under a time budget, else the task's default
        (a fraction: that share of the last epoch's steps)."""
        if self.num_train_epochs is not None:
            return self.num_train_epochs
        return UNBOUNDED_EPOCHS if self.time_budget_minutes else self.default_epochs


UNBOUNDED_EPOCHS = 1_000_000  # a budgeted run without --num_train_epochs: the clock stops it
EMA_WARMUP_POWER = 3 / 4  # timm's value for runs of thousands of steps: decay 0.99 at step 464, 0.995 at 1,170


def decay_groups(model: torch.nn.Module) -> list[dict]:
    """AdamW parameter groups as timm and transformers make them: weight decay on weight matrices and kernels,
    none on biases, norm scales and other 1-d parameters; frozen parameters left out."""
    params = [p for p in model.parameters() if p.requires_grad]
    return [{"params": [p for p in params if p.dim() > 1]}, {"params": [p for p in params if p.dim() <= 1], "weight_decay": 0.0}]


def make_accelerator(args: TrainingArguments) -> Accelerator:
    """One Accelerator per script; seedable samplers make the data order a function of (seed, epoch)."""
    return Accelerator(
        mixed_precision=args.mixed_precision,
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        log_with="tensorboard" if args.with_tracking else None,
        project_config=ProjectConfiguration(project_dir=args.output_dir, logging_dir=os.path.join(args.output_dir, "runs")),
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True),
    )


def make_scheduler(kind: str, optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int, last_epoch: int = -1):
    """A transformers schedule (`kind` in SCHEDULERS) over `total_steps`; `last_epoch` >= 0 rebuilds
    it in the middle of a run (the optimizer's lr is set for step `last_epoch + 1`)."""
    from transformers import optimization as opt

    if kind == "constant":
        return opt.get_constant_schedule(optimizer, last_epoch=last_epoch)
    if kind == "constant_with_warmup":
        return opt.get_constant_schedule_with_warmup(optimizer, warmup_steps, last_epoch=last_epoch)
    fn = {"cosine": opt.get_cosine_schedule_with_warmup, "linear": opt.get_linear_schedule_with_warmup}[kind]
    return fn(optimizer, warmup_steps, total_steps, last_epoch=last_epoch)


class BudgetSchedule:
    """Fits the learning-rate schedule to `--time_budget_minutes`.

    Without it, a run stopped by the clock ends wherever its epoch-based schedule happens to be
    (a cosine still near its peak). Here the schedule's length is estimated from the measured
    seconds per step: provisionally after the first few steps, then again at 10%, 25%, 50%, 75% and
    (for good) 90% of the budget, since steps get faster once caches are warm and a shared machine's
    speed drifts. Up to half the budget the estimate is the mean since the first step; the later ones
    time only the steps since the previous fit (the speed the rest of the run will have), so a run
    whose steps got faster no longer reaches the end of its schedule with minutes of budget unused.
    Between those points, a schedule running ahead of the clock (a quarter more of its steps done than of the
    budget spent: steps much faster than when it was fitted) is refitted at once from the steps since the
    previous fit, so it cannot reach its end, and stop the run, with most of the budget unused.
    Warmup is `warmup_ratio` of the fitted length. A decaying schedule (cosine, linear) ends the run when it reaches zero;
    a constant one runs until the clock stops it. The fitted length is saved in checkpoints (resume
    keeps it) and reported as `schedule_steps`, so `--max_train_steps schedule_steps` replays the
    same schedule without a clock.
    """

    PROVISIONAL_AFTER = 4  # steps after (re)start; the first step pays one-off allocation costs
    REFIT_AT = (0.10, 0.25, 0.50, 0.75, 0.90)  # fractions of the budget; the last one is final
    RECENT_FROM = 0.75  # refits from this fraction on time the steps since the previous fit
    AHEAD = 0.25  # refit early when the fraction of the schedule done exceeds the fraction of the budget by this

    def __init__(self, args: TrainingArguments, budget_s: float, max_steps: int, num_processes: int, state: dict | None = None):
        self.args, self.budget_s, self.num_processes = args, budget_s, num_processes
        state = state or {}
        self.cap, self.steps = max_steps, state.get("schedule_steps", max_steps)
        self.final = state.get("schedule_final", False)
        self.decays = args.lr_scheduler_type in ("cosine", "linear")
        self._passed = 0  # how many of REFIT_AT this process has refitted at
        self._first: tuple[int, float] | None = None  # (step, train seconds) after the first step of this process
        self._last: tuple[int, float] | None = None  # (step, train seconds) at this process's previous fit

    def build(self, optimizer: torch.optim.Optimizer, completed_steps: int = 0):
        n = self.num_processes  # accelerate steps a prepared scheduler once per process per optimizer step
        return make_scheduler(
            self.args.lr_scheduler_type, optimizer, int(self.args.warmup_ratio * self.steps) * n, self.steps * n, last_epoch=completed_steps * n - 1
        )

    def observe(self, completed_steps: int, train_seconds: float) -> bool:
        """Called after each optimizer step; True when the schedule was (re)fitted."""
        if self.final:
            return False
        if self._first is None:
            self._first = (completed_steps, train_seconds)
            return False
        done = completed_steps - self._first[0]
        passed = sum(train_seconds >= f * self.budget_s for f in self.REFIT_AT)
        ahead = completed_steps / self.steps - train_seconds / self.budget_s >= self.AHEAD
        if passed == self._passed and done != self.PROVISIONAL_AFTER and not ahead:
            return False
        self._passed, final = passed, passed == len(self.REFIT_AT)
        last = self._last
        recent = ahead or train_seconds >= self.RECENT_FROM * self.budget_s
        if last is not None and recent and completed_steps > last[0]:
            per_step = (train_seconds - last[1]) / (completed_steps - last[0])
        else:
            per_step = (train_seconds - self._first[1]) / max(done, 1)
        self._last = (completed_steps, train_seconds)
        fitted = completed_steps + int(max(self.budget_s - train_seconds, 0) / max(per_step, 1e-9))
        self.steps, self.final = max(min(fitted, self.cap), completed_steps + 1), final
        return True

    def state(self) -> dict:
        return {"schedule_steps": self.steps, "schedule_final": self.final}


class TrainStep:
    """A task's own update, for a model trained by several optimizers (a GAN's discriminator and generator).

    The loop builds one AdamW (with its own LR schedule) per part of `parts(model)`, prepares each part
    separately with accelerate (each is its own DDP module when distributed, so gradients sync whichever part
    a loss flows through), checkpoints every part, optimizer and schedule, and calls `step` once per batch in
    place of its own backward / clip / optimizer step. `gradient_accumulation_steps` must be 1. Objects with
    state beyond the parts (an EMA of weights) go to `accelerator.register_for_checkpointing` before `train`.
    """

    def parts(self, model: torch.nn.Module) -> dict[str, torch.nn.Module]:
        """The separately optimized submodules of `model`, by name (e.g. discriminator, generator)."""
        raise NotImplementedError

    def optimizer_options(self, name: str) -> dict:
        """Extra AdamW options of part `name` (e.g. `betas`)."""
        return {}

    def step(self, parts: dict[str, torch.nn.Module], optimizers: dict[str, torch.optim.Optimizer], batch: Any, accelerator: Accelerator) -> torch.Tensor:
        """One update from `batch` (backward and `optimizers[name].step()` / `zero_grad()` included); returns the loss to log."""
        raise NotImplementedError


@dataclass
class TrainResult:
    completed_steps: int
    train_seconds: float
    train_samples: int
    history: list[dict]
    final_metrics: dict[str, float]
    schedule_steps: int | None = None  # the LR schedule's length when fitted to --time_budget_minutes
    planned_steps: int | None = None  # the steps the arguments asked for (--max_train_steps, else epochs x steps per epoch)

    @property
    def train_samples_per_second(self) -> float:
        return self.train_samples / self.train_seconds if self.train_seconds > 0 else 0.0


def fused_adamw_available(model: torch.nn.Module) -> bool | None:
    """True when every trainable parameter is a floating tensor on a device with PyTorch's fused AdamW kernel (CPU, CUDA, ...)."""
    try:
        from torch.utils._foreach_utils import _get_fused_kernels_supported_devices

        devices = set(_get_fused_kernels_supported_devices())
    except ImportError:  # a private helper: should it move, the devices it named in PyTorch 2.14
        devices = {"cpu", "cuda", "mps", "xpu"}
    params = [p for p in model.parameters() if p.requires_grad]
    return (bool(params) and all(p.is_floating_point() and p.device.type in devices for p in params)) or None


def train(
    accelerator: Accelerator,
    model: torch.nn.Module,
    optimizer_groups: list[dict] | None,
    train_dataloader: torch.utils.data.DataLoader,
    args: TrainingArguments,
    run_dir: str | Path,
    compute_loss: Callable[[torch.nn.Module, Any], torch.Tensor] | None = None,
    evaluate: Callable[[torch.nn.Module], dict[str, float]] | None = None,
    train_mode: Callable[[torch.nn.Module], Any] | None = None,
    run_name: str = "train",
    learning_rate: float | None = None,
    train_step: TrainStep | None = None,
) -> tuple[torch.nn.Module, TrainResult]:
    """Train `model` with AdamW + warmup/schedule; evaluate each epoch; checkpoint and resume.

    `compute_loss(model, batch)` returns the scalar loss; `evaluate(model)` returns metrics;
    `train_mode(model)` puts the model in training mode (default `model.train()`). A model with several
    optimizers passes `train_step` (a `TrainStep`) instead of `compute_loss`.
    """
    run_dir = Path(run_dir)
    raw_model = model  # the module itself, whatever accelerate wraps it in
    lr = learning_rate or args.learning_rate
    # PyTorch's fused AdamW kernel on CPU too (2.7x faster than the default foreach step: 3.2 vs 8.4 ms for the
    # segmenter's 3.2 M parameters on 2 cores, benchmarks/segmentation.py); None (foreach) where a device lacks it.
    fused = fused_adamw_available(model)
    if train_step is not None:
        if args.gradient_accumulation_steps != 1:
            raise HfdlError(
                f"--gradient_accumulation_steps {args.gradient_accumulation_steps} is not supported by this model's own update step: use 1 and a larger batch"
            )
        parts = train_step.parts(model)
        optimizers = {
            name: torch.optim.AdamW(decay_groups(part), lr=lr, weight_decay=args.weight_decay, fused=fused, **train_step.optimizer_options(name))
            for name, part in parts.items()
        }
    else:
        groups = optimizer_groups or decay_groups(model)
        parts = {"model": model}
        optimizers = {"model": torch.optim.AdamW(groups, lr=lr, weight_decay=args.weight_decay, fused=fused)}
    # Each process gets every num_processes-th batch once the loader is prepared (accelerate's even batches): the
    # optimizer steps of an epoch, and so the schedule's length and a resume's epoch, count those.
    steps_per_epoch = math.ceil(math.ceil(len(train_dataloader) / accelerator.num_processes) / args.gradient_accumulation_steps)
    max_steps = planned_steps = args.max_train_steps or max(1, math.ceil(args.epochs * steps_per_epoch))
    num_epochs = math.ceil(max_steps / steps_per_epoch)
    budget_s = args.time_budget_minutes * 60 if args.time_budget_minutes else None
    ckpt = resolve_checkpoint(args.resume_from_checkpoint, run_dir)
    state = json.loads((ckpt / STATE_FILE).read_text()) if ckpt is not None else {}
    fit = BudgetSchedule(args, budget_s, max_steps, accelerator.num_processes, state) if budget_s else None
    if fit is not None:
        max_steps = fit.steps if fit.decays else max_steps  # a resumed run keeps its fitted length
        schedulers = {name: fit.build(opt) for name, opt in optimizers.items()}
    else:
        n = accelerator.num_processes
        schedulers = {
            name: make_scheduler(args.lr_scheduler_type, opt, int(args.warmup_ratio * max_steps) * n, max_steps * n) for name, opt in optimizers.items()
        }
    signature = model_signature(model)
    names = list(parts)
    prepared = accelerator.prepare(*parts.values(), *optimizers.values(), train_dataloader, *schedulers.values())
    k = len(names)
    parts, optimizers = dict(zip(names, prepared[:k])), dict(zip(names, prepared[k : 2 * k]))
    train_dataloader, schedulers = prepared[2 * k], dict(zip(names, prepared[2 * k + 1 :]))
    if train_step is None:
        model, optimizer, scheduler = parts["model"], optimizers["model"], schedulers["model"]
    scheduler = next(iter(schedulers.values()))  # the one whose learning rate is logged
    ema = None
    if args.model_ema_decay:  # after prepare: the copy lives where the model does
        from timm.utils import ModelEmaV3

        ema = ModelEmaV3(raw_model, decay=args.model_ema_decay, use_warmup=True, warmup_power=EMA_WARMUP_POWER)
        accelerator.register_for_checkpointing(ema)  # its weights; its step is completed_steps
    scored = ema.module if ema is not None else model  # what evaluation sees

    completed_steps, start_epoch, skip_batches = 0, 0, 0
    history: list[dict] = []
    elapsed_before = 0.0
    samples_before = 0
    if ckpt is not None:
        if state.get("signature") != signature:
            raise HfdlError(
                f"checkpoint {ckpt} was saved from a different model than this run builds: resume with the same model arguments and data, or start afresh without --resume_from_checkpoint"
            )
        if (state.get("model_ema_decay") or None) != (args.model_ema_decay or None):  # 0 is off, as None
            raise HfdlError(
                f"checkpoint {ckpt} was saved with --model_ema_decay {state.get('model_ema_decay')}, this run asks for {args.model_ema_decay}: resume with the same value"
            )
        try:
            accelerator.load_state(str(ckpt))
        except Exception as err:
            raise HfdlError(
                f"checkpoint {ckpt} could not be loaded ({type(err).__name__}): it does not match this model or is damaged; pick another with --resume_from_checkpoint"
            ) from err
        completed_steps = state["completed_steps"]
        history, elapsed_before, samples_before = state.get("history", []), state.get("train_seconds", 0.0), state.get("train_samples", 0)
        start_epoch = completed_steps // steps_per_epoch
        skip_batches = (completed_steps % steps_per_epoch) * args.gradient_accumulation_steps
        accelerator.print(f"resumed {run_name} from {ckpt} at step {completed_steps}")

    def save_checkpoint(name: str, epoch: int) -> None:
        path = run_dir / name
        tmp = run_dir / f".{name}.tmp"
        if tmp.exists():
            shutil.rmtree(tmp)
        accelerator.save_state(str(tmp))
        if accelerator.is_main_process:
            state = {
                "completed_steps": completed_steps,
                "epoch": epoch,
                "signature": signature,
                "model_ema_decay": args.model_ema_decay or None,
                "history": history,
                "train_seconds": elapsed_before + train_time,
                "train_samples": samples_before + samples,
                **(fit.state() if fit is not None else {}),
            }
            (tmp / STATE_FILE).write_text(json.dumps(state, indent=2))
            if path.exists():
                shutil.rmtree(path)
            tmp.rename(path)  # a checkpoint becomes visible only once complete
        accelerator.wait_for_everyone()

    if args.with_tracking:
        accelerator.init_trackers(run_name, config={k: v for k, v in asdict(args).items() if isinstance(v, (int, float, str, bool))})
    every = int(args.checkpointing_steps) if args.checkpointing_steps and args.checkpointing_steps != "epoch" else None
    progress = tqdm(total=max_steps, initial=completed_steps, disable=not accelerator.is_local_main_process, desc=run_name, dynamic_ncols=True)
    metrics: dict[str, float] = {}
    samples = 0
    train_time = 0.0
    out_of_time = False

    def log_evaluation(epoch_value: float, train_loss: float, score: bool = True) -> dict:
        """Append the history's record (training loss, learning rate) with the evaluation's metrics where `score`."""
        with _forked_rng():  # evaluation never moves the training RNG: resumed runs stay exact
            found = evaluate(scored) if evaluate is not None and score else {}
        record = {
            "epoch": epoch_value,
            "step": completed_steps,
            "train_seconds": elapsed_before + train_time,
            "train_loss": train_loss,
            "lr": scheduler.get_last_lr()[0],
            **{k: v for k, v in found.items() if isinstance(v, (int, float))},  # a confusion matrix stays out
        }
        history.append(record)
        progress.set_postfix({k: round(v, 4) for k, v in record.items() if isinstance(v, float)})
        accelerator.print(json.dumps({"run": run_name, **{k: (round(v, 5) if isinstance(v, float) else v) for k, v in record.items()}}))
        if args.with_tracking:
            accelerator.log(record, step=completed_steps)
        return found

    for epoch in range(start_epoch, num_epochs):
        (train_mode or (lambda m: m.train()))(model)
        train_dataloader.set_epoch(epoch)
        base = getattr(train_dataloader, "dataset", None)
        if hasattr(base, "set_epoch"):
            base.set_epoch(epoch)
        loader = train_dataloader
        if epoch == start_epoch and skip_batches:
            loader = accelerator.skip_first_batches(train_dataloader, skip_batches)
        running, count = 0.0, 0
        t_epoch = time.perf_counter()
        for batch in _rng_neutral(loader):
            if train_step is not None:
                loss = train_step.step(parts, optimizers, batch, accelerator)
                for sched in schedulers.values():
                    sched.step()
            else:
                with accelerator.accumulate(model):
                    loss = compute_loss(model, batch)
                    accelerator.backward(loss)
                    if accelerator.sync_gradients and args.max_grad_norm:
                        accelerator.clip_grad_norm_(model.parameters(), args.max_grad_norm)
                    optimizer.step()
                    scheduler.step()
                    optimizer.zero_grad(set_to_none=True)
            running += loss.detach().float()
            count += 1
            samples += _batch_size(batch) * accelerator.num_processes
            if accelerator.sync_gradients:
                completed_steps += 1
                if ema is not None:
                    ema.update(raw_model, step=completed_steps)
                progress.update(1)
                if fit is not None:
                    spent = _slowest(accelerator, elapsed_before + train_time + time.perf_counter() - t_epoch)  # the same on every process
                    if not fit.final and fit.observe(completed_steps, spent):
                        progress.total = fit.steps  # the estimate; a constant schedule runs on to the clock
                        if fit.decays:  # at zero learning rate more steps are wasted
                            max_steps = fit.steps
                        for name, sched in schedulers.items():
                            sched.scheduler = fit.build(optimizers[name].optimizer, completed_steps)
                    out_of_time = spent >= budget_s  # any process out of time stops all, at the same step
                epoch_end = completed_steps % steps_per_epoch == 0 or completed_steps >= max_steps or out_of_time
                if args.eval_steps and completed_steps % args.eval_steps == 0 and not epoch_end:
                    train_time += time.perf_counter() - t_epoch
                    steps_in_epoch = completed_steps - epoch * steps_per_epoch
                    metrics = log_evaluation(round(epoch + steps_in_epoch / steps_per_epoch, 4), (running / max(count, 1)).item())
                    (train_mode or (lambda m: m.train()))(model)
                    t_epoch = time.perf_counter()
                if every and completed_steps % every == 0 and not epoch_end:  # at an epoch end: saved after eval
                    train_time += time.perf_counter() - t_epoch
                    save_checkpoint(f"step_{completed_steps}", epoch)
                    t_epoch = time.perf_counter()
                if completed_steps >= max_steps or out_of_time:
                    break
        train_time += time.perf_counter() - t_epoch
        train_loss = (running / max(count, 1)).item() if count else float("nan")
        if out_of_time and completed_steps % steps_per_epoch:  # stopped mid-epoch by --time_budget_minutes
            metrics = log_evaluation(round(epoch + (completed_steps - epoch * steps_per_epoch) / steps_per_epoch, 4), train_loss)
            if args.checkpointing_steps:
                save_checkpoint(f"step_{completed_steps}", epoch)
            accelerator.print(f"{run_name}: time budget of {args.time_budget_minutes} min reached at step {completed_steps}")
            break
        last = completed_steps >= max_steps or out_of_time or epoch + 1 == num_epochs  # no epoch follows this one
        found = log_evaluation(epoch + 1, train_loss, score=last or args.eval_strategy != "end")
        metrics = found or metrics
        if args.checkpointing_steps == "epoch":
            save_checkpoint(f"epoch_{epoch + 1}", epoch + 1)
        elif every and completed_steps % every == 0:
            save_checkpoint(f"step_{completed_steps}", epoch + 1)
        if last:
            break
    progress.close()
    if not metrics and evaluate is not None:  # resumed from the final checkpoint: no epoch ran, still report
        with _forked_rng():
            metrics = evaluate(scored)
    if args.with_tracking:
        accelerator.end_training()
    if ema is not None:  # the averaged weights are the model from here on
        raw_model.load_state_dict(ema.module.state_dict())
    result = TrainResult(completed_steps, elapsed_before + train_time, samples_before + samples, history, metrics, fit.steps if fit else None, planned_steps)
    return accelerator.unwrap_model(model), result


def _slowest(accelerator: Accelerator, seconds: float) -> float:
    """The largest of every process's `seconds` (one collective a step), so all decide alike."""
    if accelerator.num_processes == 1:
        return seconds
    return accelerator.gather(torch.tensor([float(seconds)], device=accelerator.device)).max().item()


def _forked_rng():
    return torch.random.fork_rng(devices=[torch.cuda.current_device()] if torch.cuda.is_available() else [])


def _rng_neutral(loader):
    """Iterate `loader`, starting its iterator (which draws a base seed from the global RNG) in a
    forked RNG, so the model's random stream (dropout...) is the same in a resumed run as in an
    uninterrupted one, whichever point the iterator was created at."""
    it = iter(loader)
    with _forked_rng():
        first = next(it, _END)
    if first is _END:
        return
    yield first
    yield from it


_END = object()


def _batch_size(batch: Any) -> int:
    if isinstance(batch, (list, tuple)):
        return _batch_size(batch[0])
    if isinstance(batch, dict):
        return _batch_size(next(iter(batch.values())))
    return int(batch.shape[0])


class TensorBatches(torch.utils.data.TensorDataset):
    """A `TensorDataset` fetched a batch at a time: one fancy index per batch instead of a
    `__getitem__` per sample plus `torch.stack` (3x less loader time on cached features).

    Use with `tensor_loader`; samplers, shuffling, accelerate's seedable sampler and resume
    (`skip_first_batches`) work unchanged because only the fetch differs.
    """

    def __getitems__(self, indices: list[int]) -> tuple[torch.Tensor, ...]:
        idx = torch.as_tensor(indices, dtype=torch.long)
        return tuple(t[idx] for t in self.tensors)


def _whole_batch(batch):
    return batch


def tensor_loader(*tensors: torch.Tensor, batch_size: int, shuffle: bool = False, drop_last: bool = False) -> torch.utils.data.DataLoader:
    """DataLoader over in-memory tensors (cached features, token streams) with batched fetching."""
    return torch.utils.data.DataLoader(TensorBatches(*tensors), batch_size=batch_size, shuffle=shuffle, drop_last=drop_last, collate_fn=_whole_batch)
