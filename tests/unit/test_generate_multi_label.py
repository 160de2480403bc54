"""Multi-label generate (issue 17): prompts per label and per label pair, ``List(ClassLabel)`` rows, a consistency
filter that checks every asked label, resumable shards, and how the labels a synthetic row was not asked for
enter finetune's loss (``extra_train_unasked``: negative, or unknown = -1, masked). Tiny random models only."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import ADJECTIVES, NOUNS, write_rows
from datasets import ClassLabel, Dataset, Features, List, Value, load_from_disk
from generate.conftest import fake_scorer, interrupt_generation, make_tiny_causal_lm

from hf_transfer import DataArguments, FinetuneConfig, run_finetune
from hf_transfer.data import DataError, load_data_args, load_target, training_targets
from hf_transfer.errors import ConfigError
from hf_transfer.generate import GenerateConfig, generate_dataset, generation_stats, run_generate, top_label_pairs
from hf_transfer.generate import pipeline as pipeline_module
from hf_transfer.generate.filters import apply_filters, consistency_ranks
from hf_transfer.generate.prompts import build_prompts, group_seed_examples, load_templates
from hf_transfer.modeling import masked_bce

LABELS = ["good", "bad", "fine"]  # words the tiny LM's vocabulary has
TAGS = ["criticism", "film", "praise", "story"]  # the multi-label target below, sorted as load_target sorts
NOUN_TAG = {"movie": "film", "film": "film", "plot": "story", "story": None, "cast": None}
TONE_TAG = {"positive": "praise", "negative": "criticism", "neutral": None}


def tag_rows() -> list[dict]:
    """Adjective x noun texts tagged with their tone and topic: 0, 1 or 2 labels per text (60 rows)."""
    return [
        {"text": f"{'the' if i % 2 else 'a very'} {adjective} {noun}",
            "labels": [x for x in (TONE_TAG[tone], NOUN_TAG[noun]) if x]}
        for tone, adjectives in ADJECTIVES.items() for i, adjective in enumerate(adjectives) for noun in NOUNS
    ]  # fmt: skip


@pytest.fixture(scope="module")
def tag_dir(tmp_path_factory):
    rows = tag_rows()
    folder = tmp_path_factory.mktemp("tags")
    write_rows(folder / "train.jsonl", rows[0::3] + rows[1::3])
    write_rows(folder / "validation.jsonl", rows[2::3])
    return folder


@pytest.fixture(scope="module")
def lm_dir(tmp_path_factory) -> str:
    return make_tiny_causal_lm(tmp_path_factory.mktemp("tiny_llama") / "model")


@pytest.fixture(scope="module")
def lm(lm_dir, single_thread):
    from hf_transfer.generate.generation import load_generator

    return load_generator(lm_dir)


def multi_config(out, generator, **kwargs) -> GenerateConfig:
    base = dict(generator=generator, target_labels=LABELS, multi_label=True, n_per_label=4, shard_size=4,
                batch_size=2, max_new_tokens=8, min_words=1, near_dup_threshold=1.0, consistency_top_k=1,
                bf16=False, output_dir=str(out))  # fmt: skip
    return GenerateConfig(**{**base, **kwargs})


def saved_extra(path, rows: list[tuple[str, list[str]]], names=TAGS) -> str:
    """A multi-label dataset folder as generate saves it (``List(ClassLabel)``, provenance column included)."""
    features = Features(
        {"text": Value("string"), "label": List(ClassLabel(names=names)), "consistency": Value("float32")}
    )
    Dataset.from_dict({"text": [t for t, _ in rows], "label": [[names.index(x) for x in ls] for _, ls in rows],
                       "consistency": [0.5] * len(rows)}, features=features).save_to_disk(str(path))  # fmt: skip
    return str(path)


# --- prompts ------------------------------------------------------------------------------------------------


def test_prompts_per_label_and_per_pair():
    templates = load_templates("multi_label")
    seeds = group_seed_examples([{"text": "a fine good film", "label": ["good", "fine"]},
                                 {"text": "a good movie", "label": ["good"]}], LABELS)  # fmt: skip
    assert seeds == {"good": ["a fine good film", "a good movie"], "fine": ["a fine good film"]}
    prompts = build_prompts(LABELS, 3, templates, seed=0, descriptions={"good": "praise", "fine": "mild approval"},
                            seed_examples=seeds, n_shots=2, targets=[(0,), (1,), (2,), (0, 2)])  # fmt: skip
    assert len(prompts) == 12 and [p.label for p in prompts[:4]] == ["good", "bad", "fine", "good + fine"]
    pair = [p for p in prompts if p.label_ids == (0, 2)]
    assert len(pair) == 3 and all(p.label_id == 0 for p in pair)
    assert all("good and fine" in p.text and "praise; mild approval" in p.text for p in pair)
    assert all("a good movie" not in p.text for p in pair)  # a pair's examples carry both of its labels
    single = [p for p in prompts if p.label_ids == (1,)]
    assert all("bad" in p.text and " and " not in p.text.split("expresses")[-1][:12] for p in single)
    # without targets: one per label, exactly the prompts single-label runs always had
    default = build_prompts(LABELS, 3, load_templates("default"), seed=0)
    explicit = build_prompts(LABELS, 3, load_templates("default"), seed=0, targets=[(0,), (1,), (2,)])
    assert [(p.text, p.label, p.label_id) for p in default] == [(p.text, p.label, p.label_id) for p in explicit]
    # top-up counts are keyed by the target's name
    more = build_prompts(LABELS, {"good + fine": 2}, templates, seed=0, targets=[(0,), (0, 2)], start_index=50)
    assert [(p.index, p.label_ids) for p in more] == [(50, (0, 2)), (51, (0, 2))]


def test_top_label_pairs_are_the_most_frequent_co_occurrences(tag_dir):
    train = load_target(str(tag_dir))["train"]
    counts = {}
    for ids in train["label"]:
        for i in ids:
            for j in ids:
                if i < j:
                    counts[(TAGS[i], TAGS[j])] = counts.get((TAGS[i], TAGS[j]), 0) + 1
    best = max(counts.values())
    pairs = top_label_pairs(train, 2)
    assert counts[pairs[0]] == best and counts[pairs[0]] >= counts[pairs[1]] > 0
    assert len(top_label_pairs(train, 100)) == len(counts)  # only pairs that occur


# --- the consistency filter ----------------------------------------------------------------------------------


def ranked_scorer(table: dict[str, list[float]]):
    return lambda texts: np.asarray([table[t] for t in texts], dtype=np.float32)


def test_consistency_checks_every_asked_label_by_rank_not_by_shared_probability():
    table = {  # 5 labels; a softmax-like scorer
        "alpha text here": [0.70, 0.10, 0.10, 0.05, 0.05],  # asked 0: rank 1
        "beta text here": [0.50, 0.05, 0.30, 0.10, 0.05],  # asked 1: rank 4
        "both text here": [0.40, 0.38, 0.08, 0.07, 0.07],  # asked (0, 1): ranks 1, 2 -> kept
        "half text here": [0.45, 0.02, 0.43, 0.05, 0.05],  # asked (0, 1): label 1 ranks 5 -> removed
    }
    rows = [{"raw_text": t, "label_id": ids[0], "label_ids": list(ids)}
            for t, ids in [("alpha text here", (0,)), ("beta text here", (1,)), ("both text here", (0, 1)),
                           ("half text here", (0, 1))]]  # fmt: skip
    worst, lowest = consistency_ranks([r["raw_text"] for r in rows], [r["label_ids"] for r in rows],
                                      ranked_scorer(table))  # fmt: skip
    assert worst.tolist() == [1, 4, 2, 5] and lowest.tolist() == pytest.approx([0.7, 0.05, 0.38, 0.02])
    kept, stats = apply_filters(rows, min_words=1, max_words=10, near_dup_threshold=1.0, consistency_threshold=1.0,
                                contamination_ngram=0, scorer=ranked_scorer(table), consistency_top_k=1)  # fmt: skip
    assert [r["text"] for r in kept] == ["alpha text here", "both text here"] and stats["removed"]["consistency"] == 2
    assert [r["consistency_rank"] for r in kept] == [1, 2] and kept[1]["consistency"] == pytest.approx(0.38)
    # the pair's second label has only 0.38 of the softmax: the single-label rule (P >= 0.5) would drop it
    loose, _ = apply_filters(rows, min_words=1, max_words=10, near_dup_threshold=1.0, consistency_threshold=1.0,
                             contamination_ngram=0, scorer=ranked_scorer(table), consistency_top_k=4)  # fmt: skip
    assert len(loose) == 4  # top 4 (+1 for the pair's second label) passes every row


# --- generation ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def multi_reference(tmp_path_factory, lm, lm_dir):
    out = tmp_path_factory.mktemp("multi") / "out"
    config = multi_config(out, lm_dir)
    return out, generate_dataset(config, scorer=fake_scorer(LABELS), generator=lm, pairs=[("good", "fine")])


def test_multi_label_generation_writes_the_asked_labels_as_lists(multi_reference):
    out, ds = multi_reference
    feature = ds.features["label"]
    assert isinstance(feature, List) and isinstance(feature.feature, ClassLabel) and feature.feature.names == LABELS
    assert "consistency_rank" in ds.column_names
    stats = generation_stats(ds)
    assert stats["generated"] == 16 and stats["consistency_top_k"] == 1  # 3 labels + 1 pair, 4 prompts each
    assert set(stats["kept_per_target"]) == {"good", "bad", "fine", "good + fine"}
    shards = [json.loads(line) for p in sorted((out / "shards").glob("*.jsonl")) for line in p.read_text().split("\n")
              if line]  # fmt: skip
    asked = {r["index"]: r["label_ids"] for r in shards}
    assert sorted(map(tuple, asked.values())).count((0, 2)) == 4
    assert all(ids == asked[i] for i, ids in zip(ds["row_index"], ds["label"]))  # each row: what it was asked for
    assert all(r <= 1 + len(ids) - 1 for r, ids in zip(ds["consistency_rank"], ds["label"]))
    assert json.loads((out / "run_config.json").read_text())["label_pair_names"] == [["good", "fine"]]
    data = load_target(str(out / "dataset"), validation_size=0)  # as finetune's extra_train reads it
    assert isinstance(data["train"].features["label"], List) and data["train"]["label"] == ds["label"]


def test_multi_label_runs_resume_and_refuse_other_pairs(tmp_path, multi_reference, lm, lm_dir, monkeypatch):
    _, expected = multi_reference
    real = pipeline_module.generate_rows
    interrupt_generation(monkeypatch, at_call=3)
    config = multi_config(tmp_path / "out", lm_dir)
    with pytest.raises(KeyboardInterrupt):
        generate_dataset(config, scorer=fake_scorer(LABELS), generator=lm, pairs=[("good", "fine")])
    monkeypatch.setattr(pipeline_module, "generate_rows", real)
    resumed = generate_dataset(multi_config(tmp_path / "out", lm_dir), scorer=fake_scorer(LABELS), generator=lm,
                               pairs=[("good", "fine")])  # fmt: skip
    assert generation_stats(resumed)["resumed_batches"] == 2 and resumed.to_list() == expected.to_list()
    with pytest.raises(ConfigError, match="label_pair_names"):  # the pairs are part of the run's identity
        generate_dataset(multi_config(tmp_path / "out", lm_dir), generator=lm, pairs=[("good", "bad")])
    # a single-label run's fingerprint is what it was before multi-label existed
    single = GenerateConfig(target_labels=LABELS, output_dir=str(tmp_path / "s"), bf16=False)
    _, fingerprint, _ = pipeline_module.plan(single)
    assert not {"multi_label", "label_pairs", "label_pair_names"} & set(fingerprint)


def test_run_generate_takes_the_task_and_pairs_from_multi_label_target_data(tmp_path, lm_dir, tag_dir):
    config = GenerateConfig(
        generator=lm_dir,
        n_per_label=1,
        label_pairs=1,
        max_new_tokens=6,
        min_words=1,
        consistency_threshold=0,
        batch_size=8,
        bf16=False,
        output_dir=str(tmp_path / "out"),
    )
    results = run_generate(config, DataArguments(dataset=str(tag_dir), n_per_class=2))
    train = load_data_args(DataArguments(dataset=str(tag_dir), n_per_class=2))[0]
    assert results["multi_label"] and results["labels"] == TAGS
    assert results["label_pairs"] == [list(top_label_pairs(train, 1)[0])] and results["stats"]["generated"] == 5
    ds = load_from_disk(str(tmp_path / "out" / "dataset"))
    assert isinstance(ds.features["label"], List)
    assert "List(ClassLabel)" in (tmp_path / "out" / "dataset" / "README.md").read_text()


# --- bad input, before any model loads --------------------------------------------------------------------------


def test_bad_multi_label_generate_options_stop_before_any_model_loads(tmp_path, tag_dir, target_dir, monkeypatch):
    monkeypatch.setattr(pipeline_module, "load_generator", lambda *a, **k: pytest.fail("generator loaded"))
    monkeypatch.setattr(pipeline_module, "check_generator", lambda *a, **k: pytest.fail("generator checked"))
    with pytest.raises(ConfigError, match=r"label_pairs=2 is a multi-label option.*multi_label=True"):
        GenerateConfig(target_labels=LABELS, multi_label=False, label_pairs=2, output_dir=str(tmp_path / "a"))
    with pytest.raises(ConfigError, match=r"label_pairs=2 is a multi-label option"):  # single-label target data
        run_generate(GenerateConfig(label_pairs=2, output_dir=str(tmp_path / "b")), DataArguments(str(target_dir)))
    with pytest.raises(ConfigError, match=r"consistency_threshold=0.3 is the single-label rule.*consistency_top_k"):
        GenerateConfig(target_labels=LABELS, multi_label=True, consistency_threshold=0.3, output_dir=str(tmp_path))
    with pytest.raises(ConfigError, match=r"multi_label=False, but the target .* is multi-label"):
        run_generate(GenerateConfig(multi_label=False, output_dir=str(tmp_path / "c")), DataArguments(str(tag_dir)))
    with pytest.raises(ConfigError, match=r"n_per_class=0 leaves none.*label_pairs=0"):
        run_generate(GenerateConfig(label_pairs=1, output_dir=str(tmp_path / "d")),
                     DataArguments(str(tag_dir), n_per_class=0))  # fmt: skip
    with pytest.raises(ConfigError, match=r"label_pairs=1 .* none were given"):  # the API without pairs
        generate_dataset(GenerateConfig(target_labels=LABELS, multi_label=True, label_pairs=1,
                                        output_dir=str(tmp_path / "e")))  # fmt: skip
    with pytest.raises(ConfigError, match=r"must name two different labels"):
        generate_dataset(GenerateConfig(target_labels=LABELS, multi_label=True, output_dir=str(tmp_path / "f")),
                         pairs=[("good", "good")])  # fmt: skip
    assert not any((tmp_path / x).exists() for x in "abcdef")


def test_bad_extra_train_input_is_refused_before_any_model_loads(tmp_path, tag_dir, target_dir, no_weights):
    with pytest.raises(ConfigError, match=r"extra_train_unasked='masked' must be one of auto, negative, unknown"):
        DataArguments(str(tag_dir), extra_train_unasked="masked")
    multi = saved_extra(tmp_path / "multi", [("a good film", ["praise", "film"])])
    single_target = DataArguments(str(target_dir), n_per_class=2, extra_train=multi)
    with pytest.raises(DataError, match=r"is multi-label .* but the target .* is single-label"):
        load_data_args(single_target)
    single = write_rows(tmp_path / "single.jsonl", [{"text": "a good film", "label": "praise"}])
    with pytest.raises(DataError, match=r"is single-label .* but the target .* is multi-label.*task='multi_label'"):
        load_data_args(DataArguments(str(tag_dir), n_per_class=2, extra_train=single))
    forced = load_data_args(DataArguments(str(tag_dir), n_per_class=2, extra_train=single, task="multi_label"))[0]
    assert forced["label"][-1] == [TAGS.index("praise")]  # asked for on purpose: one-label lists


# --- unasked labels in the loss -------------------------------------------------------------------------------


def test_masked_bce_is_bce_over_the_known_entries_only():
    torch.manual_seed(0)
    logits, targets = torch.randn(6, 4), (torch.rand(6, 4) > 0.5).float()
    unknown = torch.rand(6, 4) > 0.6
    masked = masked_bce(logits, torch.where(unknown, torch.full_like(targets, -1.0), targets))
    known = torch.nn.functional.binary_cross_entropy_with_logits(logits[~unknown], targets[~unknown])
    assert masked.item() == pytest.approx(known.item(), rel=1e-6)
    assert masked_bce(logits, targets).item() == pytest.approx(
        torch.nn.functional.binary_cross_entropy_with_logits(logits, targets).item(), rel=1e-6)  # fmt: skip
    grad_logits = logits.clone().requires_grad_()
    masked_bce(grad_logits, torch.where(unknown, torch.full_like(targets, -1.0), targets)).backward()
    assert grad_logits.grad[unknown].abs().max() == 0 and grad_logits.grad[~unknown].abs().min() > 0


@pytest.mark.parametrize("unasked, fill", [("negative", 0.0), ("unknown", -1.0)])
def test_training_targets_set_only_the_extra_rows_unasked_labels(tmp_path, tag_dir, unasked, fill):
    extra = saved_extra(tmp_path / "syn", [("a good film", ["praise"]), ("a bad plot", ["criticism", "story"])])
    train = load_data_args(DataArguments(str(tag_dir), n_per_class=2, extra_train=extra, extra_train_unasked=unasked))[
        0
    ]
    real_labels = [list(ids) for ids in train["label"][:-2]]
    targets, is_extra = training_targets(train, unasked)
    assert (
        "extra_train_row" not in targets.column_names and is_extra.tolist() == [False] * len(real_labels) + [True] * 2
    )
    rows = np.asarray(targets["labels"])
    assert rows[-2].tolist() == [fill, fill, 1.0, fill] and rows[-1].tolist() == [1.0, fill, fill, 1.0]
    assert (rows[:-2] >= 0).all()  # real rows: fully known
    assert [np.flatnonzero(r).tolist() for r in rows[:-2]] == real_labels


def test_auto_takes_unasked_labels_as_unknown_only_in_data_generate_wrote(tmp_path, tag_dir):
    rows = [("a good film", ["praise"]), ("a bad plot", ["criticism", "story"])]
    plain = saved_extra(tmp_path / "labelled", rows)
    generated = tmp_path / "generated"
    extra = load_from_disk(saved_extra(tmp_path / "g", rows))
    extra.add_column("generator", ["smollm2"] * 2).add_column("template_id", ["t0"] * 2).save_to_disk(generated)
    for source, expected in ((plain, "negative"), (str(generated), "unknown")):
        counts: dict = {}
        load_data_args(DataArguments(str(tag_dir), n_per_class=2, extra_train=source), counts)
        assert counts["extra_train_unasked"] == expected, source
    counts = {}
    load_data_args(
        DataArguments(str(tag_dir), n_per_class=2, extra_train=plain, extra_train_unasked="unknown"), counts
    )
    assert counts["extra_train_unasked"] == "unknown"  # a given mode wins


@pytest.fixture
def loss_targets(monkeypatch):
    """Every target matrix the model's loss sees during training."""
    from hf_transfer import modeling

    seen, real = [], modeling.masked_bce
    monkeypatch.setattr(modeling, "masked_bce", lambda logits, targets: seen.append(targets.clone()) or
                        real(logits, targets))  # fmt: skip
    return seen


def test_finetune_with_unasked_unknown_trains_on_minus_one_and_cross_fits_on_real_rows(
    tmp_path, tiny_encoder, tag_dir, loss_targets, monkeypatch
):
    from hf_transfer.finetune import pipeline as finetune_pipeline

    folds = []
    real_out_of_fold = finetune_pipeline.out_of_fold
    monkeypatch.setattr(finetune_pipeline, "out_of_fold", lambda targets, *a: folds.append(targets) or
                        real_out_of_fold(targets, *a))  # fmt: skip
    extra = saved_extra(
        tmp_path / "syn",
        [
            (f"a {a} {n}", ["praise", "film"] if i % 2 else ["praise"])
            for i, (a, n) in enumerate(zip(ADJECTIVES["positive"] * 2, NOUNS * 2))
        ],
    )
    config = FinetuneConfig(
        output_dir=str(tmp_path / "run"),
        model_name_or_path=tiny_encoder,
        method="head",
        num_train_epochs=1,
        min_train_steps=4,
        threshold_folds=2,
        disable_tqdm=True,
        seed=0,
    )
    data = DataArguments(str(tag_dir), n_per_class=2, extra_train=extra, extra_train_unasked="unknown")
    result = run_finetune(config, data)
    n_real = result.n_real_train
    assert result.n_extra_train == 8 and result.extra_train_unasked == "unknown"
    seen = torch.cat(loss_targets)
    assert (seen == -1).any() and set(seen.unique().tolist()) <= {-1.0, 0.0, 1.0}
    # a row with -1 entries is a synthetic one: its known entries are exactly its asked labels (all 1)
    partial = seen[(seen == -1).any(1)]
    assert ((partial == 1) | (partial == -1)).all()
    assert [len(t) for t in folds] == [n_real] and (folds[0] >= 0).all()  # thresholds from real rows only
    assert len(result.label_thresholds) == 4


def test_finetune_on_synthetic_rows_alone_puts_each_label_on_its_share_of_unlabelled_texts(
    tmp_path, tiny_encoder, tag_dir
):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from hf_transfer.inference import predict_proba

    extra = saved_extra(tmp_path / "syn", [(f"the {a} {n}", [tag]) for tag, words in
                                           (("praise", ADJECTIVES["positive"]), ("criticism", ADJECTIVES["negative"]))
                                           for a in words for n in NOUNS[:2]])  # fmt: skip
    config = FinetuneConfig(
        output_dir=str(tmp_path / "run"),
        model_name_or_path=tiny_encoder,
        method="head",
        num_train_epochs=1,
        min_train_steps=4,
        disable_tqdm=True,
        seed=0,
    )
    result = run_finetune(config, DataArguments(str(tag_dir), n_per_class=0, extra_train=extra))
    assert result.n_real_train == 0 and result.n_train == 16 and result.label_thresholds != [0.5] * 4
    model = AutoModelForSequenceClassification.from_pretrained(tmp_path / "run")
    texts = list(load_target(str(tag_dir))["train"]["text"])
    probs = predict_proba(model, AutoTokenizer.from_pretrained(tmp_path / "run"), texts)
    rates = (probs >= np.asarray(model.config.label_thresholds)).mean(0)
    assert rates.tolist() == pytest.approx([1 / 4] * 4, abs=0.1)  # the zero-shot rule, ranked by the trained model
