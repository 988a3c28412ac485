"""Character-level language models: vanilla RNN (tanh), LSTM and GRU on the fused `torch.nn` modules.

One family, one class (`getattr(nn, "LSTM")`), built as a transformers model so that a saved folder is a
Hub repo that plain transformers runs::

    AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True)
    pipeline("text-generation", model=folder, trust_remote_code=True)

The recurrent state is the generation cache: `forward(input_ids, state=...)` returns the new `state`, and
`generate` feeds only the newest character with it (constant cost per character, the prefix is never
re-encoded). This file is copied verbatim into every saved folder (transformers' remote-code mechanism), so it
imports only torch and transformers at module level.

hfdl's own loader (`load_char_lm`) imports this class directly: no remote code is executed, and loading is
strict (a missing or unexpected tensor is an error).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

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

    def _reorder_cache(self, state, beam_idx):  # beam search (transformers' legacy hook)
        return tuple(s.index_select(1, beam_idx.to(s.device)) for s in state)


# --------------------------------------------------------------------------------------------------
# Sampling (hfdl's own generation: temperature / top-k / top-p, seeded, streaming)
# --------------------------------------------------------------------------------------------------


def check_sampling(temperature: float, top_k: int | None, top_p: float | None, max_new_tokens: int) -> None:
    """Validate sampling settings with one-line errors."""
    if temperature is None or not math.isfinite(temperature) or temperature < 0:
        raise _UserError(f"--temperature must be >= 0 (0 = greedy), got {temperature}")
    if top_k is not None and top_k < 0:
        raise _UserError(f"--top_k must be >= 0 (0 = off), got {top_k}")
    if top_p is not None and not 0 < top_p <= 1:
        raise _UserError(f"--top_p must be in (0, 1] (1 = off), got {top_p}")
    if max_new_tokens < 0:
        raise _UserError(f"--max_new_tokens must be >= 0, got {max_new_tokens}")


def filter_logits(logits: torch.Tensor, top_k: int | None, top_p: float | None) -> torch.Tensor:
    """Mask all but the top-k and the smallest set with cumulative probability >= top_p. logits: (B, V)."""
    if top_k:
        kth = torch.topk(logits, min(top_k, logits.size(-1)), dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1:
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        cum = sorted_logits.softmax(-1).cumsum(-1)
        drop = cum - sorted_logits.softmax(-1) >= top_p  # keep the token that crosses top_p
        logits = logits.masked_fill(drop.scatter(-1, order, drop), float("-inf"))
    return logits


def _sample(probs: torch.Tensor, gen: torch.Generator) -> int:
    """One draw from `probs` (1, V): `torch.multinomial(probs, 1, generator=gen)`'s own single-sample algorithm
    (argmax of p / q, q ~ Exp(1): the same draws, so the same characters for a seed), without its validity check
    (a sync and two reductions per character; the probabilities come from a softmax here)."""
    q = torch.empty_like(probs).exponential_(1, generator=gen)
    return int(torch.div(probs, q, out=q).argmax())


class _LSTMStepper:
    """`CharLMForCausalLM.step` for one stream of a float32 LSTM, in preallocated buffers.

    Each layer's two products are one: `[x, h] @ [W_ih | W_hh]^T + (b_ih + b_hh)` with the weights concatenated
    and transposed once (a single `addmm` per layer over contiguous memory), then the gates in place. The output
    layer's bias carries -inf at the unknown token, so its logit comes out masked. The same function as `step`
    up to float rounding (the order of the sums); a step allocates nothing.

    The stored (in, 4H) layout is what pays: at batch 1 a step is memory-bound matrix-vector products, and
    `x @ W^T` with W^T contiguous ran 3.4x faster than `F.linear(x, W)` on the (4H, in) parameters (2 x 512 LSTM,
    torch 2.14 CPU with MKL, 1 thread, 2-core machine under load: 0.52 ms against 1.84 ms for the four products).
    """

    def __init__(self, model: CharLMForCausalLM, unk_id: int):
        cfg, rnn = model.config, model.rnn
        h = cfg.hidden_size
        dev = model.lm_head.weight.device
        self.embed = model.embed.weight.detach()
        self.weights, self.biases, self.xh, self.gates, self.c, self.tmp = [], [], [], [], [], []
        for i in range(cfg.num_layers):
            w_ih, w_hh = getattr(rnn, f"weight_ih_l{i}").detach(), getattr(rnn, f"weight_hh_l{i}").detach()
            self.weights.append(torch.cat([w_ih, w_hh], 1).t().contiguous())  # (in + H, 4H)
            self.biases.append((getattr(rnn, f"bias_ih_l{i}") + getattr(rnn, f"bias_hh_l{i}")).detach()[None])
            self.xh.append(torch.zeros(1, w_ih.size(1) + h, device=dev))
            self.gates.append(torch.empty(1, 4 * h, device=dev))
            self.c.append(torch.zeros(1, h, device=dev))
            self.tmp.append(torch.empty(1, h, device=dev))
        g = self.gates
        self.i_f = [t[:, : 2 * h] for t in g]  # gate order i, f, g, o
        self.ig, self.fg, self.gg, self.og = ([t[:, k * h : (k + 1) * h] for t in g] for k in range(4))
        self.h = [t[:, t.size(1) - h :] for t in self.xh]  # each layer's state lives in its own input buffer
        self.x_in = [t[:, : t.size(1) - h] for t in self.xh]  # each layer's input: the embedding or the layer below's h
        self.head_w = model.lm_head.weight.detach().t().contiguous()  # (H, V)
        self.head_b = model.lm_head.bias.detach().clone()[None]
        self.head_b[:, unk_id] = float("-inf")  # never emit the unknown token
        self.logits = torch.empty(1, self.head_b.size(1), device=dev)
        self.unk_mask = torch.zeros_like(self.head_b)
        self.unk_mask[:, unk_id] = float("-inf")

    def reset(self, state: tuple[torch.Tensor, ...]) -> None:
        """Start from `state` ((h, c), each (L, 1, H))."""
        for i in range(len(self.weights)):
            self.h[i].copy_(state[0][i])
            self.c[i].copy_(state[1][i])

    def mask_unknown(self, logits: torch.Tensor) -> torch.Tensor:
        """`logits` (1, V) with the unknown token's set to -inf (adding 0 elsewhere is exact)."""
        return logits.float() + self.unk_mask

    def __call__(self, token: int) -> torch.Tensor:
        """Logits (1, V) after feeding `token`, unknown token masked; the buffer is overwritten by the next call."""
        self.x_in[0].copy_(self.embed[token])
        n = len(self.weights)
        for i in range(n):
            torch.addmm(self.biases[i], self.xh[i], self.weights[i], out=self.gates[i])
            self.i_f[i].sigmoid_()
            self.og[i].sigmoid_()
            self.gg[i].tanh_()
            self.c[i].mul_(self.fg[i]).addcmul_(self.ig[i], self.gg[i])
            torch.mul(self.og[i], torch.tanh(self.c[i], out=self.tmp[i]), out=self.h[i])
            if i + 1 < n:
                self.x_in[i + 1].copy_(self.h[i])
        return torch.addmm(self.head_b, self.h[n - 1], self.head_w, out=self.logits)


class CharGenerator:
    """A char-LM with its tokenizer: `generate` returns text, `stream` yields it chunk by chunk."""

    def __init__(self, model: CharLMForCausalLM, tokenizer):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.vocab = tokenizer.get_vocab()
        self.id_to_char = {i: c for c, i in self.vocab.items()}
        self.unk_id = model.config.unk_token_id
        self.use_stepper = True  # False: every character through `model.step` (the reference path; same text for a seed)

    def encode_prompt(self, prompt: str) -> list[int]:
        """Character ids of the prompt; characters outside the vocabulary map to the unknown token, with a warning."""
        ids = [self.vocab.get(ch, self.unk_id) for ch in prompt]
        unknown = sorted({ch for ch in prompt if ch not in self.vocab})
        if unknown:
            logger.warning("prompt characters outside the vocabulary map to the unknown token: %s", "".join(unknown)[:40])
        if not ids:  # an empty prompt starts from a line break (or the unknown token)
            ids = [self.vocab.get("\n", self.unk_id)]
        return ids

    @torch.inference_mode()
    def stream(
        self,
        prompt: str,
        max_new_tokens: int = 200,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        seed: int | None = None,
        chunk_size: int = 1,
    ) -> Iterator[str]:
        """Yield generated text in chunks of `chunk_size` characters (prompt excluded).

        The prompt is encoded once; then each step feeds one character with the carried state.
        `temperature` 0 is greedy. A `seed` makes the output deterministic.

        A float32 LSTM runs the per-character loop on `_LSTMStepper` (the same function as `model.step`, the same
        text for a seed). On CPU the loop runs with one torch thread: a batch-1 step is a few matrix-vector products,
        and a second thread cost more than it saved (0.91 against 0.72 ms per step, 2 cores, one of them busy). The
        caller's thread count is back in place at every `yield` and at the end.
        """
        check_sampling(temperature, top_k, top_p, max_new_tokens)
        device = self.model.lm_head.weight.device
        gen = torch.Generator(device=device)
        gen.manual_seed(seed if seed is not None else torch.seed())
        ids = torch.tensor([self.encode_prompt(prompt)], device=device)
        out = self.model(ids, use_cache=True)
        logits, state = out.logits[:, -1], out.state
        threads = torch.get_num_threads()
        one_thread = device.type == "cpu" and threads > 1
        if one_thread:
            torch.set_num_threads(1)
        try:
            stepper = self._stepper()
            if stepper is not None:
                stepper.reset(state)
                logits = stepper.mask_unknown(logits)
            buf: list[str] = []
            for i in range(max_new_tokens):
                if stepper is None:
                    logits = logits.float()
                    logits[:, self.unk_id] = float("-inf")  # never emit the unknown token
                if temperature == 0:
                    nxt = int(logits.argmax(-1))
                else:
                    filtered = filter_logits(logits if temperature == 1 else logits / temperature, top_k, top_p)
                    nxt = _sample(filtered.softmax(-1), gen)
                buf.append(self.id_to_char[nxt])
                if len(buf) >= chunk_size:
                    if one_thread:
                        torch.set_num_threads(threads)
                    yield "".join(buf)
                    if one_thread:
                        torch.set_num_threads(1)
                    buf = []
                if i == max_new_tokens - 1:
                    break  # the last character's logits are never used
                if stepper is not None:
                    logits = stepper(nxt)
                else:
                    logits, state = self.model.step(torch.tensor([nxt], device=device), state)
        finally:
            if one_thread:
                torch.set_num_threads(threads)
        if buf:
            yield "".join(buf)

    def _stepper(self) -> _LSTMStepper | None:
        """The batch-1 LSTM stepper for the model's current weights (rebuilt when a weight changed), or None.

        It holds a transposed copy of the recurrent and output weights (as much memory again as the model).
        """
        m = self.model
        if not self.use_stepper or m.config.cell_type != "lstm" or m.lm_head.weight.dtype != torch.float32 or m.training:
            return None
        key = tuple((p.data_ptr(), None if p.is_inference() else p._version) for p in m.parameters())  # inference tensors keep no version
        if getattr(self, "_stepper_key", None) != key:
            self._stepper_cache = _LSTMStepper(m, self.unk_id)
            self._stepper_key = key
        return self._stepper_cache

    def generate(
        self,
        prompt: str,
        max_new_tokens: int = 200,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        seed: int | None = None,
    ) -> str:
        """The prompt followed by `max_new_tokens` generated characters."""
        return prompt + "".join(self.stream(prompt, max_new_tokens, temperature, top_k, top_p, seed, chunk_size=256))

    def chars_per_second(self, n: int = 500, prompt: str = "\n") -> float:
        """Measured generation speed at batch 1 (sampling, temperature 1)."""
        t0 = time.perf_counter()
        self.generate(prompt, n, temperature=1.0, seed=0)
        return n / (time.perf_counter() - t0)


def load_char_lm(path_or_id: str, device: str | torch.device | None = None) -> CharGenerator:
    """Load a saved char-LM folder or Hub repo with hfdl's own class (no remote code), strictly."""
    from transformers import PreTrainedTokenizerFast

    local = Path(path_or_id)
    if local.exists() and not (local / "config.json").is_file():
        raise _UserError(f"{local} has no config.json: pass a folder written by scripts/train_char_lm.py (or a Hub id)")
    try:
        model, info = CharLMForCausalLM.from_pretrained(path_or_id, output_loading_info=True)
        tokenizer = PreTrainedTokenizerFast.from_pretrained(path_or_id)
    except OSError as err:
        raise _UserError(f"could not load char-LM '{path_or_id}' ({str(err).splitlines()[0][:160]}): pass a local folder or a reachable Hub id") from err
    bad = {k: v for k, v in info.items() if k in ("missing_keys", "unexpected_keys", "mismatched_keys") and v}
    if bad:
        raise _UserError(f"char-LM '{path_or_id}' does not match its config ({bad}): the weights are damaged or from another model")
    if device is not None:
        model = model.to(device)
    return CharGenerator(model, tokenizer)


CharLMConfig.register_for_auto_class()
CharLMForCausalLM.register_for_auto_class("AutoModelForCausalLM")
