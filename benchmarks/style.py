"""Claims (issue 5): Gatys at 256 px / 300 steps <= 5 min on 2 cores; the feature network cut after the last
used layer is >= 1.2x faster per step than the full one; the fast network is >= 100x faster than Gatys for the
same image and >= 5 images/s at 256 px on CPU. Arms alternate (A B A B ...) to spread machine noise.

Claim (issue 15, `quality`): each fast network bundled in the style Space scores a perceptual loss on the held-out
example photos at 256 px no higher than Gatys optimisation of the same loss (same layers, weights and style target)
stopped after 50 L-BFGS steps, started from noise as Gatys et al. and Johnson et al.'s baseline do; the start from the
photo itself is measured beside it. Prints a markdown table (the Space's README holds it) and the ratios.

    python benchmarks/style.py [--size 256 --steps 300 --step_rounds 4 --step_evals 8] [--sections speed,quality]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from _common import emit

from hfdl.core.images import image_to_tensor
from hfdl.tasks.style.gatys import DEFAULT_CONTENT_LAYER, DEFAULT_STYLE_LAYERS, FeatureNetwork, GatysConfig, gatys, gatys_iter, load_feature_network
from hfdl.tasks.style.model import TransformerNet

REPO = Path(__file__).resolve().parents[1]


def per_eval_seconds(content, style, cfg: GatysConfig, net: FeatureNetwork, evals: int) -> float:
    """Seconds per loss evaluation (forward + backward through the feature network), after one warm-up."""
    warm = GatysConfig(**{**cfg.__dict__, "steps": 1, "preview_every": 1})
    for _ in gatys_iter(content, [style], warm, net=net):
        pass
    run = GatysConfig(**{**cfg.__dict__, "steps": evals, "preview_every": evals})
    t0 = time.perf_counter()
    for _ in gatys_iter(content, [style], run, net=net):
        pass
    return (time.perf_counter() - t0) / (evals + 1)  # + the final loss evaluation


def step_flops(net: FeatureNetwork, image: torch.Tensor) -> int:
    """FLOPs of one loss evaluation: forward through `net`, backward from the requested layers to the image
    (the weights are frozen: only input gradients). What the cut can save, whatever the machine."""
    from torch.utils.flop_counter import FlopCounterMode

    x = image.clone().requires_grad_(True)
    with FlopCounterMode(display=False) as counter:
        sum(f.square().mean() for f in net(x).values()).backward()
    return counter.get_total_flops()


def truncation(content, style, layers: tuple[str, str | tuple], rounds: int, evals: int) -> dict:
    content_layer, style_layers = layers
    cfg = GatysConfig(optimizer="adam", content_layer=content_layer, style_layers=style_layers)
    cut = load_feature_network("vgg16", (content_layer, *style_layers), truncate=True)
    full = load_feature_network("vgg16", (content_layer, *style_layers), truncate=False)
    t_cut, t_full = [], []
    for _ in range(rounds):
        t_cut.append(per_eval_seconds(content, style, cfg, cut, evals))
        t_full.append(per_eval_seconds(content, style, cfg, full, evals))
    return {
        "cut": statistics.median(t_cut),
        "full": statistics.median(t_full),
        "flop_ratio": step_flops(full, content) / step_flops(cut, content),
        "modules_cut": len(cut.body),
        "modules_full": len(full.body),
    }


def fast_seconds(net: TransformerNet, content: torch.Tensor, repeats: int) -> float:
    net.eval()
    net.stylize(content)  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        net.stylize(content)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def quality(models_dir: Path, steps: int) -> dict:
    """Each bundled network's loss on the held-out photos beside Gatys stopped after `steps` L-BFGS steps (noise / content start)."""
    from hfdl.tasks.style.args import StyleArguments
    from hfdl.tasks.style.data import load_content_images
    from hfdl.tasks.style.pipeline import eval_photos, gatys_reference, mean_losses, perceptual_loss

    content = load_content_images(None, None, None, None)
    rows, out = [], {}
    for folder in sorted(d for d in models_dir.iterdir() if (d / "model.safetensors").is_file()):
        r = json.loads((folder / "all_results.json").read_text())
        sa = json.loads((folder / "run_config.json").read_text())["style_args"]
        style_file = models_dir.parent / json.loads((folder / "provenance.json").read_text())["style"]  # the Space's styles/
        args = StyleArguments(**{**sa, "style_image": str(style_file), "gatys_reference_steps": steps})
        photos = eval_photos(content.eval, r.get("eval_size", 256))
        criterion, style = perceptual_loss(args, args.style_image)
        model = TransformerNet.from_pretrained(folder)
        with torch.no_grad():
            loss = mean_losses(criterion(model(x).clamp(0, 1), x) for x in photos)["loss"]
        refs = {}
        for init in ("noise", "content"):
            args.gatys_reference_init = init
            refs[init] = gatys_reference(criterion, style, photos, args, loss)
        name = folder.name
        out[f"{name}_loss"] = loss
        for init, ref in refs.items():
            out[f"{name}_gatys_{init}_steps_to_match"] = ref["gatys_steps_to_match"]
            out[f"{name}_gatys{steps}_{init}_loss"] = ref["gatys_reference_loss"]
            out[f"{name}_vs_gatys{steps}_{init}"] = ref["loss_vs_gatys_reference"]
            out[f"{name}_gatys{steps}_{init}_seconds"] = ref["gatys_reference_seconds"]
        match = {init: str(ref["gatys_steps_to_match"]) if ref["gatys_steps_to_match"] is not None else f"> {steps}" for init, ref in refs.items()}

        rows.append(
            f"| `{name}` | {r['steps']:,} steps, {r['train_seconds'] / 60:.0f} min | **{loss:.3g}** | "
            f"{refs['noise']['gatys_reference_loss']:.3g} ({refs['noise']['gatys_reference_seconds']:.0f} s) | **{refs['noise']['loss_vs_gatys_reference']:.2f}** | "
            f"{match['noise']} | {refs['content']['gatys_reference_loss']:.3g} | {refs['content']['loss_vs_gatys_reference']:.2f} | {match['content']} |"
        )
    print(
        f"| network | training (2 CPU cores) | network loss | Gatys {steps} L-BFGS steps from noise (time) | ratio | steps to match | "
        f"Gatys {steps} steps from the photo | ratio | steps to match |\n|---|---|---|---|---|---|---|---|---|\n" + "\n".join(rows)
    )
    return out


def main() -> None:
    from skimage import data

    p = argparse.ArgumentParser()
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--step_rounds", type=int, default=3)
    p.add_argument("--step_evals", type=int, default=6)
    p.add_argument("--fast_repeats", type=int, default=10)
    p.add_argument("--sections", default="speed,quality", help="speed (issue 5's claims), quality (the bundled networks against Gatys)")
    p.add_argument("--reference_steps", type=int, default=50, help="L-BFGS steps of the Gatys reference in the quality section")
    a = p.parse_args()
    sections = set(a.sections.split(","))
    quality_results = quality(REPO / "spaces/style_transfer/models", a.reference_steps) if "quality" in sections else {}
    if "speed" not in sections:
        emit(quality_results)
        return

    content = image_to_tensor(data.astronaut(), a.size)
    style = image_to_tensor(REPO / "spaces/style_transfer/styles/waves.png", a.size)

    # per-step cost: the cut network vs the whole features stack (default layers, and a shallow set)
    default = truncation(content, style, (DEFAULT_CONTENT_LAYER, DEFAULT_STYLE_LAYERS), a.step_rounds, a.step_evals)
    shallow = truncation(content, style, ("relu3_3", ("relu1_2", "relu2_2", "relu3_3")), a.step_rounds, a.step_evals)

    # the fast network at the same size: default architecture (untrained: same cost) and the bundled one
    torch.manual_seed(0)
    fast_default = fast_seconds(TransformerNet(), content, a.fast_repeats)
    bundled_dir = next((d for d in sorted((REPO / "spaces/style_transfer/models").glob("*")) if (d / "model.safetensors").is_file()), None)
    fast_bundled = fast_seconds(TransformerNet.from_pretrained(bundled_dir), content, a.fast_repeats) if bundled_dir else None

    # the full Gatys run with the defaults (L-BFGS, content init, default layers), timed end to end
    t0 = time.perf_counter()
    result = gatys(content, [style], GatysConfig(steps=a.steps))
    gatys_seconds = time.perf_counter() - t0

    emit(
        {
            "size": a.size,
            "torch_threads": torch.get_num_threads(),
            "gatys_steps": result.steps,
            "gatys_256_300_seconds": gatys_seconds,
            "gatys_seconds_per_step": gatys_seconds / max(result.steps, 1),
            "truncation_speedup": default["full"] / default["cut"],
            "truncation_seconds_per_step_cut": default["cut"],
            "truncation_seconds_per_step_full": default["full"],
            "truncation_modules": f"{default['modules_cut']}/{default['modules_full']}",
            # the most the cut can give: the full/cut FLOP ratio of a loss evaluation (the backward pass
            # never enters unused layers, so the cut saves only their forward: VGG16 block 5 at 1/16 scale)
            "truncation_flop_ratio": default["flop_ratio"],
            "truncation_speedup_shallow_layers": shallow["full"] / shallow["cut"],
            "truncation_flop_ratio_shallow_layers": shallow["flop_ratio"],
            "fast_seconds_per_image": fast_default,
            "fast_images_per_second": 1 / fast_default,
            "fast_vs_gatys_speedup": gatys_seconds / fast_default,
            **({"fast_bundled_images_per_second": 1 / fast_bundled, "fast_bundled_vs_gatys_speedup": gatys_seconds / fast_bundled} if fast_bundled else {}),
            **quality_results,
        }
    )


if __name__ == "__main__":
    main()
