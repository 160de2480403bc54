"""Model and dataset cards: template resolution, metadata round-trip, reproduction recipe, saved folders that
reload and predict as before saving (full model and PEFT adapter)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
import yaml
from huggingface_hub import DatasetCard, ModelCard
from transformers import AutoModelForSequenceClassification, Trainer

from hf_transfer import ConfigError, DataArguments
from hf_transfer.finetune import FinetuneConfig, prepare, run_finetune
from hf_transfer.generate.card import DATASET_CARD_TEMPLATE, build_dataset_card
from hf_transfer.hub import save_run
from hf_transfer.labelmap import LabelMapConfig
from hf_transfer.model_card import (
    MODEL_CARD_TEMPLATE,
    build_model_card,
    recipe_options,
    template_path,
    write_model_card,
)

REPO = Path(__file__).resolve().parents[2]

# What a finetune run recorded (a results.json from a real SST-2 run, trimmed).
FINETUNE_RESULTS = {
    "strategy": "finetune", "method": "lora", "model": "minilm", "dataset": "bundled:sst2",
    "eval_split": "validation", "n_per_class": 8, "n_train": 16, "n_eval": 872, "labels": ["negative", "positive"],
    "seed": 0, "sample_seed": 0, "head_init": "label_descriptions", "accuracy": 0.7534, "f1_macro": 0.7511,
    "train_seconds": 9.1, "wall_seconds": 13.2, "num_processes": 1, "hf_transfer_version": "0.1.0",
}  # fmt: skip
LABELMAP_RESULTS = {
    "strategy": "labelmap", "source_model": "my-org/sst5-classifier", "model": "minilm", "method": "full",
    "map_method": "explicit", "label_map": {"very negative": "negative", "positive": "positive"},
    "dataset": "bundled:sentiment_sentences_amazon", "eval_split": "validation", "n_per_class": 0, "n_pool": 500,
    "n_eval": 500, "labels": ["negative", "positive"], "seed": 0, "threshold": 0.8, "top_k": None,
    "zero_shot_accuracy": 0.812, "zero_shot_f1_macro": 0.80, "accuracy": 0.846, "f1_macro": 0.845,
    "rounds": [{"round": 1, "pseudo_labelled": 377, "pseudo_label_accuracy": 0.9, "accuracy": 0.846,
                "f1_macro": 0.845}],
    "pool_seconds": 3.0, "wall_seconds": 40.0, "num_processes": 1, "hf_transfer_version": "0.1.0",
}  # fmt: skip


def _code_block(text: str, language: str) -> str:
    match = re.search(rf"```{language}\n(.*?)```", text, re.S)
    assert match, f"no ```{language} block in the card"
    return match.group(1)


def test_packaged_templates_are_the_top_level_ones():
    for name in (MODEL_CARD_TEMPLATE, DATASET_CARD_TEMPLATE):
        packaged = template_path(name)
        assert packaged.parent.name == "model_cards" and "hf_transfer" in packaged.parts
        assert packaged.read_text() == (REPO / "model_cards" / name).read_text()


def test_missing_template_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        template_path("no_such_card.md")
    with pytest.raises(ConfigError, match="not found"):
        build_model_card(FINETUNE_RESULTS, template=tmp_path / "missing.md")
    custom = tmp_path / "custom.md"
    custom.write_text("---\n{{ card_data }}\n---\n\nCustom card for {{ model_name }}.\n")
    card = build_model_card(FINETUNE_RESULTS, model_name="me/x", template=custom)
    assert card.text.strip() == "Custom card for me/x." and card.data.library_name == "transformers"


def test_model_card_metadata_round_trips_with_the_measured_numbers(tmp_path):
    config = FinetuneConfig(
        output_dir=str(tmp_path / "sst2-lora"),
        method="lora",
        learning_rate=5e-4,
        peft_kwargs={"r": 8},
        label_descriptions={"negative": ["a bad movie", "awful"]},
    )
    data_args = DataArguments(dataset="bundled:sst2", n_per_class=8)
    path = write_model_card(tmp_path, FINETUNE_RESULTS, config, data_args, peft_config={"peft_type": "LORA", "r": 8})
    card = ModelCard.load(path)
    data = card.data
    assert data.library_name == "transformers"
    assert data.base_model == "sentence-transformers/all-MiniLM-L6-v2"
    assert data.datasets == ["stanfordnlp/sst2"]
    assert {"hf-transfer", "finetune", "lora"} <= set(data.tags)
    assert data.pipeline_tag == "text-classification" and data.license == "apache-2.0"
    assert data.model_name == "sst2-lora"
    by_metric = {r.metric_type: r for r in data.eval_results}
    assert by_metric["accuracy"].metric_value == FINETUNE_RESULTS["accuracy"]
    assert by_metric["f1"].metric_value == FINETUNE_RESULTS["f1_macro"]
    assert by_metric["f1"].metric_args == {"average": "macro"}
    assert {(r.task_type, r.dataset_type, r.dataset_split) for r in data.eval_results} == {
        ("text-classification", "stanfordnlp/sst2", "validation")
    }
    # the YAML header is what huggingface_hub writes, and it survives a second save/load
    again = tmp_path / "again.md"
    card.save(again)
    assert ModelCard.load(again).data.to_dict() == data.to_dict()
    body = card.text
    for expected in ("0.7534", "| `learning_rate` | 0.0005 |", '"r": 8', "a bad movie", "## Limitations"):
        assert expected in body, expected


def test_card_recipe_reproduces_the_config(tmp_path):
    """The YAML in the card's Reproduce section, fed back to the CLI parser, gives the same run options."""
    from hf_transfer.cli.parsing import parse_with_config
    from hf_transfer.cli.train import make_parser

    config = FinetuneConfig(output_dir=str(tmp_path / "run"), method="lora", learning_rate=5e-4, num_train_epochs=3,
                            peft_kwargs={"r": 4}, hub_token="hf_NotARealToken123", push_to_hub=False)  # fmt: skip
    data_args = DataArguments(dataset="bundled:sst2", n_per_class=8, sample_seed=3)
    card = build_model_card(FINETUNE_RESULTS, config, data_args)
    recipe = yaml.safe_load(_code_block(card.text, "yaml"))
    assert recipe == recipe_options(config, data_args)
    assert "hub_token" not in recipe and "hf_NotARealToken123" not in str(card)
    file = tmp_path / "recipe.yaml"
    file.write_text(yaml.safe_dump(recipe))
    parsed_data, parsed = parse_with_config(make_parser("finetune"), ["--config", str(file)])
    for name in ("method", "learning_rate", "num_train_epochs", "peft_kwargs"):
        assert getattr(parsed, name) == getattr(config, name), name
    assert parsed.output_dir == "run"  # a path on this machine is not in the card: the folder's name is
    assert (parsed_data.n_per_class, parsed_data.sample_seed) == (8, 3)
    assert "hf-transfer finetune --config recipe.yaml" in card.text


def test_labelmap_card_shows_the_map_and_the_zero_shot_floor(tmp_path):
    config = LabelMapConfig(output_dir=str(tmp_path / "student"), source_model="my-org/sst5-classifier",
                            label_map={"very negative": "negative", "positive": "positive"})  # fmt: skip
    card = build_model_card(LABELMAP_RESULTS, config)
    assert card.data.base_model == ["sentence-transformers/all-MiniLM-L6-v2", "my-org/sst5-classifier"]
    assert card.data.datasets is None  # a bundled slice with no Hub id: not claimed in the metadata
    assert {"hf-transfer", "labelmap"} <= set(card.data.tags)
    assert "| `very negative` | `negative` |" in card.text
    assert "0.8120" in card.text and "377" in card.text
    assert [r.metric_value for r in card.data.eval_results] == [0.846, 0.845]


def test_self_training_card_names_the_teacher_not_a_zero_shot_floor(tmp_path):
    config = LabelMapConfig(output_dir=str(tmp_path / "student"), source_model="outputs/sst2/full-synthetic")
    results = {
        **LABELMAP_RESULTS,
        "map_method": "identity",
        "label_map": {"negative": "negative", "positive": "positive"},
    }
    text = build_model_card(results, config).text
    assert "the teacher (source model) alone: 0.812" in text and "accuracy, the teacher (source model) alone" in text
    assert "zero-shot through the label map" not in text
    assert "Map method: identity" in text and "pseudo-labelled by the teacher" in text


def test_adapter_card_declares_peft():
    card = build_model_card(FINETUNE_RESULTS, saved_as_adapter=True, model_name="me/sst2-lora")
    assert card.data.library_name == "peft"
    assert "AutoPeftModelForSequenceClassification" in card.text and '"me/sst2-lora"' in card.text


def _perturb(model, seed=1):
    """Stand-in for training: move the trainable weights, so a reload that dropped them would show."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            if param.requires_grad:
                param.add_(torch.randn(param.shape, generator=generator) * 0.5)


@pytest.mark.parametrize(("method", "merge"), [("full", True), ("lora", True), ("lora", False)])
def test_saved_folder_reloads_and_predicts_the_same(tiny_encoder, tmp_path, method, merge):
    out = tmp_path / "run"
    model, tok = prepare(tiny_encoder, ["negative", "positive"], method=method, head_init="random")
    batch = tok(["good movie", "a terrible film", "it was fun"], return_tensors="pt", padding=True)
    with torch.no_grad():
        untrained = model(**batch).logits
    _perturb(model)
    model.eval()
    with torch.no_grad():
        before = model(**batch).logits
    assert not torch.allclose(before, untrained, atol=1e-3)  # so a reload that lost the training would show
    config = FinetuneConfig(output_dir=str(out), method=method, merge_adapter=merge, model_name_or_path=tiny_encoder)
    results = {**FINETUNE_RESULTS, "method": method, "model": tiny_encoder}
    save_run(Trainer(model=model, args=config), config, tok, results)

    reloaded = AutoModelForSequenceClassification.from_pretrained(out).eval()  # one call, full model or adapter
    with torch.no_grad():
        after = reloaded(**batch).logits
    assert torch.allclose(before, after, atol=1e-5)
    card = ModelCard.load(out / "README.md")  # ours, not PEFT's or the Trainer's
    assert "hf-transfer" in card.data.tags
    assert card.data.library_name == ("peft" if not merge else "transformers")
    assert (out / "adapter_config.json").exists() == (not merge)
    if not merge:
        from peft import AutoPeftModelForSequenceClassification

        peft_model = AutoPeftModelForSequenceClassification.from_pretrained(out).eval()
        with torch.no_grad():
            assert torch.allclose(before, peft_model(**batch).logits, atol=1e-5)
        assert json.loads((out / "adapter_config.json").read_text())["base_model_name_or_path"] == str(out)
    # The card's usage snippet runs as written against the folder (both of its loaders, for an adapter).
    usage = re.sub(r'from_pretrained\("[^"]*"\)', f"from_pretrained({str(out)!r})", _code_block(card.text, "python"))
    namespace: dict = {}
    exec(usage.replace("print(classify(", "predicted = (classify("), namespace)
    assert namespace["predicted"][0]["label"] in ("negative", "positive")
    assert namespace["model"](**batch).logits.detach().allclose(before, atol=1e-5)


def test_run_finetune_card_carries_what_the_run_measured(tiny_encoder, sentiment_dir, tmp_path):
    out = tmp_path / "run"
    config = FinetuneConfig(output_dir=str(out), model_name_or_path=tiny_encoder, method="head",
                            num_train_epochs=1, disable_tqdm=True)  # fmt: skip
    results = run_finetune(config, DataArguments(dataset=str(sentiment_dir), n_per_class=4))
    card = ModelCard.load(out / "README.md")
    values = {r.metric_type: r.metric_value for r in card.data.eval_results}
    assert values == {"accuracy": results["accuracy"], "f1": results["f1_macro"]}
    assert card.data.base_model is None  # a local folder is not a Hub id
    assert json.loads((out / "results.json").read_text())["accuracy"] == results["accuracy"]
    assert "n_per_class: 4" in card.text


def test_dataset_card_from_a_generated_dataset(tmp_path):
    from datasets import ClassLabel, Dataset, Features, Value

    from hf_transfer.generate import GenerateConfig

    features = Features({"text": Value("string"), "label": ClassLabel(names=["negative", "positive"])})
    dataset = Dataset.from_dict({"text": ["bad", "awful", "great"], "label": [0, 0, 1]}, features=features)
    stats = {"generated": 10, "kept": 3, "consistency_threshold": 0.5,
             "removed": {"cleaning": 1, "length": 2, "contamination": 0, "exact_duplicate": 3,
                         "near_duplicate": 1, "consistency": 0}}  # fmt: skip
    dataset.info.description = json.dumps(stats)
    config = GenerateConfig(
        target_labels=["negative", "positive"],
        n_per_label=5,
        seed=7,
        output_dir=str(tmp_path),
        label_descriptions={"negative": "a bad review"},
        hub_token="hf_NotARealToken123",
    )
    card = build_dataset_card(dataset, config)
    card.save(tmp_path / "README.md")
    loaded = DatasetCard.load(tmp_path / "README.md")
    assert {"hf-transfer", "synthetic"} <= set(loaded.data.tags)
    assert loaded.data.task_categories == ["text-classification"] and loaded.data.size_categories == ["n<1K"]
    text = loaded.text
    assert "| exact_duplicate | identical text" in text and "| 3 |" in text
    assert "| `negative` | 2 |" in text and "| `positive` | 1 |" in text
    assert "a bad review" in text and "--seed 7" in text and "--n_per_label 5" in text
    assert "hf_NotARealToken123" not in str(loaded)


def test_training_data_names_synthetic_rows():
    from hf_transfer.results import RunResult

    def training_data(**results):
        return RunResult.from_dict(
            {"strategy": "finetune", "accuracy": 0.5, "f1_macro": 0.5, **results}
        ).training_data()

    synthetic = {"n_train": 602, "extra_train": "outputs/sst2/generate/dataset"}
    assert training_data(n_per_class=0, **synthetic).startswith(
        "0 real, plus the rows of `outputs/sst2/generate/dataset` (602"
    )
    assert training_data(**{**synthetic, "n_train": 618}, n_per_class=8).startswith("8 real per class, plus")
    assert training_data(n_train=16, n_per_class=8) == "8 per class (16 rows)"


# What a token-classification (NER) finetune run recorded (a results.json from a CrossNER politics run, trimmed):
# accuracy is word accuracy, the F1s / precision / recall are entity-level, per_label is per entity type.
TOKEN_TYPES = ["country", "politicalparty", "politician"]
TOKEN_RESULTS = {
    "strategy": "finetune", "method": "head", "model": "minilm", "dataset": "bundled:crossner_politics",
    "eval_split": "validation", "n_per_class": 2, "n_train": 5, "n_eval": 541, "task": "token_classification",
    "labels": ["O"] + [f"{p}-{t}" for t in TOKEN_TYPES for p in ("B", "I")], "seed": 0, "sample_seed": 0,
    "head_init": "label_descriptions", "accuracy": 0.6397, "f1_micro": 0.4605, "f1_macro": 0.4022,
    "precision": 0.3642, "recall": 0.6261, "label_thresholds": None, "f1_samples": None,
    "per_label": {"country": {"precision": 0.1158, "recall": 0.4317, "f1": 0.1827},
                  "politicalparty": {"precision": 0.5, "recall": 0.25, "f1": 0.3333},
                  "politician": {"precision": 0.0297, "recall": 0.0243, "f1": 0.0267}},
    "train_seconds": 1.1, "wall_seconds": 17.0, "num_processes": 1, "hf_transfer_version": "0.1.0",
}  # fmt: skip


def test_token_card_metadata_declares_token_classification_and_entity_scores(tmp_path):
    path = write_model_card(tmp_path, TOKEN_RESULTS, model_name="me/politics-ner")
    data = ModelCard.load(path).data
    assert data.pipeline_tag == "token-classification"
    assert "token-classification" in data.tags and "text-classification" not in data.tags
    assert data.metrics == ["f1", "precision", "recall", "accuracy"]
    assert {(r.task_type, r.task_name, r.dataset_split) for r in data.eval_results} == {
        ("token-classification", "Token Classification", "validation")
    }
    scores = [(r.metric_type, r.metric_name, r.metric_value, r.metric_args) for r in data.eval_results]
    assert scores == [  # entity micro-F1 first: the headline
        ("f1", "Entity micro F1", 0.4605, {"average": "micro"}),
        ("f1", "Entity macro F1", 0.4022, {"average": "macro"}),
        ("precision", "Entity precision", 0.3642, {"average": "micro"}),
        ("recall", "Entity recall", 0.6261, {"average": "micro"}),
        ("accuracy", "Word accuracy", 0.6397, None),
    ]


def test_token_card_body_speaks_of_entity_types_not_tags():
    text = build_model_card(TOKEN_RESULTS, model_name="me/politics-ner").text
    intro = text.split("## What was transferred")[0]
    assert "NER tagger) over 3 entity types (`country`, `politicalparty`, `politician`)" in intro
    assert "B-country" not in intro and "text classifier" not in intro
    assert "Entity micro-F1 0.461, macro-F1 0.402, precision 0.364, recall 0.626." in intro
    assert "| labelled examples | 2 sentences per entity type (5 sentences) |" in text
    assert "(541 sentences)" in text
    for row in ("| entity micro-F1 | 0.4605 |", "| entity macro-F1 | 0.4022 |", "| entity precision | 0.3642 |",
                "| entity recall | 0.6261 |", "| word accuracy | 0.6397 |"):  # fmt: skip
        assert row in text, row
    assert "| accuracy |" not in text and "| macro-F1 |" not in text
    # the per-entity-type table: one row per type, no thresholds
    assert "| entity type | precision | recall | F1 |" in text and "| threshold |" not in text
    assert "| `country` | 0.116 | 0.432 | 0.183 |" in text and "| `politicalparty` | 0.500 | 0.250 | 0.333 |" in text
    usage = _code_block(text, "python")
    assert 'AutoModelForTokenClassification.from_pretrained("me/politics-ner")' in usage
    assert 'pipeline("token-classification", model=model, tokenizer=tokenizer, aggregation_strategy="simple")' in usage
    assert "SequenceClassification" not in usage and '"text-classification"' not in usage
    assert (
        '# model = AutoModelForTokenClassification.from_pretrained("me/politics-ner", trust_remote_code=True)' in usage
    )
    assert 'model="me/politics-ner", trust_remote_code=True, aggregation_strategy="simple")' in usage
    limitations = text.split("## Limitations")[1].split("## Reproduce")[0]
    assert "entity types country, politicalparty, politician" in limitations and "`B-<type>`" in limitations
    assert "2 labelled sentences per entity type" in limitations
    assert "per class" not in limitations and "no 'none of these' class" not in limitations


def test_token_adapter_card_loads_with_peft_token_classes():
    card = build_model_card(TOKEN_RESULTS, saved_as_adapter=True, model_name="me/ner-lora")
    assert card.data.library_name == "peft"
    assert 'AutoPeftModelForTokenClassification.from_pretrained("me/ner-lora")' in card.text
    assert "AutoPeftModelForSequenceClassification" not in card.text


def test_token_card_references_headline_entity_micro_f1():
    labelmap = {
        **LABELMAP_RESULTS, "task": "token_classification", "labels": TOKEN_RESULTS["labels"],
        "label_map": {"person": "politician"}, "f1_micro": 0.61, "precision": 0.6, "recall": 0.62,
        "per_label": TOKEN_RESULTS["per_label"], "zero_shot_accuracy": 0.9, "zero_shot_f1_micro": 0.45,
        "zero_shot_f1_macro": 0.4,
    }  # fmt: skip
    text = build_model_card(labelmap).text
    assert "(zero-shot through the label map: entity micro-F1 0.450)." in text
    assert "| entity micro-F1, zero-shot through the label map | 0.4500 |" in text
    assert "| entity macro-F1, zero-shot through the label map | 0.4000 |" in text


def test_token_training_data_counts_sentences_per_entity_type():
    from hf_transfer.results import RunResult

    def training_data(**results):
        base = {"strategy": "finetune", "accuracy": 0.5, "f1_macro": 0.5, "task": "token_classification"}
        return RunResult.from_dict({**base, **results}).training_data()

    assert training_data(n_per_class=8, n_train=50) == "8 sentences per entity type (50 sentences)"
    assert training_data(n_per_class=8) == "8 sentences per entity type"
    assert training_data(n_train=200) == "all 200 training sentences"


def _token_data(folder: Path) -> str:
    """Sentences over the tiny encoder's words, two entity types (a `tone`, one or two words; a `thing`)."""
    from conftest import ADJECTIVES, NOUNS

    rows = []
    for adjectives in ADJECTIVES.values():
        for i, adjective in enumerate(adjectives):
            for noun in NOUNS:
                if i % 2:
                    rows.append({"tokens": ["the", adjective, noun], "ner_tags": ["O", "B-tone", "B-thing"]})
                else:
                    rows.append({"tokens": ["a", "very", adjective, noun],
                                 "ner_tags": ["O", "B-tone", "I-tone", "B-thing"]})  # fmt: skip
    folder.mkdir(parents=True)
    for split, part in (("train", rows[::2]), ("validation", rows[1::2])):
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in part))
    return str(folder)


def test_run_finetune_token_card_and_its_usage_snippet_run(tiny_encoder, tmp_path):
    out = tmp_path / "run"
    config = FinetuneConfig(output_dir=str(out), model_name_or_path=tiny_encoder, method="head",
                            num_train_epochs=1, disable_tqdm=True)  # fmt: skip
    results = run_finetune(config, DataArguments(dataset=_token_data(tmp_path / "data"), n_per_class=2))
    assert results.token_classification
    card = ModelCard.load(out / "README.md")
    assert card.data.pipeline_tag == "token-classification"
    values = [(r.metric_name, r.metric_value) for r in card.data.eval_results]
    assert values[0] == ("Entity micro F1", results["f1_micro"]) and ("Word accuracy", results["accuracy"]) in values
    assert "2 entity types (`thing`, `tone`)" in card.text  # sorted, as the tags are
    for name in results["per_label"]:
        assert f"| `{name}` |" in card.text
    # the usage snippet runs as written against the folder and tags entities of the known types
    usage = re.sub(r'from_pretrained\("[^"]*"\)', f"from_pretrained({str(out)!r})", _code_block(card.text, "python"))
    usage = re.sub(r"print\(tag\(\"[^\"]*\"\)\)", 'tagged = tag("a very good movie")', usage)
    namespace: dict = {}
    exec(usage, namespace)
    assert type(namespace["model"]).__name__ == "TransferForTokenClassification"
    assert all(entity["entity_group"] in ("tone", "thing") for entity in namespace["tagged"])
