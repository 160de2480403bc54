"""Each filter on its own, and ``apply_filters``' per-filter counts."""

from __future__ import annotations

import random

import numpy as np
import pytest

from hf_transfer.generate.filters import (
    apply_filters,
    balance_mask,
    clean_text,
    contamination_mask,
    default_scorer,
    exact_duplicate_mask,
    length_mask,
    lsh_bands,
    near_duplicate_mask,
)

from .conftest import fake_scorer


@pytest.mark.parametrize(
    "raw, expected",
    [
        ('"What a lovely film."', "What a lovely film."),
        ("1. What a lovely film.", "What a lovely film."),
        ("- What a lovely film.", "What a lovely film."),
        ("Sure! Here is a positive review:\nWhat a lovely film.\n", "What a lovely film."),
        ("<|im_start|>assistant\nWhat a lovely film.<|im_end|>", "What a lovely film."),
        ("Review: “What a lovely film.”", "What a lovely film."),
        ('"What a lovely film.', "What a lovely film."),
        ("Here's one:", ""),
        ('Here\'s a sample: "The cars were a nightmare."', "The cars were a nightmare."),
        ("Movie review: The movie has a dull plot.", "The movie has a dull plot."),
        ("Sentence 1: A fine film.", "A fine film."),
        ("   \n  ", ""),
    ],
)
def test_clean_text(raw, expected):
    assert clean_text(raw) == expected


def test_clean_text_drops_prompt_echo():
    prompt = "Write one sentence that is positive.\nReply with the text only."
    raw = "Write one sentence that is positive.\nI adored every minute."
    assert clean_text(raw, prompt) == "I adored every minute."
    assert clean_text("Reply with the text only.", prompt) == ""


def test_clean_text_drops_a_restated_description_but_keeps_real_examples():
    """Bundled SmolLM2 output: restating the label description is not an example of it."""
    prompt = (
        'Write one sentence in a casual style that clearly belongs to the category "negative" (a sentence from a '
        "movie review that expresses a negative opinion of the film).\nReply with the text only."
    )
    assert clean_text("A sentence from a movie review expressing a negative opinion of the film.", prompt) == ""
    assert clean_text("This is a sentence from a movie review that expresses a negative opinion.", prompt) == ""
    kept = "The film is a dull, overlong mess with a negative view of everyone in it."
    assert clean_text(kept, prompt) == kept  # shares a few words ("the film", "negative"), not half its trigrams


@pytest.mark.parametrize(
    "raw, label, expected",
    [
        ('Negative: "The plot goes nowhere."', "negative", "The plot goes nowhere."),
        ("POSITIVE - I loved it.", "positive", "I loved it."),
        ("Sci/Tech: NASA launches a probe.", "sci/tech", "NASA launches a probe."),
        ("Negative reviews pile up for a dull film.", "negative", "Negative reviews pile up for a dull film."),
        ("Positive: fine.", "negative", "Positive: fine."),  # only the row's own label is stripped
    ],
)
def test_clean_text_strips_the_label_prefix(raw, label, expected):
    assert clean_text(raw, label=label) == expected


def test_length_mask():
    assert length_mask(["a b", "a b c", "a b c d e f"], 3, 5).tolist() == [False, True, False]


def test_exact_duplicates_after_normalisation():
    texts = ["A great film!", "a great film", "A GREAT  film.", "Another one"]
    assert exact_duplicate_mask(texts).tolist() == [True, False, False, True]


def test_near_duplicates():
    texts = [
        "the movie was a complete waste of two hours and I want my money back",
        "the movie was a complete waste of two hours and i want my money back!!",  # exact after normalising
        "this movie was a complete waste of two hours and I want my money back",  # near
        "The movie was a total waste of two hours, I want my money back",  # further
        "a beautiful story with wonderful acting and a moving score",
    ]
    assert near_duplicate_mask(texts, 0.8).tolist() == [True, False, False, True, True]
    assert near_duplicate_mask(texts, 0.5).tolist() == [True, False, False, False, True]
    assert near_duplicate_mask(texts, 1.0).all()
    assert lsh_bands(0.8) < lsh_bands(0.5)  # a lower threshold needs more bands (more candidates)


def test_near_duplicates_scale_linearly(monkeypatch):
    """LSH finds the candidates: exact Jaccard runs ~once per row, not for all 10M pairs (counted, not timed)."""
    from hf_transfer.generate import filters

    calls = []
    real = filters.jaccard
    monkeypatch.setattr(filters, "jaccard", lambda a, b: calls.append(1) or real(a, b))
    rng = random.Random(0)
    vocab = [f"w{i}" for i in range(2000)]
    texts = [" ".join(rng.choices(vocab, k=12)) for _ in range(4000)]
    texts += [t + " x" for t in texts[:500]]  # 500 near-duplicates
    keep = near_duplicate_mask(texts, 0.8)
    assert keep[:4000].all() and not keep[4000:].any()
    assert 500 <= len(calls) < 2 * len(texts)


def test_contamination():
    eval_texts = ["one two three four five six seven eight nine ten", "tiny eval text"]
    texts = [
        "zero one two three four five six seven eight",  # shares 8 words in a row
        "one two three four five six seven nine",  # no 8-gram in common
        "Tiny eval text!",  # equals a short eval text
        "something else entirely",
    ]
    assert contamination_mask(texts, eval_texts, 8).tolist() == [False, True, False, True]
    assert contamination_mask(texts, eval_texts, 0).all()
    assert contamination_mask(texts, None, 8).all()


def rows(texts_labels):
    return [
        {"raw_text": text, "label_id": label, "prompt": "Write one example.", "index": i}
        for i, (text, label) in enumerate(texts_labels)
    ]


def test_apply_filters_counts_each_filter():
    labels = ["good", "bad"]
    data = rows(
        [
            ("Sure, here is one:", 0),  # cleaning
            ("good", 0),  # length
            ("a good film with a good cast and a good plot indeed", 0),  # contamination
            ("a really good movie overall", 0),  # kept
            ("A really good movie overall!", 0),  # exact duplicate
            ("a really good movie overall!!! yes", 0),  # near duplicate
            ("a terribly bad movie overall", 1),  # kept
            ("this one is good actually honestly", 1),  # inconsistent: the scorer says good
        ]
    )
    kept, stats = apply_filters(
        data,
        min_words=3,
        max_words=20,
        near_dup_threshold=0.7,
        consistency_threshold=0.5,
        contamination_ngram=5,
        eval_texts=["we saw a good film with a good cast and a good plot indeed"],
        scorer=fake_scorer(labels),
    )
    assert [r["text"] for r in kept] == ["a really good movie overall", "a terribly bad movie overall"]
    assert stats["removed"] == {
        "cleaning": 1,
        "length": 1,
        "contamination": 1,
        "exact_duplicate": 1,
        "near_duplicate": 1,
        "consistency": 1,
        "surplus": 0,
        "balance": 0,
    }
    assert stats["generated"] == 8 and stats["kept"] == 2
    assert [r["consistency"] for r in kept] == pytest.approx([0.9, 0.9])


def test_scorer_loads_only_when_needed():
    calls = []

    def load():
        calls.append(1)
        return fake_scorer(["good", "bad"])

    common = dict(min_words=1, max_words=9, near_dup_threshold=0.9, contamination_ngram=8, load_scorer=load)
    kept, _ = apply_filters(rows([("a good one", 0)]), consistency_threshold=0.0, **common)
    assert not calls and kept[0]["consistency"] is None
    apply_filters(rows([("a good one", 0)]), consistency_threshold=0.5, **common)
    assert calls == [1]


def test_default_scorer_is_the_description_classifier(tiny_model_dir):
    score = default_scorer(["positive", "negative"], {"positive": "a good movie"}, model=tiny_model_dir)
    texts = ["good movie", "a rather long and bad film indeed", "the plot"]  # lengths differ: batches are sorted
    probs = score(texts, batch_size=2)
    assert probs.shape == (3, 2) and np.allclose(probs.sum(1), 1, atol=1e-5)
    # row i is text i's own prediction (one at a time, no padding), in input order
    one_by_one = np.concatenate([score([t]) for t in texts])
    assert np.allclose(probs, one_by_one, atol=1e-5)
    assert not np.allclose(probs[0], probs[1], atol=1e-4)  # a tiny random model still tells texts apart


@pytest.mark.parametrize(
    "line, preamble",
    [
        ("Sure, here's a positive review:", True),
        ("Certainly! Here is one.", True),
        ("Here's an example of a negative review", True),
        ("Below is a short text.", True),
        ("Absolutely loved this film from start to finish.", False),
        ("I would recommend it to anyone.", False),
        ("Here the plot falls apart completely.", False),
        ("Certainly the worst film of the year.", False),
    ],
)
def test_preamble_lines(line, preamble):
    from hf_transfer.generate.generation import PREAMBLE

    assert bool(PREAMBLE.search(line)) is preamble
    assert (clean_text(line) == "") is preamble


def test_balance_min_subsamples_to_the_rarest_label():
    labels = [0] * 7 + [1] * 3 + [2] * 5
    keep = balance_mask(labels, "min", seed=0)
    kept = np.asarray(labels)[keep]
    assert [int((kept == i).sum()) for i in range(3)] == [3, 3, 3]
    assert keep[7:10].all()  # the rarest label loses nothing
    assert (balance_mask(labels, "min", seed=0) == keep).all()  # seeded
    assert any((balance_mask(labels, "min", seed=s) != keep).any() for s in range(1, 5))  # at random
    assert balance_mask(labels, "none").all() and balance_mask([], "min").shape == (0,)


def test_balance_is_counted_after_consistency():
    labels = ["bad", "good"]
    rows = [{"raw_text": f"a good film number {w}", "label_id": 1} for w in ("one", "two", "three", "four")]
    rows += [{"raw_text": "a bad film again today", "label_id": 0}]
    kw = dict(min_words=1, max_words=20, near_dup_threshold=1.0, consistency_threshold=0.0, contamination_ngram=0)
    kept, stats = apply_filters(rows, balance="min", **kw)
    assert sorted(r["label_id"] for r in kept) == [0, 1] and stats["removed"]["balance"] == 3
    kept, stats = apply_filters(rows, scorer=fake_scorer(labels), **{**kw, "consistency_threshold": 0.5})
    assert stats["removed"]["balance"] == 0 and len(kept) == 5
