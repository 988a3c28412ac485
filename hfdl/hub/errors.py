"""Every Hub failure as a one-line `HfdlError` that names the problem and the fix."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from hfdl.errors import HfdlError

logger = logging.getLogger(__name__)

PULL_COMMAND = "python scripts/pull.py"


def endpoint() -> str:
    from huggingface_hub import constants

    return constants.ENDPOINT


def first_line(err: BaseException, limit: int = 160) -> str:
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
    from huggingface_hub import errors as hub_errors_module

    again = f"; retry with `{retry}`" if retry else ""
    try:
        yield
    except HfdlError:
        raise
    except hub_errors_module.OfflineModeIsEnabled as err:
        if action == "push":
            raise HfdlError(f"cannot push {repo_id}: HF_HUB_OFFLINE=1 is set; unset it (with network access){again}") from err
        raise HfdlError(f"{repo_id} is not in the local Hub cache and HF_HUB_OFFLINE=1: prefetch it online with `{PULL_COMMAND} {repo_id}`") from err
    except hub_errors_module.LocalEntryNotFoundError as err:
        raise HfdlError(f"{repo_id} is not in the local Hub cache and the Hub is unreachable: prefetch it online with `{PULL_COMMAND} {repo_id}`") from err
    except hub_errors_module.HfHubHTTPError as err:
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
        if isinstance(err, hub_errors_module.RepositoryNotFoundError) or status in (401, 404):
            raise HfdlError(f"{repo_id} was not found on {endpoint()} ({status}): check the id, or log in for a private repo (`hf auth login`)") from err
        if isinstance(err, hub_errors_module.RevisionNotFoundError):
            raise HfdlError(f"{repo_id} has no such revision ({status}): check --revision (a branch, tag or commit)") from err
        raise HfdlError(f"the Hub answered {status} while trying to {action} {repo_id}{server}: try again later{again}") from err
    except (hub_errors_module.HTTPError, OSError) as err:
        if isinstance(err, (FileNotFoundError, PermissionError, IsADirectoryError)):
            raise
        raise HfdlError(f"cannot reach the Hub at {endpoint()} ({type(err).__name__}): check the network or HF_ENDPOINT{again}") from err
