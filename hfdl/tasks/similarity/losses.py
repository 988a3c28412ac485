"""The metric-learning losses and in-batch miners, from pytorch-metric-learning (the field's library).

- `triplet` (FaceNet): for (anchor a, positive p, negative n), `max(0, |f(a) - f(p)|^2 - |f(a) - f(n)|^2 + margin)`
  on L2-normalised embeddings (squared Euclidean distance, as FaceNet; margin 0.2), averaged over the mined
  triplets whose loss is not zero (pytorch-metric-learning's reducer).
- `contrastive` (Hadsell, Chopra & LeCun 2006, the siamese loss): same-class pairs `d`, different-class pairs
  `max(0, margin - d)`, `d` the Euclidean distance of the unit embeddings (0..2), margin 1.0 by default.

Miners choose what the loss sees in each P x K batch:
- `semihard` (FaceNet): triplets with `d(a, p) < d(a, n) < d(a, p) + margin`, the negative farther than the
  positive but inside the margin;
- `hard`: triplets whose negative is closer than the positive (`d(a, n) < d(a, p)`); for pairs, the positive
  pairs farther than 0 and the negative pairs closer than the margin;
- `all`: every triplet (or pair) of the batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from hfdl.errors import HfdlError

LOSSES = ("triplet", "contrastive")
MINERS = ("semihard", "hard", "all")
DEFAULT_MARGIN = {"triplet": 0.2, "contrastive": 1.0}


@dataclass
class MetricLoss:
    """`criterion(embeddings, labels) -> loss` (the miner applied first), with the mined count of the last call."""

    loss: torch.nn.Module
    miner: torch.nn.Module | None

    def __call__(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        mined = self.miner(embeddings, labels) if self.miner is not None else None
        self.last_mined = None if mined is None else int(mined[0].numel())
        return self.loss(embeddings, labels, mined)


def build_loss(kind: str = "triplet", margin: float | None = None, miner: str = "semihard") -> MetricLoss:
    """The loss and miner of `--loss`, `--margin` (None: the loss's default) and `--miner`."""
    from pytorch_metric_learning import distances, losses, miners

    if kind not in LOSSES:
        raise HfdlError(f"--loss '{kind}' is unknown: use {' or '.join(LOSSES)}")
    if miner not in MINERS:
        raise HfdlError(f"--miner '{miner}' is unknown: use {', '.join(MINERS)}")
    margin = DEFAULT_MARGIN[kind] if margin is None else margin
    if not margin > 0:
        raise HfdlError(f"--margin must be > 0, got {margin}")
    if kind == "triplet":
        distance = distances.LpDistance(normalize_embeddings=True, p=2, power=2)  # FaceNet: squared L2 of unit vectors
        loss = losses.TripletMarginLoss(margin=margin, distance=distance)
        picked = None if miner == "all" else miners.TripletMarginMiner(margin=margin, type_of_triplets=miner, distance=distance)
        return MetricLoss(loss, picked)
    if miner == "semihard":
        raise HfdlError("--miner semihard is defined for triplets: use --miner hard or all with --loss contrastive")
    distance = distances.LpDistance(normalize_embeddings=True, p=2, power=1)
    loss = losses.ContrastiveLoss(pos_margin=0.0, neg_margin=margin, distance=distance)
    picked = None if miner == "all" else miners.PairMarginMiner(pos_margin=0.0, neg_margin=margin, distance=distance)
    return MetricLoss(loss, picked)
