"""Target data in, a validated ``DatasetDict`` out (``text``, ``label`` as ``ClassLabel``): splits and label order
are settled and checked here, before any model loads, so the expensive steps downstream can trust their input."""

from __future__ import annotations

import csv
import difflib
import io
import json
import logging
import math
import os
import sys
import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from datasets import (
    ClassLabel,
    Dataset,
    DatasetDict,
    Features,
    Json,
    Value,
    concatenate_datasets,
    load_dataset,
    load_from_disk,
)
from datasets.exceptions import DatasetGenerationError

from .errors import DataError, some
from .multi_label import (
    MULTI_LABEL,
    SINGLE_LABEL,
    TASKS,
    as_lists,
    check_lists,
    encode_lists,
    from_label_columns,
    is_list_feature,
    joined_separator,
    label_matrix,
    multi_hot,
    sample_per_label,
    split_joined,
    strata,
)
from .token_classification import (
    CARVED,
    TOKEN_CLASSIFICATION,
    carved_from_train,
    entities,
    is_token_source,
    load_token_target,
    mark_carved,
    sample_per_type,
    type_names,
)

if TYPE_CHECKING:
    from .config import DataArguments

logger = logging.getLogger(__name__)

BUNDLED_DIR = Path(__file__).parent / "bundled"
FILE_BUILDERS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".tsv": "csv", ".parquet": "parquet"}
SPLIT_ALIASES = dict(train="train", validation="validation", valid="validation", dev="validation", test="test")
DELIMITERS = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}
SNIFF_BYTES = 8192
NUMBER = r"^\s*[-+]?[0-9]+(\.[0-9]*)?\s*$"  # a label id (or a number) written as text, e.g. "1" in a CSV
EXTRA_ROW = "extra_train_row"  # multi-label train rows: True for an extra_train row (see training_targets)
JSON_KINDS = {'"': "string", "t": "boolean", "f": "boolean", "[": "list", "{": "object", "n": "null"}


def bundled_datasets() -> list[str]:
    """Names of the real-data slices shipped with the package (see each folder's SOURCE.md)."""
    return sorted(p.name for p in BUNDLED_DIR.iterdir() if (p / "SOURCE.md").is_file())


def load_bundled(name: str, **kwargs) -> DatasetDict:
    """Load a bundled slice (``sst2``, ``ag_news``) exactly like a user's own files."""
    folder = BUNDLED_DIR / name
    if not folder.is_dir():
        raise DataError(f"No bundled dataset {name!r}; available: {', '.join(bundled_datasets())}.")
    return load_target(str(folder), **kwargs)


def _split_files(folder: Path) -> dict[str, list[str]]:
    files: dict[str, list[str]] = {}
    for path in sorted(folder.iterdir()):
        split = SPLIT_ALIASES.get(path.stem.split(".")[0].split("-")[0])
        if split and path.suffix in FILE_BUILDERS:
            files.setdefault(split, []).append(str(path))
    return files


def _read_files(files: Mapping[str, str | Sequence[str]]) -> DatasetDict:
    files = {s: [str(p) for p in ([ps] if isinstance(ps, str | os.PathLike) else ps)] for s, ps in files.items()}
    suffixes = {Path(p).suffix for paths in files.values() for p in paths}
    unknown = suffixes - set(FILE_BUILDERS)
    formats = {"tsv" if s == ".tsv" else FILE_BUILDERS[s] for s in suffixes - unknown}  # tsv: csv + tab
    if unknown or len(formats) > 1:
        raise DataError(
            f"Cannot read files ending in {sorted(suffixes)}: use one format of "
            f"{', '.join(sorted(FILE_BUILDERS))} for all splits."
        )
    builder = FILE_BUILDERS[next(iter(suffixes))]
    delimiter = "\t" if suffixes == {".tsv"} else ","
    for split, paths in files.items():
        for p in paths:
            if not Path(p).is_file():
                raise DataError(f"Data file {p!r} does not exist.")
            with open(p, "rb") as handle:  # the head only: a data file can be large
                head = handle.read(SNIFF_BYTES)
            if not head.strip():
                raise DataError(f"Split {split!r} is empty: {p!r} has no rows. Remove it or fill it.")
            if builder == "csv":
                _check_delimiter(p, head, delimiter)
    kwargs = {"delimiter": "\t"} if delimiter == "\t" else {}  # only .tsv files, read by the csv builder
    try:
        return _load_files(builder, files, kwargs)
    except (DatasetGenerationError, ValueError) as err:
        for split, paths in files.items():  # find the split at fault: usually one with a header but no rows
            try:
                rows = len(_load_files(builder, {split: paths}, kwargs)[split])
            except (DatasetGenerationError, ValueError):
                rows = 0
            if rows == 0:
                raise DataError(f"Split {split!r} is empty: {paths} has no rows. Remove it or fill it.") from None
        raise DataError(f"Could not read {files}: {type(err).__name__}: {err}") from None


def _load_files(builder: str, files: dict[str, list[str]], kwargs: dict) -> DatasetDict:
    """``load_dataset`` on local files. pandas types a CSV column by its first 10,000-row chunk, so ids turning
    into names further down fail to cast: such a CSV is read again as text, for the label checks to explain."""
    try:
        return load_dataset(builder, data_files=files, **kwargs)
    except DatasetGenerationError:
        if builder != "csv":
            raise
    import pandas as pd

    first = next(p for paths in files.values() for p in paths)
    header = pd.read_csv(first, nrows=0, sep=kwargs.get("delimiter", ",")).columns
    features = Features({str(name): Value("string") for name in header})
    return load_dataset(builder, data_files=files, features=features, **kwargs)


def _check_delimiter(path: str, head: bytes, delimiter: str) -> None:
    """A header that is one column with its extension's delimiter but several with another (``;`` saved as
    ``.csv``): say so, rather than "no column 'label'" later. A true one-column file passes."""
    sample = head.decode("utf-8-sig", errors="replace")
    if len(head) == SNIFF_BYTES and "\n" in sample:
        sample = sample.rsplit("\n", 1)[0]  # drop the line cut in half
    header = next(csv.reader(io.StringIO(sample), delimiter=delimiter), [])
    if len(header) != 1:
        return
    try:
        sniffed = csv.Sniffer().sniff(sample, delimiters="".join(DELIMITERS)).delimiter
    except csv.Error:  # no delimiter stands out: a one-column file
        return
    columns = next(csv.reader(io.StringIO(sample), delimiter=sniffed), [])
    if sniffed == delimiter or len(columns) < 2:
        return
    if sniffed in ("\t", ","):
        fix = f"Rename it to {Path(path).with_suffix('.tsv' if sniffed == chr(9) else '.csv').name!r}"
    else:
        sep = "" if delimiter == "," else ", sep='\\t'"
        fix = (
            f"Re-save it {DELIMITERS[delimiter]}-separated, e.g. pandas.read_csv(path, sep={sniffed!r})"
            f".to_csv(path, index=False{sep})"
        )
    raise DataError(
        f"{path!r} reads as a single column {header[0]!r}: its {Path(path).suffix} extension means "
        f"{DELIMITERS[delimiter]}-separated, but the file seems to use {DELIMITERS[sniffed]}s ({sniffed!r}), "
        f"which give the columns {columns}. {fix}."
    )


def read_source(source) -> DatasetDict:
    """Read a file, a split→file mapping, a folder (saved ``DatasetDict`` or split files) or a Hub id."""
    if isinstance(source, DatasetDict):
        return source
    if isinstance(source, Dataset):
        return DatasetDict({"train": source})
    if isinstance(source, Mapping):
        return _read_files(source)
    path = Path(os.fspath(source)).expanduser()
    if path.is_file():
        return _read_files({"train": str(path)})
    if path.is_dir():
        if (path / "dataset_dict.json").is_file():
            return load_from_disk(str(path))
        if (path / "dataset_info.json").is_file():
            return DatasetDict({"train": load_from_disk(str(path))})
        files = _split_files(path)
        if not files:
            raise DataError(
                f"Folder {str(path)!r} holds neither a saved DatasetDict nor train/validation/test files "
                f"ending in {', '.join(sorted(FILE_BUILDERS))}."
            )
        return _read_files(files)
    if str(source).count("/") > 1 or Path(str(source)).suffix in FILE_BUILDERS:
        raise DataError(f"{str(source)!r} is neither an existing file or folder nor a Hub dataset id.")
    try:
        loaded = load_dataset(str(source))
    except Exception as err:  # noqa: BLE001 - offline, unknown id, gated: all need the same advice
        offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")
        hint = "HF_HUB_OFFLINE is set, so the Hub cannot be reached; " if offline else ""
        raise DataError(
            f"Could not load {str(source)!r} as a local path or Hub dataset ({type(err).__name__}: {err}). "
            f"{hint}pass a local JSONL/CSV/Parquet file, a folder, or a saved DatasetDict instead."
        ) from None
    return loaded if isinstance(loaded, DatasetDict) else DatasetDict({"train": loaded})


TEXT_COLUMN_NAMES = ("text", "sentence", "content", "review", "utterance", "question", "document", "tweet",
                     "comment", "message", "body", "query", "sms")  # fmt: skip
# Label columns of other names seen in public data sets (intent data, topic data, emotion data, ...).
LABEL_COLUMN_NAMES = ("class", "category", "intent", "topic", "sentiment", "emotion", "emotions", "target", "tags")


def default_columns(train: Dataset, text_column: str, label_column: str) -> tuple[str, str]:
    """The text and label columns when the defaults (``text``, ``label``/``labels``) are not in the data: the
    text in a column of a common name (GLUE's ``sentence``, ``review``, ``utterance``...) or else the one string
    column; the label in the one ``ClassLabel`` column, else in a column of a common label name (``intent``,
    ``topic``, ...), else in the one column left beside the text; each logged. Like ``run_glue.py``, which reads
    the first column that is not the label; anything less clear is left to :func:`_check_columns`'s error, which
    lists the columns."""
    columns = train.column_names
    features = train.features
    if label_column not in columns and label_column in ("label", "labels"):
        named = [c for c in columns if isinstance(features[c], ClassLabel)]
        if len(named) == 1:
            logger.warning("No %r column: the labels are read from %r, its one ClassLabel column.", label_column,
                           named[0])  # fmt: skip
            label_column = named[0]
    if text_column == "text" and "text" not in columns:
        others = [c for c in columns if c != label_column]
        strings = [c for c in others if getattr(features[c], "dtype", None) in ("string", "large_string")]
        pick = next((c for c in TEXT_COLUMN_NAMES if c in others), strings[0] if len(strings) == 1 else None)
        if pick is not None:
            logger.warning("No 'text' column: the texts are read from %r (pass text_column= to choose).", pick)
            text_column = pick
    if label_column not in columns and label_column == "label" and text_column in columns:
        others = [c for c in columns if c != text_column]
        named = [c for c in LABEL_COLUMN_NAMES if c in others]
        pick = named[0] if len(named) == 1 else others[0] if len(others) == 1 else None
        if pick is not None:
            logger.warning("No %r column: the labels are read from %r (pass label_column= to choose).", label_column,
                           pick)  # fmt: skip
            label_column = pick
    return text_column, label_column


def _check_columns(data: DatasetDict, text_column: str, label_column: str) -> None:
    for split, ds in data.items():
        missing = [c for c in (text_column, label_column) if c not in ds.column_names]
        if missing and {"tokens", "ner_tags"} <= set(ds.column_names):
            raise DataError(
                f"Split {split!r} is token-classification data ('tokens' + 'ner_tags'), not sentences with labels. "
                f"Train a tagger on it with task='token_classification' (or 'auto'; --task on the command line), or "
                f"load it with hf_transfer.token_classification.load_token_target."
            )
        if missing:
            close = {c: difflib.get_close_matches(c, ds.column_names, n=1, cutoff=0.5) for c in missing}
            hints = [f"Did you mean {near[0]!r} for {c!r}?" for c, near in close.items() if near]
            raise DataError(
                f"Split {split!r} has no column {', '.join(repr(c) for c in missing)}; its columns are "
                f"{ds.column_names}. Pass text_column=/label_column= to name the right ones."
                + (" " + " ".join(hints) if hints else "")
            )


def _column(ds: Dataset, name: str) -> pa.ChunkedArray:
    """One column as Arrow, with the rows ``ds`` really has (``ds.data`` ignores a ``select``/``shuffle``)."""
    return ds.with_format("arrow")[name]


def _is_text(column: pa.ChunkedArray) -> bool:
    return pa.types.is_string(column.type) or pa.types.is_large_string(column.type)


def _check_texts(ds: Dataset, split: str) -> None:
    column = _column(ds, "text")
    if not _is_text(column):
        raise DataError(
            f"Split {split!r}: the text column holds {column.type}, not strings. Cast it to text first "
            f"(e.g. dataset.map(lambda r: {{'text': str(r['text'])}}))."
        )
    bad = pc.or_(pc.is_null(column), pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(column.fill_null(""))), 0))
    n_bad = pc.sum(pc.cast(bad, pa.int64())).as_py() or 0
    if n_bad:
        raise DataError(
            f"Split {split!r}: {n_bad} row(s) have empty or missing text (first at row {_first_row(bad)}). "
            f"Drop them first, e.g. dataset.filter(lambda r: r['text'] and r['text'].strip())."
        )


def _first_row(mask) -> int:
    return int(pc.index(mask, True).as_py())


def _label_kinds(ds: Dataset) -> dict[str, tuple[int, object]]:
    """The kinds of value in a split's label column (``number``, ``string``, ...): first row and value of each.
    A string column is judged by its distinct values; rows are only scanned when it mixes kinds."""
    feature = ds.features["label"]
    column = _column(ds, "label")
    if isinstance(feature, Json):  # what datasets makes of a JSON column whose rows differ in type
        storage = pa.chunked_array([chunk.storage for chunk in column.chunks], type=pa.string())
        first = pc.utf8_slice_codeunits(storage, 0, 1)
        kinds: dict[str, tuple[int, object]] = {}
        for char in pc.unique(first).drop_null().to_pylist():
            kind = JSON_KINDS.get(char, "number")
            if kind not in kinds:
                row = _first_row(pc.equal(first, char))
                kinds[kind] = (row, json.loads(storage[row].as_py()))
        return kinds
    if isinstance(feature, Value) and _is_text(column):
        numeric = pc.match_substring_regex(pc.unique(column).drop_null(), NUMBER)
        if not len(numeric):
            return {}
        if pc.all(numeric).as_py() or not pc.any(numeric).as_py():  # one kind: the first row stands for all
            row = _first_row(pc.is_valid(column))
            return {"number" if numeric[0].as_py() else "string": (row, column[row].as_py())}
        mask = pc.match_substring_regex(column, NUMBER)  # both: a scan of the rows, to say where
        rows = {"number": _first_row(mask), "string": _first_row(pc.invert(mask))}
        return {kind: (row, column[row].as_py()) for kind, row in rows.items()}
    if isinstance(feature, Value) and (pa.types.is_integer(column.type) or pa.types.is_floating(column.type)):
        valid = pc.is_valid(column)
        if pc.any(valid).as_py():
            row = _first_row(valid)
            return {"number": (row, column[row].as_py())}
    return {}


def _check_label_kinds(data: DatasetDict, label_column: str, labels: Sequence[str] | None) -> None:
    """Labels as ids in some rows and names in others (``1``, ``"pos"``) cannot be matched up (JSONL: a column that
    cannot be encoded; CSV: a silent extra class "1"): stop. With ``labels=``, numeric text is taken as a name."""
    found: dict[str, tuple[str, int, object]] = {}
    is_json = False
    for split, ds in data.items():
        kinds = _label_kinds(ds)
        if isinstance(ds.features["label"], Json):
            is_json = True
            if "list" in kinds:
                listed = ", ".join(f"{kind} {value!r} at row {row}" for kind, (row, value) in kinds.items())
                raise DataError(
                    f"Split {split!r}: label column {label_column!r} mixes lists and scalars ({listed}). For "
                    f"multi-label data give every row a list (['joy'], or [] for none of the labels)."
                )
            if not ({"number", "string"} <= set(kinds) <= {"number", "string", "null"}):
                raise DataError(
                    f"Split {split!r}: label column {label_column!r} is a JSON column "
                    f"({', '.join(f'{kind} {value!r} at row {row}' for kind, (row, value) in kinds.items())}). "
                    f"Give every row one class name or one integer id, in a plain string or integer column."
                )
        for kind, (row, value) in kinds.items():
            found.setdefault(kind, (split, row, value))
    if "number" not in found or "string" not in found or (labels is not None and not is_json):
        return
    (num_split, num_row, num), (str_split, str_row, name) = found["number"], found["string"]
    hint = "" if is_json else f" If {num!r} really is a class name, pass labels=[...] listing every class."
    raise DataError(
        f"Label column {label_column!r} mixes numbers and strings: {num!r} (split {num_split!r}, first at row "
        f"{num_row}) and {name!r} (split {str_split!r}, first at row {str_row}). Use one type for every row "
        f"of every split: all class names (like {name!r}) or all integer ids.{hint}"
    )


def _label_counts(ds: Dataset) -> Counter:
    """Rows per label name (as text) in one split; every name of a ``ClassLabel``, used or not."""
    feature, column = ds.features["label"], _column(ds, "label")
    if is_list_feature(feature):  # multi-label: every label of every row
        feature, column = feature.feature, pc.list_flatten(column)
    counts = pc.value_counts(column)
    pairs = zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist())
    if isinstance(feature, ClassLabel):
        spelled = Counter(dict.fromkeys(feature.names, 0))
        spelled.update({feature.names[v]: n for v, n in pairs if v is not None and 0 <= v < len(feature.names)})
        return spelled
    return Counter({str(v): n for v, n in pairs if v is not None})


def _label_variants(data: DatasetDict, labels: Sequence[str] | None, normalize: bool) -> dict[str, str]:
    """Names differing only by case or surrounding whitespace would split a class: stop, unless ``normalize``,
    then return spelling -> canonical name (that of ``labels=``, else the most frequent in train, ties sorted)."""
    sources: dict[str, Counter] = {split: _label_counts(ds) for split, ds in data.items()}
    given = [str(x) for x in labels] if labels is not None else []
    groups: dict[str, dict[str, list[str]]] = {}  # stripped, casefolded name -> spelling -> where it occurs
    for source, counts in [*sources.items(), ("labels=", Counter(given))]:
        for name, n in counts.items():
            where = source if source == "labels=" else f"{source}: {n} row{'s' * (n != 1)}"
            groups.setdefault(name.strip().casefold(), {}).setdefault(name, []).append(where)
    variants = [spellings for spellings in groups.values() if len(spellings) > 1]
    clash = [spellings for spellings in variants if sum("labels=" in where for where in spellings.values()) > 1]
    if clash:
        raise DataError(
            f"labels= has names that differ only by case or surrounding whitespace: "
            f"{'; '.join(' / '.join(repr(n) for n in sorted(s) if 'labels=' in s[n]) for s in clash)}. "
            f"Give each class once, spelled one way."
        )
    if variants and not normalize:
        listed = "; ".join(" / ".join(f"{n!r} ({', '.join(w)})" for n, w in sorted(s.items())) for s in variants)
        raise DataError(
            f"Label names differ only by case or surrounding whitespace, so they would become separate classes: "
            f"{listed}. Fix the spelling in the data, or pass "
            f"normalize_labels=True to strip whitespace and merge case variants into one name."
        )
    if not normalize:
        return {}
    train = Counter()
    for name, n in sources["train"].items():
        train[name.strip()] += n
    rename, merged = {}, []
    for spellings in groups.values():
        chosen = [n.strip() for n, where in spellings.items() if "labels=" in where]
        canonical = chosen[0] if chosen else min({n.strip() for n in spellings}, key=lambda n: (-train[n], n))
        rename.update({n: canonical for n in spellings if n != canonical})
        if len(spellings) > 1 or canonical not in spellings:
            merged.append(f"{' / '.join(repr(n) for n in sorted(spellings))} -> {canonical!r}")
    if merged:
        logger.warning("normalize_labels: label names merged: %s.", "; ".join(merged))
    return rename


def _label_names(data: DatasetDict, labels: Sequence[str] | None, rename: Mapping[str, str]) -> list[str]:
    feature, column = data["train"].features["label"], _column(data["train"], "label")
    if is_list_feature(feature):
        feature, column = feature.feature, pc.list_flatten(column)
    if labels is not None:
        names = [str(x) for x in labels]
        if len(set(names)) != len(names):
            raise DataError(f"labels={names} contains duplicates; give each label once.")
        return [rename.get(n, n) for n in names]
    if isinstance(feature, ClassLabel):
        return list(dict.fromkeys(rename.get(n, n) for n in feature.names))
    values = pc.unique(column).to_pylist()
    if any(v is None for v in values):
        raise DataError("Split 'train' has rows with no label; drop or fill them first.")
    if not values and is_list_feature(data["train"].features["label"]):
        raise DataError(
            "Every label list in split 'train' is empty ([]), so the data names no label to learn. Fill in the rows' "
            "labels, or pass labels=[...] naming them (with n_per_class=0 for a zero-shot run)."
        )
    values = [rename.get(v, v) if isinstance(v, str) else v for v in values]
    return list(dict.fromkeys(str(v) for v in sorted(values, key=lambda v: (str(type(v)), v))))


def _encode_labels(ds: Dataset, split: str, names: list[str], rename: Mapping[str, str]) -> Dataset:
    feature = ds.features["label"]
    if is_list_feature(feature):
        spell = feature.feature.int2str if isinstance(feature.feature, ClassLabel) else str
        return encode_lists(ds, split, names, rename, lambda v: rename.get(spell(v), spell(v)))
    if isinstance(feature, ClassLabel):
        if min(ds.unique("label")) < 0:  # ds is not empty: load_target checked
            raise DataError(
                f"Split {split!r} has unlabelled rows (label -1, as in hidden test sets). Drop them "
                f"(dataset.filter(lambda r: r['label'] >= 0)) or leave that split out."
            )
        if list(feature.names) == names:
            return ds
        spell = feature.int2str
    else:
        spell = str
    to_name = (lambda v: rename.get(spell(v), spell(v))) if rename else spell
    values = [to_name(v) for v in ds.unique("label")]
    unknown = sorted(set(values) - set(names))
    if unknown:
        where = "the train split" if split != "train" else "the given labels="
        raise DataError(
            f"Split {split!r} has label(s) {some(unknown)} that {where} does not have (known: {some(names)}). "
            f"Fix the labels, pass labels=[...] listing every class, or drop those rows."
        )
    index = {name: i for i, name in enumerate(names)}
    features = ds.features.copy()
    features["label"] = ClassLabel(names=names)
    return ds.map(
        lambda batch: {"label": [index[to_name(v)] for v in batch["label"]]},
        batched=True,
        features=features,
        desc=f"Encoding {split} labels",
    )


def load_target(
    source,
    *,
    text_column: str = "text",
    label_column: str = "label",
    labels: Sequence[str] | None = None,
    validation_size: float | int = 0.1,
    seed: int = 0,
    normalize_labels: bool = False,
    task: str = "auto",
    label_separator: str | None = None,
    label_columns: Sequence[str] | None = None,
) -> DatasetDict:
    """Load ``source`` (see :func:`read_source`) as a validated ``DatasetDict`` with ``text`` and a ``ClassLabel``
    ``label`` in the order of ``labels``, else the data's ``ClassLabel``, else sorted; a stratified validation split
    is carved from train when none exists. Case/whitespace label variants: see :func:`_label_variants`.

    Multi-label (``label`` a ``List(ClassLabel)``, :mod:`hf_transfer.multi_label`) when the label column holds
    lists, when ``label_separator`` splits joined labels (with ``task="auto"`` also when labels are joined
    unambiguously, :func:`~hf_transfer.multi_label.joined_separator`), when ``label_columns`` names one 0/1 column
    per label (names or globs), or when ``task="multi_label"`` forces it."""
    if task not in TASKS:
        raise DataError(f"task={task!r} is not one of {', '.join(TASKS)}.")
    data = read_source(source)
    data = DatasetDict({SPLIT_ALIASES.get(k, k): v for k, v in data.items()})
    if "train" not in data:
        raise DataError(f"No 'train' split among {list(data)}; name one split 'train' (file or key).")
    for split, ds in data.items():
        if len(ds) == 0:
            raise DataError(f"Split {split!r} is empty; remove it or point it at a file with rows.")
    if label_columns:
        data, column_labels = from_label_columns(data, label_columns)
        label_column, labels = "label", labels if labels is not None else column_labels
    elif label_column == "label" and "label" not in data["train"].column_names:
        label_column = "labels" if "labels" in data["train"].column_names else label_column  # HF's multi-label name
    text_column, label_column = default_columns(data["train"], text_column, label_column)
    _check_columns(data, text_column, label_column)
    renames = {k: v for k, v in {text_column: "text", label_column: "label"}.items() if k != v}
    data = DatasetDict(
        {s: ds.select_columns([text_column, label_column]).rename_columns(renames) for s, ds in data.items()}
    )
    for split, ds in data.items():
        _check_texts(ds, split)
    _check_label_kinds(data, label_column, labels)
    listed = is_list_feature(data["train"].features["label"])
    if task == "auto" and not listed and not label_separator:
        label_separator = joined_separator(_column(data["train"], "label").to_pylist())
        if label_separator:
            logger.warning(
                "Labels such as %r are lists joined by %r (each part is also a label on its own): read as "
                "multi-label. Pass task='single_label' to keep them as classes, or label_separator= to choose.",
                next(v for v in data["train"]["label"] if label_separator in str(v)), label_separator,
            )  # fmt: skip
    if label_separator and not listed:
        data, listed = split_joined(data, label_separator), True
    if task == SINGLE_LABEL and listed:
        raise DataError(
            f"task='single_label', but label column {label_column!r} holds lists of labels (multi-label data). "
            f"Use task='multi_label' (or 'auto'), or give one label per row."
        )
    if task == MULTI_LABEL and not listed:
        data, listed = as_lists(data), True
    if listed:
        check_lists(data)
    rename = _label_variants(data, labels, normalize_labels)
    names = _label_names(data, labels, rename)
    data = DatasetDict({split: _encode_labels(ds, split, names, rename) for split, ds in data.items()})
    if "validation" not in data and validation_size:
        carve = _carve_lists if listed else _carve
        train, validation = carve(data["train"], names, validation_size, seed)
        data["train"], data["validation"] = train, mark_carved(validation, validation_size)
    return data


def _carve(train: Dataset, names: list[str], validation_size, seed: int) -> tuple[Dataset, Dataset]:
    counts = np.bincount(np.asarray(_column(train, "label")), minlength=len(names))
    size = _validation_share(counts, names, validation_size)
    parts = train.train_test_split(test_size=size, stratify_by_column="label", seed=seed)
    return parts["train"], parts["test"]


def _carve_lists(train: Dataset, names: list[str], validation_size, seed: int) -> tuple[Dataset, Dataset]:
    """Multi-label: stratified by each row's rarest label, rare strata pooled until both sides can hold one row of
    every stratum (a row of each label where the data allows it)."""
    n = len(train)
    n_val = _validation_rows(float(validation_size) if validation_size < 1 else int(validation_size), n)
    if not 0 < n_val < n:
        raise DataError(
            f"validation_size={validation_size} of {n} train rows leaves no row on one side. Pass a smaller share "
            f"or row count, provide a validation file, or pass validation_size=0."
        )
    has = label_matrix(train)
    for min_rows in range(2, n + 1):
        stratum = strata(has, min_rows)
        k = len(np.unique(stratum))
        if k <= min(n_val, n - n_val):
            break
    column = ClassLabel(num_classes=int(stratum.max()) + 1)
    with_strata = train.add_column("_stratum", stratum.tolist()).cast_column("_stratum", column)
    parts = with_strata.train_test_split(test_size=validation_size, stratify_by_column="_stratum", seed=seed)
    return parts["train"].remove_columns("_stratum"), parts["test"].remove_columns("_stratum")


def _validation_rows(size: float | int, n: int) -> int:
    return math.ceil(size * n) if isinstance(size, float) else int(size)  # as datasets' train_test_split


def _validation_share(counts: np.ndarray, names: list[str], validation_size: float | int) -> float | int:
    """``validation_size`` for ``train_test_split``, once sure a stratified split can be carved (2 train rows per
    class, each side a row of every class), rather than a raw sklearn-style error."""
    tiny = [names[i] for i, c in enumerate(counts) if c < 2]
    if tiny:
        raise DataError(
            f"Cannot carve a stratified validation split: label(s) {tiny} have fewer than 2 train rows. "
            f"Add rows, provide a validation file, or pass validation_size=0."
        )
    n, k = int(counts.sum()), len(names)
    size = float(validation_size) if isinstance(validation_size, float | np.floating) else int(validation_size)
    if not (0 < size < 1 if isinstance(size, float) else 0 < size < n):
        raise DataError(
            f"validation_size={validation_size} is neither a share in (0, 1) nor a row count from 1 to {n - 1} "
            f"(train has {n} rows). Pass one of those, provide a validation file, or pass validation_size=0."
        )
    n_val = _validation_rows(size, n)
    if k <= n_val <= n - k:
        return size
    low, high = (math.floor((k - 1) / n * 1000) + 1) / 1000, math.floor((n - k) / n * 1000) / 1000  # 3 decimals
    while _validation_rows(low, n) < k:
        low = round(low + 0.001, 3)
    while high > 0 and n - _validation_rows(high, n) < k:
        high = round(high - 0.001, 3)
    share = f"from {low} to {high} (a share) or " if 0 < low <= high < 1 else ""
    problem = f"gives {n_val} validation" if n_val < k else f"leaves {n - n_val} train"
    raise DataError(
        f"Cannot carve a stratified validation split: validation_size={validation_size} of {n} train rows "
        f"{problem} row(s), fewer than the {k} classes (each side needs a row of every class). Use a "
        f"validation_size {share}from {k} to {n - k} (rows), provide a validation file, or pass validation_size=0."
    )


def label_names(data: Dataset | DatasetDict) -> list[str]:
    """The ordered label names of a dataset loaded by :func:`load_target`."""
    feature = (data["train"] if isinstance(data, DatasetDict) else data).features["label"]
    return list((feature.feature if is_list_feature(feature) else feature).names)


# Sentiment labels as data sets abbreviate them (aclImdb's neg/pos folders, neg/neu/pos tweet sets), in words:
# SST-2 relabelled neg/pos, zero-shot from the names (MiniLM): 53.6% validation accuracy, 64.3% from these.
LABEL_WORDS = {"neg": "negative", "pos": "positive", "neu": "neutral", "neut": "neutral"}


def readable_label(label: str) -> str:
    """A label name as words (``"meaning_of_life"`` -> ``"meaning of life"``, ``"neg"`` -> ``"negative"``):
    identifiers and abbreviations embed as odd sub-words."""
    words = " ".join(label.replace("_", " ").split()) or label
    return LABEL_WORDS.get(words.lower(), words)


def wordless_labels(labels: Sequence[str], label_descriptions: Mapping | None) -> list[str]:
    """The labels with neither a description nor a letter in their name (ids such as ``"0"``, ``"-1"``): a head
    started from such names carries the embedding geometry of numbers, not of what the labels mean."""
    given = label_descriptions or {}
    return [label for label in labels if label not in given and not any(c.isalpha() for c in str(label))]


def sample_per_class(dataset: Dataset, n: int, seed: int = 0) -> Dataset:
    """Stratified sample of exactly ``n`` rows per class (seeded), for few-shot experiments; multi-label data: at
    least ``n`` rows per label (:func:`hf_transfer.multi_label.sample_per_label`)."""
    if n < 0:
        raise DataError(f"n_per_class={n} must be >= 0.")
    if is_list_feature(dataset.features["label"]):
        return sample_per_label(dataset, n, seed)
    labels = np.asarray(dataset["label"])
    names = dataset.features["label"].names
    rng = np.random.default_rng(seed)
    picked, short = [], []
    for class_id, name in enumerate(names):
        idx = np.flatnonzero(labels == class_id)
        if len(idx) < n:
            short.append(f"{name!r} has {len(idx)}")
            continue
        picked.append(rng.choice(idx, size=n, replace=False))
    if short:
        raise DataError(
            f"n_per_class={n} is more than some classes have ({'; '.join(short)}). "
            f"Lower n_per_class, or use the full split."
        )
    order = np.sort(np.concatenate(picked)) if picked else np.array([], dtype=int)
    return dataset.select(order.tolist())


def load_data_args(data_args: DataArguments, counts: dict | None = None, announce: bool = True):
    """Load and sample the target data of ``data_args``: ``(train, eval, labels)``. ``counts``, if given, receives
    ``n_real_train`` (sampled real rows, before ``repeat_train``) and ``n_extra_train``. ``announce``: print what
    trains and what evaluates (:func:`describe_data`) and warn when the evaluation rows were carved from train
    although the data has a ``test`` split. An unset ``sample_seed`` is the default run seed here (strategies
    resolve it to their ``--seed`` first: :meth:`DataArguments.seeded`)."""
    from .config import DEFAULT_SEED

    data_args = data_args.seeded(DEFAULT_SEED)
    if data_args.task == TOKEN_CLASSIFICATION or (data_args.task == "auto" and is_token_source(data_args.dataset)):
        train, eval_ds, labels, has_test = _load_token_args(data_args, counts)
    else:
        train, eval_ds, labels, has_test = _load_sentence_args(data_args, counts)
    if announce:
        _announce(data_args, train, eval_ds, has_test)
    return train, eval_ds, labels


def _announce(data_args: DataArguments, train: Dataset, eval_ds: Dataset, has_test: bool) -> None:
    """Print :func:`describe_data` on the main process; warn when a test split is passed over for carved rows."""
    from .distributed import partial_state

    if not partial_state().is_main_process:
        return
    carved = carved_from_train(eval_ds)
    if carved and has_test:
        warnings.warn(
            f"Evaluating on {len(eval_ds)} rows carved from train (validation_size={data_args.validation_size}: the "
            f"data has no validation split) although it has a 'test' split. Pass --eval_split test to evaluate "
            "there, or add a validation file.",
            stacklevel=3,
        )
    print(describe_data(train, eval_ds, data_args.eval_split, carved=carved), file=sys.stderr, flush=True)


def describe_data(train: Dataset, eval_ds: Dataset, eval_split: str, *, carved: bool = False, shown: int = 10) -> str:
    """One line each for what trains and what evaluates: split, rows (sentences), and rows per label (multi-label:
    rows holding it; token classification: entities per type), the ``shown`` largest first."""
    rows = []
    for name, ds in (("train", train), (eval_split, eval_ds)):
        counts = _rows_per_label(ds)
        listed = sorted(counts.items(), key=lambda kv: -kv[1])
        text = ", ".join(f"{label} {n}" for label, n in listed[:shown])
        more = f", ... ({len(listed) - shown} more labels, {min(counts.values())}-{max(counts.values())} each)" \
            if len(listed) > shown else ""  # fmt: skip
        unit = "sentences" if "ner_tags" in ds.column_names else "rows"
        where = f" ({CARVED})" if carved and name == eval_split else ""
        what = "entities per type" if "ner_tags" in ds.column_names else "per label"
        rows.append(f"{'Training on' if name == 'train' else 'Evaluating on'} {name}{where}: {len(ds)} {unit}"
                    + (f"; {what}: {text}{more}" if counts else ""))  # fmt: skip
    return "\n".join(rows)


def _rows_per_label(ds: Dataset) -> dict[str, int]:
    if "ner_tags" in ds.column_names:
        names = ds.features["ner_tags"].feature.names
        counts = dict.fromkeys(type_names(ds), 0)
        for tags in ds["ner_tags"]:
            for kind, _, _ in entities([names[t] for t in tags]):
                counts[kind] += 1
        return counts
    return dict(_label_counts(ds)) if "label" in ds.column_names else {}


def _load_sentence_args(data_args: DataArguments, counts: dict | None):
    names = ("text_column", "label_column", "labels", "normalize_labels", "task", "label_separator", "label_columns")
    kwargs = {k: getattr(data_args, k) for k in names}
    kwargs.update(validation_size=data_args.validation_size, seed=data_args.sample_seed)
    name = data_args.dataset
    bundled = name.startswith("bundled:")
    data = load_bundled(name.removeprefix("bundled:"), **kwargs) if bundled else load_target(name, **kwargs)
    if data_args.eval_split not in data:
        raise DataError(f"eval_split={data_args.eval_split!r} is not among the splits {list(data)}.")
    labels = label_names(data)
    train = data["train"]
    if data_args.n_per_class is not None:
        train = sample_per_class(train, data_args.n_per_class, seed=data_args.sample_seed)
    n_real = len(train)
    if data_args.repeat_train > 1 and n_real:
        train = concatenate_datasets([train] * data_args.repeat_train)
    multi = is_list_feature(train.features["label"])
    extra, missing = None, []
    if data_args.extra_train:
        source = data_args.extra_train
        extra = _load_extra_train(source, labels, multi, data_args)
        if multi:  # which rows extra_train_unasked applies to (training_targets drops the marker)
            train = train.add_column(EXTRA_ROW, [False] * len(train))
            extra = extra.add_column(EXTRA_ROW, [True] * len(extra))
            unasked = data_args.extra_train_unasked
            if unasked == "auto":  # a generated text was asked for its labels only; other data lists all it has
                unasked = "unknown" if _written_by_generate(source) else "negative"
            if counts is not None:
                counts["extra_train_unasked"] = unasked
        train = concatenate_datasets([train, extra])
        present = set(pc.unique(pc.list_flatten(_column(extra, "label"))).to_pylist()) \
            if multi else set(extra.unique("label"))  # fmt: skip
        missing = [label for i, label in enumerate(labels) if i not in present]
        if missing:
            warnings.warn(
                f"extra_train={str(source)!r} has no rows for label(s) {missing}: "
                + ("the model never sees them in training (n_per_class=0)." if not n_real else "only the real rows "
                   "teach them, outnumbered by the extra rows of the other labels.")
                + " Add rows for them (e.g. generate with a higher n_per_label) or drop those labels.",
                stacklevel=2,
            )  # fmt: skip
    if counts is not None:
        counts.update(n_real_train=n_real, n_extra_train=len(extra) if extra is not None else 0)
        if extra is not None:
            counts["extra_train_missing_labels"] = missing
    eval_ds = data[data_args.eval_split]
    if data_args.max_eval_samples is not None:
        eval_ds = eval_ds.select(range(min(data_args.max_eval_samples, len(eval_ds))))
    return train, eval_ds, labels, "test" in data


def _load_token_args(data_args: DataArguments, counts: dict | None):
    """:func:`load_data_args` for token classification: ``(train, eval, tags)``, train sampled per entity type
    (:func:`~hf_transfer.token_classification.sample_per_type`); extra_train rows are token data too, with the
    target's types."""
    options = dict(repair_bio=data_args.repair_bio, validation_size=data_args.validation_size)
    data = load_token_target(data_args.dataset, types=data_args.labels, seed=data_args.sample_seed, **options)
    if data_args.eval_split not in data:
        raise DataError(f"eval_split={data_args.eval_split!r} is not among the splits {list(data)}.")
    train = data["train"]
    tags = list(train.features["ner_tags"].feature.names)
    n = data_args.n_per_class
    if n is not None:
        train = train.select([]) if n == 0 else sample_per_type(train, n, seed=data_args.sample_seed)
    n_real = len(train)
    if data_args.repeat_train > 1 and n_real:
        train = concatenate_datasets([train] * data_args.repeat_train)
    extra = None
    if data_args.extra_train:
        try:
            parts = load_token_target(data_args.extra_train, types=type_names(train), validation_size=0, **{
                "repair_bio": data_args.repair_bio})  # fmt: skip
        except DataError as err:
            raise DataError(f"extra_train={str(data_args.extra_train)!r}: {err}") from None
        extra = concatenate_datasets([ds.cast(train.features) for ds in parts.values()])
        train = concatenate_datasets([train, extra])
    if counts is not None:
        counts.update(n_real_train=n_real, n_extra_train=len(extra) if extra is not None else 0)
    eval_ds = data[data_args.eval_split]
    if data_args.max_eval_samples is not None:
        eval_ds = eval_ds.select(range(min(data_args.max_eval_samples, len(eval_ds))))
    return train, eval_ds, tags, "test" in data


def _load_extra_train(source, labels: list[str], multi: bool, data_args: DataArguments) -> Dataset:
    """The extra_train rows, labels matched by name, of the target's task: label lists for a multi-label target,
    one label per row otherwise. A mismatch is an error, not a conversion: a multi-label dataset cannot become
    single-label, and a single-label generated set lacks the per-label consistency check of a multi-label one
    (``task='multi_label'`` on the target reads single labels as one-label lists on purpose)."""
    forced = multi and data_args.task == MULTI_LABEL
    extra_multi = _holds_label_lists(source)
    if extra_multi and not multi:
        raise DataError(
            f"extra_train={str(source)!r} is multi-label (a list of labels per row, e.g. `hf-transfer generate` on a "
            f"multi-label target), but the target {data_args.dataset!r} is single-label. Generate for this target "
            "(`hf-transfer generate --dataset <it>` writes one label per row), or train on a multi-label target."
        )
    if multi and extra_multi is False and not forced:
        raise DataError(
            f"extra_train={str(source)!r} is single-label (one label per row), but the target {data_args.dataset!r} "
            "is multi-label. Generate for this target (`hf-transfer generate --dataset <it>` writes label lists, "
            "each label checked on its own), or pass task='multi_label' to read its labels as one-label lists."
        )
    try:
        splits = load_target(source, labels=labels, validation_size=0, task=MULTI_LABEL if multi else SINGLE_LABEL,
                             normalize_labels=data_args.normalize_labels)  # fmt: skip
    except DataError as err:
        raise DataError(f"extra_train={str(source)!r}: {err}") from None
    return concatenate_datasets(list(splits.values()))


def _written_by_generate(source) -> bool:
    """Whether ``source`` is a dataset ``hf-transfer generate`` wrote (its ``generator`` and ``template_id``
    columns), whose rows list the labels they were asked for rather than every label they have."""
    try:
        data = read_source(source)
    except DataError:
        return False
    return any({"generator", "template_id"} <= set(ds.column_names) for ds in data.values())


def _holds_label_lists(source) -> bool | None:
    """Whether ``source``'s label column (``label``, else ``labels``) holds lists; ``None`` if it cannot be read
    here (``load_target`` then says why)."""
    try:
        data = read_source(source)
    except DataError:
        return None
    ds = data["train"] if "train" in data else next(iter(data.values()), None)
    column = next((c for c in ("label", "labels") if ds is not None and c in ds.column_names), None)
    return is_list_feature(ds.features[column]) if column else None


def training_targets(train: Dataset, unasked: str) -> tuple[Dataset, np.ndarray]:
    """Multi-label train rows as the float multi-hot ``labels`` that binary cross-entropy trains on
    (:func:`~hf_transfer.multi_label.multi_hot`), and which rows came from extra_train. ``unasked='unknown'``
    sets the labels an extra_train row does not list to -1, which the loss leaves out
    (:func:`~hf_transfer.modeling.masked_bce`): a synthetic text written for 'joy' is evidence for joy, not
    against love. Real rows stay fully known. The marker column is dropped, so the model never sees it."""
    extra = np.asarray(train[EXTRA_ROW], dtype=bool) if EXTRA_ROW in train.column_names else np.zeros(len(train), bool)
    if EXTRA_ROW in train.column_names:
        train = train.remove_columns(EXTRA_ROW)
    train = multi_hot(train)
    if unasked == "unknown" and extra.any():
        mask = extra

        def unknown(batch, indices):
            targets = np.asarray(batch["labels"], dtype=np.float32)
            targets[mask[indices][:, None] & (targets == 0)] = -1.0
            return {"labels": targets}

        train = train.map(unknown, batched=True, with_indices=True, desc="Unasked labels as unknown")
    return train, extra


TRUNCATION_SAMPLE, TRUNCATION_WARN_SHARE = 2000, 0.05
_truncation_warned: set = set()


def warn_if_truncated(tokenizer, texts: Sequence, max_length: int, *, words: bool = False) -> float:
    """The share of ``texts`` (the first :data:`TRUNCATION_SAMPLE`; pre-split sentences when ``words``) longer
    than ``max_length`` tokens, which the model never reads past; logged once per tokenizer and length when it is
    over :data:`TRUNCATION_WARN_SHARE`, with the length that would hold most of them. Why: the default 128 suits
    sentences and short posts, and a long-document task would otherwise lose most of each text silently."""
    sample = list(texts[:TRUNCATION_SAMPLE])
    if not sample:
        return 0.0
    encoded = tokenizer(sample, is_split_into_words=words, verbose=False)["input_ids"]
    lengths = np.asarray([len(ids) for ids in encoded])
    share = float((lengths > max_length).mean())
    key = (getattr(tokenizer, "name_or_path", ""), max_length)
    if share > TRUNCATION_WARN_SHARE and key not in _truncation_warned:
        _truncation_warned.add(key)
        limit = tokenizer.model_max_length if tokenizer.model_max_length < 100_000 else 512
        p95 = int(np.quantile(lengths, 0.95))
        suggest = min(limit, max(-(-p95 // 64) * 64, max_length + 64))
        fix = (f"Pass --max_length {suggest} to read more of each (slower: attention grows with length), or keep it."
               if suggest > max_length else f"The encoder reads at most {limit}.")  # fmt: skip
        logger.warning(
            "%.0f%% of the texts are longer than max_length=%d tokens (95th percentile %d) and are cut there. %s",
            100 * share, max_length, p95, fix,
        )  # fmt: skip
    return share


def tokenize(dataset: Dataset, tokenizer, max_length: int) -> Dataset:
    warn_if_truncated(tokenizer, dataset["text"], max_length)
    return dataset.map(
        lambda batch: tokenizer(batch["text"], truncation=True, max_length=max_length),
        batched=True,
        remove_columns=["text"],
        desc="Tokenizing",
    )
