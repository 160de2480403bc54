"""Per-label decision thresholds for multi-label classifiers, chosen on training data only.

A sigmoid at 0.5 is the right cut only for a calibrated model trained on balanced labels; with few rows per
label it rarely is. The thresholds are chosen on out-of-fold predictions of the labelled rows
(:func:`out_of_fold`: each row is scored by a model that did not train on it), never on the evaluation split.
A label's own F1-optimal cut rests on a handful of positives, so it is shrunk toward the one cut that is best
over all labels (micro-F1), by the label's number of positives against ``shrinkage`` pseudo-rows.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .multi_label import rarest_label

GRID = np.round(np.arange(0.02, 0.99, 0.02), 2)


def _f1(predicted: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """F1 per column of bool ``(rows, k)`` arrays; 0 where a column has no true and no predicted row."""
    tp = (predicted & truth).sum(0)
    den = predicted.sum(0) + truth.sum(0)
    return np.divide(2 * tp, den, out=np.zeros(den.shape, dtype=float), where=den > 0)


def _best(scores: np.ndarray) -> float:
    """The middle of the best plateau of ``scores`` over :data:`GRID` (ties are common with few positives)."""
    best = np.flatnonzero(np.isclose(scores, scores.max()))
    return float(GRID[best[len(best) // 2]])


def fit_thresholds(probs: np.ndarray, targets: np.ndarray, shrinkage: float = 8.0) -> list[float]:
    """One threshold per label from ``probs`` (rows, labels) and 0/1 ``targets`` of the same rows."""
    probs, truth = np.asarray(probs, dtype=float), np.asarray(targets) > 0.5
    if probs.shape != truth.shape or probs.ndim != 2:
        raise ValueError(f"probs {probs.shape} and targets {truth.shape} must be the same (rows, labels) shape.")
    micro = [_f1((probs >= t).reshape(-1, 1), truth.reshape(-1, 1))[0] for t in GRID]
    shared = _best(np.asarray(micro))
    per_label = np.stack([_f1(probs >= t, truth) for t in GRID])  # (grid, labels)
    positives = truth.sum(0)
    out = []
    for j in range(probs.shape[1]):
        own = _best(per_label[:, j]) if positives[j] else shared
        weight = positives[j] / (positives[j] + shrinkage) if shrinkage > 0 else 1.0
        out.append(round(float(weight * own + (1 - weight) * shared), 4))
    return out


def fold_ids(targets: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """A fold per row, spread by each row's rarest label so that every fold holds positives of most labels."""
    truth = np.asarray(targets) > 0.5
    rarest = rarest_label(truth)
    rng = np.random.default_rng(seed)
    order = np.lexsort((rng.random(len(truth)), rarest))  # shuffled within a stratum, strata in turn
    ids = np.empty(len(truth), dtype=int)
    ids[order] = np.arange(len(truth)) % folds
    return ids


def out_of_fold(
    targets: np.ndarray,
    folds: int,
    seed: int,
    train_and_predict: Callable[[np.ndarray, np.ndarray], np.ndarray],
) -> np.ndarray:
    """Probabilities for every row from a model trained on the other folds: ``train_and_predict(train_rows,
    held_out_rows)`` gets row indices and returns ``(len(held_out_rows), labels)`` probabilities."""
    if folds < 2:
        raise ValueError(f"folds={folds}: cross-fitting needs at least 2.")
    targets = np.asarray(targets)
    ids = fold_ids(targets, folds, seed)
    probs = np.zeros(targets.shape, dtype=float)
    for k in range(folds):
        held_out, rest = np.flatnonzero(ids == k), np.flatnonzero(ids != k)
        if len(held_out):
            probs[held_out] = train_and_predict(rest, held_out)
    return probs
