"""transformers checkpoints as hfdl models: what a name holds, its config read offline, one-line errors, the input size.

A task that wraps a transformers auto class (detection's `AutoModelForObjectDetection`, segmentation's
`AutoModelForSemanticSegmentation`) describes it once as a `TransformersTask`; the checks and messages are then the same
for every task, and a config is read from a local folder or the Hub cache without downloading any weights.

    SEGMENTER = TransformersTask(
        auto_class="AutoModelForSemanticSegmentation", mapping="MODEL_FOR_SEMANTIC_SEGMENTATION_MAPPING_NAMES",
        kind="segmenter", description="a semantic segmenter", examples="nvidia/mit-b0, ...", load_hint="pass a ... checkpoint",
    )
    SEGMENTER.is_task_id("nvidia/mit-b0")                 # True (from the Hub cache when offline); False for "resnet18"
    SEGMENTER.check_config(read_config(path), path)       # one-line HfdlError for BERT, or remote code not trusted
    square_size(processor)                                # the S of the S x S input the image processor resizes to
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from hfdl.errors import HfdlError
from hfdl.hub.errors import first_line, hub_errors


def read_config(path_or_id: str) -> dict:
    """config.json of a local folder or a Hub id (from the cache when offline) as a dict; one-line errors."""
    if os.path.isdir(path_or_id):
        file = Path(path_or_id) / "config.json"
        if not file.is_file():
            raise HfdlError(f"{path_or_id} has no config.json: pass a folder written by an hfdl training script or save_pretrained")
    else:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import HFValidationError

        try:
            with hub_errors(path_or_id, "load"):
                file = Path(hf_hub_download(path_or_id, "config.json"))
        except HFValidationError as err:
            raise HfdlError(f"'{path_or_id}' is neither a local folder nor a Hub id: pass a folder or an id like owner/name") from err
        except HfdlError as err:
            raise HfdlError(f"'{path_or_id}' is not a local folder; as a Hub id: {err}") from err
    try:
        return json.loads(file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise HfdlError(f"the config.json of {path_or_id} is not readable JSON ({type(err).__name__}): save the model again") from err


def is_transformers_checkpoint(path_or_id: str) -> bool:
    """True when the folder or Hub id holds a transformers model (its config.json has a `model_type`);
    hfdl's own model configs have none (they name a timm `backbone`)."""
    return "model_type" in read_config(path_or_id)


def is_timm_name(name: str) -> bool:
    """True for what only timm resolves, told apart without Hub access: `hf-hub:...`, `timm/...` or a name without "/"
    (a timm architecture, an offline backbone, or a typo the backbone resolver reports); never a local folder."""
    import timm

    return not os.path.isdir(name) and (name.startswith(("hf-hub:", "timm/")) or "/" not in name or timm.is_model(name))


def square_size(processor) -> int:
    """The square input size an image processor resizes to: the `crop_size` it centre-crops to (MobileViT), else the
    `height` (hfdl's saved processors), else the `shortest_edge` or `max_height` a Hub processor keeps its aspect ratio with."""
    crop = (getattr(processor, "crop_size", None) or {}) if getattr(processor, "do_center_crop", False) else {}
    size = processor.size or {}
    for found in (crop.get("height"), *(size.get(key) for key in ("height", "shortest_edge", "max_height"))):
        if found:
            return int(found)
    raise HfdlError(f"cannot read an input size from the image processor's size {size}: save it with size={{'height': S, 'width': S}}")


@dataclass(frozen=True)
class TransformersTask:
    """One transformers auto class as an hfdl model kind, with the words its errors use.

    Args:
        auto_class: the transformers auto class that builds it ("AutoModelForSemanticSegmentation").
        mapping: the `transformers.models.auto.modeling_auto` dict of its model types ("MODEL_FOR_SEMANTIC_SEGMENTATION_MAPPING_NAMES").
        kind: the noun for the model ("segmenter": "a segmenter checkpoint", "could not load a transformers segmenter").
        description: what a wrong model is not ("a semantic segmenter").
        examples: Hub ids that work, for the messages.
        load_hint: the fix when loading fails ("pass a transformers ... checkpoint with its preprocessor_config.json").
    """

    auto_class: str
    mapping: str
    kind: str
    description: str
    examples: str
    load_hint: str

    def model_types(self) -> set[str]:
        """The `model_type`s transformers builds with the auto class (segformer, upernet, dpt...)."""
        from transformers.models.auto import modeling_auto

        return set(getattr(modeling_auto, self.mapping))

    def auto_model(self):
        """The transformers auto class itself."""
        import transformers

        return getattr(transformers, self.auto_class)

    def check_config(self, config: dict, path_or_id: str, trust_remote_code: bool = False, strict: bool = True) -> None:
        """One-line error unless the config is this task's model (or remote code registering one, when trusted or not `strict`)."""
        model_type = config.get("model_type")
        if model_type in self.model_types():
            return
        if self.auto_class in config.get("auto_map", {}):
            if trust_remote_code or not strict:
                return
            raise HfdlError(f"{path_or_id} needs its own code ('{model_type}'): pass --trust_remote_code true if you trust that repository")
        raise HfdlError(f"{path_or_id} is a '{model_type}' model, not {self.description}: pass a {self.kind} checkpoint ({self.examples}) or a timm backbone")

    def is_task_id(self, model_name_or_path: str) -> bool:
        """True for this task's transformers checkpoint (local folder or Hub id), False for a timm backbone (see `is_timm_name`,
        or a folder/id whose config has no `model_type`). Another transformers model (BERT, a classifier...) is an error."""
        if is_timm_name(model_name_or_path):
            return False
        config = read_config(model_name_or_path)
        if "model_type" not in config:
            return False
        self.check_config(config, model_name_or_path, trust_remote_code=False, strict=False)
        return True

    def load_error(self, path_or_id: str, err: Exception) -> HfdlError:
        """`err` from loading a model or processor as a one-line HfdlError with the fix (an HfdlError stays as it is)."""
        if isinstance(err, HfdlError):
            return err
        return HfdlError(f"could not load a transformers {self.kind} from '{path_or_id}' ({type(err).__name__}: {first_line(err)}): {self.load_hint}")


def load_own_pretrained(model_class, path_or_id: str, what: str, script: str):
    """(model, tokenizer) of a folder or Hub repo written by an hfdl script, loaded with hfdl's own `model_class`
    (no remote code runs) and its `PreTrainedTokenizerFast`, strictly: a missing, unexpected or mismatched weight
    is a one-line error, as is a folder without `config.json` or an unreachable id. `what` names the model in the
    messages ("char-LM"), `script` the script that writes such folders."""
    from transformers import PreTrainedTokenizerFast

    local = Path(path_or_id)
    if local.exists() and not (local / "config.json").is_file():
        raise HfdlError(f"{local} has no config.json: pass a folder written by scripts/{script} (or a Hub id)")
    try:
        model, info = model_class.from_pretrained(path_or_id, output_loading_info=True)
        tokenizer = PreTrainedTokenizerFast.from_pretrained(path_or_id)
    except OSError as err:
        raise HfdlError(f"could not load {what} '{path_or_id}' ({str(err).splitlines()[0][:160]}): pass a local folder or a reachable Hub id") from err
    bad = {k: v for k, v in info.items() if k in ("missing_keys", "unexpected_keys", "mismatched_keys") and v}
    if bad:
        raise HfdlError(f"{what} '{path_or_id}' does not match its config ({bad}): the weights are damaged or from another model")
    return model, tokenizer
