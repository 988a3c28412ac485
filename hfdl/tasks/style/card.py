"""The style-transfer card (`model_cards/style_transfer.md`) and the one repo of a train_style run:
`PyTorchModelHubMixin` weights + config, the style image, a sample, results and the card."""

from __future__ import annotations

import os
from pathlib import Path

from hfdl.errors import HfdlError
from hfdl.hub.cards import eval_results, hardware, markdown_table, provenance, render_card, schedule, versions_table
from hfdl.hub.registry import RepoPlan, finished_run, folder_files, register, repo_ids, write_cards

TASK = "style-transfer"
LOSSES = ("loss", "content_loss", "style_loss", "tv_loss")
__all__ = ["plans", "style_card", "write_cards"]


def _card_data(name: str, r: dict, content: str, hub_content: str | None):
    from huggingface_hub import ModelCardData

    return ModelCardData(
        model_name=name,
        library_name="pytorch",
        license="apache-2.0",
        datasets=[hub_content] if hub_content else None,
        tags=["style-transfer", "image-to-image", "hfdl", "pytorch_model_hub_mixin", "model_hub_mixin", "fast-neural-style"],
        pipeline_tag="image-to-image",
        eval_results=eval_results(
            r, task_type="image-to-image", dataset_type=hub_content or "content-crops", dataset_name=content,
            dataset_split="held-out photos" if "eval_photos" in r else "train (center crops)", names={
                "eval_loss": ("loss", "Perceptual loss (weighted sum)"),
                "gatys_reference_loss": ("gatys_reference_loss", "Perceptual loss of Gatys optimisation (reference)"),
                "loss_vs_gatys_reference": ("loss_vs_gatys_reference", "Loss ratio, network / Gatys reference"),
            },
        ),
    )  # fmt: skip


def _how_to_use(repo_id: str) -> str:
    return (
        "from hfdl.core.images import image_to_tensor, open_image, tensor_to_image\n"
        "from hfdl.tasks.style.model import TransformerNet\n\n"
        f'net = TransformerNet.from_pretrained("{repo_id}").eval()\n'
        'photo = image_to_tensor(open_image("photo.jpg"), 512)  # (1, 3, H, W) in [0, 1], longer side 512 px\n'
        'tensor_to_image(net.stylize(photo, strength=1.0, preserve_colour=False)).save("stylised.png")'
    )


def _gatys_reference(r: dict) -> str | None:
    """One sentence: the network's loss against Gatys optimisation stopped after N L-BFGS steps, on the same photos."""
    if "gatys_reference_loss" not in r:
        return None
    verdict = "no higher than" if r["eval_loss"] <= r["gatys_reference_loss"] else "higher than"
    k = r.get("gatys_steps_to_match")
    match = f"optimisation needs {k} steps to get as low" if k is not None else f"optimisation does not get as low within {r['gatys_reference_steps']} steps"
    return (
        f"Against optimisation: on the same photos and loss, Gatys et al.'s L-BFGS optimisation from {r['gatys_reference_init']} "
        f"stopped after {r['gatys_reference_steps']} steps reaches {r['gatys_reference_loss']:.4g}; this network's one forward pass, "
        f"{r['eval_loss']:.4g}, is {verdict} that (ratio {r['loss_vs_gatys_reference']:.3f}; {match}). "
        "Johnson et al. 2016 report that their networks match 50-100 steps."
    )


def _hyperparameters(style_args: dict, training_args: dict, steps: int) -> dict:
    sa, t = style_args, training_args
    return {
        "image size (training crops)": sa["image_size"], "style image size": sa.get("style_size") or sa["image_size"],
        "crops per epoch": sa["samples_per_epoch"], "steps": steps, "batch size": t["per_device_train_batch_size"],
        "learning rate": t["learning_rate"], "optimizer": "AdamW", "schedule": schedule(t),
        "max grad norm": t["max_grad_norm"], "base channels": sa["base_channels"], "residual blocks": sa["num_residual_blocks"],
    }  # fmt: skip


def _limitations(r: dict, image_size: int, content: str) -> list[str]:
    return [
        f"One style per network, learned from {r['steps']} steps at {image_size} px: textures are coarser than Gatys optimisation, "
        "and much larger inputs show the style at a smaller scale than during training.",
        f"Trained on {content}; photos far from those (night scenes, line art, faces in close-up) stylise less evenly.",
        "Instance normalisation makes the output depend on the whole image: tiles of a large image stylised separately will not match at the seams.",
    ]


def style_card(out: Path, repo_id: str):
    """Render the card of a finished style run (`repo_id`: a Hub id, or the folder itself)."""
    r, rc = finished_run(out)
    sa, t, env = rc["style_args"], rc["training_args"], rc["environment"]
    style_file = r.get("style_image") or "style.png"
    content = rc.get("content_source") or r.get("content_source", "content images")
    dataset = sa.get("dataset_name")
    hub_content = dataset if dataset and dataset != "photos" and not os.path.exists(dataset) else None
    rows = [{"loss": k.replace("_", " "), "untrained": r.get(f"initial_eval_{k}"), "trained": r.get(f"eval_{k}")} for k in LOSSES if f"eval_{k}" in r]
    name = Path(repo_id).name
    return render_card(
        "style_transfer",
        _card_data(name, r, content, hub_content),
        model_name=name,
        summary=(
            f"A fast neural style transfer network (Johnson et al., 2016) for one style, shown below: one forward pass "
            f"stylises a photo of any size. Trained with hfdl's `train_style.py` for {r['steps']} steps on {content}."
        ),
        style_file=style_file,
        feature_net=r.get("feature_net", sa["feature_net"]),
        eval_description=(f"{r['eval_photos']}, whole, at {r['eval_size']} px (longer side)" if "eval_photos" in r else "fixed centre crops of the content images"),
        gatys_reference=_gatys_reference(r),
        loss_table=markdown_table(rows),
        content_weight=r["content_weight"],
        style_weight=r["style_weight"],
        tv_weight=r["tv_weight"],
        content_layer=r["content_layer"],
        style_layers=", ".join(f"`{x}`" for x in r["style_layers"]),
        data_description=f"Content: {content}, as random {sa['image_size']} px crops with horizontal flips. Style: `{style_file}`.",
        command=rc["command"],
        hyperparameters_table=markdown_table([{"hyperparameter": k, "value": v} for k, v in _hyperparameters(sa, t, r["steps"]).items()]),
        seed=rc.get("seed", t["seed"]),
        hardware=hardware(env),
        train_time=f"{r['train_seconds']:.0f} s",
        steps=r["steps"],
        throughput=f"{r['train_images_per_second']:.2f} crops/s",
        sample_time=f"{r.get('sample_seconds', 0):.2f} s",
        num_parameters=f"{r['num_parameters']:,}",
        num_residual_blocks=sa["num_residual_blocks"],
        versions_table=versions_table(env),
        how_to_use_code=_how_to_use(repo_id),
        limitations=_limitations(r, sa["image_size"], content),
        provenance=provenance([a for a in rc.get("offline_assets", []) if a])
        + (
            f"\n\nThe style image (`{style_file}`) is the one the user trained with; its rights stay with its author. "
            "The network weights are released under apache-2.0."
        ),
    )  # fmt: skip


def plans(out: Path, hub_model_id: str | None, only: list[str] | None = None) -> dict[str, RepoPlan]:
    """One repo: the network, its style image and sample, results, run config and card."""
    r, _ = finished_run(out)
    files = folder_files(out)
    for need in ("config.json", "model.safetensors", r.get("style_image") or "style.png", "sample.png"):
        if need not in files:
            raise HfdlError(f"{out} has no {need}: the style run did not finish; train it again with train_style.py")
    repo_id = repo_ids(hub_model_id, {"style": out})["style"]
    msg = f"hfdl train_style: style network, {r['steps']} steps, final loss {r.get('eval_loss', float('nan')):.4g}"
    description = f"Uploaded by hfdl from {out.name}: weights, config, style image, sample, results, run config, card."
    return {"style": RepoPlan(repo_id, files, style_card(out, repo_id), msg, description)}


register(TASK, plans)
