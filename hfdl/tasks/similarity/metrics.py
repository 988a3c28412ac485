"""What an embedding is worth: retrieval (precision@1, recall@5, mAP@R), N-way one-shot accuracy and
verification (ROC AUC, the threshold at the equal error rate), all on cosine similarity.

Retrieval is leave-one-out over the evaluation split (each image queries all the others) through
pytorch-metric-learning's `AccuracyCalculator` (Musgrave et al., "A Metric Learning Reality Check": MAP@R is
its ranking metric). One-shot episodes and verification pairs are seeded, so two models are scored on the
same episodes and pairs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from hfdl.errors import HfdlError

RETRIEVAL_KEYS = ("precision_at_1", "recall_at_5", "map_at_r", "r_precision")


def _calculator(k: int | str):
    from pytorch_metric_learning.distances import CosineSimilarity
    from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator
    from pytorch_metric_learning.utils.inference import CustomKNN

    class RetrievalCalculator(AccuracyCalculator):
        """precision@1, R-precision, MAP@R of the library, plus recall@5: a query counts when one of its 5 nearest
        neighbours shares its class (the "Recall@K" of the metric-learning literature)."""

        def calculate_recall_at_5(self, knn_labels, query_labels, **kwargs):
            labels = knn_labels[:, :5]
            if labels.ndim > 2:
                labels = labels.squeeze(-1)
            return (labels == query_labels.reshape(-1, 1)).any(1).float().mean().item()

        def requires_knn(self):
            return super().requires_knn() + ["recall_at_5"]

    return RetrievalCalculator(
        include=("precision_at_1", "r_precision", "mean_average_precision_at_r", "recall_at_5"),
        k=k,  # the largest class (MAP@R reads R of them) and at least 5 (recall@5)
        knn_func=CustomKNN(CosineSimilarity(), batch_size=1024),
        device=torch.device("cpu"),
    )


def retrieval_metrics(embeddings: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """Leave-one-out retrieval over `embeddings` (N, D) with their class `labels` (N,)."""
    if len(embeddings) < 2:
        raise HfdlError(f"retrieval needs at least 2 evaluation images, got {len(embeddings)}: use a larger evaluation split")
    largest = int(torch.unique(labels, return_counts=True)[1].max())
    k = "max_bin_count" if largest - 1 >= 5 else min(len(labels) - 1, 5)  # MAP@R reads R neighbours, recall@5 five
    found = _calculator(k).get_accuracy(F.normalize(embeddings.float(), dim=-1), labels.long())
    return {
        "precision_at_1": found["precision_at_1"],
        "recall_at_5": found["recall_at_5"],
        "map_at_r": found["mean_average_precision_at_r"],
        "r_precision": found["r_precision"],
    }


def one_shot_accuracy(embeddings: torch.Tensor, labels: torch.Tensor, n_way: int = 5, episodes: int = 1000, seed: int = 0) -> float:
    """N-way one-shot accuracy: each episode draws `n_way` classes, one support image of each and one query of one of
    them (not its support image); the query takes the class of its most similar support image."""
    emb = F.normalize(embeddings.float(), dim=-1)
    labels = labels.long()
    classes = [c for c in labels.unique().tolist() if int((labels == c).sum()) >= 2]
    if len(classes) < n_way:
        raise HfdlError(f"--n_way {n_way} needs that many evaluation classes with 2+ images, found {len(classes)}: lower --n_way")
    members = {c: torch.nonzero(labels == c).flatten() for c in classes}
    g = torch.Generator().manual_seed(seed)
    supports, queries, truth = [], [], []
    for _ in range(episodes):
        chosen = [classes[i] for i in torch.randperm(len(classes), generator=g)[:n_way].tolist()]
        target = int(torch.randint(n_way, (1,), generator=g))
        row = []
        for j, c in enumerate(chosen):
            idx = members[c]
            if j == target:
                two = idx[torch.randperm(len(idx), generator=g)[:2]]
                row.append(int(two[0]))
                queries.append(int(two[1]))
            else:
                row.append(int(idx[torch.randint(len(idx), (1,), generator=g)]))
        supports.append(row)
        truth.append(target)
    s = emb[torch.tensor(supports)]  # (E, n_way, D)
    q = emb[torch.tensor(queries)]  # (E, D)
    guess = torch.einsum("end,ed->en", s, q).argmax(1)
    return (guess == torch.tensor(truth)).float().mean().item()


def verification_pairs(labels: torch.Tensor, num_pairs: int = 2000, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`num_pairs` same-class and `num_pairs` different-class index pairs, seeded: (first, second, same)."""
    labels = labels.long()
    n = len(labels)
    g = torch.Generator().manual_seed(seed)
    order = torch.argsort(labels, stable=True)
    sorted_labels = labels[order]
    starts = torch.searchsorted(sorted_labels, sorted_labels, right=False)
    ends = torch.searchsorted(sorted_labels, sorted_labels, right=True)
    multi = torch.nonzero(ends - starts >= 2).flatten()
    if len(multi) == 0 or len(labels.unique()) < 2:
        raise HfdlError("verification needs 2+ classes and a class with 2+ images in the evaluation split: use a larger evaluation split")
    # same-class: a random image of a class with 2+ images, and another of its class
    a_pos = multi[torch.randint(len(multi), (num_pairs,), generator=g)]
    span = ends[a_pos] - starts[a_pos]
    offset = (a_pos - starts[a_pos] + 1 + (torch.rand(num_pairs, generator=g) * (span - 1)).long()) % span
    b_pos = starts[a_pos] + offset
    # different-class: random pairs, redrawn until the classes differ
    a_neg, b_neg = torch.randint(n, (num_pairs,), generator=g), torch.randint(n, (num_pairs,), generator=g)
    for _ in range(100):
        clash = labels[a_neg] == labels[b_neg]
        if not clash.any():
            break
        b_neg[clash] = torch.randint(n, (int(clash.sum()),), generator=g)
    first = torch.cat([order[a_pos], a_neg])
    second = torch.cat([order[b_pos], b_neg])
    same = torch.cat([torch.ones(num_pairs, dtype=torch.bool), torch.zeros(num_pairs, dtype=torch.bool)])
    keep = labels[first].eq(labels[second]) == same
    return first[keep], second[keep], same[keep]


def verification_metrics(embeddings: torch.Tensor, labels: torch.Tensor, num_pairs: int = 2000, seed: int = 0) -> dict[str, float]:
    """ROC AUC of cosine similarity as the "same class" score on seeded pairs; the equal error rate, the threshold
    there (a cosine similarity: "same" from it on) and the accuracy at that threshold."""
    from torchmetrics.functional.classification import binary_auroc, binary_roc

    emb = F.normalize(embeddings.float(), dim=-1)
    first, second, same = verification_pairs(labels, num_pairs, seed)
    score = (emb[first] * emb[second]).sum(-1)
    target = same.long()
    auroc = binary_auroc(score, target).item()
    fpr, tpr, thresholds = binary_roc(score, target)
    fnr = 1 - tpr
    i = int(torch.argmin((fpr - fnr).abs()))
    threshold = float(thresholds[i].clamp(-1.0, 1.0))
    accuracy = ((score >= threshold) == same).float().mean().item()
    return {
        "verification_auroc": auroc,
        "verification_eer": float((fpr[i] + fnr[i]) / 2),
        "verification_threshold": threshold,
        "verification_accuracy": accuracy,
    }


def embedding_metrics(
    embeddings: torch.Tensor, labels: torch.Tensor, n_way: int = 5, episodes: int = 1000, pairs: int = 2000, seed: int = 0
) -> dict[str, float]:
    """Every metric of an embedding of the evaluation split (un-prefixed names)."""
    out = retrieval_metrics(embeddings, labels)
    out["one_shot_accuracy"] = one_shot_accuracy(embeddings, labels, n_way, episodes, seed)
    out.update(verification_metrics(embeddings, labels, pairs, seed))
    return out
