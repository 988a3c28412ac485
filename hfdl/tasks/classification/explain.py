"""Classify an image with any timm classifier and explain the decision with class activation maps (the grad-cam
package, pytorch-grad-cam). What `spaces/image_classification` runs.

    clf = load_any_classifier("tf_efficientnet_lite0")          # offline ImageNet weights, 1,000 named classes
    clf = load_any_classifier("outputs/finetune/feature")        # a finetune.py folder (or Hub id, or a bundled head)
    top = clf.top_k(image, 5)                                   # {"Egyptian cat": 0.61, ...}
    overlay, name = clf.explain(image, method="gradcam")        # the heat of the top class over the model's view

A bundled head (`head.safetensors` + `config.json` with `hfdl_bundle: "head"`) is a feature-based classifier stored as
what differs from its offline backbone: the frozen backbone comes from the package-shipped weights.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from hfdl.errors import HfdlError

CAM_METHODS = ("gradcam", "gradcam++", "eigencam")
HEAD_FILE = "head.safetensors"
DELTA_FILE = "backbone_delta.safetensors"  # a bundle's backbone tensors that fine-tuning changed (float16)


@dataclass
class Classifier:
    model: nn.Module
    label_names: list[str]
    data_config: dict
    source: str
    notes: dict = field(default_factory=dict)

    def transform(self):
        from timm.data import create_transform

        return create_transform(**self.data_config, is_training=False)

    def pixels(self, image) -> torch.Tensor:
        """Any PIL image as the model's normalised input (1, 3, H, W)."""
        from hfdl.core.images import to_rgb

        return self.transform()(to_rgb(image))[None]

    def preprocessing(self) -> str:
        """The transform actually applied, in words a student can check."""
        cfg = self.data_config
        size = cfg["input_size"][-1]
        resized = round(size / cfg.get("crop_pct", 1.0))
        return (
            f"RGB -> resize the shorter side to {resized} px ({cfg.get('interpolation', 'bilinear')}) -> centre crop {size} x {size} "
            f"(crop_pct {cfg.get('crop_pct', 1.0)}) -> tensor -> normalise with mean {tuple(round(m, 3) for m in cfg['mean'])}, "
            f"std {tuple(round(s, 3) for s in cfg['std'])}  (timm data config of {self.source})"
        )

    @torch.inference_mode()
    def probabilities(self, image) -> torch.Tensor:
        self.model.eval()
        return self.model(self.pixels(image)).softmax(-1)[0]

    def top_k(self, image, k: int = 5) -> dict[str, float]:
        p = self.probabilities(image)
        values, indices = p.topk(min(k, len(p)))
        return {self.label_names[i]: float(v) for v, i in zip(values.tolist(), indices.tolist())}

    def class_index(self, name: str | None, image) -> int:
        """A class by name (or None: the top class of `image`)."""
        if name in (None, ""):
            return int(self.probabilities(image).argmax())
        if name not in self.label_names:
            raise HfdlError(f"class '{name}' is not one of this model's {len(self.label_names)} classes: pick one of its top-5 or leave it empty")
        return self.label_names.index(name)

    def explain(self, image, class_name: str | None = None, method: str = "gradcam") -> tuple["PIL.Image.Image", str, torch.Tensor]:  # noqa: F821
        """(the model's view of the image with the CAM heat over it, the explained class, the (H, W) heat in [0, 1])."""
        from PIL import Image
        from pytorch_grad_cam import EigenCAM, GradCAM, GradCAMPlusPlus
        from pytorch_grad_cam.utils.image import show_cam_on_image
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

        if method not in CAM_METHODS:
            raise HfdlError(f"CAM method '{method}' is unknown: use one of {', '.join(CAM_METHODS)}")
        index = self.class_index(class_name, image)
        x = self.pixels(image)
        cls = {"gradcam": GradCAM, "gradcam++": GradCAMPlusPlus, "eigencam": EigenCAM}[method]
        self.model.eval()
        with torch.enable_grad(), cls(model=self.model, target_layers=[cam_layer(self.model)]) as cam:
            heat = cam(input_tensor=x, targets=[ClassifierOutputTarget(index)])[0]
        mean, std = torch.tensor(self.data_config["mean"])[:, None, None], torch.tensor(self.data_config["std"])[:, None, None]
        view = (x[0] * std + mean).clamp(0, 1).permute(1, 2, 0).numpy()
        overlay = show_cam_on_image(view, heat, use_rgb=True, image_weight=0.5)
        return Image.fromarray(overlay), self.label_names[index], torch.from_numpy(heat)


def cam_layer(model: nn.Module) -> nn.Module:
    """The layer whose activations a CAM weighs: timm's last feature stage (`feature_info[-1]`)."""
    info = getattr(model, "feature_info", None)
    if info:
        return model.get_submodule(info[-1]["module"])
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise HfdlError("this model has no convolutional layer to explain with a CAM")
    return convs[-1]


def imagenet_names() -> list[str]:
    """The 1,000 ImageNet-1k class names, from timm's own (offline) ImageNet info: the first lemma of each synset."""
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    return [info.index_to_description(i).split(",")[0] for i in range(info.num_classes())]


def _head_bundle(folder: Path) -> Classifier:
    from safetensors.torch import load_file

    from hfdl.core.backbones import create_backbone

    config = json.loads((folder / "config.json").read_text())
    model = create_backbone(config["backbone"], pretrained=True, num_classes=config["num_classes"])
    head = load_file(str(folder / HEAD_FILE))
    state = model.state_dict()
    missing = set(head) ^ {n for n in state if n.startswith(model.pretrained_cfg.get("classifier", "classifier"))}
    if missing:
        raise HfdlError(f"{folder}: the head's tensors do not match {config['backbone']}'s classifier ({', '.join(sorted(missing))})")
    delta = load_file(str(folder / DELTA_FILE)) if (folder / DELTA_FILE).is_file() else {}
    foreign = [k for k, v in delta.items() if k not in state or state[k].shape != v.shape]
    if foreign:
        raise HfdlError(
            f"{folder}: {DELTA_FILE} holds tensors that {config['backbone']} does not have ({', '.join(sorted(foreign)[:3])}): bundle the run again"
        )
    model.load_state_dict({k: v.to(state[k].dtype) for k, v in {**delta, **head}.items()}, strict=False)
    model.pretrained_cfg.update(config["pretrained_cfg"])
    return Classifier(
        model.eval(), config["label_names"], _data_config(model), str(folder), {k: config[k] for k in ("eval_accuracy", "command") if k in config}
    )


def _data_config(model: nn.Module) -> dict:
    from hfdl.core.feature_cache import data_config_for

    return data_config_for(model, None)


def load_any_classifier(source: str) -> Classifier:
    """A timm classifier from an offline backbone name (ImageNet), a bundled head folder, a finetune.py folder or a
    timm Hub id; label names from `pretrained_cfg["label_names"]`, else ImageNet's for 1,000 classes, else the ids."""
    from hfdl.core.backbones import create_backbone

    folder = Path(source)
    if (folder / HEAD_FILE).is_file():
        return _head_bundle(folder)
    if (folder / "config.json").is_file():
        from hfdl.tasks.classification.model import load_classifier

        model = load_classifier(folder)
    else:
        model = create_backbone(source, pretrained=True)
    if not getattr(model, "num_classes", 0):
        raise HfdlError(f"{source} has no classifier head: pick a classifier (a finetune.py folder, an ImageNet timm model)")
    names = model.pretrained_cfg.get("label_names") or (imagenet_names() if model.num_classes == 1000 else [str(i) for i in range(model.num_classes)])
    return Classifier(model.eval(), list(names), _data_config(model), source)
