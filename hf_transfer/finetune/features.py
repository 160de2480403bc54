"""The frozen-feature fast path: embed each text once, then train only the head on cached features.

With the backbone frozen, every epoch of ordinary training recomputes the same encoder outputs. Here the
encoder runs once per text (length-sorted batches, ``inference_mode``) through ``datasets.map``, whose
fingerprint cache makes a second run over the same data and model free. The Trainer then feeds the
``sentence_embedding`` column straight to the model's head.
"""

from __future__ import annotations

import hashlib
import os

import numpy as np
import torch
from datasets import Dataset, List, Sequence, Value
from transformers import PreTrainedTokenizerBase

from ..data import warn_if_truncated
from ..inference import embed_texts, word_features
from ..modeling import TransferForSequenceClassification
from ..precision import resolve_bf16
from ..token_classification import IGNORE_INDEX


def model_fingerprint(model: TransferForSequenceClassification, max_length: int) -> str:
    """A hash of everything that determines the features: encoder weights, pooling, truncation."""
    digest = hashlib.sha256()
    digest.update(f"{model.config.pooling}|{model.config.normalize}|{max_length}".encode())
    for name, tensor in sorted(model.encoder.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().float().cpu().numpy().tobytes()[:4096])
        digest.update(str(float(tensor.detach().float().sum())).encode())
    return digest.hexdigest()[:16]


def embed_dataset(
    dataset: Dataset,
    model: TransferForSequenceClassification,
    tokenizer: PreTrainedTokenizerBase,
    *,
    batch_size: int = 64,
    max_length: int = 128,
    cache_dir: str | None = None,
    bf16: bool | None = None,
) -> Dataset:
    """``dataset`` plus a ``sentence_embedding`` column from ``model``'s (frozen) encoder (``bf16``: autocast, as
    in :func:`~hf_transfer.inference.run_batched`; ``None`` = where the hardware computes it).

    With ``cache_dir``, features are written to an Arrow file keyed by the data's and the model's
    fingerprints and the precision, and reused by later calls.
    """
    bf16 = resolve_bf16(bf16, next(model.parameters()).device)
    warn_if_truncated(tokenizer, dataset["text"], max_length)
    fingerprint = model_fingerprint(model, max_length) + ("-bf16" if bf16 else "")
    cache_file = None
    if cache_dir:
        os.makedirs(cache_dir, exist_ok=True)
        cache_file = os.path.join(cache_dir, f"features-{dataset._fingerprint}-{fingerprint}.arrow")
    features = dataset.features.copy()
    features["sentence_embedding"] = Sequence(Value("float32"), length=model.config.hidden_size)

    def add_embeddings(batch):
        embeddings = embed_texts(model, tokenizer, batch["text"], batch_size, max_length, bf16=bf16)
        return {"sentence_embedding": embeddings.numpy()}

    with torch.inference_mode():
        return dataset.map(
            add_embeddings,
            batched=True,
            batch_size=max(batch_size * 16, 1024),  # embed_texts sorts by length within each chunk
            features=features,
            cache_file_name=cache_file,
            load_from_cache_file=cache_file is not None,
            new_fingerprint=f"{dataset._fingerprint}-{fingerprint}",
            desc="Embedding texts once (frozen backbone)",
        )


def embed_token_dataset(
    dataset: Dataset,
    model,
    tokenizer: PreTrainedTokenizerBase,
    *,
    batch_size: int = 64,
    max_length: int = 128,
    cache_dir: str | None = None,
    bf16: bool | None = None,
) -> Dataset:
    """Token classification: ``dataset`` (``tokens`` + ``ner_tags``) plus ``token_embeddings``, the frozen
    encoder's state at each word's first sub-token, and ``labels``, each such word's tag: the head then trains
    on one row per word. ``ner_tags`` stays for scores over every word (truncation may drop the last ones)."""
    bf16 = resolve_bf16(bf16, next(model.parameters()).device)
    warn_if_truncated(tokenizer, dataset["tokens"], max_length, words=True)
    fingerprint = model_fingerprint(model, max_length) + "-words" + ("-bf16" if bf16 else "")
    cache_file = None
    if cache_dir:
        os.makedirs(cache_dir, exist_ok=True)
        cache_file = os.path.join(cache_dir, f"features-{dataset._fingerprint}-{fingerprint}.arrow")
    features = dataset.features.copy()
    features["token_embeddings"] = List(List(Value("float32"), length=model.config.hidden_size))
    features["labels"] = List(Value("int64"))

    def add_embeddings(batch):
        states = word_features(model, tokenizer, batch["tokens"], batch_size=batch_size, max_length=max_length,
                               bf16=bf16)  # fmt: skip
        return {"token_embeddings": states, "labels": [tags[: len(s)] for tags, s in zip(batch["ner_tags"], states)]}

    with torch.inference_mode():
        embedded = dataset.map(
            add_embeddings,
            batched=True,
            batch_size=max(batch_size * 16, 1024),
            features=features,
            cache_file_name=cache_file,
            load_from_cache_file=cache_file is not None,
            new_fingerprint=f"{dataset._fingerprint}-{fingerprint}",
            desc="Embedding words once (frozen backbone)",
        )
    return embedded.remove_columns([c for c in embedded.column_names if c not in ("token_embeddings", "labels",
                                                                              "ner_tags")])  # fmt: skip


def collate_token_features(rows: list[dict]) -> dict[str, torch.Tensor]:
    """A batch of cached word features: ``token_embeddings`` zero-padded to the longest sentence, ``labels``
    padded with -100 (no loss, no score)."""
    longest = max(len(r["labels"]) for r in rows)
    dim = next((len(r["token_embeddings"][0]) for r in rows if len(r["labels"])), 0)
    states = np.zeros((len(rows), longest, dim), dtype=np.float32)
    labels = np.full((len(rows), longest), IGNORE_INDEX, dtype=np.int64)
    for i, row in enumerate(rows):
        n = len(row["labels"])
        if n:
            states[i, :n] = np.asarray(row["token_embeddings"], dtype=np.float32)
            labels[i, :n] = np.asarray(row["labels"])
    return {"token_embeddings": torch.from_numpy(states), "labels": torch.from_numpy(labels)}
