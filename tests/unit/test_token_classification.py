"""Token classification (NER) data: every input form to one BIO ``DatasetDict``, BIO checks, per-type sampling,
entity-level scores. No model is loaded."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from conftest import write_rows
from datasets import ClassLabel, Dataset, Features, List, Value

from hf_transfer.data import DataError, load_target
from hf_transfer.metrics import EntityF1
from hf_transfer.token_classification import (
    check_bio,
    entities,
    entity_scores,
    load_token_target,
    sample_per_type,
    spans_to_bio,
    type_names,
)

SENTENCES = [
    (["Angela", "Merkel", "visited", "Paris", "."], ["B-person", "I-person", "O", "B-location", "O"]),
    (["The", "EU", "met", "in", "Brussels"], ["O", "B-org", "O", "O", "B-location"]),
    (["Nothing", "here"], ["O", "O"]),
]


def _conll(path, sentences) -> str:
    lines = ["-DOCSTART- -X- -X- O", ""]
    for tokens, tags in sentences:
        lines += [f"{t} NNP B-NP {g}" for t, g in zip(tokens, tags)] + [""]
    path.write_text("\n".join(lines), encoding="utf-8")
    return str(path)


def test_token_jsonl_conll_and_character_spans_load_the_same(tmp_path):
    rows = [{"tokens": t, "ner_tags": g} for t, g in SENTENCES]
    from_jsonl = load_token_target(write_rows(tmp_path / "j.jsonl", rows), validation_size=0)["train"]
    assert type_names(from_jsonl) == ["location", "org", "person"]
    assert from_jsonl.features["ner_tags"].feature.names == ["O", "B-location", "I-location", "B-org", "I-org",
                                                             "B-person", "I-person"]  # fmt: skip
    from_conll = load_token_target(_conll(tmp_path / "train.conll", SENTENCES), validation_size=0)["train"]
    spans = [
        {"text": "Angela Merkel visited Paris.", "entities": [{"start": 0, "end": 13, "label": "person"},
                                                             {"start": 22, "end": 27, "label": "location"}]},
        {"text": "The EU met in Brussels", "entities": [{"start": 4, "end": 6, "label": "org"},
                                                    {"start": 14, "end": 22, "label": "location"}]},
        {"text": "Nothing here", "entities": []},
    ]  # fmt: skip
    from_spans = load_token_target(write_rows(tmp_path / "s.jsonl", spans), validation_size=0)["train"]
    names = ["O", "B-location", "I-location", "B-org", "I-org", "B-person", "I-person"]
    features = Features({"tokens": List(Value("string")), "ner_tags": List(ClassLabel(names=names))})
    ids = Dataset.from_dict(
        {"tokens": [t for t, _ in SENTENCES], "ner_tags": [[names.index(x) for x in g] for _, g in SENTENCES]},
        features=features,
    )
    from_ids = load_token_target(ids, validation_size=0)["train"]  # fmt: skip
    for other in (from_conll, from_spans, from_ids):
        assert other["tokens"] == from_jsonl["tokens"] and other["ner_tags"] == from_jsonl["ner_tags"]


def test_a_folder_of_conll_txt_files_is_token_data_and_prose_txt_is_not(tmp_path):
    """CoNLL-2003's own layout (train.txt, valid.txt) is read as CoNLL and detected by task='auto'; a .txt
    of prose lines is not CoNLL."""
    from hf_transfer.token_classification import is_conll, is_token_source

    folder = tmp_path / "conll"
    folder.mkdir()
    _conll(folder / "train.txt", SENTENCES)
    _conll(folder / "valid.txt", SENTENCES[:2])
    data = load_token_target(str(folder))
    assert sorted(data) == ["train", "validation"] and data["validation"]["tokens"] == [t for t, _ in SENTENCES[:2]]
    assert is_token_source(str(folder))
    prose = tmp_path / "notes.txt"
    prose.write_text("A line of text about B-movies.\nAnother line\n", encoding="utf-8")
    assert not is_conll(prose) and not is_token_source(str(prose))


def test_bio_is_checked_and_repaired_only_when_asked(caplog):
    with pytest.raises(DataError, match=r"Row 4, token 1: 'I-person' follows 'O'.*repair_bio=True"):
        check_bio(["O", "I-person"], 4)
    with caplog.at_level(logging.WARNING):
        assert check_bio(["O", "I-person", "I-person"], 4, repair=True) == ["O", "B-person", "I-person"]
    assert "read as 'B-person'" in caplog.text
    assert check_bio(["B-x", "I-y"], 0, repair=True) == ["B-x", "B-y"]  # a type change opens a new entity
    with pytest.raises(DataError, match=r"tag 'PER' is not in BIO form"):
        check_bio(["PER"], 0)


@pytest.mark.parametrize(
    "tags",
    [
        [["B-person", "E-person", "O", "S-location", "O"], ["O", "S-org", "O", "O", "S-location"], ["O", "O"]],
        [["B-person", "L-person", "O", "U-location", "O"], ["O", "U-org", "O", "O", "U-location"], ["O", "O"]],
        [["person", "person", "O", "location", "O"], ["O", "org", "O", "O", "location"], ["O", "O"]],
    ],
    ids=["BIOES", "BILOU", "IO"],
)
def test_other_tag_schemes_load_as_bio(tmp_path, tags, caplog):
    """A dataset tagged in BIOES, BILOU or IO (bare types, as Few-NERD) is the BIO dataset it encodes, logged;
    'words' / 'tags' columns are read as 'tokens' / 'ner_tags'."""
    bio = load_token_target(write_rows(tmp_path / "bio.jsonl", [{"tokens": t, "ner_tags": g} for t, g in SENTENCES]),
                            validation_size=0)["train"]  # fmt: skip
    rows = [{"words": t, "tags": g} for (t, _), g in zip(SENTENCES, tags)]
    with caplog.at_level(logging.WARNING):
        other = load_token_target(write_rows(tmp_path / "other.jsonl", rows), validation_size=0)["train"]
    assert other["tokens"] == bio["tokens"] and other["ner_tags"] == bio["ner_tags"]
    assert "read as BIO" in caplog.text


def test_io_runs_of_one_type_are_one_entity_and_mixed_schemes_are_refused(tmp_path):
    rows = [{"tokens": list("abcd"), "ner_tags": ["x", "x", "y", "x"]}]
    ds = load_token_target(write_rows(tmp_path / "io.jsonl", rows), validation_size=0)["train"]
    names = ds.features["ner_tags"].feature.names
    assert entities([names[t] for t in ds[0]["ner_tags"]]) == {("x", 0, 2), ("y", 2, 3), ("x", 3, 4)}
    bad = ((["B-x", "y", "O", "O"], "mix bare entity types"), (["B-x", "E-x", "U-y", "O"], "no one scheme"))
    for tags, fragment in bad:
        with pytest.raises(DataError, match=fragment):
            load_token_target(write_rows(tmp_path / "bad.jsonl", [{"tokens": list("abcd"), "ner_tags": tags}]),
                              validation_size=0)  # fmt: skip


def test_tag_ids_without_names_are_refused(tmp_path):
    with pytest.raises(DataError, match=r"row 0: the 'ner_tags' are ids \(\[0, 1\]\) without tag names.*ClassLabel"):
        load_token_target(write_rows(tmp_path / "ids.jsonl", [{"tokens": ["a", "b"], "ner_tags": [0, 1]}]),
                          validation_size=0)  # fmt: skip


@pytest.mark.parametrize(
    ("rows", "options", "fragment"),
    [
        ([{"tokens": ["a", "b"], "ner_tags": ["O"]}], {}, "row 0: 2 tokens but 1 tags"),
        ([{"tokens": ["a"], "ner_tags": ["B-x"]}, {"tokens": ["b"], "ner_tags": ["B-y"]}], {"types": ["x"]},
         "entity type(s) ['y'] that labels=['x'] does not list"),
        ([{"tokens": ["a"], "ner_tags": ["O"]}], {}, "tags no entity"),
        ([{"text": "ab", "entities": [{"start": 1, "end": 5, "label": "x"}]}], {}, "lies outside its text"),
        ([{"text": "a b c", "entities": [{"start": 0, "end": 3, "label": "x"}, {"start": 2, "end": 5, "label": "y"}]}],
         {}, "overlap"),
        ([{"sentence": "a"}], {}, "needs 'tokens' + 'ner_tags'"),
    ],
    ids=["length_mismatch", "unknown_type", "no_entity", "span_outside", "span_overlap", "wrong_columns"],
)  # fmt: skip
def test_bad_token_data_is_a_clear_error(tmp_path, rows, options, fragment):
    with pytest.raises(DataError) as err:
        load_token_target(write_rows(tmp_path / "train.jsonl", rows), validation_size=0, **options)
    assert fragment in str(err.value)


def test_sentence_loader_points_token_data_to_its_loader(tmp_path):
    rows = [{"tokens": t, "ner_tags": g} for t, g in SENTENCES]
    with pytest.raises(DataError, match="token-classification data.*load_token_target"):
        load_target(write_rows(tmp_path / "train.jsonl", rows), validation_size=0)


def test_sample_per_type_takes_at_least_n_sentences_per_type_rarest_first():
    train = load_token_target("bundled:crossner_politics")["train"]
    sample = sample_per_type(train, 4, seed=0)
    names = train.features["ner_tags"].feature.names
    counts = {
        t: sum(any(names[i] == f"B-{t}" for i in tags) for tags in sample["ner_tags"]) for t in type_names(train)
    }
    assert min(counts.values()) >= 4 and len(sample) < 4 * len(counts)  # sentences count for every type they hold
    assert (
        sample["tokens"] == sample_per_type(train, 4, seed=0)["tokens"] != sample_per_type(train, 4, seed=1)["tokens"]
    )
    with pytest.raises(DataError, match=r"more than some types have .*'person' has 13"):
        sample_per_type(train, 1000)


def test_entity_scores_follow_seqeval_semantics():
    assert entities(["B-a", "I-a", "O", "I-b", "I-b", "B-b"]) == {("a", 0, 2), ("b", 3, 5), ("b", 5, 6)}
    truth = [["B-per", "I-per", "O", "B-loc"], ["B-org", "O"]]
    predicted = [["B-per", "O", "O", "B-loc"], ["B-org", "O"]]  # the person's span is cut short: wrong
    scores = entity_scores(predicted, truth)
    assert scores["precision"] == pytest.approx(2 / 3) and scores["recall"] == pytest.approx(2 / 3)
    assert scores["f1_micro"] == pytest.approx(2 / 3)
    assert scores["per_type"]["per"]["f1"] == 0 and scores["per_type"]["loc"]["f1"] == 1
    assert scores["f1_macro"] == pytest.approx(2 / 3)
    metric = EntityF1()
    metric.add_batch(predictions=predicted[:1], references=truth[:1])
    metric.add_batch(predictions=predicted[1:], references=truth[1:])
    assert metric.compute() == scores  # the evaluate interface, offline


def test_character_spans_tokenise_words_and_punctuation():
    tokens, tags = spans_to_bio("Mr. Smith-Jones left U.S. soil.", [{"start": 4, "end": 15, "label": "person"}])
    assert tokens == ["Mr", ".", "Smith-Jones", "left", "U.S", ".", "soil", "."]
    assert tags == ["O", "O", "B-person", "O", "O", "O", "O", "O"]
    with pytest.raises(DataError, match="covers no token"):
        spans_to_bio("a  b", [{"start": 1, "end": 2, "label": "x"}])


def test_a_word_of_the_entity_type_before_it_continues_that_entity():
    import torch

    from hf_transfer.modeling import continue_runs
    from hf_transfer.token_classification import continue_word_runs, entities, tag_names

    names = tag_names(["loc", "per"])  # O, B-loc, I-loc, B-per, I-per
    tags = ["B-per", "B-per", "O", "B-loc", "B-per", "I-per", "B-per"]  # "Andy Caddick , Leeds Peter Such Smith"
    logits = np.full((len(tags), len(names)), -2.0)
    for i, tag in enumerate(tags):
        logits[i, names.index(tag)] = 3.0
        logits[i, names.index(tag) + (1 if tag.startswith("B-") else 0)] += 0.5 if tag.startswith("B-") else 0
    read = continue_word_runs(logits)
    assert [names[t] for t in read.argmax(1)] == ["B-per", "I-per", "O", "B-loc", "B-per", "I-per", "I-per"]
    assert entities([names[t] for t in read.argmax(1)]) == {("per", 0, 2), ("loc", 3, 4), ("per", 4, 7)}
    assert np.allclose(np.sort(read, 1), np.sort(logits, 1))  # each word's scores only permuted
    assert np.array_equal(continue_word_runs(read), read)  # idempotent
    rng = np.random.default_rng(0)
    batch = rng.normal(size=(3, 9, len(names))).astype(np.float32)
    torch_read = continue_runs(torch.from_numpy(batch)).numpy()
    assert np.allclose(torch_read, np.stack([continue_word_runs(s) for s in batch]))
