"""The dataset card of a generated dataset: generator, prompts, seeds, each filter's setting and how many rows
it removed, and the label distribution. generate's own card, rendered with the model card's sandboxed
template machinery (:mod:`hf_transfer.model_card`)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from .. import __version__, model_card
from ..defaults import portable_ref
from ..model_card import CARD_NAME, KNOWN_LICENSES, LIBRARY_TAG, hub_model_ref, recipe_options, template_path

DATASET_CARD_TEMPLATE = "dataset_card.md"


def build_dataset_card(
    dataset,
    config,
    stats: Mapping | None = None,
    *,
    data_args=None,
    n_seed_examples: int = 0,
    repo_id: str | None = None,
    template=DATASET_CARD_TEMPLATE,
):
    """The ``huggingface_hub.DatasetCard`` of a generated dataset: generator, prompts, seeds, each filter's
    setting and how many rows it removed, and the label distribution. ``config`` is the
    :class:`~hf_transfer.generate.GenerateConfig` of the run (``data_args`` its target data, if any);
    ``stats`` default to the dataset's own; ``repo_id`` is where it is pushed, for the how-to-use snippet."""
    from huggingface_hub import DatasetCard, DatasetCardData

    path = template_path(template)
    if stats is None:
        stats = json.loads(dataset.info.description or "{}")
    feature = dataset.features["label"]
    multi = hasattr(feature, "feature")  # List(ClassLabel): the labels each text was asked for
    tokens = "ner_tags" in dataset.column_names  # token classification: label = the entity type asked for
    labels = (feature.feature if multi else feature).names
    counts = dict.fromkeys(labels, 0)
    for value in dataset["label"]:
        for label_id in value if multi else [value]:
            counts[labels[label_id]] += 1
    generator_ref = hub_model_ref(config.generator)
    n = len(dataset)
    card_data = DatasetCardData(
        license=KNOWN_LICENSES.get(generator_ref or ""),
        task_categories=["token-classification" if tokens else "text-classification"],
        task_ids=["named-entity-recognition"] if tokens else ["multi-label-classification"] if multi else None,
        size_categories=[_size_category(n)],
        annotations_creators=["machine-generated"],
        language_creators=["machine-generated"],
        source_datasets=["original"],
        pretty_name=f"Synthetic {' / '.join(labels)} examples from {portable_ref(config.generator)}",
        tags=[LIBRARY_TAG, "generate", "synthetic"],
        configs=[{"config_name": "default", "data_files": [{"split": "train", "path": "data/train-*"}]}],
    )
    removed = stats.get("removed", {})
    settings = {
        "cleaning": "strip preambles, label prefixes and prompt echoes; first line only",
        "markup": "entity markup `[words](type)` unreadable: unbalanced brackets, an empty span, an unknown type",
        "entity": "no entity of the type the sentence was asked for",
        "length": f"{config.min_words} to {config.max_words} words",
        "contamination": f"shares {config.contamination_ngram} consecutive words with an eval text"
        if config.contamination_ngram
        else "off",
        "exact_duplicate": "identical text (after normalising case and spaces)",
        "near_duplicate": f"character 5-gram Jaccard ≥ {config.near_dup_threshold}",
        "consistency": (
            f"an asked label outside the scorer's top {stats.get('consistency_top_k', '?')} (+1 per further asked "
            f"label) (scorer: {config.consistency_model})"
            if multi and stats.get("consistency_threshold", 1)
            else "off"
            if multi
            else f"an entity's type has < {stats.get('consistency_threshold', 0):.3g} of the tagger's entity-type "
            f"mass over its words (tagger: {config.consistency_model})"
            if tokens
            else f"scorer's P(intended label) < {stats.get('consistency_threshold', '?')} "
            f"(scorer: {config.consistency_model})"
        ),
        "surplus": f"rows beyond {config.target_per_label} per label (top-up rounds)"
        if getattr(config, "target_per_label", None)
        else "off",
        "balance": "every label subsampled to the rarest label's count"
        if getattr(config, "balance", "none") != "none"
        else "off",
    }
    filters = [(name, settings.get(name, ""), count) for name, count in removed.items()]
    local = f"{portable_ref(str(config.output_dir))}/dataset"  # no path of this machine in the card
    usage = "\n".join(
        [
            "from datasets import load_dataset, load_from_disk",
            f'ds = load_dataset("{repo_id or "<repo id>"}", split="train")   # from the Hub',
            f'ds = load_from_disk("{local}")  # the local copy',
            "",
            "# train on it (finetune strategy):",
            f"# hf-transfer finetune --dataset {local}",
        ]
    )
    flags = [
        f"--{name} {' '.join(map(str, value)) if isinstance(value, list) else _flag_value(value)}"
        for name, value in recipe_options(config, data_args).items()
    ]
    variables = dict(
        version=__version__,
        generator=portable_ref(config.generator),
        n_rows=n,
        labels=labels,
        templates=f"`{config.templates}`"
        + (
            f" (`hf_transfer/generate/templates/{config.template_set}.yaml`)" if config.templates == "default" else ""
        ),  # fmt: skip
        n_per_label=config.n_per_label,
        n_seed_examples=n_seed_examples,
        n_shots=config.n_shots,
        temperature=config.temperature,
        top_p=config.top_p,
        max_new_tokens=config.max_new_tokens,
        bf16=config.use_bf16,
        engine=config.resolved_engine,
        seed=config.seed,
        label_descriptions=config.label_descriptions or {},
        generated=stats.get("generated", "?"),
        kept=stats.get("kept", n),
        filters=filters,
        label_distribution=counts,
        multi_label=multi,
        token_classification=tokens,
        label_pairs=[name for name in stats.get("kept_per_target", {}) if " + " in name],
        usage=usage,
        command=" ".join(["hf-transfer generate", *flags]),
    )
    return model_card.render_card(DatasetCard, card_data, path, variables)


def _flag_value(value) -> str:
    if isinstance(value, dict):
        return "'" + json.dumps(value) + "'"
    text = str(value)
    return f"'{text}'" if " " in text else text


def write_dataset_card(folder: str | Path, dataset, config, stats: Mapping | None = None, **kwargs) -> Path:
    """Render :func:`build_dataset_card` into ``<folder>/README.md``; returns the path."""
    path = Path(folder) / CARD_NAME
    build_dataset_card(dataset, config, stats, **kwargs).save(path)
    return path


def _size_category(n: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < limit:
            return name
    return "n>1M"
