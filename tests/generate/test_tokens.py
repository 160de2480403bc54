"""generate for token classification: entity markup parsed to BIO, the token filters, and runs that finetune
reads as extra_train. The generator is replaced by a scripted one (a tiny random LM writes no markup)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from datasets import load_from_disk

import hf_transfer.generate.pipeline as pipeline_module
from hf_transfer.errors import ConfigError
from hf_transfer.generate import GenerateConfig, generate_dataset, generation_stats, run_generate
from hf_transfer.generate.filters import apply_filters
from hf_transfer.generate.generation import BatchOutput
from hf_transfer.generate.markup import (
    MarkupError,
    entity_consistency,
    markup_seed_rows,
    parse_markup,
    to_markup,
)
from hf_transfer.token_classification import entities, read_token_source, tag_names

TYPES = ["person", "politicalparty", "country"]


def test_parse_markup_reads_spans_types_and_punctuation():
    text = "[Angela Merkel](person) led the [CDU]( Political Party ), in [Germany](country)."
    tokens, tags = parse_markup(text, TYPES)
    assert tokens == ["Angela", "Merkel", "led", "the", "CDU", ",", "in", "Germany", "."]
    assert tags == ["B-person", "I-person", "O", "O", "B-politicalparty", "O", "O", "B-country", "O"]
    assert parse_markup("No entity at all.", TYPES) == (["No", "entity", "at", "all", "."], ["O"] * 5)
    assert parse_markup("[U.S.](country) [x](person)", TYPES)[0] == ["U.S", ".", "x"]


@pytest.mark.parametrize(
    "text, reason",
    [
        ("[Merkel](person met the press.", "unbalanced"),
        ("Merkel](person) spoke.", "unbalanced"),
        ("[Paris](city) is big.", "unknown entity type 'city'"),
        ("[ ](person) spoke.", "empty entity span"),
        ("[[Merkel]](person) spoke.", "unbalanced"),
    ],
)
def test_parse_markup_refuses_unreadable_markup(text, reason):
    with pytest.raises(MarkupError, match=reason):
        parse_markup(text, TYPES)


def test_real_sentences_round_trip_through_markup():
    """Every bundled politics train sentence, written as markup and read back, keeps its entities (types and
    words; the word split may cut a token like 'U.S.' in two) and its other words."""
    rows = read_token_source("bundled:crossner_politics")["train"]
    types = sorted({t[2:] for r in rows for t in r["ner_tags"] if t != "O"})
    checked = 0
    for row in rows:
        if any(c in w for w in row["tokens"] for c in "[]"):
            continue
        tokens, tags = parse_markup(to_markup(row["tokens"], row["ner_tags"]), types)
        assert "".join(tokens) == "".join(row["tokens"])

        def spans(toks, tgs):
            return sorted((kind, "".join(toks[a:b])) for kind, a, b in entities(tgs))

        assert spans(tokens, tags) == spans(row["tokens"], row["ner_tags"])
        checked += 1
    assert checked >= 190


def test_to_markup_spaces_as_text_and_seed_rows_list_their_types():
    tokens, tags = ["Merkel", "(", "CDU", ")", "won", "."], ["B-person", "O", "B-politicalparty", "O", "O", "O"]
    assert to_markup(tokens, tags) == "[Merkel](person) ([CDU](politicalparty)) won."
    rows = markup_seed_rows([{"tokens": tokens, "ner_tags": tags}, {"tokens": ["Hi"], "ner_tags": ["O"]}])
    assert rows == [{"text": "[Merkel](person) ([CDU](politicalparty)) won.", "label": ["person", "politicalparty"]}]


def test_entity_consistency_is_the_worst_entity_type_share_without_o():
    names = tag_names(TYPES)  # O, B-person, I-person, B-politicalparty, I-politicalparty, B-country, I-country
    tags = ["B-person", "I-person", "O", "B-country"]
    probs = np.zeros((4, len(names)))
    probs[0, [0, 1, 3]] = [0.5, 0.4, 0.1]  # person 0.4 of 0.5 entity mass
    probs[1, [2, 5]] = [0.6, 0.2]  # person 0.6 of 0.8
    probs[2, 0] = 1.0
    probs[3, [0, 5, 6, 1]] = [0.7, 0.1, 0.05, 0.15]  # country 0.15 of 0.3
    person = (0.4 + 0.6) / 2 / ((0.4 + 0.1 + 0.0) / 2 + (0.6 + 0.2) / 2)
    assert entity_consistency(probs, tags, TYPES) == pytest.approx(min(person, 0.5))
    assert entity_consistency(probs[:2], tags, TYPES) == 0.0  # the country word was cut off by truncation
    assert entity_consistency(probs, ["O"] * 4, TYPES) == 1.0  # nothing marked: nothing to disagree with


def rows_for(texts, asked):
    return [{"raw_text": t, "prompt": "Write one sentence.", "label": TYPES[a], "label_id": a, "index": i}
            for i, (t, a) in enumerate(zip(texts, asked))]  # fmt: skip


def tagger_agreeing_with(kind_of_word: dict):
    """A fake tagger: each word's type from ``kind_of_word`` (B-), O otherwise."""
    names = tag_names(TYPES)

    def score(sentences):
        out = []
        for words in sentences:
            p = np.full((len(words), len(names)), 0.01)
            for j, w in enumerate(words):
                p[j, names.index(f"B-{kind_of_word[w]}") if w in kind_of_word else 0] = 1.0
            out.append(p / p.sum(1, keepdims=True))
        return out

    return score


def test_token_filters_count_each_reason_and_parse_the_kept_rows():
    texts = [
        "[Merkel](person) met the [SPD](politicalparty) in Berlin.",  # kept
        "[Merkel](person met the press.",  # markup
        "The [SPD](politicalparty) won the vote.",  # entity: asked for a person
        "[Merkel](person) met the [SPD](politicalparty) in Berlin.",  # exact duplicate (after parsing)
        "[Macron](person) visited [Spain](country) today.",  # consistency: the tagger reads Spain as a person
        "[Biden](person) spoke.",  # length (3 words < 4)
    ]
    rows = rows_for(texts, [0, 0, 0, 0, 0, 0])
    scorer = tagger_agreeing_with({"Merkel": "person", "SPD": "politicalparty", "Macron": "person", "Spain": "person"})
    kept, stats = apply_filters(rows, min_words=4, max_words=80, near_dup_threshold=1.0, consistency_threshold=0.5,
                                contamination_ngram=8, scorer=scorer, markup_types=TYPES)  # fmt: skip
    assert stats["removed"] == {"cleaning": 0, "markup": 1, "entity": 1, "length": 1, "contamination": 0,
                                "exact_duplicate": 1, "near_duplicate": 0, "consistency": 1, "surplus": 0,
                                "balance": 0}  # fmt: skip
    (row,) = kept
    assert row["markup"] == texts[0] and row["text"] == "Merkel met the SPD in Berlin ."
    assert row["ner_tags"] == ["B-person", "O", "O", "B-politicalparty", "O", "O", "O"]
    assert row["consistency"] > 0.9
    _, plain = apply_filters(rows_for(["a b c"], [0]), min_words=1, max_words=9, near_dup_threshold=1.0,
                             consistency_threshold=0, contamination_ngram=0)  # fmt: skip
    assert "markup" not in plain["removed"]  # sentence runs keep their filter list


class ScriptedGenerator:
    """Stands in for ``generate_rows``: each prompt's reply from its asked type and its position in the batch,
    and counts the calls (resume checks)."""

    replies = {
        "person": ["[Olaf Scholz](person) spoke in [France](country) on Monday .", "[Joe Biden](person) said no ."],
        "politicalparty": ["The [Labour Party](politicalparty) lost seats .", "[SPD](politicalparty) voted [no(."],
        "country": ["Talks in [Spain](country) ended early today .", "[Chile](country) held a vote [x](city) ."],
    }

    def __init__(self):
        self.calls = 0

    def __call__(self, model, tokenizer, prompts, *, seed, **kwargs):
        self.calls += 1
        texts = []
        for j, prompt in enumerate(prompts):
            kind = next(t for t in TYPES if f"mentions a {t}" in prompt or f"at least one {t}" in prompt)
            texts.append(self.replies[kind][(seed + j) % 2])
        return BatchOutput(texts=texts, new_tokens=[12] * len(texts), seconds=0.01)


def make_config(out, **kwargs):
    base = dict(generator="unused", target_labels=TYPES, token_classification=True, n_per_label=4, shard_size=4,
                min_words=1, consistency_threshold=0, bf16=False, output_dir=str(out))  # fmt: skip
    return GenerateConfig(**{**base, **kwargs})


@pytest.fixture
def scripted(monkeypatch):
    script = ScriptedGenerator()
    monkeypatch.setattr(pipeline_module, "generate_rows", script)
    return script


def test_token_run_writes_tagged_rows_that_finetune_reads_as_extra_train(tmp_path, scripted):
    from hf_transfer.config import DataArguments
    from hf_transfer.data import load_data_args

    out = tmp_path / "gen"
    ds = generate_dataset(make_config(out), generator=(None, None))
    assert ds.column_names[:4] == ["tokens", "ner_tags", "text", "label"]
    assert ds.features["ner_tags"].feature.names == tag_names(TYPES) and ds.features["label"].names == TYPES
    stats = generation_stats(ds)
    assert stats["generated"] == 12 and stats["removed"]["markup"] >= 1 and stats["kept"] == len(ds) > 0
    for row in ds:
        assert "](" in row["text"] and TYPES[row["label"]] in {t[2:] for t in ds.features["ner_tags"].feature.int2str(
            row["ner_tags"]) if t != "O"}  # fmt: skip
    calls = scripted.calls
    again = generate_dataset(make_config(out), generator=(None, None))  # resumed: every shard is there
    assert scripted.calls == calls and again.to_list() == ds.to_list()
    train, _, tags = load_data_args(DataArguments(dataset="bundled:crossner_politics", labels=None, n_per_class=1,
                                                  extra_train=str(out / "dataset")), counts := {})  # fmt: skip
    assert counts["n_extra_train"] == len(ds)
    extra = train.select(range(len(train) - len(ds), len(train)))
    assert [[tags[i] for i in row] for row in extra["ner_tags"]] == [
        [ds.features["ner_tags"].feature.names[i] for i in row] for row in ds["ner_tags"]
    ]


def test_run_generate_on_token_target_takes_types_examples_and_eval_sentences(tmp_path, monkeypatch):
    from hf_transfer.config import DataArguments

    config = GenerateConfig(generator="unused", n_per_label=1, min_words=1, consistency_threshold=0,
                            output_dir=str(tmp_path / "gen"), bf16=False)  # fmt: skip
    seen = []

    def capture(model, tokenizer, prompts, **kwargs):
        seen.extend(prompts)
        return BatchOutput(texts=["[x](person) said ."] * len(prompts), new_tokens=[4] * len(prompts), seconds=0.1)

    monkeypatch.setattr(pipeline_module, "generate_rows", capture)
    monkeypatch.setattr(pipeline_module, "load_generator", lambda *a, **k: (None, None))
    monkeypatch.setattr(pipeline_module, "check_generator", lambda name: None)
    data_args = DataArguments(dataset="bundled:crossner_politics", n_per_class=1, eval_split="test")
    results = run_generate(config, data_args)
    assert results["token_classification"] and results["labels"] == config.target_labels
    assert "politicalparty" in results["labels"] and len(results["labels"]) == 9
    assert results["n_eval_texts_checked"] == 651 and 0 < results["n_seed_examples"] <= 9  # test sentences; 1 per type
    assert any("](politician)" in p for p in seen)  # real sentences shown in markup
    card = (tmp_path / "gen" / "dataset" / "README.md").read_text()
    assert "token-classification" in card and "named-entity-recognition" in card and "no entity of the type" in card
    assert json.loads((tmp_path / "gen" / "results.json").read_text())["n_rows"] == len(
        load_from_disk(str(tmp_path / "gen" / "dataset"))
    )


def test_token_run_bad_input_is_refused_before_the_generator_loads(tmp_path, monkeypatch):
    from hf_transfer.config import DataArguments

    def forbidden(*a, **k):
        raise AssertionError("must fail before loading")

    monkeypatch.setattr(pipeline_module, "load_generator", forbidden)
    with pytest.raises(ConfigError, match="drop multi_label"):
        make_config(tmp_path / "a", multi_label=True)
    with pytest.raises(ConfigError, match="label_pairs=2 is a multi-label option.*token-classification"):
        make_config(tmp_path / "b", label_pairs=2)
    config = GenerateConfig(generator="unused", token_classification=True, output_dir=str(tmp_path / "c"))
    with pytest.raises(ConfigError, match="is sentence-classification data"):
        run_generate(config, DataArguments(dataset="bundled:sst2", n_per_class=2))
    config = GenerateConfig(generator="unused", token_classification=False, output_dir=str(tmp_path / "d"))
    with pytest.raises(ConfigError, match="token_classification=False.*token-classification data"):
        run_generate(config, DataArguments(dataset="bundled:crossner_politics", n_per_class=1))


@pytest.fixture(scope="module")
def saved_tagger(tmp_path_factory, tiny_encoder):
    """A saved tagger over person, country and misc (a superset of some targets, in another order)."""
    from hf_transfer.classifier import prepare

    folder = tmp_path_factory.mktemp("tagger")
    tagger, tokenizer = prepare(tiny_encoder, tag_names(["misc", "country", "person"]), task="token_classification")
    tagger.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def test_a_consistency_tagger_without_a_target_type_is_refused_from_its_config(tmp_path, saved_tagger, monkeypatch):
    def forbidden(*a, **k):
        raise AssertionError("must fail before loading")

    monkeypatch.setattr(pipeline_module, "check_generator", lambda name: None)
    monkeypatch.setattr(pipeline_module, "load_generator", forbidden)
    config = make_config(tmp_path / "gen", consistency_threshold=None, consistency_model=saved_tagger)
    with pytest.raises(ConfigError, match=r"tagger without the entity type\(s\) \['politicalparty'\]"):
        generate_dataset(config)


def test_tagger_scorers_return_target_tag_columns(saved_tagger, tiny_encoder):
    """A saved tagger's columns are picked and ordered by tag name; an encoder gives the zero-shot type-description
    tagger. Either way one (words, tags) row per word, in tag_names(types) order."""
    import torch
    from transformers import AutoModelForTokenClassification

    from hf_transfer.generate.filters import default_tagger_scorer
    from hf_transfer.inference import predict_word_proba
    from hf_transfer.token_classification import word_tokenizer

    sentences = [["good", "movie"], ["bad", "plot", "very", "bad"]]
    types = ["person", "country"]
    probs = default_tagger_scorer(types, None, saved_tagger)(sentences)
    with torch.no_grad():
        model = AutoModelForTokenClassification.from_pretrained(saved_tagger).eval()
        full = predict_word_proba(model, word_tokenizer(saved_tagger), sentences)
    saved = [model.config.id2label[i] for i in range(len(model.config.id2label))]
    for p, f in zip(probs, full):
        assert p.shape == (f.shape[0], 5)
        np.testing.assert_allclose(p, f[:, [saved.index(name) for name in tag_names(types)]], rtol=1e-5)
    zero_shot = default_tagger_scorer(types, {"person": "a human being"}, tiny_encoder)(sentences)
    assert [z.shape for z in zero_shot] == [(2, 5), (4, 5)]
    assert all(np.allclose(z.sum(1), 1.0, atol=1e-5) for z in zero_shot)


def test_task_flag_without_target_data_makes_a_token_run(tmp_path, scripted, monkeypatch):
    from hf_transfer.config import DataArguments

    monkeypatch.setattr(pipeline_module, "check_generator", lambda name: None)
    monkeypatch.setattr(pipeline_module, "load_generator", lambda *a, **k: (None, None))
    config = GenerateConfig(generator="unused", n_per_label=2, min_words=1, consistency_threshold=0, bf16=False,
                            output_dir=str(tmp_path / "gen"))  # fmt: skip
    results = run_generate(config, DataArguments(dataset="none", labels=TYPES, task="token_classification"))
    assert results["token_classification"] and results["labels"] == TYPES and results["n_rows"] > 0
    ds = load_from_disk(str(tmp_path / "gen" / "dataset"))
    assert ds.features["ner_tags"].feature.names == tag_names(TYPES)


def test_shards_keep_texts_with_unicode_line_separators(tmp_path):
    """A generated text may hold U+2028, U+0085 or U+001C, which json.dumps(ensure_ascii=False) leaves unescaped and
    str.splitlines() breaks at (a SmolLM2 run on politics prompts wrote one)."""
    from hf_transfer.generate.shards import ShardStore

    store = ShardStore(str(tmp_path))
    store.start({"run": 1})
    rows = [{"raw_text": "a\u2028b"}, {"raw_text": "c\x85d\x1ce\u2029"}, {"raw_text": "ü\r"}]
    store.write(0, rows)
    assert store.read(1) == rows
