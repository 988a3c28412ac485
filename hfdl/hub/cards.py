"""Model cards: `ModelCard.from_template` over `model_cards/<task>.md`, `model-index` evaluation results,
and the pieces every task's card shares (tables, hardware, library versions, offline-asset provenance)."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path

from hfdl import assets
from hfdl.errors import HfdlError

logger = logging.getLogger(__name__)

PLACEHOLDERS = ("More Information Needed", "More information needed", "{{", "}}", "{%", "TODO", "TBD", "[optional]", "<fill")


def cards_dir() -> Path:
    """The Jinja templates: `model_cards/` at the repo root (source tree, editable install), or its copy
    `hfdl/model_cards/` inside an installed wheel."""
    package = Path(__file__).resolve().parent.parent
    for candidate in (package / "model_cards", package.parent / "model_cards"):
        if candidate.is_dir():
            return candidate
    raise HfdlError(f"no model_cards/ folder next to {package}: reinstall hfdl (the templates ship in the wheel)")


def render_card(template: str, card_data, **context):
    """`ModelCard.from_template` with `model_cards/<template>.md`; refuses any placeholder left in the text."""
    from huggingface_hub import ModelCard

    path = cards_dir() / f"{template}.md"
    if not path.is_file():
        raise HfdlError(f"no model card template {path}: add model_cards/{template}.md")
    card = ModelCard.from_template(card_data, template_path=str(path), **context)
    left = [p for p in PLACEHOLDERS if p in card.text]
    if left:
        raise HfdlError(f"model card '{template}' still holds placeholder text {left}: fill the template's context")
    return card


# Standard `model-index` metric types of the evaluation keys every task may report; a task passes its own
# (bits per character, top-5, ...) as `names`.
METRIC_NAMES = {
    "eval_accuracy": ("accuracy", "Accuracy"),
    "eval_f1_macro": ("f1", "Macro F1"),
    "eval_loss": ("loss", "Loss"),
}


def eval_results(
    metrics: Mapping[str, object],
    *,
    task_type: str,
    dataset_type: str,
    dataset_name: str,
    dataset_split: str | None = None,
    dataset_revision: str | None = None,
    dataset_config: str | None = None,
    names: Mapping[str, tuple[str, str]] | None = None,
) -> list:
    """One `EvalResult` per evaluation result: every numeric `eval_*` entry, plus the keys `names` lists.

    Costs (seconds, parameters, memory, epochs) are not evaluation results: they stay in the card's prose
    tables and in `all_results.json`. `names` gives (metric type, display name) per key, e.g. what a
    task's `eval_loss` is; other keys keep their key as type and name.
    """
    from huggingface_hub import EvalResult

    out = []
    for key, value in metrics.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not (key.startswith("eval_") or key in (names or {})):
            continue
        mtype, mname = {**METRIC_NAMES, **(names or {})}.get(key, (key, key))
        out.append(
            EvalResult(
                task_type=task_type,
                dataset_type=dataset_type,
                dataset_name=dataset_name,
                dataset_split=dataset_split,
                dataset_revision=dataset_revision,
                dataset_config=dataset_config,
                metric_type=mtype,
                metric_name=mname,
                metric_value=value,
            )
        )
    return out


def indefinite_article(phrase: str) -> str:
    """ "a" or "an" for the start of a card's sentence: by the first letter's sound, acronyms read letter by letter
    ("an FPN", "an LR-ASPP", "a U-Net", "a DCGAN", "an autoencoder", "a variational autoencoder")."""
    word = phrase.split()[0] if phrase.split() else ""
    head = word.split("-")[0]
    if head.isupper():  # read letter by letter: F is "eff", L "ell", U "you"
        return "an" if head[0] in "AEFHILMNORSX" else "a"
    return "an" if word[:1] and word[:1].lower() in "aeio" else "a"  # not u: "a U-Net", "a UperNet", "a unit"


def markdown_table(rows: list[dict], columns: list[str] | None = None) -> str:
    """A small GitHub markdown table (cards are read on the Hub's web page)."""
    if not rows:
        return ""
    columns = columns or list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(_cell(r.get(c)) for c in columns) + " |")
    return "\n".join(lines)


def _cell(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v).replace("|", "\\|")


def hardware(env: dict) -> str:
    """`run_config.json`'s environment as one line: cores, device, platform."""
    dev = f"GPU {env['cuda']}" if env.get("cuda") else f"CPU only, {env.get('torch_threads', '?')} torch threads"
    return f"{env.get('cpu_count', '?')} CPU cores, {dev} ({env.get('platform', '?')})"


VERSIONED = ("python", "torch", "torchvision", "timm", "transformers", "tokenizers", "datasets", "accelerate", "huggingface_hub")


def versions_table(env: dict, keep: tuple[str, ...] = VERSIONED) -> str:
    return markdown_table([{"library": k, "version": v} for k, v in env.items() if k in keep])


def run_image_size(run_config: Mapping) -> int:
    """The size a dense predictor was evaluated at and runs at (`--eval_image_size`, FixRes); older runs: the training size."""
    return run_config.get("inference_image_size") or run_config["data_args"]["image_size"]


def image_sizes(run_config: Mapping) -> str:
    """A card's "image size": the training size, and the size the model evaluates and runs at where it differs."""
    train, run = run_config["data_args"]["image_size"], run_image_size(run_config)
    return f"{train} px" if run == train else f"{train} px in training, {run} px in evaluation and use (FixRes)"


def schedule(training_args: Mapping) -> str:
    """A card's line for the shared loop's schedule: the learning-rate schedule and its warmup, and the weights' EMA
    when one was kept (what the card's model then is)."""
    text = f"{training_args['lr_scheduler_type']}, warmup ratio {training_args['warmup_ratio']}"
    if training_args.get("time_budget_minutes"):
        text += f", its length fitted to a training budget of {training_args['time_budget_minutes']:g} minutes"
    if training_args.get("model_ema_decay"):
        text += f"; the model is the EMA of the weights (timm ModelEmaV3, decay warmed up to at most {training_args['model_ema_decay']})"
    return text


def training_procedure(run_config: dict, results: dict, hyperparameters: dict, throughput: str) -> dict:
    """The card context of the "Training procedure" section every task's template shares: the command, a
    hyperparameter table, seed, hardware, time, steps, throughput and library versions."""
    env = run_config["environment"]
    return {
        "command": run_config["command"],
        "hyperparameters_table": markdown_table([{"hyperparameter": k, "value": v} for k, v in hyperparameters.items()]),
        "seed": run_config["training_args"]["seed"],
        "hardware": hardware(env),
        "train_time": f"{results['train_seconds']:.0f} s",
        "steps": results["completed_steps"],
        "throughput": throughput,
        "versions_table": versions_table(env),
    }


def provenance(offline: list[dict]) -> str:
    """The card paragraph naming each offline asset a run used: where it came from and its license."""
    if not offline:
        return "No offline assets: weights and data came from the Hugging Face Hub or local files as named above."
    rows = [
        {"asset": a.get("name"), "from": a.get("package") or a.get("source") or ", ".join(a.get("debian_packages", [])),
         "origin": a.get("origin") or a.get("description"), "license": a.get("license"), "Hub equivalent": a.get("hub_equivalent")}
        for a in offline
    ]  # fmt: skip
    return "Offline assets used by this run (hfdl reads package-shipped files when there is no internet):\n\n" + markdown_table(rows)


def dataset_ref(run_config: dict) -> dict:
    """How the card names the training data: an offline asset, a Hub dataset or a local folder."""
    d = run_config["data_args"]
    name = d.get("dataset_name")
    if name in assets.DATASETS:
        a = assets.DATASETS[name]
        short = a.description.split(":")[0]
        if a.hub_id is None:  # no Hub copy of this data
            return {"type": name, "name": short, "title": short, "about": f"{a.description}; read offline from {a.source}", "hub": None}
        link = f"[{a.hub_equivalent}](https://huggingface.co/datasets/{a.hub_equivalent})"
        return {"type": a.hub_equivalent, "name": short, "title": f"{short} ({link})", "about": f"{a.description}; read offline from {a.source}", "hub": a.hub_equivalent}  # fmt: skip
    if name and not os.path.exists(name):
        link = f"[{name}](https://huggingface.co/datasets/{name})"
        return {"type": name, "name": name, "title": f"the Hub dataset {link}", "about": f"the Hub dataset {link}", "hub": name, "config": d.get("dataset_config_name")}  # fmt: skip
    folder = Path(name or d.get("train_dir") or "images").name
    return {"type": "imagefolder", "name": folder, "title": f"a local image folder `{folder}`", "about": f"a local image folder `{folder}`", "hub": None}
