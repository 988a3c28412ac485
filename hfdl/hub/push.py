"""Push staged files to a Hub repo in one commit, and pull repos for offline use.

The token comes from `HF_TOKEN` or the `hf auth login` cache through huggingface_hub; it is never printed,
logged or written. The local run folder is never modified by a push, failed or not.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

from hfdl.errors import HfdlError
from hfdl.hub.errors import PULL_COMMAND, first_line, hub_errors

logger = logging.getLogger(__name__)


# Never uploaded, whatever a caller stages: checkpoints, partial writes, caches, tracking logs.
IGNORE_PATTERNS = ["step_*", "step_*/**", "epoch_*", "epoch_*/**", "*.tmp", "**/*.tmp", "__pycache__/**", "runs/**", "logs/**", ".cache/**"]


def check_repo_id(repo_id: str) -> str:
    """Validate a model repo id (`user/name` or `name`) before any work is done."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as err:
        raise HfdlError(f"invalid Hub repo id '{repo_id}': use USER/NAME with letters, digits, '-', '_' or '.' ({first_line(err)})") from err
    return repo_id


def require_token() -> str:
    """The user's Hub token (environment or login cache), or a one-line error saying how to provide one."""
    from huggingface_hub import get_token

    token = get_token()
    if not token:
        raise HfdlError("no Hugging Face token found: run `hf auth login` (with a write token) or set HF_TOKEN, then push again")
    return token


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
