"""``FinetuneConfig``: the shared training and model options plus what the finetune strategy adds."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from ..classifier import AUTO_METHOD, BUILTIN_METHODS, peft_method_names
from ..config import check_range
from ..errors import ConfigError
from ..trainer import TRAINING_RANGES, TransferTrainingArguments
from .auto import AUTO_METHODS


@dataclass
class FinetuneConfig(TransferTrainingArguments):
    """Adapt a pretrained encoder to the target labels: full, head-only on cached features, or PEFT."""

    io_fields: ClassVar[tuple[str, ...]] = ("feature_cache_dir", "cache_features")
    picks_method: ClassVar[bool] = True

    method: str = field(
        default=AUTO_METHOD,
        metadata={
            "help": "'auto' (picks among auto_methods by cross-validation on the labelled rows, never the eval "
            "split), 'full' (all weights), 'head' (frozen backbone; trains the head on cached features), or a PEFT "
            "method name: 'lora', 'dora', 'ia3', 'loha', 'lokr', 'vera', ..."
        },
    )
    auto_methods: list[str] = field(
        default_factory=lambda: list(AUTO_METHODS),
        metadata={
            "help": "method='auto': the candidates, cheapest first (each with its own default learning rate). The "
            "last is the reference, kept unless another is clearly ahead of it in cross-validation."
        },
    )
    auto_folds: int = field(
        default=2,
        metadata={
            "help": "method='auto': cross-validation folds. Each candidate trains this many times on (k-1)/k of the "
            "rows: with 2, one to two final runs' compute per candidate (the head on cached features: almost nothing)."
        },
    )
    auto_max_rows: int = field(
        default=2048,
        metadata={
            "help": "method='auto': cross-validate on at most this many labelled rows (a label-stratified, seeded "
            "sample; 0: all), so auto on a large labelled set costs a few small runs, not several full ones. The "
            "winner trains on every row."
        },
    )

    output_dir: str | None = field(default="outputs/finetune", metadata={"help": "Where the model and results go."})
    prior_weight: float = field(
        default=0.0,
        metadata={
            "help": "Weight in [0, 1] of a KL term that keeps predictions close to the zero-shot (description) "
            "head's, so few labels refine the prior instead of overwriting it."
        },
    )
    wise_alpha: float = field(
        default=1.0,
        metadata={
            "help": "After training, keep this share of each weight's change (WiSE-FT): 1.0 = the fine-tuned "
            "model, 0.0 = the starting (zero-shot) model."
        },
    )
    feature_cache_dir: str | None = field(
        default=None,
        metadata={"help": "Folder for cached frozen features (method='head'); default: in memory."},
    )
    cache_features: bool = field(
        default=True,
        metadata={"help": "With method='head', embed each text once and train the head on the cache."},
    )

    def __post_init__(self):
        if str(self.method).lower() == AUTO_METHOD:
            self._check_auto()
        super().__post_init__()
        check_range("prior_weight", self.prior_weight, low=0, high=1)
        check_range("wise_alpha", self.wise_alpha, low=0, high=1)
        if self.prior_weight > 0 and self.head_init != "label_descriptions":
            raise ConfigError("prior_weight > 0 needs head_init='label_descriptions' (the prior is that head).")

    def _check_auto(self) -> None:
        """Before any model loads: a learning rate fits one method, and every candidate must be one."""
        if self.learning_rate is not None:
            check_range("learning_rate", self.learning_rate, **TRAINING_RANGES["learning_rate"])  # its range first
            raise ConfigError(
                f"learning_rate={self.learning_rate} is set with method='auto', whose candidates each train at their "
                f"own default rate (full 2e-5, head 1e-2, PEFT 5e-4). Set --method to the one it is for, or drop it."
            )
        self.auto_methods = [str(m).lower() for m in self.auto_methods]
        known = [*BUILTIN_METHODS, *peft_method_names()]
        unknown = [m for m in self.auto_methods if m not in known]
        if not self.auto_methods or unknown or len(set(self.auto_methods)) < len(self.auto_methods):
            raise ConfigError(
                f"auto_methods={self.auto_methods}: list distinct methods among {', '.join(known)}"
                + (f" ({', '.join(map(repr, unknown))} is not one)" if unknown else "")
                + "."
            )
        check_range("auto_folds", self.auto_folds, low=2)
        check_range("auto_max_rows", self.auto_max_rows, low=0, note="0: no limit")
