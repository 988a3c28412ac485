"""The recurrent text classifier itself: packed-sequence semantics, padding invariance, directions, recurrent dropout."""

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from hfdl.errors import HfdlError
from hfdl.tasks.text_classification import text_rnn
from hfdl.tasks.text_classification.text_rnn import CELL_TYPES, TextRNNConfig, TextRNNForSequenceClassification, reverse_padded

VOCAB = 40


def model(cell="gru", bidirectional=False, pooling="max", layers=1, recurrent_dropout=0.0, hidden=6, seed=0):
    torch.manual_seed(seed)
    config = TextRNNConfig(
        cell_type=cell, vocab_size=VOCAB, embedding_dim=5, hidden_size=hidden, num_layers=layers, bidirectional=bidirectional,
        pooling=pooling, dropout=0.0, recurrent_dropout=recurrent_dropout, num_labels=3,
    )  # fmt: skip
    return TextRNNForSequenceClassification(config).eval()


def padded(rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(map(len, rows))
    ids = torch.tensor([r + [0] * (width - len(r)) for r in rows])
    return ids, (ids != 0).long()


@pytest.mark.parametrize("cell", list(CELL_TYPES))
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("pooling", ["last", "max", "mean"])
def test_padding_never_changes_a_prediction(cell, bidirectional, pooling):
    """A text alone and the same text in a batch padded to a much longer text: the same logits."""
    m = model(cell, bidirectional, pooling, layers=2)
    short = [5, 9, 3, 17, 2]
    long = list(range(2, 38)) * 3  # 108 tokens: the short text gets 103 pads
    alone = m(torch.tensor([short])).logits
    ids, mask = padded([long, short])
    with torch.no_grad():
        batched = m(ids, attention_mask=mask).logits
    assert torch.allclose(alone, batched[1:], atol=1e-5)
    assert not torch.allclose(batched[0], batched[1], atol=1e-3)  # the long text is a different input


@pytest.mark.parametrize("cell", list(CELL_TYPES))
@pytest.mark.parametrize("bidirectional", [False, True])
def test_layers_compute_what_torch_computes_over_pack_padded_sequence(cell, bidirectional):
    """Outputs and final states equal torch's own multi-layer module over a `pack_padded_sequence` with the same weights."""
    m = model(cell, bidirectional, layers=2)
    ref = getattr(torch.nn, CELL_TYPES[cell])(5, 6, num_layers=2, bidirectional=bidirectional, batch_first=True)
    with torch.no_grad():
        for layer in range(2):
            for direction, rnn in enumerate(m.layers[layer]):
                for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                    getattr(ref, f"{name}_l{layer}{'_reverse' if direction else ''}").copy_(getattr(rnn, f"{name}_l0"))
        ids, mask = padded([[3] * 12, [4, 5, 6, 7, 8], [9]])
        lengths = mask.sum(1)
        x = m.embed(ids)
        out, final = m.encode(x, lengths)
        ref_out, state = ref(pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False))
        ref_out, _ = pad_packed_sequence(ref_out, batch_first=True, total_length=ids.size(1))
        h_n = state[0] if cell == "lstm" else state
    assert torch.allclose(out, ref_out, atol=1e-6)
    assert torch.allclose(final, torch.cat(list(h_n[-(2 if bidirectional else 1) :]), -1), atol=1e-6)


@pytest.mark.parametrize("cell", list(CELL_TYPES))
def test_a_bidirectional_model_sees_the_future_and_a_one_way_model_does_not(cell):
    """Change only the last token: the first position's state moves for the bidirectional model alone."""
    a, b = torch.tensor([[4, 11, 7, 20, 3, 9]]), torch.tensor([[4, 11, 7, 20, 3, 33]])
    for bidirectional in (False, True):
        m = model(cell, bidirectional)
        with torch.no_grad():
            first_a = m.encode(m.embed(a), torch.tensor([6]))[0][0, 0]
            first_b = m.encode(m.embed(b), torch.tensor([6]))[0][0, 0]
        h = m.config.hidden_size
        assert torch.equal(first_a[:h], first_b[:h])  # the forward direction: only the past
        if bidirectional:
            assert (first_a[h:] - first_b[h:]).abs().max() > 1e-4  # the backward direction read the new last token first


def test_reverse_padded_reverses_each_text_within_its_length():
    x = torch.tensor([[1, 2, 3, 0], [4, 5, 0, 0], [6, 0, 0, 0]])
    assert reverse_padded(x, torch.tensor([3, 2, 1])).tolist() == [[3, 2, 1, 0], [5, 4, 0, 0], [6, 0, 0, 0]]
    assert torch.equal(reverse_padded(reverse_padded(x, torch.tensor([3, 2, 1])), torch.tensor([3, 2, 1])), x)


@pytest.mark.parametrize("cell", list(CELL_TYPES))
def test_the_per_step_loop_is_the_fused_function_without_dropout(cell):
    """The recurrent-dropout path (a per-step loop over the same parameters) computes the fused kernels' function."""
    m = model(cell, bidirectional=True, layers=2)
    ids, mask = padded([[3, 8, 1, 4, 4, 9, 2], [5, 6]])
    with torch.no_grad():
        x, lengths = m.embed(ids), mask.sum(1)
        fused = m.encode(x, lengths)
        loop = m.encode(x, lengths, recurrent_dropout=1e-12)  # the loop, with a mask of ones (scaled by 1 + 1e-12)
    assert torch.allclose(fused[0], loop[0], atol=1e-5) and torch.allclose(fused[1], loop[1], atol=1e-5)


def test_recurrent_dropout_drops_the_same_units_of_a_sequence_at_every_step(monkeypatch):
    """Gal & Ghahramani: one mask per sequence. The state fed back into the recurrence has the same units zeroed at
    every step of a sequence, other units for other sequences, a new mask at the next forward pass; inference is
    deterministic."""
    m = model("gru", bidirectional=False, recurrent_dropout=0.5, hidden=64).train()
    w_hh = m.layers[0][0].weight_hh_l0
    fed: list[torch.Tensor] = []
    linear = torch.nn.functional.linear

    def spy(x, weight, bias=None):
        if weight is w_hh:
            fed.append(x.detach().clone())
        return linear(x, weight, bias)

    monkeypatch.setattr(text_rnn.F, "linear", spy)
    ids = torch.randint(2, VOCAB, (4, 9))
    m(ids)
    steps = torch.stack(fed[1:], 1)  # (B, T-1, H); step 0 feeds the zero initial state
    assert steps.shape == (4, 8, 64)
    dropped = steps == 0
    assert torch.equal(dropped, dropped[:, :1].expand_as(dropped))  # the same units at every step
    per_sequence = dropped[:, 0]
    assert 0.3 < per_sequence.float().mean() < 0.7  # p = 0.5
    assert len({tuple(row.tolist()) for row in per_sequence}) == 4  # one mask per sequence, not per batch
    fed.clear()
    m(ids)
    assert not torch.equal(torch.stack(fed[1:], 1) == 0, dropped)  # a fresh mask each forward pass
    m.eval()
    with torch.no_grad():
        assert torch.equal(m(ids).logits, m(ids).logits)


def test_an_attention_mask_that_is_not_right_padded_is_a_one_line_error():
    ids = torch.tensor([[0, 0, 5, 6]])
    with pytest.raises(HfdlError, match="not right-padded.*padding_side='right'"):
        model()(ids, attention_mask=torch.tensor([[0, 0, 1, 1]]))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"cell_type": "transformer"}, "--model_type 'transformer' is unknown"),
        ({"pooling": "first"}, "--pooling 'first' is unknown: use one of last, max, mean"),
        ({"recurrent_dropout": 1.0}, r"--recurrent_dropout must be in \[0, 1\)"),
        ({"hidden_size": 0}, "--hidden_size must be a positive integer"),
    ],
)
def test_bad_configs_are_one_line_errors(kwargs, message):
    with pytest.raises(HfdlError, match=message):
        TextRNNConfig(**kwargs)
