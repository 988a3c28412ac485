"""What the Gradio apps under spaces/ share: the model menu, the image input and the image check.

    ModelMenu     bundled `models/<name>/` folders plus Hub ids or folders from an env var; `get(name)` loads
                  (cached) and turns any failure into a one-line gr.Error; `bundled_metrics` from provenance.json
    ImageInput    `gr.Image` whose unreadable uploads become a one-line gr.Error
    check_image   no image, or more pixels than MAX_INPUT_PIXELS -> a one-line gr.Error
    when_given    an endpoint run on an input's change events only while its image is there

Only the Space apps import this module, first of hfdl (it turns off gradio's analytics and the Hub's telemetry
before gradio loads); `hfdl.hub` does not import it, so nothing else needs gradio.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest import mock

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import gradio as gr  # noqa: E402
from gradio import component_meta  # noqa: E402

from hfdl.core.images import MAX_INPUT_PIXELS  # noqa: E402
from hfdl.errors import HfdlError  # noqa: E402


class ModelMenu:
    """The models a Space offers: every folder under `models_dir` with the `required` files (config.json and
    model.safetensors by default; named "NAME (bundled)", NAME = `name(folder)`, the folder's name by default),
    then the Hub ids or folders in the comma list `$env_var`; `first` (menu name -> source) goes before them all
    (models a Space offers without bundling, such as the offline ImageNet backbones). `loader(source)` loads one; the last `cache_size`
    loaded are kept. `kind` names a model in the errors ("detector"); `empty` replaces the error for a menu
    without models."""

    def __init__(
        self,
        kind: str,
        models_dir: str | Path,
        env_var: str,
        loader: Callable[[str], Any],
        *,
        empty: str | None = None,
        cache_size: int = 4,
        required: tuple[str, ...] = ("config.json", "model.safetensors"),
        name: Callable[[Path], str] = lambda folder: folder.name,
        first: dict[str, str] | None = None,
    ):
        self.kind, self.models_dir = kind, Path(models_dir)
        self.sources: dict[str, str] = dict(first or {})  # menu name -> folder, Hub id or name the loader knows
        for d in sorted(self.models_dir.glob("*")):
            if all((d / f).is_file() for f in required):
                self.sources[f"{name(d)} (bundled)"] = str(d)
        for source in filter(None, (s.strip() for s in os.environ.get(env_var, "").split(","))):
            self.sources[source] = source
        self.choices = list(self.sources)
        self.default = next(iter(self.sources), None)
        self.empty = empty or f"No {kind} is available here: bundle one into models/ or set {env_var} to Hub ids"
        self.load = functools.lru_cache(maxsize=cache_size)(loader)

    def get(self, name: str | None = None) -> tuple[str, Any]:
        """`(name, model)` for a menu name (None: the default); an empty menu, an unknown name or a failed load -> one-line gr.Error."""
        if not self.sources:
            raise gr.Error(self.empty, print_exception=False)
        name = self.default if name is None else name
        if name not in self.sources:
            raise gr.Error(f"Unknown {self.kind} '{name}': choose one of {', '.join(self.sources)}", print_exception=False)
        try:
            return name, self.load(self.sources[name])
        except HfdlError as err:
            raise gr.Error(str(err), print_exception=False) from None
        except Exception as err:  # anything a Hub or transformers loader raises: one line, no traceback
            msg = " ".join(str(err).split())[:240] or type(err).__name__
            raise gr.Error(f"Could not load the {self.kind} {name} ({type(err).__name__}: {msg})", print_exception=False) from None

    def bundled_metrics(self, line: Callable[[str, dict], str | None]) -> str:
        """The Markdown lines `line(folder name, provenance)` gives for each `models_dir/*/provenance.json` (None: no line)."""
        lines = (line(p.parent.name, json.loads(p.read_text())) for p in sorted(self.models_dir.glob("*/provenance.json")))
        return "\n".join(filter(None, lines))


# gradio writes a .pyi stub beside the module of every component class it sees defined: not inside the hfdl package
with mock.patch.object(component_meta, "create_or_modify_pyi", lambda *args: None, create=True):

    class ImageInput(gr.Image):
        """`gr.Image` whose unreadable uploads become a one-line `gr.Error` instead of a server exception."""

        def get_block_name(self) -> str:
            return "image"

        def preprocess(self, payload):
            try:
                return super().preprocess(payload)
            except gr.Error:
                raise
            except Exception as err:
                raise gr.Error(f"{self.label} is not an image we can read ({type(err).__name__}): upload a PNG or JPEG file", print_exception=False) from None


def check_image(img, what: str = "image") -> None:
    """A missing image ("No image: upload one ...") or one with more than MAX_INPUT_PIXELS pixels -> one-line gr.Error."""
    if img is None:
        raise gr.Error(f"No {what}: upload one (or pick an example below)", print_exception=False)
    if img.width * img.height > MAX_INPUT_PIXELS:
        raise gr.Error(f"The {what} has {img.width}x{img.height} pixels, more than this demo decodes: downscale it first", print_exception=False)


def when_given(fn: Callable, outputs: int) -> Callable:
    """`fn(image, *args)` for an input's change events: run while the image is there, nothing shown once it is
    cleared (the API endpoint itself keeps `fn`, which reports a missing image)."""

    def run(image, *args):
        return fn(image, *args) if image is not None else (None,) * outputs

    return run
