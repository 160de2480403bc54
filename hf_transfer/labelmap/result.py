"""What a labelmap run records, and the parts of its card and report rows that only labelmap knows."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..defaults import portable_ref
from ..results import Reference, RunResult


@dataclass(kw_only=True, eq=False)
class LabelMapResult(RunResult, strategy="labelmap"):
    source_model: str | None = None
    init_from_source: bool = False
    map_method: str | None = None
    label_map: dict[str, str | list[str]] = field(default_factory=dict)  # multi-label targets: lists
    n_pool: int | None = None
    threshold: float | None = None
    top_k: int | None = None
    zero_shot_accuracy: float | None = None
    zero_shot_f1_macro: float | None = None
    # multi-label: zero_shot_accuracy is subset accuracy; each label decided at its zero_shot_thresholds
    zero_shot_f1_micro: float | None = None
    zero_shot_f1_samples: float | None = None
    zero_shot_thresholds: list[float] | None = None
    rounds: list[dict[str, Any]] = field(default_factory=list)  # one record per pseudo-label → train round
    pool_seconds: float | None = None
    pool_rows_per_second: float | None = None

    @classmethod
    def from_run(cls, fitted, data_args, labels: list[str], config, *, map_method: str, label_map: dict,
                 n_train: int, n_pool: int, zero_shot: dict, rounds: list[dict], pool_seconds: float | None,
                 **fields: Any) -> LabelMapResult:  # fmt: skip
        """What every labelmap run records, sentence labels or entity tags: the fit, the source and its map, the
        zero-shot scores through it (``zero_shot``: the metric dict of that evaluation) and the rounds. A student
        initialised from the source's mapped head names that as its model."""
        result = cls(
            strategy="labelmap",
            **fitted.result_fields(data_args, labels),
            source_model=portable_ref(config.source_model),
            init_from_source=config.init_from_source,
            map_method=map_method,
            label_map=label_map,
            n_per_class=data_args.n_per_class or 0,
            n_train=n_train,
            n_pool=n_pool,
            threshold=config.threshold,
            top_k=config.top_k,
            zero_shot_accuracy=zero_shot["accuracy"],
            zero_shot_f1_macro=zero_shot["f1_macro"],
            zero_shot_f1_micro=zero_shot.get("f1_micro"),
            zero_shot_f1_samples=zero_shot.get("f1_samples"),
            rounds=rounds,
            pool_seconds=pool_seconds,
            pool_rows_per_second=n_pool / pool_seconds if pool_seconds else None,
            **fields,
        )
        if config.init_from_source:
            result.model = "source (mapped head)"
        return result

    @property
    def self_training(self) -> bool:
        """The source already classifies the target labels (identity map): it is the teacher, not a floor."""
        return self.map_method == "identity"

    def training_data(self) -> str:
        how = "by the teacher" if self.self_training else "through the map"
        if self.token_classification:
            gold = f"{self.n_per_class} gold sentences per entity type" if self.n_per_class else "no gold sentences"
            return f"{gold}; an unlabelled pool of {self.n_pool} sentences pseudo-labelled {how}"
        gold = f"{self.n_per_class} gold labels per class" if self.n_per_class else "no gold labels"
        return f"{gold}; an unlabelled pool of {self.n_pool} rows pseudo-labelled {how}"

    def references(self) -> list[Reference]:
        """The source through the map on the same eval split; multi-label: its headline is micro-F1 (in the
        reference's ``accuracy`` slot, as the run's own report row shows micro-F1), subset accuracy says little."""
        if self.zero_shot_accuracy is None:
            return []
        name = self._reference_name()
        micro = self.multi_label or self.token_classification
        headline = self.zero_shot_f1_micro if micro else self.zero_shot_accuracy
        return [Reference(name, headline, self.zero_shot_f1_macro, self.pool_seconds,
                          floor=not self.self_training)]  # fmt: skip

    def _reference_name(self) -> str:
        return "the teacher (source model) alone" if self.self_training else "zero-shot through the label map"

    def card_rows(self) -> list[tuple[str, str]]:
        rows = []
        for r in self.rounds:
            rows.append((f"round {r['round']}: pseudo-labelled rows", str(r["pseudo_labelled"])))
            if r.get("pseudo_label_accuracy") is not None:
                rows.append((f"round {r['round']}: pseudo-label accuracy", f"{r['pseudo_label_accuracy']:.4f}"))
            if r.get("pseudo_label_f1_micro") is not None:
                rows.append((f"round {r['round']}: pseudo-label micro-F1", f"{r['pseudo_label_f1_micro']:.4f}"))
        if self.multi_label and self.zero_shot_f1_samples is not None:
            rows.append((f"samples-F1, {self._reference_name()}", f"{self.zero_shot_f1_samples:.4f}"))
        return rows

    def card_limitations(self) -> list[str]:
        return ["Pseudo-labels inherit the source classifier's biases and errors on the new domain."]

    def card_variables(self) -> dict[str, Any]:
        # a multi-label target's list goes in one cell, each name in the backticks the template puts around it
        return {
            "source_model": self.source_model,
            "label_map": {s: "`, `".join(t) if isinstance(t, list) else t for s, t in self.label_map.items()},
            "map_method": self.map_method,
            "head_init": "mapped from the source classifier's head" if self.init_from_source else self.head_init,
        }

    def card_hyperparameters(self) -> dict[str, Any]:
        return {**super().card_hyperparameters(), "map_method": self.map_method}  # what 'auto' resolved to

    def base_models(self) -> list[str | None]:
        return [self.source_model] if self.init_from_source else [self.model, self.source_model]

    def report_name(self) -> str:
        return "self-training (pseudo-label + distil)" if self.self_training else "labelmap (pseudo-label + distil)"
