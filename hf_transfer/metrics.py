"""Offline classification metrics: the interface of ``evaluate.load("accuracy")`` (``compute``, ``add_batch``,
``evaluate.combine``) without downloading a script from the Hub; plus a Trainer ``compute_metrics``."""

from __future__ import annotations

from collections.abc import Callable

import datasets
import evaluate
import numpy as np

_FEATURES = datasets.Features({"predictions": datasets.Value("int64"), "references": datasets.Value("int64")})


def _metric_info(description: str, inputs: str) -> evaluate.MetricInfo:
    return evaluate.MetricInfo(description=description, citation="", inputs_description=inputs, features=_FEATURES)


def _accuracy(predictions: np.ndarray, references: np.ndarray) -> float:
    return float((predictions == references).mean()) if len(references) else 0.0


class Accuracy(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return _metric_info("Accuracy: fraction of correct predictions.", "predictions, references: integer class ids")

    def _compute(self, predictions, references) -> dict[str, float]:
        return {"accuracy": _accuracy(np.asarray(predictions), np.asarray(references))}


class F1(evaluate.Metric):
    """F1 averaged over classes (``average="macro"``) or pooled over rows (``"micro"``, equal to accuracy)."""

    def _info(self) -> evaluate.MetricInfo:
        return _metric_info(
            "F1 score for single-label classification.",
            "predictions, references: integer class ids; average: 'macro' or 'micro'",
        )

    def _compute(self, predictions, references, average: str = "macro", num_labels: int | None = None):
        predictions, references = np.asarray(predictions), np.asarray(references)
        if average == "micro":
            return {"f1": _accuracy(predictions, references)}
        if average != "macro":
            raise ValueError(f"average={average!r}: use 'macro' or 'micro'.")
        classes = np.arange(num_labels) if num_labels else np.union1d(predictions, references)
        scores = []
        for c in classes:
            tp = np.sum((predictions == c) & (references == c))  # 2tp + fp + fn = #predicted + #true
            scores.append(0.0 if tp == 0 else 2 * tp / (np.sum(predictions == c) + np.sum(references == c)))
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
        references = np.asarray(references)
        if references.ndim > 1:  # soft targets: score against their argmax
            references = references.argmax(axis=-1)
        return classification_scores(np.asarray(logits).argmax(axis=-1), references, num_labels)

    return compute_metrics


def multi_label_scores(predicted: np.ndarray, references: np.ndarray) -> dict:
    """Scores of bool ``(rows, labels)`` predictions: micro-, macro- and samples-F1, subset accuracy, and per
    label precision, recall and F1 (lists in label order). F1 is 0 where a label is neither true nor predicted
    (scikit-learn's ``zero_division=0``); a row with no true and no predicted label scores 1 in samples-F1."""
    predicted, references = np.asarray(predicted, dtype=bool), np.asarray(references) > 0.5
    tp = (predicted & references).sum(0).astype(float)
    n_pred, n_true = predicted.sum(0).astype(float), references.sum(0).astype(float)

    def ratio(num, den):
        return np.divide(num, den, out=np.zeros_like(num, dtype=float), where=den > 0)

    f1 = ratio(2 * tp, n_pred + n_true)
    row_tp = (predicted & references).sum(1).astype(float)
    row_den = predicted.sum(1) + references.sum(1)
    samples = np.where(row_den > 0, ratio(2 * row_tp, row_den.astype(float)), 1.0)
    return {
        "f1_micro": float(ratio(2 * tp.sum(keepdims=True), (n_pred + n_true).sum(keepdims=True))[0]),
        "f1_macro": float(f1.mean()) if len(f1) else 0.0,
        "f1_samples": float(samples.mean()) if len(samples) else 0.0,
        "subset_accuracy": float((predicted == references).all(1).mean()) if len(references) else 0.0,
        "precision_per_label": ratio(tp, n_pred).tolist(),
        "recall_per_label": ratio(tp, n_true).tolist(),
        "f1_per_label": f1.tolist(),
    }


def multi_label(thresholds=None) -> Callable:
    """A ``compute_metrics`` for multi-label logits: a label is predicted where its sigmoid reaches its
    threshold (``thresholds``, one per label, default 0.5); the Trainer gets the scalar scores."""

    def compute_metrics(eval_pred) -> dict[str, float]:
        logits = eval_pred.predictions[0] if isinstance(eval_pred.predictions, tuple) else eval_pred.predictions
        probs = 1 / (1 + np.exp(-np.asarray(logits, dtype=np.float64)))
        cut = np.asarray(thresholds if thresholds is not None else [0.5] * probs.shape[1])
        scores = multi_label_scores(probs >= cut, eval_pred.label_ids)
        return {k: v for k, v in scores.items() if not isinstance(v, list)}

    return compute_metrics


class EntityF1(evaluate.Metric):
    """Entity-level precision, recall and F1 of BIO tag sequences (seqeval's semantics, offline):
    ``hf_transfer.token_classification.entity_scores`` behind ``evaluate``'s ``compute``/``add_batch``."""

    def _info(self) -> evaluate.MetricInfo:
        features = datasets.Features(
            {
                "predictions": datasets.Sequence(datasets.Value("string")),
                "references": datasets.Sequence(datasets.Value("string")),
            }
        )
        return evaluate.MetricInfo(description="Entity-level F1 of BIO tags (exact type and span).", citation="",
                                   inputs_description="predictions, references: lists of BIO tags per sentence",
                                   features=features)  # fmt: skip

    def _compute(self, predictions, references) -> dict:
        from .token_classification import entity_scores

        return entity_scores(predictions, references)


def token_classification(names) -> Callable:
    """A ``compute_metrics`` for tagger logits ``(rows, seq, tags)``: entity-level micro/macro F1, precision and
    recall, and word accuracy, read at the labelled positions (first sub-tokens); ``names`` are the tags."""
    from .token_classification import tag_scores, word_predictions

    def compute_metrics(eval_pred) -> dict[str, float]:
        logits = eval_pred.predictions[0] if isinstance(eval_pred.predictions, tuple) else eval_pred.predictions
        label_ids = np.asarray(eval_pred.label_ids)
        truth = [row[row != -100].tolist() for row in label_ids]
        scores = tag_scores(word_predictions(logits, label_ids), truth, names)
        return {k: v for k, v in scores.items() if not isinstance(v, dict)}

    return compute_metrics
