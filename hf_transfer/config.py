"""Arguments every strategy shares: where the target data is and how much of it to use."""

from __future__ import annotations

import json
import math
import numbers
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
    normalize_labels: bool = field(
        default=False,
        metadata={
            "help": "Strip whitespace around label names and merge names that differ only by case ('Positive', "
            "'positive ') into one: the spelling in labels if given, else the most frequent in train. Default: "
            "such variants stop the run with an error that lists them."
        },
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
        check_range("repeat_train", self.repeat_train, low=1, note="1 = each real row once per epoch")
        check_range("n_per_class", self.n_per_class, low=0, note="0 means: do not train")
        check_range("validation_size", self.validation_size, low=0, high=1, high_open=True)
        check_range("max_eval_samples", self.max_eval_samples, low=1)


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


def check_range(
    name: str,
    value,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    note: str = "",
) -> None:
    """Raise ``ConfigError`` naming ``name``, ``value`` and the valid range unless ``low <= value <= high``
    (``<`` at an open end; ``None``: no bound), so a bad number fails before anything loads rather than as
    NaN losses or a crash mid-run. ``None`` is an unset option and passes."""
    if value is None:
        return
    if not isinstance(value, numbers.Real):
        raise ConfigError(f"{name}={value!r} must be a number.")
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if not (too_low or too_high or math.isnan(value)):
        return
    if low is not None and high is not None:
        valid = f"in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
    elif low is not None:
        valid = f"{'>' if low_open else '>='} {low}"
    else:
        valid = f"{'<' if high_open else '<='} {high}"
    raise ConfigError(f"{name}={value!r} must be {valid}{f' ({note})' if note else ''}.")
