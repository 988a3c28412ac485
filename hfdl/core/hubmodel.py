"""`PyTorchModelHubMixin` as hfdl's own modules use it: loaded strictly, in eval mode, with one-line errors."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import ClassVar

from huggingface_hub import PyTorchModelHubMixin

from hfdl.errors import HfdlError


class StrictHubMixin(PyTorchModelHubMixin):
    """Save as `model.safetensors` + `config.json` (the mixin); load strictly (the mixin's default is not).

    A subclass names what it is (`load_what`) and what to pass instead (`load_hint`) for the one-line error.
    """

    load_what: ClassVar[str] = "a model"
    load_hint: ClassVar[str] = "pass a folder written by hfdl or a Hub id (cached when offline)"

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | Path, *, strict: bool = True, **kwargs):
        """Load from a local folder or a Hub id, strictly, in eval mode."""
        try:
            # the mixin prints "Loading weights from local directory" to stdout, which breaks scripts whose stdout is JSON
            with contextlib.redirect_stdout(io.StringIO()):
                model = super().from_pretrained(pretrained_model_name_or_path, strict=strict, **kwargs)
        except HfdlError:
            raise
        except Exception as err:
            msg = " ".join(str(err).split())[:240] or type(err).__name__  # one line, whatever the library printed
            raise HfdlError(f"could not load {cls.load_what} from '{pretrained_model_name_or_path}' ({type(err).__name__}: {msg}): {cls.load_hint}") from err
        return model.eval()
