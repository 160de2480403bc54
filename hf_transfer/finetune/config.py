"""``FinetuneConfig``: the shared training and model options plus what the finetune strategy adds."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from ..config import check_range
from ..errors import ConfigError
from ..trainer import TransferTrainingArguments


@dataclass
class FinetuneConfig(TransferTrainingArguments):
    """Adapt a pretrained encoder to the target labels: full, head-only on cached features, or PEFT."""

    io_fields: ClassVar[tuple[str, ...]] = ("feature_cache_dir", "cache_features")

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
        super().__post_init__()
        check_range("prior_weight", self.prior_weight, low=0, high=1)
        check_range("wise_alpha", self.wise_alpha, low=0, high=1)
        if self.prior_weight > 0 and self.head_init != "label_descriptions":
            raise ConfigError("prior_weight > 0 needs head_init='label_descriptions' (the prior is that head).")
