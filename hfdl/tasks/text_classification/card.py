"""The text-classification card (`model_cards/text_classification.md`) and the repos of a train_text_classifier run:
one transformers folder per model (code, tokenizer, label names), validation and test results in `model-index`."""

from __future__ import annotations

import json
import os
from pathlib import Path

from hfdl.assets.corpora import CORPORA
from hfdl.hub.cards import eval_results, markdown_table, provenance, render_card, schedule, training_procedure
from hfdl.hub.registry import RepoPlan, finished_run, model_repo_files, pick, register, repo_ids, write_cards

TASK = "text-classification"
__all__ = ["plans", "text_classifier_card", "write_cards"]

CELL_NAMES = {"rnn": "vanilla RNN (tanh)", "lstm": "LSTM", "gru": "GRU"}
# model-index names of the split-prefixed results (eval_* is the validation split, test_* the test split)
METRICS = {
    "accuracy": ("accuracy", "Accuracy"),
    "f1_macro": ("f1", "Macro F1"),
    "top5": ("top_5_accuracy", "Top-5 accuracy"),
    "loss": ("loss", "Cross-entropy loss"),
}
REQUIRED = ("config.json", "model.safetensors", "tokenizer.json", "text_rnn.py")


def plans(out: Path, hub_model_id: str | None, only: list[str] | None = None) -> dict[str, RepoPlan]:
    """One repo per model (`<id>-<model>` when several were compared), each a transformers folder."""
    all_results, rc = finished_run(out)
    compared = "model_type" not in all_results
    per_model = all_results if compared else {all_results["model_type"]: all_results}
    names = pick(list(per_model), only, "model", out)
    folders = {n: out / n if compared else out for n in names}
    ids = repo_ids(hub_model_id, folders)
    result = {}
    for name, folder in folders.items():
        r = per_model[name]
        split, score = ("test", r["test_accuracy"]) if "test_accuracy" in r else ("validation", r["eval_accuracy"])
        result[name] = RepoPlan(
            ids[name],
            model_repo_files(out, folder, name, REQUIRED),
            text_classifier_card(out, name, r, rc, ids[name], compared),
            f"hfdl train_text_classifier: {name}, {split} accuracy {score:.4f}",
            f"Uploaded by hfdl from {out.name}: weights, model code, tokenizer, results, card.",
        )
    return result


def dataset_ref(rc: dict) -> dict:
    """How the card names the texts: the offline Austen passages, a Hub dataset or local files."""
    d, data = rc["data_args"], rc["data"]
    if d.get("offline_default"):
        a = CORPORA["austen"]
        about = (
            f"Passages of {d['sentences_per_passage']} consecutive sentences from Jane Austen's six novels, labelled with their novel, "
            f"split {data['split']}, so no chapter is in two splits. From {a.origin} ({a.license}). The editions' transcription marks "
            "(`_italics_`, double spaces, 'Mr' without a full stop) are removed so that they do not give the novel away."
        )
        return {"type": "hfdl-offline/austen-passages", "name": "Jane Austen passages (which novel?)", "hub": None, "about": about}
    name = d.get("dataset_name")
    if name and not os.path.exists(name):
        about = f"The Hub dataset [{name}](https://huggingface.co/datasets/{name}), text column `{d['text_column']}`, label column `{d['label_column']}`."
        return {"type": name, "name": name, "hub": name, "about": about, "config": d.get("dataset_config_name")}
    files = [Path(f).name for f in (d.get("train_file"), d.get("validation_file"), d.get("test_file"), name) if f]
    about = f"Local data ({', '.join(f'`{f}`' for f in files)}), text column `{d['text_column']}`, label column `{d['label_column']}`."
    return {"type": "csv" if files and files[0].endswith(".csv") else "json", "name": files[0] if files else "local", "hub": None, "about": about}


def _split_results(r: dict, ds: dict, revision: str | None) -> list:
    """model-index: the validation results (`eval_*`) and, when there is a test split, the test results (`test_*`)."""
    out = []
    for prefix, split in (("eval_", "validation"), ("test_", "test")):
        metrics = {k: v for k, v in r.items() if k.startswith(prefix) and k[len(prefix) :] in METRICS}
        names = {k: METRICS[k[len(prefix) :]] for k in metrics}
        out += eval_results(
            metrics, task_type="text-classification", dataset_type=ds["type"], dataset_name=ds["name"], dataset_split=split,
            dataset_revision=revision, dataset_config=ds.get("config"), names=names,
        )  # fmt: skip
    return out


def _metric_rows(r: dict) -> list[dict]:
    rows = []
    for metric, key in (("accuracy", "accuracy"), ("macro-F1", "f1_macro"), ("top-5 accuracy", "top5"), ("cross-entropy", "loss")):
        if f"eval_{key}" in r:
            rows.append({"metric": metric, "validation": round(r[f"eval_{key}"], 4), "test": round(r[f"test_{key}"], 4) if f"test_{key}" in r else "-"})
    return rows


def _comparison(out: Path, compared: bool) -> str | None:
    """The run's comparison table and verdict (comparison.md without its title)."""
    if not compared or not (out / "comparison.md").is_file():
        return None
    text = (out / "comparison.md").read_text(encoding="utf-8")
    return (text.split("\n", 1)[1] if text.startswith("# ") else text).strip()


def _architecture(cfg: dict) -> str:
    direction = "bidirectional " if cfg["bidirectional"] else ""
    layers = f"{cfg['num_layers']}-layer " if cfg["num_layers"] > 1 else ""
    return (
        f"{layers}{direction}{CELL_NAMES[cfg['cell_type']]}, {cfg['hidden_size']} units per direction over {cfg['embedding_dim']}-dim token embeddings, "
        f"{cfg['pooling']} pooling over the real (unpadded) positions, then a linear layer"
    )


def _hyperparameters(m: dict, t: dict, r: dict) -> dict:
    return {
        "tokenizer": f"{m['tokenizer']}-level (`tokenizers` WordLevel, trained on the training split)", "lowercase": m["lowercase"],
        "vocabulary": r["vocab_size"], "min token frequency": m["min_frequency"], "tokens kept per text": m["max_length"] or ("256" if m["tokenizer"] == "word" else "1024"),
        "dropout": m["dropout"], "recurrent dropout (per sequence)": m["recurrent_dropout"],
        "batch size (per device, length-bucketed)": t["per_device_train_batch_size"], "learning rate": t["learning_rate"], "optimizer": "AdamW",
        "weight decay (not on biases)": t["weight_decay"], "schedule": schedule(t), "max grad norm": t["max_grad_norm"],
        "epochs": f"{r['epochs']:.2f}", "time budget (min)": t.get("time_budget_minutes"),
    }  # fmt: skip


def _how_to_use(repo_id: str, example: str) -> tuple[str, str]:
    """(plain transformers snippet, hfdl snippet) loading `repo_id` (a Hub id or the local folder)."""
    code = (
        "from transformers import pipeline\n\n"
        f'classifier = pipeline("text-classification", model="{repo_id}", trust_remote_code=True)\n'
        f"top = classifier({example!r}, truncation=True)[0]\n"
        "print(f\"{top['label']}: {top['score']:.3f}\")"
    )
    hfdl_code = (
        "from hfdl.tasks.text_classification.model import load_text_classifier\n\n"
        f'classifier = load_text_classifier("{repo_id}")\n'
        f"print(classifier.predict([{example!r}]))"
    )
    return code, hfdl_code


def _limitations(r: dict, data: dict, offline: bool) -> list[str]:
    items = [
        f"It knows only its {len(data['label_names'])} labels and the {data['vocab_size']:,}-token vocabulary of its training texts; "
        "other words become `[UNK]`, and every text gets one of the labels, however far from the training data it is.",
        f"A small model ({r['num_params']:,} parameters, {r['train_seconds'] / 60:.1f} min of training): a pretrained transformer "
        "fine-tuned on the same data is far stronger; this one shows what a recurrent network learns from the training texts alone.",
    ]
    if offline:
        items.append(
            "Austen's novels are told by characters with their own names: much of the signal is who appears (Elinor, Darcy, Fanny, Emma, "
            "Catherine, Anne). A passage without names is much harder, and a text by another author is still assigned one of the six novels."
        )
    return items


def text_classifier_card(out: Path, name: str, r: dict, rc: dict, repo_id: str, compared: bool):
    """Render the card of one model folder of a finished run."""
    from huggingface_hub import ModelCardData

    m, t, data = rc["model_args"], rc["training_args"], rc["data"]
    folder = out / name if compared else out
    cfg = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    ds = dataset_ref(rc)
    card_data = ModelCardData(
        model_name=Path(repo_id).name,
        library_name="transformers",
        license="apache-2.0",
        datasets=[ds["hub"]] if ds["hub"] else None,
        tags=["text-classification", cfg["cell_type"], "bidirectional" if cfg["bidirectional"] else "unidirectional", "rnn", "hfdl", "custom_code"],
        pipeline_tag="text-classification",
        metrics=["accuracy", "f1"],
        eval_results=_split_results(r, ds, data.get("fingerprint")),
    )
    code, hfdl_code = _how_to_use(repo_id, data["example_text"])
    reported = "test" if "test_accuracy" in r else "validation"
    prefix = "test" if reported == "test" else "eval"
    return render_card(
        "text_classification",
        card_data,
        model_name=Path(repo_id).name,
        summary=(
            f"A text classifier: {_architecture(cfg)} ({r['num_params']:,} parameters), trained from scratch with hfdl's "
            f"`train_text_classifier.py` on {ds['name']}. {reported.capitalize()} split: **accuracy {r[f'{prefix}_accuracy']:.4f}, "
            f"macro-F1 {r[f'{prefix}_f1_macro']:.4f}**."
        ),
        label_list=", ".join(f"`{n}`" for n in data["label_names"]),
        num_labels=len(data["label_names"]),
        sizes=", ".join(f"{n:,} {split}" for split, n in data["sizes"].items()),
        metrics_table=markdown_table(_metric_rows(r)),
        comparison=_comparison(out, compared),
        data_description=ds["about"],
        skipped=", ".join(f"{n} in {split}" for split, n in data["skipped_empty_texts"].items() if n) or "none",
        vocab_size=f"{data['vocab_size']:,}",
        mean_tokens=data["mean_train_tokens"],
        **training_procedure(rc, r, _hyperparameters(m, t, r), f"{r['train_samples_per_second']:,.0f} texts/s"),
        how_to_use_code=code,
        hfdl_code=hfdl_code,
        limitations=_limitations(r, data, bool(rc["data_args"].get("offline_default"))),
        provenance=provenance(rc.get("offline_assets", [])) + "\n\nThe model weights are released under apache-2.0.",
    )


register(TASK, plans)
