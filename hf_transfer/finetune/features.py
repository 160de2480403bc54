"""The frozen-feature fast path: embed each text once, then train only the head on cached features.

With the backbone frozen, every epoch of ordinary training recomputes the same encoder outputs. Here the
encoder runs once per text (length-sorted batches, ``inference_mode``) through ``datasets.map``, whose
fingerprint cache makes a second run over the same data and model free. The Trainer then feeds the
``sentence_embedding`` column straight to the model's head.
"""

from __future__ import annotations

import hashlib
import os

import torch
from datasets import Dataset, Sequence, Value
from transformers import PreTrainedTokenizerBase

from ..inference import embed_texts
from ..modeling import TransferForSequenceClassification


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
) -> Dataset:
    """``dataset`` plus a ``sentence_embedding`` column from ``model``'s (frozen) encoder.

    With ``cache_dir``, features are written to an Arrow file keyed by the data's and the model's
    fingerprints and reused by later calls.
    """
    fingerprint = model_fingerprint(model, max_length)
    cache_file = None
    if cache_dir:
        os.makedirs(cache_dir, exist_ok=True)
        cache_file = os.path.join(cache_dir, f"features-{dataset._fingerprint}-{fingerprint}.arrow")
    features = dataset.features.copy()
    features["sentence_embedding"] = Sequence(Value("float32"), length=model.config.hidden_size)

    def add_embeddings(batch):
        return {"sentence_embedding": embed_texts(model, tokenizer, batch["text"], batch_size, max_length).numpy()}

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
