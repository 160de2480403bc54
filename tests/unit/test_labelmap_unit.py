"""labelmap on tiny models: map algebra, learned map, selection, distillation loss, head reuse, run end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import scores, scores_of
from datasets import Dataset
from transformers import AutoModelForSequenceClassification, BertConfig, BertForSequenceClassification

from hf_transfer.config import DataArguments
from hf_transfer.data import load_data_args
from hf_transfer.errors import ConfigError
from hf_transfer.finetune import prepare
from hf_transfer.labelmap import (
    LabelMap,
    LabelMapConfig,
    pseudo_label,
    run_labelmap,
    select_rows,
    source_label_names,
    transfer_head,
)
from hf_transfer.labelmap.predict import load_source, predict_proba
from hf_transfer.labelmap.state import STATE_DIR, LabelMapState, run_fingerprint
from hf_transfer.state import MARKER
from hf_transfer.trainer import TransferTrainer

SST5 = ["very negative", "negative", "neutral", "positive", "very positive"]
BINARY = ["negative", "positive"]
EXPLICIT = {"very negative": "negative", "negative": "negative", "positive": "positive", "very positive": "positive"}


def test_explicit_map_drops_unmapped_and_renormalises():
    label_map = LabelMap.from_dict(EXPLICIT, SST5, BINARY)
    probs = np.array([[0.1, 0.2, 0.4, 0.2, 0.1]])  # 0.4 on the dropped 'neutral'
    assert np.allclose(label_map.predict_proba(probs), [[0.5, 0.5]])
    probs = np.array([[0.3, 0.3, 0.2, 0.1, 0.1]])
    assert np.allclose(label_map.predict_proba(probs), [[0.75, 0.25]])
    assert label_map.as_dict() == EXPLICIT
    assert "very negative" in str(label_map) and json.loads(label_map.to_json())["hard_map"] == EXPLICIT


@pytest.mark.parametrize(
    ("mapping", "kwargs", "message"),
    [
        ({"terrible": "negative"}, {}, "source label(s) ['terrible'] that the source model does not have"),
        ({"negative": "bad"}, {}, "target label(s) ['bad'] that the target task does not have"),
        ({"negative": "negative"}, {}, "No source label maps to target label(s) ['positive']"),
        ({}, {}, "empty"),
    ],
)
def test_bad_maps_are_refused(mapping, kwargs, message):
    with pytest.raises(ConfigError) as err:
        LabelMap.from_dict(mapping, SST5, BINARY, **kwargs)
    assert message in str(err.value)


def test_unreachable_target_can_be_allowed():
    label_map = LabelMap.from_dict({"negative": "negative"}, SST5, BINARY, allow_unreachable=True)
    assert np.allclose(label_map.predict_proba(np.array([[0, 1.0, 0, 0, 0]])), [[1.0, 0.0]])


def test_learned_map_recovers_a_known_mapping():
    """Source labels A,B → target x and C → target y; the source model is right 90% of the time."""
    rng = np.random.default_rng(0)
    true_source = rng.integers(0, 3, size=600)
    targets = np.where(true_source < 2, 0, 1)
    probs = np.full((600, 3), 0.05)
    probs[np.arange(600), true_source] = 0.9
    label_map = LabelMap.learn(probs, targets, ["A", "B", "C"], ["x", "y"])
    assert label_map.as_dict() == {"A": "x", "B": "x", "C": "y"}
    assert label_map.matrix[0, 0] > 0.9 and label_map.matrix[2, 1] > 0.9
    predicted = label_map.predict_proba(probs).argmax(1)
    assert (predicted == targets).mean() == 1.0


def test_learned_map_needs_every_target_label():
    with pytest.raises(ConfigError, match=r"no labelled example for target label\(s\) \['y'\]"):
        LabelMap.learn(np.ones((2, 3)) / 3, [0, 0], ["A", "B", "C"], ["x", "y"])


def test_name_map_picks_the_most_similar_target():
    source = np.array([[1.0, 0.1], [0.9, 0.2], [0.0, 1.0]])
    target = np.array([[1.0, 0.0], [0.0, 1.0]])
    assert LabelMap.from_names(source, target, ["a", "b", "c"], ["x", "y"]).as_dict() == {"a": "x", "b": "x", "c": "y"}


def test_name_map_embeds_label_names_as_words(tiny_encoder, monkeypatch):
    import hf_transfer.labelmap.pipeline as pipeline

    seen: list[list[str]] = []

    def fake_embed(model, tokenizer, texts, **kwargs):
        seen.append(list(texts))
        return torch.eye(2)[: len(texts)]

    monkeypatch.setattr(pipeline, "embed_texts", fake_embed)
    config = LabelMapConfig(output_dir="unused", source_model="unused", model_name_or_path=tiny_encoder)
    label_map = pipeline.build_label_map("names", config, ["very_negative", "POSITIVE"], ["neg_review", "pos"])
    assert seen == [["very negative", "POSITIVE"], ["neg review", "positive"]]  # an abbreviation spelled out
    assert label_map.as_dict() == {"very_negative": "neg_review", "POSITIVE": "pos"}


def test_select_rows_threshold_and_top_k():
    confidence = np.array([0.95, 0.6, 0.99, 0.92, 0.97, 0.91])
    labels = np.array([0, 0, 0, 1, 1, 0])
    assert select_rows(confidence, labels, 2, 0.9, None).tolist() == [0, 2, 3, 4, 5]
    assert select_rows(confidence, labels, 2, 0.9, 1).tolist() == [2, 4]
    assert select_rows(confidence, labels, 2, None, 2).tolist() == [0, 2, 3, 4]


def test_pseudo_label_outputs_and_zero_rows_error():
    pool = Dataset.from_dict({"text": ["a", "b", "c"], "source_probs": [[0.9, 0.05, 0.05, 0, 0], [0, 0, 1.0, 0, 0],
                                                                         [0, 0.1, 0, 0.1, 0.8]]})  # fmt: skip
    label_map = LabelMap.from_dict(EXPLICIT, SST5, BINARY)
    out = pseudo_label(pool, label_map, threshold=0.9)
    assert out.column_names == ["text", "label", "soft_label", "confidence"]
    assert out["text"] == ["a"] and out["label"] == [0]
    assert out.features["label"].names == BINARY
    assert np.allclose(out["soft_label"][0], [1.0, 0.0])
    with pytest.raises(ConfigError, match=r"kept 0 of 2 rows: .*threshold=1.0.*most confident was 0.9"):
        pseudo_label(pool.select([1, 2]), label_map, threshold=1.0)


def test_a_class_left_without_pseudo_labels_is_named_with_the_fix(caplog):
    pool = Dataset.from_dict({"text": ["a", "b"], "source_probs": [[0.9, 0.05, 0.05, 0, 0], [0.1, 0, 0.7, 0.2, 0]]})
    with caplog.at_level("WARNING", logger="hf_transfer.labelmap.pseudo"):
        pseudo_label(pool, LabelMap.from_dict(EXPLICIT, SST5, BINARY), threshold=0.9)
    assert "no rows of class 'positive' at threshold=0.9 (its most confident prediction is 0.667" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="hf_transfer.labelmap.pseudo"):
        pseudo_label(pool, LabelMap.from_dict(EXPLICIT, SST5, BINARY), threshold=0.5)
    assert caplog.text == ""


def test_pseudo_label_replaces_a_gold_label_column_in_the_pool():
    """A pool that still carries its gold labels (to measure pseudo-label accuracy) gets them replaced."""
    probs = [[0.9, 0.05, 0.05, 0, 0], [0, 0, 0, 0.05, 0.95]]
    pool = Dataset.from_dict({"text": ["a", "b"], "label": [1, 1], "source_probs": probs})
    out = pseudo_label(pool, LabelMap.from_dict(EXPLICIT, SST5, BINARY), threshold=0.5)
    assert out.column_names == ["text", "label", "soft_label", "confidence"]
    assert out["label"] == [0, 1] and out.features["label"].names == BINARY


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"threshold": 1.2}, "threshold=1.2 must be in [0, 1]"),
        ({"top_k": 0}, "top_k=0 must be a positive"),
        ({"temperature": 0}, "temperature=0 must be > 0"),
        ({"distill_weight": -0.5}, "distill_weight=-0.5 must be in [0, 1]"),
        ({"source_model": None}, "source_model is required"),
        ({"map_method": "explicit"}, "needs label_map"),
        ({"rounds": 0}, "rounds=0"),
    ],
)
def test_config_validation(tmp_path, kwargs, message):
    kwargs = {"source_model": "some/model", **kwargs}
    with pytest.raises(ConfigError) as err:
        LabelMapConfig(output_dir=str(tmp_path), **kwargs)
    assert message in str(err.value)


def test_source_without_id2label_is_refused():
    with pytest.raises(ConfigError, match="no id2label naming its classes"):
        source_label_names(BertConfig(num_labels=3))


@pytest.mark.parametrize("kind", ["hf_transfer", "bert"])
def test_head_reuse_averages_mapped_source_rows(tiny_encoder, kind):
    if kind == "hf_transfer":
        source, _ = prepare(tiny_encoder, SST5, head_init="random")
        head = source.classifier
    else:
        config = BertConfig.from_pretrained(tiny_encoder, num_labels=5)
        config.id2label, config.label2id = dict(enumerate(SST5)), {k: i for i, k in enumerate(SST5)}
        source = BertForSequenceClassification(config)
        head = source.classifier
    target = transfer_head(source, LabelMap.from_dict(EXPLICIT, SST5, BINARY))
    new_head = target.classifier
    assert torch.allclose(new_head.weight[0], (head.weight[0] + head.weight[1]) / 2)
    assert torch.allclose(new_head.weight[1], (head.weight[3] + head.weight[4]) / 2)
    assert torch.allclose(new_head.bias[1], (head.bias[3] + head.bias[4]) / 2)
    assert target.config.id2label == {0: "negative", 1: "positive"} and source.config.num_labels == 5


@pytest.fixture(scope="module")
def tiny_source(tiny_encoder, tmp_path_factory):
    """A tiny 5-label 'sentiment' source classifier saved to disk."""
    model, tok = prepare(tiny_encoder, SST5, head_init="random")
    folder = tmp_path_factory.mktemp("source")
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return str(folder)


@pytest.mark.parametrize(
    "options",
    [
        {"label_map": EXPLICIT, "threshold": 0.0},
        {"map_method": "learned", "top_k": 3, "threshold": 0.0, "n_per_class": 2},
        {"label_map": EXPLICIT, "threshold": 0.0, "init_from_source": True, "rounds": 2},
        {"map_method": "names", "threshold": 0.0, "allow_unreachable": True},
        {"map_method": "identity", "threshold": 0.0},  # the target's labels by name; the other three dropped
    ],
)
def test_run_labelmap_end_to_end(tiny_encoder, tiny_source, sentiment_dir, tmp_path, options):
    options = dict(options)
    n_per_class = options.pop("n_per_class", None)
    config = LabelMapConfig(output_dir=str(tmp_path / "out"), source_model=tiny_source,
                            model_name_or_path=tiny_encoder, num_train_epochs=1, min_train_steps=0,
                            per_device_train_batch_size=4, learning_rate=5e-3, disable_tqdm=True,
                            inference_bf16=False, **options)  # fmt: skip
    results = run_labelmap(config, DataArguments(dataset=str(sentiment_dir), n_per_class=n_per_class))
    assert len(results["rounds"]) == config.rounds
    saved = json.loads((tmp_path / "out" / "label_map.json").read_text())
    assert saved["target_labels"] == BINARY
    # The reported scores are those of what was saved: the student, and the source through the saved map.
    _, eval_ds, _ = load_data_args(DataArguments(dataset=str(sentiment_dir)))
    reported = {"accuracy": results["accuracy"], "f1_macro": results["f1_macro"]}
    assert scores_of(tmp_path / "out", eval_ds) == pytest.approx(reported)
    source, source_tok, _ = load_source(tiny_source)
    label_map = LabelMap(saved["source_labels"], BINARY, np.array(saved["matrix"]))
    mapped = label_map.predict_proba(predict_proba(source, source_tok, eval_ds["text"])).argmax(1)
    reported = {"accuracy": results["zero_shot_accuracy"], "f1_macro": results["zero_shot_f1_macro"]}
    assert scores(mapped, eval_ds["label"], len(BINARY)) == pytest.approx(reported)
    if config.map_method == "identity":
        assert saved["method"] == "identity" and saved["hard_map"] == {"negative": "negative", "positive": "positive"}
    student = AutoModelForSequenceClassification.from_pretrained(tmp_path / "out")
    assert student.config.id2label == {0: "negative", 1: "positive"}
    # ... and that student was distilled: its head moved from where the run started it
    start = transfer_head(source, label_map) if config.init_from_source else prepare(config, BINARY)[0]
    assert (student.classifier.weight - start.classifier.weight).abs().max().item() > 1e-3


def test_bad_map_fails_before_the_source_model_loads(tiny_source, sentiment_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(
        AutoModelForSequenceClassification, "from_pretrained", lambda *a, **k: pytest.fail("model loaded")
    )
    config = LabelMapConfig(output_dir=str(tmp_path), source_model=tiny_source, label_map={"meh": "negative"})
    with pytest.raises(ConfigError, match="source label"):
        run_labelmap(config, DataArguments(dataset=str(sentiment_dir)))


@pytest.mark.parametrize(
    "options, n_per_class, source, expected",
    [
        ({"label_map": EXPLICIT}, None, SST5, "explicit"),
        ({}, 4, BINARY, "learned"),
        ({}, None, ["positive", "negative"], "identity"),  # a teacher with the target's own labels, any order
        ({}, None, SST5, "names"),
        ({"map_method": "names"}, None, BINARY, "names"),
    ],
)
def test_auto_map_method(options, n_per_class, source, expected):
    config = LabelMapConfig(output_dir="unused", source_model="unused", **options)
    assert config.resolved_map_method(n_per_class, source, BINARY) == expected


def test_identity_map_names_the_missing_label(tiny_source, sentiment_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(
        AutoModelForSequenceClassification, "from_pretrained", lambda *a, **k: pytest.fail("model loaded")
    )
    (tmp_path / "data").mkdir()
    rows = [{"text": f"text {i}", "label": label} for i, label in enumerate(["negative", "mixed"] * 20)]
    (tmp_path / "data" / "train.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    config = LabelMapConfig(output_dir=str(tmp_path / "out"), source_model=tiny_source, map_method="identity")
    with pytest.raises(ConfigError, match=r"lacks \['mixed'\]"):
        run_labelmap(config, DataArguments(dataset=str(tmp_path / "data" / "train.jsonl")))


def test_missing_source_model_is_named_with_the_fix(sentiment_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    config = LabelMapConfig(output_dir=str(tmp_path / "out"), source_model=str(tmp_path / "not-trained-yet"))
    with pytest.raises(ConfigError, match=r"Cannot load source model .*not-trained-yet.*train it first"):
        run_labelmap(config, DataArguments(dataset=str(sentiment_dir)))


def _two_rounds(out, source, encoder, **options) -> LabelMapConfig:
    options = {"threshold": 0.0, "rounds": 2, "num_train_epochs": 1, "min_train_steps": 0, **options}
    return LabelMapConfig(output_dir=str(out), source_model=source, model_name_or_path=encoder, label_map=EXPLICIT,
                          disable_tqdm=True, inference_bf16=False, **options)  # fmt: skip


def test_stopped_run_resumes_where_it_stopped(tiny_encoder, tiny_source, sentiment_dir, tmp_path, monkeypatch):
    """Stopped in round 2 of 2 and started again with resume_from_checkpoint=last, a run neither scores the pool
    nor trains round 1 again, and ends with the uninterrupted run's rounds and weights."""
    import hf_transfer.labelmap.pipeline as pipeline

    data = DataArguments(dataset=str(sentiment_dir))
    reference = run_labelmap(_two_rounds(tmp_path / "a", tiny_source, tiny_encoder), data)

    trained, scored = [], []
    real_train, real_probs = TransferTrainer.train, pipeline.add_source_probs

    def train(self, *args, **kwargs):
        trained.append(self.args.output_dir)
        if len(trained) == 2:
            raise RuntimeError("stopped")  # in round 2, after round 1 and the re-labelled pool were saved
        return real_train(self, *args, **kwargs)

    monkeypatch.setattr(TransferTrainer, "train", train)
    monkeypatch.setattr(pipeline, "add_source_probs", lambda *a, **k: scored.append(k["desc"]) or real_probs(*a, **k))
    config = _two_rounds(tmp_path / "b", tiny_source, tiny_encoder, resume_from_checkpoint="last")
    with pytest.raises(RuntimeError, match="stopped"):
        run_labelmap(config, data)
    assert len(scored) == 3  # eval, pool, and the pool re-labelled by round 1's student
    trained.clear(), scored.clear()
    resumed = run_labelmap(config, data)
    assert trained == [str(tmp_path / "b" / STATE_DIR / "round-2")]  # round 1 was not trained again
    assert scored == ["Source predictions (eval)"]  # nor the pool scored or re-labelled again
    assert resumed["rounds"] == reference["rounds"] and resumed["pool_seconds"] == pytest.approx(
        json.loads((tmp_path / "b" / STATE_DIR / "pool-1" / MARKER).read_text())
    )
    weights = [AutoModelForSequenceClassification.from_pretrained(tmp_path / d).state_dict() for d in "ab"]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_resuming_another_runs_state_is_refused_before_models_load(tiny_source, sentiment_dir, tmp_path, monkeypatch):
    data = DataArguments(dataset=str(sentiment_dir))
    first = _two_rounds(tmp_path, tiny_source, "minilm", resume_from_checkpoint="last")
    LabelMapState(tmp_path, run_fingerprint(first, data, 1), resume=True).start()
    monkeypatch.setattr(
        AutoModelForSequenceClassification, "from_pretrained", lambda *a, **k: pytest.fail("model loaded")
    )
    other = _two_rounds(tmp_path, tiny_source, "minilm", resume_from_checkpoint="last", threshold=0.5)
    with pytest.raises(ConfigError, match=r"different labelmap run \(differs in: threshold\).*--overwrite_output_dir"):
        run_labelmap(other, data)
    with pytest.raises(ConfigError, match=r"differs in: data\.n_per_class\)"):
        run_labelmap(first, DataArguments(dataset=str(sentiment_dir), n_per_class=2))
    # Neither resuming nor overwriting, the folder is refused (one folder, one run), still before models load.
    with pytest.raises(ConfigError, match=r"already holds another run \(_labelmap_state\).*--overwrite_output_dir"):
        run_labelmap(_two_rounds(tmp_path, tiny_source, "minilm", threshold=0.5), data)
    # Not resuming, the old state is cleared instead, and this run's fingerprint recorded.
    state = LabelMapState(tmp_path, run_fingerprint(other, data, 1), resume=False)
    (tmp_path / STATE_DIR / "pool-1").mkdir()
    state.start()
    assert not (tmp_path / STATE_DIR / "pool-1").exists()
    LabelMapState(tmp_path, run_fingerprint(other, data, 1), resume=True).check()  # now matches


def test_stopped_round_resumes_from_its_trainer_checkpoint(tiny_encoder, tiny_source, sentiment_dir, tmp_path,
                                                           monkeypatch):  # fmt: skip
    """Within a round the Trainer's own checkpoints (save_strategy) carry a stopped round on."""
    data = DataArguments(dataset=str(sentiment_dir))
    options = dict(rounds=1, num_train_epochs=2, save_strategy="epoch", per_device_train_batch_size=4)
    reference = run_labelmap(_two_rounds(tmp_path / "a", tiny_source, tiny_encoder, **options), data)
    real_save = TransferTrainer._save_checkpoint

    def save_then_stop(self, *args, **kwargs):
        real_save(self, *args, **kwargs)
        raise RuntimeError("stopped")  # right after epoch 1's checkpoint

    monkeypatch.setattr(TransferTrainer, "_save_checkpoint", save_then_stop)
    config = _two_rounds(tmp_path / "b", tiny_source, tiny_encoder, resume_from_checkpoint="last", **options)
    with pytest.raises(RuntimeError, match="stopped"):
        run_labelmap(config, data)
    monkeypatch.setattr(TransferTrainer, "_save_checkpoint", real_save)
    checkpoints = sorted((tmp_path / "b" / STATE_DIR / "round-1").glob("checkpoint-*"))
    assert len(checkpoints) == 1
    resumed = run_labelmap(config, data)
    assert resumed["rounds"] == reference["rounds"]
    state = json.loads((tmp_path / "b" / STATE_DIR / "round-1" / "checkpoint-8" / "trainer_state.json").read_text())
    assert [round(h["epoch"]) for h in state["log_history"] if "loss" in h] == [1, 2]  # epoch 1 trained once


def test_an_unusable_output_dir_stops_before_the_source_model_loads(tiny_source, sentiment_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(
        AutoModelForSequenceClassification, "from_pretrained", lambda *a, **k: pytest.fail("model loaded")
    )
    (tmp_path / "taken").write_text("a file")
    config = _two_rounds(tmp_path / "taken", tiny_source, "minilm")
    with pytest.raises(ConfigError, match="is a file, not a folder"):
        run_labelmap(config, DataArguments(dataset=str(sentiment_dir)))
