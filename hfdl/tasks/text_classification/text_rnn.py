"""Recurrent text classifiers: embedding -> (bidirectional, stacked) RNN / LSTM / GRU -> masked pooling -> linear.

Built as a transformers model so that a saved folder is a Hub repo that plain transformers runs::

    AutoModelForSequenceClassification.from_pretrained(folder, trust_remote_code=True)
    pipeline("text-classification", model=folder, trust_remote_code=True)

Padding never changes a prediction: each direction reads exactly the real tokens of each text, as over a
`torch.nn.utils.rnn.pack_padded_sequence`, and the pooling (`last`, `max`, `mean`) sees real positions only. The
packed semantics come without a `PackedSequence`: a recurrence is causal, so the forward direction runs the fused
kernel over the right-padded batch (its outputs at real positions never see the padding after them), and the
backward direction runs it over each text reversed within its own length (the padding stays at the end), whose
outputs are reversed back. On CPU, torch's packed layers cost about twice the unpadded batch in training (the
backward of each step's slice of the packed input allocates a zero gradient of the whole input: quadratic in the
length), while this costs the unpadded batch plus the few padded steps a length-bucketed batch has
(`benchmarks/text_classification.py`; the tests check equality with `pack_padded_sequence`).

Recurrent dropout (Gal & Ghahramani 2015, "A Theoretically Grounded Application of Dropout in Recurrent Neural
Networks") drops the same hidden units of a sequence at every time step: one Bernoulli mask per sequence, layer and
direction multiplies the state fed back into the recurrence. The fused kernels cannot take such a mask, so in
training with `recurrent_dropout > 0` the layers run as a per-step loop over the same parameters (the input
projections of all steps in one product, then one small product per step); otherwise, and always at inference,
the fused kernels run.

This file is copied verbatim into every saved folder as `text_rnn.py` (transformers' remote-code mechanism), so it
imports only torch and transformers. hfdl's own loader (`load_text_classifier` in `model.py`) imports this class
directly: no remote code is executed there.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F
from transformers import PreTrainedConfig, PreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput

try:  # inside hfdl: the one user-error type; in a downloaded repo: a plain ValueError subclass
    from hfdl.errors import HfdlError as _UserError
except ImportError:  # pragma: no cover - only without hfdl installed

    class _UserError(ValueError):
        """A user-caused problem (one line: what is wrong and how to fix it)."""


CELL_TYPES = {"rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}
POOLINGS = ("last", "max", "mean")


class TextRNNConfig(PreTrainedConfig):
    """Hyperparameters of a recurrent text classifier.

    Args:
        cell_type: `rnn` (tanh), `lstm` or `gru`.
        vocab_size: tokens in the vocabulary, padding and unknown included.
        embedding_dim: size of the token embedding.
        hidden_size: units per direction of each recurrent layer.
        num_layers: stacked recurrent layers.
        bidirectional: a second direction reads each text from its last real token back to the first.
        pooling: `last` (the final state of each direction), `max` or `mean` over the real positions.
        dropout: dropout on the embeddings, between recurrent layers and before the classifier.
        recurrent_dropout: per-sequence dropout of the hidden state fed back at every step (the same units each step).
        pad_token_id: the padding token (its embedding is zero and never trained).
    """

    model_type = "hfdl_text_rnn"

    def __init__(
        self,
        cell_type: str = "gru",
        vocab_size: int = 1000,
        embedding_dim: int = 128,
        hidden_size: int = 128,
        num_layers: int = 1,
        bidirectional: bool = False,
        pooling: str = "max",
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        pad_token_id: int = 0,
        **kwargs,
    ):
        self.cell_type = cell_type
        self.vocab_size = vocab_size
        self.embedding_dim = embedding_dim
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bidirectional = bidirectional
        self.pooling = pooling
        self.dropout = dropout
        self.recurrent_dropout = recurrent_dropout
        super().__init__(pad_token_id=pad_token_id, **kwargs)
        self.check()

    @property
    def num_hidden_layers(self) -> int:
        return self.num_layers

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    def check(self) -> None:
        """Raise a one-line error naming the bad value and the fix."""
        if self.cell_type not in CELL_TYPES:
            raise _UserError(f"--model_type '{self.cell_type}' is unknown: use one of {', '.join(CELL_TYPES)}")
        if self.pooling not in POOLINGS:
            raise _UserError(f"--pooling '{self.pooling}' is unknown: use one of {', '.join(POOLINGS)}")
        for name in ("vocab_size", "embedding_dim", "hidden_size", "num_layers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise _UserError(f"--{name} must be a positive integer, got {value!r}")
        for name in ("dropout", "recurrent_dropout"):
            if not 0 <= getattr(self, name) < 1:
                raise _UserError(f"--{name} must be in [0, 1), got {getattr(self, name)}")


def lengths_from_mask(input_ids: torch.Tensor, attention_mask: torch.Tensor | None, pad_token_id: int) -> torch.Tensor:
    """Real lengths (B,) of right-padded rows; at least 1, so an empty text reads one padding token (zero embedding)."""
    mask = attention_mask.bool() if attention_mask is not None else input_ids != pad_token_id
    lengths = mask.sum(1)
    positions = torch.arange(mask.size(1), device=mask.device)
    if attention_mask is not None and not bool((mask == (positions < lengths[:, None])).all()):
        raise _UserError("the attention mask is not right-padded (real tokens first, padding after): tokenize with padding_side='right'")
    return lengths.clamp(min=1)


def reverse_padded(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse each row's first `lengths[b]` steps and leave its padding in place: x (B, T, ...)."""
    steps = torch.arange(x.size(1), device=x.device)[None]  # (1, T)
    last = (lengths.to(x.device) - 1)[:, None]
    index = torch.where(steps <= last, last - steps, steps)  # (B, T)
    return x.gather(1, index.view(*index.shape, *([1] * (x.dim() - 2))).expand_as(x))


def variational_mask(batch: int, size: int, p: float, like: torch.Tensor) -> torch.Tensor:
    """One inverted-dropout mask per sequence (B, size): kept units scaled by 1 / (1 - p), the rest 0."""
    return torch.empty(batch, size, dtype=like.dtype, device=like.device).bernoulli_(1 - p) / (1 - p)


def _recurrence(cell_type: str, gi: torch.Tensor, w_hh: torch.Tensor, b_hh: torch.Tensor, drop_mask: torch.Tensor) -> torch.Tensor:
    """One direction of one layer, step by step, with PyTorch's own cell equations and the state fed back masked.

    gi (B, T, G*H): the input projections `x W_ih^T + b_ih` of every step; drop_mask (B, H): one recurrent-dropout
    mask per sequence, the same at every step. Returns the outputs (B, T, H). Padding after a text's end only
    changes outputs after its end, as in the fused kernels.
    """
    batch, steps = gi.shape[:2]
    h = gi.new_zeros(batch, w_hh.size(1))
    c = torch.zeros_like(h) if cell_type == "lstm" else None
    outputs = []
    for t in range(steps):
        gh = F.linear(h * drop_mask, w_hh, b_hh)
        x = gi[:, t]
        if cell_type == "gru":  # gate order r, z, n
            xr, xz, xn = x.chunk(3, 1)
            hr, hz, hn = gh.chunk(3, 1)
            r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
            h = (1 - z) * torch.tanh(xn + r * hn) + z * h
        elif cell_type == "lstm":  # gate order i, f, g, o
            i, f, g, o = (x + gh).chunk(4, 1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
        else:
            h = torch.tanh(x + gh)
        outputs.append(h)
    return torch.stack(outputs, 1)


class TextRNNForSequenceClassification(PreTrainedModel):
    """Token embedding -> fused RNN/LSTM/GRU layers (one single-layer module per layer and direction) -> masked
    pooling -> dropout -> linear."""

    config_class = TextRNNConfig
    base_model_prefix = "text_rnn"
    main_input_name = "input_ids"
    _no_split_modules = []

    def __init__(self, config: TextRNNConfig):
        super().__init__(config)
        self.embed = nn.Embedding(config.vocab_size, config.embedding_dim, padding_idx=config.pad_token_id)
        cell, width = getattr(nn, CELL_TYPES[config.cell_type]), config.hidden_size * config.num_directions
        self.layers = nn.ModuleList(
            nn.ModuleList(cell(config.embedding_dim if i == 0 else width, config.hidden_size, batch_first=True) for _ in range(config.num_directions))
            for i in range(config.num_layers)
        )
        self.drop = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(width, config.num_labels)
        if config.cell_type == "lstm":  # forget-gate bias 1 (Jozefowicz et al. 2015): remember by default
            h = config.hidden_size
            with torch.no_grad():
                for layer in self.layers:
                    for rnn in layer:
                        rnn.bias_ih_l0[h : 2 * h].fill_(1.0)  # gate order i, f, g, o
                        rnn.bias_hh_l0[h : 2 * h].zero_()
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        """Keep PyTorch's default initialisation (and the zero padding embedding)."""

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embed

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.embed = value

    def encode(self, x: torch.Tensor, lengths: torch.Tensor, recurrent_dropout: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
        """Embedded right-padded texts x (B, T, E) -> outputs (B, T, D*H), zero at padding, and the final states
        (B, D*H): the forward direction's after the last real token, the backward direction's after the first.

        With `recurrent_dropout` > 0 the layers run step by step with one dropout mask per sequence on the state fed
        back (the per-step loop), else on the fused kernels.
        """
        real = torch.arange(x.size(1), device=x.device)[None] < lengths.to(x.device)[:, None]  # (B, T)
        inputs = x
        for i, layer in enumerate(self.layers):
            outputs, finals = [], []
            for direction, rnn in enumerate(layer):
                seq = reverse_padded(inputs, lengths) if direction else inputs
                if recurrent_dropout > 0:
                    mask = variational_mask(x.size(0), self.config.hidden_size, recurrent_dropout, x)
                    out = _recurrence(self.config.cell_type, F.linear(seq, rnn.weight_ih_l0, rnn.bias_ih_l0), rnn.weight_hh_l0, rnn.bias_hh_l0, mask)
                else:
                    out = rnn(seq)[0]
                finals.append(out.gather(1, (lengths.to(x.device) - 1).view(-1, 1, 1).expand(-1, 1, out.size(2))).squeeze(1))
                outputs.append(reverse_padded(out, lengths) if direction else out)
            inputs = torch.cat(outputs, -1)
            if i + 1 < len(self.layers):
                inputs = F.dropout(inputs, self.config.dropout, self.training)
        return inputs * real[..., None], torch.cat(finals, -1)

    def pool(self, out: torch.Tensor, final: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, T, D*H) -> (B, D*H) over the real positions only."""
        if self.config.pooling == "last":
            return final
        real = (torch.arange(out.size(1), device=out.device)[None] < lengths.to(out.device)[:, None])[..., None]
        if self.config.pooling == "max":
            return out.masked_fill(~real, float("-inf")).amax(1)
        return (out * real).sum(1) / lengths.to(out.device, out.dtype)[:, None]

    def forward(
        self,
        input_ids: torch.LongTensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> SequenceClassifierOutput:
        """Logits (B, num_labels) of right-padded `input_ids` (B, T); `labels` (B,) add the cross-entropy loss."""
        lengths = lengths_from_mask(input_ids, attention_mask, self.config.pad_token_id)
        width = int(lengths.max())
        input_ids = input_ids[:, :width]  # columns of padding only change nothing: skip them
        x = self.drop(self.embed(input_ids))
        out, final = self.encode(x, lengths, self.config.recurrent_dropout if self.training else 0.0)
        logits = self.classifier(self.drop(self.pool(out, final, lengths)))
        loss = F.cross_entropy(logits, labels.to(logits.device)) if labels is not None else None
        return SequenceClassifierOutput(loss=loss, logits=logits)


TextRNNConfig.register_for_auto_class()
TextRNNForSequenceClassification.register_for_auto_class("AutoModelForSequenceClassification")
