"""``LabelMapConfig``: the finetune options for the student, plus the source model, map and pseudo-labels."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from ..config import as_mapping, check_range
from ..errors import ConfigError
from ..trainer import TransferTrainingArguments
from .mapping import check_label_map
from .pseudo import PSEUDO_LABEL_THRESHOLD, check_selection

MAP_METHODS = ("auto", "explicit", "identity", "learned", "names")


@dataclass
class LabelMapConfig(TransferTrainingArguments):
    """Map a source classifier's labels onto the target task, pseudo-label a pool and distil a student."""

    io_fields: ClassVar[tuple[str, ...]] = ("inference_batch_size",)

    output_dir: str | None = field(default="outputs/labelmap", metadata={"help": "Where the student and results go."})
    source_model: str | None = field(
        default=None,
        metadata={"help": "Source classifier (Hub id or folder) with id2label naming its classes. Required."},
    )
    label_map: dict | str | None = field(
        default=None,
        metadata={
            "help": "Explicit source->target label map as a mapping or JSON: each source label to a target label "
            "or a list of them (multi-label targets: many-to-many; single-label: many-to-one, a list sharing the "
            "source's probability evenly). Unmapped source labels are dropped (single-label: the rest renormalised)."
        },
    )
    map_method: str = field(
        default="auto",
        metadata={
            "help": "'explicit' (label_map), 'identity' (the source has the target's labels, e.g. a teacher "
            "trained on synthetic data), 'learned' (P(target|source) from the labelled sample, Co-Tuning), "
            "'names' (label-name similarity) or 'auto': explicit if label_map is set, else learned if "
            "n_per_class > 0, else identity if the source's labels are the target's, else names."
        },
    )
    one_to_many: str = field(
        default="descriptions",
        metadata={
            "help": "Token classification, explicit maps: how a source type's probability is shared among the "
            "several target types it maps to (person -> person, politician). 'descriptions': by the similarity of "
            "the entity's words to each type's label_descriptions entry (default: the type name), a softmax at "
            "head_init_scale; 'even': equal shares (ties go to the first-listed type)."
        },
    )
    allow_unreachable: bool = field(
        default=False, metadata={"help": "Accept target labels that no source label maps to (never predicted)."}
    )
    threshold: float = field(
        default=PSEUDO_LABEL_THRESHOLD,
        metadata={
            "help": "Keep pseudo-labels whose target confidence is at least this (0 keeps all); multi-label: a row's "
            "confidence is that of its least sure label decision."
        },
    )
    top_k: int | None = field(
        default=None,
        metadata={
            "help": "Keep at most this many pseudo-labels per class, the most confident; multi-label: per label among "
            "the rows predicted to have it (rows with no label form one more group)."
        },
    )
    temperature: float = field(default=2.0, metadata={"help": "Distillation temperature T (> 0)."})
    distill_weight: float = field(
        default=0.5,
        metadata={
            "help": "Weight in [0, 1] of the soft-label term (KL; multi-label: binary cross-entropy per label); the "
            "rest goes to the hard labels."
        },
    )
    rounds: int = field(
        default=1, metadata={"help": "Self-training rounds: after the first, the student re-labels the pool."}
    )
    init_from_source: bool = field(
        default=False,
        metadata={
            "help": "Start the student from the source model, head mapped by W_t = sum_s P(s|t) W_s (multi-label: "
            "a sigmoid head, its biases at the teacher's label rates on the pool)."
        },
    )
    max_pool_samples: int | None = field(
        default=None, metadata={"help": "Pseudo-label at most this many rows of the unlabelled pool."}
    )
    inference_bf16: bool | None = field(
        default=None,
        metadata={
            "help": "bf16 autocast for source-model predictions. Default: on where bf16 measures faster (bf16 "
            "GPUs, AVX512-BF16/AMX CPUs whose bf16 matmul beats fp32: 2.5x faster), off elsewhere (slower on AVX2 "
            "and on some AVX512-BF16 Xeons; hf_transfer/precision.py)."
        },
    )
    inference_batch_size: int = field(default=64, metadata={"help": "Batch size for source-model predictions."})

    def __post_init__(self):
        super().__post_init__()
        self.label_map = as_mapping("label_map", self.label_map)
        if self.label_map:
            check_label_map(self.label_map)  # a value that is not a label name or a list of them
        if not self.source_model:
            raise ConfigError("source_model is required: the classifier whose labels are mapped onto the target.")
        if self.map_method not in MAP_METHODS:
            raise ConfigError(f"map_method={self.map_method!r}: use one of {', '.join(MAP_METHODS)}.")
        if self.one_to_many not in ("descriptions", "even"):
            raise ConfigError(f"one_to_many={self.one_to_many!r}: use 'descriptions' or 'even'.")
        if self.map_method == "explicit" and not self.label_map:
            raise ConfigError("map_method='explicit' needs label_map (a source->target mapping).")
        check_selection(self.threshold, self.top_k)
        check_range("temperature", self.temperature, low=0, low_open=True)
        check_range("distill_weight", self.distill_weight, low=0, high=1,
                    note="0 = only gold CE, 1 = only the soft labels")  # fmt: skip
        check_range("rounds", self.rounds, low=1)
        check_range("max_pool_samples", self.max_pool_samples, low=0, low_open=True)
        check_range("inference_batch_size", self.inference_batch_size, low=1)

    def resolved_map_method(self, n_per_class: int | None, source_labels: list[str], target_labels: list[str]) -> str:
        if self.map_method != "auto":
            return self.map_method
        if self.label_map:
            return "explicit"
        if n_per_class:
            return "learned"
        return "identity" if set(source_labels) == set(target_labels) else "names"
