"""Publish finished runs to the Hugging Face Hub and pull them back; model cards with `model-index` metrics.

One module for every task. A task adds a Jinja template under `model_cards/` and a few lines that fill
its context; pushing, staging, error handling and `model-index` come from here:

    files = {"model.safetensors": run_dir / "model.safetensors", ...}   # what the repo holds
    card = render_card("image_classification", card_data, **context)    # model_cards/image_classification.md
    url = push_files(files, card, repo_id, commit_message="...")

The token comes from `HF_TOKEN` or the `hf auth login` cache through huggingface_hub; it is never printed,
logged or written. Every Hub failure becomes a one-line `HfdlError` that says what to do next; the local
run folder is never modified by a failed push.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from hfdl.errors import HfdlError

logger = logging.getLogger(__name__)

CARDS_DIR = Path(__file__).resolve().parent.parent / "model_cards"
# Never uploaded, whatever a caller stages: checkpoints, partial writes, caches, tracking logs.
IGNORE_PATTERNS = ["step_*", "step_*/**", "epoch_*", "epoch_*/**", "*.tmp", "**/*.tmp", "__pycache__/**", "runs/**", "logs/**", ".cache/**"]
# Text that marks an unfinished card: a rendered card must contain none of it.
PLACEHOLDERS = ("More Information Needed", "More information needed", "{{", "}}", "{%", "TODO", "TBD", "[optional]", "<fill")
PULL_COMMAND = "python scripts/pull.py"


@dataclass
class HubArguments:
    push_to_hub: bool = field(default=False, metadata={"help": "Publish the finished run to the Hugging Face Hub (token from HF_TOKEN or `hf auth login`)."})
    hub_model_id: str | None = field(
        default=None, metadata={"help": "Repo id USER/NAME (NAME alone: your namespace). Several strategies: one repo each, NAME-<strategy>."}
    )
    hub_private: bool = field(default=False, metadata={"help": "Create the repo private."})
    hub_revision: str | None = field(default=None, metadata={"help": "Branch to push to (created from main when missing); default main."})

    def __post_init__(self):
        if self.push_to_hub and not self.hub_model_id:
            raise HfdlError("--push_to_hub needs --hub_model_id USER/NAME (the repo to create or update)")
        if self.hub_model_id:
            check_repo_id(self.hub_model_id)


def check_repo_id(repo_id: str) -> str:
    """Validate a model repo id (`user/name` or `name`) before any work is done."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as err:
        raise HfdlError(f"invalid Hub repo id '{repo_id}': use USER/NAME with letters, digits, '-', '_' or '.' ({_first_line(err)})") from err
    return repo_id


def require_token() -> str:
    """The user's Hub token (environment or login cache), or a one-line error saying how to provide one."""
    from huggingface_hub import get_token

    token = get_token()
    if not token:
        raise HfdlError("no Hugging Face token found: run `hf auth login` (with a write token) or set HF_TOKEN, then push again")
    return token


def endpoint() -> str:
    from huggingface_hub import constants

    return constants.ENDPOINT


def _first_line(err: BaseException, limit: int = 160) -> str:
    text = (str(err).strip().splitlines() or [type(err).__name__])[0]
    return text[:limit]


def _server_message(err: BaseException) -> str:
    msg = getattr(err, "server_message", None) or ""
    msg = " ".join(msg.split())[:160]
    return f": {msg}" if msg else ""


@contextmanager
def hub_errors(repo_id: str, action: str, retry: str | None = None) -> Iterator[None]:
    """Turn huggingface_hub / HTTP failures into one-line `HfdlError`s naming the problem and the fix.

    `action` is "push", "pull" or "load"; `retry` is the command that repeats the action.
    """
    from huggingface_hub import errors as E

    again = f"; retry with `{retry}`" if retry else ""
    try:
        yield
    except HfdlError:
        raise
    except E.OfflineModeIsEnabled as err:
        if action == "push":
            raise HfdlError(f"cannot push {repo_id}: HF_HUB_OFFLINE=1 is set; unset it (with network access){again}") from err
        raise HfdlError(f"{repo_id} is not in the local Hub cache and HF_HUB_OFFLINE=1: prefetch it online with `{PULL_COMMAND} {repo_id}`") from err
    except E.LocalEntryNotFoundError as err:
        raise HfdlError(f"{repo_id} is not in the local Hub cache and the Hub is unreachable: prefetch it online with `{PULL_COMMAND} {repo_id}`") from err
    except E.HfHubHTTPError as err:
        status = err.response.status_code if getattr(err, "response", None) is not None else None
        server = _server_message(err)
        if status == 401 and action == "push":
            raise HfdlError(f"the Hub rejected the token (401){server}: run `hf auth login` with a write token or set HF_TOKEN{again}") from err
        if status == 403:
            raise HfdlError(
                f"no write access to {repo_id} (403){server}: push under your own namespace or an organisation you can write to{again}"
                if action == "push"
                else f"access to {repo_id} denied (403){server}: accept its terms on the Hub or log in with `hf auth login`"
            ) from err
        if isinstance(err, E.RepositoryNotFoundError) or status in (401, 404):
            raise HfdlError(f"{repo_id} was not found on {endpoint()} ({status}): check the id, or log in for a private repo (`hf auth login`)") from err
        if isinstance(err, E.RevisionNotFoundError):
            raise HfdlError(f"{repo_id} has no such revision ({status}): check --revision (a branch, tag or commit)") from err
        raise HfdlError(f"the Hub answered {status} while trying to {action} {repo_id}{server}: try again later{again}") from err
    except (E.HTTPError, OSError) as err:
        if isinstance(err, (FileNotFoundError, PermissionError, IsADirectoryError)):
            raise
        raise HfdlError(f"cannot reach the Hub at {endpoint()} ({type(err).__name__}): check the network or HF_ENDPOINT{again}") from err


# --------------------------------------------------------------------------------------------------
# Model cards
# --------------------------------------------------------------------------------------------------


def render_card(template: str, card_data, **context):
    """`ModelCard.from_template` with `model_cards/<template>.md`; refuses any placeholder left in the text."""
    from huggingface_hub import ModelCard

    path = CARDS_DIR / f"{template}.md"
    if not path.is_file():
        raise HfdlError(f"no model card template {path}: add model_cards/{template}.md")
    card = ModelCard.from_template(card_data, template_path=str(path), **context)
    left = [p for p in PLACEHOLDERS if p in card.text]
    if left:
        raise HfdlError(f"model card '{template}' still holds placeholder text {left}: fill the template's context")
    return card


METRIC_NAMES = {
    "eval_accuracy": ("accuracy", "Accuracy"),
    "eval_f1_macro": ("f1", "Macro F1"),
    "eval_top5": ("top_5_accuracy", "Top-5 accuracy"),
    "eval_loss": ("loss", "Loss"),
    "eval_bpc": ("bits_per_character", "Bits per character"),
    "eval_perplexity": ("perplexity", "Perplexity"),
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
    """One `EvalResult` per numeric entry of a task's results (all of them: the card hides nothing).

    Known evaluation keys get their standard metric type (accuracy, f1, ...); the others (timings, sizes)
    keep their key as type and name so `model-index` mirrors `all_results.json` one to one. `names`
    overrides (type, display name) per key, e.g. what a task's `eval_loss` is.
    """
    from huggingface_hub import EvalResult

    out = []
    for key, value in metrics.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
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


# --------------------------------------------------------------------------------------------------
# Push and pull
# --------------------------------------------------------------------------------------------------


def stage(files: Mapping[str, Path], card=None) -> tempfile.TemporaryDirectory:
    """A temporary folder holding exactly `files` (repo path -> local file; hard links when possible) and
    the card as README.md. The run folder itself is never touched."""
    tmp = tempfile.TemporaryDirectory(prefix="hfdl-push-")
    root = Path(tmp.name)
    for rel, src in files.items():
        src = Path(src)
        if not src.is_file():
            tmp.cleanup()
            raise HfdlError(f"cannot publish: {src} is missing; is the run finished? (train it again or pass the run's output folder)")
        dst = root / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)
    if card is not None:
        card.save(str(root / "README.md"))
    return tmp


def push_files(
    files: Mapping[str, Path],
    card,
    repo_id: str,
    *,
    commit_message: str,
    commit_description: str | None = None,
    private: bool = False,
    revision: str | None = None,
    retry: str | None = None,
    repo_type: str = "model",
    space_sdk: str | None = None,
) -> str:
    """Create the repo if needed (`exist_ok`), the branch if `revision` is new, and upload the staged
    files plus the card in one commit. Returns the commit URL."""
    from huggingface_hub import HfApi

    check_repo_id(repo_id)
    token = require_token()
    tmp = stage(files, card)
    try:
        with hub_errors(repo_id, "push", retry):
            api = HfApi(token=token)
            repo_id = api.create_repo(repo_id, private=private, exist_ok=True, repo_type=repo_type, space_sdk=space_sdk).repo_id
            if revision and revision != "main":
                api.create_branch(repo_id, branch=revision, exist_ok=True, repo_type=repo_type)
            info = api.upload_folder(
                folder_path=tmp.name,
                repo_id=repo_id,
                repo_type=repo_type,
                revision=revision,
                commit_message=commit_message,
                commit_description=commit_description,
                ignore_patterns=list(IGNORE_PATTERNS),  # upload_folder extends the list it is given
            )
    finally:
        tmp.cleanup()
    logger.info("pushed %s: %s", repo_id, info.commit_url)
    return info.commit_url


def pull(repo_id: str, revision: str | None = None, repo_type: str = "model", local_dir: str | None = None) -> Path:
    """`snapshot_download` for offline use later (the HF cache, or `local_dir`); honours HF_HUB_OFFLINE."""
    from huggingface_hub import snapshot_download

    check_repo_id(repo_id.removeprefix("hf-hub:"))
    repo_id = repo_id.removeprefix("hf-hub:")
    with hub_errors(repo_id, "pull", retry=f"{PULL_COMMAND} {repo_id}"):
        return Path(snapshot_download(repo_id, revision=revision, repo_type=repo_type, local_dir=local_dir))


def slug(text: str) -> str:
    """A repo-name-safe version of a label (strategy names, model types)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")


def strategy_repo_ids(hub_model_id: str, strategies: list[str]) -> dict[str, str]:
    """One repo per strategy: the id itself for one strategy, `<id>-<strategy>` for several."""
    if len(strategies) == 1:
        return {strategies[0]: hub_model_id}
    return {s: f"{hub_model_id}-{slug(s)}" for s in strategies}
