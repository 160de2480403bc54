"""load_target / sample_per_class: every source form, label handling, and each bad input's message."""

from __future__ import annotations

import json

import pytest
from datasets import ClassLabel, Dataset, DatasetDict

import hf_transfer as ht
from hf_transfer.data import DataError

from .conftest import write_jsonl


def _as_csv(path, rows, sep=","):
    lines = [f"text{sep}label"] + [f"{r['text']}{sep}{r['label']}" for r in rows]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


@pytest.mark.parametrize("form", ["jsonl", "csv", "tsv", "parquet", "mapping", "folder", "saved", "dataset"])
def test_every_source_form_gives_text_and_classlabel(tmp_path, sentiment_rows, form):
    if form == "jsonl":
        source = write_jsonl(tmp_path / "data.jsonl", sentiment_rows)
    elif form == "csv":
        source = _as_csv(tmp_path / "data.csv", sentiment_rows)
    elif form == "tsv":
        source = _as_csv(tmp_path / "data.tsv", sentiment_rows, sep="\t")
    elif form == "parquet":
        Dataset.from_list(sentiment_rows).to_parquet(tmp_path / "data.parquet")
        source = str(tmp_path / "data.parquet")
    elif form == "mapping":
        source = {"train": write_jsonl(tmp_path / "a.jsonl", sentiment_rows)}
    elif form == "folder":
        write_jsonl(tmp_path / "train.jsonl", sentiment_rows)
        source = str(tmp_path)
    elif form == "saved":
        DatasetDict({"train": Dataset.from_list(sentiment_rows)}).save_to_disk(tmp_path / "saved")
        source = str(tmp_path / "saved")
    else:
        source = Dataset.from_list(sentiment_rows)
    data = ht.load_target(source, validation_size=0.25)
    assert set(data) == {"train", "validation"}
    assert data["train"].column_names == ["text", "label"]
    assert isinstance(data["train"].features["label"], ClassLabel)
    assert ht.label_names(data) == ["negative", "positive"]
    assert len(data["train"]) + len(data["validation"]) == len(sentiment_rows)
    # the carved validation split is stratified: 2 of each class out of 8 + 8
    assert sorted(data["validation"]["label"]) == [0, 0, 1, 1]


def test_bundled_sst2_slice():
    data = ht.load_bundled("sst2")
    assert (len(data["train"]), len(data["validation"])) == (2000, 872)
    assert ht.label_names(data) == ["negative", "positive"]
    assert "sst2" in ht.bundled_datasets() and "ag_news" in ht.bundled_datasets()


def test_column_mapping_and_explicit_label_order(tmp_path):
    rows = [{"review": f"text {i}", "stars": lab} for i, lab in enumerate(["b", "a", "c"] * 3)]
    data = ht.load_target(write_jsonl(tmp_path / "r.jsonl", rows), text_column="review", label_column="stars",
                          labels=["c", "b", "a"], validation_size=0)  # fmt: skip
    assert ht.label_names(data) == ["c", "b", "a"]
    assert data["train"][0] == {"text": "text 0", "label": 1}
    assert list(data) == ["train"]


def test_existing_classlabel_order_is_kept():
    ds = Dataset.from_dict({"text": ["x", "y", "z", "w"], "label": [1, 0, 1, 0]})
    ds = ds.cast_column("label", ClassLabel(names=["zebra", "apple"]))
    data = ht.load_target(ds, validation_size=0)
    assert ht.label_names(data) == ["zebra", "apple"]
    assert data["train"]["label"] == [1, 0, 1, 0]


def test_test_split_labels_are_encoded_with_train_order(tmp_path, sentiment_rows):
    write_jsonl(tmp_path / "train.jsonl", sentiment_rows)
    write_jsonl(tmp_path / "test.jsonl", [{"text": "great", "label": "positive"}])
    data = ht.load_target(str(tmp_path))
    assert data["test"][0]["label"] == 1


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"text_column": "sentence"}, "no column 'sentence'; its columns are ['text', 'label']"),
        ({"label_column": "labels"}, "Did you mean 'label'"),
        ({"labels": ["positive", "positive"]}, "duplicates"),
        ({"labels": ["positive", "neutral"]}, "label(s) ['negative']"),
    ],
)
def test_bad_arguments_name_the_problem(sentiment_dir, kwargs, expected):
    with pytest.raises(DataError) as err:
        ht.load_target(str(sentiment_dir), **kwargs)
    assert expected in str(err.value)


def test_unseen_validation_label(sentiment_dir):
    write_jsonl(sentiment_dir / "validation.jsonl", [{"text": "meh", "label": "neutral"}])
    with pytest.raises(DataError, match=r"'validation' has label\(s\) \['neutral'\] that the train split does not"):
        ht.load_target(str(sentiment_dir))


def test_empty_split(sentiment_dir):
    (sentiment_dir / "validation.jsonl").write_text("")
    with pytest.raises(DataError, match="'validation' is empty"):
        ht.load_target(str(sentiment_dir))
    empty = DatasetDict(
        {
            "train": Dataset.from_dict({"text": ["a"], "label": ["x"]}),
            "test": Dataset.from_dict({"text": [], "label": []}),
        }
    )
    with pytest.raises(DataError, match="'test' is empty"):
        ht.load_target(empty)


@pytest.mark.parametrize("bad", ["", "   ", None])
def test_empty_or_missing_text(tmp_path, sentiment_rows, bad):
    rows = sentiment_rows + [{"text": bad, "label": "positive"}]
    with pytest.raises(DataError, match=r"1 row\(s\) have empty or missing text \(first at row 16\)"):
        ht.load_target(write_jsonl(tmp_path / "d.jsonl", rows))


def test_non_string_text(tmp_path):
    rows = [{"text": i, "label": "a" if i % 2 else "b"} for i in range(6)]
    with pytest.raises(DataError, match="holds int64, not strings"):
        ht.load_target(write_jsonl(tmp_path / "d.jsonl", rows))


def test_missing_file_and_unknown_hub_id_offline(tmp_path, monkeypatch):
    with pytest.raises(DataError, match="does not exist"):
        ht.load_target({"train": str(tmp_path / "nope.jsonl")})
    with pytest.raises(DataError, match="neither an existing file"):
        ht.load_target(str(tmp_path / "nope.jsonl"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DataError, match="HF_HUB_OFFLINE is set") as err:
        ht.load_target("some-user/some-dataset-that-is-not-cached")
    assert err.value.__cause__ is None  # a clean message, not a chained stack trace


def test_folder_without_data(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DataError, match="holds neither a saved DatasetDict nor"):
        ht.load_target(str(tmp_path))


def test_sample_per_class_is_stratified_and_seeded(sentiment_dir):
    train = ht.load_target(str(sentiment_dir))["train"]
    a = ht.sample_per_class(train, 3, seed=0)
    assert sorted(a["label"]) == [0, 0, 0, 1, 1, 1]
    assert a["text"] == ht.sample_per_class(train, 3, seed=0)["text"]
    assert any(ht.sample_per_class(train, 3, seed=s)["text"] != a["text"] for s in range(1, 5))
    assert len(ht.sample_per_class(train, 0)) == 0


def test_sample_per_class_larger_than_a_class(sentiment_dir):
    train = ht.load_target(str(sentiment_dir))["train"]
    with pytest.raises(DataError, match=r"n_per_class=9 is more than some classes have \('negative' has 8"):
        ht.sample_per_class(train, 9)


def test_data_arguments_validate():
    with pytest.raises(ValueError, match="n_per_class=-1"):
        ht.DataArguments(n_per_class=-1)
    assert json.dumps(ht.DataArguments().__dict__)  # plain, serialisable
