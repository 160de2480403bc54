"""Continuous batching: the same text per prompt as one-by-one ``model.generate``, however rows are scheduled
(refills, retired rows moved into free slots, cache window moved or grown); seeding; prefix groups; sampling."""

from __future__ import annotations

import os

import pytest
import torch

from hf_transfer.generate import continuous
from hf_transfer.generate.continuous import (
    generate_continuous,
    prefix_groups,
    sample_next,
    supports_continuous_batching,
)
from hf_transfer.generate.generation import generate_batch, generate_rows
from hf_transfer.generate.prompts import build_prompts, load_templates

PROMPTS = [
    "write one good example",
    "write a very long bad movie label text here please now",
    "sure",
    "write one bad example",
    "write one good movie",
    "a b c d e f g h i j k",
    "write",
    "label this text",
]


@pytest.mark.parametrize("batch_size", [1, 2, 3, 8])
def test_greedy_matches_one_prompt_at_a_time(tiny_lm, batch_size):
    model, tokenizer = tiny_lm
    out = generate_continuous(model, tokenizer, PROMPTS, seed=0, batch_size=batch_size, max_new_tokens=12,
                              do_sample=False, refill_fraction=0.5)  # fmt: skip
    for prompt, text, n in zip(PROMPTS, out.texts, out.new_tokens):
        single = generate_batch(model, tokenizer, [prompt], seed=0, max_new_tokens=12, do_sample=False)
        assert (text, n) == (single.texts[0], single.new_tokens[0]), prompt
    assert len(set(out.new_tokens)) > 1  # rows ended at different steps, so slots were retired and refilled


def _tiny_gqa_llama():
    """A random Llama with grouped-query attention (4 query heads on 2 key/value heads), as SmolLM2's 9 on 3."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from hf_transfer.generate.generation import prepare_tokenizer

    from .conftest import make_tokenizer

    tokenizer = make_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        intermediate_size=64, pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, initializer_range=0.5, tie_word_embeddings=False,
    )  # fmt: skip
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = LlamaForCausalLM(config).eval()
    return model, prepare_tokenizer(tokenizer)


@pytest.mark.parametrize("batch_size", [3, 8])  # refills (the window moves) and one wave (it never does)
def test_grouped_query_attention_and_row_buckets_keep_the_greedy_text(monkeypatch, batch_size):
    """Decode steps on rows rounded up to a bucket (free slots computed and dropped) and SDPA's own grouped-query
    attention on CPU write what one-prompt ``model.generate`` writes."""
    model, tokenizer = _tiny_gqa_llama()
    monkeypatch.setattr(continuous, "ROW_BUCKET", 2)  # 8 rows retiring one by one: 7 -> 8 slots, 5 -> 6, ...
    seen = []
    real = continuous._Batch.step
    monkeypatch.setattr(continuous._Batch, "step", lambda self, t: seen.append(len(self)) or real(self, t))
    out = generate_continuous(model, tokenizer, PROMPTS, seed=0, batch_size=batch_size, max_new_tokens=12,
                              do_sample=False)  # fmt: skip
    singles = [generate_batch(model, tokenizer, [p], seed=0, max_new_tokens=12, do_sample=False) for p in PROMPTS]
    assert out.texts == [s.texts[0] for s in singles]
    assert any(n % 2 for n in seen)  # some steps ran on an odd number of rows: padded to the bucket
    assert "TRANSFORMERS_SDPA_FORCE_GQA" not in os.environ  # the switch is not left set


def test_cache_window_moves_and_grows(tiny_lm, monkeypatch):
    """Many short rows through 2 slots: the column window reaches the buffer's end and is moved (copied)."""
    model, tokenizer = tiny_lm
    moves = []
    real = continuous._Batch._make_room

    def spy(self, right, left=0):
        before = (self.window.start, self.window.end, self.mask.shape[1])
        real(self, right, left)
        if before != (self.window.start, self.window.end, self.mask.shape[1]):
            moves.append(before)

    monkeypatch.setattr(continuous._Batch, "_make_room", spy)
    prompts = PROMPTS * 3
    out = generate_continuous(model, tokenizer, prompts, seed=0, batch_size=2, max_new_tokens=6, do_sample=False)
    assert moves
    expected = generate_batch(model, tokenizer, prompts, seed=0, max_new_tokens=6, do_sample=False)
    assert out.texts == expected.texts


def test_sampling_depends_only_on_prompts_and_seed(tiny_lm):
    model, tokenizer = tiny_lm
    kwargs = dict(batch_size=3, max_new_tokens=10)
    a = generate_continuous(model, tokenizer, PROMPTS, seed=11, **kwargs)
    torch.manual_seed(123)  # the global RNG does not matter
    generate_continuous(model, tokenizer, PROMPTS, seed=5, **kwargs)
    b = generate_continuous(model, tokenizer, PROMPTS, seed=11, **kwargs)
    c = generate_continuous(model, tokenizer, PROMPTS, seed=12, **kwargs)
    assert a.texts == b.texts and a.new_tokens == b.new_tokens and a.texts != c.texts
    assert all(not t.startswith("\n") for t in a.texts) and all(1 <= n <= 10 for n in a.new_tokens)


@pytest.mark.parametrize("continuous_batching", [True, False])
def test_top_k_1_samples_the_greedy_text(tiny_lm, continuous_batching):
    """top_k reaches both engines: sampling among the single most likely token is greedy decoding."""
    model, tokenizer = tiny_lm
    kwargs = dict(seed=3, batch_size=3, max_new_tokens=8, continuous_batching=continuous_batching)
    greedy = generate_rows(model, tokenizer, PROMPTS, do_sample=False, **kwargs)
    assert generate_rows(model, tokenizer, PROMPTS, top_k=1, temperature=1.5, **kwargs).texts == greedy.texts
    assert generate_rows(model, tokenizer, PROMPTS, top_k=0, temperature=1.5, **kwargs).texts != greedy.texts


def test_generate_rows_chooses_the_engine(tiny_lm):
    model, tokenizer = tiny_lm
    assert supports_continuous_batching(model)
    kwargs = dict(seed=0, batch_size=3, max_new_tokens=8, do_sample=False)
    fast = generate_rows(model, tokenizer, PROMPTS, **kwargs)
    plain = generate_rows(model, tokenizer, PROMPTS, continuous_batching=False, **kwargs)
    assert fast.texts == plain.texts  # greedy: the engines agree
    assert generate_continuous(model, tokenizer, [], seed=0).texts == []


def test_prefix_groups_partition_sorted_prompts_to_save_tokens():
    shared = list(range(100, 140))  # a 40-token system prompt + instruction
    a = [shared + [1, 2, 3, i] for i in range(4)]
    b = [shared[:5] + [7] * 30 + [i] for i in range(4)]  # shares only 5 tokens with the others
    prompts = sorted(a + b)
    groups = prefix_groups(prompts, overhead=16)
    assert [i for g in groups for i in g] == list(range(len(prompts)))  # consecutive, in order, complete
    assert len(groups) == 2 and {len(g) for g in groups} == {4}
    assert prefix_groups([[1, 2, 3]]) == [range(0, 1)]
    assert len(prefix_groups([[1, 2], [3, 4]], overhead=16)) == 1  # nothing shared: one call is cheaper


def _reference_nucleus(probs: torch.Tensor, top_p: float) -> set[int]:
    values, indices = probs.sort(descending=True)
    before = values.cumsum(-1) - values
    return set(indices[before < top_p].tolist())


@pytest.mark.parametrize("spread", [0.5, 3.0])  # peaked (top-1024 suffices) and flat (the full vocabulary tier)
def test_nucleus_sampling_stays_in_the_nucleus(spread):
    torch.manual_seed(0)
    logits = torch.randn(4, 20_000) * spread
    generator = torch.Generator().manual_seed(0)
    allowed = [_reference_nucleus(row.softmax(-1), 0.9) for row in logits]
    seen = [set() for _ in logits]
    for _ in range(200):
        tokens = sample_next(logits, temperature=1.0, top_p=0.9, top_k=None, generator=generator, do_sample=True)
        for row, token in enumerate(tokens.tolist()):
            assert token in allowed[row]
            seen[row].add(token)
    assert all(len(s) > 1 for s in seen)
    if spread == 0.5:  # flat: the nucleus is far larger than the first candidate tier
        assert min(len(a) for a in allowed) > 8192


def test_top_k_then_top_p():
    logits = torch.tensor([[5.0, 4.0, 3.0, 2.0, 1.0, 0.0]])
    generator = torch.Generator().manual_seed(0)
    tokens = {
        sample_next(logits, temperature=1.0, top_p=1.0, top_k=2, generator=generator, do_sample=True).item()
        for _ in range(100)
    }
    assert tokens == {0, 1}
    greedy = sample_next(logits, temperature=1.0, top_p=0.5, top_k=None, generator=generator, do_sample=False)
    assert greedy.tolist() == [0]


def test_recipe_prompts_share_prefixes():
    """The default templates' prompts, sorted, share long prefixes: prefix groups encode far fewer tokens."""
    prompts = build_prompts(["good", "bad"], 32, load_templates("default"), seed=0)
    ids = sorted([[ord(c) for c in "<system prompt>" + p.text] for p in prompts])
    groups = prefix_groups(ids)
    encoded = 0
    for g in groups:
        rows = [ids[i] for i in g]
        shared = min(len(os.path.commonprefix(rows)), min(map(len, rows)) - 1)
        encoded += shared + sum(len(r) - shared for r in rows)
    assert encoded < 0.8 * sum(map(len, ids))


def _tiny_gemma3(sliding_window: int):
    """A random Gemma 3 (one sliding-window layer, one full-attention layer) on the fixtures' tokenizer."""
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    from .conftest import make_tokenizer

    tokenizer = make_tokenizer()
    config = Gemma3TextConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=1, head_dim=16, sliding_window=sliding_window,
        layer_types=["sliding_attention", "full_attention"], pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, initializer_range=0.02,
    )  # fmt: skip
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = Gemma3ForCausalLM(config).eval()
    from hf_transfer.generate.generation import prepare_tokenizer

    return model, prepare_tokenizer(tokenizer)


def test_a_sliding_window_model_decodes_continuously_while_rows_fit_in_its_window(monkeypatch):
    """Gemma 3's sliding-window layers attend like full attention while a row's prompt + new tokens fit in the
    window: the continuous engine then writes model.generate's text; a longer span takes model.generate itself."""
    model, tokenizer = _tiny_gemma3(sliding_window=32)
    assert supports_continuous_batching(model, span=31) and not supports_continuous_batching(model, span=32)
    assert not supports_continuous_batching(model)  # span unknown: the safe path
    calls = []
    real = continuous.generate_continuous
    monkeypatch.setattr(continuous, "generate_continuous", lambda *a, **k: calls.append(k) or real(*a, **k))
    out = generate_rows(model, tokenizer, PROMPTS, seed=0, batch_size=3, max_new_tokens=8, do_sample=False)
    assert len(calls) == 1
    singles = [generate_batch(model, tokenizer, [p], seed=0, max_new_tokens=8, do_sample=False) for p in PROMPTS]
    assert out.texts == [s.texts[0] for s in singles]
    assert len(set(out.texts)) > 2  # the random model writes different texts for different prompts
    generate_rows(model, tokenizer, PROMPTS, seed=0, batch_size=3, max_new_tokens=40, do_sample=False)
    assert len(calls) == 1  # the longest prompt + 40 new tokens exceed the window of 32: model.generate
