"""Offline classification metrics as ``evaluate.Metric`` subclasses, plus a Trainer ``compute_metrics``.

``evaluate.load("accuracy")`` downloads a script from the Hub; these classes give the same interface
(``compute``, ``add_batch``, ``evaluate.combine``) with no network.
"""

from __future__ import annotations

from collections.abc import Callable

import datasets
import evaluate
import numpy as np

_FEATURES = datasets.Features({"predictions": datasets.Value("int64"), "references": datasets.Value("int64")})


class Accuracy(evaluate.Metric):
    """Fraction of predictions equal to the references."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description="Accuracy: fraction of correct predictions.",
            citation="",
            inputs_description="predictions, references: integer class ids",
            features=_FEATURES,
        )

    def _compute(self, predictions, references) -> dict[str, float]:
        predictions, references = np.asarray(predictions), np.asarray(references)
        return {"accuracy": float((predictions == references).mean()) if len(references) else 0.0}


class F1(evaluate.Metric):
    """F1 averaged over classes (``average="macro"``) or pooled over rows (``"micro"``)."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description="F1 score for single-label classification.",
            citation="",
            inputs_description="predictions, references: integer class ids; average: 'macro' or 'micro'",
            features=_FEATURES,
        )

    def _compute(self, predictions, references, average: str = "macro", num_labels: int | None = None):
        predictions, references = np.asarray(predictions), np.asarray(references)
        if average == "micro":
            return {"f1": float((predictions == references).mean()) if len(references) else 0.0}
        if average != "macro":
            raise ValueError(f"average={average!r}: use 'macro' or 'micro'.")
        classes = np.arange(num_labels) if num_labels else np.union1d(predictions, references)
        scores = []
        for c in classes:
            tp = np.sum((predictions == c) & (references == c))
            fp = np.sum((predictions == c) & (references != c))
            fn = np.sum((predictions != c) & (references == c))
            scores.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
        return {"f1": float(np.mean(scores)) if scores else 0.0}


def classification_scores(predictions, references, num_labels: int | None = None) -> dict[str, float]:
    """Accuracy and macro-F1 for integer predictions and references."""
    return {
        "accuracy": Accuracy().compute(predictions=predictions, references=references)["accuracy"],
        "f1_macro": F1().compute(predictions=predictions, references=references, num_labels=num_labels)["f1"],
    }


def classification(num_labels: int | None = None) -> Callable:
    """A ``compute_metrics`` for ``transformers.Trainer``: accuracy and macro-F1 from logits."""

    def compute_metrics(eval_pred) -> dict[str, float]:
        logits, references = eval_pred.predictions, eval_pred.label_ids
        if isinstance(logits, tuple):
            logits = logits[0]
        predictions = np.asarray(logits).argmax(axis=-1)
        references = np.asarray(references)
        if references.ndim > 1:  # soft targets: score against their argmax
            references = references.argmax(axis=-1)
        return classification_scores(predictions, references, num_labels)

    return compute_metrics
