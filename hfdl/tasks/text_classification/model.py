"""Classifying texts with a trained model: hfdl's batched predictor and the strict loader of a saved folder or Hub
repo (no remote code runs). What scripts and Spaces import."""

from __future__ import annotations

import torch

from hfdl.tasks.text_classification.text_rnn import TextRNNForSequenceClassification


class TextClassifier:
    """A recurrent text classifier with its tokenizer: `probabilities` and `predict` over any number of texts."""

    def __init__(self, model: TextRNNForSequenceClassification, tokenizer):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.label_names = [model.config.id2label[i] for i in range(model.config.num_labels)]

    @torch.inference_mode()
    def probabilities(self, texts: list[str], batch_size: int = 64) -> torch.Tensor:
        """Class probabilities (N, num_labels) in the order of `texts`; batches hold texts of similar length."""
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        device = self.model.classifier.weight.device
        probs = torch.empty(len(texts), len(self.label_names))
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            enc = self.tokenizer([texts[i] for i in rows], padding=True, truncation=True, return_tensors="pt")
            logits = self.model(enc["input_ids"].to(device), attention_mask=enc["attention_mask"].to(device)).logits
            probs[rows] = logits.float().softmax(-1).cpu()
        return probs

    def predict(self, texts: str | list[str], batch_size: int = 64) -> list[dict]:
        """The top label and its probability for each text: [{"label": name, "score": p}, ...]."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        top = self.probabilities(texts, batch_size).max(-1)
        return [{"label": self.label_names[i], "score": float(p)} for p, i in zip(top.values.tolist(), top.indices.tolist())]


def load_text_classifier(path_or_id: str, device: str | torch.device | None = None) -> TextClassifier:
    """Load a saved folder or Hub repo with hfdl's own class (no remote code), strictly."""
    from hfdl.core.transformers_models import load_own_pretrained

    model, tokenizer = load_own_pretrained(TextRNNForSequenceClassification, path_or_id, "text classifier", "train_text_classifier.py")
    return TextClassifier(model if device is None else model.to(device), tokenizer)
