"""Multi-label: loading every input form, per-label sampling, thresholds from training data, metrics, and a
finetune run whose saved model scores each label on its own (tiny random encoder)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import multi_label_rows, write_rows
from datasets import ClassLabel, Dataset, DatasetDict, Features, List, Value
from sklearn.metrics import f1_score
from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

from hf_transfer import DataArguments, FinetuneConfig, run_finetune
from hf_transfer.classifier import calibrate_bias, prepare
from hf_transfer.data import DataError, label_names, load_target, sample_per_class
from hf_transfer.metrics import multi_label_scores
from hf_transfer.multi_label import label_matrix
from hf_transfer.thresholds import fit_thresholds, out_of_fold


@pytest.fixture
def multi_dir(tmp_path):
    rows = multi_label_rows()
    folder = tmp_path / "multi"
    write_rows(folder / "train.jsonl", rows[0::3] + rows[1::3])
    write_rows(folder / "validation.jsonl", rows[2::3])
    return folder


def test_a_list_column_loads_as_multi_label_and_keeps_rows_with_no_label(multi_dir):
    data = load_target(str(multi_dir))
    assert isinstance(data["train"].features["label"], List)
    assert label_names(data) == ["criticism", "film", "praise", "story"]  # sorted names
    first = multi_label_rows()[0]
    assert [label_names(data)[i] for i in data["train"][0]["label"]] == sorted(first["labels"])
    empty = sum(not r["labels"] for r in multi_label_rows()[0::3] + multi_label_rows()[1::3])
    assert empty > 0 and sum(not ids for ids in data["train"]["label"]) == empty  # [] rows stay, all-negative


def test_labels_joined_unambiguously_are_split_under_task_auto(tmp_path, caplog):
    """ "joy;love" where joy and love are labels of other rows: read as multi-label (logged, the same lists as
    label_separator=";"); task='single_label' keeps the joined strings as classes; a class name that merely holds
    the character ("arts, culture": no row is labelled "culture") stays single-label."""
    names = ["joy", "love", "anger", "joy;love", "anger;joy", "love", "anger", "joy"] * 2
    rows = [{"text": f"comment {i}", "emotions": name} for i, name in enumerate(names)]
    path = write_rows(tmp_path / "e" / "train.csv", rows)
    with caplog.at_level("WARNING"):
        data = load_target(path, validation_size=0)
    assert "lists joined by ';'" in caplog.text and label_names(data) == ["anger", "joy", "love"]
    assert data["train"]["label"] == load_target(path, label_separator=";", validation_size=0)["train"]["label"]
    single = load_target(path, task="single_label", validation_size=0)
    assert label_names(single) == ["anger", "anger;joy", "joy", "joy;love", "love"]
    topics = ["arts, culture", "sports", "science", "sports", "arts, culture", "science"] * 2
    topic_rows = [{"text": f"news {i}", "label": t} for i, t in enumerate(topics)]
    data = load_target(write_rows(tmp_path / "t" / "train.csv", topic_rows), validation_size=0)
    assert not isinstance(data["train"].features["label"], List) and "arts, culture" in label_names(data)


def test_joined_labels_label_columns_and_datasets_features_give_the_same_data(tmp_path, multi_dir):
    rows = multi_label_rows()
    expected = load_target(str(multi_dir / "train.jsonl"), validation_size=0)["train"]["label"]
    labelled = [r for r in rows[0::3] + rows[1::3]]
    csv_rows = [{"text": r["text"], "tags": "|".join(r["labels"])} for r in labelled if r["labels"]]
    joined = load_target(write_rows(tmp_path / "j" / "train.csv", csv_rows), label_column="tags",
                         label_separator="|", validation_size=0)["train"]  # fmt: skip
    assert joined["label"] == [ids for ids in expected if ids]
    names = ["criticism", "film", "praise", "story"]
    column_rows = [{"text": r["text"], **{f"is_{n}": int(n in r["labels"]) for n in names}} for r in labelled]
    columns = load_target(write_rows(tmp_path / "c" / "train.jsonl", column_rows), label_columns=["is_*"],
                          validation_size=0)  # fmt: skip
    assert label_names(columns) == [f"is_{n}" for n in names] and columns["train"]["label"] == expected
    features = Features({"text": Value("string"), "label": List(ClassLabel(names=names))})
    ids = [[names.index(x) for x in r["labels"]] for r in labelled]
    from_hf = load_target(Dataset.from_dict({"text": [r["text"] for r in labelled], "label": ids}, features=features),
                          validation_size=0)  # fmt: skip
    assert from_hf["train"]["label"] == [sorted(i) for i in ids]


def test_task_can_be_forced_either_way(tmp_path, multi_dir):
    single = [{"text": "good movie", "label": "praise"}, {"text": "bad movie", "label": "criticism"}] * 3
    forced = load_target(write_rows(tmp_path / "s.jsonl", single), task="multi_label", validation_size=0)
    assert isinstance(forced["train"].features["label"], List) and forced["train"]["label"][0] == [1]
    with pytest.raises(DataError, match="task='single_label', but label column 'labels' holds lists"):
        load_target(str(multi_dir), task="single_label")


@pytest.mark.parametrize(
    ("rows", "options", "fragment"),
    [
        ([{"text": "a", "labels": ["x"]}, {"text": "b", "labels": None}], {}, "row 1: the label list is None"),
        ([{"text": "a", "labels": ["x", "y"]}], {"labels": ["x"]}, "label(s) ['y'] that the given labels="),
        (
            [{"text": "a", "tags": "x"}, {"text": "b", "tags": "y"}],
            {"label_column": "tags", "label_separator": ","},
            "splits no row",
        ),
        (
            [{"text": "a", "tags": "x,y"}, {"text": "b", "tags": None}],
            {"label_column": "tags", "label_separator": ","},
            "row 1: the label is None",
        ),
        ([{"text": "a", "is_x": 2}, {"text": "b", "is_x": 0}], {"label_columns": ["is_x"]}, "row 0 holds 2"),
        ([{"text": "a", "is_x": 1}], {"label_columns": ["is_*", "tag_*"]}, "'tag_*' matches no column"),
    ],
    ids=["null_list", "unknown_label", "separator_splits_nothing", "empty_joined", "not_zero_one", "glob_no_match"],
)
def test_bad_multi_label_input_is_a_clear_error(tmp_path, rows, options, fragment):
    with pytest.raises(DataError) as err:
        load_target(write_rows(tmp_path / "train.jsonl", rows), validation_size=0, **options)
    assert fragment in str(err.value)


def test_sample_per_label_takes_at_least_n_per_label_rarest_first_and_is_seeded(multi_dir):
    train = load_target(str(multi_dir))["train"]
    sample = sample_per_class(train, 3, seed=0)
    has = label_matrix(sample)
    assert has.sum(0).min() >= 3 and (~has.any(1)).sum() == 3  # n rows with no label too: the data has them
    assert (~label_matrix(sample_per_class(train, 8, seed=0)).any(1)).sum() == 5  # as many as there are
    assert len(sample) < 3 * 5  # rows count for every label they carry
    assert sample["text"] == sample_per_class(train, 3, seed=0)["text"] != sample_per_class(train, 3, seed=1)["text"]
    with pytest.raises(DataError, match=r"'story' has 8\)"):
        sample_per_class(train, 9)


def test_a_carved_validation_split_holds_every_label(tmp_path):
    rows = multi_label_rows()
    data = load_target(write_rows(tmp_path / "train.jsonl", rows), validation_size=0.25, seed=0)
    assert label_matrix(data["validation"]).any(0).all() and len(data["validation"]) == 15


def test_multi_label_scores_match_scikit_learn():
    rng = np.random.default_rng(0)
    truth, predicted = rng.random((50, 4)) < 0.3, rng.random((50, 4)) < 0.3
    scores = multi_label_scores(predicted, truth)
    for average in ("micro", "macro"):
        expected = f1_score(truth, predicted, average=average, zero_division=0)
        assert scores[f"f1_{average}"] == pytest.approx(expected), average
    # a row with no true and no predicted label is right: 1, as scikit-learn's zero_division=1 counts it
    assert scores["f1_samples"] == pytest.approx(f1_score(truth, predicted, average="samples", zero_division=1))
    assert scores["subset_accuracy"] == pytest.approx((truth == predicted).all(1).mean())


def test_thresholds_come_from_held_out_predictions_and_shrink_toward_the_shared_cut():
    rng = np.random.default_rng(0)
    truth = rng.random((200, 2)) < 0.2
    probs = np.where(truth, 0.3, 0.1) + rng.random((200, 2)) * 0.05  # positives at ~0.3: 0.5 finds none
    own = fit_thresholds(probs, truth, shrinkage=0)
    assert all(0.15 < t < 0.3 for t in own)
    rare = truth.copy()
    rare[:, 1] = False
    rare[:2, 1] = True  # label 1: 2 positives only, so its cut leans on the shared one
    shrunk, alone = fit_thresholds(probs, rare, shrinkage=8)[1], fit_thresholds(probs, rare, shrinkage=0)[1]
    shared = fit_thresholds(probs, rare, shrinkage=1e9)[1]
    assert min(alone, shared) < shrunk < max(alone, shared)

    seen = []

    def train_and_predict(rows, held_out):
        assert not set(rows) & set(held_out)
        seen.extend(held_out)
        return np.full((len(held_out), 2), 0.5)

    out_of_fold(truth, 4, 0, train_and_predict)
    assert sorted(seen) == list(range(200))  # every row scored once, by a model that did not train on it


def test_calibrated_bias_predicts_each_label_at_its_rate(tiny_encoder):
    model, tokenizer = prepare(tiny_encoder, ["a", "b", "c"], problem_type="multi_label_classification")
    texts = [r["text"] for r in multi_label_rows()]
    calibrate_bias(model, tokenizer, texts, [0.1, 0.5, 0.25])
    enc = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        rates = (model(**enc).logits.sigmoid() > 0.5).float().mean(0)
    assert rates.tolist() == pytest.approx([0.1, 0.5, 0.25], abs=0.05)


@pytest.mark.parametrize("method", ["head", "lora"])
def test_finetune_multi_label_saves_a_model_that_scores_labels_on_their_own(tmp_path, tiny_encoder, multi_dir, method):
    out = tmp_path / "run"
    config = FinetuneConfig(output_dir=str(out), model_name_or_path=tiny_encoder, method=method, num_train_epochs=2,
                            min_train_steps=8, threshold_folds=2, disable_tqdm=True, seed=0)  # fmt: skip
    result = run_finetune(config, DataArguments(dataset=str(multi_dir), n_per_class=4))
    saved = json.loads((out / "results.json").read_text())
    assert saved["task"] == "multi_label" and saved["f1_micro"] == result.f1_micro and len(saved["per_label"]) == 4
    assert len(result.label_thresholds) == 4 and all(0 < t < 1 for t in result.label_thresholds)
    assert result.label_thresholds != [0.5] * 4  # cross-fitted, not the default

    model = AutoModelForSequenceClassification.from_pretrained(out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert model.config.problem_type == "multi_label_classification"
    assert model.config.label_thresholds == result.label_thresholds
    validation = load_target(str(multi_dir))["validation"]
    enc = tokenizer(list(validation["text"]), padding=True, return_tensors="pt")
    with torch.no_grad():
        logits = model(**enc).logits
    predicted = model.decide(logits).numpy()
    recomputed = multi_label_scores(predicted, label_matrix(validation))
    assert recomputed["f1_micro"] == pytest.approx(result.f1_micro, abs=1e-6)  # reported = what the model does
    scores = pipeline("text-classification", model=model, tokenizer=tokenizer, top_k=None)(
        list(validation["text"][:2])
    )
    first = {s["label"]: s["score"] for s in scores[0]}
    assert first == pytest.approx(dict(zip(model.config.id2label.values(), logits[0].sigmoid().tolist())), abs=1e-5)
    card = (out / "README.md").read_text()
    assert "| micro-F1 |" in card and "| label | threshold | precision | recall | F1 |" in card


def test_zero_shot_multi_label_predicts_each_label_for_its_share_of_unlabelled_texts(
    tmp_path, tiny_encoder, multi_dir
):
    config = FinetuneConfig(output_dir=str(tmp_path / "zs"), model_name_or_path=tiny_encoder, disable_tqdm=True)
    result = run_finetune(config, DataArguments(dataset=str(multi_dir), n_per_class=0))
    assert result.label_thresholds == [0.5] * 4 and result.n_train == 0 and result.task == "multi_label"


def test_multi_label_options_that_do_not_apply_are_refused_before_training(tmp_path, tiny_encoder, multi_dir):
    from hf_transfer import ConfigError

    config = FinetuneConfig(output_dir=str(tmp_path / "p"), model_name_or_path=tiny_encoder, prior_weight=0.5)
    with pytest.raises(ConfigError, match="prior_weight anchors single-label runs only"):
        run_finetune(config, DataArguments(dataset=str(multi_dir), n_per_class=2))
    assert not (tmp_path / "p").exists()
    with pytest.raises(ConfigError, match="thresholds='high' must be 'cross_fit' or a probability"):
        FinetuneConfig(output_dir=str(tmp_path / "t"), thresholds="high")


def test_a_datasetdict_with_sequence_labels_round_trips_through_load(tmp_path):
    names = ["x", "y"]
    features = Features({"text": Value("string"), "label": List(ClassLabel(names=names))})
    data = DatasetDict({"train": Dataset.from_dict({"text": ["a", "b", "c"], "label": [[0], [0, 1], []]},
                                                   features=features)})  # fmt: skip
    data.save_to_disk(str(tmp_path / "saved"))
    loaded = load_target(str(tmp_path / "saved"), validation_size=0)
    assert loaded["train"]["label"] == [[0], [0, 1], []]


def test_the_cli_takes_the_multi_label_options(tmp_path):
    from hf_transfer.cli.parsing import parse_with_config
    from hf_transfer.cli.train import make_parser

    argv = ["--dataset", "x.csv", "--label_columns", "is_*", "tag_a", "--task", "multi_label", "--thresholds", "0.3",
            "--threshold_folds", "3", "--output_dir", str(tmp_path)]  # fmt: skip
    data_args, config = parse_with_config(make_parser("finetune"), argv)
    assert data_args.label_columns == ["is_*", "tag_a"] and data_args.task == "multi_label"
    assert (config.thresholds, config.threshold_folds) == ("0.3", 3)
    from hf_transfer import ConfigError

    expected = "task='multilabel' must be 'auto', 'single_label', 'multi_label' or 'token_classification'"
    with pytest.raises(ConfigError, match=expected):
        parse_with_config(make_parser("finetune"), ["--task", "multilabel", "--output_dir", str(tmp_path)])


def test_multi_label_distillation_is_per_label_and_skips_unknown_targets():
    from torch.nn import functional as F

    from hf_transfer.trainer import multi_label_soft_target_loss

    q = torch.tensor([[0.9, 0.2, 0.6], [0.1, 0.7, 0.3]])
    at_q = torch.logit(q).requires_grad_()
    multi_label_soft_target_loss(at_q, q, weight=1.0, temperature=2.0).backward()
    assert at_q.grad.abs().max() < 1e-6  # each label's optimum is the teacher's own log-odds, at any temperature
    logits = torch.tensor([[2.0, -1.0, 0.5], [-0.3, 1.5, -2.0]])
    targets = torch.tensor([[1.0, -1.0, 0.0], [0.0, 1.0, -1.0]])  # -1: the row says nothing of that label
    known = targets >= 0
    hard = F.binary_cross_entropy_with_logits(logits[known], targets[known])
    mixed = multi_label_soft_target_loss(logits, q, targets, weight=0.25, temperature=1.0)
    assert mixed == pytest.approx(
        (0.75 * hard + 0.25 * F.binary_cross_entropy_with_logits(logits, q)).item(), rel=1e-5
    )


def test_empty_label_lists_everywhere_name_no_label(tmp_path):
    rows = [{"text": "a", "labels": []}, {"text": "b", "labels": []}]
    with pytest.raises(DataError, match=r"Every label list in split 'train' is empty.*pass labels=\[\.\.\.\]"):
        load_target(write_rows(tmp_path / "train.jsonl", rows), validation_size=0)
    given = load_target(str(tmp_path / "train.jsonl"), validation_size=0, labels=["x", "y"])
    assert label_names(given) == ["x", "y"] and given["train"]["label"] == [[], []]


def test_a_single_label_classifier_is_a_multi_label_base_only_when_asked(tmp_path, tiny_encoder, multi_dir):
    from hf_transfer import ConfigError

    single, tokenizer = prepare(tiny_encoder, ["good", "bad"])
    single.save_pretrained(tmp_path / "single")
    tokenizer.save_pretrained(tmp_path / "single")
    config = FinetuneConfig(output_dir=str(tmp_path / "run"), model_name_or_path=str(tmp_path / "single"),
                            method="head", max_steps=2, thresholds="0.5", disable_tqdm=True)  # fmt: skip
    with pytest.raises(ConfigError, match=r"is a single-label classifier .* pass task='multi_label'"):
        run_finetune(config, DataArguments(dataset=str(multi_dir), n_per_class=2))
    assert not (tmp_path / "run").exists()  # refused before the folder was claimed
    result = run_finetune(config, DataArguments(dataset=str(multi_dir), n_per_class=2, task="multi_label"))
    assert result.task == "multi_label" and result.label_thresholds == [0.5] * 4
    with pytest.raises(ConfigError, match=r"thresholds=1.5 must be"):
        FinetuneConfig(output_dir=str(tmp_path / "t"), thresholds=1.5)
