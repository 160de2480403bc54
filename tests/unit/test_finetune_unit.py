"""The finetune strategy on the tiny random BERT: prepare() per method, head init, freezing, early input checks,
export, the feature cache, the trainer pieces, FinetuneConfig checks, extra/repeated train rows, resuming and
run_finetune end to end."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import LABELS, LAYERS, scores_of, write_rows
from datasets import ClassLabel, Dataset, Features, Value
from peft import PeftModel, PeftType
from torch.nn import functional as F
from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer

import hf_transfer.finetune.features as features_module
from hf_transfer.config import DataArguments
from hf_transfer.errors import ConfigError, DataError
from hf_transfer.finetune import (
    FinetuneConfig,
    embed_dataset,
    embed_texts,
    export_model,
    layer_stack,
    load_data_args,
    peft_config_for,
    prepare,
    run_finetune,
)
from hf_transfer.modeling import TransferForSequenceClassification
from hf_transfer.trainer import soft_target_loss

pytestmark = pytest.mark.usefixtures("single_thread")

TEXTS = ["a very good movie", "the boring plot", "an okay cast", "the terrible film and the plain story"]
ADAPTER_MARKERS = ("lora_", "hada_", "ia3_")


def trainable(model) -> set[str]:
    return {n for n, p in model.named_parameters() if p.requires_grad}


def logits_of(model, tokenizer, texts=TEXTS) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model(**tokenizer(texts, padding=True, return_tensors="pt")).logits


# --------------------------------------------------------------------------------------------------------------
# prepare(): one wrapper per method, the right parameters trainable
# --------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "peft_type"),
    [("full", None), ("head", None), ("lora", PeftType.LORA), ("dora", PeftType.LORA), ("ia3", PeftType.IA3),
     ("loha", PeftType.LOHA)],
)  # fmt: skip
def test_prepare_each_method(tiny_model_dir, method, peft_type):
    model, tokenizer = prepare(tiny_model_dir, LABELS, method=method)
    names = trainable(model)
    if peft_type is None:
        assert type(model) is TransferForSequenceClassification
        base = model
        if method == "full":
            assert names == {n for n, _ in model.named_parameters()}
        else:  # head: the backbone is frozen, the head is not
            assert names == {"classifier.weight", "classifier.bias"}
    else:
        assert isinstance(model, PeftModel)
        config = model.peft_config["default"]
        assert config.peft_type == peft_type
        assert getattr(config, "use_dora", False) == (method == "dora")
        assert "classifier" in config.modules_to_save
        head = {n for n in names if ".classifier." in n}
        assert head == {
            "base_model.model.classifier.modules_to_save.default.weight",
            "base_model.model.classifier.modules_to_save.default.bias",
        }
        adapters = names - head
        assert adapters and all(any(m in n for m in ADAPTER_MARKERS) for n in adapters), sorted(adapters)
        assert all(".encoder." in n for n in adapters)
        base = model.get_base_model()
        assert type(base) is TransferForSequenceClassification
    assert base.config.id2label == dict(enumerate(LABELS))
    assert base.config.label2id == {label: i for i, label in enumerate(LABELS)}
    assert logits_of(model, tokenizer).shape == (len(TEXTS), len(LABELS))


@pytest.mark.parametrize("method", ["lora", "dora", "ia3", "loha"])
def test_peft_wrapping_starts_from_the_unwrapped_model(tiny_model_dir, method):
    """Adapters start as the identity and the head copy keeps the description init: same logits as 'full'."""
    plain, tokenizer = prepare(tiny_model_dir, LABELS, method="full")
    wrapped, _ = prepare(tiny_model_dir, LABELS, method=method)
    assert torch.allclose(logits_of(plain, tokenizer), logits_of(wrapped, tokenizer), atol=1e-5)


def test_peft_kwargs_reach_the_peft_config(tiny_model_dir):
    model, _ = prepare(tiny_model_dir, LABELS, method="lora", peft_kwargs={"r": 2, "target_modules": ["key"]})
    config = model.peft_config["default"]
    assert config.r == 2 and set(config.target_modules) == {"key"}
    lora_names = {n for n in trainable(model) if "lora_" in n}
    assert lora_names and all(".key." in n for n in lora_names)


@pytest.mark.parametrize(
    ("method", "model_type", "expected"),
    [
        ("lora", "bert", {"target_modules": {"query", "value"}, "use_dora": False}),
        ("dora", "bert", {"target_modules": {"query", "value"}, "use_dora": True}),
        ("ia3", "bert", {"target_modules": {"key", "value", "output.dense"}, "feedforward_modules": {"output.dense"}}),
        ("lora", "no-such-architecture", {"target_modules": "all-linear"}),
    ],
)
def test_peft_config_for(method, model_type, expected):
    config = peft_config_for(method, model_type)
    assert config.task_type == "SEQ_CLS"
    assert "classifier" in config.modules_to_save
    for key, value in expected.items():
        got = getattr(config, key)
        assert (set(got) if isinstance(value, set) else got) == value, key


def test_peft_config_overrides_win():
    config = peft_config_for("lora", "bert", r=3, target_modules=["key"], modules_to_save=["classifier", "pooler"])
    assert config.r == 3 and set(config.target_modules) == {"key"}
    assert set(config.modules_to_save) >= {"classifier", "pooler"}


# --------------------------------------------------------------------------------------------------------------
# Pooling detection and the label-description head
# --------------------------------------------------------------------------------------------------------------


def test_sentence_transformers_pooling_is_detected(tiny_st_model_dir, tiny_model_dir):
    st_model, _ = prepare(tiny_st_model_dir, LABELS, method="head")
    assert (st_model.config.pooling, st_model.config.normalize) == ("cls", True)
    plain, _ = prepare(tiny_model_dir, LABELS, method="head")
    assert (plain.config.pooling, plain.config.normalize) == ("mean", False)
    overridden, _ = prepare(tiny_st_model_dir, LABELS, method="head", pooling="max", normalize=False)
    assert (overridden.config.pooling, overridden.config.normalize) == ("max", False)


@pytest.mark.parametrize(
    ("mode", "normalize", "expected"),
    [("cls", True, ("cls", True)), ("max", False, ("max", False)), ("mean", True, ("mean", True))],
)
def test_sentence_transformers_pooling_files(tmp_path, mode, normalize, expected):
    from conftest import write_sentence_transformers_files

    from hf_transfer.defaults import sentence_transformers_pooling

    assert sentence_transformers_pooling(str(tmp_path)) is None
    write_sentence_transformers_files(tmp_path, mode=mode, normalize=normalize)
    assert sentence_transformers_pooling(str(tmp_path)) == expected


def independent_embeddings(model_dir, texts, normalize=True) -> torch.Tensor:
    """Mean-pooled BERT outputs computed here, without hf_transfer, one text at a time (no padding)."""
    bert = AutoModel.from_pretrained(model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    rows = []
    with torch.no_grad():
        for text in texts:
            rows.append(bert(**tokenizer([text], return_tensors="pt")).last_hidden_state[0].mean(0))
    emb = torch.stack(rows)
    return F.normalize(emb, dim=-1) if normalize else emb


@pytest.mark.parametrize("normalize", [True, False])
def test_description_head_logits_are_scaled_cosines(tiny_model_dir, normalize):
    descriptions = {"negative": ["bad movie", "awful film"], "positive": "good movie"}  # neutral: its name
    model, tokenizer = prepare(
        tiny_model_dir, LABELS, label_descriptions=descriptions, head_init_scale=7.0, normalize=normalize
    )
    neg = F.normalize(independent_embeddings(tiny_model_dir, descriptions["negative"]).mean(0), dim=-1)
    neutral = independent_embeddings(tiny_model_dir, ["neutral"])[0]
    pos = independent_embeddings(tiny_model_dir, ["good movie"])[0]
    rows = torch.stack([neg, neutral, pos])
    assert torch.allclose(model.classifier.weight.detach(), 7.0 * rows, atol=1e-5)
    assert torch.equal(model.classifier.bias.detach(), torch.zeros(3))

    texts = independent_embeddings(tiny_model_dir, TEXTS, normalize=normalize)
    logits = torch.cat([logits_of(model, tokenizer, [t]) for t in TEXTS])
    assert torch.allclose(logits, 7.0 * texts @ rows.T, atol=1e-4)
    if normalize:  # on unit-norm features the logits are exactly scale x cosine
        cosines = F.cosine_similarity(texts[:, None, :], rows[None, :, :], dim=-1)
        assert torch.allclose(logits, 7.0 * cosines, atol=1e-4)
        assert logits.abs().max() <= 7.0 + 1e-4


def test_description_head_is_not_degenerate(tiny_model_dir):
    """The fixture's tokenizer must really know the words, or every description embeds to [UNK]."""
    model, tokenizer = prepare(tiny_model_dir, LABELS, normalize=True)
    weight = model.classifier.weight.detach()
    assert not torch.allclose(weight[0], weight[1], atol=1e-3) and not torch.allclose(weight[1], weight[2], atol=1e-3)
    assert tokenizer.unk_token_id not in tokenizer(TEXTS)["input_ids"][0]


def test_random_head_init(tiny_model_dir):
    described, _ = prepare(tiny_model_dir, LABELS)
    random_head, _ = prepare(tiny_model_dir, LABELS, head_init="random")
    weight = random_head.classifier.weight.detach()
    assert not torch.allclose(weight, described.classifier.weight.detach(), atol=1e-3)
    assert 0.005 < weight.std().item() < 0.05  # normal(0, 0.02)
    assert torch.equal(random_head.classifier.bias.detach(), torch.zeros(3))


def test_undescribed_labels_are_described_by_their_names_in_words():
    from hf_transfer.classifier import descriptions_for

    labels = ["meaning_of_life", "sci/tech", "oos", "very  negative", "NEG", "pos"]
    assert descriptions_for(labels, {"oos": "out of scope", "sci/tech": ["science", "tech"]}) == [
        ["meaning of life"], ["science", "tech"], ["out of scope"], ["very negative"], ["negative"], ["positive"]
    ]  # fmt: skip


def test_entity_types_are_described_in_words_with_the_standard_abbreviations_spelled_out():
    """A tagger's head starts from its types' names: CoNLL's and OntoNotes' abbreviations are spelled out, other
    names split into lower-case words; a given description still wins."""
    from hf_transfer.classifier import descriptions_for

    types = ["PER", "GPE", "WORK_OF_ART", "politicalParty", "creative-work", "misc", "Disease"]
    assert descriptions_for(types, {"Disease": "illness"}, entity_types=True) == [
        ["person"], ["country, city or state"], ["work of art"], ["political party"], ["creative work"],
        ["miscellaneous"], ["illness"]
    ]  # fmt: skip
    assert descriptions_for(["PER"], None) == [["PER"]]  # sentence labels keep their names


# --------------------------------------------------------------------------------------------------------------
# Freezing
# --------------------------------------------------------------------------------------------------------------


def _prefixes_frozen(names, prefixes):
    return {n for n in names if n.startswith(prefixes)}


@pytest.mark.parametrize(
    ("freeze_embeddings", "freeze_layers", "frozen_prefixes"),
    [
        (False, 0, ()),
        (True, 0, ("encoder.embeddings.",)),
        (False, 1, ("encoder.encoder.layer.0.",)),
        (False, 2, ("encoder.encoder.layer.0.", "encoder.encoder.layer.1.")),
        (True, 1, ("encoder.embeddings.", "encoder.encoder.layer.0.")),
    ],
)
def test_freezing_exactly_the_right_parameters(tiny_model_dir, freeze_embeddings, freeze_layers, frozen_prefixes):
    model, _ = prepare(tiny_model_dir, LABELS, freeze_embeddings=freeze_embeddings, freeze_layers=freeze_layers)
    all_names = {n for n, _ in model.named_parameters()}
    frozen = all_names - trainable(model)
    assert frozen == _prefixes_frozen(all_names, frozen_prefixes)
    assert {"classifier.weight", "classifier.bias"} <= trainable(model)
    if frozen_prefixes:
        assert frozen  # the prefixes matched something


def test_layer_stack_finds_the_bert_layers(tiny_model_dir):
    model, _ = prepare(tiny_model_dir, LABELS)
    assert layer_stack(model.encoder) is model.encoder.encoder.layer
    assert len(layer_stack(model.encoder)) == LAYERS


# --------------------------------------------------------------------------------------------------------------
# Bad input is refused before any weights load
# --------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("labels", "kwargs", "fragments"),
    [
        (LABELS, {"method": "lorax"}, ["method='lorax' is not known", "lora"]),
        (LABELS, {"freeze_layers": LAYERS + 1}, [f"freeze_layers={LAYERS + 1} but", f"only {LAYERS} layers"]),
        (
            LABELS,
            {"label_descriptions": {"mixed": "so so", "positive": "good"}},
            ["label(s) ['mixed'] that the task does not have", "labels:"],
        ),
        (["positive"], {}, ["at least 2 labels", "['positive']"]),
        ([], {}, ["at least 2 labels"]),
        (["a", "b", "a"], {}, ["unique"]),
    ],
    ids=["unknown-method", "too-many-frozen-layers", "unknown-description-label", "one-label", "no-label", "dupes"],
)
def test_bad_prepare_input_fails_before_loading(tiny_model_dir, no_weights, labels, kwargs, fragments):
    with pytest.raises(ConfigError) as info:
        prepare(tiny_model_dir, labels, **kwargs)
    for fragment in fragments:
        assert fragment in str(info.value), str(info.value)


def test_unloadable_model_is_a_config_error(tmp_path, no_weights):
    with pytest.raises(ConfigError, match="Cannot load the config"):
        prepare(str(tmp_path / "no-model-here"), LABELS)


def test_run_finetune_checks_descriptions_before_loading(tmp_path, tiny_model_dir, target_dir, no_weights):
    config = FinetuneConfig(
        output_dir=str(tmp_path), model_name_or_path=tiny_model_dir, label_descriptions={"mixed": "so so"}
    )
    with pytest.raises(ConfigError, match="'mixed'"):
        run_finetune(config, DataArguments(dataset=str(target_dir)))
    assert not (tmp_path / "results.json").exists()


# --------------------------------------------------------------------------------------------------------------
# export_model
# --------------------------------------------------------------------------------------------------------------


def test_export_merges_lora_into_a_plain_model(tmp_path, tiny_model_dir):
    model, tokenizer = prepare(tiny_model_dir, LABELS, method="lora")
    generator = torch.Generator().manual_seed(11)
    with torch.no_grad():  # make the adapter and the trained head copy non-trivial
        for name, param in model.named_parameters():
            if "lora_B" in name or "modules_to_save" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.5)
    peft_logits = logits_of(model, tokenizer)
    assert not torch.allclose(peft_logits, logits_of(prepare(tiny_model_dir, LABELS)[0], tokenizer), atol=1e-3)
    head = model.base_model.model.classifier.modules_to_save["default"].weight.detach().clone()

    merged = export_model(model)
    assert type(merged) is TransferForSequenceClassification
    assert not any("lora" in n or "modules_to_save" in n for n, _ in merged.named_parameters())
    assert torch.equal(merged.classifier.weight.detach(), head)
    assert torch.allclose(logits_of(merged, tokenizer), peft_logits, atol=1e-5)

    merged.save_pretrained(tmp_path)
    reloaded = AutoModelForSequenceClassification.from_pretrained(tmp_path)
    assert torch.allclose(logits_of(reloaded, tokenizer), peft_logits, atol=1e-5)


def test_export_without_merge_keeps_the_peft_model(tiny_model_dir):
    model, _ = prepare(tiny_model_dir, LABELS, method="lora")
    assert export_model(model, merge_adapter=False) is model
    plain, _ = prepare(tiny_model_dir, LABELS, method="head")
    assert export_model(plain) is plain


# --------------------------------------------------------------------------------------------------------------
# The frozen-feature cache
# --------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def head_model(tiny_model_dir):
    return prepare(tiny_model_dir, LABELS, method="head")


def _texts_dataset():
    return Dataset.from_dict({"text": TEXTS * 3, "label": [0, 1, 2, 0] * 3})


def test_embed_dataset_adds_the_embedding_column(head_model):
    model, tokenizer = head_model
    ds = _texts_dataset()
    out = embed_dataset(ds, model, tokenizer, batch_size=5)
    assert out.column_names == ["text", "label", "sentence_embedding"]
    assert out.features["sentence_embedding"].length == 32
    assert out["text"] == ds["text"] and out["label"] == ds["label"]
    expected = embed_texts(model, tokenizer, ds["text"])
    assert torch.allclose(torch.tensor(out["sentence_embedding"]), expected, atol=1e-5)
    # ... and those features are what the model's head classifies, same as from the text.
    with torch.no_grad():
        from_features = model(sentence_embedding=torch.tensor(out["sentence_embedding"][:4])).logits
    assert torch.allclose(from_features, logits_of(model, tokenizer), atol=1e-4)


def test_embed_texts_keeps_input_order_across_length_sorted_batches(head_model):
    model, tokenizer = head_model
    texts = ["the terrible film and the plain story", "good", "a very good movie", "plot"]
    together = embed_texts(model, tokenizer, texts, batch_size=2)
    one_by_one = torch.cat([embed_texts(model, tokenizer, [t]) for t in texts])
    assert torch.allclose(together, one_by_one, atol=1e-5)


def test_embed_dataset_cache_is_reused(tmp_path, head_model, monkeypatch):
    model, tokenizer = head_model
    ds = _texts_dataset()
    first = embed_dataset(ds, model, tokenizer, cache_dir=str(tmp_path))
    files = sorted(tmp_path.glob("features-*.arrow"))
    assert len(files) == 1

    def refuse(*args, **kwargs):
        raise AssertionError("the encoder ran again instead of reading the cache")

    monkeypatch.setattr(features_module, "embed_texts", refuse)
    second = embed_dataset(ds, model, tokenizer, cache_dir=str(tmp_path))
    assert second["sentence_embedding"] == first["sentence_embedding"]
    assert {f["filename"] for f in second.cache_files} == {str(files[0])}
    assert sorted(tmp_path.glob("features-*.arrow")) == files

    # Anything that changes the features (here the truncation length) must not hit the old cache.
    with pytest.raises(AssertionError, match="encoder ran again"):
        embed_dataset(ds, model, tokenizer, cache_dir=str(tmp_path), max_length=4)


# --------------------------------------------------------------------------------------------------------------
# FinetuneConfig
# --------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"method": "bogus"}, "method='bogus' is not known"),
        ({"prior_weight": -0.1}, "prior_weight=-0.1 must be in [0, 1]"),
        ({"wise_alpha": 1.01}, "wise_alpha=1.01 must be in [0, 1]"),
        ({"wise_alpha": -1.0}, "wise_alpha=-1.0 must be in [0, 1]"),
        ({"method": "full", "peft_kwargs": {"r": 4}}, "not a PEFT method"),
        ({"method": "head", "peft_kwargs": '{"r": 4}'}, "not a PEFT method"),
        ({"label_descriptions": "{bad json"}, "label_descriptions must be a mapping, a JSON object"),
        ({"label_descriptions": '["a", "b"]'}, "label_descriptions must be a JSON object"),
        ({"method": "lora", "peft_kwargs": "r=4"}, "peft_kwargs must be a mapping, a JSON object"),
        ({"freeze_layers": -1}, "freeze_layers=-1"),
        ({"pooling": "sum"}, "pooling='sum'"),
        ({"head_init": "zeros"}, "head_init='zeros'"),
        ({"prior_weight": 0.5, "head_init": "random"}, "needs head_init='label_descriptions'"),
    ],
)
def test_finetune_config_rejects(tmp_path, kwargs, fragment):
    with pytest.raises(ValueError) as info:
        FinetuneConfig(output_dir=str(tmp_path), **kwargs)
    assert fragment in str(info.value)


def test_finetune_config_normalises_values(tmp_path):
    config = FinetuneConfig(
        output_dir=str(tmp_path),
        method="LoRA",
        peft_kwargs='{"r": 4, "lora_alpha": 8}',
        label_descriptions='{"positive": ["good", "great"]}',
    )
    assert config.method == "lora" and config.is_peft
    assert config.peft_kwargs == {"r": 4, "lora_alpha": 8}
    assert config.label_descriptions == {"positive": ["good", "great"]}
    assert not FinetuneConfig(output_dir=str(tmp_path), method="head").is_peft
    assert FinetuneConfig(output_dir=str(tmp_path), method="dora").is_peft


# --------------------------------------------------------------------------------------------------------------
# load_data_args and run_finetune end to end
# --------------------------------------------------------------------------------------------------------------


def test_load_data_args_samples_and_caps(target_dir):
    train, eval_ds, labels = load_data_args(
        DataArguments(dataset=str(target_dir), n_per_class=2, eval_split="test", max_eval_samples=5)
    )
    assert labels == LABELS
    assert len(train) == 6 and sorted(train["label"]) == [0, 0, 1, 1, 2, 2]
    assert len(eval_ds) == 5


def test_load_data_args_unknown_eval_split(target_dir):
    with pytest.raises(DataError, match="eval_split='dev2'.*'train'"):
        load_data_args(DataArguments(dataset=str(target_dir), eval_split="dev2"))


def test_load_data_args_bundled():
    train, eval_ds, labels = load_data_args(DataArguments(dataset="bundled:sst2", n_per_class=3, max_eval_samples=7))
    assert labels == ["negative", "positive"] and len(train) == 6 and len(eval_ds) == 7


def finetune_config(tmp_path, model_dir, **overrides) -> FinetuneConfig:
    values = dict(
        output_dir=str(tmp_path / "run"),
        model_name_or_path=model_dir,
        num_train_epochs=1,
        per_device_train_batch_size=12,
        per_device_eval_batch_size=64,
        learning_rate=5e-3,
        max_length=16,
        disable_tqdm=True,
        use_cpu=True,
        logging_strategy="no",
        seed=0,
    )
    values.update(overrides)
    return FinetuneConfig(**values)


def state(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("method", ["full", "head", "lora"])
def test_run_finetune_end_to_end(tmp_path, tiny_model_dir, target_dir, method):
    extra = {"feature_cache_dir": str(tmp_path / "features")} if method == "head" else {}
    config = finetune_config(tmp_path, tiny_model_dir, method=method, **extra)
    results = run_finetune(config, DataArguments(dataset=str(target_dir)))
    if method == "head":  # train and eval features cached on disk
        assert len(list((tmp_path / "features").glob("features-*.arrow"))) == 2

    assert results["method"] == method and results["labels"] == LABELS
    assert results["n_train"] == 36 and results["n_eval"] == 12
    assert results["train_seconds"] > 0
    out = tmp_path / "run"
    assert json.loads((out / "results.json").read_text()) == results

    reloaded = AutoModelForSequenceClassification.from_pretrained(out)
    assert type(reloaded) is TransferForSequenceClassification
    assert reloaded.config.id2label == dict(enumerate(LABELS))
    _, eval_ds, _ = load_data_args(DataArguments(dataset=str(target_dir)))
    # the reported scores are the saved model's on the eval split
    assert scores_of(out, eval_ds) == pytest.approx({"accuracy": results["accuracy"], "f1_macro": results["f1_macro"]})

    start = state(prepare(tiny_model_dir, LABELS)[0])
    trained = state(reloaded)
    assert set(trained) == set(start)
    assert not torch.equal(trained["classifier.weight"], start["classifier.weight"]), "the head did not train"
    encoder_moved = any(not torch.equal(trained[k], start[k]) for k in start if k.startswith("encoder."))
    assert encoder_moved == (method != "head")


def test_run_finetune_with_n_per_class_zero_only_evaluates(tmp_path, tiny_model_dir, target_dir):
    config = finetune_config(tmp_path, tiny_model_dir, method="full", seed=2)
    results = run_finetune(config, DataArguments(dataset=str(target_dir), n_per_class=0, eval_split="test"))
    assert results["n_train"] == 0 and results["train_seconds"] == 0.0 and results["n_eval"] == 12
    assert results["sample_seed"] == 2  # unset: the run's seed
    out = tmp_path / "run"
    assert (out / "results.json").is_file()
    # Nothing trained: the saved model is the zero-shot (description-initialised) model.
    start = state(prepare(tiny_model_dir, LABELS)[0])
    saved = state(AutoModelForSequenceClassification.from_pretrained(out))
    assert all(torch.equal(saved[k], start[k]) for k in start)
    _, test_ds, _ = load_data_args(DataArguments(dataset=str(target_dir), eval_split="test"))
    assert scores_of(out, test_ds) == pytest.approx({"accuracy": results["accuracy"], "f1_macro": results["f1_macro"]})


@pytest.fixture
def id_labelled_dir(tmp_path, target_rows):
    """The target rows with the label ids "0", "1", "2" for names."""
    ids = {name: str(i) for i, name in enumerate(LABELS)}
    folder = tmp_path / "ids"
    for split, rows in target_rows.items():
        write_rows(folder / f"{split}.jsonl", [{"text": r["text"], "label": ids[r["label"]]} for r in rows])
    return folder


def test_labels_that_are_bare_ids_start_a_random_head(tmp_path, tiny_model_dir, id_labelled_dir, caplog):
    """Label names "0", "1", "2" say nothing: the head starts random (logged, recorded); described, they don't."""
    config = finetune_config(tmp_path, tiny_model_dir, method="full", num_train_epochs=1)
    with caplog.at_level("WARNING"):
        results = run_finetune(config, DataArguments(dataset=str(id_labelled_dir), n_per_class=4))
    assert results["head_init"] == "random" and "the head starts random" in caplog.text
    described = finetune_config(tmp_path / "described", tiny_model_dir, method="full", num_train_epochs=1,
                                label_descriptions={"0": "negative", "1": "neutral", "2": "positive"})  # fmt: skip
    results = run_finetune(described, DataArguments(dataset=str(id_labelled_dir), n_per_class=4))
    assert results["head_init"] == "label_descriptions"


@pytest.mark.parametrize(
    ("overrides", "n_per_class", "match"),
    [({}, 0, "a zero-shot run .* reads only what labels say"), ({"prior_weight": 0.5}, 4, "prior_weight=0.5")],
)
def test_bare_id_labels_refuse_zero_shot_and_the_prior_before_any_model_loads(
    tmp_path, tiny_model_dir, id_labelled_dir, no_weights, overrides, n_per_class, match
):
    with pytest.raises(ConfigError, match=match):
        run_finetune(finetune_config(tmp_path, tiny_model_dir, method="full", **overrides),
                     DataArguments(dataset=str(id_labelled_dir), n_per_class=n_per_class))  # fmt: skip


def test_texts_longer_than_max_length_are_reported_once_with_a_length_that_holds_them(tiny_model_dir, caplog):
    from hf_transfer import data as data_module

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    long_texts = ["good " * 100] * 3 + ["bad"] * 7
    data_module._truncation_warned.clear()
    with caplog.at_level("WARNING"):
        assert data_module.warn_if_truncated(tokenizer, long_texts, 32) == pytest.approx(0.3)
        data_module.warn_if_truncated(tokenizer, long_texts, 32)  # once per tokenizer and length
        assert data_module.warn_if_truncated(tokenizer, ["bad"] * 10, 16) == 0.0
        assert data_module.warn_if_truncated(tokenizer, [["good"] * 50], 16, words=True) == 1.0
    messages = [r.getMessage() for r in caplog.records if "longer than max_length" in r.getMessage()]
    assert len(messages) == 2 and "30% of the texts are longer than max_length=32" in messages[0]
    # the 95th percentile (102 tokens) rounded up to a multiple of 64, within what the encoder reads
    assert f"--max_length {min(128, tokenizer.model_max_length)} " in messages[0]


def saved_run(tmp_path, model_dir, data, **overrides) -> AutoModelForSequenceClassification:
    """run_finetune into ``tmp_path / 'run'``, then the model it saved, reloaded."""
    run_finetune(finetune_config(tmp_path, model_dir, **overrides), data)
    return AutoModelForSequenceClassification.from_pretrained(tmp_path / "run")


@pytest.mark.parametrize("method", ["full", "lora", "head"])  # head: the prior on its cached features
def test_prior_weight_keeps_the_trained_model_closer_to_the_zero_shot_prior(
    tmp_path, tiny_model_dir, target_dir, method
):
    """On its train texts, a run with prior_weight ends nearer the description head's predictions (the prior)
    than the same run, same seed, without it: the KL term is what holds it there."""
    data = DataArguments(dataset=str(target_dir), n_per_class=4)
    texts = list(load_data_args(data)[0]["text"])
    start, tokenizer = prepare(tiny_model_dir, LABELS)
    prior = logits_of(start, tokenizer, texts).softmax(-1)
    kl = {}
    for weight in (0.0, 0.5):
        model = saved_run(tmp_path / str(weight), tiny_model_dir, data, method=method, prior_weight=weight)
        kl[weight] = soft_target_loss(logits_of(model, tokenizer, texts), prior).item()  # KL(prior || model)
    assert kl[0.5] < 0.5 * kl[0.0], kl


def test_wise_alpha_keeps_that_share_of_each_weight_change(tmp_path, tiny_model_dir, target_dir):
    """WiSE-FT: with wise_alpha=0.5 every weight ends exactly halfway between the start and where the same
    run ends with wise_alpha=1 (same seed: the same training, bit for bit, before the interpolation)."""
    data = DataArguments(dataset=str(target_dir), n_per_class=4)
    start = state(prepare(tiny_model_dir, LABELS)[0])
    tuned = state(saved_run(tmp_path / "tuned", tiny_model_dir, data, method="full", wise_alpha=1.0))
    half = state(saved_run(tmp_path / "half", tiny_model_dir, data, method="full", wise_alpha=0.5))
    moved = {k for k in start if not torch.equal(tuned[k], start[k])}
    assert "classifier.weight" in moved and any(k.startswith("encoder.encoder.layer.") for k in moved)
    off = {k: (half[k] - (start[k] + 0.5 * (tuned[k] - start[k]))).abs().max().item() for k in start}
    assert max(off.values()) < 1e-6, {k: v for k, v in off.items() if v >= 1e-6}
    assert max((half[k] - tuned[k]).abs().max().item() for k in moved) > 1e-3  # far from the atol


def test_run_finetune_wise_alpha_zero_returns_the_start(tmp_path, tiny_model_dir, target_dir):
    config = finetune_config(tmp_path, tiny_model_dir, method="full", wise_alpha=0.0, prior_weight=0.5)
    results = run_finetune(config, DataArguments(dataset=str(target_dir), n_per_class=4))
    assert results["n_train"] == 12 and results["train_seconds"] > 0
    start = state(prepare(tiny_model_dir, LABELS)[0])
    saved = state(AutoModelForSequenceClassification.from_pretrained(tmp_path / "run"))
    assert all(torch.equal(saved[k], start[k]) for k in start)


@pytest.mark.parametrize(
    ("n_train", "overrides", "epochs"),
    [
        (16, {}, 100.0),  # 8 per class, 2 classes: one step an epoch
        (128, {}, 13.0),  # 8 steps an epoch: 13 whole epochs reach 100
        (2000, {}, 10.0),  # 1,250 steps already
        (64, {"gradient_accumulation_steps": 4}, 100.0),  # 4 batches are one optimizer step
        (16, {"min_train_steps": 0}, 10.0),
        (16, {"max_steps": 5}, 10.0),  # max_steps wins (the Trainer ignores epochs then)
        (0, {}, 10.0),
    ],
)
def test_min_train_steps_raises_whole_epochs(tmp_path, n_train, overrides, epochs):
    config = FinetuneConfig(output_dir=str(tmp_path), **overrides)
    effective = config.for_train_size(n_train)
    assert effective.num_train_epochs == epochs
    assert config.num_train_epochs == 10.0  # the caller's config is left as it was
    assert (effective is config) == (epochs == 10.0)


def test_raised_epochs_keep_the_number_of_checkpoints_evaluations_and_logs(tmp_path):
    config = FinetuneConfig(output_dir=str(tmp_path), save_strategy="epoch", eval_strategy="epoch",
                            logging_strategy="epoch", num_train_epochs=5)  # fmt: skip
    effective = config.for_train_size(32)  # 2 steps an epoch: 50 epochs, 100 steps
    assert effective.num_train_epochs == 50.0
    for strategy, every in (("save_strategy", "save_steps"), ("eval_strategy", "eval_steps"),
                            ("logging_strategy", "logging_steps")):  # fmt: skip
        assert getattr(effective, strategy) == "steps" and getattr(effective, every) == 20  # every 10 epochs
        assert getattr(config, strategy) == "epoch"


def test_min_train_steps_edge_values(tmp_path):
    with pytest.raises(ValueError, match="min_train_steps=-1 must be >= 0"):
        FinetuneConfig(output_dir=str(tmp_path), min_train_steps=-1)
    zero_epochs = FinetuneConfig(output_dir=str(tmp_path), num_train_epochs=0, save_strategy="epoch")
    assert zero_epochs.for_train_size(16).num_train_epochs == 100.0  # no division by the 0 epochs asked for


def test_a_few_shot_run_trains_min_train_steps_and_says_so(tiny_encoder, sentiment_dir, tmp_path):
    out = tmp_path / "run"
    config = FinetuneConfig(output_dir=str(out), model_name_or_path=tiny_encoder, num_train_epochs=1,
                            min_train_steps=6, per_device_train_batch_size=4, disable_tqdm=True)  # fmt: skip
    results = run_finetune(config, DataArguments(dataset=str(sentiment_dir), n_per_class=4))
    assert (results["n_train"], results["num_train_epochs"], results["train_steps"]) == (8, 3.0, 6)
    assert config.num_train_epochs == 1
    assert "num_train_epochs: 3" in (out / "README.md").read_text()  # the card shows what ran


def test_interrupted_run_resumes_from_its_last_checkpoint(tiny_encoder, sentiment_dir, tmp_path):
    """`resume_from_checkpoint=last` starts fresh when nothing is saved, else continues the saved step."""
    out = tmp_path / "run"
    common = dict(output_dir=str(out), model_name_or_path=tiny_encoder, method="full", disable_tqdm=True,
                  save_strategy="epoch", per_device_train_batch_size=4, resume_from_checkpoint="last",
                  min_train_steps=0)  # fmt: skip
    data = DataArguments(dataset=str(sentiment_dir), n_per_class=4)
    run_finetune(FinetuneConfig(num_train_epochs=1, **common), data)  # "interrupted" after epoch 1
    first = out / "checkpoint-2" / "trainer_state.json"
    stamp = first.stat().st_mtime_ns
    run_finetune(FinetuneConfig(num_train_epochs=2, **common), data)
    trainer_state = json.loads((out / "checkpoint-4" / "trainer_state.json").read_text())
    assert trainer_state["global_step"] == 4
    # epoch 1 was not trained again: its checkpoint was not rewritten, and its log entry was carried over
    assert first.stat().st_mtime_ns == stamp
    assert [round(h["epoch"]) for h in trainer_state["log_history"] if "loss" in h] == [1, 2]


def test_extra_train_rows_are_appended_by_label_name(tiny_encoder, sentiment_dir, tmp_path):
    """Synthetic rows (labels as names, any order) join the real sample; with n_per_class=0 they train alone."""
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
    assert results["n_train"] == 3 and results["extra_train"] == "synthetic"  # portable


def test_extra_train_with_an_unknown_label_names_the_option(sentiment_dir, tmp_path):
    write_rows(tmp_path / "extra.jsonl", [{"text": "so so", "label": "neutral"}])
    with pytest.raises(DataError, match=r"extra_train=.*neutral"):
        load_data_args(
            DataArguments(dataset=str(sentiment_dir), n_per_class=2, extra_train=str(tmp_path / "extra.jsonl"))
        )


def test_extra_train_without_a_label_warns_and_is_recorded(tiny_encoder, sentiment_dir, tmp_path):
    write_rows(tmp_path / "extra.jsonl", [{"text": "loved it", "label": "positive"}] * 3)
    data = DataArguments(dataset=str(sentiment_dir), n_per_class=0, extra_train=str(tmp_path / "extra.jsonl"))
    config = FinetuneConfig(output_dir=str(tmp_path / "run"), model_name_or_path=tiny_encoder, method="head",
                            num_train_epochs=1, disable_tqdm=True)  # fmt: skip
    with pytest.warns(UserWarning, match=r"no rows for label\(s\) \['negative'\].*never sees them"):
        results = run_finetune(config, data)
    assert results["extra_train_missing_labels"] == ["negative"]
    assert json.loads((tmp_path / "run" / "results.json").read_text())["extra_train_missing_labels"] == ["negative"]


def test_repeat_train_weights_the_real_rows_before_extra_rows(sentiment_dir, tmp_path):
    write_rows(tmp_path / "extra.jsonl", [{"text": "loved it", "label": "positive"}] * 5)
    counts: dict = {}
    data = DataArguments(
        dataset=str(sentiment_dir), n_per_class=2, repeat_train=3, extra_train=str(tmp_path / "extra.jsonl")
    )
    train, _, _ = load_data_args(data, counts)
    assert len(train) == 4 * 3 + 5
    assert counts == {"n_real_train": 4, "n_extra_train": 5, "extra_train_missing_labels": ["negative"]}
    assert train["text"][:4] == train["text"][4:8]  # the sampled real rows, repeated in order
    with pytest.raises(ValueError, match="repeat_train=0"):
        DataArguments(repeat_train=0)


def test_head_learning_rate_resumes_and_is_checked(tiny_encoder, sentiment_dir, tmp_path):
    with pytest.raises(ValueError, match="head_learning_rate=0.0 must be > 0"):
        FinetuneConfig(output_dir=str(tmp_path), head_learning_rate=0.0)
    common = dict(output_dir=str(tmp_path / "run"), model_name_or_path=tiny_encoder, method="lora", disable_tqdm=True,
                  save_strategy="epoch", per_device_train_batch_size=4, resume_from_checkpoint="last",
                  min_train_steps=0, head_learning_rate=1e-2)  # fmt: skip
    data = DataArguments(dataset=str(sentiment_dir), n_per_class=4)
    run_finetune(FinetuneConfig(num_train_epochs=1, **common), data)
    run_finetune(FinetuneConfig(num_train_epochs=2, **common), data)  # the optimizer state loads into its groups
    state = json.loads((tmp_path / "run" / "checkpoint-4" / "trainer_state.json").read_text())
    assert state["global_step"] == 4
