"""What a finetune run records, and the parts of its card and report row that only finetune knows."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..model_card import synthetic_recipe
from ..results import RunResult


@dataclass(kw_only=True, eq=False)
class FinetuneResult(RunResult, strategy="finetune"):
    repeat_train: int = 1
    extra_train: str | None = None  # rows joined to the real sample (e.g. a generate run's dataset)
    n_real_train: int | None = None
    n_extra_train: int = 0
    extra_train_missing_labels: list[str] = field(default_factory=list)
    extra_train_unasked: str | None = None  # multi-label: the labels an extra row does not list, negative or unknown
    method_selection: dict | None = None  # method='auto': the candidates' cross-validation and the choice (auto.py)

    def training_data(self) -> str:
        if not self.extra_train:
            return super().training_data()
        n = self.n_per_class
        real = "all real rows" if n is None else f"{n} real per class" if n else "0 real"
        return f"{real}, plus the rows of `{self.extra_train}` ({self.n_train} training rows in all)"

    def card_variables(self) -> dict[str, Any]:
        return {
            "synthetic": synthetic_recipe(self.extra_train) or synthetic_recipe(self.dataset),
            "method_selection": self.method_selection,
        }

    def report_name(self) -> str:
        name = super().report_name()
        if self.extra_train:  # trained on generated (or other extra) rows plus n real labels per class
            return f"generate + {name}"
        return f"{self.strategy} zero-shot" if self.zero_shot else name

    @property
    def zero_shot(self) -> bool:
        return self.n_per_class == 0 and not self.extra_train
