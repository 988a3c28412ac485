"""Character n-gram language model with interpolated Kneser-Ney smoothing: the baseline a char-RNN must beat."""

from __future__ import annotations

import math
from collections import Counter, defaultdict

UNK = "\x00"  # stands for every validation character the training text never shows


class KneserNeyCharLM:
    """Interpolated Kneser-Ney (absolute discount `discount` at every order) over characters.

    The highest order uses raw counts, lower orders continuation counts (in how many distinct contexts a
    string follows), and the lowest is interpolated with the uniform distribution over the vocabulary
    (training characters plus one unknown symbol), so every probability is > 0.
    """

    def __init__(self, order: int = 4, discount: float = 0.75):
        if order < 1:
            raise ValueError(f"order must be >= 1, got {order}")
        self.order, self.discount = order, discount

    def fit(self, text: str) -> KneserNeyCharLM:
        n = self.order
        self.vocab = set(text) | {UNK}
        raw = [Counter() for _ in range(n + 1)]  # raw[k]: counts of k-grams
        raw[n] = Counter(text[i : i + n] for i in range(len(text) - n + 1))
        # counts[k]: raw counts at the top order, continuation counts below
        self.counts: list[dict[str, int]] = [dict() for _ in range(n + 1)]
        self.counts[n] = dict(raw[n])
        for k in range(n - 1, 0, -1):
            cont: Counter = Counter()
            for gram in self.counts[k + 1]:
                cont[gram[1:]] += 1
            self.counts[k] = dict(cont)
        # per context (k-1 chars): total count and number of distinct followers
        self.ctx_total: list[dict[str, int]] = [dict() for _ in range(n + 1)]
        self.ctx_types: list[dict[str, int]] = [dict() for _ in range(n + 1)]
        for k in range(1, n + 1):
            tot: defaultdict = defaultdict(int)
            typ: defaultdict = defaultdict(int)
            for gram, c in self.counts[k].items():
                tot[gram[:-1]] += c
                typ[gram[:-1]] += 1
            self.ctx_total[k], self.ctx_types[k] = dict(tot), dict(typ)
        return self

    def prob(self, context: str, char: str) -> float:
        """P(char | last order-1 characters of context)."""
        p = 1.0 / len(self.vocab)
        d = self.discount
        for k in range(1, self.order + 1):
            ctx = context[len(context) - (k - 1) :] if k > 1 else ""
            if k > 1 and len(context) < k - 1:
                break
            total = self.ctx_total[k].get(ctx)
            if not total:
                break  # unseen context: keep the lower-order estimate
            c = self.counts[k].get(ctx + char, 0)
            p = max(c - d, 0.0) / total + d * self.ctx_types[k][ctx] / total * p
        return p

    def nats_per_char(self, text: str) -> float:
        """Mean negative log-likelihood of `text` (each character given the previous order-1), in nats."""
        text = "".join(ch if ch in self.vocab else UNK for ch in text)
        total = 0.0
        n = self.order
        for i in range(1, len(text)):
            total -= math.log(self.prob(text[max(0, i - n + 1) : i], text[i]))
        return total / max(1, len(text) - 1)
