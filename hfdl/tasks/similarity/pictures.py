"""The run's pictures: the evaluation embeddings in 2-D coloured by class (`embeddings.png`), and queries with their
five nearest neighbours (`retrieval.png`)."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

MAX_PROJECTED = 2000  # t-SNE points (seeded subsample): enough to see the clusters, seconds on 2 cores


def project_2d(embeddings: torch.Tensor, method: str = "tsne", seed: int = 0):
    """(N, D) -> (N, 2) numpy: sklearn t-SNE (cosine) or PCA."""
    x = F.normalize(embeddings.float(), dim=-1).numpy()
    if method == "pca" or len(x) < 5:
        from sklearn.decomposition import PCA

        return PCA(n_components=2, random_state=seed).fit_transform(x)
    from sklearn.manifold import TSNE

    return TSNE(n_components=2, metric="cosine", init="pca", perplexity=min(30.0, (len(x) - 1) / 3), random_state=seed).fit_transform(x)


def nearest(embeddings: torch.Tensor, queries: torch.Tensor, k: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    """(similarities, indices) of the `k` nearest other images of each query index (cosine, the query itself left out)."""
    e = F.normalize(embeddings.float(), dim=-1)
    sim = e[queries] @ e.T
    sim[torch.arange(len(queries)), queries] = -float("inf")
    return sim.topk(min(k, len(e) - 1), dim=1)


def write_pictures(embeddings, labels, eval_ds, image_column: str, label_names: list[str], out: Path, method: str = "tsne", seed: int = 0) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    g = torch.Generator().manual_seed(seed)
    pick = torch.randperm(len(embeddings), generator=g)[:MAX_PROJECTED]
    xy = project_2d(embeddings[pick], method, seed)
    fig, ax = plt.subplots(figsize=(7, 6))
    lab = labels[pick].numpy()
    cmap = plt.get_cmap("tab10" if len(label_names) <= 10 else "tab20")
    for c in sorted(set(lab.tolist())):
        m = lab == c
        ax.scatter(xy[m, 0], xy[m, 1], s=4, color=cmap(c % cmap.N), label=label_names[c] if c < len(label_names) else str(c))
    ax.set_title(f"Evaluation embeddings ({method.upper() if method == 'pca' else 't-SNE'}, {len(pick)} images)")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(markerscale=3, fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(out / "embeddings.png", dpi=100)
    plt.close(fig)

    queries = _one_query_per_class(labels, 8, g)
    sims, idx = nearest(embeddings, queries, 5)
    fig, axes = plt.subplots(len(queries), 1 + idx.shape[1], figsize=(1.6 * (1 + idx.shape[1]), 1.7 * len(queries)), squeeze=False)
    for r, q in enumerate(queries.tolist()):
        _tile(axes[r][0], eval_ds[q][image_column], f"query: {label_names[int(labels[q])]}", "black")
        for c, (j, s) in enumerate(zip(idx[r].tolist(), sims[r].tolist()), start=1):
            same = int(labels[j]) == int(labels[q])
            _tile(axes[r][c], eval_ds[j][image_column], f"{label_names[int(labels[j])]} {s:.2f}", "green" if same else "red")
    fig.suptitle("Queries (left) and their 5 nearest evaluation images (cosine similarity; red: another class)", fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "retrieval.png", dpi=100)
    plt.close(fig)


def _one_query_per_class(labels: torch.Tensor, n: int, g: torch.Generator) -> torch.Tensor:
    picks = []
    for c in labels.unique().tolist():
        idx = torch.nonzero(labels == c).flatten()
        picks.append(int(idx[torch.randint(len(idx), (1,), generator=g)]))
    return torch.tensor(picks[:n])


def _tile(ax, image, title: str, color: str) -> None:
    ax.imshow(image.convert("RGB"))
    ax.set_title(title, fontsize=7, color=color)
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_edgecolor(color)
        spine.set_linewidth(2)


def write_neighbours(query, images: list, hits: list[dict], path) -> None:
    """One row: the query, then its neighbours with their label and similarity (scripts/search.py --output)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from hfdl.core.images import open_image

    fig, axes = plt.subplots(1, 1 + len(images), figsize=(1.8 * (1 + len(images)), 2.1), squeeze=False)
    _tile(axes[0][0], open_image(query), "query", "black")
    for ax, image, hit in zip(axes[0][1:], images, hits):
        _tile(ax, image, f"{hit.get('label', '#' + str(hit['index']))} {hit['score']:.2f}", "black")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
