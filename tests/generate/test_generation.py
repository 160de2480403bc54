"""Batched generation: left padding, new tokens only, stopping, seeding, chat template, prompts."""

from __future__ import annotations

import torch

from hf_transfer.generate.generation import (
    EndOfExample,
    count_new_tokens,
    format_prompt,
    generate_batch,
    newline_token_ids,
)
from hf_transfer.generate.prompts import build_prompts, load_templates

PROMPTS = ["write one good example", "write a very long bad movie label text here please now", "sure"]


def test_tokenizer_pads_left_and_uses_chat_template(tiny_lm):
    _, tokenizer = tiny_lm
    assert tokenizer.padding_side == "left"
    text, templated = format_prompt(tokenizer, "write one example")
    assert templated and text.startswith("<s> user : write one example") and text.endswith("assistant : ")
    batch = tokenizer([format_prompt(tokenizer, p)[0] for p in PROMPTS], padding=True, add_special_tokens=False)
    first = batch["input_ids"][0]
    assert first[0] == tokenizer.pad_token_id and first[-1] != tokenizer.pad_token_id  # padding on the left


def test_batched_greedy_equals_one_by_one_and_decodes_only_new_tokens(tiny_lm):
    model, tokenizer = tiny_lm
    batched = generate_batch(model, tokenizer, PROMPTS, seed=0, max_new_tokens=12, do_sample=False)
    for prompt, text, n in zip(PROMPTS, batched.texts, batched.new_tokens):
        single = generate_batch(model, tokenizer, [prompt], seed=0, max_new_tokens=12, do_sample=False)
        assert single.texts == [text] and single.new_tokens == [n]
        # the reference: plain generate on the unpadded prompt, sliced after the prompt
        ids = tokenizer(format_prompt(tokenizer, prompt)[0], add_special_tokens=False, return_tensors="pt")
        with torch.inference_mode():
            full = model.generate(
                **ids,
                max_new_tokens=n,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
                begin_suppress_tokens=newline_token_ids(tokenizer),
                suppress_tokens=[tokenizer.pad_token_id],
            )
        expected = tokenizer.decode(full[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)
        assert text == expected
        assert "user" not in text.split()[:2]  # no prompt echo from slicing


def test_stops_at_end_of_example(tiny_lm):
    model, tokenizer = tiny_lm
    newline = set(newline_token_ids(tokenizer))
    out = generate_batch(model, tokenizer, PROMPTS * 4, seed=3, max_new_tokens=40)
    stopped = 0
    for text, n in zip(out.texts, out.new_tokens):
        assert 1 <= n <= 40
        assert not text.startswith("\n")  # a newline is never the first token
        if n < 40:
            stopped += 1
            assert text.endswith("\n") or "\n" not in text  # stopped at a newline, or at eos
        assert text.count("\n") <= 1
    assert stopped  # the tiny model does emit newlines / eos within 40 tokens
    assert newline == {tokenizer.convert_tokens_to_ids("\n")}


def test_end_of_example_ignores_preamble_lines(tiny_lm):
    _, tokenizer = tiny_lm

    def ids(text):
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    prompt = ids("write one")
    rows = [prompt + ids("sure here is one :\n"), prompt + ids("a good movie\n"), prompt + ids("a good movie")]
    width = max(map(len, rows))
    batch = torch.tensor([[tokenizer.pad_token_id] * (width - len(r)) + r for r in rows])
    # the last 6 positions are each row's new tokens (shorter rows start with padding, skipped when decoding)
    criteria = EndOfExample(tokenizer, prompt_length=width - 6, newline_ids=newline_token_ids(tokenizer))
    done = criteria(batch, None)
    assert done.tolist() == [False, True, False]


def test_count_new_tokens():
    assert count_new_tokens(torch.tensor([[5, 6, 2, 0], [5, 0, 0, 0], [5, 6, 7, 8]]), eos_id=2, pad_id=0) == [3, 1, 4]
    assert count_new_tokens(torch.tensor([[5, 2, 2]]), eos_id=2, pad_id=2) == [2]


def test_sampling_is_seeded_per_batch(tiny_lm):
    model, tokenizer = tiny_lm
    a = generate_batch(model, tokenizer, PROMPTS, seed=11, max_new_tokens=10)
    generate_batch(model, tokenizer, PROMPTS, seed=5, max_new_tokens=10)  # RNG use in between does not matter
    b = generate_batch(model, tokenizer, PROMPTS, seed=11, max_new_tokens=10)
    c = generate_batch(model, tokenizer, PROMPTS, seed=12, max_new_tokens=10)
    assert a.texts == b.texts and a.texts != c.texts
    assert a.seconds > 0


def test_plain_prompt_without_chat_template(tmp_path):
    from hf_transfer.generate.generation import load_generator

    from .conftest import make_tiny_causal_lm

    model, tokenizer = load_generator(make_tiny_causal_lm(tmp_path / "plain", chat_template=None))
    assert format_prompt(tokenizer, "write one") == ("write one\n", False)
    out = generate_batch(model, tokenizer, ["write one", "a b c d"], seed=0, max_new_tokens=5)
    assert len(out.texts) == 2


def test_prompts_are_reproducible_and_varied():
    templates = load_templates("default")
    kwargs = dict(seed=7, descriptions={"good": "praise"}, seed_examples={"good": ["a fine film", "great cast"]})
    a = build_prompts(["good", "bad"], 6, templates, **kwargs)
    b = build_prompts(["good", "bad"], 6, templates, **kwargs)
    assert a == b and len(a) == 12
    assert [p.label for p in a[:4]] == ["good", "bad", "good", "bad"]  # interleaved
    assert len({p.template_id for p in a}) > 1 and len({p.attributes["style"] for p in a}) > 1
    good = [p for p in a if p.label == "good"]
    assert all('"good"' in p.text and "praise" in p.text for p in good)
    assert all("a fine film" in p.text or "great cast" in p.text for p in good)  # few-shot examples shown
    assert all("praise" not in p.text and "- " not in p.text for p in a if p.label == "bad")
    assert build_prompts(["good", "bad"], 6, templates, **{**kwargs, "seed": 8}) != a


def test_prompts_show_label_names_in_words():
    templates = load_templates("default")
    prompts = build_prompts(["meaning_of_life", "card_declined"], 2, templates, seed=0)
    assert [p.label for p in prompts] == ["meaning_of_life", "card_declined"] * 2  # the rows keep the real name
    assert all('"meaning of life"' in p.text for p in prompts[::2])
    assert all('"card declined"' in p.text and "_" not in p.text for p in prompts[1::2])
