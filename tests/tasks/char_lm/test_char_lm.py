"""Char-level RNN/LSTM/GRU: tokenizer, model, stateful batches, generation, bad input (tiny configs)."""

import logging

import pytest
import torch
from conftest import TEXT

from hfdl.errors import HfdlError
from hfdl.tasks.char_lm.char_lm import CharLMConfig, CharLMForCausalLM
from hfdl.tasks.char_lm.data import bptt_windows, build_char_tokenizer, encode_text, load_text, read_text_file, split_text
from hfdl.tasks.char_lm.model import CharGenerator, filter_logits, load_char_lm
from hfdl.tasks.char_lm.ngram import KneserNeyCharLM


def tiny_model(cell: str, vocab_size: int, **kw) -> CharLMForCausalLM:
    torch.manual_seed(0)
    cfg = dict(cell_type=cell, vocab_size=vocab_size, embedding_dim=8, hidden_size=12, num_layers=2, dropout=0.0)
    return CharLMForCausalLM(CharLMConfig(**{**cfg, **kw})).eval()


@pytest.fixture(scope="module")
def tokenizer():
    return build_char_tokenizer(TEXT)


def test_tokenizer_round_trip_and_fast_encoding_agree(tokenizer, tmp_path):
    from transformers import AutoTokenizer

    text = "a truth, well fixed.\n\nHowever  two spaces"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert len(ids) == len(text) and tokenizer.decode(ids) == text
    assert ids == encode_text(text, tokenizer.get_vocab()).tolist()
    assert tokenizer.get_vocab()["<unk>"] == 0
    assert tokenizer("Z€", add_special_tokens=False)["input_ids"] == [0, 0]  # outside the vocabulary: unknown
    tokenizer.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path, trust_remote_code=False)
    assert loaded(text, add_special_tokens=False)["input_ids"] == ids and loaded.decode(ids) == text


def test_contiguous_split():
    train, val = split_text("abcdefghij" * 10, 0.1)
    assert train + val == "abcdefghij" * 10 and len(val) == 10


@pytest.mark.parametrize("processes", [1, 2])
def test_stateful_batches_are_contiguous_streams(processes):
    ids = torch.arange(1000)
    x, y, first = bptt_windows(ids, num_streams=3, seq_len=7, num_processes=processes)
    assert torch.equal(y, x + 1)  # targets: the next character
    assert first.tolist() == [True] * processes + [False] * (len(first) - processes)
    for p in range(processes):
        mine = x[p::processes]  # what accelerate hands process p
        for k in range(len(mine) - 1):
            assert torch.equal(mine[k + 1][:, 0], mine[k][:, -1] + 1)  # the next window continues each stream
        starts = mine[0][:, 0]
        assert len(set(starts.tolist())) == 3 and (starts.diff() > 0).all()
    # every stream of every process is a disjoint slice of the text
    assert len(set(x.flatten().tolist())) == x.numel()


def test_too_short_text_is_a_clear_error():
    with pytest.raises(HfdlError, match="fewer than one batch needs.*lower --per_device_train_batch_size"):
        bptt_windows(torch.arange(50), num_streams=4, seq_len=16)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_incremental_generation_matches_full_forward(cell, tokenizer):
    model = tiny_model(cell, len(tokenizer))
    ids = encode_text(TEXT[:40], tokenizer.get_vocab())[None]
    with torch.no_grad():
        full = model(ids).logits
        out = model(ids[:, :10])
        steps = [out.logits]
        state = out.state
        for t in range(10, ids.size(1)):
            out = model(ids[:, t : t + 1], state=state)
            steps.append(out.logits)
            state = out.state
    assert torch.allclose(torch.cat(steps, 1), full, atol=1e-5)
    with torch.no_grad():  # the generation fast path (per-layer cell kernels) agrees too
        state = model(ids[:, :10]).state
        for t in range(10, ids.size(1)):
            logits, state = model.step(ids[:, t], state)
            assert torch.allclose(logits, full[:, t], atol=1e-5)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_transformers_generate_carries_the_state_as_its_cache(cell, tokenizer):
    model = tiny_model(cell, len(tokenizer))
    ids = encode_text(TEXT[:9], tokenizer.get_vocab())[None]
    calls = []
    model.register_forward_pre_hook(lambda m, args, kwargs: calls.append(kwargs["input_ids"].shape[1]), with_kwargs=True)
    for kw in (dict(do_sample=False), dict(do_sample=True, top_k=5), dict(do_sample=False, num_beams=2)):
        calls.clear()
        torch.manual_seed(0)
        out = model.generate(ids, max_new_tokens=6, pad_token_id=0, **kw)
        assert calls == [ids.shape[1]] + [1] * 5, kw  # the prompt once, then one character per step
        calls.clear()
        torch.manual_seed(0)
        full = model.generate(ids, max_new_tokens=6, pad_token_id=0, use_cache=False, **kw)
        assert calls == list(range(ids.shape[1], ids.shape[1] + 6)), kw  # no cache: the whole sequence every step
        assert torch.equal(out, full), kw  # and the same tokens either way


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_save_load_round_trip_gives_identical_logits(cell, tokenizer, tmp_path):
    model = tiny_model(cell, len(tokenizer), tie_word_embeddings=True, embedding_dim=12)
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    gen = load_char_lm(str(tmp_path))
    assert gen.model.lm_head.weight.data_ptr() == gen.model.embed.weight.data_ptr()  # tying survives
    ids = encode_text(TEXT[:30], tokenizer.get_vocab())[None]
    with torch.no_grad():
        assert torch.equal(gen.model(ids).logits, model(ids).logits)
    # strict: a folder whose weights lack a tensor is refused
    from safetensors.torch import load_file, save_file

    sd = load_file(tmp_path / "model.safetensors")
    sd.pop(next(k for k in sd if k.startswith("rnn.")))
    save_file(sd, tmp_path / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(HfdlError, match="does not match its config"):
        load_char_lm(str(tmp_path))


def test_seeded_generation_is_deterministic_and_greedy_is_argmax(tokenizer):
    gen = CharGenerator(tiny_model("lstm", len(tokenizer)), tokenizer)
    a = gen.generate("It is", 40, temperature=1.0, seed=3)
    assert a == gen.generate("It is", 40, temperature=1.0, seed=3) and a.startswith("It is") and len(a) == 45
    assert a != gen.generate("It is", 40, temperature=1.0, seed=4)
    assert "".join(gen.stream("It is", 40, temperature=1.0, seed=3, chunk_size=7)) == a[5:]
    greedy = gen.generate("It is", 20, temperature=0)
    ids = encode_text(greedy, tokenizer.get_vocab())[None]
    with torch.no_grad():
        logits = gen.model(ids).logits[0, 4:-1]
    logits[:, 0] = float("-inf")  # the unknown token is never emitted
    assert logits.argmax(-1).tolist() == ids[0, 5:].tolist()


def test_lstm_fast_stepper_matches_step_and_the_model_step_sampler(tokenizer):
    from hfdl.tasks.char_lm import model as char_lm

    gen = CharGenerator(tiny_model("lstm", len(tokenizer)), tokenizer)
    ids = encode_text(TEXT[:30], tokenizer.get_vocab())[None]
    with torch.inference_mode():  # the preallocated batch-1 stepper computes step()'s logits (unknown token masked)
        state = gen.model(ids[:, :5]).state
        stepper = gen._stepper()
        stepper.reset(state)
        for t in range(5, ids.size(1)):
            logits, state = gen.model.step(ids[:, t], state)
            fast = stepper(int(ids[0, t]))
            assert torch.allclose(fast[:, 1:], logits[:, 1:], atol=1e-5) and fast[0, 0] == float("-inf")
    g1, g2 = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    probs = torch.randn(1, 30).softmax(-1)
    assert [char_lm._sample(probs, g1) for _ in range(200)] == [int(torch.multinomial(probs, 1, generator=g2)) for _ in range(200)]
    settings = [dict(temperature=1.0, seed=3), dict(temperature=0.8, top_k=4, seed=1), dict(temperature=1.2, top_p=0.9, seed=2), dict(temperature=0)]
    fast_texts = [gen.generate("It is", 60, **kw) for kw in settings]
    gen.use_stepper = False  # the model.step path: the same text for a seed
    assert [gen.generate("It is", 60, **kw) for kw in settings] == fast_texts
    with torch.inference_mode():  # weights that are inference tensors (no version counter) work too
        frozen = CharGenerator(tiny_model("lstm", len(tokenizer)), tokenizer)
    assert frozen.generate("It is", 60, **settings[0]) == fast_texts[0]


def test_stream_uses_one_thread_and_restores_the_callers_count(tokenizer, monkeypatch):
    from hfdl.tasks.char_lm import model as char_lm

    gen = CharGenerator(tiny_model("lstm", len(tokenizer)), tokenizer)
    inside = []
    call = char_lm._LSTMStepper.__call__
    monkeypatch.setattr(char_lm._LSTMStepper, "__call__", lambda self, token: inside.append(torch.get_num_threads()) or call(self, token))
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        seen = [torch.get_num_threads() for _chunk in gen.stream("It", 12, chunk_size=3, seed=0)]  # the caller's count at each chunk
        assert seen == [2] * 4 and torch.get_num_threads() == 2
        assert inside == [1] * 11  # one step per character after the first (the prompt's logits give the first)
        it = gen.stream("It", 50, chunk_size=1, seed=0)
        next(it)
        it.close()  # abandoned mid-way
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_filter_logits_top_k_and_top_p():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    assert torch.isfinite(filter_logits(logits, 2, None)).tolist() == [[True, True, False, False]]
    assert torch.isfinite(filter_logits(logits, None, 0.7)).tolist() == [[True, True, False, False]]
    assert torch.isfinite(filter_logits(logits, None, 0.5)).tolist() == [[True, False, False, False]]
    assert torch.isfinite(filter_logits(logits, None, 1.0)).all()


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"temperature": -1.0}, "--temperature must be >= 0"),
        ({"top_p": 0.0}, r"--top_p must be in \(0, 1\]"),
        ({"top_p": 1.5}, r"--top_p must be in \(0, 1\]"),
        ({"top_k": -2}, "--top_k must be >= 0"),
    ],
)
def test_invalid_sampling_settings_are_refused(tokenizer, kw, match):
    gen = CharGenerator(tiny_model("gru", len(tokenizer)), tokenizer)
    with pytest.raises(HfdlError, match=match):
        gen.generate("It", 5, **{"temperature": 1.0, **kw})


def test_prompt_outside_vocabulary_maps_to_unknown_with_warning(tokenizer, caplog):
    gen = CharGenerator(tiny_model("rnn", len(tokenizer)), tokenizer)
    with caplog.at_level(logging.WARNING):
        out = gen.generate("Zürich ", 10, temperature=0)
    assert out.startswith("Zürich ") and len(out) == 17
    assert "outside the vocabulary" in caplog.text and "Z" in caplog.text


def test_text_sources_fail_clearly(tmp_path):
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("caf\xe9 au lait".encode("latin-1"))
    with pytest.raises(HfdlError, match="not valid utf-8.*--encoding"):
        read_text_file(bad)
    assert read_text_file(bad, "latin-1") == "café au lait"
    with pytest.raises(HfdlError, match="does not exist"):
        read_text_file(tmp_path / "missing.txt")
    with pytest.raises(HfdlError, match="exactly one text source"):
        load_text(train_file=str(bad), corpus="austen")
    with pytest.raises(HfdlError, match="--corpus 'shakespeare' is unknown"):
        load_text(corpus="shakespeare")


def test_config_errors_are_one_line():
    with pytest.raises(HfdlError, match="--model_type 'transformer' is unknown"):
        CharLMConfig(cell_type="transformer")
    with pytest.raises(HfdlError, match="--tie_weights needs --embedding_dim equal to --hidden_size"):
        CharLMConfig(embedding_dim=8, hidden_size=16, tie_word_embeddings=True)
    with pytest.raises(HfdlError, match="--dropout must be in"):
        CharLMConfig(dropout=1.0)


def test_kneser_ney_baseline_is_a_distribution_and_learns():
    lm = KneserNeyCharLM(4).fit(TEXT)
    assert sum(lm.prob("ruth", c) for c in lm.vocab) == pytest.approx(1.0)
    assert sum(lm.prob("qq", c) for c in lm.vocab) == pytest.approx(1.0)  # unseen context backs off
    assert lm.nats_per_char(TEXT[:200]) < KneserNeyCharLM(1).fit(TEXT).nats_per_char(TEXT[:200])


def test_dataset_source_joins_rows_and_names_missing_columns(tmp_path):
    import datasets

    datasets.DatasetDict({"train": datasets.Dataset.from_dict({"id": [1, 2], "text": ["first line", "second line"]})}).save_to_disk(tmp_path / "ds")
    text, source = load_text(dataset_name=str(tmp_path / "ds"))
    assert text == "first line\nsecond line" and source.startswith("dataset")
    with pytest.raises(HfdlError, match="--text_column 'body' is not in dataset.*id, text"):
        load_text(dataset_name=str(tmp_path / "ds"), text_column="body")


def test_char_transformer_is_causal_and_scores_every_validation_character_once():
    """The benchmark's transformer baseline: a later character never changes an earlier prediction, and the windowed
    evaluation scores each target exactly once, from at least half a block of context (first half-block excepted)."""
    from hfdl.tasks.char_lm.transformer import CharTransformer, evaluate_windows

    torch.manual_seed(0)
    model = CharTransformer(vocab_size=11, block_size=16, num_layers=2, heads=2, width=16).eval()
    ids = torch.randint(0, 11, (1, 16))
    changed = ids.clone()
    changed[0, 10] = (changed[0, 10] + 1) % 11
    with torch.no_grad():
        a, b = model(ids), model(changed)
    assert torch.equal(a[0, :10], b[0, :10]) and not torch.equal(a[0, 10:], b[0, 10:])
    stream = torch.randint(0, 11, (203,))
    want, count = 0.0, 0
    with torch.no_grad():
        for target in range(1, 203):  # target position -> the window the evaluation uses for it
            start = 0 if target <= 16 else min(8 * ((target - 17) // 8 + 1), 202 - 16)
            start = max(0, min(start, target - 8)) if target > 16 else 0
            ctx = stream[start:target]
            logits = model(ctx[None])[0, -1]
            want += torch.nn.functional.cross_entropy(logits[None], stream[target][None]).item()
            count += 1
    assert abs(evaluate_windows(model, stream) - want / count) < 1e-5
