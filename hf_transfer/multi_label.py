"""The multi-label task type: a text carries any number of the labels (emotions, topics, tags).

In a loaded ``DatasetDict`` the ``label`` column is a ``List(ClassLabel)`` of label ids; ``[]`` is a text with
none of the labels, kept only where the data says so (an empty JSON list, a row of 0/1 columns all 0): a
missing value is an error, not a guess. For training the ids become a float multi-hot vector
(:func:`multi_hot`); the model scores each label with a sigmoid and binary cross-entropy
(``problem_type="multi_label_classification"``), and a label is predicted when its probability reaches its
own threshold (:mod:`hf_transfer.thresholds`).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence

import numpy as np
from datasets import ClassLabel, Dataset, DatasetDict, List, Value

from .errors import DataError, some

SINGLE_LABEL, MULTI_LABEL = "single_label", "multi_label"
TASKS = ("auto", SINGLE_LABEL, MULTI_LABEL)
PROBLEM_TYPES = {SINGLE_LABEL: "single_label_classification", MULTI_LABEL: "multi_label_classification"}


def is_list_feature(feature) -> bool:
    return isinstance(feature, List) or type(feature).__name__ in ("Sequence", "LargeList")


def task_of(data: Dataset | DatasetDict) -> str:
    """``token_classification`` for ``ner_tags`` sentences, ``multi_label`` when the ``label`` column holds lists of
    labels, else ``single_label``."""
    ds = data["train"] if isinstance(data, DatasetDict) else data
    if "ner_tags" in ds.features:
        return "token_classification"
    return MULTI_LABEL if is_list_feature(ds.features["label"]) else SINGLE_LABEL


def from_label_columns(data: DatasetDict, patterns: Sequence[str]) -> tuple[DatasetDict, list[str]]:
    """One 0/1 column per label (names or globs, in that order) → a ``label`` list of the names set to 1."""
    columns = data["train"].column_names
    names: list[str] = []
    for pattern in patterns:
        matched = [c for c in columns if fnmatch.fnmatchcase(c, pattern)] if any(ch in pattern for ch in "*?[") \
            else [pattern] if pattern in columns else []  # fmt: skip
        if not matched:
            raise DataError(f"label_columns: {pattern!r} matches no column of split 'train' (columns: {columns}).")
        names += [c for c in matched if c not in names]
    if "label" in names:
        raise DataError("label_columns cannot include a column named 'label': rename it first.")
    out = {}
    for split, ds in data.items():
        missing = [c for c in names if c not in ds.column_names]
        if missing:
            raise DataError(f"Split {split!r} lacks the label column(s) {missing} that train has.")
        values = np.column_stack([_zero_one(ds, split, c) for c in names])
        rows = [[names[j] for j in np.flatnonzero(row)] for row in values]
        out[split] = ds.remove_columns(names).add_column("label", rows)
    return DatasetDict(out), names


def _zero_one(ds: Dataset, split: str, column: str) -> np.ndarray:
    values = ds[column]
    bad = next(((i, v) for i, v in enumerate(values) if v not in (0, 1) or isinstance(v, str)), None)
    if bad is not None:
        raise DataError(
            f"Split {split!r}, label column {column!r}: row {bad[0]} holds {bad[1]!r}; label columns must be "
            f"0/1 (or true/false) in every row. Fix the value, or leave the column out of label_columns."
        )
    return np.asarray(values, dtype=bool)


JOIN_SEPARATORS = (";", "|", ",", "+")  # what label_separator is detected among (task="auto")


def joined_separator(values: Sequence) -> str | None:
    """The separator of labels joined into one string (``"joy;love"``), when the data shows it unambiguously: at
    least two rows hold it and every part of every joined label is also a label of a row on its own. Class names
    that merely contain the character (``"Arts, Culture"``) fail the second test, since ``Culture`` is no class."""
    strings = [v.strip() for v in values if isinstance(v, str)]
    for separator in JOIN_SEPARATORS:
        joined = [v for v in strings if separator in v]
        alone = {v for v in strings if separator not in v}
        parts = {p.strip() for v in joined for p in v.split(separator) if p.strip()}
        if len(joined) >= 2 and len(alone) >= 2 and parts <= alone:
            return separator
    return None


def split_joined(data: DatasetDict, separator: str) -> DatasetDict:
    """A text column of joined labels (``"joy,love"``) → lists, each name stripped."""
    hits = 0
    out = {}
    for split, ds in data.items():
        values = ds["label"]
        for i, value in enumerate(values):
            if not isinstance(value, str) or not value.strip():
                raise DataError(
                    f"Split {split!r}, row {i}: the label is {value!r}, not labels joined by {separator!r}. Give "
                    f"every row its labels; for a text with none of them use a 0/1 column per label "
                    f"(label_columns), where a row of zeros says so."
                )
            hits += separator in value
        lists = [[part.strip() for part in v.split(separator) if part.strip()] for v in values]
        out[split] = ds.remove_columns("label").add_column("label", lists)
    if not hits:
        raise DataError(
            f"label_separator={separator!r} splits no row of the label column: every row is one label. Check the "
            f"separator (e.g. ',' or '|'), or train single-label without label_separator."
        )
    return DatasetDict(out)


def as_lists(data: DatasetDict) -> DatasetDict:
    """A scalar label column read as one label per row, for ``task="multi_label"`` on single-label data."""
    return DatasetDict(
        {
            split: ds.map(lambda b: {"label": [[v] for v in b["label"]]}, batched=True, desc=f"Label lists ({split})")
            for split, ds in data.items()
        }  # fmt: skip
    )


def check_lists(data: DatasetDict) -> None:
    """A missing value (``null``) where a label list belongs is an error: ``[]`` is how data says "none"."""
    for split, ds in data.items():
        for i, value in enumerate(ds["label"]):
            if value is None or any(v is None for v in value):
                raise DataError(
                    f"Split {split!r}, row {i}: the label list is {value!r}. Give every row a list of its labels, "
                    f"[] for a text with none of them, or drop the row."
                )


def encode_lists(ds: Dataset, split: str, names: list[str], rename, to_text) -> Dataset:
    """Label lists of names (or ids of a ``ClassLabel``) → ``List(ClassLabel(names))`` of ids, repeats dropped."""
    index = {name: i for i, name in enumerate(names)}
    unknown = sorted({n for value in ds["label"] for n in map(to_text, value)} - set(index))
    if unknown:
        where = "the train split" if split != "train" else "the given labels="
        raise DataError(
            f"Split {split!r} has label(s) {some(unknown)} that {where} does not have (known: {some(names)}). "
            f"Fix the labels, pass labels=[...] listing every label, or drop those rows."
        )
    features = ds.features.copy()
    features["label"] = List(ClassLabel(names=names))
    return ds.map(
        lambda b: {"label": [sorted({index[to_text(v)] for v in value}) for value in b["label"]]},
        batched=True,
        features=features,
        desc=f"Encoding {split} label lists",
    )


def label_matrix(ds: Dataset, num_labels: int | None = None) -> np.ndarray:
    """``(rows, labels)`` bool matrix of which labels each row has."""
    num_labels = num_labels or len(ds.features["label"].feature.names)
    matrix = np.zeros((len(ds), num_labels), dtype=bool)
    for i, ids in enumerate(ds["label"]):
        matrix[i, ids] = True
    return matrix


def multi_hot(ds: Dataset) -> Dataset:
    """The ``label`` lists as a float32 multi-hot ``labels`` column: the targets binary cross-entropy trains on
    (named as the model's ``forward`` argument, which collators pass through as they are)."""
    if not is_list_feature(ds.features["label"]):
        return ds
    num_labels = len(ds.features["label"].feature.names)
    features = ds.features.copy()
    del features["label"]
    features["labels"] = List(Value("float32"), length=num_labels)
    eye = np.eye(num_labels, dtype=np.float32)

    def encode(batch):
        return {
            "labels": [eye[ids].sum(0) if len(ids) else np.zeros(num_labels, np.float32) for ids in batch["label"]]
        }

    return ds.map(encode, batched=True, features=features, remove_columns=["label"], desc="Multi-hot labels")


def sample_per_label(ds: Dataset, n: int, seed: int = 0) -> Dataset:
    """At least ``n`` rows per label (seeded, greedy, rarest label first: a row picked for a rare label also counts
    for the others it has), and up to ``n`` rows with none of the labels where the data has such rows."""
    names = list(ds.features["label"].feature.names)
    has = label_matrix(ds, len(names))
    counts = has.sum(0)
    short = [f"{names[j]!r} has {counts[j]}" for j in range(len(names)) if counts[j] < n]
    if short:
        raise DataError(
            f"n_per_class={n} (per label) is more than some labels have ({'; '.join(short)}). Lower n_per_class, "
            f"or use the full split."
        )
    none = ~has.any(1)
    if none.any():  # "none of these" is a case too: as a label of its own, as much of it as there is
        has, counts = np.column_stack([has, none]), np.append(counts, min(int(none.sum()), n))
    return ds.select(cover_rarest_first(has, n, seed, counts).tolist())


def cover_rarest_first(has: np.ndarray, n: int, seed: int, counts: np.ndarray | None = None) -> np.ndarray:
    """Row indices (ascending) holding at least ``min(n, available)`` rows of each column of the bool matrix
    ``has``: columns in order of ``counts`` (default: their row counts), rarest first, each topped up with
    seeded random rows not yet taken, so a row taken for a rare column counts for every other it has. The
    sampler behind per-label (multi-label) and per-entity-type (token classification) few-shot samples."""
    counts = has.sum(0) if counts is None else counts
    rng = np.random.default_rng(seed)
    chosen = np.zeros(len(has), dtype=bool)
    for j in np.argsort(counts, kind="stable"):
        need = min(n, int(counts[j])) - int(has[chosen, j].sum())
        if need > 0:
            candidates = rng.permutation(np.flatnonzero(has[:, j] & ~chosen))
            chosen[candidates[:need]] = True
    return np.flatnonzero(chosen)


def rarest_label(has: np.ndarray) -> np.ndarray:
    """Each row's rarest label (by count over the rows of the bool matrix ``has``); rows without labels get
    ``has.shape[1]``, a stratum of their own. What validation carving and threshold folds stratify on."""
    rarity = np.where(has, has.sum(0), np.iinfo(np.int64).max)
    return np.where(has.any(1), rarity.argmin(1), has.shape[1])


def strata(has: np.ndarray, min_rows: int) -> np.ndarray:
    """A stratum per row for carving validation: :func:`rarest_label`, with strata of fewer than ``min_rows``
    rows pooled, so a stratified split can be made."""
    stratum = rarest_label(has)
    sizes = np.bincount(stratum, minlength=has.shape[1] + 1)
    stratum[sizes[stratum] < min_rows] = has.shape[1] + 1
    return stratum
