"""The one batched inference loop behind every "run a model over a list of texts" in hf_transfer.

Embeddings (:func:`embed_texts`, the pooled features of an hf_transfer classifier) and class probabilities
(:func:`predict_proba`, any sequence classifier: labelmap's source, generate's consistency scorer) differ
only in what they take from the model, so length sorting, tokenisation, ``inference_mode``, bf16 autocast,
train/eval restoring and putting rows back in input order live here once, and a fix to any of them
reaches both.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn
from transformers import BatchEncoding, PreTrainedModel, PreTrainedTokenizerBase

Forward = Callable[[nn.Module, BatchEncoding], torch.Tensor]
"""``forward(model, batch) -> (len(batch), dim)`` tensor; ``batch`` is tokenised and on the model's device."""


def run_batched(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    forward: Forward,
    *,
    dim: int,
    batch_size: int = 64,
    max_length: int = 128,
    bf16: bool = False,
) -> np.ndarray:
    """``forward`` over ``texts`` as a float32 ``(len(texts), dim)`` array, row ``i`` for ``texts[i]``.

    Texts are batched in length order so each batch pads to similar lengths. The model runs in eval mode
    under ``inference_mode`` and, with ``bf16``, bfloat16 autocast (``bf16=False`` turns autocast off, so an
    autocast region around the call cannot change the results); each module's train/eval mode is put back
    afterwards, even when ``forward`` raises. ``dim`` is needed so that no texts still give ``(0, dim)``.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
    texts = list(texts)  # one pass over e.g. a datasets Column instead of one lookup per row
    out = np.empty((len(texts), dim), dtype=np.float32)
    if not texts:
        return out
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    device = next(model.parameters()).device
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                idx = order[start : start + batch_size]
                batch = tokenizer(
                    [texts[i] for i in idx], padding=True, truncation=True, max_length=max_length, return_tensors="pt"
                ).to(device)
                with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=bf16):
                    rows = forward(model, batch)
                if tuple(rows.shape) != (len(idx), dim):
                    raise ValueError(
                        f"forward returned shape {tuple(rows.shape)} for a batch of {len(idx)}, dim {dim}."
                    )
                out[idx] = rows.float().cpu().numpy()
    finally:
        model.train(modes[0][1])  # runs any train() override, then puts back modules whose mode differed
        for module, training in modes:
            module.training = training
    return out


def embed_texts(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    batch_size: int = 64,
    max_length: int = 128,
) -> torch.Tensor:
    """Pooled embeddings of ``texts`` in input order, as a float32 CPU tensor."""
    embed = run_batched(
        model,
        tokenizer,
        texts,
        lambda m, batch: m.embed(**batch),
        dim=model.config.hidden_size,
        batch_size=batch_size,
        max_length=max_length,
    )
    return torch.from_numpy(embed)


def predict_proba(
    model: PreTrainedModel,
    tokenizer,
    texts: Sequence[str],
    *,
    batch_size: int = 64,
    max_length: int = 128,
    bf16: bool = False,
) -> np.ndarray:
    """Softmax probabilities for ``texts`` in input order, float32."""
    return run_batched(
        model,
        tokenizer,
        texts,
        lambda m, batch: m(**batch).logits.float().softmax(-1),
        dim=model.config.num_labels,
        batch_size=batch_size,
        max_length=max_length,
        bf16=bf16,
    )
