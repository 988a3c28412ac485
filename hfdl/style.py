"""Training fast style networks (Johnson et al.) with the shared accelerate loop.

A `TransformerNet` learns to stylise any content image in one forward pass by minimising the same
perceptual loss as Gatys et al. (content on one VGG layer, style on Gram matrices, total variation),
over random crops of a content set. The output folder is self-describing (weights, config, the style
image, results, exact run configuration, a sample) so a model card can be rendered from it.
"""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from hfdl.cli import command_line
from hfdl.errors import HfdlError
from hfdl.models import style as S
from hfdl.training import TrainingArguments, environment_info, list_checkpoints, make_accelerator, train

logger = logging.getLogger(__name__)

OFFLINE_PHOTOS = "photos"
# Real photos shipped inside scikit-image (CC0 / public domain) and scikit-learn (CC-BY-2.0).
_SKIMAGE_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "camera", "coins", "motorcycle_left", "motorcycle_right")
_SKLEARN_PHOTOS = ("china.jpg", "flower.jpg")
OFFLINE_PHOTOS_PROVENANCE = {
    "name": OFFLINE_PHOTOS,
    "source": f"scikit-image skimage.data ({', '.join(_SKIMAGE_PHOTOS)}) and scikit-learn load_sample_images ({', '.join(_SKLEARN_PHOTOS)})",
    "license": "skimage photos: CC0 / public domain / no known copyright restrictions; sklearn china.jpg and flower.jpg: CC-BY-2.0 (Flickr)",
    "hub_equivalent": "any image dataset, e.g. a COCO image subset (--dataset_name)",
}


@dataclass
class StyleArguments:
    style_image: str = field(default=None, metadata={"help": "The style image (PNG/JPEG). Required."})
    dataset_name: str | None = field(
        default=None,
        metadata={"help": "Content images: Hub dataset id, imagefolder/saved dataset dir, or 'photos' (offline default: real skimage/sklearn photos)."},
    )
    dataset_config_name: str | None = field(default=None, metadata={"help": "Hub dataset configuration."})
    image_column: str | None = field(default=None, metadata={"help": "Image column (auto-detected)."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Use only the first N content images."})
    image_size: int = field(default=256, metadata={"help": "Training crop size (pixels)."})
    style_size: int | None = field(default=None, metadata={"help": "Longer side of the style image for its Gram targets (default --image_size)."})
    samples_per_epoch: int = field(default=256, metadata={"help": "Random crops per epoch (the content set is small; crops and flips repeat it)."})
    max_steps: int | None = field(default=None, metadata={"help": "Stop after this many optimizer steps (same as --max_train_steps)."})
    content_weight: float = field(default=1.0, metadata={"help": "Content loss weight."})
    style_weight: float = field(default=1e6, metadata={"help": "Style loss weight (Gram matrices normalised by C*H*W)."})
    tv_weight: float = field(default=1e-2, metadata={"help": "Total-variation weight."})
    content_layer: str = field(default=S.DEFAULT_FAST_CONTENT_LAYER, metadata={"help": "VGG layer for the content loss."})
    style_layers: str = field(default=",".join(S.DEFAULT_STYLE_LAYERS), metadata={"help": "Comma list of VGG layers for the style loss."})
    feature_net: str = field(default="vgg16", metadata={"help": "vgg16 (offline asset) or vgg19 (Hub timm/vgg19.tv_in1k)."})
    base_channels: int = field(default=32, metadata={"help": "Width of the transformer network's first conv (x2, x4 after downsampling)."})
    num_residual_blocks: int = field(default=5, metadata={"help": "Residual blocks of the transformer network."})
    sample_image: str | None = field(default=None, metadata={"help": "Content image stylised into sample.png (default: skimage astronaut)."})
    sample_size: int = field(default=256, metadata={"help": "Longer side of sample.png."})

    def __post_init__(self):
        if not self.style_image:
            raise HfdlError("no style image: pass --style_image PATH")
        for name in ("image_size", "samples_per_epoch", "base_channels", "sample_size"):
            if getattr(self, name) < 1:
                raise HfdlError(f"--{name} must be >= 1, got {getattr(self, name)}")
        if self.image_size < 16:
            raise HfdlError(f"--image_size must be >= 16 pixels (VGG pools 4 times), got {self.image_size}")
        for name in ("content_weight", "style_weight", "tv_weight"):
            if getattr(self, name) < 0:
                raise HfdlError(f"--{name} must be >= 0, got {getattr(self, name)}")
        if self.max_steps is not None and self.max_steps < 1:
            raise HfdlError(f"--max_steps must be >= 1, got {self.max_steps}")

    @property
    def style_layer_list(self) -> tuple[str, ...]:
        return tuple(s.strip() for s in self.style_layers.split(",") if s.strip())


@dataclass
class StyleTrainingArguments(TrainingArguments):
    """The shared loop's arguments with defaults that suit style networks (Adam-like, no decay, no clipping)."""

    output_dir: str = field(default="outputs/style", metadata={"help": "Where the style network, results and checkpoints go."})
    num_train_epochs: int = field(default=2, metadata={"help": "Epochs of --samples_per_epoch crops."})
    per_device_train_batch_size: int = field(default=4, metadata={"help": "Crops per batch."})
    learning_rate: float = field(default=1e-3, metadata={"help": "Peak learning rate (AdamW)."})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay."})
    warmup_ratio: float = field(default=0.05, metadata={"help": "Fraction of steps for linear warmup."})
    max_grad_norm: float | None = field(default=None, metadata={"help": "Gradient clipping norm (None: off)."})


# --------------------------------------------------------------------------------------------------
# Content images
# --------------------------------------------------------------------------------------------------


def offline_photos(limit: int | None = None) -> list[tuple[str, "PIL.Image.Image"]]:  # noqa: F821
    """The real photos shipped by scikit-image and scikit-learn, as (name, RGB image); the first `limit` only if given."""
    from PIL import Image
    from skimage import data
    from sklearn.datasets import load_sample_images

    out = []
    for name in _SKIMAGE_PHOTOS[:limit]:
        if name.startswith("motorcycle_"):
            left, right, _ = data.stereo_motorcycle()
            arr = left if name.endswith("left") else right
        else:
            arr = getattr(data, name)()
        out.append((name, S.open_image(Image.fromarray(arr))))
    if limit is not None and len(out) >= limit:
        return out
    sk = load_sample_images()
    for name, arr in zip(sk.filenames, sk.images):
        out.append((os.path.basename(name), Image.fromarray(arr)))
    return out[:limit]


class _DatasetImages:
    """Lazy RGB images of one column of a `datasets.Dataset`."""

    def __init__(self, ds, column: str):
        self.ds, self.column = ds, column

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int):
        return S.open_image(self.ds[int(i)][self.column])


def load_content_images(dataset_name: str | None, config_name: str | None, image_column: str | None, max_samples: int | None) -> tuple[Sequence, str]:
    """Content images (indexable, RGB PIL) and a description of their source."""
    if dataset_name in (None, OFFLINE_PHOTOS):
        images = [img for _, img in offline_photos(max_samples)]
        source = f"offline {OFFLINE_PHOTOS} ({len(images)} real photos from scikit-image and scikit-learn)"
    else:
        import datasets

        from hfdl.data.images import load_image_dataset

        dsd, source = load_image_dataset(dataset_name, dataset_config_name=config_name)
        split = "train" if "train" in dsd else next(iter(dsd))
        ds = dsd[split]
        columns = [c for c, f in ds.features.items() if isinstance(f, datasets.Image)]
        column = image_column or (columns[0] if columns else None)
        if column is None or column not in ds.column_names:
            raise HfdlError(f"{source} has no image column {image_column or ''}: pass --image_column (columns: {', '.join(ds.column_names)})")
        images = _DatasetImages(ds, column)
    if max_samples is not None:
        images = [images[i] for i in range(min(max_samples, len(images)))]
    if len(images) == 0:
        raise HfdlError(f"{source} holds no images: pass another --dataset_name")
    return images, source


class ContentCrops(torch.utils.data.Dataset):
    """Random square crops (side 50-100% of the shorter edge) resized to `size`, flipped half the time.

    The crop of sample i in epoch e is a function of (seed, epoch, i): resumed runs see the same data.
    """

    def __init__(self, images: Sequence, size: int, length: int, seed: int = 0):
        self.images, self.size, self.length, self.seed, self.epoch = images, size, length, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> torch.Tensor:
        from PIL import Image

        img = self.images[i % len(self.images)]
        rng = random.Random(f"{self.seed}-{self.epoch}-{i}")
        side = max(1, round(min(img.size) * rng.uniform(0.5, 1.0)))
        x0, y0 = rng.randint(0, img.width - side), rng.randint(0, img.height - side)
        crop = img.crop((x0, y0, x0 + side, y0 + side)).resize((self.size, self.size), Image.Resampling.BILINEAR)
        if rng.random() < 0.5:
            crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        return S.image_to_tensor(crop)[0]


def centre_crops(images: Sequence, size: int, n: int = 4) -> torch.Tensor:
    """A fixed evaluation batch: centre crops of the first `n` content images."""
    from PIL import Image

    out = []
    for i in range(min(n, len(images))):
        img = images[i]
        side = min(img.size)
        box = ((img.width - side) // 2, (img.height - side) // 2)
        out.append(S.image_to_tensor(img.crop((*box, box[0] + side, box[1] + side)).resize((size, size), Image.Resampling.BILINEAR))[0])
    return torch.stack(out)


# --------------------------------------------------------------------------------------------------
# Perceptual loss
# --------------------------------------------------------------------------------------------------


class PerceptualLoss(torch.nn.Module):
    """Johnson et al.'s loss: content (one layer) + style (Gram matrices vs the style image) + total variation."""

    def __init__(self, net: S.FeatureNetwork, style: torch.Tensor, content_layer: str, style_layers: Sequence[str], weights: tuple[float, float, float]):
        super().__init__()
        self.net, self.content_layer, self.style_layers = net, content_layer, tuple(style_layers)
        self.content_weight, self.style_weight, self.tv_weight = weights
        grams = S.style_targets(net, [style], [1.0], self.style_layers)
        for layer, g in grams.items():
            self.register_buffer(f"gram_{layer}", g, persistent=False)

    def forward(self, output: torch.Tensor, content: torch.Tensor) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            target = self.net(content)[self.content_layer]
        feats = self.net(output)
        c = S.content_loss(feats[self.content_layer], target)
        s = S.style_loss(feats, {layer: getattr(self, f"gram_{layer}") for layer in self.style_layers})
        tv = S.total_variation_loss(output)
        total = self.content_weight * c + self.style_weight * s + self.tv_weight * tv
        return {"loss": total, "content_loss": c, "style_loss": s, "tv_loss": tv}


# --------------------------------------------------------------------------------------------------
# Pipeline
# --------------------------------------------------------------------------------------------------

_OUTPUT_FILES = ("model.safetensors", "config.json", "all_results.json", "run_config.json", "history.json", "sample.png", "sample_content.png", "README.md")


def check_output_dir(out: Path, args: TrainingArguments) -> None:
    """Refuse to overwrite a finished run or to silently restart an interrupted one."""
    if not out.exists():
        return
    checkpoints = list_checkpoints(out)
    if args.overwrite_output_dir:
        for p in [*(out / f for f in _OUTPUT_FILES), *out.glob("style.*"), *out.glob(".step_*"), *checkpoints, out / "runs"]:
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()
        for p in out.iterdir():
            if p.is_dir() and p.name.startswith(("step_", "epoch_")):
                shutil.rmtree(p)
        return
    if args.resume_from_checkpoint:
        return
    if (out / "all_results.json").is_file() or (out / "model.safetensors").is_file():
        raise HfdlError(f"{out} already holds a trained style network: pass --overwrite_output_dir to replace it or choose another --output_dir")
    if checkpoints:
        raise HfdlError(
            f"{out} holds an interrupted run ({checkpoints[-1].name}): pass --resume_from_checkpoint latest to continue it or --overwrite_output_dir to restart"
        )


def run(sargs: StyleArguments, targs: StyleTrainingArguments, argv: list[str] | None = None) -> dict:
    """Train a fast style network and write the self-describing output folder; returns all_results."""
    from accelerate.utils import set_seed

    from hfdl import assets

    t_wall = time.perf_counter()
    if sargs.max_steps is not None:
        if targs.max_train_steps is not None and targs.max_train_steps != sargs.max_steps:
            raise HfdlError(f"--max_steps {sargs.max_steps} and --max_train_steps {targs.max_train_steps} disagree: pass only one")
        targs.max_train_steps = sargs.max_steps
    out = Path(targs.output_dir)
    style_img = S.open_image(sargs.style_image)  # a bad style image fails before anything heavy
    S.vgg_layer_names(sargs.feature_net)
    check_output_dir(out, targs)
    accelerator = make_accelerator(targs)
    set_seed(targs.seed)
    images, source = load_content_images(sargs.dataset_name, sargs.dataset_config_name, sargs.image_column, sargs.max_train_samples)
    accelerator.print(f"content: {source}; style: {sargs.style_image}")

    net = S.load_feature_network(sargs.feature_net, (sargs.content_layer, *sargs.style_layer_list)).to(accelerator.device)
    style = S.image_to_tensor(style_img, sargs.style_size or sargs.image_size).to(accelerator.device)
    criterion = PerceptualLoss(net, style, sargs.content_layer, sargs.style_layer_list, (sargs.content_weight, sargs.style_weight, sargs.tv_weight))
    model = S.TransformerNet(base_channels=sargs.base_channels, num_residual_blocks=sargs.num_residual_blocks)
    crops = ContentCrops(images, sargs.image_size, sargs.samples_per_epoch, seed=targs.seed)
    bs = targs.per_device_train_batch_size
    train_dl = torch.utils.data.DataLoader(crops, batch_size=bs, shuffle=True, num_workers=targs.dataloader_num_workers, drop_last=len(crops) >= bs)
    eval_batch = centre_crops(images, sargs.image_size)

    def compute_loss(m: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
        return criterion(m(x), x)["loss"]

    @torch.no_grad()
    def evaluate(m: torch.nn.Module) -> dict[str, float]:
        m.eval()
        x = eval_batch.to(accelerator.device)
        losses = criterion(m(x), x)
        m.train()
        return {f"eval_{k}": v.item() for k, v in losses.items()}

    out.mkdir(parents=True, exist_ok=True)
    initial = evaluate(model.to(accelerator.device))  # the untrained network's losses: what training improved on
    model, result = train(accelerator, model, None, train_dl, targs, out, compute_loss=compute_loss, evaluate=evaluate, run_name="style")
    model = model.eval()

    results = {
        **{k: round(v, 6) for k, v in result.final_metrics.items()},
        **{f"initial_{k}": round(v, 6) for k, v in initial.items()},
        "train_loss": result.history[-1]["train_loss"] if result.history else None,
        "content_weight": sargs.content_weight,
        "style_weight": sargs.style_weight,
        "tv_weight": sargs.tv_weight,
        "content_layer": sargs.content_layer,
        "style_layers": list(sargs.style_layer_list),
        "feature_net": sargs.feature_net,
        "steps": result.completed_steps,
        "image_size": sargs.image_size,
        "train_samples": result.train_samples,
        "train_seconds": result.train_seconds,
        "train_images_per_second": result.train_samples_per_second,
        "num_parameters": sum(p.numel() for p in model.parameters()),
        "content_source": source,
        "style_image": None,
        "sample_image": "sample.png",
    }
    if accelerator.is_main_process:
        model.save_pretrained(out)
        style_file = out / f"style{Path(sargs.style_image).suffix.lower() or '.png'}"
        shutil.copyfile(sargs.style_image, style_file)
        results["style_image"] = style_file.name
        results.update(_write_sample(model, sargs, out, accelerator.device))
        (out / "history.json").write_text(json.dumps(result.history, indent=2))
        (out / "all_results.json").write_text(json.dumps(results, indent=2))
        run_config = {
            "task": "style-transfer",
            "command": command_line(argv),
            "style_args": asdict(sargs),
            "training_args": asdict(targs),
            "model_config": model._hub_mixin_config if isinstance(model._hub_mixin_config, dict) else None,
            "content_source": source,
            "offline_assets": [
                *([assets.VGG16_FEATURES.provenance()] if sargs.feature_net == "vgg16" else []),
                *([OFFLINE_PHOTOS_PROVENANCE] if sargs.dataset_name in (None, OFFLINE_PHOTOS) else []),
            ],
            "seed": targs.seed,
            "environment": environment_info(accelerator),
            "wall_seconds": time.perf_counter() - t_wall,
        }
        (out / "run_config.json").write_text(json.dumps(run_config, indent=2, default=str))
    accelerator.wait_for_everyone()
    accelerator.print(json.dumps({k: v for k, v in results.items() if isinstance(v, (int, float))}))
    return results


def _write_sample(model: S.TransformerNet, sargs: StyleArguments, out: Path, device) -> dict:
    """Stylise the sample content image into sample.png (and keep the input as sample_content.png)."""
    if sargs.sample_image:
        content = S.image_to_tensor(sargs.sample_image, sargs.sample_size)
    else:
        from skimage import data

        content = S.image_to_tensor(data.astronaut(), sargs.sample_size)
    model.to(device)
    t0 = time.perf_counter()
    image = model.stylize(content)
    seconds = time.perf_counter() - t0
    S.tensor_to_image(content).save(out / "sample_content.png")
    S.tensor_to_image(image).save(out / "sample.png")
    return {"sample_content_image": "sample_content.png", "sample_seconds": seconds}
