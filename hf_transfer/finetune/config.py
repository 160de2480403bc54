"""``FinetuneConfig``: ``TrainingArguments`` plus what the finetune strategy adds (TRL's pattern)."""

from __future__ import annotations

import copy
import dataclasses
import difflib
import math
from dataclasses import dataclass, field

import torch
from transformers import TrainingArguments
from transformers.utils import logging

from ..config import as_mapping, check_range
from ..defaults import DEFAULT_ENCODER
from ..errors import ConfigError

logger = logging.get_logger(__name__)

BUILTIN_METHODS = ("full", "head")
# Peak learning rate when none is given: one value cannot suit all methods (2e-5 leaves a head trained on
# frozen features where it started; 1e-2 wrecks a fully fine-tuned encoder). PEFT methods not named: 5e-4.
DEFAULT_LEARNING_RATES = {"full": 2e-5, "head": 1e-2, "ia3": 3e-3}
PEFT_LEARNING_RATE = 5e-4


def default_learning_rate(method: str) -> float:
    """The learning rate a run of ``method`` gets when the user sets none."""
    return DEFAULT_LEARNING_RATES.get(method.lower(), PEFT_LEARNING_RATE)


def peft_method_names() -> list[str]:
    """PEFT methods ``method=`` accepts, besides ``full`` and ``head``: every PEFT type, plus ``dora``."""
    from peft.mapping import PEFT_TYPE_TO_CONFIG_MAPPING

    return sorted([t.value.lower() for t in PEFT_TYPE_TO_CONFIG_MAPPING] + ["dora"])


def peft_type_of(method: str):
    """The ``PeftType`` of PEFT method ``method`` (``dora`` is LoRA with ``use_dora``)."""
    from peft import PeftType

    return PeftType.LORA if method == "dora" else PeftType[method.upper()]


def peft_config_class(method: str) -> type:
    """The PEFT config dataclass of ``method``: one lookup for checking ``peft_kwargs`` before the model loads
    and for building the config from them."""
    from peft.mapping import PEFT_TYPE_TO_CONFIG_MAPPING

    return PEFT_TYPE_TO_CONFIG_MAPPING[peft_type_of(method)]


# The numeric options of a finetune run and their valid ranges (check_range's keywords), checked before
# anything loads. TrainingArguments itself checks only warmup_steps >= 0 among these, with a plain ValueError.
FINETUNE_RANGES: dict[str, dict] = {
    "learning_rate": dict(low=0, low_open=True),
    "head_learning_rate": dict(low=0, low_open=True),
    "num_train_epochs": dict(low=0, note="0: no training"),
    "max_steps": dict(low=-1, note="-1: num_train_epochs decides"),
    "min_train_steps": dict(low=0, note="0 turns it off"),
    "per_device_train_batch_size": dict(low=1),
    "per_device_eval_batch_size": dict(low=1),
    "gradient_accumulation_steps": dict(low=1),
    "warmup_steps": dict(low=0, note="below 1: a share of all steps"),
    "weight_decay": dict(low=0),
    "max_grad_norm": dict(low=0, note="0: no clipping"),
    "max_length": dict(low=1),
    "freeze_layers": dict(low=0),
    "head_init_scale": dict(low=0, low_open=True),
    "prior_weight": dict(low=0, high=1),
    "wise_alpha": dict(low=0, high=1),
}


@dataclass
class FinetuneConfig(TrainingArguments):
    """Training arguments for adapting a pretrained encoder to the target labels."""

    output_dir: str | None = field(default="outputs/finetune", metadata={"help": "Where the model and results go."})
    model_name_or_path: str = field(
        default=DEFAULT_ENCODER,
        metadata={"help": "Encoder to adapt: Hub id, local path, or 'minilm' (the embedded all-MiniLM-L6-v2)."},
    )
    method: str = field(
        default="full",
        metadata={
            "help": "'full' (all weights), 'head' (frozen backbone; trains the head on cached features), "
            "or a PEFT method name: 'lora', 'dora', 'ia3', 'loha', 'lokr', 'vera', ..."
        },
    )
    peft_kwargs: dict | str | None = field(
        default=None,
        metadata={"help": "Extra arguments for the PEFT config as a mapping or JSON, e.g. '{\"r\": 16}'."},
    )
    merge_adapter: bool = field(
        default=True, metadata={"help": "Merge PEFT weights into the base model when saving (plain model export)."}
    )
    overwrite_output_dir: bool = field(
        default=False,
        metadata={
            "help": "Start over in an output_dir that holds another run: its results, checkpoints and state are "
            "deleted first. Without it (or resume_from_checkpoint) such a folder is refused."
        },
    )
    freeze_embeddings: bool = field(default=False, metadata={"help": "Freeze the encoder's embedding layer."})
    freeze_layers: int = field(default=0, metadata={"help": "Freeze the bottom k transformer layers."})
    pooling: str | None = field(
        default=None,
        metadata={
            "help": "mean, cls, max or pooler; default: what a sentence-transformers checkpoint declares, else mean."
        },
    )
    normalize: bool | None = field(
        default=None, metadata={"help": "L2-normalise pooled features; default: the checkpoint's own setting."}
    )
    max_length: int = field(default=128, metadata={"help": "Truncate texts to this many tokens."})
    head_init: str = field(
        default="label_descriptions",
        metadata={
            "help": "'label_descriptions': start the head from the encoder's embeddings of a text per label "
            "(zero-shot before training); 'random': a fresh head."
        },
    )
    label_descriptions: dict | str | None = field(
        default=None,
        metadata={
            "help": "Text (or list of texts, averaged) per label for head_init, as a mapping or JSON; "
            "default: the label name."
        },
    )
    head_init_scale: float = field(
        default=10.0,
        metadata={
            "help": "Logit scale (inverse temperature) of a description-initialised head on normalised features."
        },
    )
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
        default=None, metadata={"help": "Folder for cached frozen features (method='head'); default: in memory."}
    )
    cache_features: bool = field(
        default=True, metadata={"help": "With method='head', embed each text once and train the head on the cache."}
    )
    # Defaults that suit few-shot runs on small data better than TrainingArguments' own.
    num_train_epochs: float = field(default=10.0, metadata={"help": "Total number of training epochs."})
    min_train_steps: int = field(
        default=100,
        metadata={
            "help": "Train at least this many optimizer steps: on a small train set num_train_epochs is raised "
            "(whole epochs) to reach it, since 10 epochs of 8 examples per class are a handful of steps. "
            "0: num_train_epochs alone decides; max_steps > 0 always wins."
        },
    )
    learning_rate: float | None = field(
        default=None,
        metadata={"help": "Peak learning rate; default by method: full 2e-5, head 1e-2, ia3 3e-3, other PEFT 5e-4."},
    )
    head_learning_rate: float | None = field(
        default=None,
        metadata={
            "help": "Peak learning rate of the classification head when the encoder or an adapter trains too "
            "(full, PEFT); default: learning_rate."
        },
    )
    per_device_train_batch_size: int = field(default=16, metadata={"help": "Batch size per device for training."})
    per_device_eval_batch_size: int = field(default=64, metadata={"help": "Batch size per device for evaluation."})
    warmup_steps: float = field(default=0.1, metadata={"help": "Warm-up steps (a float < 1 is a share of all steps)."})
    save_strategy: str = field(default="no", metadata={"help": "Checkpoint strategy: 'no', 'epoch' or 'steps'."})
    eval_strategy: str = field(default="no", metadata={"help": "Evaluation strategy: 'no', 'epoch' or 'steps'."})
    logging_strategy: str = field(default="epoch", metadata={"help": "Logging strategy: 'no', 'epoch' or 'steps'."})
    report_to: None | str | list[str] = field(default="none", metadata={"help": "Integrations to report to."})

    def __post_init__(self):
        if not self.use_cpu and not torch.accelerator.is_available():
            # Without this, a multi-process launch on a machine with no GPU initialises gloo but leaves the
            # Trainer non-distributed (each process trains alone); use_cpu makes accelerate use MULTI_CPU.
            self.use_cpu = True
        self.method = self.method.lower()
        if self.learning_rate is None:
            self.learning_rate = default_learning_rate(self.method)
        for name, bounds in FINETUNE_RANGES.items():  # before TrainingArguments' own checks and any model load
            check_range(name, getattr(self, name), **bounds)
        super().__post_init__()
        if self.method not in BUILTIN_METHODS and self.method not in peft_method_names():
            raise ConfigError(
                f"method={self.method!r} is not known. Use 'full', 'head', or a PEFT method: "
                f"{', '.join(peft_method_names())}."
            )
        self.peft_kwargs = as_mapping("peft_kwargs", self.peft_kwargs)
        self.label_descriptions = as_mapping("label_descriptions", self.label_descriptions)
        if self.peft_kwargs and not self.is_peft:
            raise ConfigError(f"peft_kwargs is set but method={self.method!r} is not a PEFT method.")
        if self.peft_kwargs:
            self._check_peft_kwargs()
        if self.pooling is not None and self.pooling not in ("mean", "cls", "max", "pooler"):
            raise ConfigError(f"pooling={self.pooling!r}: use mean, cls, max or pooler.")
        if self.head_init not in ("label_descriptions", "random"):
            raise ConfigError(f"head_init={self.head_init!r}: use 'label_descriptions' or 'random'.")
        if self.prior_weight > 0 and self.head_init != "label_descriptions":
            raise ConfigError("prior_weight > 0 needs head_init='label_descriptions' (the prior is that head).")

    def _check_peft_kwargs(self) -> None:
        """Refuse ``peft_kwargs`` keys the method's PEFT config does not take: PEFT would only fail on them
        after the encoder has loaded, with a bare ``TypeError``."""
        config_class = peft_config_class(self.method)
        valid = sorted(f.name for f in dataclasses.fields(config_class) if f.init)
        unknown = sorted(set(map(str, self.peft_kwargs)) - set(valid))
        if unknown:
            hints = []
            for key in unknown:
                close = difflib.get_close_matches(key, valid, n=1)
                hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
            raise ConfigError(
                f"peft_kwargs has key(s) that {config_class.__name__} (method={self.method!r}) does not take: "
                f"{', '.join(hints)}. Fix or remove them; see the {config_class.__name__} documentation in PEFT."
            )

    def for_train_size(self, n_train: int) -> FinetuneConfig:
        """This config, or a copy with enough whole epochs to reach ``min_train_steps`` on ``n_train`` rows.

        Few-sample fine-tuning needs iterations more than epochs (Zhang et al., 2021, "Revisiting
        Few-sample BERT Fine-tuning"): 16 examples at batch 16 make one step an epoch."""
        if self.max_steps > 0 or self.min_train_steps <= 0 or n_train <= 0:
            return self
        batches = math.ceil(n_train / (self.per_device_train_batch_size * max(self.world_size, 1)))
        steps_per_epoch = max(batches // self.gradient_accumulation_steps, 1)
        if self.num_train_epochs * steps_per_epoch >= self.min_train_steps:
            return self
        config = copy.copy(self)
        config.num_train_epochs = float(math.ceil(self.min_train_steps / steps_per_epoch))
        # Per-epoch saving, evaluation and logging keep their count: every `stretch` epochs, not 100 checkpoints.
        stretch = max(math.ceil(config.num_train_epochs / max(self.num_train_epochs, 1)), 1)
        for strategy, every in (("save_strategy", "save_steps"), ("eval_strategy", "eval_steps"),
                                ("logging_strategy", "logging_steps")):  # fmt: skip
            value = getattr(self, strategy)
            if value == "epoch":
                setattr(config, strategy, type(value)("steps"))
                setattr(config, every, steps_per_epoch * stretch)
        logger.info(
            f"{n_train} training rows make {steps_per_epoch} step(s) an epoch: training "
            f"{config.num_train_epochs:g} epochs instead of {self.num_train_epochs:g} to reach "
            f"min_train_steps={self.min_train_steps} (set it to 0 to train num_train_epochs only)."
        )
        return config

    @property
    def is_peft(self) -> bool:
        return self.method not in BUILTIN_METHODS
