"""One ``Trainer`` for every strategy: cross-entropy on the labels plus an optional soft-target term.

``loss = (1 − w) · CE(z, y) + w · T² · KL(softmax(log q / T) ‖ softmax(z / T))``

``q`` is a distribution over the labels per row, in a ``soft_targets`` column, so no second model runs
during training. The same term serves two strategies:

* finetune's anchor to the zero-shot prior (``prior_weight``): ``q`` is the label-description head's
  prediction on the row, computed once before training, ``T = 1``, so few labels refine the prior instead
  of overwriting it;
* labelmap's distillation (``distill_weight``, ``temperature``): ``q`` is the teacher's soft label
  (Hinton et al. 2015; temperature-scaling a distribution ``q`` is ``softmax(log q / T)``), one-hot for
  gold rows, and rows without a label train on the soft term alone.

The head may train at its own learning rate (``args.head_learning_rate``): its parameters get optimizer
groups of their own, handed to the Trainer's ``create_optimizer`` through ``get_optimizer_cls_and_kwargs``
(the hook that GaLore uses to pass its groups), so the scheduler, weight decay and checkpoint resumption
treat them as any group. ``WeightInterpolationCallback`` (WiSE-FT) is the one post-training weight edit.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F
from transformers import Trainer, TrainerCallback

SOFT_TARGETS = "soft_targets"


def soft_target_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    labels: torch.Tensor | None = None,
    *,
    weight: float = 1.0,
    temperature: float = 1.0,
) -> torch.Tensor:
    """``(1 − weight) · CE(logits, labels) + weight · T² · KL(targets_T ‖ softmax(logits / T))``, batch mean;
    the KL term alone when there are no labels or ``weight == 1``."""
    logits = logits.float()
    target_log = F.log_softmax(targets.float().clamp_min(1e-8).log() / temperature, dim=-1)
    kl = F.kl_div(F.log_softmax(logits / temperature, dim=-1), target_log, log_target=True, reduction="batchmean")
    kl = kl * temperature**2
    if labels is None or weight == 1.0:
        return kl
    return (1 - weight) * F.cross_entropy(logits, labels) + weight * kl


def is_head_parameter(name: str) -> bool:
    """``classifier.weight``, or under PEFT ``base_model.model.classifier.modules_to_save.default.weight``."""
    return "classifier" in name.split(".")


class TransferTrainer(Trainer):
    """``Trainer`` with a soft-target term (``soft_weight``, ``temperature``) read from a ``soft_targets``
    column, and the head at ``args.head_learning_rate`` when set. Without either it is the stock Trainer."""

    def __init__(self, *args, soft_weight: float = 0.0, temperature: float = 1.0, **kwargs):
        if not 0.0 <= soft_weight <= 1.0:
            raise ValueError(f"soft_weight={soft_weight} must be in [0, 1].")
        if temperature <= 0:
            raise ValueError(f"temperature={temperature} must be > 0.")
        self.soft_weight = soft_weight
        self.temperature = temperature
        super().__init__(*args, **kwargs)

    def _set_signature_columns_if_needed(self):
        # the Trainer drops columns that forward() does not take; the loss reads this one
        super()._set_signature_columns_if_needed()
        if SOFT_TARGETS not in self._signature_columns:
            self._signature_columns.append(SOFT_TARGETS)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        targets = inputs.pop(SOFT_TARGETS, None)
        if targets is None or self.soft_weight == 0 or not model.training:  # evaluation: plain CE
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        labels = inputs.pop("labels", None)
        outputs = model(**inputs)
        loss = soft_target_loss(outputs.logits, targets, labels, weight=self.soft_weight, temperature=self.temperature)
        return (loss, outputs) if return_outputs else loss

    def get_optimizer_cls_and_kwargs(self, args, model=None):
        optimizer_cls, kwargs = super().get_optimizer_cls_and_kwargs(args, model)
        groups = self._head_groups(model if model is not None else self.model)
        if groups is not None and "params" not in kwargs:
            kwargs = {**kwargs, "params": groups}  # create_optimizer uses these instead of its own two groups
        return optimizer_cls, kwargs

    def _head_groups(self, model) -> list[dict] | None:
        """The Trainer's decay / no-decay groups, each split into the rest and the head (at
        ``head_learning_rate``); ``None`` when the head has no rate of its own or is all that trains (then
        ``learning_rate`` is its rate)."""
        head_lr = getattr(self.args, "head_learning_rate", None)
        if head_lr is None or head_lr == self.args.learning_rate:
            return None
        trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        if all(is_head_parameter(n) for n, _ in trainable):
            return None
        decay = set(self.get_decay_parameter_names(model))
        groups = []
        for head in (False, True):
            for decayed in (True, False):
                params = [p for n, p in trainable if is_head_parameter(n) == head and (n in decay) == decayed]
                group = {"params": params, "weight_decay": self.args.weight_decay if decayed else 0.0}
                groups.append({**group, "lr": head_lr} if head else group)
        return [g for g in groups if g["params"]]


class WeightInterpolationCallback(TrainerCallback):
    """At the end of training set each trainable weight to ``θ₀ + alpha · (θ − θ₀)`` (WiSE-FT, Wortsman et al.
    2022): part of the way back to the zero-shot start, which few labels tend to overshoot."""

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
