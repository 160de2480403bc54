"""hf_transfer.data (load_target, sample_per_class, DataArguments): every source form, renaming, label order,
the carved validation split, every bad input and its message."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from conftest import LABELS, write_rows
from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

import hf_transfer as ht
from hf_transfer.data import DataError, bundled_datasets, label_names, load_bundled, load_target, sample_per_class
from hf_transfer.errors import HfTransferError

pytestmark = pytest.mark.usefixtures("single_thread")


def pairs(ds: Dataset) -> list[tuple[str, str]]:
    """(text, label name) per row, so a test checks both the text and the label encoding."""
    names = ds.features["label"].names
    return [(t, names[i]) for t, i in zip(ds["text"], ds["label"])]


def expected_pairs(rows) -> list[tuple[str, str]]:
    return [(r["text"], r["label"]) for r in rows]


def per_class(ds: Dataset) -> dict[str, int]:
    names = ds.features["label"].names
    return {names[k]: v for k, v in sorted(Counter(ds["label"]).items())}


def check_schema(data: DatasetDict, names=LABELS) -> None:
    for split, ds in data.items():
        assert ds.column_names == ["text", "label"], split
        assert isinstance(ds.features["label"], ClassLabel), split
        assert ds.features["label"].names == list(names), split


# --------------------------------------------------------------------------------------------------------------
# Source forms
# --------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "tsv", "parquet"])
def test_split_mapping_in_each_format(target_files, target_rows, fmt):
    data = load_target(target_files[fmt])
    assert sorted(data) == ["test", "train", "validation"]
    check_schema(data)
    for split, rows in target_rows.items():
        assert pairs(data[split]) == expected_pairs(rows), (fmt, split)


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "tsv", "parquet"])
def test_single_file_becomes_train_plus_carved_validation(target_files, target_rows, fmt):
    data = load_target(target_files[fmt]["train"], validation_size=0.25)
    assert sorted(data) == ["train", "validation"]
    check_schema(data)
    assert len(data["train"]) == 27 and len(data["validation"]) == 9
    # Nothing lost, nothing invented: the two parts together are the file.
    assert sorted(pairs(data["train"]) + pairs(data["validation"])) == sorted(expected_pairs(target_rows["train"]))


def test_text_and_label_columns_default_to_the_obvious_ones(tmp_path, caplog):
    """GLUE's 'sentence', or the one string column, is the text; the one ClassLabel column is the label; logged.
    Two string columns of no known name stay an error that lists them."""
    rows = [{"idx": i, "sentence": f"text {i}", "label": ["neg", "pos"][i % 2]} for i in range(8)]
    with caplog.at_level("WARNING"):
        data = load_target(write_rows(tmp_path / "glue.jsonl", rows), validation_size=0)
    assert data["train"]["text"][:2] == ["text 0", "text 1"] and "read from 'sentence'" in caplog.text
    features = Features({"body": Value("string"), "intent": ClassLabel(names=["a", "b"]), "n": Value("int64")})
    hub_like = Dataset.from_dict({"body": ["x", "y", "z", "w"], "intent": [0, 1, 0, 1], "n": [1, 2, 3, 4]}, features)
    data = load_target(DatasetDict({"train": hub_like}), validation_size=0)
    assert data["train"]["text"] == ["x", "y", "z", "w"] and data["train"].features["label"].names == ["a", "b"]
    two = [{"title": "t", "summary": "b", "label": "neg"}, {"title": "u", "summary": "c", "label": "pos"}]
    with pytest.raises(DataError, match=r"no column 'text'; its columns are \['title', 'summary', 'label'\]"):
        load_target(write_rows(tmp_path / "two.jsonl", two), validation_size=0)


def test_label_column_of_a_common_name_or_the_one_left_is_read(tmp_path, caplog):
    """No 'label' column: a column of a common label name ('intent', 'topic', ...) is the label, else the one
    column beside the text (integer ids too); logged. Two candidates of no known name stay an error."""
    rows = [{"utterance": f"text {i}", "intent": ["balance", "transfer"][i % 2]} for i in range(8)]
    with caplog.at_level("WARNING"):
        data = load_target(write_rows(tmp_path / "intents.csv", rows), validation_size=0)
    assert data["train"].features["label"].names == ["balance", "transfer"] and "read from 'intent'" in caplog.text
    ids = [{"content": f"news {i}", "y_true": i % 3} for i in range(9)]
    data = load_target(write_rows(tmp_path / "ids.jsonl", ids), validation_size=0)
    assert data["train"].features["label"].names == ["0", "1", "2"] and data["train"]["label"][:3] == [0, 1, 2]
    two = [{"text": "t", "a": "x", "b": "y"}, {"text": "u", "a": "z", "b": "w"}]
    with pytest.raises(DataError, match=r"no column 'label'; its columns are \['text', 'a', 'b'\]"):
        load_target(write_rows(tmp_path / "two.jsonl", two), validation_size=0)


def test_folder_of_split_files(target_dir, target_rows):
    data = load_target(str(target_dir))
    assert sorted(data) == ["test", "train", "validation"]
    check_schema(data)
    for split, rows in target_rows.items():
        assert pairs(data[split]) == expected_pairs(rows)


def test_folder_with_split_aliases_and_shard_names(tmp_path, target_rows):
    write_rows(tmp_path / "train-00000-of-00002.csv", target_rows["train"][:18])
    write_rows(tmp_path / "train-00001-of-00002.csv", target_rows["train"][18:])
    write_rows(tmp_path / "dev.csv", target_rows["validation"])
    (tmp_path / "README.md").write_text("not data")
    data = load_target(str(tmp_path))
    assert sorted(data) == ["train", "validation"]
    assert pairs(data["train"]) == expected_pairs(target_rows["train"])
    assert pairs(data["validation"]) == expected_pairs(target_rows["validation"])


def test_pathlike_source(target_files, target_rows):
    from pathlib import Path

    data = load_target(Path(target_files["jsonl"]["train"]), validation_size=0)
    assert list(data) == ["train"]
    assert pairs(data["train"]) == expected_pairs(target_rows["train"])


def test_saved_datasetdict_folder(tmp_path, target_dir, target_rows):
    raw = DatasetDict({s: Dataset.from_list(rows) for s, rows in target_rows.items()})
    raw.save_to_disk(str(tmp_path / "saved"))
    data = load_target(str(tmp_path / "saved"))
    assert sorted(data) == ["test", "train", "validation"]
    check_schema(data)
    for split, rows in target_rows.items():
        assert pairs(data[split]) == expected_pairs(rows)


def test_saved_dataset_folder_is_the_train_split(tmp_path, target_rows):
    Dataset.from_list(target_rows["train"]).save_to_disk(str(tmp_path / "saved"))
    data = load_target(str(tmp_path / "saved"), validation_size=0)
    assert list(data) == ["train"]
    assert pairs(data["train"]) == expected_pairs(target_rows["train"])


def test_dataset_object(target_rows):
    data = load_target(Dataset.from_list(target_rows["train"]), validation_size=6)
    assert sorted(data) == ["train", "validation"]
    check_schema(data)
    assert per_class(data["validation"]) == {label: 2 for label in LABELS}
    assert per_class(data["train"]) == {label: 10 for label in LABELS}


def test_datasetdict_object_with_dev_alias(target_rows):
    raw = DatasetDict(
        {"train": Dataset.from_list(target_rows["train"]), "dev": Dataset.from_list(target_rows["test"])}
    )
    data = load_target(raw)
    assert sorted(data) == ["train", "validation"]
    assert pairs(data["validation"]) == expected_pairs(target_rows["test"])


def test_bundled_sst2():
    data = load_bundled("sst2")
    assert {split: len(ds) for split, ds in data.items()} == {"train": 2000, "validation": 872}
    check_schema(data, ["negative", "positive"])
    assert label_names(data) == ["negative", "positive"]
    assert label_names(data["validation"]) == ["negative", "positive"]
    with open(data_file("sst2", "validation")) as handle:
        first = json.loads(handle.readline())
    assert pairs(data["validation"])[0] == (first["text"], first["label"])


def data_file(name: str, split: str) -> str:
    from hf_transfer.data import BUNDLED_DIR

    return str(BUNDLED_DIR / name / f"{split}.jsonl")


# --------------------------------------------------------------------------------------------------------------
# Columns and labels
# --------------------------------------------------------------------------------------------------------------


def test_text_and_label_columns_are_renamed(tmp_path, target_rows):
    rows = [{"id": i, "sentence": r["text"], "sentiment": r["label"]} for i, r in enumerate(target_rows["train"])]
    path = write_rows(tmp_path / "train.jsonl", rows)
    data = load_target(path, text_column="sentence", label_column="sentiment", validation_size=0)
    check_schema(data)  # 'id' dropped, the other two renamed
    assert pairs(data["train"]) == expected_pairs(target_rows["train"])


def test_renaming_when_the_data_also_has_text_and_label_columns(target_rows):
    rows = [{"text": "ignored", "label": "x", "review": r["text"], "stars": r["label"]} for r in target_rows["train"]]
    data = load_target(Dataset.from_list(rows), text_column="review", label_column="stars", validation_size=0)
    check_schema(data)
    assert pairs(data["train"]) == expected_pairs(target_rows["train"])


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        (None, ["negative", "neutral", "positive"]),  # strings: sorted
        (["positive", "negative", "neutral"], ["positive", "negative", "neutral"]),  # explicit: kept
        (("neutral", "positive", "negative"), ["neutral", "positive", "negative"]),  # any sequence
    ],
)
def test_label_order(target_rows, labels, expected):
    rows = list(reversed(target_rows["train"]))  # first-seen order is not the sorted order
    data = load_target(Dataset.from_list(rows), labels=labels, validation_size=0)
    assert data["train"].features["label"].names == expected
    assert pairs(data["train"]) == expected_pairs(rows)


def test_classlabel_order_is_kept():
    features = Features({"text": Value("string"), "label": ClassLabel(names=["pos", "neg"])})
    raw = Dataset.from_dict({"text": ["good film", "bad film"] * 3, "label": [0, 1] * 3}, features=features)
    data = load_target(raw, validation_size=0)
    assert data["train"].features["label"].names == ["pos", "neg"]
    assert data["train"]["label"] == [0, 1] * 3


def test_classlabel_reordered_by_explicit_labels():
    features = Features({"text": Value("string"), "label": ClassLabel(names=["pos", "neg"])})
    raw = Dataset.from_dict({"text": ["good film", "bad film"] * 3, "label": [0, 1] * 3}, features=features)
    data = load_target(raw, labels=["neg", "pos"], validation_size=0)
    assert data["train"].features["label"].names == ["neg", "pos"]
    assert pairs(data["train"]) == [("good film", "pos"), ("bad film", "neg")] * 3


def test_validation_classlabel_in_another_order_is_remapped():
    train = Dataset.from_dict(
        {"text": ["good", "bad"], "label": [0, 1]},
        features=Features({"text": Value("string"), "label": ClassLabel(names=["pos", "neg"])}),
    )
    val = Dataset.from_dict(
        {"text": ["bad", "good"], "label": [0, 1]},
        features=Features({"text": Value("string"), "label": ClassLabel(names=["neg", "pos"])}),
    )
    data = load_target(DatasetDict({"train": train, "validation": val}))
    assert data["validation"].features["label"].names == ["pos", "neg"]
    assert pairs(data["validation"]) == [("bad", "neg"), ("good", "pos")]


def test_integer_labels_are_sorted_numerically():
    data = load_target(Dataset.from_dict({"text": ["a", "b", "c", "d"], "label": [10, 2, 2, 10]}), validation_size=0)
    assert data["train"].features["label"].names == ["2", "10"]
    assert pairs(data["train"]) == [("a", "10"), ("b", "2"), ("c", "2"), ("d", "10")]


def test_test_split_labels_are_encoded_with_train_order(tmp_path, sentiment_rows):
    write_rows(tmp_path / "train.jsonl", sentiment_rows)
    write_rows(tmp_path / "test.jsonl", [{"text": "great", "label": "positive"}])
    data = ht.load_target(str(tmp_path))
    assert data["test"][0]["label"] == 1


# --------------------------------------------------------------------------------------------------------------
# The carved validation split
# --------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("size", "n_val_per_class"), [(0.25, 3), (0.5, 6), (6, 2), (12, 4)])
def test_validation_split_is_stratified(target_files, size, n_val_per_class):
    data = load_target(target_files["jsonl"]["train"], validation_size=size)
    assert per_class(data["validation"]) == {label: n_val_per_class for label in LABELS}
    assert per_class(data["train"]) == {label: 12 - n_val_per_class for label in LABELS}


def test_validation_split_depends_on_seed_only(target_files):
    path = target_files["jsonl"]["train"]
    first = load_target(path, validation_size=0.25, seed=0)["validation"]["text"]
    again = load_target(path, validation_size=0.25, seed=0)["validation"]["text"]
    other = load_target(path, validation_size=0.25, seed=1)["validation"]["text"]
    assert first == again
    assert sorted(first) != sorted(other)


def test_existing_validation_split_is_not_replaced(target_files, target_rows):
    data = load_target(target_files["jsonl"], validation_size=0.5)
    assert len(data["train"]) == 36
    assert pairs(data["validation"]) == expected_pairs(target_rows["validation"])


# --------------------------------------------------------------------------------------------------------------
# Bad input: always a DataError whose message names the problem
# --------------------------------------------------------------------------------------------------------------


def _rows(n=4):
    return [{"text": f"good movie {i}", "label": "positive" if i % 2 else "negative"} for i in range(n)]


def _missing_column(tmp):
    return [write_rows(tmp / "train.jsonl", _rows())], {"text_column": "sentence"}


def test_a_labels_column_is_read_when_there_is_no_label_column(tmp_path):
    """HF's multi-label datasets name the column ``labels``: with the default label_column it is found."""
    rows = [{"text": r["text"], "labels": r["label"]} for r in _rows()]
    data = load_target(write_rows(tmp_path / "train.jsonl", rows), validation_size=0)
    assert data["train"]["label"] == [label_names(data).index(r["label"]) for r in _rows()]


def _label_column_typo(tmp):
    return [write_rows(tmp / "train.jsonl", _rows())], {"label_column": "labels"}


def _unseen_validation_label(tmp):
    write_rows(tmp / "train.jsonl", _rows())
    write_rows(tmp / "validation.jsonl", [{"text": "so so", "label": "mixed"}])
    return [str(tmp)], {}


def _label_outside_given_labels(tmp):
    return [write_rows(tmp / "train.jsonl", _rows())], {"labels": ["negative", "neutral"]}


def _empty_split_file(tmp):
    write_rows(tmp / "train.jsonl", _rows())
    (tmp / "validation.jsonl").write_text("\n  \n")
    return [str(tmp)], {}


def _empty_split_object(tmp):
    return [DatasetDict({"train": Dataset.from_list(_rows()), "test": Dataset.from_list(_rows()).select([])})], {}


def _non_string_text(tmp):
    return [Dataset.from_dict({"text": [1, 2, 3, 4], "label": ["a", "b", "a", "b"]})], {}


def _empty_text(tmp):
    return [Dataset.from_dict({"text": ["good", "bad", "", "fine"], "label": ["a", "b", "a", "b"]})], {}


def _whitespace_text(tmp):
    return [Dataset.from_dict({"text": ["good", "bad", "fine", " \t\n"], "label": ["a", "b", "a", "b"]})], {}


def _missing_text(tmp):
    return [Dataset.from_dict({"text": ["good", None, "fine", "bad"], "label": ["a", "b", "a", "b"]})], {}


def _duplicate_labels(tmp):
    return [Dataset.from_list(_rows())], {"labels": ["negative", "positive", "negative"]}


def _missing_label_value(tmp):
    return [Dataset.from_dict({"text": ["good", "bad", "fine"], "label": ["a", None, "b"]})], {}


def _unknown_hub_id(tmp):
    return ["nobody-hf-transfer-tests/no-such-dataset"], {}


def _missing_file(tmp):
    return [str(tmp / "nowhere" / "train.jsonl")], {}


def _missing_file_in_mapping(tmp):
    return [{"train": write_rows(tmp / "train.jsonl", _rows()), "test": str(tmp / "test.jsonl")}], {}


def _unknown_format(tmp):
    (tmp / "train.txt").write_text("good movie\n")
    return [{"train": str(tmp / "train.txt")}], {}


def _mixed_formats(tmp):
    return [{"train": write_rows(tmp / "train.jsonl", _rows()), "test": write_rows(tmp / "test.csv", _rows())}], {}


def _no_train_split(tmp):
    return [{"validation": write_rows(tmp / "validation.jsonl", _rows())}], {}


def _folder_without_data(tmp):
    (tmp / "notes.txt").write_text("nothing here")
    return [str(tmp)], {}


BAD_INPUTS = [
    (_missing_column, ["no column 'sentence'; its columns are ['text', 'label']", "text_column="]),
    (_label_column_typo, ["no column 'labels'", "Did you mean 'label' for 'labels'?"]),
    (_unseen_validation_label, ["'validation' has label(s) ['mixed'] that the train split does not have"]),
    (_label_outside_given_labels, ["['positive']", "labels="]),
    (_empty_split_file, ["'validation' is empty"]),
    (_empty_split_object, ["'test' is empty"]),
    (_non_string_text, ["holds int64, not strings"]),
    (_empty_text, ["1 row(s)", "empty or missing text", "first at row 2"]),
    (_whitespace_text, ["1 row(s)", "empty or missing text", "first at row 3"]),
    (_missing_text, ["1 row(s)", "empty or missing text", "first at row 1"]),
    (_duplicate_labels, ["duplicates"]),
    (_missing_label_value, ["no label"]),
    (_unknown_hub_id, ["'nobody-hf-transfer-tests/no-such-dataset'", "HF_HUB_OFFLINE is set", "local"]),
    (_missing_file, ["nowhere", "neither an existing file"]),
    (_missing_file_in_mapping, ["test.jsonl", "does not exist"]),
    (_unknown_format, [".txt", "Cannot read"]),
    (_mixed_formats, [".csv", ".jsonl", "one format"]),
    (_no_train_split, ["No 'train' split", "['validation']"]),
    (_folder_without_data, ["holds neither a saved DatasetDict nor"]),
]


@pytest.mark.parametrize(("make", "fragments"), BAD_INPUTS, ids=[f.__name__.strip("_") for f, _ in BAD_INPUTS])
def test_bad_input_raises_data_error(tmp_path, make, fragments):
    args, kwargs = make(tmp_path)
    with pytest.raises(DataError) as info:
        load_target(*args, **kwargs)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    assert isinstance(info.value, HfTransferError) and isinstance(info.value, ValueError)


def test_unknown_hub_id_offline_is_a_clean_message():
    with pytest.raises(DataError) as info:
        load_target("nobody-hf-transfer-tests/no-such-dataset")
    assert info.value.__cause__ is None and info.value.__suppress_context__
    assert "Traceback" not in str(info.value) and len(str(info.value).splitlines()) <= 3


def test_unknown_bundled_name_lists_the_available_ones():
    available = bundled_datasets()
    assert {"ag_news", "sst2"} <= set(available)
    with pytest.raises(DataError) as info:
        load_bundled("nope")
    assert "'nope'" in str(info.value) and ", ".join(available) in str(info.value)


def test_csv_and_tsv_splits_mixed_raise_data_error(tmp_path, target_rows):
    files = {
        "train": write_rows(tmp_path / "train.csv", target_rows["train"]),
        "validation": write_rows(tmp_path / "validation.tsv", target_rows["validation"]),
    }
    with pytest.raises(DataError, match="one format"):
        load_target(files)


def _header_only_csv(tmp):
    write_rows(tmp / "train.csv", _rows())
    (tmp / "test.csv").write_text("text,label\n")


def _zero_row_parquet(tmp):
    import pyarrow as pa
    import pyarrow.parquet as pq

    write_rows(tmp / "train.parquet", _rows())
    empty = pa.table({"text": pa.array([], pa.string()), "label": pa.array([], pa.string())})
    pq.write_table(empty, str(tmp / "test.parquet"))


@pytest.mark.parametrize("write", [_header_only_csv, _zero_row_parquet], ids=["csv_header_only", "parquet_no_rows"])
def test_split_file_without_rows_raises_data_error(tmp_path, write):
    write(tmp_path)
    with pytest.raises(DataError, match="'test'.*empty"):
        load_target(str(tmp_path))


def test_class_too_small_to_stratify_raises_data_error():
    raw = Dataset.from_dict({"text": ["good", "great", "fine", "lovely", "bad"], "label": ["p", "p", "p", "p", "n"]})
    with pytest.raises(DataError, match="'n'"):
        load_target(raw, validation_size=0.4)


def test_unlabelled_classlabel_rows_raise_data_error():
    features = Features({"text": Value("string"), "label": ClassLabel(names=["a", "b"])})
    raw = DatasetDict(
        {
            "train": Dataset.from_dict({"text": ["x", "y", "x", "y"], "label": [0, 1, 0, 1]}, features=features),
            "test": Dataset.from_dict({"text": ["x", "y"], "label": [-1, -1]}, features=features),
        }
    )
    with pytest.raises(DataError):
        load_target(raw, labels=["b", "a"])


def test_data_arguments_validate():
    with pytest.raises(ValueError, match="n_per_class=-1"):
        ht.DataArguments(n_per_class=-1)
    assert json.dumps(ht.DataArguments().__dict__)  # plain, serialisable


# --------------------------------------------------------------------------------------------------------------
# sample_per_class
# --------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def train_split(target_files):
    return load_target(target_files["jsonl"]["train"], validation_size=0)["train"]


@pytest.mark.parametrize("n", [0, 1, 5, 12])
def test_sample_per_class_exact_counts(train_split, n):
    sample = sample_per_class(train_split, n, seed=3)
    assert len(sample) == 3 * n
    assert per_class(sample) == ({label: n for label in LABELS} if n else {})
    assert sample.features == train_split.features
    assert set(pairs(sample)) <= set(pairs(train_split))
    assert len(set(sample["text"])) == len(sample)  # no row drawn twice


def test_sample_per_class_is_seeded(train_split):
    first = sample_per_class(train_split, 4, seed=7)["text"]
    assert sample_per_class(train_split, 4, seed=7)["text"] == first
    assert sample_per_class(train_split, 4, seed=8)["text"] != first


def test_sample_per_class_too_many_names_the_short_class():
    raw = Dataset.from_dict({"text": [f"t{i}" for i in range(9)], "label": ["big"] * 6 + ["small"] * 3})
    ds = load_target(raw, validation_size=0)["train"]
    with pytest.raises(DataError) as info:
        sample_per_class(ds, 4)
    assert "'small' has 3" in str(info.value) and "'big'" not in str(info.value)
    assert "n_per_class=4 is more than some classes have" in str(info.value)


def test_sample_per_class_negative_n(train_split):
    with pytest.raises(DataError, match="n_per_class=-1"):
        sample_per_class(train_split, -1)


def test_dataset_help_names_every_bundled_slice():
    from dataclasses import fields

    from hf_transfer.config import DataArguments

    help_text = next(f for f in fields(DataArguments) if f.name == "dataset").metadata["help"]
    assert [name for name in bundled_datasets() if name not in help_text] == []


# --------------------------------------------------------------------------------------------------------------
# Silent traps made loud: label spelling variants, mixed id/name labels, the wrong delimiter, a split too small
# --------------------------------------------------------------------------------------------------------------


def _labelled(labels: list[str], word: str = "movie") -> list[dict]:
    return [{"text": f"a {word} {i}", "label": label} for i, label in enumerate(labels)]


def _write_delimited(path, rows: list[dict], sep: str) -> str:
    """Rows joined by ``sep`` whatever the file is called: the file a user saved from a spreadsheet."""
    lines = [sep.join(rows[0])] + [sep.join(str(v) for v in r.values()) for r in rows]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


@pytest.mark.parametrize(
    ("write", "kwargs", "fragments"),
    [
        (  # trailing whitespace in one file
            lambda tmp: write_rows(tmp / "train.jsonl", _labelled(["negative", "negative ", "positive"] * 2)),
            {},
            ["'negative' (train: 2 rows) / 'negative ' (train: 2 rows)"],
        ),
        (  # case differs between train and validation files
            lambda tmp: (
                write_rows(tmp / "train.csv", _labelled(["positive", "negative"] * 2)),
                write_rows(tmp / "validation.csv", _labelled(["Positive", "negative"])),
                str(tmp),
            )[-1],
            {},
            ["'Positive' (validation: 1 row) / 'positive' (train: 2 rows)"],
        ),
        (  # the data spells a class unlike labels=
            lambda tmp: write_rows(tmp / "train.tsv", _labelled(["Positive", "negative"] * 2)),
            {"labels": ["negative", "positive"]},
            ["'Positive' (train: 2 rows) / 'positive' (labels=)"],
        ),
    ],
    ids=["whitespace_in_train", "case_across_splits", "case_against_labels"],
)
def test_label_spelling_variants_raise_data_error(tmp_path, write, kwargs, fragments):
    with pytest.raises(DataError) as info:
        load_target(write(tmp_path), validation_size=0, **kwargs)
    message = str(info.value)
    for fragment in [*fragments, "differ only by case or surrounding whitespace", "normalize_labels=True"]:
        assert fragment in message, f"{fragment!r} not in {message!r}"


@pytest.mark.parametrize("normalize", [False, True])
def test_labels_argument_with_case_variants_raises_data_error(normalize):
    raw = Dataset.from_list(_labelled(["positive", "negative"] * 2))
    with pytest.raises(DataError, match=r"labels= has names that differ only by case.*'Positive' / 'positive'"):
        load_target(raw, labels=["Positive", "negative", "positive"], normalize_labels=normalize, validation_size=0)


def test_normalize_labels_merges_variants_into_the_most_frequent_train_spelling(tmp_path, caplog):
    train = _labelled(["positive"] * 3 + ["Positive"] + ["negative "] * 2 + [" negative", "NEGATIVE"])
    write_rows(tmp_path / "train.jsonl", train)
    write_rows(tmp_path / "validation.jsonl", _labelled(["POSITIVE ", "negative"], word="film"))
    with caplog.at_level("WARNING", logger="hf_transfer.data"):
        data = load_target(str(tmp_path), normalize_labels=True)
    check_schema(data, ["negative", "positive"])
    assert per_class(data["train"]) == {"negative": 4, "positive": 4}
    assert pairs(data["validation"]) == [("a film 0", "positive"), ("a film 1", "negative")]
    assert "'POSITIVE ' / 'Positive' / 'positive' -> 'positive'" in caplog.text
    assert "' negative' / 'NEGATIVE' / 'negative' / 'negative ' -> 'negative'" in caplog.text


def test_normalize_labels_breaks_ties_by_sorted_order_and_keeps_the_labels_spelling():
    raw = Dataset.from_list(_labelled(["pos", "Pos", "pos", "Pos", "neg", "neg"]))
    assert label_names(load_target(raw, normalize_labels=True, validation_size=0)) == ["Pos", "neg"]
    data = load_target(raw, labels=["neg", "POS"], normalize_labels=True, validation_size=0)
    assert data["train"].features["label"].names == ["neg", "POS"]
    assert data["train"]["label"] == [1, 1, 1, 1, 0, 0]


def test_normalize_labels_merges_classlabel_names():
    features = Features({"text": Value("string"), "label": ClassLabel(names=["pos", "neg", "Pos"])})
    raw = Dataset.from_dict({"text": ["a", "b", "c", "d", "e"], "label": [0, 1, 2, 0, 1]}, features=features)
    with pytest.raises(DataError, match=r"'Pos' \(train: 1 row\) / 'pos' \(train: 2 rows\)"):
        load_target(raw, validation_size=0)
    data = load_target(raw, normalize_labels=True, validation_size=0)
    assert data["train"].features["label"].names == ["pos", "neg"]
    assert data["train"]["label"] == [0, 1, 0, 0, 1]


def test_normalize_labels_passes_through_load_bundled_and_data_arguments():
    from dataclasses import fields

    assert label_names(load_bundled("sst2", normalize_labels=True)) == ["negative", "positive"]
    field = next(f for f in fields(ht.DataArguments) if f.name == "normalize_labels")
    assert field.default is False and "case" in field.metadata["help"]


def _mixed_jsonl(tmp):
    rows = _labelled(["pos", "neg"] * 3) + [{"text": "a film", "sentiment_id": 1}]
    rows = [{"text": r["text"], "sentiment": r.get("label", r.get("sentiment_id"))} for r in rows]
    return write_rows(tmp / "train.jsonl", rows), {"label_column": "sentiment"}


def _mixed_jsonl_across_splits(tmp):
    write_rows(tmp / "train.jsonl", _labelled(["pos", "neg"] * 3))
    write_rows(tmp / "validation.jsonl", [{"text": "a film", "label": 1}])
    return str(tmp), {}


def _mixed_csv(tmp):
    return write_rows(tmp / "train.csv", _labelled(["pos", "neg", "pos", "1", "neg", "1"])), {}


def _mixed_csv_past_the_first_chunk(tmp):
    rows = _labelled(["0", "1"] * 5001) + _labelled(["pos"])  # pandas types a CSV by its first 10,000 rows
    return write_rows(tmp / "train.csv", rows), {}


def _json_feature_in_memory(tmp):
    from datasets import Json

    features = Features({"text": Value("string"), "label": Json()})
    return Dataset.from_dict({"text": ["a", "b", "c"], "label": ["pos", 1, "neg"]}, features=features), {}


MIXED_LABELS = [
    (_mixed_jsonl, ["'sentiment'", "1 (split 'train', first at row 6)", "'pos' (split 'train', first at row 0)"]),
    (_mixed_jsonl_across_splits, ["split 'validation', first at row 0", "'pos' (split 'train'"]),
    (_mixed_csv, ["'1' (split 'train', first at row 3)", "pass labels=[...]"]),
    (
        _mixed_csv_past_the_first_chunk,
        ["'0' (split 'train', first at row 0)", "'pos' (split 'train', first at row 10002)"],
    ),
    (_json_feature_in_memory, ["1 (split 'train', first at row 1)", "'pos' (split 'train', first at row 0)"]),
]


@pytest.mark.parametrize(("make", "fragments"), MIXED_LABELS, ids=[f.__name__.strip("_") for f, _ in MIXED_LABELS])
def test_labels_mixing_numbers_and_strings_raise_data_error(tmp_path, make, fragments):
    source, kwargs = make(tmp_path)
    with pytest.raises(DataError) as info:
        load_target(source, validation_size=0, **kwargs)
    message = str(info.value)
    for fragment in [*fragments, "mixes numbers and strings", "all class names", "or all integer ids"]:
        assert fragment in message, f"{fragment!r} not in {message!r}"


def test_number_like_label_names_are_fine_when_labels_are_given(tmp_path):
    source, _ = _mixed_csv(tmp_path)
    data = load_target(source, labels=["pos", "neg", "1"], validation_size=0)
    assert per_class(data["train"]) == {"pos": 2, "neg": 2, "1": 2}
    ids = load_target(write_rows(tmp_path / "ids.csv", _labelled(["0", "1"] * 2)), validation_size=0)
    assert label_names(ids) == ["0", "1"]  # ids only: no mixing


def test_json_label_values_that_are_not_names_raise_data_error(tmp_path):
    rows = [{"text": "a", "label": ["pos"]}, {"text": "b", "label": {"name": "neg"}}, {"text": "c", "label": "pos"}]
    with pytest.raises(DataError, match=r"mixes lists and scalars \(list \['pos'\] at row 0.*give every row a list"):
        load_target(write_rows(tmp_path / "train.jsonl", rows), validation_size=0)


@pytest.mark.parametrize(
    ("name", "sep", "fragments"),
    [
        ("train.csv", ";", ["'text;label'", ".csv extension means comma-separated", "semicolons (';')", "sep=';'"]),
        ("train.csv", "\t", ["'text\\tlabel'", "comma-separated", "tabs ('\\t')", "Rename it to 'train.tsv'"]),
        (
            "train.tsv",
            ",",
            ["'text,label'", ".tsv extension means tab-separated", "commas", "Rename it to 'train.csv'"],
        ),
        ("train.tsv", "|", ["tab-separated", "pipes ('|')", "to_csv(path, index=False, sep='\\t')"]),
    ],
    ids=["semicolon_csv", "tab_csv", "comma_tsv", "pipe_tsv"],
)
def test_file_with_another_delimiter_than_its_extension_raises_data_error(tmp_path, name, sep, fragments):
    rows = _labelled(["pos", "neg"] * 3)
    if sep != ",":
        rows[0]["text"] = "a movie, and a good one"  # a comma inside a text: pandas can't even read the ';' file
    path = _write_delimited(tmp_path / name, rows, sep)
    with pytest.raises(DataError) as info:
        load_target(path)
    message = str(info.value)
    for fragment in [*fragments, repr(path), "single column", "['text', 'label']"]:
        assert fragment in message, f"{fragment!r} not in {message!r}"


def test_single_column_csv_keeps_the_missing_column_message(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text("text\n" + "".join(f"a good; fine movie {i}\n" for i in range(6)))
    with pytest.raises(DataError, match=r"no column 'label'; its columns are \['text'\]"):
        load_target(str(path))


@pytest.mark.parametrize(
    ("size", "fragments"),
    [
        (0.1, ["validation_size=0.1 of 9 train rows gives 1 validation row(s)", "fewer than the 3 classes"]),
        (2, ["validation_size=2 of 9 train rows gives 2 validation row(s)"]),
        (0.9, ["validation_size=0.9 of 9 train rows leaves 0 train row(s)"]),
        (7, ["validation_size=7 of 9 train rows leaves 2 train row(s)"]),
    ],
)
def test_train_too_small_for_a_stratified_validation_split(tmp_path, size, fragments):
    path = write_rows(tmp_path / "train.jsonl", _labelled(["a", "b", "c"] * 3))
    with pytest.raises(DataError) as info:
        load_target(path, validation_size=size)
    message = str(info.value)
    for fragment in [*fragments, "from 0.223 to 0.666 (a share) or from 3 to 6 (rows)", "validation_size=0"]:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    for fitting in (0.223, 0.666, 3, 6):  # the range the message suggests really works
        data = load_target(path, validation_size=fitting)
        assert set(data["validation"]["label"]) == set(data["train"]["label"]) == {0, 1, 2}


@pytest.mark.parametrize("size", [9, 12, 1.0, -0.5])
def test_validation_size_out_of_range_raises_data_error(size):
    raw = Dataset.from_list(_labelled(["a", "b", "c"] * 3))
    with pytest.raises(DataError, match=rf"validation_size={size} is neither a share in \(0, 1\) nor a row count"):
        load_target(raw, validation_size=size)


def test_selected_dataset_is_checked_on_the_rows_it_has():
    raw = Dataset.from_dict({"text": ["good", "", "bad", "fine"], "label": ["p", "n", "n", "p"]}).select([0, 2, 3])
    assert pairs(load_target(raw, validation_size=0)["train"]) == [("good", "p"), ("bad", "n"), ("fine", "p")]
