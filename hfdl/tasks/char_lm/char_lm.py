"""Character-level language models: vanilla RNN (tanh), LSTM and GRU on the fused `torch.nn` modules.

One family, one class (`getattr(nn, "LSTM")`), built as a transformers model so that a saved folder is a
Hub repo that plain transformers runs::

    AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True)
    pipeline("text-generation", model=folder, trust_remote_code=True)

The recurrent state is the generation cache: `forward(input_ids, state=...)` returns the new `state`, and
`generate` feeds only the newest character with it (constant cost per character, the prefix is never
re-encoded). This file is copied verbatim into every saved folder as `char_lm.py` (transformers' remote-code mechanism:
the file keeps its name so published repos keep their layout), so it imports only torch and transformers.

hfdl's own loader (`load_char_lm` in `model.py`) imports this class directly: no remote code is executed, and loading is
strict (a missing or unexpected tensor is an error).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
from torch import nn
from transformers import GenerationMixin, PreTrainedConfig, PreTrainedModel
from transformers.utils import ModelOutput

try:  # inside hfdl: the one user-error type; in a downloaded repo: a plain ValueError subclass
    from hfdl.errors import HfdlError as _UserError
except ImportError:  # pragma: no cover - only without hfdl installed

    class _UserError(ValueError):
        """A user-caused problem (one line: what is wrong and how to fix it)."""


logger = logging.getLogger(__name__)

CELL_TYPES = {"rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}


class CharLMConfig(PreTrainedConfig):
    """Hyperparameters of a character-level RNN / LSTM / GRU language model.

    Args:
        cell_type: `rnn` (tanh), `lstm` or `gru`.
        vocab_size: number of characters, the unknown token included.
        embedding_dim: size of the character embedding.
        hidden_size: units per recurrent layer.
        num_layers: stacked recurrent layers.
        dropout: dropout on the embedding, between layers and before the output layer.
        tie_word_embeddings: share the embedding matrix with the output layer (needs embedding_dim == hidden_size).
    """

    model_type = "hfdl_char_lm"

    def __init__(
        self,
        cell_type: str = "lstm",
        vocab_size: int = 128,
        embedding_dim: int = 64,
        hidden_size: int = 256,
        num_layers: int = 2,
        dropout: float = 0.0,
        tie_word_embeddings: bool = False,
        unk_token_id: int = 0,
        **kwargs,
    ):
        self.cell_type = cell_type
        self.vocab_size = vocab_size
        self.embedding_dim = embedding_dim
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.dropout = dropout
        self.unk_token_id = unk_token_id
        kwargs.setdefault("use_cache", True)
        super().__init__(tie_word_embeddings=tie_word_embeddings, **kwargs)
        self.check()

    @property
    def num_hidden_layers(self) -> int:
        return self.num_layers

    def check(self) -> None:
        """Raise a one-line error naming the bad value and the fix."""
        if self.cell_type not in CELL_TYPES:
            raise _UserError(f"--model_type '{self.cell_type}' is unknown: use one of {', '.join(CELL_TYPES)}")
        for name in ("vocab_size", "embedding_dim", "hidden_size", "num_layers"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise _UserError(f"--{name} must be a positive integer, got {value!r}")
        if not 0 <= self.dropout < 1:
            raise _UserError(f"--dropout must be in [0, 1), got {self.dropout}")
        if self.tie_word_embeddings and self.embedding_dim != self.hidden_size:
            raise _UserError(
                f"--tie_weights needs --embedding_dim equal to --hidden_size (got {self.embedding_dim} and {self.hidden_size}): set them equal or drop --tie_weights"
            )


@dataclass
class CharLMOutput(ModelOutput):
    """`logits` (B, T, V); `state`: the recurrent state after the last character ((h,) or (h, c), each (L, B, H))."""

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    state: tuple[torch.Tensor, ...] | None = None


class CharLMForCausalLM(PreTrainedModel, GenerationMixin):
    """Embedding -> stacked fused RNN/LSTM/GRU -> linear head over characters."""

    config_class = CharLMConfig
    base_model_prefix = "char_lm"
    main_input_name = "input_ids"
    _no_split_modules = []
    _tied_weights_keys = {"lm_head.weight": "embed.weight"}

    def __init__(self, config: CharLMConfig):
        super().__init__(config)
        self.embed = nn.Embedding(config.vocab_size, config.embedding_dim)
        rnn_cls = getattr(nn, CELL_TYPES[config.cell_type])
        self.rnn = rnn_cls(
            config.embedding_dim, config.hidden_size, num_layers=config.num_layers, dropout=config.dropout if config.num_layers > 1 else 0.0, batch_first=True
        )
        self.drop = nn.Dropout(config.dropout)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size)
        if config.cell_type == "lstm":  # forget-gate bias 1 (Jozefowicz et al. 2015, Keras' unit_forget_bias): remember by default
            h = config.hidden_size
            with torch.no_grad():
                for i in range(config.num_layers):
                    getattr(self.rnn, f"bias_ih_l{i}")[h : 2 * h].fill_(1.0)  # gate order i, f, g, o
                    getattr(self.rnn, f"bias_hh_l{i}")[h : 2 * h].zero_()
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        """Keep PyTorch's default initialisation of every layer (the lectures' and nanoGPT's char-RNN setting)."""

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embed

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.embed = value

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head

    def set_output_embeddings(self, value: nn.Linear) -> None:
        self.lm_head = value

    @classmethod
    def _supports_default_dynamic_cache(cls) -> bool:
        """The recurrent state is the cache: `generate` must not build an attention KV cache for it."""
        return False

    def zero_state(self, batch_size: int) -> tuple[torch.Tensor, ...]:
        """All-zero state for `batch_size` streams: (h,) or (h, c), each (num_layers, B, hidden_size)."""
        shape = (self.config.num_layers, batch_size, self.config.hidden_size)
        p = self.lm_head.weight
        n = 2 if self.config.cell_type == "lstm" else 1
        return tuple(torch.zeros(shape, dtype=p.dtype, device=p.device) for _ in range(n))

    def forward(
        self,
        input_ids: torch.LongTensor,
        state: tuple[torch.Tensor, ...] | None = None,
        labels: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        use_cache: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> CharLMOutput:
        """Logits for every position; `labels` follow the transformers convention (shifted inside, -100 ignored).

        `state` continues from an earlier call (stateful batches, generation). Padding is not supported: a
        recurrent state cannot skip pad positions, so an `attention_mask` with zeros is refused.
        """
        if attention_mask is not None and not bool(attention_mask.all()):
            raise _UserError("padded batches are not supported by a recurrent char-LM: generate prompts one at a time or give them equal length")
        if self.config.cell_type == "lstm" and state is not None:
            h0 = (state[0], state[1])
        else:
            h0 = None if state is None else state[0]
        x = self.drop(self.embed(input_ids))  # (B, T, E)
        # CPU: oneDNN's fused LSTM is faster on sequences, but slower for one step and for GRU (6x, measured on
        # torch 2.14): use it only where it wins. (The flag only affects CPU kernels.)
        use_onednn = self.config.cell_type == "lstm" and input_ids.size(1) > 1
        before = torch.backends.mkldnn.enabled
        if before != use_onednn:
            torch.backends.mkldnn.enabled = use_onednn
        try:
            out, hn = self.rnn(x, h0)  # (B, T, H)
        finally:
            if before != use_onednn:
                torch.backends.mkldnn.enabled = before
        logits = self.lm_head(self.drop(out))  # (B, T, V)
        loss = None
        if labels is not None:
            loss = nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.size(-1)), labels[:, 1:].reshape(-1), ignore_index=-100)
        new_state = tuple(hn) if isinstance(hn, tuple) else (hn,)
        return CharLMOutput(loss=loss, logits=logits, state=new_state if use_cache is not False else None)

    def step(self, token: torch.LongTensor, state: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """One character for each of B streams (`token` (B,)) -> logits (B, V) and the new state; inference only.

        The same weights as `forward`, through the fused per-layer cell kernels (`torch.lstm_cell`...), which
        skip `nn.LSTM`'s per-call set-up: the cost per generated character is a few small kernels.
        """
        if self.training:
            raise RuntimeError("step() is for generation: call model.eval() first (dropout is not applied here)")
        cell = {"lstm": torch.lstm_cell, "gru": torch.gru_cell, "rnn": torch.rnn_tanh_cell}[self.config.cell_type]
        x = self.embed(token)  # (B, E)
        hs, cs = list(state[0].unbind(0)), list(state[1].unbind(0)) if len(state) > 1 else None
        for i in range(self.config.num_layers):
            w = [getattr(self.rnn, f"{n}_l{i}") for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
            if cs is not None:
                hs[i], cs[i] = cell(x, (hs[i], cs[i]), *w)
            else:
                hs[i] = cell(x, hs[i], *w)
            x = hs[i]
        new_state = (torch.stack(hs),) if cs is None else (torch.stack(hs), torch.stack(cs))
        return self.lm_head(x), new_state

    def prepare_inputs_for_generation(self, input_ids: torch.LongTensor, state: tuple[torch.Tensor, ...] | None = None, **kwargs) -> dict:
        """With a state, only the newest character is fed; without one (prefill), the whole prompt."""
        if state is not None:
            input_ids = input_ids[:, -1:]
        return {"input_ids": input_ids, "state": state, "use_cache": kwargs.get("use_cache", True)}

    def _update_model_kwargs_for_generation(self, outputs: ModelOutput, model_kwargs: dict, *args, **kwargs) -> dict:
        """Carry `state` from one `generate` step to the next, as transformers' RWKV does.

        transformers 5.24 carries only an output named `cache` (a `Cache` object) between steps; up to 5.23 it
        also picked up `state`. Without this, every step would re-encode the whole sequence.
        """
        if "state" in outputs:
            model_kwargs["state"] = outputs.state
        return super()._update_model_kwargs_for_generation(outputs, model_kwargs, *args, **kwargs)

    def _reorder_cache(self, state, beam_idx):  # beam search (transformers' legacy hook)
        return tuple(s.index_select(1, beam_idx.to(s.device)) for s in state)


CharLMConfig.register_for_auto_class()
CharLMForCausalLM.register_for_auto_class("AutoModelForCausalLM")
