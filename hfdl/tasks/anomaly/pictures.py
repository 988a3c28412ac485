"""The anomaly run's pictures: ROC curves per method and class (`roc.png`), the most and least anomalous test images
of the first normal class per method (`most_anomalous_<method>.png`), and the autoencoder's inputs over its
reconstructions (`reconstructions.png`)."""

from __future__ import annotations

from pathlib import Path

import torch


def write_pictures(scores: dict, labels: torch.Tensor, test_ds, image_column: str, names: list[str], classes: list[int], out: Path, shown: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from torchmetrics.functional.classification import binary_auroc, binary_roc

    methods = list(scores)
    fig, axes = plt.subplots(1, len(methods), figsize=(5 * len(methods), 4.6), squeeze=False)
    for ax, method in zip(axes[0], methods):
        for c in classes:
            target = (labels != c).long()
            fpr, tpr, _ = binary_roc(scores[method][c], target)
            ax.plot(fpr.numpy(), tpr.numpy(), lw=1.2, label=f"{names[c]} ({binary_auroc(scores[method][c], target).item():.3f})")
        ax.plot([0, 1], [0, 1], "k:", lw=0.8)
        ax.set_title(f"{method}: ROC, normal class vs the rest")
        ax.set_xlabel("false positive rate (normal flagged)")
        ax.set_ylabel("true positive rate (anomalies found)")
        ax.legend(fontsize=7, title="normal class (AUROC)", title_fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "roc.png", dpi=100)
    plt.close(fig)

    c = classes[0]
    for method in methods:
        order = torch.argsort(scores[method][c], descending=True)
        rows = {"most anomalous": order[:8].tolist(), "least anomalous": order.flip(0)[:8].tolist()}
        fig, axes = plt.subplots(2, 8, figsize=(13, 4), squeeze=False)
        for r, (title, idx) in enumerate(rows.items()):
            for j, i in enumerate(idx):
                ax = axes[r][j]
                ax.imshow(test_ds[i][image_column].convert("RGB"))
                ax.set_title(f"{names[int(labels[i])]} {scores[method][c][i]:.3f}", fontsize=7, color="black" if int(labels[i]) == c else "red")
                ax.axis("off")
            axes[r][0].text(-0.1, 0.5, title, transform=axes[r][0].transAxes, rotation=90, va="center", ha="right", fontsize=9)
        fig.suptitle(f"{method}, normal class {names[c]}: the test images it scores highest and lowest (red: another class)", fontsize=9)
        fig.tight_layout()
        fig.savefig(out / f"most_anomalous_{method}.png", dpi=100)
        plt.close(fig)

    if shown:
        from torchvision.utils import save_image

        test = shown["test"]
        normal = torch.nonzero(labels == c).flatten()[:8]
        other = torch.nonzero(labels != c).flatten()[:8]
        x = test[torch.cat([normal, other])]
        recon = shown["model"].reconstruct(x)
        grid = torch.cat([x[:8], recon[:8], x[8:], recon[8:]])  # rows: normal inputs, their reconstructions, anomalies, theirs
        if grid.shape[-1] < 96:  # small images (28 px) drawn larger, pixels kept sharp
            grid = torch.nn.functional.interpolate(grid, scale_factor=max(1, 96 // grid.shape[-1]), mode="nearest")
        save_image(grid.expand(-1, 3, -1, -1) if grid.shape[1] == 1 else grid, str(out / "reconstructions.png"), nrow=8, padding=2)
