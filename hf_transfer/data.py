"""Target data in, a validated ``DatasetDict`` out: ``text`` column, ``label`` as ``ClassLabel``.

Everything a strategy needs to know about the target task (which splits, which labels, in which order)
is settled here, once, and checked before any model is loaded: the expensive steps downstream can then
trust their input.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from datasets import ClassLabel, Dataset, DatasetDict, load_dataset, load_from_disk
from datasets.exceptions import DatasetGenerationError

from .errors import DataError

BUNDLED_DIR = Path(__file__).parent / "bundled"
FILE_BUILDERS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".tsv": "csv", ".parquet": "parquet"}
SPLIT_ALIASES = {
    "train": "train",
    "validation": "validation",
    "valid": "validation",
    "dev": "validation",
    "test": "test",
}


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
    for split, paths in files.items():
        for p in paths:
            if not Path(p).is_file():
                raise DataError(f"Data file {p!r} does not exist.")
            if not Path(p).read_bytes()[:4096].strip():
                raise DataError(f"Split {split!r} is empty: {p!r} has no rows. Remove it or fill it.")
    builder = FILE_BUILDERS[suffixes.pop()]
    kwargs = {"delimiter": "\t"} if any(str(p).endswith(".tsv") for ps in files.values() for p in ps) else {}
    try:
        loaded = load_dataset(builder, data_files={k: [str(p) for p in v] for k, v in files.items()}, **kwargs)
    except (DatasetGenerationError, ValueError) as err:
        for split, paths in files.items():  # find the split at fault: usually one with a header but no rows
            try:
                rows = len(load_dataset(builder, data_files={split: paths}, **kwargs)[split])
            except (DatasetGenerationError, ValueError):
                rows = 0
            if rows == 0:
                raise DataError(f"Split {split!r} is empty: {paths} has no rows. Remove it or fill it.") from None
        raise DataError(f"Could not read {files}: {type(err).__name__}: {err}") from None
    return loaded


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


def _check_texts(ds: Dataset, split: str) -> None:
    column = ds.data.column("text")
    import pyarrow as pa
    import pyarrow.compute as pc

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


def _label_names(data: DatasetDict, labels: Sequence[str] | None, train_split: str) -> list[str]:
    feature = data[train_split].features["label"]
    if labels is not None:
        names = [str(x) for x in labels]
        if len(set(names)) != len(names):
            raise DataError(f"labels={names} contains duplicates; give each label once.")
        return names
    if isinstance(feature, ClassLabel):
        return list(feature.names)
    values = data[train_split].unique("label")
    if any(v is None for v in values):
        raise DataError(f"Split {train_split!r} has rows with no label; drop or fill them first.")
    return [str(v) for v in sorted(values, key=lambda v: (str(type(v)), v))]


def _encode_labels(ds: Dataset, split: str, names: list[str], train_split: str) -> Dataset:
    feature = ds.features["label"]
    if isinstance(feature, ClassLabel):
        if len(ds) and min(ds.unique("label")) < 0:
            raise DataError(
                f"Split {split!r} has unlabelled rows (label -1, as in hidden test sets). Drop them "
                f"(dataset.filter(lambda r: r['label'] >= 0)) or leave that split out."
            )
        if list(feature.names) == names:
            return ds
        values = [feature.names[i] for i in ds.unique("label")]
        to_name = feature.int2str
    else:
        values = [str(v) for v in ds.unique("label")]
        to_name = str
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
) -> DatasetDict:
    """Load target data as a ``DatasetDict`` with ``text`` and a ``ClassLabel`` ``label``, validated.

    ``source`` is a JSONL/CSV/TSV/Parquet file, a ``{split: file}`` mapping, a folder (saved
    ``DatasetDict`` or ``train``/``validation``/``test`` files), a ``Dataset``/``DatasetDict``, or a Hub id.
    Label order is ``labels`` when given, the ``ClassLabel`` order when the data has one, else sorted.
    A stratified ``validation`` split is carved from train (``validation_size``) when none exists.
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
    names = _label_names(data, labels, "train")
    data = DatasetDict({split: _encode_labels(ds, split, names, "train") for split, ds in data.items()})
    if "validation" not in data and validation_size:
        counts = np.bincount(np.asarray(data["train"]["label"]), minlength=len(names))
        tiny = [names[i] for i, c in enumerate(counts) if c < 2]
        if tiny:
            raise DataError(
                f"Cannot carve a stratified validation split: label(s) {tiny} have fewer than 2 train rows. "
                f"Add rows, provide a validation file, or pass validation_size=0."
            )
        parts = data["train"].train_test_split(test_size=validation_size, stratify_by_column="label", seed=seed)
        data["train"], data["validation"] = parts["train"], parts["test"]
    return data


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
