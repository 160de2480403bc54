"""labelmap onto multi-label targets (tiny random models): many-to-many maps, per-label scores from softmax and
sigmoid sources, the learned map, thresholds from training data only, pseudo-label selection, runs end to end
(and resumed), and bad input refused before any model loads."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import multi_label_rows, write_rows
from datasets import Dataset
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from hf_transfer.classifier import prepare
from hf_transfer.config import DataArguments
from hf_transfer.data import load_data_args
from hf_transfer.errors import ConfigError
from hf_transfer.inference import predict_proba
from hf_transfer.labelmap import LabelMap, LabelMapConfig, pseudo_label, run_labelmap, select_rows
from hf_transfer.labelmap.pipeline import decision_thresholds, student_thresholds
from hf_transfer.labelmap.predict import load_source
from hf_transfer.labelmap.state import STATE_DIR
from hf_transfer.metrics import multi_label_scores
from hf_transfer.multi_label import label_matrix
from hf_transfer.report import run_points
from hf_transfer.thresholds import fit_thresholds, out_of_fold
from hf_transfer.trainer import TransferTrainer

ROOT = Path(__file__).resolve().parents[2]
TONES = ["negative", "neutral", "positive"]  # the single-label source's classes
TARGET = ["criticism", "film", "praise", "story"]  # the multi-label target's labels (sorted, as loaded)
TONE_MAP = {"negative": ["criticism", "story"], "positive": ["praise", "film"], "neutral": "story"}
SOURCE_SEED = 0  # the tiny sources' random heads: the same whichever tests ran first


# ---- the map's scores


def test_a_softmax_source_scores_each_target_by_the_mass_of_the_classes_mapped_to_it():
    label_map = LabelMap.from_dict({"A": ["x", "y"], "B": "y"}, ["A", "B", "C"], ["x", "y", "z"],
                                   multi_label_target=True, allow_unreachable=True)  # fmt: skip
    scores = label_map.predict_proba(np.array([[0.5, 0.3, 0.2], [0.0, 0.1, 0.9]]))
    assert scores == pytest.approx(np.array([[0.5, 0.8, 0.0], [0.0, 0.1, 0.0]]))  # not renormalised across labels
    assert label_map.as_dict() == {"A": ["x", "y"], "B": ["y"]}
    assert label_map.decide(scores).tolist() == [[True, True, False], [False, False, False]]  # 0.5 by default


def test_a_sigmoid_source_scores_each_target_by_noisy_or():
    label_map = LabelMap.from_dict({"A": ["x", "y"], "B": "y", "C": "z"}, ["A", "B", "C"], ["x", "y", "z"],
                                   multi_label_target=True, multi_label_source=True)  # fmt: skip
    scores = label_map.predict_proba(np.array([[0.5, 0.4, 0.9], [1.0, 1.0, 0.0]]))
    # y: present unless neither A nor B is: 1 - (1 - 0.5)(1 - 0.4) = 0.7; never above 1
    assert scores == pytest.approx(np.array([[0.5, 0.7, 0.9], [1.0, 1.0, 0.0]]))


def test_a_single_label_target_takes_a_list_as_an_even_split_and_keeps_its_renormalisation():
    label_map = LabelMap.from_dict({"A": ["x", "y"], "B": "y"}, ["A", "B", "C"], ["x", "y"])
    assert label_map.predict_proba(np.array([[0.6, 0.2, 0.2]])) == pytest.approx(np.array([[0.375, 0.625]]))
    assert label_map.as_dict() == {"A": "x", "B": "y"}  # single-label: one target per source label


def test_the_learned_map_is_how_often_each_target_is_present_given_the_source():
    """Source A → x; B → x and y; C → y (one-hot source probabilities, 10 rows each)."""
    probs = np.repeat(np.eye(3), 10, axis=0)
    targets = np.repeat(np.array([[1, 0], [1, 1], [0, 1]]), 10, axis=0)
    targets[0, 1] = 1  # one A row also has y
    label_map = LabelMap.learn_multi_label(probs, targets, ["A", "B", "C"], ["x", "y"], smoothing=1.0)
    rate = targets.mean(0)
    expected = (np.array([[10, 1], [10, 10], [0, 10]]) + rate) / 11  # one pseudo-row at the base rate
    assert label_map.matrix == pytest.approx(expected)
    assert label_map.as_dict() == {"A": ["x"], "B": ["x", "y"], "C": ["y"]}
    mixed = label_map.predict_proba(np.array([[0.5, 0.5, 0.0]]))[0]  # Σ_s P(s|x) M[s, t]
    assert mixed == pytest.approx(0.5 * expected[0] + 0.5 * expected[1])
    with pytest.raises(ConfigError, match=r"no labelled example for target label\(s\) \['y'\]"):
        LabelMap.learn_multi_label(probs, np.column_stack([targets[:, 0], 0 * targets[:, 1]]), ["A", "B", "C"],
                                   ["x", "y"])  # fmt: skip


def test_a_learned_maps_thresholds_are_cross_fitted_and_the_others_fitted_on_the_labelled_rows():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(3), size=40)
    targets = np.column_stack([probs[:, 0] + 0.2 * rng.random(40) > 0.5, probs[:, 1] > 0.3])
    explicit = LabelMap.from_dict({"A": "x", "B": "y"}, ["A", "B", "C"], ["x", "y"], multi_label_target=True)
    fitted = explicit.with_thresholds(probs, targets, folds=4, seed=0)
    assert fitted.thresholds == fit_thresholds(explicit.predict_proba(probs), targets) != [0.5, 0.5]
    learned = LabelMap.learn_multi_label(probs, targets, ["A", "B", "C"], ["x", "y"])

    def learn_and_score(rows, held_out):
        fold = LabelMap.learn_multi_label(probs[rows], targets[rows], ["A", "B", "C"], ["x", "y"])
        return fold.predict_proba(probs[held_out])

    cross_fitted = fit_thresholds(out_of_fold(targets, 4, 0, learn_and_score), targets)
    assert learned.with_thresholds(probs, targets, folds=4, seed=0).thresholds == cross_fitted


def test_without_labelled_rows_the_cut_is_one_half_and_a_fixed_thresholds_value_is_used_as_given():
    label_map = LabelMap.from_dict({"A": "x", "B": "y"}, ["A", "B"], ["x", "y"], multi_label_target=True)
    none = Dataset.from_dict({"text": [], "source_probs": []})
    zero_shot = LabelMapConfig(output_dir="unused", source_model="unused")
    assert decision_thresholds(label_map, zero_shot, none).thresholds == [0.5, 0.5]
    fixed = LabelMapConfig(output_dir="unused", source_model="unused", thresholds="0.3")
    assert decision_thresholds(label_map, fixed, none).thresholds == [0.3, 0.3]
    single = LabelMap.from_dict({"A": "x", "B": "y"}, ["A", "B"], ["x", "y"])
    assert decision_thresholds(single, zero_shot, none).thresholds is None  # single-label: the argmax decides


# ---- pseudo-labels


def test_pseudo_labels_decide_each_label_and_keep_rows_sure_of_every_decision(caplog):
    label_map = LabelMap.from_dict({"A": ["x", "y"], "B": "y", "C": "z"}, ["A", "B", "C"], ["x", "y", "z"],
                                   multi_label_target=True)  # fmt: skip
    label_map.thresholds = [0.5, 0.5, 0.6]
    probs = [[0.95, 0.03, 0.02], [0.1, 0.85, 0.05], [0.3, 0.1, 0.6], [0.02, 0.02, 0.96]]
    pool = Dataset.from_dict({"text": list("abcd"), "label": [[0]] * 4, "source_probs": probs})
    with caplog.at_level("WARNING", logger="hf_transfer.labelmap.pseudo"):
        out = pseudo_label(pool, label_map, threshold=0.8)
    assert out.column_names == ["text", "label", "soft_label", "confidence"]
    # c: z at 0.6 reaches its 0.6 cut, but it and y at 0.4 (a "no") are only 0.6 sure: the row is left out
    assert out["text"] == ["a", "b", "d"] and out["label"] == [[0, 1], [1], [2]]
    assert out.features["label"].feature.names == ["x", "y", "z"]
    assert out["confidence"] == pytest.approx([0.95, 0.9, 0.96])  # the least sure decision of each row
    assert np.asarray(out["soft_label"][1]) == pytest.approx([0.1, 0.95, 0.05])
    assert caplog.text == ""
    with caplog.at_level("WARNING", logger="hf_transfer.labelmap.pseudo"):
        pseudo_label(pool.select([0, 1]), label_map, threshold=0.8)
    assert "kept no row with label 'z' at threshold=0.8 (0 pool rows predicted it; its highest score is 0.050" in (
        caplog.text
    )


def test_top_k_caps_each_label_among_its_rows_and_rows_with_no_label_form_a_group():
    has = np.array([[1, 0], [1, 1], [1, 0], [0, 1], [0, 0], [0, 0]], dtype=bool)
    confidence = np.array([0.9, 0.8, 0.95, 0.7, 0.99, 0.6])
    assert select_rows(confidence, has, 2, None, 1).tolist() == [1, 2, 4]  # x: row 2; y: row 1; none: row 4
    assert select_rows(confidence, has, 2, 0.75, 1).tolist() == [1, 2, 4]  # y's best left is row 1 (0.8)
    assert select_rows(confidence, has, 2, 0.85, 1).tolist() == [2, 4]  # y: no row reaches 0.85
    assert select_rows(confidence, has, 2, 0.0, None).tolist() == [0, 1, 2, 3, 4, 5]


def test_student_thresholds_predict_each_label_at_its_teachers_rate():
    probs = np.random.default_rng(0).random((200, 3)) ** np.array([1, 3, 0.5])
    rates = [0.1, 0.25, 0.5]
    cuts = student_thresholds(probs, rates)
    assert (probs >= np.asarray(cuts)).mean(0) == pytest.approx(rates, abs=0.01)


# ---- runs end to end


@pytest.fixture(scope="module")
def multi_data(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("multi")
    rows = multi_label_rows()
    write_rows(folder / "train.jsonl", rows[0::3] + rows[1::3])
    write_rows(folder / "validation.jsonl", rows[2::3])
    return folder


@pytest.fixture(scope="module")
def sources(tiny_encoder, tmp_path_factory) -> dict[str, str]:
    """Two tiny source classifiers on disk: single-label over TONES, multi-label over the target's labels."""
    folders = {}
    for kind, labels, problem in (("single", TONES, None), ("multi", TARGET, "multi_label_classification")):
        with torch.random.fork_rng(devices=[]):  # the same heads whichever tests ran first
            torch.manual_seed(SOURCE_SEED)
            model, tok = prepare(tiny_encoder, labels, head_init="random", problem_type=problem)
        folder = tmp_path_factory.mktemp(f"source_{kind}")
        model.save_pretrained(folder)
        tok.save_pretrained(folder)
        folders[kind] = str(folder)
    return folders


def _config(out, source, encoder, **options) -> LabelMapConfig:
    options = {"threshold": 0.0, "num_train_epochs": 1, "min_train_steps": 0, "per_device_train_batch_size": 8,
               "learning_rate": 5e-3, "threshold_folds": 2, **options}  # fmt: skip
    return LabelMapConfig(output_dir=str(out), source_model=source, model_name_or_path=encoder, disable_tqdm=True,
                          inference_bf16=False, **options)  # fmt: skip


def _probs(folder, texts) -> np.ndarray:
    model = AutoModelForSequenceClassification.from_pretrained(folder)
    return predict_proba(model, AutoTokenizer.from_pretrained(folder), texts)


@pytest.mark.parametrize(
    ("source", "options", "n_per_class"),
    [
        ("single", {"label_map": TONE_MAP}, None),  # zero-shot through an explicit map: thresholds 0.5
        ("multi", {"map_method": "learned", "top_k": 12}, 2),  # noisy-OR source, learned map, cross-fitted cuts
        ("single", {"label_map": TONE_MAP, "init_from_source": True, "rounds": 2}, 2),
    ],
    ids=["explicit-zero-shot", "learned-multi-source", "from-source-2-rounds"],
)
def test_run_labelmap_onto_a_multi_label_target(tiny_encoder, sources, multi_data, tmp_path, source, options,
                                                n_per_class):  # fmt: skip
    out = tmp_path / "out"
    config = _config(out, sources[source], tiny_encoder, **options)
    data = DataArguments(dataset=str(multi_data), n_per_class=n_per_class)
    result = run_labelmap(config, data)

    saved = json.loads((out / "results.json").read_text())
    assert saved["task"] == "multi_label" and saved["f1_micro"] == result.f1_micro is not None
    assert saved["zero_shot_f1_micro"] == result.zero_shot_f1_micro is not None
    assert len(saved["rounds"]) == config.rounds
    student = AutoModelForSequenceClassification.from_pretrained(out)
    assert student.config.problem_type == "multi_label_classification"
    assert student.config.label_thresholds == result.label_thresholds and len(result.label_thresholds) == 4
    assert all(0 <= t <= 1 for t in result.label_thresholds)

    # what was reported is what the saved student does on the eval split, at its saved thresholds
    train, eval_ds, labels = load_data_args(DataArguments(dataset=str(multi_data)))
    assert labels == TARGET
    truth = label_matrix(eval_ds, 4)
    tokenizer = AutoTokenizer.from_pretrained(out)
    with torch.no_grad():
        logits = student(**tokenizer(list(eval_ds["text"]), padding=True, return_tensors="pt")).logits
    assert multi_label_scores(student.decide(logits).numpy(), truth)["f1_micro"] == pytest.approx(result.f1_micro)

    # ... and the zero-shot scores are those of the source through the saved map, at the saved thresholds
    saved_map = json.loads((out / "label_map.json").read_text())
    label_map = LabelMap(saved_map["source_labels"], TARGET, np.array(saved_map["matrix"]),
                         multi_label_target=True, multi_label_source=saved_map["multi_label_source"],
                         thresholds=saved_map["thresholds"])  # fmt: skip
    assert label_map.multi_label_source == (source == "multi")
    source_model, source_tok, _ = load_source(sources[source])
    zero_shot = label_map.decide(label_map.predict_proba(predict_proba(source_model, source_tok, eval_ds["text"])))
    assert multi_label_scores(zero_shot, truth)["f1_micro"] == pytest.approx(result.zero_shot_f1_micro)

    # the teacher's thresholds come from the labelled rows (0.5 without any), never the eval split
    pool_probs = predict_proba(source_model, source_tok, train["text"])
    if n_per_class:
        gold = load_data_args(data)[0]
        gold_probs = predict_proba(source_model, source_tok, gold["text"])
        fresh = LabelMap(label_map.source_labels, TARGET, label_map.matrix, method=saved_map["method"],
                         multi_label_target=True, multi_label_source=label_map.multi_label_source)  # fmt: skip
        if saved_map["method"] == "learned":  # the map itself is learned on the labelled rows
            assert fresh.matrix == pytest.approx(
                LabelMap.learn_multi_label(gold_probs, label_matrix(gold, 4), fresh.source_labels, TARGET).matrix,
                abs=1e-5,
            )
        expected = fresh.with_thresholds(gold_probs, label_matrix(gold, 4), folds=2, seed=config.seed).thresholds
        assert result.zero_shot_thresholds == pytest.approx(expected, abs=1e-4)
    else:
        assert result.zero_shot_thresholds == [0.5] * 4
    if config.rounds == 1:  # the student predicts each label on the pool as often as its teacher did
        teacher_rates = label_map.decide(label_map.predict_proba(pool_probs)).mean(0)
        student_rates = (_probs(out, train["text"]) >= np.asarray(result.label_thresholds)).mean(0)
        assert student_rates == pytest.approx(np.clip(teacher_rates, 1 / 41, 1 - 1 / 41), abs=0.051)

    # the student was distilled: its head moved from where it started
    if config.init_from_source:
        assert result.model == "source (mapped head)"
    else:
        start = prepare(config, TARGET, problem_type="multi_label_classification")[0]
        assert (student.classifier.weight - start.classifier.weight).abs().max().item() > 1e-3
    last = result.rounds[-1]
    assert last["label_thresholds"] == result.label_thresholds and last["f1_micro"] == pytest.approx(result.f1_micro)
    assert sum(last["pseudo_labelled_per_class"].values()) > 0 and last["pseudo_label_f1_micro"] is not None

    card = (out / "README.md").read_text()
    first, targets = next(iter(result.label_map.items()))
    assert "| micro-F1, zero-shot through the label map |" in card
    assert f"| `{first}` | `{'`, `'.join(targets)}` |" in card  # a source label's list of targets
    names = [point[1] for point in run_points(result)]  # the report's rows say micro-F1 too
    assert names == [f"labelmap {what} [micro-F1]" for what in ("zero-shot through the label map",
                                                                "(pseudo-label + distil)")]  # fmt: skip


def test_the_eval_split_never_sets_a_threshold(tiny_encoder, sources, multi_data, tmp_path):
    """The same run against an eval split with other labels: every threshold is the same, only the scores move."""
    other = tmp_path / "other"
    rows = [json.loads(line) for line in (multi_data / "validation.jsonl").read_text().splitlines()]
    write_rows(other / "validation.jsonl", [{**r, "labels": r["labels"][::-1][:1] or ["film"]} for r in rows[::-1]])
    (other / "train.jsonl").write_text((multi_data / "train.jsonl").read_text())
    results = [
        run_labelmap(_config(tmp_path / name, sources["single"], tiny_encoder, label_map=TONE_MAP), data)
        for name, data in (
            ("a", DataArguments(dataset=str(multi_data), n_per_class=2)),
            ("b", DataArguments(dataset=str(other), n_per_class=2)),
        )
    ]
    assert results[0].zero_shot_thresholds == results[1].zero_shot_thresholds != [0.5] * 4
    assert results[0].label_thresholds == results[1].label_thresholds
    assert results[0].f1_micro != results[1].f1_micro  # the eval labels differ, and are scored


def test_a_stopped_multi_label_run_resumes_where_it_stopped(tiny_encoder, sources, multi_data, tmp_path, monkeypatch):
    """Stopped in round 2 of 2, a multi-label run resumes without training round 1 again, and its second round
    gets round 1's student thresholds back from the saved round: the same rounds and weights as uninterrupted."""
    data = DataArguments(dataset=str(multi_data))
    options = dict(label_map=TONE_MAP, rounds=2)
    reference = run_labelmap(_config(tmp_path / "a", sources["single"], tiny_encoder, **options), data)
    trained, real_train = [], TransferTrainer.train

    def train(self, *args, **kwargs):
        trained.append(self.args.output_dir)
        if len(trained) == 2:
            raise RuntimeError("stopped")
        return real_train(self, *args, **kwargs)

    monkeypatch.setattr(TransferTrainer, "train", train)
    config = _config(tmp_path / "b", sources["single"], tiny_encoder, resume_from_checkpoint="last", **options)
    with pytest.raises(RuntimeError, match="stopped"):
        run_labelmap(config, data)
    trained.clear()
    resumed = run_labelmap(config, data)
    assert trained == [str(tmp_path / "b" / STATE_DIR / "round-2")]
    assert resumed.rounds == reference.rounds and resumed.label_thresholds == reference.label_thresholds
    weights = [AutoModelForSequenceClassification.from_pretrained(tmp_path / d).state_dict() for d in "ab"]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


# ---- bad input, refused before any model loads


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"label_map": {"negative": 3}}, "label_map maps 'negative' to 3: each source label takes a target label"),
        ({"label_map": {"negative": ["criticism", 1]}}, "maps 'negative' to ['criticism', 1]"),
        ({"label_map": '{"negative": {"criticism": 1}}'}, "maps 'negative' to {'criticism': 1}"),
        ({"label_map": {"negative": []}}, "To drop a source label, leave it out of label_map"),
        ({"label_map": TONE_MAP, "threshold": 1.5}, "threshold=1.5 must be in [0, 1]"),
        ({"label_map": TONE_MAP, "thresholds": "1.5"}, "thresholds=1.5 must be in (0, 1)"),
    ],
)
def test_bad_options_are_refused_when_the_config_is_made(tmp_path, options, message):
    with pytest.raises(ConfigError) as err:
        _config(tmp_path, "some/model", "minilm", **options)
    assert message in str(err.value)


def test_a_map_onto_a_label_the_target_lacks_is_refused_before_models_load(sources, multi_data, tmp_path,
                                                                           monkeypatch):  # fmt: skip
    monkeypatch.setattr(
        AutoModelForSequenceClassification, "from_pretrained", lambda *a, **k: pytest.fail("model loaded")
    )
    config = _config(tmp_path / "out", sources["single"], "minilm",
                     label_map={**TONE_MAP, "positive": ["praise", "romance"]})  # fmt: skip
    with pytest.raises(ConfigError, match=r"maps to target label\(s\) \['romance'\] that the target task does not"):
        run_labelmap(config, DataArguments(dataset=str(multi_data)))
    assert not (tmp_path / "out").exists()


# ---- the bundled recipe pair


def test_the_ekman_recipe_maps_the_bundled_ekman_grouping_onto_goemotions():
    from hf_transfer.cli.parsing import parse_with_config
    from hf_transfer.cli.train import make_parser

    recipe = ROOT / "recipes" / "goemotions" / "labelmap-ekman.yaml"
    grouping = json.loads((ROOT / "hf_transfer" / "bundled" / "goemotions" / "ekman_mapping.json").read_text())
    assert yaml.safe_load(recipe.read_text())["label_map"] == grouping
    data_args, config = parse_with_config(make_parser("labelmap"), ["--config", str(recipe), "--output_dir", "x"])
    source = yaml.safe_load((ROOT / "recipes" / "goemotions" / "ekman-source.yaml").read_text())
    assert config.source_model == source["output_dir"] and data_args.dataset == "bundled:goemotions"
    assert source["dataset"] == "bundled:goemotions_ekman"
    bundled = ROOT / "hf_transfer" / "bundled"
    ekman = {json.loads(line)["text"] for split in ("train", "validation")
             for line in (bundled / "goemotions_ekman" / f"{split}.jsonl").open()}  # fmt: skip
    target = {json.loads(line)["text"] for split in ("train", "validation", "test")
              for line in (bundled / "goemotions" / f"{split}.jsonl").open()}  # fmt: skip
    assert len(ekman) > 2000 and not ekman & target  # the source never saw a target text
