"""Reuse the source head for the target labels: ``W_target = Σ_s P(s | target) W_s`` (and the same for bias).

The source classifier already separates its own classes in its feature space; averaging the rows of the
source labels that map to each target label gives a target head that works before any training.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from transformers import PreTrainedModel

from ..errors import ConfigError
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


def mapped_head_weights(head: nn.Linear, label_map: LabelMap) -> tuple[torch.Tensor, torch.Tensor]:
    weights = torch.as_tensor(label_map.source_given_target(), dtype=head.weight.dtype, device=head.weight.device)
    new_weight = weights.T @ head.weight.detach()  # (T, S) @ (S, H)
    new_bias = weights.T @ head.bias.detach() if head.bias is not None else torch.zeros(weights.shape[1])
    return new_weight, new_bias


def transfer_head(source: PreTrainedModel, label_map: LabelMap) -> PreTrainedModel:
    """A copy of ``source`` whose head predicts the target labels, initialised through ``label_map``."""
    if source.config.num_labels != len(label_map.source_labels):
        raise ConfigError(
            f"The label map has {len(label_map.source_labels)} source labels but the model has "
            f"{source.config.num_labels}."
        )
    model = copy.deepcopy(source)
    parent, attr, head = find_head(model, source.config.num_labels)
    new_weight, new_bias = mapped_head_weights(head, label_map)
    new_head = nn.Linear(head.in_features, len(label_map.target_labels), bias=True).to(head.weight.device)
    with torch.no_grad():
        new_head.weight.copy_(new_weight)
        new_head.bias.copy_(new_bias)
    setattr(parent, attr, new_head)
    targets = label_map.target_labels
    model.config.num_labels = len(targets)  # first: this setter resets id2label to placeholders
    model.config.id2label = dict(enumerate(targets))
    model.config.label2id = {t: i for i, t in enumerate(targets)}
    if hasattr(model, "num_labels"):
        model.num_labels = len(targets)
    return model
