"""The one batched inference loop behind :func:`embed_texts` and :func:`predict_proba`: they differ only in what
they take from the model, so sorting, tokenisation, autocast and mode restoring live once and a fix reaches both."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn
from transformers import BatchEncoding, PreTrainedModel, PreTrainedTokenizerBase

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
    bf16: bool = False,
) -> np.ndarray:
    """``forward`` over ``texts`` as a float32 ``(len(texts), dim)`` array in input order, batched in length order
    (little padding). ``bf16=False`` disables autocast, so an outer autocast region cannot change the results."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
    texts = list(texts)  # one pass over e.g. a datasets Column instead of one lookup per row
    out = np.empty((len(texts), dim), dtype=np.float32)
    if not texts:
        return out
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    encode = dict(padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    device = next(model.parameters()).device
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                idx = order[start : start + batch_size]
                batch = tokenizer([texts[i] for i in idx], **encode).to(device)
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
    kwargs = dict(dim=model.config.hidden_size, batch_size=batch_size, max_length=max_length)
    return torch.from_numpy(run_batched(model, tokenizer, texts, lambda m, b: m.embed(**b), **kwargs))


def predict_proba(
    model: PreTrainedModel,
    tokenizer,
    texts: Sequence[str],
    *,
    batch_size: int = 64,
    max_length: int = 128,
    bf16: bool = False,
) -> np.ndarray:
    """Probabilities for ``texts`` in input order, float32: softmax over the labels, or for a multi-label model
    (``problem_type="multi_label_classification"``) a sigmoid per label."""
    kwargs = dict(dim=model.config.num_labels, batch_size=batch_size, max_length=max_length, bf16=bf16)
    multi = getattr(model.config, "problem_type", None) == "multi_label_classification"

    def forward(m, b):
        logits = m(**b).logits.float()
        return logits.sigmoid() if multi else logits.softmax(-1)

    return run_batched(model, tokenizer, texts, forward, **kwargs)
