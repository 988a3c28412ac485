"""The pictures of a generative run: samples grid, reconstructions, latent interpolations and, for a 2-D
latent, the latent-space map with its decoded manifold. Used by training and by `generate_images.py`."""

from __future__ import annotations

from pathlib import Path

import torch
from torchvision.utils import make_grid, save_image

from hfdl.tasks.generative.model import ImageGenerator


def upscale(images: torch.Tensor, min_side: int = 56) -> torch.Tensor:
    """Small images enlarged by an integer factor (nearest neighbour) so a grid is readable in a browser."""
    factor = max(1, -(-min_side // images.shape[-1]))
    return images if factor == 1 else torch.nn.functional.interpolate(images, scale_factor=factor, mode="nearest")


def grid(images: torch.Tensor, nrow: int, min_side: int = 56) -> torch.Tensor:
    """A (C, H, W) grid of images in [0, 1], `nrow` per row, enlarged for reading, with white gaps."""
    return make_grid(upscale(images.cpu(), min_side), nrow=max(1, min(nrow, len(images))), padding=2, pad_value=1.0)


def samples_grid(model: ImageGenerator, num: int, seed: int, label: int | None = None) -> torch.Tensor:
    """A (C, H, W) grid of `num` samples; a conditional model without `label` shows one class per column."""
    nrow = model.num_classes if model.num_classes and label is None else 8
    return grid(model.sample(num, seed=seed, labels=label), nrow)


def interpolation_grid(model: ImageGenerator, pairs: list[tuple[int, int]], steps: int = 10, label: int | None = None) -> torch.Tensor:
    rows = [model.interpolate(a, b, steps, label if label is not None else (0 if model.num_classes else None)) for a, b in pairs]
    return grid(torch.cat(rows), steps)


def reconstruction_grid(model: ImageGenerator, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
    """Rows of 8 inputs over their reconstructions."""
    x = images.float() / 255 if images.dtype == torch.uint8 else images
    rec = model.reconstruct(x, labels if model.num_classes else None).cpu()
    rows = [t for i in range(0, len(x), 8) for t in (x[i : i + 8], rec[i : i + 8])]
    return grid(torch.cat(rows), 8)


def write_pictures(model: ImageGenerator, data, out: Path, num_samples: int, seed: int) -> list[str]:
    """samples.png, interpolation.png, reconstructions.png (models with an encoder), latent_space.png (2-D latent)."""
    out = Path(out)
    written = ["samples.png", "interpolation.png"]
    save_image(samples_grid(model, num_samples, seed), out / "samples.png")
    save_image(interpolation_grid(model, [(seed + 2 * i, seed + 2 * i + 1) for i in range(4)]), out / "interpolation.png")
    if model.encoder is not None:
        labels = data.test_labels[:16] if data.test_labels is not None else None
        save_image(reconstruction_grid(model, data.test[:16], labels), out / "reconstructions.png")
        written.append("reconstructions.png")
    if model.latent_dim == 2:
        latent_map(model, data, out / "latent_space.png")
        written.append("latent_space.png")
    return written


def latent_map(model: ImageGenerator, data, path: Path, side: int = 15) -> None:
    """Left: test images' latent means coloured by class (models with an encoder). Right: the decoder's images
    over a grid of the prior's quantiles (Kingma & Welling's manifold figure)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy.stats import norm

    q = torch.tensor(norm.ppf(torch.linspace(0.05, 0.95, side).numpy()), dtype=torch.float32)
    z = torch.stack([q.repeat(side), q.flip(0).repeat_interleave(side)], dim=1)  # rows top to bottom: z2 high to low
    labels = torch.zeros(len(z), dtype=torch.long) if model.num_classes else None
    manifold = make_grid(model.generate(z, labels).cpu(), nrow=side, padding=0)
    ncols = 2 if model.encoder is not None else 1
    fig, axes = plt.subplots(1, ncols, figsize=(6 * ncols, 6), squeeze=False)
    if model.encoder is not None:
        x = data.test[:5000].float() / 255
        with torch.no_grad():
            mean = torch.cat([model.encode(x[i : i + 500])[0] for i in range(0, len(x), 500)]).cpu()
        ax = axes[0, 0]
        c = data.test_labels[: len(mean)] if data.test_labels is not None else None
        sc = ax.scatter(mean[:, 0], mean[:, 1], c=c, cmap="tab10", s=3)
        if c is not None and data.label_names:
            handles = [plt.Line2D([], [], marker="o", ls="", color=sc.cmap(sc.norm(i)), label=n) for i, n in enumerate(data.label_names)]
            ax.legend(handles=handles, fontsize=7, markerscale=1.2, loc="best")
        ax.set(title="test images' latent means", xlabel="z1", ylabel="z2")
    ax = axes[0, -1]
    ax.imshow(manifold.permute(1, 2, 0).numpy(), extent=(q[0].item(), q[-1].item(), q[0].item(), q[-1].item()), cmap="gray")
    ax.set(title="decoded prior quantiles", xlabel="z1", ylabel="z2")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
