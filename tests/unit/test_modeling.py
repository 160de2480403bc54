"""TransferForSequenceClassification on a tiny random BERT: pooling, normalisation, loss, the cached-feature
forward, sentence-transformers pooling detection, save/reload via the Auto classes."""

from __future__ import annotations

import copy

import pytest
import torch
from torch.nn import functional as F
from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification, AutoTokenizer

import hf_transfer  # noqa: F401  (registers the Auto classes)
from hf_transfer.defaults import resolve_model
from hf_transfer.finetune import prepare
from hf_transfer.modeling import TransferConfig, TransferForSequenceClassification, pool, register_auto_classes

pytestmark = pytest.mark.usefixtures("single_thread")

LABELS = ["negative", "neutral", "positive"]
TEXTS = ["good movie", "a very awful plot and a boring cast", "the film"]


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    return AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.fixture(scope="module")
def bert(tiny_model_dir):
    return AutoModel.from_pretrained(tiny_model_dir).eval()


def make_model(bert, pooling="mean", normalize=False, **config_kwargs) -> TransferForSequenceClassification:
    """A classifier around a copy of the loaded tiny BERT, with a random (seeded) head."""
    encoder = copy.deepcopy(bert)
    config = TransferConfig(
        encoder_config=encoder.config.to_dict(),
        pooling=pooling,
        normalize=normalize,
        id2label=dict(enumerate(LABELS)),
        label2id={label: i for i, label in enumerate(LABELS)},
        **config_kwargs,
    )
    model = TransferForSequenceClassification(config, encoder=encoder)
    generator = torch.Generator().manual_seed(5)
    with torch.no_grad():
        model.classifier.weight.copy_(torch.randn(model.classifier.weight.shape, generator=generator))
        model.classifier.bias.copy_(torch.randn(model.classifier.bias.shape, generator=generator))
    return model.eval()


def hand_pool(bert, tokenizer, text: str, mode: str) -> torch.Tensor:
    """Pool one unpadded text straight from the BERT outputs, without hf_transfer."""
    batch = tokenizer([text], return_tensors="pt")
    with torch.no_grad():
        out = bert(**batch)
    hidden = out.last_hidden_state[0]
    return {
        "mean": hidden.mean(0),
        "cls": hidden[0],
        "max": hidden.max(0).values,
        "pooler": out.pooler_output[0],
    }[mode]


# --------------------------------------------------------------------------------------------------------------
# pool() on hand-made tensors
# --------------------------------------------------------------------------------------------------------------

HIDDEN = torch.tensor(
    [
        [[1.0, -2.0], [3.0, -4.0], [100.0, 100.0]],  # last position is padding: large, must be ignored
        [[-1.0, 0.0], [-5.0, 2.0], [0.0, 1.0]],
    ]
)
MASK = torch.tensor([[1, 1, 0], [1, 1, 1]])


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("mean", [[2.0, -3.0], [-2.0, 1.0]]),
        ("max", [[3.0, -2.0], [0.0, 2.0]]),
        ("cls", [[1.0, -2.0], [-1.0, 0.0]]),
    ],
)
def test_pool_by_hand(mode, expected):
    assert torch.equal(pool(HIDDEN, MASK, mode), torch.tensor(expected))


def test_pool_without_mask_uses_every_position():
    assert torch.allclose(pool(HIDDEN, None, "mean"), HIDDEN.mean(1))
    assert torch.equal(pool(HIDDEN, None, "max"), HIDDEN.amax(1))


def test_pool_max_ignores_padding_even_when_all_values_are_negative():
    hidden = torch.tensor([[[-3.0], [-2.0], [0.0]]])
    assert pool(hidden, torch.tensor([[1, 1, 0]]), "max").item() == -2.0


# --------------------------------------------------------------------------------------------------------------
# Pooling through the model
# --------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["mean", "cls", "max", "pooler"])
def test_embedding_matches_hand_pooling(bert, tokenizer, mode):
    model = make_model(bert, pooling=mode)
    with torch.no_grad():
        got = model.embed(**tokenizer([TEXTS[0]], return_tensors="pt"))[0]
    assert torch.allclose(got, hand_pool(bert, tokenizer, TEXTS[0], mode), atol=1e-6)


@pytest.mark.parametrize("mode", ["mean", "cls", "max", "pooler"])
def test_padding_does_not_change_the_embedding(bert, tokenizer, mode):
    """Unnormalised, so a mean over the padded length (a wrong scale) shows too."""
    model = make_model(bert, pooling=mode)
    alone = tokenizer([TEXTS[0]], return_tensors="pt")
    padded = tokenizer(TEXTS, padding=True, return_tensors="pt")
    assert padded["attention_mask"][0].sum() < padded["attention_mask"].shape[1], "the test needs padding"
    with torch.no_grad():
        single = model.embed(**alone)[0]
        batched = model.embed(**padded)[0]
    assert torch.allclose(single, batched, atol=1e-5)


def test_mean_pooling_differs_from_unmasked_mean(bert, tokenizer):
    """The padded positions really are excluded, not just harmless: an unmasked mean gives another vector."""
    model = make_model(bert, pooling="mean")
    padded = tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        masked = model.embed(**padded)[0]
        unmasked = bert(**padded).last_hidden_state[0].mean(0)
    assert not torch.allclose(masked, unmasked, atol=1e-3)


@pytest.mark.parametrize("mode", ["mean", "cls", "max", "pooler"])
def test_normalize_gives_unit_norm(bert, tokenizer, mode):
    raw = make_model(bert, pooling=mode, normalize=False)
    unit = make_model(bert, pooling=mode, normalize=True)
    batch = tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        plain, normed = raw.embed(**batch), unit.embed(**batch)
    assert not torch.allclose(plain.norm(dim=-1), torch.ones(3), atol=1e-3)
    assert torch.allclose(normed.norm(dim=-1), torch.ones(3), atol=1e-5)
    assert torch.allclose(normed, F.normalize(plain, dim=-1), atol=1e-6)


@pytest.mark.parametrize("normalize", [False, True])
def test_forward_from_sentence_embedding_equals_forward_from_ids(bert, tokenizer, normalize):
    model = make_model(bert, normalize=normalize)
    batch = tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        from_ids = model(**batch).logits
        embedding = model.embed(**batch)
        from_features = model(sentence_embedding=embedding).logits
    assert from_ids.shape == (3, 3)
    assert torch.allclose(from_ids, from_features, atol=1e-6)
    assert torch.allclose(from_ids, embedding @ model.classifier.weight.T + model.classifier.bias, atol=1e-5)


@pytest.mark.parametrize(
    "label_dtype",
    [
        torch.long,
        torch.int,
    ],
    ids=["int64", "int32"],
)
def test_loss_with_hard_labels_is_cross_entropy(bert, tokenizer, label_dtype):
    model = make_model(bert)
    batch = tokenizer(TEXTS, padding=True, return_tensors="pt")
    labels = torch.tensor([2, 0, 1], dtype=label_dtype)
    with torch.no_grad():
        out = model(**batch, labels=labels)
    assert torch.allclose(out.loss, F.cross_entropy(out.logits, labels.long()), atol=1e-6)


def test_loss_with_soft_labels_is_cross_entropy_to_the_distribution(bert, tokenizer):
    model = make_model(bert)
    batch = tokenizer(TEXTS, padding=True, return_tensors="pt")
    soft = torch.tensor([[0.1, 0.2, 0.7], [1.0, 0.0, 0.0], [0.3, 0.3, 0.4]])
    with torch.no_grad():
        out = model(**batch, labels=soft)
    expected = -(soft * out.logits.log_softmax(-1)).sum(-1).mean()
    assert torch.allclose(out.loss, expected, atol=1e-6)


def test_no_labels_no_loss(bert, tokenizer):
    model = make_model(bert)
    with torch.no_grad():
        assert model(**tokenizer(TEXTS[:1], return_tensors="pt")).loss is None


def test_unknown_pooling_is_rejected():
    with pytest.raises(ValueError, match="pooling='sum'"):
        TransferConfig(pooling="sum")


def test_built_from_config_alone(tiny_model_dir, tokenizer):
    """Without an encoder argument the model builds a (random) encoder of the configured shape."""
    encoder_config = AutoConfig.from_pretrained(tiny_model_dir)
    model = TransferForSequenceClassification(TransferConfig(encoder_config=encoder_config.to_dict(), num_labels=4))
    assert model.config.hidden_size == 32 and model.classifier.out_features == 4
    assert sum(1 for _ in model.encoder.encoder.layer) == 2
    assert model.get_input_embeddings() is model.encoder.embeddings.word_embeddings


# --------------------------------------------------------------------------------------------------------------
# Save / reload through the Auto classes
# --------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("pooling", "normalize"), [("mean", False), ("cls", True), ("max", True)])
def test_save_and_reload_with_auto_classes(tmp_path, bert, tokenizer, pooling, normalize):
    model = make_model(bert, pooling=pooling, normalize=normalize)
    model.save_pretrained(tmp_path)
    batch = tokenizer(TEXTS, padding=True, return_tensors="pt")

    config = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(config, TransferConfig)
    assert config.model_type == "hf_transfer"
    assert (config.pooling, config.normalize) == (pooling, normalize)
    assert config.id2label == dict(enumerate(LABELS))
    assert config.label2id == {label: i for i, label in enumerate(LABELS)}
    assert config.num_labels == 3
    assert config.encoder_config.model_type == "bert" and config.encoder_config.hidden_size == 32

    reloaded = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    assert type(reloaded) is TransferForSequenceClassification
    with torch.no_grad():
        expected, got = model(**batch).logits, reloaded(**batch).logits
    assert torch.allclose(expected, got, atol=1e-6)
    assert torch.equal(reloaded.classifier.weight, model.classifier.weight)


def test_prepared_model_and_tokenizer_save_and_reload_with_auto_classes(tiny_encoder, tmp_path):
    """prepare()'s model and tokenizer, saved side by side, reload through the Auto classes."""
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


def test_register_auto_classes_is_idempotent():
    register_auto_classes()
    register_auto_classes()
    assert AutoConfig.for_model("hf_transfer").__class__ is TransferConfig


def test_embedded_aliases_resolve(monkeypatch):
    assert resolve_model("some/model") == "some/model"
    monkeypatch.setattr("hf_transfer.defaults._package_dir", lambda package: None)
    assert resolve_model("minilm") == "sentence-transformers/all-MiniLM-L6-v2"  # the Hub fallback


@pytest.mark.parametrize("tagger", [False, True])
def test_head_runs_outside_bf16_autocast(bert, tokenizer, tagger):
    """Under bf16 autocast the encoder runs in bf16 but the head does not: its logits are float32 and equal the
    fp32 head applied to the autocast features (bf16-rounded logits swapped near-tied NER tags: 41.6 -> 29.0 F1)."""
    from hf_transfer.modeling import TransferForTokenClassification

    model = make_model(bert, normalize=True)
    if tagger:
        model = TransferForTokenClassification(model.config, encoder=model.encoder).eval()
        model.config.continue_runs = False  # compare raw logits (the B-/I- reading would swap these labels)
    batch = tokenizer(TEXTS, return_tensors="pt", padding=True)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(**batch).logits
        features = model.token_states(**batch) if tagger else model.embed(**batch)
    assert logits.dtype == torch.float32
    with torch.no_grad():
        expected = model.classifier(features.float())
    torch.testing.assert_close(logits, expected, rtol=0, atol=0)
    with torch.no_grad():  # outside autocast nothing changes
        assert model(**batch).logits.dtype == torch.float32
