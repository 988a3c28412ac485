"""Classification metrics: thin wrappers over torchmetrics, gathered across processes by accelerate."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from accelerate import Accelerator
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix, MulticlassF1Score


def classification_metrics(num_classes: int) -> MetricCollection:
    """Accuracy (micro), macro-F1 and, with more than 5 classes, top-5 accuracy."""
    metrics = {
        "accuracy": MulticlassAccuracy(num_classes=num_classes, average="micro"),
        "f1_macro": MulticlassF1Score(num_classes=num_classes, average="macro"),
    }
    if num_classes > 5:
        metrics["top5"] = MulticlassAccuracy(num_classes=num_classes, top_k=5, average="micro")
    return MetricCollection(metrics)


@torch.inference_mode()
def evaluate_classifier(
    accelerator: Accelerator,
    model: torch.nn.Module,
    batches: Iterable,
    num_classes: int,
    forward: Callable[[torch.nn.Module, torch.Tensor], torch.Tensor] | None = None,
    confusion: bool = False,
) -> dict:
    """Run `model` over `(inputs, labels)` batches; return `eval_*` metrics (and the confusion matrix)."""
    was_training = model.training
    model.eval()
    collection = classification_metrics(num_classes).to(accelerator.device)
    cm = MulticlassConfusionMatrix(num_classes=num_classes).to(accelerator.device) if confusion else None
    loss_sum, n = 0.0, 0
    for x, y in batches:
        logits = forward(model, x) if forward else model(x)
        logits, y = accelerator.gather_for_metrics((logits.float(), y))
        loss_sum += torch.nn.functional.cross_entropy(logits, y, reduction="sum").item()
        n += y.numel()
        collection.update(logits, y)
        if cm is not None:
            cm.update(logits, y)
    out = {f"eval_{k}": v.item() for k, v in collection.compute().items()}
    out["eval_loss"] = loss_sum / max(n, 1)
    if cm is not None:
        out["confusion_matrix"] = cm.compute().cpu()
    model.train(was_training)
    return out


def plot_confusion_matrix(matrix: torch.Tensor, label_names: list[str], path: str, title: str) -> None:
    """Save a confusion-matrix PNG using torchmetrics' own plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from torchmetrics.utilities.plot import plot_confusion_matrix as tm_plot

    size = max(5, 0.55 * len(label_names) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    tm_plot(matrix, ax=ax, labels=list(label_names))
    ax.set_title(title)
    plt.setp(ax.get_xticklabels(), rotation=45, ha="right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
