"""Training fast style networks (Johnson et al.) with the shared accelerate loop.

A `TransformerNet` learns to stylise any content image in one forward pass by minimising the same
perceptual loss as Gatys et al. (content on one VGG layer, style on Gram matrices, total variation),
over random crops of a content set. The output folder is self-describing (weights, config, the style
image, results, exact run configuration, a sample) so a model card can be rendered from it.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from hfdl import assets
from hfdl.core.images import image_to_tensor, open_image, tensor_to_image
from hfdl.core.rundir import ALL_RESULTS, RUN_CONFIG, check_output_dir, run_config, write_json
from hfdl.core.training import make_accelerator, train
from hfdl.errors import HfdlError
from hfdl.tasks.style.args import StyleArguments, StyleTrainingArguments
from hfdl.tasks.style.card import write_cards
from hfdl.tasks.style.data import ContentCrops, eval_photos, load_content_images
from hfdl.tasks.style.gatys import (
    FeatureNetwork,
    GatysConfig,
    content_loss,
    gatys,
    load_feature_network,
    style_loss,
    style_targets,
    total_variation_loss,
    vgg_layer_names,
)
from hfdl.tasks.style.model import TransformerNet

logger = logging.getLogger(__name__)

TASK = "style-transfer"
OUTPUTS = ("model.safetensors", "config.json", "sample.png", "sample_content.png", "style.*")


class PerceptualLoss(torch.nn.Module):
    """Johnson et al.'s loss: content (one layer) + style (Gram matrices vs the style image) + total variation."""

    def __init__(self, net: FeatureNetwork, style: torch.Tensor, content_layer: str, style_layers: Sequence[str], weights: tuple[float, float, float]):
        super().__init__()
        self.net, self.content_layer, self.style_layers = net, content_layer, tuple(style_layers)
        self.content_weight, self.style_weight, self.tv_weight = weights
        grams = style_targets(net, [style], [1.0], self.style_layers)
        for layer, g in grams.items():
            self.register_buffer(f"gram_{layer}", g, persistent=False)

    def forward(self, output: torch.Tensor, content: torch.Tensor) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            target = self.net(content, (self.content_layer,))[self.content_layer]  # stops at the content layer
        feats = self.net(output)
        c = content_loss(feats[self.content_layer], target)
        s = style_loss(feats, {layer: getattr(self, f"gram_{layer}") for layer in self.style_layers})
        tv = total_variation_loss(output)
        total = self.content_weight * c + self.style_weight * s + self.tv_weight * tv
        return {"loss": total, "content_loss": c, "style_loss": s, "tv_loss": tv}


def perceptual_loss(style_args: StyleArguments, style_image, device="cpu") -> tuple[PerceptualLoss, torch.Tensor]:
    """The loss a run trains and is scored by (its feature network, layers, weights, style image at --style_size),
    and the style tensor its Gram targets come from: what training, the Gatys reference and re-scoring share."""
    net = load_feature_network(style_args.feature_net, (style_args.content_layer, *style_args.style_layer_list)).to(device)
    style = image_to_tensor(style_image, style_args.style_size or style_args.image_size).to(device)
    weights = (style_args.content_weight, style_args.style_weight, style_args.tv_weight)
    return PerceptualLoss(net, style, style_args.content_layer, style_args.style_layer_list, weights), style


def run(style_args: StyleArguments, training_args: StyleTrainingArguments, argv: list[str] | None = None) -> dict:
    """Train a fast style network and write the self-describing output folder; returns all_results."""
    from accelerate.utils import set_seed

    t_wall = time.perf_counter()
    if style_args.max_steps is not None:
        if training_args.max_train_steps is not None and training_args.max_train_steps != style_args.max_steps:
            raise HfdlError(f"--max_steps {style_args.max_steps} and --max_train_steps {training_args.max_train_steps} disagree: pass only one")
        training_args.max_train_steps = style_args.max_steps
    out = Path(training_args.output_dir)
    style_img = open_image(style_args.style_image)  # a bad style image fails before anything heavy
    vgg_layer_names(style_args.feature_net)
    check_output_dir(out, [out], training_args, OUTPUTS)
    accelerator = make_accelerator(training_args)
    set_seed(training_args.seed)
    content = load_content_images(style_args.dataset_name, style_args.dataset_config_name, style_args.image_column, style_args.max_train_samples)
    images, source = content.train, content.source
    accelerator.print(f"content: {source}; evaluation: {content.eval_source}; style: {style_args.style_image}")

    criterion, style = perceptual_loss(style_args, style_img, accelerator.device)
    model = TransformerNet(base_channels=style_args.base_channels, num_residual_blocks=style_args.num_residual_blocks)
    crops = ContentCrops(
        images, style_args.image_size, style_args.samples_per_epoch, seed=training_args.seed, content_size=style_args.content_size or style_args.eval_size
    )
    bs = training_args.per_device_train_batch_size
    train_dl = torch.utils.data.DataLoader(crops, batch_size=bs, shuffle=True, num_workers=training_args.dataloader_num_workers, drop_last=len(crops) >= bs)
    photos = [p.to(accelerator.device) for p in eval_photos(content.eval, style_args.eval_size)]

    def compute_loss(m: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
        return criterion(m(x), x)["loss"]

    @torch.no_grad()
    def evaluate(m: torch.nn.Module) -> dict[str, float]:
        """The perceptual loss of the clamped output (what a user sees), each evaluation photo whole, averaged."""
        m.eval()
        losses = mean_losses(criterion(m(x).clamp(0, 1), x) for x in photos)
        m.train()
        return {f"eval_{k}": v for k, v in losses.items()}

    out.mkdir(parents=True, exist_ok=True)
    initial = evaluate(model.to(accelerator.device))  # the untrained network's losses: what training improved on
    model, result = train(accelerator, model, None, train_dl, training_args, out, compute_loss=compute_loss, evaluate=evaluate, run_name="style")
    model = model.eval()

    results = {
        **{k: round(v, 6) for k, v in result.final_metrics.items()},
        **{f"initial_{k}": round(v, 6) for k, v in initial.items()},
        "train_loss": result.history[-1]["train_loss"] if result.history else None,
        "content_weight": style_args.content_weight,
        "style_weight": style_args.style_weight,
        "tv_weight": style_args.tv_weight,
        "content_layer": style_args.content_layer,
        "style_layers": list(style_args.style_layer_list),
        "feature_net": style_args.feature_net,
        "steps": result.completed_steps,
        "image_size": style_args.image_size,
        "train_samples": result.train_samples,
        "train_seconds": result.train_seconds,
        "train_images_per_second": result.train_samples_per_second,
        "num_parameters": sum(p.numel() for p in model.parameters()),
        "content_source": source,
        "eval_photos": content.eval_source,
        "eval_size": style_args.eval_size,
        "style_image": None,
        "sample_image": "sample.png",
    }
    if accelerator.is_main_process:
        if style_args.gatys_reference_steps:
            results.update(gatys_reference(criterion, style, photos, style_args, results["eval_loss"]))
        model.save_pretrained(out)
        style_file = out / f"style{Path(style_args.style_image).suffix.lower() or '.png'}"
        shutil.copyfile(style_args.style_image, style_file)
        results["style_image"] = style_file.name
        results.update(_write_sample(model, style_args, out, accelerator.device))
        write_json(out / "history.json", result.history)
        write_json(out / ALL_RESULTS, results)
        config = run_config(
            TASK, argv, {"style_args": style_args, "training_args": training_args}, accelerator,
            model_config=model._hub_mixin_config if isinstance(model._hub_mixin_config, dict) else None,
            content_source=source,
            offline_assets=[
                *([assets.VGG16_FEATURES.provenance()] if style_args.feature_net == "vgg16" else []),
                *([assets.OFFLINE_PHOTOS_PROVENANCE] if style_args.dataset_name in (None, assets.OFFLINE_PHOTOS) else []),
            ],
            wall_seconds=time.perf_counter() - t_wall,
        )  # fmt: skip
        write_json(out / RUN_CONFIG, config)
        write_cards(out)
    accelerator.wait_for_everyone()
    accelerator.print(json.dumps({k: v for k, v in results.items() if isinstance(v, (int, float))}))
    return results


def mean_losses(per_photo) -> dict[str, float]:
    """Average each loss term over photos (a generator of `PerceptualLoss` outputs)."""
    rows = [{k: v.item() for k, v in losses.items()} for losses in per_photo]
    return {k: sum(r[k] for r in rows) / len(rows) for k in rows[0]}


def gatys_trajectory(criterion: PerceptualLoss, style: torch.Tensor, photos: Sequence[torch.Tensor], steps: int, init: str, feature_net: str = "vgg16"):
    """Gatys et al.'s optimisation of `criterion` itself (its layers, weights and style target) on each photo for `steps`
    L-BFGS steps from `init`: `(mean loss after k steps for k = 0..steps, the final mean losses, seconds)`."""
    cfg = GatysConfig(
        steps=steps, init=init, content_layer=criterion.content_layer, style_layers=criterion.style_layers, content_weight=criterion.content_weight,
        style_weight=criterion.style_weight, tv_weight=criterion.tv_weight, feature_net=feature_net, preview_every=1,
    )  # fmt: skip
    t0 = time.perf_counter()
    runs = [gatys(x, [style], cfg, net=criterion.net) for x in photos]
    seconds = time.perf_counter() - t0
    with torch.no_grad():
        final = mean_losses(criterion(r.image, x) for r, x in zip(runs, photos))
    # history[k] is the loss evaluated after k steps (L-BFGS evaluates once per step); one that converged early keeps its last
    per_photo = [[h["loss"] for h in r.history] for r in runs]
    trajectory = [sum(t[min(k, len(t) - 1)] for t in per_photo) / len(per_photo) for k in range(steps)] + [final["loss"]]
    return trajectory, final, seconds


def gatys_reference(criterion: PerceptualLoss, style: torch.Tensor, photos: Sequence[torch.Tensor], style_args: StyleArguments, eval_loss: float) -> dict:
    """Gatys optimisation of the network's own loss on the evaluation photos, stopped after `--gatys_reference_steps`
    L-BFGS steps: the bar a fast network is held to (Johnson et al. 2016 report matching 50-100 steps), and the
    number of steps Gatys needs to get as low as the network (None: more than that)."""
    steps, init = style_args.gatys_reference_steps, style_args.gatys_reference_init
    trajectory, losses, seconds = gatys_trajectory(criterion, style, photos, steps, init, style_args.feature_net)
    logger.info("Gatys reference (%d L-BFGS steps from %s): loss %.4g; the network: %.4g", steps, init, losses["loss"], eval_loss)
    return {
        **{f"gatys_reference_{k}": round(v, 6) for k, v in losses.items()},
        "gatys_reference_steps": steps,
        "gatys_reference_init": init,
        "gatys_reference_seconds": round(seconds, 2),
        "loss_vs_gatys_reference": round(eval_loss / losses["loss"], 4),
        "gatys_steps_to_match": next((k for k, loss in enumerate(trajectory) if loss <= eval_loss), None),
    }


def _write_sample(model: TransformerNet, style_args: StyleArguments, out: Path, device) -> dict:
    """Stylise the sample content image into sample.png (and keep the input as sample_content.png)."""
    if style_args.sample_image:
        content = image_to_tensor(style_args.sample_image, style_args.sample_size)
    else:
        from skimage import data

        content = image_to_tensor(data.astronaut(), style_args.sample_size)
    model.to(device)
    t0 = time.perf_counter()
    image = model.stylize(content)
    seconds = time.perf_counter() - t0
    tensor_to_image(content).save(out / "sample_content.png")
    tensor_to_image(image).save(out / "sample.png")
    return {"sample_content_image": "sample_content.png", "sample_seconds": seconds}
