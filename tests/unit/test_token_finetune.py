"""Token classification (NER) through the finetune strategy, on a tiny random BERT whose vocabulary splits some
names into sub-words: run_finetune per method (full, head on cached word features, LoRA), the saved folder in
plain transformers (Auto class, pipeline, trust_remote_code without hf_transfer), sub-word alignment and
truncation, the cached features, the description head and its calibrated biases, the early data/option checks
and the CLI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import write_rows, write_sentence_transformers_files
from datasets import ClassLabel, Dataset, Features, List, Value
from transformers import AutoModelForTokenClassification, AutoTokenizer, pipeline

import hf_transfer
from hf_transfer.cli import main
from hf_transfer.config import DataArguments
from hf_transfer.errors import ConfigError, DataError
from hf_transfer.finetune import FinetuneConfig, load_data_args, prepare, run_finetune
from hf_transfer.finetune.features import collate_token_features, embed_token_dataset
from hf_transfer.inference import predict_word_proba, run_batched_words
from hf_transfer.modeling import TransferForTokenClassification
from hf_transfer.multi_label import task_of
from hf_transfer.token_classification import (
    IGNORE_INDEX,
    TOKEN_CLASSIFICATION,
    aligned_labels,
    tag_names,
    tag_scores,
    tokenize_tokens,
    type_rates,
    word_predictions,
    word_tokenizer,
)

pytestmark = pytest.mark.usefixtures("single_thread")

TYPES = ["location", "org", "person"]
TAGS = tag_names(TYPES)  # O, B-location, I-location, B-org, I-org, B-person, I-person
MAX_LENGTH = 16
# "Johnson" -> john ##son, "Newcastle" -> new ##castle: words of two sub-tokens
NER_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + sorted(
    "the a and in met visited works for today nothing happened with said at person location org "
    "alice bob carol smith john ##son paris berlin new ##castle acme un".split()
)
PERSONS = [["Alice"], ["Bob"], ["Carol", "Smith"], ["Johnson"]]
LOCATIONS = [["Paris"], ["Berlin"], ["Newcastle"]]
ORGS = [["Acme"], ["UN"]]
# 14 words of 18 fit in MAX_LENGTH (with [CLS] and [SEP]): its two entities are cut off
LONG = ["nothing", "happened", "today"] * 5 + ["Alice", "visited", "Paris"]


def entity(words, kind):
    return [(w, ("B-" if i == 0 else "I-") + kind) for i, w in enumerate(words)]


def sentence(i: int, shift: int = 0) -> dict:
    """Template ``i % 4``: person + location, person + location, org + location, no entity."""
    p, loc, org = PERSONS[(i + shift) % 4], LOCATIONS[(i + shift) % 3], ORGS[(i // 4) % 2]
    kind = i % 4
    if kind == 0:
        words = entity(p, "person") + [("visited", "O")] + entity(loc, "location")
    elif kind == 1:
        words = entity(p, "person") + [("visited", "O")] + entity(loc, "location") + [("today", "O")]
    elif kind == 2:
        words = [("the", "O")] + entity(org, "org") + [("met", "O"), ("in", "O")] + entity(loc, "location")
    else:
        words = [("nothing", "O"), ("happened", "O"), ("today", "O")]
    return {"tokens": [w for w, _ in words], "ner_tags": [t for _, t in words]}


def ner_rows() -> dict[str, list[dict]]:
    """16 train sentences (person in 8, location in 12, org in 4, none in 4); 8 validation sentences plus LONG."""
    validation = [sentence(i, shift=1) for i in range(8)]
    validation.append({"tokens": LONG, "ner_tags": ["O"] * 15 + ["B-person", "O", "B-location"]})
    return {"train": [sentence(i) for i in range(16)], "validation": validation}


def build_ner_encoder(folder: Path, seed: int = 0) -> str:
    """A random 2-layer, 32-wide BERT with a WordPiece vocabulary that knows every word of the NER data."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(NER_VOCAB) + "\n")
    tokenizer = BertTokenizerFast(vocab=str(folder / "vocab.txt"), do_lower_case=True)
    words = [w for rows in ner_rows().values() for row in rows for w in row["tokens"]]
    assert tokenizer.unk_token_id not in tokenizer(words, add_special_tokens=False)["input_ids"][0]
    tokenizer.model_max_length = 64
    tokenizer.save_pretrained(folder)
    config = BertConfig(vocab_size=len(NER_VOCAB), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64)  # fmt: skip
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        BertModel(config).eval().save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def ner_encoder(tmp_path_factory) -> str:
    return build_ner_encoder(tmp_path_factory.mktemp("ner_bert") / "model")


@pytest.fixture(scope="module")
def ner_st_encoder(tmp_path_factory, ner_encoder) -> str:
    """The same weights declaring CLS pooling + Normalize (sentence-transformers): token states L2-normalised."""
    folder = tmp_path_factory.mktemp("ner_st") / "model"
    shutil.copytree(ner_encoder, folder)
    write_sentence_transformers_files(folder, mode="cls", normalize=True)
    return str(folder)


@pytest.fixture(scope="module")
def ner_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("ner_data")
    for split, rows in ner_rows().items():
        write_rows(folder / f"{split}.jsonl", rows)
    return folder


def finetune_config(out, model, **overrides) -> FinetuneConfig:
    values = dict(output_dir=str(out), model_name_or_path=model, method="full", max_steps=8,
                  per_device_train_batch_size=8, per_device_eval_batch_size=4, learning_rate=5e-3,
                  max_length=MAX_LENGTH, disable_tqdm=True, use_cpu=True, logging_strategy="no", seed=0)  # fmt: skip
    values.update(overrides)
    return FinetuneConfig(**values)


def eval_split(ner_dir) -> Dataset:
    return load_data_args(DataArguments(dataset=str(ner_dir)))[1]


def saved_scores(folder, ds: Dataset) -> tuple[dict, list[np.ndarray]]:
    """The entity scores of a saved folder's own word predictions on ``ds`` (cut-off words predicted O)."""
    model = AutoModelForTokenClassification.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    proba = predict_word_proba(model, tokenizer, ds["tokens"], max_length=MAX_LENGTH)
    truth = ds["ner_tags"]
    predicted = [p.argmax(-1).tolist() + [0] * (len(t) - len(p)) for p, t in zip(proba, truth)]
    return tag_scores(predicted, truth, TAGS), proba


@pytest.fixture(scope="module")
def runs(tmp_path_factory, ner_encoder, ner_dir) -> dict[str, tuple[Path, dict]]:
    """One run_finetune per method on all 16 train sentences: ``{method: (folder, results)}``."""
    root = tmp_path_factory.mktemp("ner_runs")
    out = {}
    for method in ("full", "head", "lora"):
        extra = {"feature_cache_dir": str(root / "features")} if method == "head" else {}
        results = run_finetune(finetune_config(root / method, ner_encoder, method=method, **extra),
                               DataArguments(dataset=str(ner_dir)))  # fmt: skip
        out[method] = (root / method, results)
    return out


# --------------------------------------------------------------------------------------------------------------
# 1. run_finetune per method: token scores, a folder that reloads, scores its own predictions reproduce
# --------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["full", "head", "lora"])
def test_run_finetune_tags_and_reports_entity_scores(runs, ner_dir, method):
    folder, results = runs[method]
    assert results["task"] == TOKEN_CLASSIFICATION and results["method"] == method
    assert results["labels"] == TAGS
    assert results["n_train"] == 16 and results["n_eval"] == 9 and results["train_steps"] == 8
    for key in ("f1_micro", "f1_macro", "precision", "recall", "accuracy"):
        assert 0.0 <= results[key] <= 1.0, key
    assert set(results["per_label"]) <= set(TYPES) and set(results["per_label"])
    assert all(set(s) == {"precision", "recall", "f1"} for s in results["per_label"].values())
    assert json.loads((folder / "results.json").read_text()) == results

    reloaded = AutoModelForTokenClassification.from_pretrained(folder)
    assert type(reloaded) is TransferForTokenClassification
    assert reloaded.config.id2label == dict(enumerate(TAGS))
    assert reloaded.config.subword_labels == "first"
    assert not (folder / "adapter_config.json").exists()  # LoRA merged into a plain tagger

    ds = eval_split(ner_dir)
    scores, proba = saved_scores(folder, ds)
    assert len(proba[-1]) == MAX_LENGTH - 2 < len(LONG)  # the long sentence really was cut
    for key in ("f1_micro", "f1_macro", "precision", "recall", "accuracy"):
        assert results[key] == pytest.approx(scores[key]), key
    per_type = {t: {k: round(v, 4) for k, v in s.items()} for t, s in scores["per_type"].items()}
    assert results["per_label"] == per_type


def test_head_run_caches_word_features_and_trains_only_the_head(runs, ner_encoder, tmp_path):
    folder, _ = runs["head"]
    assert len(list((folder.parent / "features").glob("features-*.arrow"))) == 2  # train and eval
    start = prepare(ner_encoder, TAGS, task=TOKEN_CLASSIFICATION)[0].state_dict()
    trained = AutoModelForTokenClassification.from_pretrained(folder).state_dict()
    assert set(trained) == set(start)
    assert all(torch.equal(trained[k], start[k]) for k in start if k.startswith("encoder."))
    assert not torch.equal(trained["classifier.weight"], start["classifier.weight"])


# --------------------------------------------------------------------------------------------------------------
# 2. The saved folder in plain transformers: pipeline, and trust_remote_code without hf_transfer
# --------------------------------------------------------------------------------------------------------------

PIPELINE_TEXTS = ["Alice visited Paris today", "the UN met in Newcastle", "Carol Smith visited Berlin"]


@pytest.mark.parametrize("method", ["full", "lora"])
def test_saved_tagger_runs_in_the_token_classification_pipeline(runs, method):
    folder, _ = runs[method]
    tagger = pipeline("token-classification", model=str(folder), aggregation_strategy="simple")
    assert type(tagger.model) is TransferForTokenClassification
    groups = [g for text in tagger(PIPELINE_TEXTS) for g in text]
    assert groups, "the trained tagger finds no entity at all"
    assert all(g["entity_group"] in TYPES for g in groups), groups


WITHOUT_HF_TRANSFER = """
import sys
sys.modules["hf_transfer"] = None
try:
    import hf_transfer
except ImportError:
    pass
else:
    raise SystemExit("hf_transfer is importable")
import json
import torch
from transformers import AutoModelForTokenClassification, AutoTokenizer, pipeline

torch.set_num_threads(1)
folder, texts = sys.argv[1], json.loads(sys.argv[2])
model = AutoModelForTokenClassification.from_pretrained(folder, trust_remote_code=True).eval()
tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=True)
with torch.no_grad():
    logits = model(**tokenizer(texts, padding=True, return_tensors="pt")).logits
tagger = pipeline("token-classification", model=folder, trust_remote_code=True, aggregation_strategy="simple")
groups = [[(g["entity_group"], g["start"], g["end"]) for g in found] for found in tagger(texts)]
print("RESULTS=" + json.dumps({"class": type(model).__module__ + "." + type(model).__name__,
                               "logits": logits.tolist(), "groups": groups}))
"""


def test_saved_tagger_loads_without_hf_transfer(runs, tmp_path):
    folder, _ = runs["full"]
    config = json.loads((folder / "config.json").read_text())
    assert config["auto_map"]["AutoModelForTokenClassification"] == "modeling.TransferForTokenClassification"
    assert (folder / "modeling.py").read_bytes() == Path(hf_transfer.modeling.__file__).read_bytes()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "modules"), "OMP_NUM_THREADS": "1"}
    run = subprocess.run(
        [sys.executable, "-c", WITHOUT_HF_TRANSFER, str(folder), json.dumps(PIPELINE_TEXTS)],
        capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    got = json.loads(run.stdout.split("RESULTS=", 1)[1])
    assert not got["class"].startswith("hf_transfer") and got["class"].endswith(".TransferForTokenClassification")
    model = AutoModelForTokenClassification.from_pretrained(folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    with torch.no_grad():
        logits = model(**tokenizer(PIPELINE_TEXTS, padding=True, return_tensors="pt")).logits
    assert torch.allclose(torch.tensor(got["logits"]), logits, atol=1e-5)
    tagger = pipeline("token-classification", model=model, tokenizer=tokenizer, aggregation_strategy="simple")
    assert got["groups"] == [[[g["entity_group"], g["start"], g["end"]] for g in found]
                             for found in tagger(PIPELINE_TEXTS)]  # fmt: skip


def test_word_pieces_predict_their_first_pieces_tag_and_old_checkpoints_load_without_them(tmp_path, ner_encoder):
    """At inference a ``##`` piece takes its word's first-piece logits (what ``pipeline(..., "simple")`` groups by),
    in training it keeps its own; a checkpoint saved before the ``word_pieces`` buffer loads with none marked."""
    from safetensors.torch import load_file, save_file

    model, tokenizer = prepare(ner_encoder, TAGS, task="token_classification")
    pieces = {tokenizer.convert_ids_to_tokens(i) for i in torch.nonzero(model.word_pieces).flatten().tolist()}
    assert pieces == {"##son", "##castle"}
    batch = tokenizer(["john johnson met alice in newcastle", "bob"], padding=True, return_tensors="pt")
    model.eval()
    with torch.no_grad():
        logits = model(**batch).logits
        model.config.continue_runs = False
        carried = model(**batch).logits
        model.train()
        raw = model(**batch).logits
    tokens = tokenizer.convert_ids_to_tokens(batch["input_ids"][0])
    for position, token in enumerate(tokens):
        if token.startswith("##"):
            assert torch.equal(carried[0, position], carried[0, position - 1]), token
            assert not torch.equal(raw[0, position], raw[0, position - 1]), token
    assert logits.shape == raw.shape
    model.config.continue_runs = True
    model.save_pretrained(tmp_path / "old")
    weights = load_file(tmp_path / "old" / "model.safetensors")
    save_file({k: v for k, v in weights.items() if k != "word_pieces"}, tmp_path / "old" / "model.safetensors",
              metadata={"format": "pt"})  # fmt: skip
    old = AutoModelForTokenClassification.from_pretrained(tmp_path / "old")
    assert old.word_pieces.dtype == torch.bool and not old.word_pieces.any()


# --------------------------------------------------------------------------------------------------------------
# 3. Sub-word alignment, truncation
# --------------------------------------------------------------------------------------------------------------


def test_aligned_labels_first_and_all():
    # [CLS] carol | smith | john ##son | visited | new ##castle [SEP]
    word_ids = [None, 0, 1, 2, 2, 3, 4, 4, None]
    tags = [TAGS.index(t) for t in ("B-person", "I-person", "B-person", "O", "B-location")]
    b_p, i_p, b_l, i_l, o, ign = 5, 6, 1, 2, 0, IGNORE_INDEX
    assert aligned_labels(word_ids, tags, TAGS, "first") == [ign, b_p, i_p, b_p, ign, o, b_l, ign, ign]
    assert aligned_labels(word_ids, tags, TAGS, "all") == [ign, b_p, i_p, b_p, i_p, o, b_l, i_l, ign]
    # an I- word keeps I- on its continuation sub-tokens
    assert aligned_labels([None, 0, 0, None], [i_p], TAGS, "all") == [ign, i_p, i_p, ign]


def _token_dataset(rows) -> Dataset:
    features = Features({"tokens": List(Value("string")), "ner_tags": List(ClassLabel(names=TAGS))})
    tags = [[TAGS.index(t) for t in r["ner_tags"]] for r in rows]
    return Dataset.from_dict({"tokens": [r["tokens"] for r in rows], "ner_tags": tags}, features=features)


@pytest.mark.parametrize("subword_labels", ["first", "all"])
def test_tokenize_tokens_aligns_labels_and_truncates(ner_encoder, subword_labels):
    tokenizer = word_tokenizer(ner_encoder)
    rows = [{"tokens": ["Johnson", "visited", "Newcastle"], "ner_tags": ["B-person", "O", "B-location"]},
            {"tokens": LONG, "ner_tags": ["O"] * 15 + ["B-person", "O", "B-location"]}]  # fmt: skip
    encoded = tokenize_tokens(_token_dataset(rows), tokenizer, MAX_LENGTH, subword_labels)
    assert set(encoded.column_names) >= {"input_ids", "attention_mask", "labels", "ner_tags"}
    assert "tokens" not in encoded.column_names
    first = encoded[0]
    assert tokenizer.convert_ids_to_tokens(first["input_ids"]) == ["[CLS]", "john", "##son", "visited", "new",
                                                                    "##castle", "[SEP]"]  # fmt: skip
    continuation = (6, 2) if subword_labels == "all" else (IGNORE_INDEX, IGNORE_INDEX)
    assert first["labels"] == [IGNORE_INDEX, 5, continuation[0], 0, 1, continuation[1], IGNORE_INDEX]
    assert first["ner_tags"] == [5, 0, 1]
    long = encoded[1]
    assert len(long["input_ids"]) == len(long["labels"]) == MAX_LENGTH
    assert sum(label != IGNORE_INDEX for label in long["labels"]) == MAX_LENGTH - 2
    assert len(long["ner_tags"]) == len(LONG)  # every word stays for the scores


def test_a_word_without_sub_tokens_keeps_its_place(ner_encoder):
    """A soft hyphen or zero-width space tokenises to nothing; the words after it must keep their own tags and
    predictions, in the live path, the cached features and the saved model's word predictions."""
    tokenizer = word_tokenizer(ner_encoder)
    row = {"tokens": ["Alice", "\xad", "visited", "\u200b", "Paris"],
           "ner_tags": ["B-person", "O", "O", "O", "B-location"]}  # fmt: skip
    ds = _token_dataset([row])
    labels = tokenize_tokens(ds, tokenizer, MAX_LENGTH)[0]["labels"]
    assert [label for label in labels if label != IGNORE_INDEX] == ds[0]["ner_tags"]
    model, _ = prepare(ner_encoder, TAGS, task=TOKEN_CLASSIFICATION, method="head")
    assert embed_token_dataset(ds, model, tokenizer, max_length=MAX_LENGTH)[0]["labels"] == ds[0]["ner_tags"]
    proba = predict_word_proba(model, tokenizer, [row["tokens"]], max_length=MAX_LENGTH)[0]
    assert proba.shape == (5, len(TAGS))  # one row per word, the empty ones too


def test_scores_count_cut_off_words_as_outside():
    truth = [[5, 0, 1], [0] * 15 + [5, 0, 1]]  # the second sentence's entities lie past the cut
    label_ids = np.full((2, 16), IGNORE_INDEX)
    label_ids[0, 1:4] = truth[0]
    label_ids[1, 1:15] = truth[1][:14]
    logits = np.zeros((2, 16, len(TAGS)))
    for row in range(2):  # perfect predictions wherever a word was kept
        for position in range(16):
            if label_ids[row, position] != IGNORE_INDEX:
                logits[row, position, label_ids[row, position]] = 1.0
    predicted = word_predictions(logits, label_ids, [len(t) for t in truth])
    assert predicted == [[5, 0, 1], [0] * 18]
    scores = tag_scores(predicted, truth, TAGS)
    assert (scores["precision"], scores["recall"]) == (1.0, 0.5)  # 2 of 4 entities, never predicted
    assert scores["accuracy"] == pytest.approx(19 / 21)


# --------------------------------------------------------------------------------------------------------------
# 4. Cached word features equal the live encoder's; cached and live head-only training agree
# --------------------------------------------------------------------------------------------------------------


def test_cached_word_features_are_the_live_token_states(ner_st_encoder):
    model, tokenizer = prepare(ner_st_encoder, TAGS, task=TOKEN_CLASSIFICATION, method="head")
    assert model.config.normalize
    rows = [sentence(i) for i in range(6)] + [{"tokens": LONG, "ner_tags": ["O"] * 15 + ["B-person", "O",
                                                                                          "B-location"]}]  # fmt: skip
    ds = _token_dataset(rows)
    cached = embed_token_dataset(ds, model, tokenizer, max_length=MAX_LENGTH, batch_size=3)
    assert set(cached.column_names) == {"token_embeddings", "labels", "ner_tags"}
    for row, features in zip(rows, cached):
        batch = tokenizer([row["tokens"]], is_split_into_words=True, truncation=True, max_length=MAX_LENGTH,
                          return_tensors="pt")  # fmt: skip
        word_ids = batch.word_ids(0)
        firsts = [p for p, w in enumerate(word_ids) if w is not None and w != (word_ids[p - 1] if p else None)]
        with torch.no_grad():
            states = model.token_states(**batch)[0, firsts]
        assert torch.allclose(torch.tensor(features["token_embeddings"]), states, atol=1e-5)
        assert torch.allclose(states.norm(dim=-1), torch.ones(len(firsts)), atol=1e-5)
        kept = [TAGS.index(t) for t in row["ner_tags"]][: len(firsts)]
        assert features["labels"] == kept and len(features["ner_tags"]) == len(row["tokens"])
    batch = collate_token_features([{k: r[k] for k in ("token_embeddings", "labels")} for r in cached])
    assert batch["token_embeddings"].shape == (len(rows), MAX_LENGTH - 2, 32)
    assert (batch["labels"][0, len(rows[0]["tokens"]) :] == IGNORE_INDEX).all()


@pytest.mark.parametrize("subword_labels", ["first", "all"])
def test_head_only_training_is_the_same_with_and_without_the_cache(tmp_path, ner_encoder, ner_dir, subword_labels):
    """cache_features changes speed only: the frozen encoder's dropout stays off in live training too, and with
    subword_labels='all' (continuation sub-tokens trained as well) both train on every sub-token."""
    data = DataArguments(dataset=str(ner_dir))
    results, heads = {}, {}
    for cache in (True, False):
        out = tmp_path / str(cache)
        config = finetune_config(out, ner_encoder, method="head", cache_features=cache, subword_labels=subword_labels)
        results[cache] = run_finetune(config, data)
        heads[cache] = AutoModelForTokenClassification.from_pretrained(out).classifier.weight.detach()
    assert torch.allclose(heads[True], heads[False], atol=1e-4), (heads[True] - heads[False]).abs().max()
    for key in ("f1_micro", "precision", "recall", "accuracy"):
        assert results[True][key] == pytest.approx(results[False][key], abs=1e-6), key


# --------------------------------------------------------------------------------------------------------------
# 5. The description head before training, and its calibrated type biases
# --------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["full", "head"])
def test_zero_shot_tagger_gives_a_valid_result(tmp_path, ner_encoder, ner_dir, method):
    results = run_finetune(finetune_config(tmp_path / "run", ner_encoder, method=method),
                           DataArguments(dataset=str(ner_dir), n_per_class=0))  # fmt: skip
    assert results["task"] == TOKEN_CLASSIFICATION and results["n_train"] == 0 and results["train_steps"] == 0
    assert all(0.0 <= results[k] <= 1.0 for k in ("f1_micro", "precision", "recall", "accuracy"))
    model = AutoModelForTokenClassification.from_pretrained(tmp_path / "run")
    weight = model.classifier.weight.detach()
    assert torch.equal(weight[0], torch.zeros_like(weight[0]))  # O: no direction of its own
    for k in range(len(TYPES)):
        assert torch.equal(weight[1 + 2 * k], weight[2 + 2 * k])  # B- and I- rows of a type share the weight
        assert weight[1 + 2 * k].norm() > 0
    scores, _ = saved_scores(tmp_path / "run", eval_split(ner_dir))
    assert results["f1_micro"] == pytest.approx(scores["f1_micro"])
    assert results["accuracy"] == pytest.approx(scores["accuracy"])


def test_calibrated_biases_give_each_type_its_rate_of_words(ner_encoder):
    sentences = [sentence(i, shift)["tokens"] for shift in range(3) for i in range(16)]
    rates = [0.3, 0.1, 0.2]
    model, tokenizer = prepare(ner_encoder, TAGS, task=TOKEN_CLASSIFICATION, calibrate=(sentences, rates))
    bias = model.classifier.bias.detach()
    assert bias[0] == 0
    words = run_batched_words(model, tokenizer, sentences, lambda m, b: m(**b).logits.float())
    logits = np.concatenate(words)
    n = len(logits)
    assert n == sum(len(s) for s in sentences)
    for k, rate in enumerate(rates):
        beats_o = (logits[:, 2 + 2 * k] > logits[:, 0]).mean()
        assert abs(beats_o - rate) <= 2 / n + 1e-9, (TYPES[k], beats_o, rate)
        assert (logits[:, 2 + 2 * k] > logits[:, 1 + 2 * k]).all()  # I- leans over B- by a hair
    non_o = (logits.argmax(-1) != 0).mean()
    assert max(rates) - 2 / n <= non_o <= sum(rates) + 2 / n


def test_type_rates_are_each_types_share_of_the_words():
    ds = _token_dataset([sentence(i) for i in range(4)])
    words = sum(len(sentence(i)["tokens"]) for i in range(4))
    # person: Alice (1) + Bob (1); location: Paris, Berlin, Newcastle (3); org: Acme (1)
    assert type_rates(ds) == pytest.approx([3 / words, 1 / words, 2 / words])
    assert type_rates(ds.select([])) == pytest.approx([0.05] * 3)  # the zero-shot prior, split evenly


def test_label_descriptions_by_entity_type(ner_encoder, ner_dir, tmp_path, no_weights):
    with pytest.raises(ConfigError, match=r"\['animal'\].*location.*org.*person"):
        run_finetune(finetune_config(tmp_path / "run", ner_encoder, label_descriptions={"animal": "a dog"}),
                     DataArguments(dataset=str(ner_dir)))  # fmt: skip
    assert not (tmp_path / "run").exists()


def test_label_descriptions_set_their_types_rows(ner_encoder):
    plain, _ = prepare(ner_encoder, TAGS, task=TOKEN_CLASSIFICATION)
    described, _ = prepare(ner_encoder, TAGS, task=TOKEN_CLASSIFICATION, label_descriptions={"person": "alice bob"})
    before, after = plain.classifier.weight.detach(), described.classifier.weight.detach()
    assert torch.equal(before[:5], after[:5])  # O, location, org as before
    assert not torch.allclose(before[5], after[5]) and torch.equal(after[5], after[6])


# --------------------------------------------------------------------------------------------------------------
# 6. Task detection and the checks before any model loads
# --------------------------------------------------------------------------------------------------------------


def test_auto_task_detects_token_data(ner_dir):
    train, eval_ds, tags = load_data_args(DataArguments(dataset=str(ner_dir), task="auto"))
    assert tags == TAGS and task_of(train) == TOKEN_CLASSIFICATION
    assert len(train) == 16 and len(eval_ds) == 9
    sampled, _, _ = load_data_args(DataArguments(dataset=str(ner_dir), n_per_class=2))
    assert 4 <= len(sampled) < 16


def test_token_task_on_sentence_data_is_a_clear_error(target_dir):
    with pytest.raises(DataError, match="token classification needs 'tokens' \\+ 'ner_tags'"):
        load_data_args(DataArguments(dataset=str(target_dir), task="token_classification"))


def test_sentence_task_on_token_data_points_to_the_token_task(ner_dir):
    with pytest.raises(DataError, match="token-classification data.*task='token_classification'"):
        load_data_args(DataArguments(dataset=str(ner_dir), task="single_label"))


def test_prior_weight_is_refused_for_token_data_before_loading(tmp_path, ner_encoder, ner_dir, no_weights):
    with pytest.raises(ConfigError, match="prior_weight.*token_classification"):
        run_finetune(finetune_config(tmp_path / "run", ner_encoder, prior_weight=0.5),
                     DataArguments(dataset=str(ner_dir)))  # fmt: skip
    assert not (tmp_path / "run").exists()


def test_n_per_class_beyond_a_type_names_it(tmp_path, ner_encoder, ner_dir, no_weights):
    with pytest.raises(DataError, match="n_per_class=5") as err:
        run_finetune(finetune_config(tmp_path / "run", ner_encoder), DataArguments(dataset=str(ner_dir),
                                                                                   n_per_class=5))  # fmt: skip
    assert "'org' has 4" in str(err.value) and "person" not in str(err.value)


# --------------------------------------------------------------------------------------------------------------
# 7. The CLI
# --------------------------------------------------------------------------------------------------------------


def test_cli_finetunes_a_tagger(tmp_path, capsys, ner_encoder, ner_dir):
    out = tmp_path / "cli"
    argv = ["finetune", "--dataset", str(ner_dir), "--task", "token_classification", "--model_name_or_path",
            ner_encoder, "--method", "full", "--subword_labels", "all", "--max_steps", "4", "--learning_rate", "0.01",
            "--max_length", str(MAX_LENGTH), "--use_cpu", "--disable_tqdm", "true", "--logging_strategy", "no",
            "--output_dir", str(out)]  # fmt: skip
    assert main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["task"] == TOKEN_CLASSIFICATION and results["method"] == "full" and results["train_steps"] == 4
    assert AutoModelForTokenClassification.from_pretrained(out).config.subword_labels == "all"
    stdout = capsys.readouterr().out
    summary = json.loads(stdout[stdout.rindex("{\n") :])
    assert summary["f1_micro"] == results["f1_micro"] and summary["task"] == TOKEN_CLASSIFICATION


def test_auto_method_on_tokens_is_full_and_says_why(tmp_path, ner_encoder, ner_dir):
    results = run_finetune(finetune_config(tmp_path / "run", ner_encoder, method="auto", learning_rate=None),
                           DataArguments(dataset=str(ner_dir)))  # fmt: skip
    assert results["method"] == "full" and results["train_steps"] == 8
    selection = results["method_selection"]
    assert selection["chosen"] == "full" and selection["candidates"] == []
    assert "token_classification" in selection["reason"]
    assert selection["reason"] in (tmp_path / "run" / "README.md").read_text()
