"""Pseudo-labelling: keep the target predictions (through the label map) the source is sure of; ``top_k``
per class keeps a skewed teacher from flooding the student with its favourite class."""

from __future__ import annotations

import logging

import numpy as np
from datasets import ClassLabel, Dataset, Features, Sequence, Value

from ..config import check_range
from ..errors import ConfigError
from .mapping import LabelMap
from .predict import PROBS_COLUMN

logger = logging.getLogger(__name__)


def check_selection(threshold: float | None, top_k: int | None) -> None:
    check_range("threshold", threshold, low=0, high=1, note="a probability")
    if top_k is not None and top_k <= 0:
        raise ConfigError(f"top_k={top_k} must be a positive number of rows per class (or unset for no cap).")


def select_rows(confidence: np.ndarray, labels: np.ndarray, num_labels: int, threshold: float | None, top_k):
    """Indices (ascending) of rows with confidence ≥ threshold, capped at the top_k most confident per class."""
    keep = np.ones(len(confidence), dtype=bool) if threshold is None else confidence >= threshold
    if top_k is not None:
        capped = np.zeros_like(keep)
        for c in range(num_labels):
            idx = np.flatnonzero(keep & (labels == c))
            best = idx[np.argsort(-confidence[idx], kind="stable")[:top_k]]
            capped[best] = True
        keep = capped
    return np.flatnonzero(keep)


def pseudo_label(
    pool: Dataset, label_map: LabelMap, *, threshold: float | None = 0.9, top_k: int | None = None
) -> Dataset:
    """A pool carrying ``source_probs`` as ``text``, ``label`` (``ClassLabel``), ``soft_label`` (the target
    distribution) and ``confidence`` (its maximum), selected rows only."""
    check_selection(threshold, top_k)
    if PROBS_COLUMN not in pool.column_names:
        raise ConfigError(f"The pool has no {PROBS_COLUMN!r} column; run add_source_probs on it first.")
    num_labels = len(label_map.target_labels)

    def to_target(batch):
        soft = label_map.predict_proba(np.asarray(batch[PROBS_COLUMN], dtype=np.float64)).astype(np.float32)
        return {"soft_label": soft, "label": soft.argmax(1), "confidence": soft.max(1)}

    drop = [c for c in pool.column_names if c not in ("text", PROBS_COLUMN)]  # incl. any gold 'label'
    features = Features({c: f for c, f in pool.features.items() if c not in drop})
    features["soft_label"] = Sequence(Value("float32"), length=num_labels)
    features["label"] = ClassLabel(names=label_map.target_labels)
    features["confidence"] = Value("float32")
    mapped = pool.map(to_target, batched=True, batch_size=4096, remove_columns=drop, features=features,
                      desc="Mapping to target labels")  # fmt: skip
    confidence = np.asarray(mapped["confidence"])
    labels = np.asarray(mapped["label"])
    rows = select_rows(confidence, labels, num_labels, threshold, top_k)
    if len(rows) == 0:
        raise ConfigError(
            f"Pseudo-labelling kept 0 of {len(pool)} rows: no prediction reached threshold={threshold} "
            f"(the most confident was {confidence.max():.3f}). Lower threshold, or use top_k instead."
        )
    _warn_missing_classes(label_map.target_labels, labels, confidence, rows, threshold)
    return mapped.select(rows).select_columns(["text", "label", "soft_label", "confidence"])


def _warn_missing_classes(names, labels: np.ndarray, confidence: np.ndarray, rows: np.ndarray, threshold) -> None:
    """A class with no pseudo-labels teaches the student to never predict it (seen: a learned map kept no
    'negative' at threshold=0.8 and the student fell to 70%); say which class and what to set."""
    kept = np.bincount(labels[rows], minlength=len(names))
    for c in np.flatnonzero(kept == 0):
        predicted = confidence[labels == c]
        best = f"its most confident prediction is {predicted.max():.3f}" if len(predicted) else "no row predicts it"
        logger.warning(
            "Pseudo-labelling kept no rows of class %r at threshold=%s (%s): the student will learn to never "
            "predict it. Lower threshold below that, or select per class with top_k.",
            names[c], threshold, best,
        )  # fmt: skip
