"""Target data in, a validated ``DatasetDict`` out: ``text`` column, ``label`` as ``ClassLabel``.

Everything a strategy needs to know about the target task (which splits, which labels, in which order)
is settled here, once, and checked before any model is loaded: the expensive steps downstream can then
trust their input.
"""

from __future__ import annotations

import csv
import difflib
import io
import json
import logging
import math
import os
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

from .errors import DataError

if TYPE_CHECKING:
    from .config import DataArguments

logger = logging.getLogger(__name__)

BUNDLED_DIR = Path(__file__).parent / "bundled"
FILE_BUILDERS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".tsv": "csv", ".parquet": "parquet"}
SPLIT_ALIASES = {
    "train": "train",
    "validation": "validation",
    "valid": "validation",
    "dev": "validation",
    "test": "test",
}
DELIMITERS = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}
SNIFF_BYTES = 8192
NUMBER = r"^\s*[-+]?[0-9]+(\.[0-9]*)?\s*$"  # a label id (or a number) written as text, e.g. "1" in a CSV
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
    files = {split: [paths] if isinstance(paths, str | os.PathLike) else list(paths) for split, paths in files.items()}
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
                _check_delimiter(str(p), head, delimiter)
    kwargs = {"delimiter": "\t"} if delimiter == "\t" and builder == "csv" else {}
    try:
        loaded = _load_files(builder, {k: [str(p) for p in v] for k, v in files.items()}, kwargs)
    except (DatasetGenerationError, ValueError) as err:
        for split, paths in files.items():  # find the split at fault: usually one with a header but no rows
            try:
                rows = len(_load_files(builder, {split: paths}, kwargs)[split])
            except (DatasetGenerationError, ValueError):
                rows = 0
            if rows == 0:
                raise DataError(f"Split {split!r} is empty: {paths} has no rows. Remove it or fill it.") from None
        raise DataError(f"Could not read {files}: {type(err).__name__}: {err}") from None
    return loaded


def _load_files(builder: str, files: dict[str, list[str]], kwargs: dict) -> DatasetDict:
    """``load_dataset`` on local files; a CSV whose column changes type part-way is read again as text.

    pandas infers each CSV column's type from its first 10,000-row chunk, so a label column of ids that turns
    into names further down fails to cast (and before this looked like an empty file). Read as text, the
    label checks of :func:`load_target` can then say which column mixes what, and where."""
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
    """A file whose header is one column with the delimiter its extension implies, but several with another
    (a ``;`` or tab file saved as ``.csv``, a comma file saved as ``.tsv``): say so, rather than "no column
    'label'" later. A genuine one-column file (no other delimiter sniffed) keeps the usual message."""
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


def _check_columns(data: DatasetDict, text_column: str, label_column: str) -> None:
    for split, ds in data.items():
        missing = [c for c in (text_column, label_column) if c not in ds.column_names]
        if missing:
            hints = []
            for column in missing:
                close = difflib.get_close_matches(column, ds.column_names, n=1, cutoff=0.5)
                if close:
                    hints.append(f"Did you mean {close[0]!r} for {column!r}?")
            raise DataError(
                f"Split {split!r} has no column {', '.join(repr(c) for c in missing)}; its columns are "
                f"{ds.column_names}. Pass text_column=/label_column= to name the right ones."
                + (" " + " ".join(hints) if hints else "")
            )


def _column(ds: Dataset, name: str) -> pa.ChunkedArray:
    """One column as Arrow, with the rows ``ds`` really has (``ds.data`` ignores a ``select``/``shuffle``)."""
    return ds.with_format("arrow")[name]


def _check_texts(ds: Dataset, split: str) -> None:
    column = _column(ds, "text")
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        raise DataError(
            f"Split {split!r}: the text column holds {column.type}, not strings. Cast it to text first "
            f"(e.g. dataset.map(lambda r: {{'text': str(r['text'])}}))."
        )
    bad = pc.or_(pc.is_null(column), pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(column.fill_null(""))), 0))
    n_bad = pc.sum(pc.cast(bad, pa.int64())).as_py() or 0
    if n_bad:
        first = int(np.flatnonzero(bad.to_numpy(zero_copy_only=False))[0])
        raise DataError(
            f"Split {split!r}: {n_bad} row(s) have empty or missing text (first at row {first}). "
            f"Drop them first, e.g. dataset.filter(lambda r: r['text'] and r['text'].strip())."
        )


def _first_row(mask) -> int:
    return int(pc.index(mask, True).as_py())


def _label_kinds(ds: Dataset) -> dict[str, tuple[int, object]]:
    """The kinds of value in a split's label column (``number``, ``string``, ...): first row and value of each.

    Arrow does the scanning; a string column is judged by its distinct values, and rows are only looked up
    for a column that mixes kinds."""
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
    if isinstance(feature, Value) and (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
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
    """Labels written as ids in some rows and as names in others (``1`` and ``"pos"``) are two spellings of
    classes that cannot be matched up: JSONL gives a column that cannot be encoded at all, CSV a silent extra
    class "1". Stop before either. With ``labels=`` given, text that looks like a number is taken as a name."""
    found: dict[str, tuple[str, int, object]] = {}
    is_json = False
    for split, ds in data.items():
        kinds = _label_kinds(ds)
        if isinstance(ds.features["label"], Json):
            is_json = True
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
    feature = ds.features["label"]
    counts = pc.value_counts(_column(ds, "label"))
    pairs = zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist())
    if isinstance(feature, ClassLabel):
        spelled = Counter(dict.fromkeys(feature.names, 0))
        spelled.update({feature.names[v]: n for v, n in pairs if v is not None and 0 <= v < len(feature.names)})
        return spelled
    return Counter({str(v): n for v, n in pairs if v is not None})


def _label_variants(data: DatasetDict, labels: Sequence[str] | None, normalize: bool) -> dict[str, str]:
    """Label names that differ only by case or surrounding whitespace ("negative " / "negative", "Positive" /
    "positive") would become separate classes, each with part of the rows: stop, unless ``normalize``.

    With ``normalize``, returns the spelling -> canonical name map: names are stripped, and case variants take
    the spelling of ``labels=`` if given, else the most frequent one in train (ties: the first in sorted order).
    """
    sources: dict[str, Counter] = {split: _label_counts(ds) for split, ds in data.items()}
    given = [str(x) for x in labels] if labels is not None else []
    groups: dict[str, dict[str, list[str]]] = {}  # stripped, casefolded name -> spelling -> where it occurs
    for source, counts in [*sources.items(), ("labels=", Counter(given))]:
        for name, n in counts.items():
            where = source if source == "labels=" else f"{source}: {n} row{'s' * (n != 1)}"
            groups.setdefault(name.strip().casefold(), {}).setdefault(name, []).append(where)
    variants = [spellings for spellings in groups.values() if len(spellings) > 1]

    def describe(spellings: dict[str, list[str]]) -> str:
        return " / ".join(f"{name!r} ({', '.join(where)})" for name, where in sorted(spellings.items()))

    clash = [spellings for spellings in variants if sum("labels=" in where for where in spellings.values()) > 1]
    if clash:
        raise DataError(
            f"labels= has names that differ only by case or surrounding whitespace: "
            f"{'; '.join(' / '.join(repr(n) for n in sorted(s) if 'labels=' in s[n]) for s in clash)}. "
            f"Give each class once, spelled one way."
        )
    if variants and not normalize:
        raise DataError(
            f"Label names differ only by case or surrounding whitespace, so they would become separate classes: "
            f"{'; '.join(describe(s) for s in variants)}. Fix the spelling in the data, or pass "
            f"normalize_labels=True to strip whitespace and merge case variants into one name."
        )
    if not normalize:
        return {}
    train = Counter()
    for name, n in sources["train"].items():
        train[name.strip()] += n
    rename: dict[str, str] = {}
    merged = []
    for spellings in groups.values():
        chosen = [n.strip() for n, where in spellings.items() if "labels=" in where]
        stripped = sorted({n.strip() for n in spellings})
        canonical = chosen[0] if chosen else min(stripped, key=lambda n: (-train[n], n))
        rename.update({n: canonical for n in spellings if n != canonical})
        if len(spellings) > 1 or canonical not in spellings:
            merged.append(f"{' / '.join(repr(n) for n in sorted(spellings))} -> {canonical!r}")
    if merged:
        logger.warning("normalize_labels: label names merged: %s.", "; ".join(merged))
    return rename


def _label_names(
    data: DatasetDict, labels: Sequence[str] | None, train_split: str, rename: Mapping[str, str]
) -> list[str]:
    feature = data[train_split].features["label"]
    if labels is not None:
        names = [str(x) for x in labels]
        if len(set(names)) != len(names):
            raise DataError(f"labels={names} contains duplicates; give each label once.")
        return [rename.get(n, n) for n in names]
    if isinstance(feature, ClassLabel):
        return list(dict.fromkeys(rename.get(n, n) for n in feature.names))
    values = data[train_split].unique("label")
    if any(v is None for v in values):
        raise DataError(f"Split {train_split!r} has rows with no label; drop or fill them first.")
    values = [rename.get(v, v) if isinstance(v, str) else v for v in values]
    return list(dict.fromkeys(str(v) for v in sorted(values, key=lambda v: (str(type(v)), v))))


def _encode_labels(ds: Dataset, split: str, names: list[str], train_split: str, rename: Mapping[str, str]) -> Dataset:
    feature = ds.features["label"]
    if isinstance(feature, ClassLabel):
        if len(ds) and min(ds.unique("label")) < 0:
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
        where = "the train split" if split != train_split else "the given labels="
        raise DataError(
            f"Split {split!r} has label(s) {unknown} that {where} does not have (known: {names}). "
            f"Fix the labels, pass labels=[...] listing every class, or drop those rows."
        )
    index = {name: i for i, name in enumerate(names)}
    target = ClassLabel(names=names)
    features = ds.features.copy()
    features["label"] = target
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
) -> DatasetDict:
    """Load target data as a ``DatasetDict`` with ``text`` and a ``ClassLabel`` ``label``, validated.

    ``source`` is a JSONL/CSV/TSV/Parquet file, a ``{split: file}`` mapping, a folder (saved
    ``DatasetDict`` or ``train``/``validation``/``test`` files), a ``Dataset``/``DatasetDict``, or a Hub id.
    Label order is ``labels`` when given, the ``ClassLabel`` order when the data has one, else sorted.
    A stratified ``validation`` split is carved from train (``validation_size``) when none exists.
    Label names that differ only by case or surrounding whitespace (in any split or ``labels``) are an error;
    with ``normalize_labels=True`` names are stripped and case variants merged into one spelling: the one in
    ``labels`` if given, else the most frequent in train, ties broken by sorted order (logged as a warning).
    """
    data = read_source(source)
    data = DatasetDict({SPLIT_ALIASES.get(k, k): v for k, v in data.items()})
    if "train" not in data:
        raise DataError(f"No 'train' split among {list(data)}; name one split 'train' (file or key).")
    for split, ds in data.items():
        if len(ds) == 0:
            raise DataError(f"Split {split!r} is empty; remove it or point it at a file with rows.")
    _check_columns(data, text_column, label_column)
    renames = {text_column: "text", label_column: "label"}
    data = DatasetDict(
        {
            split: ds.select_columns([text_column, label_column]).rename_columns(
                {k: v for k, v in renames.items() if k != v}
            )
            for split, ds in data.items()
        }
    )
    for split, ds in data.items():
        _check_texts(ds, split)
    _check_label_kinds(data, label_column, labels)
    rename = _label_variants(data, labels, normalize_labels)
    names = _label_names(data, labels, "train", rename)
    data = DatasetDict({split: _encode_labels(ds, split, names, "train", rename) for split, ds in data.items()})
    if "validation" not in data and validation_size:
        counts = np.bincount(np.asarray(_column(data["train"], "label")), minlength=len(names))
        size = _validation_share(counts, names, validation_size)
        parts = data["train"].train_test_split(test_size=size, stratify_by_column="label", seed=seed)
        data["train"], data["validation"] = parts["train"], parts["test"]
    return data


def _validation_rows(size: float | int, n: int) -> int:
    return math.ceil(size * n) if isinstance(size, float) else int(size)  # as datasets' train_test_split


def _validation_share(counts: np.ndarray, names: list[str], validation_size: float | int) -> float | int:
    """``validation_size`` as ``train_test_split`` takes it, once sure a stratified split can be carved: every
    class needs 2 train rows, and each side as many rows as there are classes (else a raw sklearn-style error).
    """
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
    ds = data["train"] if isinstance(data, DatasetDict) else data
    return list(ds.features["label"].names)


def readable_label(label: str) -> str:
    """A label name as words (``"meaning_of_life"`` -> ``"meaning of life"``): an identifier-style name embeds
    as odd sub-word pieces, so a label without a description is described by its name in plain words."""
    return " ".join(label.replace("_", " ").split()) or label


def sample_per_class(dataset: Dataset, n: int, seed: int = 0) -> Dataset:
    """Stratified sample of exactly ``n`` rows per class (seeded), for few-shot experiments."""
    if n < 0:
        raise DataError(f"n_per_class={n} must be >= 0.")
    labels = np.asarray(dataset["label"])
    names = dataset.features["label"].names
    rng = np.random.default_rng(seed)
    picked = []
    short = []
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


def load_data_args(data_args: DataArguments, counts: dict | None = None):
    """Load and sample the target data described by ``data_args``: ``(train, eval, labels)``. ``counts``, if
    given, receives ``n_real_train`` (sampled real rows, before ``repeat_train``) and ``n_extra_train``."""
    kwargs = dict(
        text_column=data_args.text_column,
        label_column=data_args.label_column,
        labels=data_args.labels,
        normalize_labels=data_args.normalize_labels,
        validation_size=data_args.validation_size,
        seed=data_args.sample_seed,
    )
    if data_args.dataset.startswith("bundled:"):
        data = load_bundled(data_args.dataset.split(":", 1)[1], **kwargs)
    else:
        data = load_target(data_args.dataset, **kwargs)
    if data_args.eval_split not in data:
        raise DataError(f"eval_split={data_args.eval_split!r} is not among the splits {list(data)}.")
    train = data["train"]
    if data_args.n_per_class is not None:
        train = sample_per_class(train, data_args.n_per_class, seed=data_args.sample_seed)
    n_real = len(train)
    if data_args.repeat_train > 1 and n_real:
        train = concatenate_datasets([train] * data_args.repeat_train)
    extra = (
        load_extra_train(data_args.extra_train, label_names(data), normalize_labels=data_args.normalize_labels)
        if data_args.extra_train
        else None
    )
    missing: list[str] = []
    if extra is not None:
        train = concatenate_datasets([train, extra])
        missing = _labels_missing(extra, label_names(data))
        if missing:
            warnings.warn(
                f"extra_train={str(data_args.extra_train)!r} has no rows for label(s) {missing}: "
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
    return train, eval_ds, label_names(data)


def _labels_missing(dataset: Dataset, labels: list[str]) -> list[str]:
    present = set(dataset.unique("label")) if len(dataset) else set()
    return [name for i, name in enumerate(labels) if i not in present]


def load_extra_train(source, labels: list[str], normalize_labels: bool = False) -> Dataset:
    """Rows from ``source`` (file, folder, saved ``Dataset``) with labels re-encoded by name to ``labels``."""
    try:
        extra = load_target(source, labels=labels, validation_size=0, normalize_labels=normalize_labels)
    except DataError as err:
        raise DataError(f"extra_train={str(source)!r}: {err}") from None
    return concatenate_datasets(list(extra.values()))


def tokenize(dataset: Dataset, tokenizer, max_length: int) -> Dataset:
    return dataset.map(
        lambda batch: tokenizer(batch["text"], truncation=True, max_length=max_length),
        batched=True,
        remove_columns=["text"],
        desc="Tokenizing",
    )
