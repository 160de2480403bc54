"""Arguments every strategy shares: where the target data is and how much of it to use."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from .errors import ConfigError


@dataclass
class DataArguments:
    """Target data for a run; ``dataset`` accepts ``bundled:<name>``, a file, a folder or a Hub id."""

    dataset: str = field(
        default="bundled:sst2",
        metadata={
            "help": "Target data: 'bundled:<name>' (shipped slices: sst2, ag_news, sst5, sms_spam, "
            "sentiment_sentences_amazon, sentiment_sentences_imdb), a JSONL/CSV/Parquet file, "
            "a folder with train/validation/test files or a saved DatasetDict, or a Hub dataset id."
        },
    )
    text_column: str = field(default="text", metadata={"help": "Column holding the input text."})
    label_column: str = field(default="label", metadata={"help": "Column holding the class label."})
    labels: list[str] | None = field(
        default=None,
        metadata={"help": "Label names in the order to use; default: the data's ClassLabel order, else sorted."},
    )
    n_per_class: int | None = field(
        default=None,
        metadata={"help": "Train on a stratified sample of this many rows per class (0 = no training); default: all."},
    )
    sample_seed: int = field(default=0, metadata={"help": "Seed for the n-per-class sample."})
    extra_train: str | None = field(
        default=None,
        metadata={
            "help": "More training rows appended to the (sampled) train split, labels matched by name: e.g. a "
            "generated dataset folder (hf-transfer generate's <output_dir>/dataset). With n_per_class=0 the "
            "model trains on these rows alone."
        },
    )
    eval_split: str = field(default="validation", metadata={"help": "Split to evaluate on."})
    validation_size: float = field(
        default=0.1, metadata={"help": "Share of train carved out (stratified) when the data has no validation split."}
    )
    max_eval_samples: int | None = field(
        default=None, metadata={"help": "Evaluate on at most this many rows of the eval split (first rows)."}
    )

    repeat_train: int = field(
        default=1,
        metadata={
            "help": "Repeat the (sampled) real train rows this many times before extra_train is appended, so a "
            "few real labels are not drowned by many synthetic ones (e.g. 10 with 1 epoch = each real row seen "
            "as often as in a 10-epoch run on real rows alone)."
        },
    )

    def __post_init__(self):
        if self.repeat_train < 1:
            raise ValueError(f"repeat_train={self.repeat_train} must be >= 1 (1 = each real row once per epoch).")
        if self.n_per_class is not None and self.n_per_class < 0:
            raise ValueError(f"n_per_class={self.n_per_class} must be >= 0 (0 means: do not train).")
        if not 0 <= self.validation_size < 1:
            raise ValueError(f"validation_size={self.validation_size} must be in [0, 1).")


def as_mapping(name: str, value):
    """A mapping option given as a mapping (Python, YAML) or as a JSON object string (command line)."""
    if value is None or isinstance(value, dict):
        return value
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as err:
        raise ConfigError(f"{name} must be a mapping or a JSON object string, got {value!r} ({err}).") from None
    if not isinstance(parsed, dict):
        raise ConfigError(f"{name} must be a JSON object (a mapping), got {value!r}.")
    return parsed
