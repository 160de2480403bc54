"""The batched inference loops: :func:`run_batched` (one row per text) behind :func:`embed_texts` and
:func:`predict_proba`, and :func:`run_batched_words` (one row per word of pre-split sentences) behind
:func:`word_features` and :func:`predict_word_proba`. They differ only in what they take from the model, so
sorting, tokenisation, autocast and mode restoring live once and a fix reaches all of them."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch
from torch import nn
from transformers import BatchEncoding, PreTrainedModel, PreTrainedTokenizerBase

from .precision import resolve_bf16

# ``forward(model, batch) -> (len(batch), dim)`` tensor; ``batch`` is tokenised and on the model's device.
Forward = Callable[[nn.Module, BatchEncoding], torch.Tensor]


def run_batched(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    forward: Forward,
    *,
    dim: int,
    batch_size: int = 64,
    max_length: int = 128,
    bf16: bool | None = None,
) -> np.ndarray:
    """``forward`` over ``texts`` as a float32 ``(len(texts), dim)`` array in input order, batched in length order
    (little padding). ``bf16``: autocast; ``None`` = where the model's device computes bf16
    (:mod:`~hf_transfer.precision`); ``False`` disables it, so an outer autocast region cannot change the results."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
    texts = list(texts)  # one pass over e.g. a datasets Column instead of one lookup per row
    out = np.empty((len(texts), dim), dtype=np.float32)
    if not texts:
        return out
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    encode = dict(padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    device = next(model.parameters()).device
    bf16 = resolve_bf16(bf16, device)
    with _inference(model):
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            batch = tokenizer([texts[i] for i in idx], **encode).to(device)
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=bf16):
                rows = forward(model, batch)
            if tuple(rows.shape) != (len(idx), dim):
                raise ValueError(f"forward returned shape {tuple(rows.shape)} for a batch of {len(idx)}, dim {dim}.")
            out[idx] = rows.float().cpu().numpy()
    return out


@contextlib.contextmanager
def _inference(model: nn.Module) -> Iterator[None]:
    """Eval mode and ``inference_mode`` for the block; every module's mode is put back after."""
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        with torch.inference_mode():
            yield
    finally:
        model.train(modes[0][1])  # runs any train() override, then puts back modules whose mode differed
        for module, training in modes:
            module.training = training


def run_batched_words(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    sentences: Sequence[Sequence[str]],
    forward: Forward,
    *,
    batch_size: int = 64,
    max_length: int = 128,
    bf16: bool | None = None,
) -> list[np.ndarray]:
    """``forward`` (``(batch, seq, dim)`` per sub-token) over pre-split ``sentences``, read at each word's first
    sub-token: one float32 ``(words, dim)`` array per sentence, in input order, batched in length order. Words
    that truncation cuts off get no row (the array is shorter than the sentence); a word that tokenises to nothing
    is read as the unknown token (:func:`~hf_transfer.token_classification.fill_empty_words`). ``bf16``: as in
    :func:`run_batched`."""
    from .token_classification import fill_empty_words

    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
    sentences = fill_empty_words(tokenizer, sentences)
    out: list[np.ndarray | None] = [None] * len(sentences)
    order = sorted(range(len(sentences)), key=lambda i: sum(len(w) + 1 for w in sentences[i]))
    encode = dict(is_split_into_words=True, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    device = next(model.parameters()).device if sentences else None
    bf16 = resolve_bf16(bf16, device) if sentences else False
    with _inference(model):
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            batch = tokenizer([sentences[i] for i in idx], **encode)
            firsts = [first_subtokens(batch.word_ids(j)) for j in range(len(idx))]
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=bf16):
                states = forward(model, batch.to(device)).float().cpu().numpy()
            for j, i in enumerate(idx):
                out[i] = states[j, firsts[j]]
    return out


def first_subtokens(word_ids: Sequence[int | None]) -> list[int]:
    """Positions of each word's first sub-token."""
    return [p for p, w in enumerate(word_ids) if w is not None and (p == 0 or word_ids[p - 1] != w)]


def embed_texts(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    batch_size: int = 64,
    max_length: int = 128,
    bf16: bool | None = None,
) -> torch.Tensor:
    """Pooled embeddings of ``texts`` in input order, as a float32 CPU tensor."""
    kwargs = dict(dim=model.config.hidden_size, batch_size=batch_size, max_length=max_length, bf16=bf16)
    return torch.from_numpy(run_batched(model, tokenizer, texts, lambda m, b: m.embed(**b), **kwargs))


def predict_proba(
    model: PreTrainedModel,
    tokenizer,
    texts: Sequence[str],
    *,
    batch_size: int = 64,
    max_length: int = 128,
    bf16: bool | None = None,
) -> np.ndarray:
    """Probabilities for ``texts`` in input order, float32: softmax over the labels, or for a multi-label model
    (``problem_type="multi_label_classification"``) a sigmoid per label."""
    kwargs = dict(dim=model.config.num_labels, batch_size=batch_size, max_length=max_length, bf16=bf16)
    multi = getattr(model.config, "problem_type", None) == "multi_label_classification"

    def forward(m, b):
        logits = m(**b).logits.float()
        return logits.sigmoid() if multi else logits.softmax(-1)

    return run_batched(model, tokenizer, texts, forward, **kwargs)


def word_features(model, tokenizer, sentences: Sequence[Sequence[str]], *, batch_size: int = 64,
                  max_length: int = 128, bf16: bool | None = None) -> list[np.ndarray]:  # fmt: skip
    """A token-classification model's token states at each word's first sub-token, per sentence."""

    def forward(m, b):
        return m.token_states(**b)

    return run_batched_words(model, tokenizer, sentences, forward, batch_size=batch_size, max_length=max_length,
                             bf16=bf16)  # fmt: skip


def predict_word_proba(model, tokenizer, sentences: Sequence[Sequence[str]], *, batch_size: int = 64,
                       max_length: int = 128, bf16: bool | None = None) -> list[np.ndarray]:  # fmt: skip
    """Tag probabilities (softmax) per word of each sentence, float32 ``(words, tags)``; a word that truncation
    cut off has no row. A model whose config has ``continue_runs`` (hf_transfer's taggers) is read at word level
    as the scores are (:func:`~hf_transfer.token_classification.continue_word_runs`)."""
    from .token_classification import continue_word_runs

    def forward(m, b):
        return m(**b).logits.float().softmax(-1)

    kwargs = dict(batch_size=batch_size, max_length=max_length, bf16=bf16)
    probs = run_batched_words(model, tokenizer, sentences, forward, **kwargs)
    if getattr(model.config, "continue_runs", False):
        probs = [continue_word_runs(p) for p in probs]
    return probs
