"""The char-LM card (`model_cards/char_lm.md`) and the repos of a train_char_lm run: one transformers
folder per cell type (model code, tokenizer, samples), every evaluation result in `model-index`."""

from __future__ import annotations

import json
import os
from pathlib import Path

from hfdl.assets import CORPORA
from hfdl.hub.cards import eval_results, hardware, markdown_table, provenance, render_card, schedule, versions_table
from hfdl.hub.registry import RepoPlan, finished_run, model_repo_files, pick, register, repo_ids, write_cards

TASK = "char-lm"
__all__ = ["char_lm_card", "plans", "write_cards"]

METRICS = {
    "eval_loss": ("loss", "Cross-entropy (nats/char)"),
    "eval_bpc": ("bits_per_character", "Bits per character"),
    "eval_perplexity": ("perplexity", "Perplexity"),
    "best_eval_bpc": ("best_bits_per_character", "Best bits per character"),
}
CELL_NAMES = {"rnn": "vanilla RNN (tanh)", "lstm": "LSTM", "gru": "GRU"}


def plans(out: Path, hub_model_id: str | None, only: list[str] | None = None) -> dict[str, RepoPlan]:
    """One repo per cell type (`<id>-<type>` under --compare), each a transformers folder."""
    all_results, rc = finished_run(out)
    compared = bool(rc["model_args"].get("compare"))
    per_type = all_results if compared else {all_results["model_type"]: all_results}
    types = pick(list(per_type), only, "cell type", out)
    folders = {t: out / t if compared else out for t in types}
    ids = repo_ids(hub_model_id, folders)
    result = {}
    for t, folder in folders.items():
        files = model_repo_files(out, folder, t, ("config.json", "model.safetensors", "tokenizer.json"))
        r = per_type[t]
        result[t] = RepoPlan(
            ids[t],
            files,
            char_lm_card(out, folder, t, r, rc, ids[t]),
            f"hfdl train_char_lm: {t}, validation {r['eval_bpc']:.4f} bits/char",
            f"Uploaded by hfdl from {out.name}: weights, model code, tokenizer, samples, results, card.",
        )
    return result


def dataset_ref(data_args: dict, data: dict) -> dict:
    """How the card names the text: an offline corpus, a Hub dataset or a local file."""
    if data_args.get("corpus"):
        a = CORPORA[data_args["corpus"]]
        return {"type": f"hfdl-offline/{a.name}", "name": f"{a.name}: {a.description.split(' (')[0]}", "hub": None, "about": f"{a.origin}: {a.description}."}
    name = data_args.get("dataset_name")
    if name and not os.path.exists(name):
        about = f"The Hub dataset [{name}](https://huggingface.co/datasets/{name}), text column `{data_args.get('text_column') or 'text'}`."
        return {"type": name, "name": name, "hub": name, "about": about}
    src = Path(data_args.get("train_file") or name or "text").name
    return {"type": "text", "name": src, "hub": None, "about": f"A local UTF-8 text file `{src}` ({data['source']})."}


def _metric_rows(r: dict) -> list[dict]:
    return [
        {"metric": "bits per character", "value": round(r["eval_bpc"], 4)},
        {"metric": "cross-entropy (nats/char)", "value": round(r["eval_loss"], 4)},
        {"metric": "perplexity (per character)", "value": round(r["eval_perplexity"], 3)},
        {"metric": "best bits per character during training", "value": round(r["best_eval_bpc"], 4)},
        {"metric": "parameters", "value": f"{r['num_params']:,}"},
        {"metric": "training throughput (chars/s)", "value": f"{r['train_chars_per_second']:,.0f}"},
        {"metric": "generation speed (chars/s, batch 1)", "value": f"{r['generation_chars_per_second']:,.0f}"},
    ]


def _comparison(out: Path, compared: bool) -> str | None:
    """The run's comparison table and verdict (comparison.md without its title and samples)."""
    if not compared or not (out / "comparison.md").is_file():
        return None
    text = (out / "comparison.md").read_text(encoding="utf-8")
    body = text.split("\n", 1)[1] if text.startswith("# ") else text
    return body.split("## Samples")[0].strip()


def _samples(folder: Path, r: dict, sampling: dict) -> list[dict]:
    samples_file = folder / "samples.json"
    finals = json.loads(samples_file.read_text(encoding="utf-8")).get("final", []) if samples_file.is_file() else []
    samples = [{"prompt_repr": repr(x["prompt"])[1:-1], "temperature": x["temperature"], "text": x["text"].strip("\n")[:500]} for x in finals[:3]]
    return samples or [{"prompt_repr": repr(sampling["sample_prompt"])[1:-1], "temperature": sampling["temperature"], "text": r["sample"].strip("\n")[:500]}]


def _hyperparameters(cell: str, layers: int, hidden: int, m: dict, t: dict) -> dict:
    return {
        "cell": CELL_NAMES.get(cell, cell), "layers": layers, "hidden size": hidden, "embedding dim": m["embedding_dim"], "dropout": m["dropout"],
        "tied embeddings": m["tie_weights"], "BPTT length": m["seq_len"], "parallel streams (batch)": t["per_device_train_batch_size"],
        "learning rate": t["learning_rate"], "weight decay": t["weight_decay"], "optimizer": "AdamW",
        "schedule": schedule(t), "max grad norm": t["max_grad_norm"],
        "epochs (planned)": t["num_train_epochs"] or ("until the time budget" if t.get("time_budget_minutes") else "task default"),
        "max steps": m.get("max_steps") or t.get("max_train_steps"), "time budget (min)": t.get("time_budget_minutes"),
    }  # fmt: skip


def _how_to_use(repo_id: str, sampling: dict) -> tuple[str, str]:
    """(plain transformers snippet, hfdl snippet), loading `repo_id` (a Hub id or the local folder)."""
    prompt = sampling.get("sample_prompt") or "The "
    code = (
        "from transformers import AutoModelForCausalLM, AutoTokenizer\n\n"
        f'tokenizer = AutoTokenizer.from_pretrained("{repo_id}", trust_remote_code=True)  # a plain char tokenizer; the flag only silences the prompt\n'
        f'model = AutoModelForCausalLM.from_pretrained("{repo_id}", trust_remote_code=True).eval()\n'
        f'ids = tokenizer({prompt!r}, return_tensors="pt", add_special_tokens=False)["input_ids"]\n'
        f"out = model.generate(ids, max_new_tokens=200, do_sample=True, temperature={sampling['temperature'] or 0.8}, top_k={sampling.get('top_k') or 0})\n"
        "print(tokenizer.decode(out[0]))"
    )
    hfdl_code = (
        "from hfdl.tasks.char_lm.model import load_char_lm\n\n"
        f'generator = load_char_lm("{repo_id}")\n'
        f"print(generator.generate({prompt!r}, 200, temperature={sampling['temperature']}, seed=0))"
    )
    return code, hfdl_code


def _limitations(r: dict, env: dict, vocab_size: int) -> list[str]:
    return [
        "It predicts one character at a time from what it saw in training: the text it writes imitates the spelling, punctuation and "
        "style of the corpus, but it has no knowledge and states nothing reliably.",
        f"A small baseline ({r['num_params']:,} parameters, {r['train_seconds'] / 60:.1f} min of training on {env.get('cpu_count', '?')} CPU cores"
        f"{' and a GPU' if env.get('cuda') else ''}); larger models and longer training write far more coherent text.",
        f"Characters outside its {vocab_size}-symbol vocabulary become `<unk>` (hfdl warns when a prompt has them).",
        "It reproduces the biases and the language of its training text (for the offline corpora: 19th-century novels or the 1611 Bible).",
    ]


def char_lm_card(out: Path, folder: Path, cell: str, r: dict, rc: dict, repo_id: str):
    """Render the card of one cell type's model folder."""
    from huggingface_hub import ModelCardData

    m, s, t, env, data = rc["model_args"], rc["sampling_args"], rc["training_args"], rc["environment"], rc["data"]
    cfg = json.loads((folder / "config.json").read_text())
    ds = dataset_ref(rc["data_args"], data)
    layers, hidden = cfg.get("num_layers", m["num_layers"]), cfg.get("hidden_size", m["hidden_size"])
    arch = f"{layers}-layer {CELL_NAMES.get(cell, cell)}, {hidden} units, {cfg.get('embedding_dim', m['embedding_dim'])}-dim character embeddings"
    card_data = ModelCardData(
        model_name=Path(repo_id).name,
        library_name="transformers",
        license="apache-2.0",
        datasets=[ds["hub"]] if ds["hub"] else None,
        tags=["text-generation", "character-level", cell, "rnn", "hfdl", "custom_code"],
        pipeline_tag="text-generation",
        metrics=["perplexity", "bits_per_character"],
        eval_results=eval_results(
            r, task_type="text-generation", dataset_type=ds["type"], dataset_name=ds["name"],
            dataset_split="validation", dataset_revision=data.get("fingerprint"), names=METRICS,
        ),
    )  # fmt: skip
    code, hfdl_code = _how_to_use(repo_id, s)
    return render_card(
        "char_lm",
        card_data,
        model_name=Path(repo_id).name,
        summary=(
            f"A character-level language model: {arch} ({r['num_params']:,} parameters), trained with hfdl's `train_char_lm.py` on {ds['name']}. "
            f"Validation: **{r['eval_bpc']:.4f} bits per character** ({r['eval_loss']:.4f} nats/char, perplexity {r['eval_perplexity']:.3f})."
        ),
        validation_chars=f"{data['validation_chars']:,}",
        split=data["split"],
        metrics_table=markdown_table(_metric_rows(r)),
        comparison=_comparison(out, bool(m.get("compare"))),
        seed=t["seed"],
        top_k=s.get("top_k") or "off",
        top_p=s.get("top_p") or "off",
        samples=_samples(folder, r, s),
        data_description=ds["about"],
        train_chars=f"{data['train_chars']:,}",
        vocab_size=data["vocab_size"],
        streams=t["per_device_train_batch_size"],
        seq_len=m["seq_len"],
        command=rc["command"],
        hyperparameters_table=markdown_table([{"hyperparameter": k, "value": v} for k, v in _hyperparameters(cell, layers, hidden, m, t).items()]),
        hardware=hardware(env),
        train_time=f"{r['train_seconds']:.0f} s",
        steps=r["completed_steps"],
        chars_trained=f"{r['chars_trained']:,}",
        epochs=f"{r['epochs']:.2f}",
        budget_note=", stopped by the time budget" if r.get("stopped_by_time_budget") else "",
        versions_table=versions_table(env),
        how_to_use_code=code,
        hfdl_code=hfdl_code,
        limitations=_limitations(r, env, data["vocab_size"]),
        provenance=provenance(rc.get("offline_assets", [])) + "\n\nThe model weights are released under apache-2.0.",
    )  # fmt: skip


register(TASK, plans)
