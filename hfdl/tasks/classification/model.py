"""timm image classifiers and the transfer-learning strategies (feature-based, fine-tuning, scratch).

Everything goes through timm's one backbone interface (`forward_features`, `forward_head`,
`reset_classifier`, `group_matcher`), so the strategy is one argument, not a wrapper class.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import timm
import torch
from torch import nn

from hfdl.core.backbones import create_backbone, resolve_model_source
from hfdl.core.feature_cache import head_parameter_names, pooled_features  # noqa: F401 (part of this module's interface)
from hfdl.errors import HfdlError

logger = logging.getLogger(__name__)

STRATEGIES = ("feature", "finetune", "scratch")


def create_classifier(model_name_or_path: str, num_classes: int, pretrained: bool = True, drop_rate: float | None = None) -> nn.Module:
    """A timm model with a fresh `num_classes` head on pretrained (or, `pretrained=False`, random) weights."""
    kwargs = {"num_classes": num_classes, **({"drop_rate": drop_rate} if drop_rate is not None else {})}
    model = create_backbone(model_name_or_path, pretrained=pretrained, **kwargs)
    kind, _ = resolve_model_source(model_name_or_path)
    return zero_init_head(model) if pretrained and kind != "local" else model


def zero_init_head(model: nn.Module) -> nn.Module:
    """Zero the new classifier (as BiT does): the first loss is ln(C), not a blow-up from random logits
    on large pretrained features, so the first fine-tuning steps do not wreck the backbone."""
    clf = model.get_classifier()
    if isinstance(clf, nn.Linear):
        nn.init.zeros_(clf.weight)
        nn.init.zeros_(clf.bias)
    return model


# Strategies
# --------------------------------------------------------------------------------------------------


def parameter_groups(model: nn.Module) -> list[list[str]]:
    """Backbone parameter names in timm's coarse groups (stem, stage 1, ..., final conv), head excluded."""
    from timm.models import group_parameters

    head = head_parameter_names(model)
    grouped = group_parameters(model, model.group_matcher(coarse=True))
    return [[n for n in names if n not in head] for _, names in sorted(grouped.items()) if any(n not in head for n in names)]


def apply_strategy(model: nn.Module, strategy: str, unfreeze: int | None = None) -> list[str]:
    """Set `requires_grad` for a strategy and return the names of the frozen parameters.

    `unfreeze=N` (finetune) trains only the last N backbone groups from timm's coarse group matcher
    (stages; the final 1x1 conv counts as one) plus the head.
    """
    if strategy not in STRATEGIES:
        raise HfdlError(f"unknown strategy '{strategy}': use one of {', '.join(STRATEGIES)} or compare")
    head = head_parameter_names(model)
    if strategy == "feature":
        frozen = {n for n, _ in model.named_parameters() if n not in head}
    elif strategy == "finetune" and unfreeze is not None:
        groups = parameter_groups(model)
        if not 0 <= unfreeze <= len(groups):
            raise HfdlError(f"--unfreeze {unfreeze} is out of range: {model.pretrained_cfg['architecture']} has {len(groups)} backbone groups")
        frozen = {n for g in groups[: len(groups) - unfreeze] for n in g}
    else:
        frozen = set()
    for n, p in model.named_parameters():
        p.requires_grad_(n not in frozen)
    return sorted(frozen)


def frozen_modules_to_eval(model: nn.Module) -> nn.Module:
    """Keep fully frozen normalisation layers in eval mode, so training never touches their statistics."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._NormBase):
            params = list(m.parameters(recurse=False))
            if params and not any(p.requires_grad for p in params):
                m.eval()
    return model


def trainable_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def optimizer_param_groups(model: nn.Module, lr: float, weight_decay: float, backbone_lr_scale: float) -> list[dict]:
    """AdamW groups: head at `lr`, backbone at `lr * backbone_lr_scale`; no weight decay on norms and biases."""
    head = head_parameter_names(model)
    groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    for n, p in model.named_parameters():
        if not p.requires_grad:
            continue
        key = (n in head, p.ndim <= 1)
        groups.setdefault(key, []).append(p)
    out = []
    for (is_head, no_decay), params in sorted(groups.items()):
        out.append({"params": params, "lr": lr if is_head else lr * backbone_lr_scale, "weight_decay": 0.0 if no_decay else weight_decay})
    return out


# --------------------------------------------------------------------------------------------------
# Feature extraction (frozen backbone) and heads
# --------------------------------------------------------------------------------------------------


def make_head(num_features: int, num_classes: int, head: str = "linear", hidden: int = 512, dropout: float = 0.0) -> nn.Module:
    if head == "linear":
        return nn.Sequential(nn.Dropout(dropout), nn.Linear(num_features, num_classes)) if dropout else nn.Linear(num_features, num_classes)
    if head == "mlp":
        return nn.Sequential(nn.Linear(num_features, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, num_classes))
    raise HfdlError(f"unknown --head '{head}': use linear or mlp")


def attach_head(model: nn.Module, head: nn.Module) -> nn.Module:
    """Put a head trained on cached features into the timm model (one model to save and load)."""
    linear = head if isinstance(head, nn.Linear) else None
    if linear is None and isinstance(head, nn.Sequential) and isinstance(head[-1], nn.Linear) and len(head) == 2 and isinstance(head[0], nn.Dropout):
        linear = head[-1]
    if linear is not None:
        clf = model.get_classifier()
        with torch.no_grad():
            clf.weight.copy_(linear.weight)
            clf.bias.copy_(linear.bias)
        return model
    set_classifier(model, head)
    return model


def set_classifier(model: nn.Module, head: nn.Module) -> None:
    name = model.pretrained_cfg.get("classifier", "classifier")
    parent = model
    *path, last = name.split(".")
    for p in path:
        parent = getattr(parent, p)
    setattr(parent, last, head)


# --------------------------------------------------------------------------------------------------
# Save / load (timm's Hub layout)
# --------------------------------------------------------------------------------------------------


def save_classifier(model: nn.Module, out_dir: str | Path, label_names: list[str], data_config: dict, extra: dict | None = None, head: str = "linear") -> Path:
    """Save in timm's Hub layout (`config.json` + `model.safetensors`) via `timm.models.save_for_hf`."""
    from timm.models import save_for_hf

    out_dir = Path(out_dir)
    model_config = {"label_names": list(label_names)}
    if head != "linear":
        model_config["hfdl_head"] = head
    if extra:
        model_config.update(extra)
    cfg = {k: data_config[k] for k in ("input_size", "interpolation", "mean", "std", "crop_pct", "crop_mode") if k in data_config}
    save_for_hf(model, out_dir, model_config=model_config, safe_serialization=True, data_config=cfg)
    # The offline backbone's cache path must not leak into a published config.
    cfg_path = out_dir / "config.json"
    config = json.loads(cfg_path.read_text())
    for key in ("file", "hfdl_offline_asset", "source"):
        config["pretrained_cfg"].pop(key, None)
    cfg_path.write_text(json.dumps(config, indent=2))
    return out_dir


def load_classifier(path: str | Path) -> nn.Module:
    """Load a saved classifier; plain linear-head folders are exactly `timm.create_model('local-dir:PATH')`."""
    path = Path(path)
    config = json.loads((path / "config.json").read_text())
    head = config.get("hfdl_head", "linear")
    if head == "linear":
        return timm.create_model(f"local-dir:{path}", pretrained=True)
    from safetensors.torch import load_file

    model = timm.create_model(config["architecture"], pretrained=False, num_classes=config["num_classes"])
    state = load_file(str(path / "model.safetensors"))
    hidden = state[f"{model.pretrained_cfg.get('classifier', 'classifier')}.0.weight"].shape[0]
    set_classifier(model, make_head(model.num_features, config["num_classes"], head, hidden=hidden))
    model.load_state_dict(state, strict=True)
    model.pretrained_cfg.update(config.get("pretrained_cfg", {}), label_names=config.get("label_names"))
    return model
