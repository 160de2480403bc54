"""Pseudo-labelling: keep the target predictions (through the label map) the source is sure of; ``top_k``
per class keeps a skewed teacher from flooding the student with its favourite class.

Multi-label targets: a row's hard labels are those whose score reaches the map's threshold, and its confidence is
that of its least sure decision (``q_t`` where ``t`` is predicted, else ``1 − q_t``): a row is kept only when
every one of its label decisions is, so one doubtful label keeps a row out rather than teaching it wrong."""

from __future__ import annotations

import logging

import numpy as np
from datasets import ClassLabel, Dataset, Features, List, Sequence, Value

from ..config import check_range
from ..errors import ConfigError
from .mapping import LabelMap
from .predict import PROBS_COLUMN

# The one default confidence cut of pseudo-labels (LabelMapConfig.threshold, the CLI, pseudo_label): measured
# on SST-2 self-training it keeps ~25% of the pool, 95% of it right, and scores as keeping all rows (README).
PSEUDO_LABEL_THRESHOLD = 0.8

logger = logging.getLogger(__name__)


def check_selection(threshold: float | None, top_k: int | None) -> None:
    check_range("threshold", threshold, low=0, high=1, note="a probability")
    if top_k is not None and top_k <= 0:
        raise ConfigError(f"top_k={top_k} must be a positive number of rows per class (or unset for no cap).")


def select_rows(confidence: np.ndarray, labels: np.ndarray, num_labels: int, threshold: float | None, top_k):
    """Indices (ascending) of rows with confidence ≥ threshold, capped at the top_k most confident per class.
    ``labels``: a class id per row, or a bool ``(rows, labels)`` matrix (multi-label), where the cap holds per
    label among the rows that have it and the rows with none form one more group; a row stays if it is among the
    top_k of any of its groups."""
    keep = np.ones(len(confidence), dtype=bool) if threshold is None else confidence >= threshold
    if top_k is not None:
        labels = np.asarray(labels)
        if labels.ndim == 2:
            groups = np.column_stack([labels, ~labels.any(1)])
        else:
            groups = labels[:, None] == np.arange(num_labels)[None, :]
        capped = np.zeros_like(keep)
        for member in groups.T:
            idx = np.flatnonzero(keep & member)
            best = idx[np.argsort(-confidence[idx], kind="stable")[:top_k]]
            capped[best] = True
        keep = capped
    return np.flatnonzero(keep)


def pseudo_label(
    pool: Dataset, label_map: LabelMap, *, threshold: float | None = PSEUDO_LABEL_THRESHOLD, top_k: int | None = None
) -> Dataset:
    """A pool carrying ``source_probs`` as ``text``, ``label`` (``ClassLabel``; multi-label: a list of them, the
    labels whose score reaches ``label_map.thresholds``), ``soft_label`` (the target scores) and ``confidence``
    (single-label: the largest score; multi-label: the least sure decision), selected rows only."""
    check_selection(threshold, top_k)
    if PROBS_COLUMN not in pool.column_names:
        raise ConfigError(f"The pool has no {PROBS_COLUMN!r} column; run add_source_probs on it first.")
    num_labels, multi = len(label_map.target_labels), label_map.multi_label_target

    def to_target(batch):
        soft = label_map.predict_proba(np.asarray(batch[PROBS_COLUMN], dtype=np.float64))
        if not multi:
            return {"soft_label": soft.astype(np.float32), "label": soft.argmax(1), "confidence": soft.max(1)}
        has = label_map.decide(soft)
        return {
            "soft_label": soft.astype(np.float32),
            "label": [np.flatnonzero(row).tolist() for row in has],
            "confidence": np.where(has, soft, 1.0 - soft).min(1),
        }

    drop = [c for c in pool.column_names if c not in ("text", PROBS_COLUMN)]  # incl. any gold 'label'
    features = Features({c: f for c, f in pool.features.items() if c not in drop})
    features["soft_label"] = Sequence(Value("float32"), length=num_labels)
    label_feature = ClassLabel(names=label_map.target_labels)
    features["label"] = List(label_feature) if multi else label_feature
    features["confidence"] = Value("float32")
    mapped = pool.map(to_target, batched=True, batch_size=4096, remove_columns=drop, features=features,
                      desc="Mapping to target labels")  # fmt: skip
    confidence = np.asarray(mapped["confidence"])
    if multi:
        labels = np.zeros((len(mapped), num_labels), dtype=bool)
        for i, ids in enumerate(mapped["label"]):
            labels[i, ids] = True
    else:
        labels = np.asarray(mapped["label"])
    rows = select_rows(confidence, labels, num_labels, threshold, top_k)
    if len(rows) == 0:
        raise ConfigError(
            f"Pseudo-labelling kept 0 of {len(pool)} rows: no prediction reached threshold={threshold} "
            f"(the most confident was {confidence.max():.3f}). Lower threshold, or use top_k instead."
        )
    if multi:
        _warn_missing_labels(label_map, labels, np.asarray(mapped["soft_label"]), rows, threshold)
    else:
        _warn_missing_classes(label_map.target_labels, labels, confidence, rows, threshold)
    return mapped.select(rows).select_columns(["text", "label", "soft_label", "confidence"])


def _warn_missing_labels(label_map: LabelMap, has: np.ndarray, scores: np.ndarray, rows: np.ndarray, threshold):
    """Multi-label: a label no kept row has is one the student learns never to predict; say which, and why."""
    cuts = label_map.thresholds or [0.5] * len(label_map.target_labels)
    kept = has[rows].sum(0)
    for t in np.flatnonzero(kept == 0):
        predicted = int(has[:, t].sum())
        logger.warning(
            "Pseudo-labelling kept no row with label %r at threshold=%s (%d pool rows predicted it; its highest "
            "score is %.3f against its decision threshold %.2f): the student will learn to never predict it. Lower "
            "threshold, or select per label with top_k.",
            label_map.target_labels[t], threshold, predicted, scores[:, t].max(), cuts[t],
        )  # fmt: skip


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
