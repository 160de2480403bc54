"""Fixtures for the generate strategy: a tiny random Llama + a word-level tokenizer with a chat template."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)  # tiny models; the machine is shared with benchmarks

WORDS = (
    "good great fine lovely bad awful terrible boring movie film plot story cast the a was it this very and "
    "not really so positive negative write one example text label category reply only line sure here is :"
).split()
SPECIALS = ["<pad>", "<unk>", "<s>", "</s>", "\n"]
CHAT_TEMPLATE = (
    "{% for m in messages %}<s> {{ m['role'] }} : {{ m['content'] }} \n{% endfor %}"
    "{% if add_generation_prompt %}assistant : {% endif %}"
)


def make_tokenizer(chat_template: str | None = CHAT_TEMPLATE):
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate([*SPECIALS, *WORDS])}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Split(Regex(r"\n"), behavior="isolated"), pre_tokenizers.Split(" ", behavior="removed")]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>"
    )
    if chat_template:
        tokenizer.chat_template = chat_template
    assert tokenizer.convert_tokens_to_ids("good") == vocab["good"]
    return tokenizer


def make_tiny_causal_lm(
    folder, *, seed: int = 0, chat_template: str | None = CHAT_TEMPLATE, hidden_size: int = 32
) -> str:
    """A 2-layer Llama with 2 heads (``hidden_size`` / 2 per head) and the test tokenizer, saved to ``folder``."""
    from transformers import LlamaConfig, LlamaForCausalLM

    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = make_tokenizer(chat_template)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        intermediate_size=2 * hidden_size,
        max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        initializer_range=0.5,  # peaked logits: greedy decoding is not decided by rounding noise
        tie_word_embeddings=False,
    )
    with torch.random.fork_rng(devices=[]):  # fixed weights, and the caller's global RNG left as it was
        torch.manual_seed(seed)
        LlamaForCausalLM(config).eval().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="session")
def tiny_lm_dir(tmp_path_factory) -> str:
    return make_tiny_causal_lm(tmp_path_factory.mktemp("tiny_llama") / "model")


@pytest.fixture(scope="session")
def tiny_lm(tiny_lm_dir):
    from hf_transfer.generate.generation import load_generator

    return load_generator(tiny_lm_dir)


def fake_scorer(labels, good_words=None):
    """``texts -> probs``: the label whose marker word appears in the text gets 0.9 (else uniform)."""
    import numpy as np

    good_words = good_words or {label: label for label in labels}

    def score(texts):
        out = np.full((len(texts), len(labels)), 1.0 / len(labels), dtype=np.float32)
        for i, text in enumerate(texts):
            for j, label in enumerate(labels):
                if good_words[label] in text.split():
                    out[i] = 0.1 / max(len(labels) - 1, 1)
                    out[i, j] = 0.9
        return out

    return score


def interrupt_generation(monkeypatch, at_call: int) -> None:
    """Make generate's ``generate_rows`` raise ``KeyboardInterrupt`` on its ``at_call``-th call (a kill mid-run);
    ``monkeypatch.undo()`` or a new setattr restores it."""
    from hf_transfer.generate import pipeline

    real, calls = pipeline.generate_rows, []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == at_call:
            raise KeyboardInterrupt("simulated interruption")
        return real(*args, **kwargs)

    monkeypatch.setattr(pipeline, "generate_rows", flaky)
