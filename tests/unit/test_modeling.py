"""The pooled classifier: pooling modes, the cached-feature forward, saving and reloading via Auto classes."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

import hf_transfer  # noqa: F401  (registers the Auto classes)
from hf_transfer.defaults import resolve_model, sentence_transformers_pooling
from hf_transfer.finetune import prepare
from hf_transfer.modeling import TransferForSequenceClassification, pool


def test_mean_pooling_ignores_padding():
    hidden = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]])
    mask = torch.tensor([[1, 1, 0]])
    assert torch.allclose(pool(hidden, mask, "mean"), torch.tensor([[2.0, 3.0]]))
    assert torch.allclose(pool(hidden, mask, "max"), torch.tensor([[3.0, 4.0]]))
    assert torch.allclose(pool(hidden, mask, "cls"), torch.tensor([[1.0, 2.0]]))


@pytest.mark.parametrize("pooling", ["mean", "cls", "max", "pooler"])
def test_padded_and_unpadded_inputs_embed_alike(tiny_encoder, pooling):
    model, tok = prepare(tiny_encoder, ["a", "b"], pooling=pooling, normalize=True, head_init="random")
    model.eval()
    alone = tok(["good movie"], return_tensors="pt")
    padded = tok(["good movie", "a very very good fun movie film"], padding=True, return_tensors="pt")
    with torch.no_grad():
        a = model.embed(**alone)[0]
        b = model.embed(**padded)[0]
    assert torch.allclose(a, b, atol=1e-5)
    assert torch.allclose(a.norm(), torch.tensor(1.0), atol=1e-5)


def test_cached_feature_forward_matches_full_forward_and_loss(tiny_encoder):
    model, tok = prepare(tiny_encoder, ["neg", "pos"])
    model.eval()
    batch = tok(["good movie", "bad film"], padding=True, return_tensors="pt")
    labels = torch.tensor([1, 0])
    with torch.no_grad():
        full = model(**batch, labels=labels)
        cached = model(sentence_embedding=model.embed(**batch), labels=labels)
    assert torch.allclose(full.logits, cached.logits, atol=1e-6)
    assert torch.allclose(full.loss, torch.nn.functional.cross_entropy(full.logits, labels))


def test_save_and_reload_with_auto_classes(tiny_encoder, tmp_path):
    model, tok = prepare(tiny_encoder, ["neg", "neutral", "pos"], pooling="max")
    model.eval()
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    config = AutoConfig.from_pretrained(tmp_path)
    assert (config.model_type, config.pooling, config.normalize) == ("hf_transfer", "max", False)
    assert config.id2label == {0: "neg", 1: "neutral", 2: "pos"}
    reloaded = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    assert isinstance(reloaded, TransferForSequenceClassification)
    batch = AutoTokenizer.from_pretrained(tmp_path)(["good fun", "awful plot"], padding=True, return_tensors="pt")
    with torch.no_grad():
        assert torch.allclose(model(**batch).logits, reloaded(**batch).logits, atol=1e-6)


def test_pooling_is_read_from_a_sentence_transformers_checkpoint(tiny_st_encoder, tiny_encoder):
    assert sentence_transformers_pooling(tiny_st_encoder) == ("cls", True)
    assert sentence_transformers_pooling(tiny_encoder) is None
    model, _ = prepare(tiny_st_encoder, ["a", "b"])
    assert (model.config.pooling, model.config.normalize) == ("cls", True)
    model, _ = prepare(tiny_encoder, ["a", "b"])
    assert (model.config.pooling, model.config.normalize) == ("mean", False)


def test_embedded_aliases_resolve(monkeypatch):
    assert resolve_model("some/model") == "some/model"
    monkeypatch.setattr("hf_transfer.defaults._package_dir", lambda package: None)
    assert resolve_model("minilm") == "sentence-transformers/all-MiniLM-L6-v2"  # the Hub fallback
