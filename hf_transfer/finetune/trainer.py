"""Trainer pieces that keep few-shot fine-tuning anchored to the zero-shot prior.

A head initialised from label descriptions already classifies; a few dozen labels then pull the model
away from that prior faster than they teach it. Two standard remedies, both opt-in:

* ``PriorRegularizedTrainer`` (``prior_weight``): mixes the cross-entropy with a KL term toward the
  zero-shot prior's predictions on the same texts, computed once before training (a teacher that costs
  nothing per step);
* ``WeightInterpolationCallback`` (``wise_alpha``): after training, moves the trainable weights back
  towards their starting point, θ = θ₀ + α (θ − θ₀) (WiSE-FT, Wortsman et al. 2022).
"""

from __future__ import annotations

import torch
from torch.nn import functional as F
from transformers import Trainer, TrainerCallback

PRIOR_COLUMN = "prior_logits"


class ExtraColumnsMixin:
    """Keep dataset columns that ``compute_loss`` reads but the model's ``forward`` does not accept.

    The Trainer drops every column not in the forward signature (``remove_unused_columns``); a loss
    that needs, say, teacher probabilities names them in ``extra_columns``.
    """

    extra_columns: tuple[str, ...] = ()

    def _set_signature_columns_if_needed(self):
        super()._set_signature_columns_if_needed()
        self._signature_columns += [c for c in self.extra_columns if c not in self._signature_columns]


class HeadLearningRateMixin:
    """Give the classification head its own learning rate (``args.head_learning_rate``).

    A head trained from a few labels needs a far larger step than the encoder or adapter under it (head-only
    runs use 1e-2, LoRA 5e-4): with many classes and the adapter's rate the head stays near its start. The
    Trainer's optimizer is built as usual, then the head's parameters move to groups of their own, so the
    scheduler, weight decay and checkpoint resumption treat them like any other group."""

    def create_optimizer(self, model=None):
        fresh = self.optimizer is None
        optimizer = super().create_optimizer(model)
        head_lr = getattr(self.args, "head_learning_rate", None)
        if not fresh or head_lr is None or head_lr == self.args.learning_rate:
            return optimizer
        model = self.model if model is None else model
        head = {id(p) for name, p in model.named_parameters() if p.requires_grad and is_head_parameter(name)}
        if all(id(p) in head for p in model.parameters() if p.requires_grad):  # head-only: learning_rate is its rate
            return optimizer
        for group in list(optimizer.param_groups):
            moved = [p for p in group["params"] if id(p) in head]
            if moved:
                group["params"] = [p for p in group["params"] if id(p) not in head]
                optimizer.add_param_group({**{k: v for k, v in group.items() if k != "params"}, "params": moved,
                                           "lr": head_lr})  # fmt: skip
        return optimizer


def is_head_parameter(name: str) -> bool:
    """``classifier.weight``, or under PEFT ``base_model.model.classifier.modules_to_save.default.weight``."""
    return "classifier" in name.split(".")


class PriorRegularizedTrainer(HeadLearningRateMixin, ExtraColumnsMixin, Trainer):
    """``Trainer`` whose loss is ``(1 - w) * CE + w * KL(prior || model)`` when a prior column is present."""

    extra_columns = (PRIOR_COLUMN,)

    def __init__(self, *args, prior_weight: float = 0.0, **kwargs):
        if not 0.0 <= prior_weight <= 1.0:
            raise ValueError(f"prior_weight={prior_weight} must be in [0, 1].")
        self.prior_weight = prior_weight
        super().__init__(*args, **kwargs)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        prior_logits = inputs.pop(PRIOR_COLUMN, None)
        loss, outputs = super().compute_loss(model, inputs, return_outputs=True, num_items_in_batch=num_items_in_batch)
        if prior_logits is not None and self.prior_weight > 0 and model.training:
            kl = prior_kl(outputs.logits, prior_logits)
            loss = (1 - self.prior_weight) * loss + self.prior_weight * kl
        return (loss, outputs) if return_outputs else loss


def prior_kl(logits: torch.Tensor, prior_logits: torch.Tensor) -> torch.Tensor:
    """KL(softmax(prior) || softmax(logits)), averaged over the batch."""
    return F.kl_div(
        F.log_softmax(logits.float(), dim=-1),
        F.log_softmax(prior_logits.float(), dim=-1),
        log_target=True,
        reduction="batchmean",
    )


class WeightInterpolationCallback(TrainerCallback):
    """At the end of training set each trainable weight to ``θ₀ + alpha · (θ − θ₀)``."""

    def __init__(self, alpha: float):
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"wise_alpha={alpha} must be in [0, 1].")
        self.alpha = alpha
        self._start: dict[str, torch.Tensor] = {}

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self._start = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}

    def on_train_end(self, args, state, control, model=None, **kwargs):
        with torch.no_grad():
            for name, param in model.named_parameters():
                if name in self._start:
                    start = self._start[name].to(param.device, param.dtype)
                    param.copy_(start + self.alpha * (param - start))
        self._start = {}
