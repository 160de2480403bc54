"""finetune on a tiny random encoder: methods, freezing, head init, export, feature cache, config checks."""

from __future__ import annotations

import json

import pytest
import torch
from peft import PeftModel
from torch.nn import functional as F
from transformers import AutoModel, AutoModelForSequenceClassification

from hf_transfer.config import DataArguments
from hf_transfer.errors import DataError
from hf_transfer.finetune import (
    FinetuneConfig,
    WeightInterpolationCallback,
    embed_dataset,
    embed_texts,
    export_model,
    prepare,
    prior_kl,
    run_finetune,
)
from hf_transfer.modeling import TransferForSequenceClassification

from .conftest import write_jsonl

LABELS = ["negative", "positive"]


def trainable(model) -> set[str]:
    return {n for n, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize(
    ("method", "wrapper"),
    [("full", TransferForSequenceClassification), ("head", TransferForSequenceClassification),
     ("lora", PeftModel), ("dora", PeftModel), ("ia3", PeftModel), ("loha", PeftModel)],
)  # fmt: skip
def test_methods_train_the_right_parameters(tiny_encoder, method, wrapper):
    model, _ = prepare(tiny_encoder, LABELS, method=method)
    assert isinstance(model, wrapper)
    names = trainable(model)
    assert any("classifier" in n for n in names), "the head must always train"
    if method == "full":
        assert names == {n for n, _ in model.named_parameters()}
    elif method == "head":
        assert names == {"classifier.weight", "classifier.bias"}
    else:
        assert "classifier" in model.peft_config["default"].modules_to_save
        assert not any("encoder." in n and "lora_" not in n and "ia3_" not in n and "hada_" not in n
                       and "magnitude" not in n for n in names)  # fmt: skip


def test_partial_freezing(tiny_encoder):
    model, _ = prepare(tiny_encoder, LABELS, freeze_embeddings=True, freeze_layers=1)
    names = trainable(model)
    assert not any(n.startswith("encoder.embeddings.") for n in names)
    assert not any(n.startswith("encoder.encoder.layer.0.") for n in names)
    assert any(n.startswith("encoder.encoder.layer.1.") for n in names)


def test_label_description_head_is_scaled_cosine(tiny_encoder):
    descriptions = {"negative": ["bad movie", "awful film"], "positive": "good movie"}
    model, tok = prepare(tiny_encoder, LABELS, label_descriptions=descriptions, head_init_scale=7.0, normalize=True)
    with torch.no_grad():
        neg = F.normalize(F.normalize(embed_texts(model, tok, ["bad movie", "awful film"]), dim=-1).mean(0), dim=-1)
        pos = F.normalize(embed_texts(model, tok, ["good movie"])[0], dim=-1)
        text = embed_texts(model, tok, ["boring plot"])[0]
        logits = model(**tok(["boring plot"], return_tensors="pt")).logits[0]
    expected = 7.0 * torch.stack([text @ neg, text @ pos])
    assert torch.allclose(logits, expected, atol=1e-5)


def _no_weights(*args, **kwargs):
    raise AssertionError("weights were loaded before the input was validated")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"method": "lorax"}, "method='lorax' is not known"),
        ({"freeze_layers": 3}, "freeze_layers=3 but"),
        ({"label_descriptions": {"neutral": "meh"}}, "label(s) ['neutral'] that the task does not have"),
        ({"labels": ["only"]}, "at least 2 labels"),
        ({"labels": ["a", "a"]}, "unique"),
    ],
)
def test_bad_input_fails_before_any_weights_load(tiny_encoder, monkeypatch, kwargs, message):
    monkeypatch.setattr(AutoModel, "from_pretrained", _no_weights)
    labels = kwargs.pop("labels", LABELS)
    with pytest.raises(ValueError) as err:
        prepare(tiny_encoder, labels, **kwargs)
    assert message in str(err.value)


def test_lora_export_merges_into_a_plain_model(tiny_encoder):
    model, tok = prepare(tiny_encoder, LABELS, method="lora", peft_kwargs={"r": 4, "init_lora_weights": False})
    model.eval()
    batch = tok(["good movie", "bad plot"], padding=True, return_tensors="pt")
    with torch.no_grad():
        before = model(**batch).logits
        merged = export_model(model)
        after = merged(**batch).logits
    assert type(merged) is TransferForSequenceClassification
    assert torch.allclose(before, after, atol=1e-5)


def test_embed_dataset_adds_features_and_reuses_its_cache(tiny_encoder, tmp_path):
    from datasets import Dataset

    model, tok = prepare(tiny_encoder, LABELS, method="head")
    ds = Dataset.from_dict({"text": ["good movie", "a very bad film", "fun"], "label": [1, 0, 1]})
    out = embed_dataset(ds, model, tok, cache_dir=str(tmp_path))
    expected = embed_texts(model, tok, ds["text"])
    assert torch.allclose(torch.tensor(out["sentence_embedding"]), expected, atol=1e-6)
    files = list(tmp_path.glob("features-*.arrow"))
    assert len(files) == 1
    stamp = files[0].stat().st_mtime_ns
    again = embed_dataset(ds, model, tok, cache_dir=str(tmp_path))
    assert files[0].stat().st_mtime_ns == stamp and again["sentence_embedding"] == out["sentence_embedding"]


def test_prior_kl_by_hand():
    logits, prior = torch.tensor([[0.0, 1.0]]), torch.tensor([[1.0, 0.0]])
    p, q = prior.softmax(-1)[0], logits.softmax(-1)[0]
    assert prior_kl(logits, prior).item() == pytest.approx(float((p * (p / q).log()).sum()), rel=1e-5)


def test_weight_interpolation_goes_halfway():
    layer = torch.nn.Linear(2, 2)
    start = layer.weight.detach().clone()
    callback = WeightInterpolationCallback(0.5)
    callback.on_train_begin(None, None, None, model=layer)
    with torch.no_grad():
        layer.weight.add_(2.0)
    callback.on_train_end(None, None, None, model=layer)
    assert torch.allclose(layer.weight, start + 1.0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"method": "nope"}, "method='nope' is not known"),
        ({"prior_weight": 1.5}, "prior_weight=1.5"),
        ({"wise_alpha": -0.1}, "wise_alpha=-0.1"),
        ({"peft_kwargs": {"r": 4}}, "not a PEFT method"),
        ({"label_descriptions": "{not json"}, "label_descriptions must be a mapping or a JSON object"),
        ({"freeze_layers": -1}, "freeze_layers=-1"),
    ],
)
def test_finetune_config_validation(tmp_path, kwargs, message):
    with pytest.raises(ValueError) as err:
        FinetuneConfig(output_dir=str(tmp_path), **kwargs)
    assert message in str(err.value)


def test_finetune_config_parses_json_mappings(tmp_path):
    config = FinetuneConfig(output_dir=str(tmp_path), method="LoRA", peft_kwargs='{"r": 4}')
    assert (config.method, config.peft_kwargs, config.is_peft) == ("lora", {"r": 4}, True)


@pytest.mark.parametrize(("method", "n_per_class"), [("full", 4), ("head", 4), ("lora", 4), ("full", 0)])
def test_run_finetune_end_to_end(tiny_encoder, sentiment_dir, tmp_path, method, n_per_class):
    out = tmp_path / "run"
    config = FinetuneConfig(output_dir=str(out), model_name_or_path=tiny_encoder, method=method,
                            num_train_epochs=1, disable_tqdm=True, prior_weight=0.3 if method == "full" else 0.0,
                            wise_alpha=0.5 if method == "lora" else 1.0)  # fmt: skip
    results = run_finetune(config, DataArguments(dataset=str(sentiment_dir), n_per_class=n_per_class))
    assert results["n_train"] == 2 * n_per_class and results["n_eval"] == 8
    assert 0.0 <= results["accuracy"] <= 1.0 and "f1_macro" in results
    assert json.loads((out / "results.json").read_text())["method"] == method
    reloaded = AutoModelForSequenceClassification.from_pretrained(out)
    assert isinstance(reloaded, TransferForSequenceClassification)
    assert reloaded.config.id2label == {0: "negative", 1: "positive"}


def test_interrupted_run_resumes_from_its_last_checkpoint(tiny_encoder, sentiment_dir, tmp_path):
    """`resume_from_checkpoint=last` starts fresh when nothing is saved, else continues the saved step."""
    out = tmp_path / "run"
    common = dict(output_dir=str(out), model_name_or_path=tiny_encoder, method="full", disable_tqdm=True,
                  save_strategy="epoch", per_device_train_batch_size=4, resume_from_checkpoint="last")  # fmt: skip
    data = DataArguments(dataset=str(sentiment_dir), n_per_class=4)
    run_finetune(FinetuneConfig(num_train_epochs=1, **common), data)  # "interrupted" after epoch 1
    first = out / "checkpoint-2" / "trainer_state.json"
    stamp = first.stat().st_mtime_ns
    run_finetune(FinetuneConfig(num_train_epochs=2, **common), data)
    state = json.loads((out / "checkpoint-4" / "trainer_state.json").read_text())
    assert state["global_step"] == 4
    # epoch 1 was not trained again: its checkpoint was not rewritten, and its log entry was carried over
    assert first.stat().st_mtime_ns == stamp
    assert [round(h["epoch"]) for h in state["log_history"] if "loss" in h] == [1, 2]


def test_extra_train_rows_are_appended_by_label_name(tiny_encoder, sentiment_dir, tmp_path):
    """Synthetic rows (labels as names, any order) join the real sample; with n_per_class=0 they train alone."""
    from datasets import ClassLabel, Dataset, Features, Value

    from hf_transfer.finetune.pipeline import load_data_args

    extra = Dataset.from_dict(
        {"text": ["loved it", "awful film", "great fun"], "label": [0, 1, 0], "generator": ["g"] * 3},
        features=Features({"text": Value("string"), "label": ClassLabel(names=["positive", "negative"]),
                           "generator": Value("string")}),
    )  # fmt: skip
    extra.save_to_disk(str(tmp_path / "synthetic"))
    for n, expected in ((2, 7), (0, 3)):
        data = DataArguments(dataset=str(sentiment_dir), n_per_class=n, extra_train=str(tmp_path / "synthetic"))
        train, _, labels = load_data_args(data)
        assert labels == ["negative", "positive"] and len(train) == expected
        tail = train.select(range(len(train) - 3, len(train)))
        assert [labels[y] for y in tail["label"]] == ["positive", "negative", "positive"]  # re-encoded by name
    config = FinetuneConfig(output_dir=str(tmp_path / "run"), model_name_or_path=tiny_encoder, method="full",
                            num_train_epochs=1, disable_tqdm=True)  # fmt: skip
    results = run_finetune(
        config, DataArguments(dataset=str(sentiment_dir), n_per_class=0, extra_train=str(tmp_path / "synthetic"))
    )
    assert results["n_train"] == 3 and results["extra_train"] == str(tmp_path / "synthetic")


def test_extra_train_with_an_unknown_label_names_the_option(sentiment_dir, tmp_path):
    from hf_transfer.finetune.pipeline import load_data_args

    write_jsonl(tmp_path / "extra.jsonl", [{"text": "so so", "label": "neutral"}])
    with pytest.raises(DataError, match=r"extra_train=.*neutral"):
        load_data_args(
            DataArguments(dataset=str(sentiment_dir), n_per_class=2, extra_train=str(tmp_path / "extra.jsonl"))
        )


def test_repeat_train_weights_the_real_rows_before_extra_rows(sentiment_dir, tmp_path):
    from hf_transfer.finetune.pipeline import load_data_args

    write_jsonl(tmp_path / "extra.jsonl", [{"text": "loved it", "label": "positive"}] * 5)
    counts: dict = {}
    data = DataArguments(
        dataset=str(sentiment_dir), n_per_class=2, repeat_train=3, extra_train=str(tmp_path / "extra.jsonl")
    )
    train, _, _ = load_data_args(data, counts)
    assert len(train) == 4 * 3 + 5 and counts == {"n_real_train": 4, "n_extra_train": 5}
    assert train["text"][:4] == train["text"][4:8]  # the sampled real rows, repeated in order
    with pytest.raises(ValueError, match="repeat_train=0"):
        DataArguments(repeat_train=0)
