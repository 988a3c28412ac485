"""Character-level RNN / LSTM / GRU language models: data -> stateful truncated BPTT -> saved Hub-ready folder.

`run` trains one cell type (or several with `--compare rnn,lstm,gru` on the same data, split, seed and time
budget) with the shared accelerate loop. The hidden state is carried across consecutive batches (detached),
reset at each epoch start, and checkpointed with the model so a resumed run equals an uninterrupted one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from accelerate import Accelerator

from hfdl.cli import command_line
from hfdl.data.text import UNK_TOKEN, bptt_windows, build_char_tokenizer, encode_text, load_text, split_text
from hfdl.errors import HfdlError
from hfdl.models.char_lm import CELL_TYPES, CharGenerator, CharLMConfig, CharLMForCausalLM, check_sampling
from hfdl.training import PeakMemory, TrainingArguments, environment_info, list_checkpoints, make_accelerator, tensor_loader, train

logger = logging.getLogger(__name__)

RESULT_FILES = ("all_results.json", "results.json", "history.json", "samples.json", "samples.txt", "run_config.json", "comparison.md", "comparison.json")


@dataclass
class CharLMArguments:
    """Model and comparison flags of scripts/train_char_lm.py."""

    model_type: str = field(default="lstm", metadata={"help": "rnn (tanh) | lstm | gru."})
    compare: str | None = field(default=None, metadata={"help": "Comma list of cell types trained side by side, e.g. rnn,lstm,gru."})
    num_layers: int = field(default=2, metadata={"help": "Stacked recurrent layers."})
    hidden_size: int = field(default=256, metadata={"help": "Units per recurrent layer."})
    embedding_dim: int = field(default=64, metadata={"help": "Character embedding size."})
    dropout: float = field(default=0.1, metadata={"help": "Dropout on embeddings, between layers and before the output layer."})
    tie_weights: bool = field(default=False, metadata={"help": "Share the embedding with the output layer (needs embedding_dim == hidden_size)."})
    seq_len: int = field(default=128, metadata={"help": "Truncated BPTT length (characters per window)."})
    max_steps: int | None = field(default=None, metadata={"help": "Stop after this many optimizer steps (same as --max_train_steps)."})
    eval_streams: int = field(default=16, metadata={"help": "Parallel streams the validation text is cut into for evaluation (state carried)."})

    def __post_init__(self):
        bad = [t for t in self.model_types if t not in CELL_TYPES]
        if bad:
            flag = "--compare" if self.compare else "--model_type"
            raise HfdlError(f"{flag} has unknown cell type {bad[0]!r}: use rnn, lstm or gru (comma-separated for --compare)")
        if len(set(self.model_types)) != len(self.model_types):
            raise HfdlError(f"--compare lists a cell type twice ({self.compare}): give each once")
        for name in ("seq_len", "eval_streams"):
            if getattr(self, name) < 1:
                raise HfdlError(f"--{name} must be >= 1, got {getattr(self, name)}")
        if self.max_steps is not None and self.max_steps < 1:
            raise HfdlError(f"--max_steps must be >= 1, got {self.max_steps}")
        self.config_for("lstm" if not self.compare else self.model_types[0], vocab_size=2)  # validate sizes early

    @property
    def model_types(self) -> list[str]:
        if self.compare:
            return [t.strip() for t in self.compare.split(",") if t.strip()]
        return [self.model_type]

    def config_for(self, cell_type: str, vocab_size: int) -> CharLMConfig:
        return CharLMConfig(
            cell_type=cell_type,
            vocab_size=vocab_size,
            embedding_dim=self.embedding_dim,
            hidden_size=self.hidden_size,
            num_layers=self.num_layers,
            dropout=self.dropout,
            tie_word_embeddings=self.tie_weights,
            unk_token_id=0,
        )


@dataclass
class TextDataArguments:
    """Where the text comes from."""

    train_file: str | None = field(default=None, metadata={"help": "Local text file."})
    dataset_name: str | None = field(default=None, metadata={"help": "Hub text dataset id (or a `save_to_disk` folder)."})
    dataset_config_name: str | None = field(default=None, metadata={"help": "Hub dataset configuration."})
    text_column: str | None = field(default=None, metadata={"help": "Text column of --dataset_name (default: 'text' or the first string column)."})
    corpus: str | None = field(default=None, metadata={"help": "Offline corpus: austen | kjv (Debian packages, see ASSETS)."})
    encoding: str = field(default="utf-8", metadata={"help": "Encoding of --train_file."})
    validation_split_percentage: float = field(default=10.0, metadata={"help": "The last N% of the text is the validation set (contiguous)."})
    max_train_chars: int | None = field(default=None, metadata={"help": "Use only the first N characters of the training part."})


@dataclass
class SamplingArguments:
    """Samples written at every evaluation and at the end."""

    sample_prompt: str = field(default="\n", metadata={"help": "Prompt of the samples."})
    sample_length: int = field(default=300, metadata={"help": "Characters per sample."})
    temperature: float = field(default=0.8, metadata={"help": "Sampling temperature of the samples (0 = greedy)."})
    top_k: int | None = field(default=None, metadata={"help": "Top-k filter of the samples (0/None = off)."})
    top_p: float | None = field(default=None, metadata={"help": "Nucleus filter of the samples, in (0, 1]."})

    def __post_init__(self):
        check_sampling(self.temperature, self.top_k, self.top_p, self.sample_length)


# --------------------------------------------------------------------------------------------------


class StreamState:
    """The hidden state carried across consecutive training batches; checkpointed with the run."""

    def __init__(self):
        self.state: tuple[torch.Tensor, ...] | None = None

    def state_dict(self) -> dict:
        return {"state": [s.cpu() for s in self.state] if self.state is not None else None}

    def load_state_dict(self, sd: dict) -> None:
        self.state = tuple(sd["state"]) if sd.get("state") is not None else None


@torch.inference_mode()
def evaluate_nats_per_char(model: CharLMForCausalLM, ids: torch.Tensor, num_streams: int, chunk: int = 1024) -> float:
    """Mean negative log-likelihood (nats/char) of `ids` given its own past: the text is cut into contiguous
    streams, read in chunks with the state carried (so every character but the first of each stream is scored)."""
    was_training = model.training
    model.eval()
    device = model.lm_head.weight.device
    num_streams = max(1, min(num_streams, (ids.numel() - 1) // 2))
    per = (ids.numel() - 1) // num_streams
    x = ids[: per * num_streams].view(num_streams, per)
    y = ids[1 : per * num_streams + 1].view(num_streams, per)
    # streams overlap by one character: target of the last position of stream s is the first input of s+1
    total, count, state = 0.0, 0, None
    for t in range(0, per, chunk):
        xb, yb = x[:, t : t + chunk].to(device), y[:, t : t + chunk].to(device)
        out = model(xb, state=state)
        state = out.state
        total += torch.nn.functional.cross_entropy(out.logits.float().reshape(-1, out.logits.size(-1)), yb.reshape(-1), reduction="sum").item()
        count += yb.numel()
    model.train(was_training)
    return total / max(count, 1)


def check_output_dir(out: Path, run_dirs: list[Path], args: TrainingArguments) -> None:
    """Refuse to overwrite a finished run or to silently restart an interrupted one."""
    if not out.exists():
        return
    finished = (out / "all_results.json").is_file() or any((d / "results.json").is_file() for d in run_dirs)
    partial = [d for d in run_dirs if list_checkpoints(d)]
    if args.overwrite_output_dir:
        for d in run_dirs:
            for ckpt in [p for p in d.glob("step_*")] + [p for p in d.glob("epoch_*")]:
                shutil.rmtree(ckpt)
            for name in (*RESULT_FILES, "model.safetensors"):
                if (d / name).is_file():
                    (d / name).unlink()
        for name in RESULT_FILES:
            if (out / name).is_file():
                (out / name).unlink()
        return
    if args.resume_from_checkpoint:
        return
    if finished:
        raise HfdlError(f"{out} already holds results: pass --overwrite_output_dir to replace them or choose another --output_dir")
    if partial:
        raise HfdlError(
            f"{out} holds an interrupted run ({partial[0]}): pass --resume_from_checkpoint latest to continue it or --overwrite_output_dir to restart"
        )


@dataclass
class PreparedText:
    tokenizer: object
    train_ids: torch.Tensor
    val_ids: torch.Tensor
    source: str
    train_chars: int
    val_chars: int
    unknown_in_validation: int
    fingerprint: str = ""  # sha256 of the whole text (first 16 hex): the dataset revision in model cards


def prepare_text(dargs: TextDataArguments, min_train_chars: int) -> PreparedText:
    text, source = load_text(dargs.train_file, dargs.dataset_name, dargs.corpus, dargs.text_column, dargs.dataset_config_name, dargs.encoding)
    if not text:
        raise HfdlError(f"{source} holds no text: give a non-empty file or dataset")
    train_text, val_text = split_text(text, dargs.validation_split_percentage / 100)
    if dargs.max_train_chars:
        train_text = train_text[: dargs.max_train_chars]
    if len(train_text) < min_train_chars or len(val_text) < 2:
        raise HfdlError(
            f"{source} is too short: {len(train_text)} training characters, one batch needs {min_train_chars} (streams x (seq_len + 1)): "
            "give more text or lower --per_device_train_batch_size / --seq_len"
        )
    tokenizer = build_char_tokenizer(train_text)
    vocab = tokenizer.get_vocab()
    train_ids, val_ids = encode_text(train_text, vocab), encode_text(val_text, vocab)
    unknown = int((val_ids == vocab[UNK_TOKEN]).sum())
    fingerprint = hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
    return PreparedText(tokenizer, train_ids, val_ids, source, len(train_text), len(val_text), unknown, fingerprint)


def run_one(
    cell_type: str,
    run_dir: Path,
    cargs: CharLMArguments,
    sargs: SamplingArguments,
    targs: TrainingArguments,
    accelerator: Accelerator,
    data: PreparedText,
    carried: StreamState,
) -> dict:
    """Train one cell type; save the Hub-ready folder `run_dir`; return its results."""
    t_wall = time.perf_counter()
    mem = PeakMemory()
    num_streams, seq_len = targs.per_device_train_batch_size, cargs.seq_len
    samples: list[dict] = []
    with mem:
        torch.manual_seed(targs.seed)
        model = CharLMForCausalLM(cargs.config_for(cell_type, len(data.tokenizer)))
        num_params = sum(p.numel() for p in model.parameters())
        x, y, first = bptt_windows(data.train_ids, num_streams, seq_len, accelerator.num_processes)
        train_dl = tensor_loader(x, y, first, batch_size=1, shuffle=False)
        carried.state = None
        vocab_size = model.config.vocab_size

        def compute_loss(m, batch):
            xb, yb, is_first = batch[0][0], batch[1][0], bool(batch[2][0])
            out = m(xb, state=None if is_first else carried.state)  # (B, T, V)
            carried.state = tuple(s.detach() for s in out.state)  # truncated BPTT: keep the value, cut the graph
            return torch.nn.functional.cross_entropy(out.logits.reshape(-1, vocab_size), yb.reshape(-1))

        def evaluate(m):
            unwrapped = accelerator.unwrap_model(m)
            nats = evaluate_nats_per_char(unwrapped, data.val_ids, cargs.eval_streams)
            text = CharGenerator(unwrapped, data.tokenizer).generate(
                sargs.sample_prompt, sargs.sample_length, sargs.temperature, sargs.top_k, sargs.top_p, seed=targs.seed
            )
            samples.append({"text": text})
            accelerator.print(f"--- {cell_type} sample (temperature {sargs.temperature}) ---\n{text}\n---")
            return {"eval_loss": nats, "eval_bpc": nats / math.log(2), "eval_perplexity": math.exp(nats)}

        step_args = TrainingArguments(**{**asdict(targs), "max_train_steps": cargs.max_steps or targs.max_train_steps})
        model, result = train(accelerator, model, None, train_dl, step_args, run_dir, compute_loss=compute_loss, evaluate=evaluate, run_name=cell_type)
        planned_steps = step_args.max_train_steps or step_args.num_train_epochs * math.ceil(
            len(x) / accelerator.num_processes / targs.gradient_accumulation_steps
        )
        for record, sample in zip(result.history[-len(samples) :], samples):
            sample.update(step=record["step"], eval_bpc=record.get("eval_bpc"))
        model.eval()
        gen = CharGenerator(model, data.tokenizer)
        gen_cps = gen.chars_per_second(n=300, prompt=sargs.sample_prompt)
        final_samples = [
            {"prompt": p, "temperature": t, "text": gen.generate(p, sargs.sample_length, t, sargs.top_k, sargs.top_p, seed=targs.seed)}
            for p in dict.fromkeys([sargs.sample_prompt, "\n"])
            for t in dict.fromkeys([sargs.temperature, 0.5, 1.0])
        ]
    wall = time.perf_counter() - t_wall
    final = result.final_metrics
    chars_trained = result.completed_steps * targs.gradient_accumulation_steps * num_streams * seq_len * accelerator.num_processes
    bpcs = [h["eval_bpc"] for h in result.history if "eval_bpc" in h]
    results = {
        "model_type": cell_type,
        "eval_loss": final["eval_loss"],
        "eval_bpc": final["eval_bpc"],
        "eval_perplexity": final["eval_perplexity"],
        "best_eval_bpc": min(bpcs) if bpcs else final["eval_bpc"],
        "num_params": num_params,
        "train_chars_per_second": chars_trained / result.train_seconds if result.train_seconds > 0 else 0.0,
        "generation_chars_per_second": gen_cps,
        "train_seconds": result.train_seconds,
        "wall_seconds": wall,
        "completed_steps": result.completed_steps,
        "chars_trained": chars_trained,
        "epochs": chars_trained / max(1, data.train_chars),
        "stopped_by_time_budget": bool(targs.time_budget_minutes) and result.completed_steps < planned_steps,
        **({"schedule_steps": result.schedule_steps} if result.schedule_steps else {}),
        "peak_rss_mb": mem.peak_rss_mb,
        "train_chars": data.train_chars,
        "validation_chars": data.val_chars,
        "vocab_size": vocab_size,
        "sample": final_samples[0]["text"],
    }
    if accelerator.is_main_process:
        run_dir.mkdir(parents=True, exist_ok=True)
        model.generation_config.do_sample = sargs.temperature > 0
        if sargs.temperature > 0:
            model.generation_config.temperature = sargs.temperature
        model.generation_config.max_new_tokens = sargs.sample_length
        model.save_pretrained(run_dir)
        data.tokenizer.save_pretrained(run_dir)
        (run_dir / "history.json").write_text(json.dumps(result.history, indent=2))
        (run_dir / "samples.json").write_text(json.dumps({"during_training": samples, "final": final_samples}, indent=2, ensure_ascii=False))
        (run_dir / "samples.txt").write_text(
            "\n\n".join(f"=== prompt {s['prompt']!r}, temperature {s['temperature']}, seed {targs.seed} ===\n{s['text']}" for s in final_samples) + "\n",
            encoding="utf-8",
        )
        (run_dir / "results.json").write_text(json.dumps(results, indent=2, ensure_ascii=False))
    accelerator.wait_for_everyone()
    return results


def run(cargs: CharLMArguments, dargs: TextDataArguments, sargs: SamplingArguments, targs: TrainingArguments, argv: list[str] | None = None) -> dict:
    """The whole pipeline; returns all_results (flat for one cell type, keyed by cell type under --compare)."""
    t0 = time.perf_counter()
    out = Path(targs.output_dir)
    types = cargs.model_types
    run_dirs = [out / t for t in types] if cargs.compare else [out]
    check_output_dir(out, run_dirs, targs)
    accelerator = make_accelerator(targs)
    carried = StreamState()
    accelerator.register_for_checkpointing(carried)
    need = targs.per_device_train_batch_size * accelerator.num_processes * (cargs.seq_len + 1)
    with accelerator.main_process_first():
        data = prepare_text(dargs, need)
    accelerator.print(f"data: {data.source}: {data.train_chars:,} train / {data.val_chars:,} validation characters, vocabulary {len(data.tokenizer)}")
    if data.unknown_in_validation:
        logger.warning("%d validation characters are not in the training vocabulary (scored as %s)", data.unknown_in_validation, UNK_TOKEN)
    out.mkdir(parents=True, exist_ok=True)
    run_config = {
        "command": command_line(argv),
        "model_args": asdict(cargs),
        "data_args": asdict(dargs),
        "sampling_args": asdict(sargs),
        "training_args": asdict(targs),
        "seed": targs.seed,
        "data": {
            "source": data.source,
            "train_chars": data.train_chars,
            "validation_chars": data.val_chars,
            "split": f"contiguous: first {100 - dargs.validation_split_percentage:g}% train, last {dargs.validation_split_percentage:g}% validation",
            "vocab_size": len(data.tokenizer),
            "unknown_in_validation": data.unknown_in_validation,
            "fingerprint": data.fingerprint,
        },
        "environment": environment_info(accelerator),
    }
    if dargs.corpus:
        from hfdl.assets import CORPORA

        run_config["offline_assets"] = [CORPORA[dargs.corpus].provenance()]
    if accelerator.is_main_process:
        (out / "run_config.json").write_text(json.dumps(run_config, indent=2, default=str, ensure_ascii=False))

    all_results: dict = {}
    for cell_type, run_dir in zip(types, run_dirs):
        done = run_dir / "results.json"
        if cargs.compare and targs.resume_from_checkpoint and done.is_file():
            accelerator.print(f"{cell_type}: already finished, reusing {done}")
            all_results[cell_type] = json.loads(done.read_text())
            continue
        resume = targs.resume_from_checkpoint
        if resume == "latest" and not list_checkpoints(run_dir):
            resume = None
        one_args = TrainingArguments(**{**asdict(targs), "resume_from_checkpoint": resume})
        all_results[cell_type] = run_one(cell_type, run_dir, cargs, sargs, one_args, accelerator, data, carried)
    results = all_results if cargs.compare else all_results[types[0]]
    if accelerator.is_main_process:
        run_config["wall_seconds"] = time.perf_counter() - t0
        (out / "run_config.json").write_text(json.dumps(run_config, indent=2, default=str, ensure_ascii=False))
        (out / "all_results.json").write_text(json.dumps(results, indent=2, ensure_ascii=False))
        if cargs.compare:
            from hfdl.char_lm_report import write_comparison

            table = write_comparison(all_results, out, data, title=f"{' vs '.join(types)} on {data.source}", budget=targs.time_budget_minutes)
            accelerator.print(table)
    accelerator.free_memory()
    return results
