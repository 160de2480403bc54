"""hf_transfer.metrics against hand-computed values: Accuracy, macro/micro F1, the Trainer compute_metrics."""

from __future__ import annotations

import evaluate
import numpy as np
import pytest
from transformers import EvalPrediction

from hf_transfer.metrics import F1, Accuracy, classification, classification_scores

# (predictions, references, num_labels, accuracy, macro-F1), each F1 worked out per class below.
CASES = [
    # all right
    ([0, 1, 2, 1], [0, 1, 2, 1], None, 1.0, 1.0),
    # all wrong, two classes: every class has tp = 0
    ([1, 0, 1, 0], [0, 1, 0, 1], None, 0.0, 0.0),
    # class 2 is never predicted: F1(0) = 1, F1(1) = 2/(2+1+0) = 2/3, F1(2) = 0
    ([0, 0, 1, 1], [0, 0, 1, 2], None, 0.75, (1 + 2 / 3 + 0) / 3),
    # same, num_labels=4 adds a class absent from both sides, which scores 0 and counts in the mean
    ([0, 0, 1, 1], [0, 0, 1, 2], 4, 0.75, (1 + 2 / 3 + 0 + 0) / 4),
    # imbalanced: class 0 tp=3 fp=1 fn=0 -> 6/7; class 1 tp=0 fp=0 fn=1 -> 0
    ([0, 0, 0, 0], [0, 0, 0, 1], None, 0.75, (6 / 7 + 0) / 2),
    # class 1: tp=1 fp=1 fn=1 -> 1/2; class 0: tp=1 fp=1 fn=1 -> 1/2; class 2: tp=1 fp=0 fn=0 -> 1
    ([0, 1, 1, 0, 2], [0, 0, 1, 1, 2], None, 0.6, (0.5 + 0.5 + 1) / 3),
]


@pytest.mark.parametrize(("preds", "refs", "num_labels", "accuracy", "f1"), CASES)
def test_accuracy_and_macro_f1_by_hand(preds, refs, num_labels, accuracy, f1):
    assert Accuracy().compute(predictions=preds, references=refs) == {"accuracy": pytest.approx(accuracy)}
    assert F1().compute(predictions=preds, references=refs, num_labels=num_labels) == {"f1": pytest.approx(f1)}
    scores = classification_scores(preds, refs, num_labels=num_labels)
    assert scores == {"accuracy": pytest.approx(accuracy), "f1_macro": pytest.approx(f1)}


@pytest.mark.parametrize(("preds", "refs", "num_labels", "accuracy", "f1"), CASES)
def test_macro_f1_matches_scikit_learn(preds, refs, num_labels, accuracy, f1):
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    labels = list(range(num_labels)) if num_labels else sorted(set(preds) | set(refs))
    expected = sklearn_metrics.f1_score(refs, preds, labels=labels, average="macro", zero_division=0)
    assert F1().compute(predictions=preds, references=refs, num_labels=num_labels)["f1"] == pytest.approx(expected)


def test_micro_f1_is_accuracy_for_single_label():
    preds, refs = [0, 1, 1, 2, 2], [0, 1, 2, 2, 0]
    assert F1().compute(predictions=preds, references=refs, average="micro") == {"f1": pytest.approx(0.6)}


def test_unknown_average_is_rejected():
    with pytest.raises(ValueError, match="average='weighted'"):
        F1().compute(predictions=[0, 1], references=[0, 1], average="weighted")


def test_add_batch_accumulates():
    metric = Accuracy()
    metric.add_batch(predictions=[0, 1], references=[0, 0])
    metric.add_batch(predictions=[1, 1], references=[1, 1])
    assert metric.compute() == {"accuracy": pytest.approx(0.75)}


def test_evaluate_combine_works_offline():
    combined = evaluate.combine([Accuracy(), F1()])
    result = combined.compute(predictions=[0, 0, 1, 1], references=[0, 0, 1, 2])
    assert result == {"accuracy": pytest.approx(0.75), "f1": pytest.approx((1 + 2 / 3 + 0) / 3)}


def test_classification_compute_metrics_on_eval_prediction():
    logits = np.array([[2.0, 0.1, 0.0], [1.5, 0.2, 0.1], [0.0, 3.0, 0.1], [0.1, 2.0, 1.9]], dtype=np.float32)
    refs = np.array([0, 0, 1, 2])  # predictions 0, 0, 1, 1: class 2 never predicted
    compute = classification(num_labels=3)
    expected = {"accuracy": pytest.approx(0.75), "f1_macro": pytest.approx((1 + 2 / 3 + 0) / 3)}
    assert compute(EvalPrediction(predictions=logits, label_ids=refs)) == expected
    # Some models return a tuple of outputs: the logits come first.
    assert compute(EvalPrediction(predictions=(logits, np.zeros((4, 5))), label_ids=refs)) == expected


def test_classification_num_labels_counts_unseen_classes():
    logits = np.eye(2, dtype=np.float32)[[0, 1, 1]]
    refs = np.array([0, 1, 1])
    assert classification()(EvalPrediction(predictions=logits, label_ids=refs))["f1_macro"] == pytest.approx(1.0)
    assert classification(3)(EvalPrediction(predictions=logits, label_ids=refs))["f1_macro"] == pytest.approx(2 / 3)


def test_classification_soft_label_references():
    logits = np.array([[2.0, 0.0], [0.0, 2.0], [0.0, 2.0], [2.0, 0.0]], dtype=np.float32)  # predicts 0, 1, 1, 0
    soft = np.array([[0.9, 0.1], [0.2, 0.8], [0.7, 0.3], [0.4, 0.6]], dtype=np.float32)  # argmax 0, 1, 0, 1
    scores = classification(2)(EvalPrediction(predictions=logits, label_ids=soft))
    # class 0: tp=1 fp=1 fn=1 -> 1/2; class 1: tp=1 fp=1 fn=1 -> 1/2
    assert scores == {"accuracy": pytest.approx(0.5), "f1_macro": pytest.approx(0.5)}


def test_empty_input_scores_zero():
    assert Accuracy().compute(predictions=[], references=[]) == {"accuracy": 0.0}
    assert F1().compute(predictions=[], references=[]) == {"f1": 0.0}


def test_accuracy_and_macro_f1_by_hand_with_a_class_only_predicted():
    """Class 2 is predicted but never a reference: it scores 0 and still counts in the macro mean."""
    predictions, references = [0, 0, 1, 1, 2], [0, 1, 1, 1, 0]
    assert Accuracy().compute(predictions=predictions, references=references)["accuracy"] == pytest.approx(3 / 5)
    # class 0: tp1 fp1 fn1 -> 0.5; class 1: tp2 fp0 fn1 -> 0.8; class 2: tp0 -> 0 (never right)
    f1 = F1().compute(predictions=predictions, references=references)["f1"]
    assert f1 == pytest.approx((0.5 + 0.8 + 0.0) / 3)
