"""labelmap between entity tag sets on tiny models: type maps as tag maps, bad maps refused before any weights load,
entity-level pseudo-label selection, per-token distillation, and runs end to end (zero-shot, learned, resumed)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import ADJECTIVES, NOUNS, write_rows
from datasets import ClassLabel, Dataset, Features, List, Value
from transformers import AutoConfig, AutoModelForTokenClassification, BertConfig, BertTokenizerFast

from hf_transfer.config import DataArguments
from hf_transfer.errors import ConfigError
from hf_transfer.finetune import FinetuneConfig, run_finetune
from hf_transfer.labelmap import LabelMapConfig, run_labelmap
from hf_transfer.labelmap.predict import PROBS_COLUMN
from hf_transfer.labelmap.tagging import (
    SoftTagCollator,
    add_word_probs,
    expand_type_map,
    learn_tag_map,
    map_words,
    pseudo_label_sentences,
    sentence_confidence,
    source_tags,
    tag_label_map,
)
from hf_transfer.modeling import token_soft_target_loss
from hf_transfer.token_classification import load_token_target, tag_names, tag_scores

SOURCE_TAGS = tag_names(["adjective", "noun"])
TARGET_TAGS = tag_names(["film", "story", "tone"])
TYPE_MAP = {"noun": ["film", "story"], "adjective": "tone"}
KIND = {"movie": "film", "film": "film", "cast": "film", "plot": "story", "story": "story"}
QUICK = dict(max_steps=20, per_device_train_batch_size=8, disable_tqdm=True, logging_strategy="no", report_to="none")


def _sentences(target: bool) -> list[dict]:
    rows = []
    for noun in NOUNS:
        for adjectives in ADJECTIVES.values():
            for i, adjective in enumerate(adjectives):
                tokens = (["the"] if i % 2 else ["a", "very"]) + [adjective, noun]
                kinds = ("tone", KIND[noun]) if target else ("adjective", "noun")
                rows.append({"tokens": tokens, "ner_tags": ["O"] * (len(tokens) - 2) + [f"B-{k}" for k in kinds]})
    return rows


def _write(folder, rows) -> str:
    write_rows(folder / "train.jsonl", rows[::2] + rows[1::4])
    write_rows(folder / "validation.jsonl", rows[3::4])
    return str(folder)


@pytest.fixture(scope="module")
def token_source(tmp_path_factory, tiny_encoder) -> str:
    """A tiny tagger over adjective / noun, trained head-only from the tiny encoder."""
    root = tmp_path_factory.mktemp("token_source")
    data = _write(root / "data", _sentences(target=False))
    config = FinetuneConfig(output_dir=str(root / "model"), model_name_or_path=tiny_encoder, method="full",
                            seed=0, learning_rate=5e-3, **{**QUICK, "max_steps": 60})  # fmt: skip
    run_finetune(config, DataArguments(dataset=data))
    return str(root / "model")


@pytest.fixture
def target_tokens(tmp_path) -> str:
    return _write(tmp_path / "target", _sentences(target=True))


def _config(tmp_path, source, encoder, **options) -> LabelMapConfig:
    options = {"label_map": TYPE_MAP, "threshold": 0.0, **QUICK, **options}
    return LabelMapConfig(output_dir=str(tmp_path / "out"), source_model=source, model_name_or_path=encoder,
                          seed=0, **options)  # fmt: skip


def test_a_type_map_becomes_a_tag_map():
    tags = expand_type_map(TYPE_MAP, SOURCE_TAGS, TARGET_TAGS)
    assert tags == {"O": ["O"], "B-adjective": ["B-tone"], "I-adjective": ["I-tone"],
                    "B-noun": ["B-film", "B-story"], "I-noun": ["I-film", "I-story"]}  # fmt: skip
    partial = expand_type_map({"noun": "film"}, SOURCE_TAGS, TARGET_TAGS)
    assert partial["B-adjective"] == ["O"]  # a source type left out is not a target entity
    label_map = tag_label_map(TYPE_MAP, SOURCE_TAGS, TARGET_TAGS, method="explicit", allow_unreachable=False)
    word = np.zeros((1, len(SOURCE_TAGS)))
    word[0, SOURCE_TAGS.index("B-noun")] = 1.0
    mapped = label_map.predict_proba(word)[0]
    assert mapped[TARGET_TAGS.index("B-film")] == mapped[TARGET_TAGS.index("B-story")] == pytest.approx(0.5)


@pytest.mark.parametrize("scheme", ["BIOES", "IO"])
def test_a_bioes_or_io_source_tagger_maps_as_its_bio_reading(scheme):
    """S-x opens and E-x continues like B-x / I-x; an IO tagger's bare x opens, and a run of x words is one entity
    (continue_word_runs): the mapped words equal those of a BIO tagger saying the same."""
    from hf_transfer.labelmap.tagging import map_words

    other = ["O", "S-adjective", "B-adjective", "E-adjective", "S-noun", "B-noun", "E-noun"]
    if scheme == "IO":
        other = ["O", "adjective", "noun"]
    assert source_tags(BertConfig(architectures=["BertForTokenClassification"], id2label=dict(enumerate(other)),
                                  label2id={t: i for i, t in enumerate(other)})) == other  # fmt: skip
    bio_map = tag_label_map(TYPE_MAP, SOURCE_TAGS, TARGET_TAGS, method="explicit", allow_unreachable=False)
    other_map = tag_label_map(TYPE_MAP, other, TARGET_TAGS, method="explicit", allow_unreachable=False)
    # "very good film plot": adjective, adjective (one entity), noun, noun (one entity)
    bio_words = ["B-adjective", "I-adjective", "B-noun", "I-noun"]
    other_words = {"BIOES": ["B-adjective", "E-adjective", "B-noun", "E-noun"],
                   "IO": ["adjective", "adjective", "noun", "noun"]}[scheme]  # fmt: skip

    def pool(tags, words):
        probs = np.full((len(words), len(tags)), 0.01)
        probs[np.arange(len(words)), [tags.index(w) for w in words]] = 1.0
        return Dataset.from_dict({"tokens": [["very", "good", "film", "plot"]],
                                  PROBS_COLUMN: [(probs / probs.sum(1, keepdims=True)).tolist()]})  # fmt: skip

    expected = map_words(pool(SOURCE_TAGS, bio_words), bio_map)[0].argmax(1)
    assert [TARGET_TAGS[t] for t in expected] == ["B-tone", "I-tone", "B-film", "I-film"]
    assert (map_words(pool(other, other_words), other_map)[0].argmax(1) == expected).all()
    with pytest.raises(ConfigError, match="not entity tags of one scheme"):
        source_tags(BertConfig(architectures=["BertForTokenClassification"], id2label={0: "O", 1: "B-x", 2: "y"},
                               label2id={"O": 0, "B-x": 1, "y": 2}))  # fmt: skip


@pytest.mark.parametrize(
    ("type_map", "message"),
    [
        ({"verb": "tone"}, "source entity type(s) ['verb'] that the source tagger does not have"),
        ({"noun": "B-film"}, "target entity type(s) ['B-film'] that the target data does not have"),
        ({"noun": "film"}, "No source type maps to the target type(s) ['story', 'tone']"),
    ],
)
def test_bad_type_maps_are_refused(type_map, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]").replace("(", r"\(")
                       .replace(")", r"\)")):  # fmt: skip
        tag_label_map(type_map, SOURCE_TAGS, TARGET_TAGS, method="explicit", allow_unreachable=False)


def test_a_sentence_classifier_as_tagger_source_is_refused_before_weights_load(tmp_path, target_tokens, no_weights):
    folder = tmp_path / "sentence-model"
    BertConfig(architectures=["BertForSequenceClassification"], id2label={0: "negative", 1: "positive"},
               label2id={"negative": 0, "positive": 1}).save_pretrained(folder)  # fmt: skip
    with pytest.raises(ConfigError, match="not a token classifier"):
        source_tags(AutoConfig.from_pretrained(folder))
    config = _config(tmp_path, str(folder), "unused")
    with pytest.raises(ConfigError, match="not a token classifier"):
        run_labelmap(config, DataArguments(dataset=target_tokens))


def test_a_map_naming_a_missing_type_is_refused_before_weights_load(tmp_path, token_source, target_tokens, no_weights):
    config = _config(tmp_path, token_source, "unused", label_map={"noun": "film", "adjective": "mood"})
    with pytest.raises(ConfigError, match=r"target entity type\(s\) \['mood'\]"):
        run_labelmap(config, DataArguments(dataset=target_tokens))


def test_sentence_confidence_is_entity_level():
    names = tag_names(["a", "b"])  # O, B-a, I-a, B-b, I-b
    probs = np.array([[0.9, 0.05, 0.0, 0.05, 0.0],  # O, sure
                      [0.2, 0.4, 0.0, 0.4, 0.0],  # B-a by a hair over B-b: an entity for sure (0.8), type open
                      [0.3, 0.0, 0.6, 0.0, 0.1]])  # I-a: inside, 0.7  # fmt: skip
    tags, confidence = sentence_confidence(probs, names)
    assert tags == [0, 1, 2]
    assert confidence == pytest.approx(min(0.9, (0.8 + 0.7) / 2))


def _pool(probs_per_sentence) -> Dataset:
    features = Features({"tokens": List(Value("string")), "ner_tags": List(ClassLabel(names=TARGET_TAGS)),
                         PROBS_COLUMN: List(List(Value("float32"), length=len(TARGET_TAGS)))})  # fmt: skip
    rows = [{"tokens": [f"w{i}" for i in range(len(p))], "ner_tags": [0] * len(p), PROBS_COLUMN: p}
            for p in probs_per_sentence]  # fmt: skip
    return Dataset.from_list(rows, features=features)


def test_pseudo_labels_keep_sure_sentences_and_cap_per_type():
    identity = tag_label_map({"film": "film", "story": "story", "tone": "tone"}, TARGET_TAGS, TARGET_TAGS,
                             method="explicit", allow_unreachable=False)  # fmt: skip
    eye = np.eye(len(TARGET_TAGS))
    sure_film = [eye[1] * 0.95 + 0.05 / len(TARGET_TAGS), eye[0]]
    unsure = [eye[0] * 0.6 + eye[5] * 0.4, eye[0]]
    sure_tone = [eye[5] * 0.99 + 0.01 / len(TARGET_TAGS), eye[0]]
    pool = _pool([sure_film, unsure, sure_tone, sure_film])
    kept = pseudo_label_sentences(pool, identity, threshold=0.9, top_k=None)
    assert len(kept) == 3 and all(c >= 0.9 for c in kept["confidence"])
    assert kept["ner_tags"][0] == [1, 0] and kept["ner_tags"][1] == [5, 0]
    capped = pseudo_label_sentences(pool, identity, threshold=0.9, top_k=1)
    assert sorted(map(tuple, capped["ner_tags"])) == [(1, 0), (5, 0)]
    with pytest.raises(ConfigError, match="kept 0 of 4 sentences"):
        pseudo_label_sentences(pool, identity, threshold=1.0, top_k=None)


def test_learned_tag_map_recovers_the_type_map():
    rng = np.random.default_rng(0)
    rows = []
    for _ in range(200):
        true = rng.choice(["O", "B-noun", "I-noun", "B-adjective"], p=[0.7, 0.1, 0.1, 0.1])
        probs = np.full(len(SOURCE_TAGS), 0.02)
        probs[SOURCE_TAGS.index(true)] = 0.92
        target = {"O": "O", "B-noun": "B-film", "I-noun": "I-film", "B-adjective": "B-tone"}[true]
        rows.append((probs, TARGET_TAGS.index(target)))
    rows.append((np.eye(len(SOURCE_TAGS))[0], TARGET_TAGS.index("B-story")))  # one 'story' word, tagged O by source
    words = Dataset.from_dict({"ner_tags": [[t for _, t in rows]], PROBS_COLUMN: [[p.tolist() for p, _ in rows]]})
    label_map = learn_tag_map(words, SOURCE_TAGS, TARGET_TAGS)
    hard = label_map.as_dict()
    assert hard["O"] == "O" and hard["B-noun"] == "B-film" and hard["I-noun"] == "I-film"
    assert hard["B-adjective"] == "B-tone" and hard["I-adjective"] == "I-tone"  # no I-adjective word: by types
    with pytest.raises(ConfigError, match="no word of type"):
        learn_tag_map(Dataset.from_dict({"ner_tags": [[0]], PROBS_COLUMN: [[[1.0, 0, 0, 0, 0]]]}), SOURCE_TAGS,
                      TARGET_TAGS)  # fmt: skip


def test_token_distillation_loss_reads_only_scored_tokens():
    logits = torch.randn(2, 4, 3)
    labels = torch.tensor([[0, 1, -100, -100], [2, -100, 1, -100]])
    onehot = torch.zeros(2, 4, 3)
    for i, j in zip(*torch.nonzero(labels >= 0, as_tuple=True)):
        onehot[i, j, labels[i, j]] = 1.0
    ce = torch.nn.functional.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100)
    assert token_soft_target_loss(logits, onehot) == pytest.approx(ce.item(), abs=1e-5)
    mixed = token_soft_target_loss(logits, onehot, labels, weight=0.5, temperature=1.0)
    assert mixed == pytest.approx(ce.item(), abs=1e-5)


def test_soft_tag_collator_pads_soft_targets_with_zero_rows(tiny_encoder):
    tokenizer = BertTokenizerFast.from_pretrained(tiny_encoder)
    rows = [
        {"input_ids": [2, 5, 3], "attention_mask": [1, 1, 1], "labels": [-100, 1, -100],
         "soft_targets": [[0, 0], [0.3, 0.7], [0, 0]]},
        {"input_ids": [2, 3], "attention_mask": [1, 1], "labels": [-100, -100], "soft_targets": [[0, 0], [0, 0]]},
    ]  # fmt: skip
    batch = SoftTagCollator(tokenizer)(rows)
    assert batch["soft_targets"].shape == (2, 3, 2) and batch["labels"].tolist()[1] == [-100, -100, -100]
    assert batch["soft_targets"][0, 1].tolist() == pytest.approx([0.3, 0.7]) and batch["soft_targets"][1].sum() == 0


@pytest.mark.parametrize("init_from_source", [False, True], ids=["fresh-student", "mapped-head"])
def test_run_labelmap_on_tags_end_to_end(tmp_path, tiny_encoder, token_source, target_tokens, init_from_source):
    config = _config(tmp_path, token_source, tiny_encoder, init_from_source=init_from_source, method="full")
    result = run_labelmap(config, DataArguments(dataset=target_tokens, n_per_class=0))
    assert result.task == "token_classification" and result.map_method == "explicit"
    assert set(result.per_label) <= {"film", "story", "tone"} and result.rounds[0]["pseudo_labelled"] > 0
    assert result.labels == TARGET_TAGS and result.label_map == {"noun": ["film", "story"], "adjective": ["tone"]}
    # zero-shot through the map, recomputed from the source model's own word probabilities
    source = AutoModelForTokenClassification.from_pretrained(token_source)
    tokenizer = BertTokenizerFast.from_pretrained(token_source)
    label_map = tag_label_map(TYPE_MAP, SOURCE_TAGS, TARGET_TAGS, method="explicit", allow_unreachable=False)
    eval_ds = load_token_target(target_tokens)["validation"]
    probs = add_word_probs(eval_ds, source, tokenizer, desc="check")
    predicted = [p.argmax(1).tolist() for p in map_words(probs, label_map)]
    expected = tag_scores(predicted, eval_ds["ner_tags"], TARGET_TAGS)["f1_micro"]
    assert result.zero_shot_f1_micro == pytest.approx(expected)
    # the student: a tagger over the target tags that the Auto class loads
    student = AutoModelForTokenClassification.from_pretrained(tmp_path / "out")
    assert list(student.config.id2label.values()) == TARGET_TAGS
    saved = json.loads((tmp_path / "out" / "label_map.json").read_text())
    assert saved["hard_map"]["B-adjective"] == "B-tone"


def test_learned_tag_map_run_and_resume(tmp_path, tiny_encoder, token_source, target_tokens):
    data = DataArguments(dataset=target_tokens, n_per_class=2)
    config = _config(tmp_path, token_source, tiny_encoder, label_map=None, method="head")
    first = run_labelmap(config, data)
    assert first.map_method == "learned" and first.n_per_class == 2
    again = _config(tmp_path, token_source, tiny_encoder, label_map=None, method="head", resume_from_checkpoint="last")
    resumed = run_labelmap(again, data)
    assert resumed.f1_micro == pytest.approx(first.f1_micro) and resumed.zero_shot_f1_micro == first.zero_shot_f1_micro


def test_one_to_many_types_are_shared_out_by_what_the_entity_says():
    from hf_transfer.labelmap.tagging import EntityTypeResolver

    vectors = {"film": np.array([1.0, 0.0]), "story": np.array([0.0, 1.0]), "movie": np.array([0.8, 0.6]),
               "plot": np.array([0.1, 0.995])}  # fmt: skip

    def embed(texts):
        return np.stack([vectors[t] for t in texts])

    label_map = tag_label_map(TYPE_MAP, SOURCE_TAGS, TARGET_TAGS, method="explicit", allow_unreachable=False)
    resolver = EntityTypeResolver.for_map(label_map, embed, {}, scale=10.0)
    assert resolver.groups == {"noun": ["film", "story"]}  # adjective -> tone alone: nothing to share
    source = np.zeros((2, len(SOURCE_TAGS)))
    source[:, SOURCE_TAGS.index("B-noun")] = 1.0
    pool = Dataset.from_dict({"tokens": [["movie"], ["plot"]], PROBS_COLUMN: [s[None].tolist() for s in source]})
    even = map_words(pool, label_map)
    assert even[0][0, TARGET_TAGS.index("B-film")] == pytest.approx(0.5)
    shared = map_words(pool, label_map, resolver)
    film, story = TARGET_TAGS.index("B-film"), TARGET_TAGS.index("B-story")
    assert shared[0][0].argmax() == film and shared[1][0].argmax() == story
    assert shared[0][0, film] == pytest.approx(1 / (1 + np.exp(-10 * (0.8 - 0.6))))
    assert all(s.sum() == pytest.approx(1.0) for s in (shared[0][0], shared[1][0]))  # only the split moved


def test_one_to_many_option_is_checked():
    with pytest.raises(ConfigError, match="one_to_many='names'"):
        LabelMapConfig(output_dir=None, source_model="x", one_to_many="names")
