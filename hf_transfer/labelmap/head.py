"""Reuse the source head for the target labels: ``W_target = Σ_s P(s | target) W_s`` (and the same for bias),
a target head that works before any training since the source already separates its classes.

A multi-label target scores each label with a sigmoid, where a softmax head's logits mean nothing on their own
(only their differences do): there the biases are then set so that each label fires on the share of the pool
the teacher gives it (``calibrate``), as ``prepare(calibrate=...)`` does for a fresh head."""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from transformers import PreTrainedModel

from ..errors import ConfigError
from ..inference import run_batched
from ..multi_label import MULTI_LABEL, PROBLEM_TYPES
from .mapping import LabelMap


def find_head(model: nn.Module, num_labels: int) -> tuple[nn.Module, str, nn.Linear]:
    """The last ``nn.Linear`` producing ``num_labels`` outputs: ``(parent module, attribute name, layer)``."""
    found = None
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear) and module.out_features == num_labels:
            found = name
    if found is None:
        raise ConfigError(f"Cannot find the source model's classification head (a Linear with {num_labels} outputs).")
    parent_name, _, attr = found.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    return parent, attr, getattr(parent, attr)


def transfer_head(
    source: PreTrainedModel,
    label_map: LabelMap,
    calibrate: tuple[object, Sequence[str], Sequence[float]] | None = None,
    max_length: int = 128,
) -> PreTrainedModel:
    """A copy of ``source`` whose head predicts the target labels, initialised through ``label_map``; for a
    multi-label target a sigmoid head, its biases set by ``calibrate=(tokenizer, texts, rates)`` when given."""
    if source.config.num_labels != len(label_map.source_labels):
        raise ConfigError(
            f"The label map has {len(label_map.source_labels)} source labels but the model has "
            f"{source.config.num_labels}."
        )
    model = copy.deepcopy(source)
    parent, attr, head = find_head(model, source.config.num_labels)
    weights = torch.as_tensor(label_map.source_given_target(), dtype=head.weight.dtype, device=head.weight.device)
    new_head = nn.Linear(head.in_features, len(label_map.target_labels), bias=True).to(head.weight.device)
    with torch.no_grad():
        new_head.weight.copy_(weights.T @ head.weight)  # (T, S) @ (S, H)
        new_head.bias.copy_(weights.T @ head.bias if head.bias is not None else torch.zeros(weights.shape[1]))
    setattr(parent, attr, new_head)
    targets = label_map.target_labels
    model.config.num_labels = len(targets)  # first: this setter resets id2label to placeholders
    model.config.id2label = dict(enumerate(targets))
    model.config.label2id = {t: i for i, t in enumerate(targets)}
    if hasattr(model, "num_labels"):
        model.num_labels = len(targets)
    if label_map.multi_label_target:
        model.config.problem_type = PROBLEM_TYPES[MULTI_LABEL]
        model.config.label_thresholds = None  # chosen after training (run.Fit.scores reads it)
        if calibrate is not None:
            _calibrate(model, new_head, *calibrate, max_length=max_length)
    return model


def _calibrate(model, head: nn.Linear, tokenizer, texts: Sequence[str], rates: Sequence[float], max_length: int):
    """Each label's bias at the ``1 − rate`` quantile of its logit over ``texts``: it fires on a ``rate`` share."""
    with torch.no_grad():
        head.bias.zero_()
    dim = len(rates)
    logits = run_batched(model, tokenizer, texts, lambda m, b: m(**b).logits.float(), dim=dim, max_length=max_length)
    quantiles = [float(np.quantile(logits[:, j], 1 - rate)) for j, rate in enumerate(rates)]
    with torch.no_grad():
        head.bias.copy_(-torch.tensor(quantiles, dtype=head.bias.dtype, device=head.bias.device))
