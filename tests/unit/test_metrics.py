from __future__ import annotations

import numpy as np
import pytest
from transformers import EvalPrediction

from hf_transfer.metrics import F1, Accuracy, classification, classification_scores


def test_accuracy_and_macro_f1_by_hand():
    predictions, references = [0, 0, 1, 1, 2], [0, 1, 1, 1, 0]
    assert Accuracy().compute(predictions=predictions, references=references)["accuracy"] == pytest.approx(3 / 5)
    # class 0: tp1 fp1 fn1 -> 0.5; class 1: tp2 fp0 fn1 -> 0.8; class 2: tp0 -> 0 (never right)
    f1 = F1().compute(predictions=predictions, references=references)["f1"]
    assert f1 == pytest.approx((0.5 + 0.8 + 0.0) / 3)


def test_macro_f1_counts_a_class_that_never_occurs_when_num_labels_given():
    scores = classification_scores([0, 1], [0, 1], num_labels=3)
    assert scores["accuracy"] == 1.0 and scores["f1_macro"] == pytest.approx(2 / 3)


def test_compute_metrics_from_logits_and_soft_references():
    logits = np.array([[2.0, 0.1], [0.0, 1.0], [3.0, -1.0]])
    hard = classification()(EvalPrediction(predictions=logits, label_ids=np.array([0, 1, 1])))
    assert hard == {"accuracy": pytest.approx(2 / 3), "f1_macro": pytest.approx((2 / 3 + 2 / 3) / 2)}
    soft = classification()(
        EvalPrediction(predictions=(logits,), label_ids=np.array([[0.9, 0.1], [0.2, 0.8], [0.4, 0.6]]))
    )
    assert soft["accuracy"] == pytest.approx(2 / 3)


def test_f1_rejects_unknown_average():
    with pytest.raises(ValueError, match="average='weighted'"):
        F1().compute(predictions=[0], references=[0], average="weighted")
