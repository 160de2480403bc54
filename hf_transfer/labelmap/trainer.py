"""Distillation through the stock Trainer: a ``compute_loss`` that mixes gold CE with a soft-label KL.

``loss = (1 - α) · CE(student, labels) + α · T² · KL(softmax(teacher / T) ‖ softmax(student / T))``
(Hinton et al. 2015). The teacher arrives as probabilities in a ``soft_labels`` column, so no teacher
model runs during training; temperature-scaling a distribution ``p`` is ``softmax(log p / T)``.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F
from transformers import Trainer

from ..errors import ConfigError
from ..finetune.trainer import ExtraColumnsMixin, HeadLearningRateMixin

SOFT_COLUMN = "soft_labels"


def check_distillation(temperature: float, alpha: float) -> None:
    if temperature <= 0:
        raise ConfigError(f"temperature={temperature} must be > 0.")
    if not 0.0 <= alpha <= 1.0:
        raise ConfigError(f"distill_weight={alpha} must be in [0, 1] (0 = only gold CE, 1 = only the soft labels).")


def distillation_loss(
    student_logits: torch.Tensor,
    teacher_probs: torch.Tensor,
    labels: torch.Tensor | None,
    temperature: float = 2.0,
    alpha: float = 0.5,
) -> torch.Tensor:
    """The mixed loss above, averaged over the batch."""
    student_logits = student_logits.float()
    teacher_log = F.log_softmax(teacher_probs.float().clamp_min(1e-8).log() / temperature, dim=-1)
    student_log = F.log_softmax(student_logits / temperature, dim=-1)
    kl = F.kl_div(student_log, teacher_log, log_target=True, reduction="batchmean") * temperature**2
    if labels is None or alpha == 1.0:
        return kl
    ce = F.cross_entropy(student_logits, labels)
    return (1 - alpha) * ce + alpha * kl


class DistillationTrainer(HeadLearningRateMixin, ExtraColumnsMixin, Trainer):
    """``Trainer`` that distils the ``soft_labels`` column into the student alongside the gold labels."""

    extra_columns = (SOFT_COLUMN,)

    def __init__(self, *args, temperature: float = 2.0, distill_weight: float = 0.5, **kwargs):
        check_distillation(temperature, distill_weight)
        self.temperature = temperature
        self.distill_weight = distill_weight
        super().__init__(*args, **kwargs)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        soft = inputs.pop(SOFT_COLUMN, None)
        if soft is None or not model.training:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        labels = inputs.pop("labels", None)
        outputs = model(**inputs)
        loss = distillation_loss(outputs.logits, soft, labels, self.temperature, self.distill_weight)
        return (loss, outputs) if return_outputs else loss
