"""A small causal character transformer: the in-project baseline the recurrent char-LMs are measured against.

nanoGPT's shape (pre-LayerNorm blocks, learned positions, GELU MLP 4x wide, no biases, output layer tied to the
embedding) on `torch.nn.functional.scaled_dot_product_attention` with `is_causal=True` (PyTorch's fused
attention kernels). It trains on random windows of `block_size` characters, nanoGPT's sampling, through the
shared loop, and is scored over the whole validation stream by `evaluate_windows`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class CausalSelfAttention(nn.Module):
    def __init__(self, width: int, heads: int, dropout: float):
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.qkv = nn.Linear(width, 3 * width, bias=False)
        self.proj = nn.Linear(width, width, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = (z.view(b, t, self.heads, c // self.heads).transpose(1, 2) for z in self.qkv(x).split(c, dim=2))
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0, is_causal=True)
        return self.proj(y.transpose(1, 2).reshape(b, t, c))


class Block(nn.Module):
    def __init__(self, width: int, heads: int, dropout: float):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(width, bias=False), nn.LayerNorm(width, bias=False)
        self.attn = CausalSelfAttention(width, heads, dropout)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width, bias=False), nn.GELU(), nn.Linear(4 * width, width, bias=False), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class CharTransformer(nn.Module):
    """Characters (B, T <= block_size) -> next-character logits (B, T, vocab)."""

    def __init__(self, vocab_size: int, block_size: int = 64, num_layers: int = 4, heads: int = 4, width: int = 128, dropout: float = 0.0):
        super().__init__()
        self.block_size = block_size
        self.tok = nn.Embedding(vocab_size, width)
        self.pos = nn.Embedding(block_size, width)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(Block(width, heads, dropout) for _ in range(num_layers))
        self.ln_f = nn.LayerNorm(width, bias=False)
        self.lm_head = nn.Linear(width, vocab_size, bias=False)
        self.lm_head.weight = self.tok.weight  # tied, as nanoGPT
        self.apply(self._init)
        for name, p in self.named_parameters():  # GPT-2's scaled init of the residual projections
            if name.endswith(("proj.weight", "mlp.2.weight")):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * num_layers))

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        t = ids.shape[1]
        x = self.drop(self.tok(ids) + self.pos(torch.arange(t, device=ids.device)))
        for block in self.blocks:
            x = block(x)
        return self.lm_head(self.ln_f(x))


@torch.inference_mode()
def evaluate_windows(model: CharTransformer, ids: torch.Tensor, batch_size: int = 64) -> float:
    """Mean NLL (nats/char) of every character of `ids` after the first, each scored once: windows of `block_size`
    with stride `block_size // 2`; the first window scores all its positions, later ones their second half, so every
    character but the first `block_size // 2` is predicted from at least `block_size // 2` characters of context."""
    was = model.training
    model.eval()
    block, stride = model.block_size, model.block_size // 2
    n = ids.numel() - 1  # targets: ids[1:]
    starts = list(range(0, max(1, n - block + 1), stride))
    if starts[-1] + block < n:
        starts.append(n - block)
    total, count, scored_to = 0.0, 0, 0  # scored_to: targets [0, scored_to) are done
    for i in range(0, len(starts), batch_size):
        chunk = starts[i : i + batch_size]
        x = torch.stack([ids[s : s + block] for s in chunk])
        y = torch.stack([ids[s + 1 : s + block + 1] for s in chunk])
        nll = F.cross_entropy(model(x).float().transpose(1, 2), y, reduction="none")  # (B, block)
        for row, s in zip(nll, chunk):
            first = scored_to - s  # positions before it were scored by an earlier window
            total += row[first:].sum().item()
            count += block - first
            scored_to = s + block
    model.train(was)
    return total / count
