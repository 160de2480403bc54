"""Arguments every strategy shares: where the target data is and how much of it to use."""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .errors import ConfigError

UNASKED_MODES = ("auto", "negative", "unknown")  # DataArguments.extra_train_unasked
DEFAULT_SEED = 0  # TransferTrainingArguments.seed, and a sample_seed left unset outside a run


def option(default, help: str):
    """A dataclass field with its ``--help`` text (for ``HfArgumentParser``)."""
    return field(default=default, metadata={"help": help})


@dataclass
class DataArguments:
    """Target data for a run; ``dataset`` accepts ``bundled:<name>``, a file, a folder or a Hub id."""

    dataset: str = option(
        "bundled:sst2",
        "Target data: 'bundled:<name>' (shipped slices: sst2, ag_news, sst5, sms_spam, sentiment_sentences_amazon, "
        "sentiment_sentences_imdb; multi-label: goemotions; its single-label Ekman-group view: goemotions_ekman; "
        "token classification, loaded by token_classification.load_token_target: conll2003, crossner_politics), "
        "a JSONL/CSV/Parquet file, a folder with train/validation/test files or a saved DatasetDict, or a Hub "
        "dataset id.",
    )
    text_column: str = option("text", "Column holding the input text.")
    label_column: str = option(
        "label", "Column holding the class label (multi-label: a list of labels; default falls back to 'labels')."
    )
    task: str = option(
        "auto",
        "'single_label', 'multi_label', 'token_classification', or 'auto': token classification when the data has "
        "'tokens' + 'ner_tags' (or 'text' + 'entities' spans, or is CoNLL files), multi-label when the label column "
        "holds lists, label_separator splits it, or label_columns are given.",
    )
    label_separator: str | None = option(
        None, "Multi-label from text: the label column joins a row's labels with this separator (e.g. ',')."
    )
    label_columns: list[str] | None = option(
        None, "Multi-label from one 0/1 column per label: the columns (names or globs like 'tag_*'), in label order."
    )
    labels: list[str] | None = option(
        None,
        "Label names in order (token classification: the entity types); default: the data's ClassLabel order, "
        "else sorted.",
    )
    normalize_labels: bool = option(
        False,
        "Strip whitespace around label names and merge case variants ('Positive', 'positive ') into one: the spelling "
        "in labels if given, else the most frequent in train. Default: such variants are an error that lists them.",
    )
    n_per_class: int | None = option(
        None,
        "Train rows per class, sampled stratified (0 = no training); multi-label: at least this many rows per label "
        "(and rows with no label, if the data has them), rarest label first; token classification: at least this many "
        "sentences per entity type, rarest type first. Default: all.",
    )
    sample_seed: int | None = option(
        None,
        "Seed for the n-per-class sample and for a validation split carved from train. Default: the run's --seed, so "
        "another --seed is another sample too; set it to train several seeds on one fixed sample.",
    )
    extra_train: str | None = option(
        None,
        "More training rows appended to the (sampled) train split, labels matched by name, e.g. a generated dataset "
        "folder (hf-transfer generate's <output_dir>/dataset). With n_per_class=0 the model trains on these alone.",
    )
    extra_train_unasked: str = option(
        "auto",
        "Multi-label: how the labels an extra_train row does not list enter the loss. 'unknown': as -1, left out of "
        "the binary cross-entropy (a text generated for 'joy' says nothing about 'love'); 'negative': as 0, the "
        "row taken as fully labelled; 'auto': unknown for a dataset hf-transfer generate wrote, negative for other "
        "data (which lists all its labels). Real rows are always fully known; single-label rows have none unknown. "
        "Measured on GoEmotions validation: benchmarks/multilabel_generate.py.",
    )
    repair_bio: bool = option(
        False,
        "Token classification: read an I-x tag that continues no x entity as B-x (with a warning) instead of "
        "refusing the data (IOB1 files are like this).",
    )
    eval_split: str = option("validation", "Split to evaluate on.")
    validation_size: float = option(
        0.1, "Share of train carved out (stratified) when the data has no validation split."
    )
    max_eval_samples: int | None = option(None, "Evaluate on at most this many rows of the eval split (first rows).")
    repeat_train: int = option(
        1,
        "Repeat the (sampled) real train rows this many times before extra_train is appended, so a few real labels "
        "are not drowned by many synthetic ones (10 with 1 epoch = each real row seen as often as in 10 epochs on "
        "real rows alone).",
    )

    def __post_init__(self):
        if self.task not in ("auto", "single_label", "multi_label", "token_classification"):
            raise ConfigError(
                f"task={self.task!r} must be 'auto', 'single_label', 'multi_label' or 'token_classification'."
            )
        if isinstance(self.label_columns, str):
            self.label_columns = [self.label_columns]
        if self.extra_train_unasked not in UNASKED_MODES:
            raise ConfigError(
                f"extra_train_unasked={self.extra_train_unasked!r} must be one of {', '.join(UNASKED_MODES)}: "
                "'negative' counts the labels an extra_train row does not list as absent, 'unknown' leaves them out "
                "of the loss."
            )
        check_range("repeat_train", self.repeat_train, low=1, note="1 = each real row once per epoch")
        check_range("n_per_class", self.n_per_class, low=0, note="0 means: do not train")
        check_range("validation_size", self.validation_size, low=0, high=1, high_open=True)
        check_range("max_eval_samples", self.max_eval_samples, low=1)

    def seeded(self, seed: int) -> DataArguments:
        """These arguments with an unset ``sample_seed`` taken from the run's ``seed`` (each strategy calls it
        first, so the sample, the carved validation split and ``results.json`` all follow ``--seed``)."""
        return self if self.sample_seed is not None else dataclasses.replace(self, sample_seed=seed)


MAPPING_FILE_SUFFIXES = (".json", ".yaml", ".yml")


def as_mapping(name: str, value):
    """A mapping option given as a mapping (Python, YAML), a JSON object string (command line), or the path of a
    JSON/YAML file holding one (read as data: ``yaml.safe_load`` builds no objects)."""
    if value is None or isinstance(value, dict):
        return value
    if isinstance(value, (str, os.PathLike)) and str(value).lower().endswith(MAPPING_FILE_SUFFIXES):
        path = Path(value)
        if not path.is_file():
            raise ConfigError(f"{name}={str(value)!r} is not a file; give an existing JSON/YAML file or a mapping.")
        try:
            parsed = yaml.safe_load(path.read_text(encoding="utf-8"))  # JSON is YAML too
        except (yaml.YAMLError, UnicodeDecodeError) as err:
            raise ConfigError(f"{name}: cannot read {str(value)!r} ({type(err).__name__}: {err}).") from None
        if not isinstance(parsed, dict):
            raise ConfigError(f"{name}: {str(value)!r} must hold a mapping, holds {type(parsed).__name__}.")
        return parsed
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as err:
        raise ConfigError(
            f"{name} must be a mapping, a JSON object string or a .json/.yaml file, got {value!r} ({err})."
        ) from None
    if not isinstance(parsed, dict):
        raise ConfigError(f"{name} must be a JSON object (a mapping), got {value!r}.")
    return parsed


def check_range(name: str, value, *, low=None, high=None, low_open=False, high_open=False, note: str = "") -> None:
    """Raise ``ConfigError`` unless ``low <= value <= high`` (``<`` at an open end; ``None``: no bound), so a bad
    number fails before anything loads rather than as NaN losses mid-run. ``value=None`` (unset) passes."""
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
