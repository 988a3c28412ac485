"""Character-level RNN / LSTM / GRU language models: data -> stateful truncated BPTT -> saved Hub-ready folder.

`run` trains one cell type (or several with `--compare rnn,lstm,gru` on the same data, split, seed and time
budget) with the shared accelerate loop. The hidden state is carried across consecutive batches (detached),
reset at each epoch start, and checkpointed with the model so a resumed run equals an uninterrupted one.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import replace
from pathlib import Path

import torch
from accelerate import Accelerator

from hfdl.assets import CORPORA
from hfdl.core.rundir import ALL_RESULTS, RESULTS, RUN_CONFIG, check_output_dir, run_config, run_variants, write_json
from hfdl.core.runtime import PeakMemory
from hfdl.core.training import make_accelerator, tensor_loader, train
from hfdl.tasks.char_lm.args import CharLMArguments, CharLMTrainingArguments, SamplingArguments, TextDataArguments
from hfdl.tasks.char_lm.card import write_cards
from hfdl.tasks.char_lm.char_lm import CharLMForCausalLM
from hfdl.tasks.char_lm.data import UNK_TOKEN, PreparedText, bptt_windows, prepare_text
from hfdl.tasks.char_lm.model import CharGenerator
from hfdl.tasks.char_lm.report import write_comparison

logger = logging.getLogger(__name__)

TASK = "char-lm"
OUTPUTS = ("config.json", "model.safetensors", "generation_config.json", "tokenizer*.json", "special_tokens_map.json", "char_lm.py", "samples.*")


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


def run_one(
    cell_type: str,
    run_dir: Path,
    model_args: CharLMArguments,
    sampling_args: SamplingArguments,
    training_args: CharLMTrainingArguments,
    accelerator: Accelerator,
    data: PreparedText,
    carried: StreamState,
) -> dict:
    """Train one cell type; save the Hub-ready folder `run_dir`; return its results."""
    t_wall = time.perf_counter()
    mem = PeakMemory()
    num_streams, seq_len = training_args.per_device_train_batch_size, model_args.seq_len
    samples: list[dict] = []
    with mem:
        torch.manual_seed(training_args.seed)
        model = CharLMForCausalLM(model_args.config_for(cell_type, len(data.tokenizer)))
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
            nats = evaluate_nats_per_char(unwrapped, data.val_ids, model_args.eval_streams)
            text = CharGenerator(unwrapped, data.tokenizer).generate(
                sampling_args.sample_prompt,
                sampling_args.sample_length,
                sampling_args.temperature,
                sampling_args.top_k,
                sampling_args.top_p,
                seed=training_args.seed,
            )
            samples.append({"text": text})
            accelerator.print(f"--- {cell_type} sample (temperature {sampling_args.temperature}) ---\n{text}\n---")
            return {"eval_loss": nats, "eval_bpc": nats / math.log(2), "eval_perplexity": math.exp(nats)}

        step_args = replace(training_args, max_train_steps=model_args.max_steps or training_args.max_train_steps)
        model, result = train(accelerator, model, None, train_dl, step_args, run_dir, compute_loss=compute_loss, evaluate=evaluate, run_name=cell_type)
        for record, sample in zip(result.history[-len(samples) :], samples):
            sample.update(step=record["step"], eval_bpc=record.get("eval_bpc"))
        model.eval()
        gen = CharGenerator(model, data.tokenizer)
        gen_cps = gen.chars_per_second(n=300, prompt=sampling_args.sample_prompt)
        final_samples = [
            {
                "prompt": p,
                "temperature": t,
                "text": gen.generate(p, sampling_args.sample_length, t, sampling_args.top_k, sampling_args.top_p, seed=training_args.seed),
            }
            for p in dict.fromkeys([sampling_args.sample_prompt, "\n"])
            for t in dict.fromkeys([sampling_args.temperature, 0.5, 1.0])
        ]
    wall = time.perf_counter() - t_wall
    final = result.final_metrics
    chars_trained = result.completed_steps * training_args.gradient_accumulation_steps * num_streams * seq_len * accelerator.num_processes
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
        "stopped_by_time_budget": bool(training_args.time_budget_minutes) and result.completed_steps < result.planned_steps,
        **({"schedule_steps": result.schedule_steps} if result.schedule_steps else {}),
        "peak_rss_mb": mem.peak_rss_mb,
        "train_chars": data.train_chars,
        "validation_chars": data.val_chars,
        "vocab_size": vocab_size,
        "sample": final_samples[0]["text"],
    }
    if accelerator.is_main_process:
        run_dir.mkdir(parents=True, exist_ok=True)
        model.generation_config.do_sample = sampling_args.temperature > 0
        if sampling_args.temperature > 0:
            model.generation_config.temperature = sampling_args.temperature
        model.generation_config.max_new_tokens = sampling_args.sample_length
        model.save_pretrained(run_dir)
        data.tokenizer.save_pretrained(run_dir)
        write_json(run_dir / "history.json", result.history)
        write_json(run_dir / "samples.json", {"during_training": samples, "final": final_samples})
        (run_dir / "samples.txt").write_text(
            "\n\n".join(f"=== prompt {s['prompt']!r}, temperature {s['temperature']}, seed {training_args.seed} ===\n{s['text']}" for s in final_samples)
            + "\n",
            encoding="utf-8",
        )
        write_json(run_dir / RESULTS, results)
    accelerator.wait_for_everyone()
    return results


def run(
    model_args: CharLMArguments,
    data_args: TextDataArguments,
    sampling_args: SamplingArguments,
    training_args: CharLMTrainingArguments,
    argv: list[str] | None = None,
) -> dict:
    """The whole pipeline; returns all_results (flat for one cell type, keyed by cell type under --compare)."""
    t0 = time.perf_counter()
    out = Path(training_args.output_dir)
    types = model_args.model_types
    run_dirs = [out / t for t in types] if model_args.compare else [out]
    check_output_dir(out, run_dirs, training_args, OUTPUTS)
    accelerator = make_accelerator(training_args)
    carried = StreamState()
    accelerator.register_for_checkpointing(carried)
    need = training_args.per_device_train_batch_size * accelerator.num_processes * (model_args.seq_len + 1)
    with accelerator.main_process_first():
        data = prepare_text(data_args, need)
    accelerator.print(f"data: {data.source}: {data.train_chars:,} train / {data.val_chars:,} validation characters, vocabulary {len(data.tokenizer)}")
    if data.unknown_in_validation:
        logger.warning("%d validation characters are not in the training vocabulary (scored as %s)", data.unknown_in_validation, UNK_TOKEN)
    out.mkdir(parents=True, exist_ok=True)
    config = run_config(
        TASK, argv, {"model_args": model_args, "data_args": data_args, "sampling_args": sampling_args, "training_args": training_args}, accelerator,
        data={
            "source": data.source,
            "train_chars": data.train_chars,
            "validation_chars": data.val_chars,
            "split": f"contiguous: first {100 - data_args.validation_split_percentage:g}% train, last {data_args.validation_split_percentage:g}% validation",
            "vocab_size": len(data.tokenizer),
            "unknown_in_validation": data.unknown_in_validation,
            "fingerprint": data.fingerprint,
        },
        offline_assets=[CORPORA[data_args.corpus].provenance()] if data_args.corpus else [],
    )  # fmt: skip
    write_json(out / RUN_CONFIG, config, accelerator.is_main_process)

    def train_one(cell_type: str, folder: Path, args: CharLMTrainingArguments) -> dict:
        return run_one(cell_type, folder, model_args, sampling_args, args, accelerator, data, carried)

    all_results = run_variants(types, run_dirs, training_args, train_one, accelerator.print)
    results = all_results if model_args.compare else all_results[types[0]]
    if accelerator.is_main_process:
        config["wall_seconds"] = time.perf_counter() - t0
        write_json(out / RUN_CONFIG, config)
        write_json(out / ALL_RESULTS, results)
        if model_args.compare:
            table = write_comparison(all_results, out, data, title=f"{' vs '.join(types)} on {data.source}", budget=training_args.time_budget_minutes)
            accelerator.print(table)
        write_cards(out, accelerator)
    accelerator.free_memory()
    return results
