"""Model and dataset cards for saved runs, rendered from the Jinja templates in ``model_cards/``.

Kept in one module (SetFit's layout). The YAML metadata is built with ``huggingface_hub``'s card classes
(``ModelCardData`` with ``EvalResult`` → ``model-index``; ``DatasetCardData``) and the body is rendered as
``ModelCard.from_template`` / ``DatasetCard.from_template`` would, but in Jinja's sandbox
(:mod:`hf_transfer.sandbox`), since a card template may be the user's file. A card is a pure function of the
run's results and config: nothing here calls the Hub, so cards render offline.

Templates ship as package data (``hf_transfer/model_cards`` is the repository's top-level ``model_cards/``
folder), so they are found after a plain ``pip install`` too; :func:`template_path` resolves them.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import __version__, sandbox
from .defaults import portable_ref
from .errors import ConfigError

if TYPE_CHECKING:
    from huggingface_hub import RepoCard

MODEL_CARD_TEMPLATE = "model_card.md"
DATASET_CARD_TEMPLATE = "dataset_card.md"
CARD_NAME = "README.md"
LIBRARY_TAG = "hf-transfer"

# Hub ids of the bundled slices' upstream datasets and licences of the embedded models, where known.
BUNDLED_HUB_DATASETS = {"sst2": "stanfordnlp/sst2", "ag_news": "fancyzhx/ag_news", "sst5": "SetFit/sst5"}
KNOWN_LICENSES = {
    "sentence-transformers/all-MiniLM-L6-v2": "apache-2.0",
    "HuggingFaceTB/SmolLM2-135M-Instruct": "apache-2.0",
}
# Options left out of the reproduction recipe: secrets, where to publish, and values set automatically.
_NOT_IN_RECIPE = {"push_to_hub", "hub_model_id", "hub_strategy", "hub_private_repo", "hub_revision", "use_cpu"}


def template_dirs() -> list[Path]:
    """Where packaged templates are looked for: the package's ``model_cards`` (package data; in a checkout a
    link to the top-level folder), then the repository's top-level ``model_cards/``."""
    here = Path(__file__).resolve().parent
    return [here / "model_cards", here.parent / "model_cards"]


def template_path(template: str | Path = MODEL_CARD_TEMPLATE) -> Path:
    """Resolve ``template``: a file path, or the name of a packaged template (``model_card.md``,
    ``dataset_card.md``). Raises ``ConfigError`` naming where it looked if there is no such file."""
    path = Path(template)
    if path.is_file():
        return path
    looked = [str(path)]
    if len(path.parts) == 1:
        for folder in template_dirs():
            if (folder / path.name).is_file():
                return folder / path.name
            looked.append(str(folder / path.name))
    raise ConfigError(
        f"Card template {str(template)!r} not found (looked at {', '.join(looked)}). Pass an existing Jinja "
        f"template file, or reinstall hf-transfer-learning if its packaged templates are missing."
    )


def check_card_template(template: str | Path = MODEL_CARD_TEMPLATE) -> Path:
    """Resolve ``template`` (:func:`template_path`) and refuse it if it is not valid Jinja or reaches Python
    objects (``ConfigError`` naming the file and the expression): cheap, so a publishing run can check a user's
    template before training instead of failing, or running its code, when the card is written."""
    path = template_path(template)
    sandbox.parse(path.read_text(encoding="utf-8"), _card_source(path), strict=False)
    return path


def _render_card(card_class: type[RepoCard], card_data, path: Path, variables: Mapping[str, Any]) -> RepoCard:
    """``card_class.from_template(card_data, template_path=path, **variables)``, rendered in the sandbox:
    huggingface_hub renders with a plain ``jinja2.Template``, which would run code in a hostile template.
    The same variables (the card data's fields, then ``variables``, and ``card_data`` as YAML) and Jinja's
    default options, so the card is byte-identical to ``from_template``'s."""
    values = {**card_data.to_dict(), **variables, "card_data": card_data.to_yaml()}
    text = path.read_text(encoding="utf-8")
    return card_class(sandbox.render(text, _card_source(path), values, strict=False))


def _card_source(path: Path) -> str:
    return f"card template {str(path)!r}"


def hub_model_ref(name: str | None) -> str | None:
    """The Hub id behind a model argument: embedded aliases map to their Hub id; local folders have none."""
    if not name:
        return None
    from .defaults import EMBEDDED_MODELS

    if name in EMBEDDED_MODELS:
        return EMBEDDED_MODELS[name].hub_id
    return name if _looks_like_hub_id(name) else None


def hub_dataset_ref(dataset: str | None) -> str | None:
    """The Hub id behind a dataset argument (``bundled:sst2`` → ``stanfordnlp/sst2``), if there is one."""
    if not dataset:
        return None
    if dataset.startswith("bundled:"):
        return BUNDLED_HUB_DATASETS.get(dataset.split(":", 1)[1])
    return dataset if _looks_like_hub_id(dataset) else None


def _looks_like_hub_id(name: str) -> bool:
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if Path(name).exists() or name.count("/") != 1:
        return False
    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return True


def peft_summary(model) -> dict | None:
    """The active PEFT config of ``model`` (a ``PeftModel``) as a plain dict, or ``None``."""
    configs = getattr(model, "peft_config", None)
    if not configs:
        return None
    config = configs.get(getattr(model, "active_adapter", "default")) or next(iter(configs.values()))
    keep = ("peft_type", "task_type", "r", "lora_alpha", "lora_dropout", "use_dora", "target_modules",
            "feedforward_modules", "modules_to_save", "bias")  # fmt: skip
    out = {}
    for key, value in config.to_dict().items():
        if key in keep and value not in (None, False, [], {}):
            out[key] = sorted(value) if isinstance(value, set) else value
    return out


def recipe_options(config=None, data_args=None) -> dict:
    """The options of a run that differ from their defaults, as a YAML-ready mapping (the run's recipe).

    Defaults are those of a freshly built instance of the same class, so values that ``__post_init__``
    derives (device settings, normalised lists) are not mistaken for choices. Tokens and publishing
    settings are never included.
    """
    options: dict[str, Any] = {}
    for obj in (data_args, config):
        if obj is None or not dataclasses.is_dataclass(obj):
            continue
        values = _as_dict(obj)
        reference, required = _reference(obj)
        for field in dataclasses.fields(obj):
            name = field.name
            if not field.init or name not in values or name in _NOT_IN_RECIPE or name.endswith("_token"):
                continue
            value = _plain(values[name])
            if isinstance(value, str) and Path(value).is_absolute():
                value = portable_ref(value)  # a path on this machine: its last part, as results.json has it
            if name in required or reference is None or value != _plain(reference.get(name, dataclasses.MISSING)):
                options[name] = value
    return options


def _as_dict(obj) -> dict:
    return obj.to_dict() if hasattr(obj, "to_dict") else dataclasses.asdict(obj)


def _reference(obj) -> tuple[dict | None, set[str]]:
    """The default instance's values, built with the options a class requires (e.g. ``source_model``)."""
    required = {"source_model"} & {f.name for f in dataclasses.fields(obj)}
    kwargs = {name: getattr(obj, name) for name in required}
    if "output_dir" in {f.name for f in dataclasses.fields(obj)}:
        kwargs["output_dir"] = None if hasattr(obj, "to_dict") else "outputs"
    try:
        reference = _as_dict(type(obj)(**kwargs))
    except Exception:  # a class that cannot be built bare: compare with the declared defaults instead
        reference = {}
        for field in dataclasses.fields(obj):
            if field.default is not dataclasses.MISSING:
                reference[field.name] = field.default
            elif field.default_factory is not dataclasses.MISSING:
                reference[field.name] = field.default_factory()
    reference.pop("output_dir", None)  # always part of the recipe: where the run writes
    return reference, required


def _plain(value):
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_plain(v) for v in value]
    return value


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list | dict):
        return f"`{json.dumps(value)}`"
    return str(value)


def _yaml(options: Mapping) -> str:
    import yaml

    return yaml.safe_dump(dict(options), sort_keys=False, allow_unicode=True).strip()


def build_model_card(
    results: Mapping,
    config=None,
    data_args=None,
    *,
    model_name: str | None = None,
    usage_ref: str | None = None,
    peft_config: Mapping | None = None,
    saved_as_adapter: bool = False,
    license: str | None = None,
    template: str | Path = MODEL_CARD_TEMPLATE,
):
    """The ``huggingface_hub.ModelCard`` of one run, from its ``results`` (what the strategy measured and
    writes to ``results.json``), its config and data arguments. Pure: no file or network access besides
    reading the template. ``model_name`` names the model in ``model-index`` (default: the output folder's
    name); ``usage_ref`` is what the how-to-use snippet loads (a repo id or folder; default: ``model_name``).

    Metadata: ``library_name`` (``peft`` for an adapter, else ``transformers``), ``base_model``,
    ``datasets``, ``tags`` (``hf-transfer``, the strategy, the method), ``pipeline_tag``, ``license`` where
    known, and ``model-index`` with accuracy and macro-F1 on the evaluation split.
    """
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    path = template_path(template)
    strategy = results.get("strategy", "finetune")
    method = results.get("method") or getattr(config, "method", None) or "full"
    # local paths are shown by their last part: the card travels with the folder, the machine's paths do not
    model_arg = portable_ref(getattr(config, "model_name_or_path", None) or results.get("model"))
    source_model = portable_ref(results.get("source_model") or getattr(config, "source_model", None))
    from_source = bool(getattr(config, "init_from_source", False))
    base_model = source_model if from_source else model_arg
    base_refs = [ref for ref in dict.fromkeys([hub_model_ref(base_model), hub_model_ref(source_model)]) if ref]
    dataset = results.get("dataset") or getattr(data_args, "dataset", None) or "unknown"
    dataset_ref = hub_dataset_ref(dataset)
    eval_split = results.get("eval_split") or getattr(data_args, "eval_split", None) or "validation"
    labels = list(results.get("labels") or [])
    model_name = model_name or Path(str(getattr(config, "output_dir", None) or "hf-transfer-model")).name
    dataset_name = dataset_ref or dataset.removeprefix("bundled:")
    common = dict(
        task_type="text-classification",
        task_name="Text Classification",
        dataset_type=dataset_ref or dataset,
        dataset_name=dataset_name,
        dataset_split=eval_split,
    )
    eval_results = [
        EvalResult(metric_type="accuracy", metric_value=float(results["accuracy"]), metric_name="Accuracy", **common),
        EvalResult(
            metric_type="f1",
            metric_value=float(results["f1_macro"]),
            metric_name="Macro F1",
            metric_args={"average": "macro"},
            **common,
        ),
    ]
    license = license or next((KNOWN_LICENSES[r] for r in base_refs if r in KNOWN_LICENSES), None)
    card_data = ModelCardData(
        library_name="peft" if saved_as_adapter else "transformers",
        base_model=(base_refs[0] if len(base_refs) == 1 else base_refs) or None,
        datasets=[dataset_ref] if dataset_ref else None,
        tags=[LIBRARY_TAG, strategy, method, "text-classification"],
        pipeline_tag="text-classification",
        license=license,
        metrics=["accuracy", "f1"],
        model_name=model_name,
        eval_results=eval_results,
    )
    n_per_class = results.get("n_per_class")
    variables = dict(
        model_name=model_name,
        version=results.get("hf_transfer_version", __version__),
        labels=labels,
        strategy=strategy,
        method=method,
        base_model=base_model or "unknown",
        base_model_ref=hub_model_ref(base_model),
        source_model=source_model,
        head_init=("mapped from the source classifier's head" if from_source else results.get("head_init"))
        or getattr(config, "head_init", "label_descriptions"),
        dataset=dataset,
        dataset_ref=dataset_ref,
        eval_split=eval_split,
        n_eval=results.get("n_eval", "?"),
        labels_used=_labels_used(results, n_per_class),
        summary=_summary(strategy, results),
        peft=json.dumps(dict(peft_config), indent=2) if peft_config else None,
        saved_as_adapter=saved_as_adapter,
        label_descriptions={
            k: ", ".join(f"“{t}”" for t in ([v] if isinstance(v, str) else v))
            for k, v in (getattr(config, "label_descriptions", None) or {}).items()
        },
        label_map=results.get("label_map"),
        map_method=results.get("map_method"),
        synthetic=synthetic_recipe(results.get("extra_train")) or synthetic_recipe(dataset),
        hyperparameters=_hyperparameters(results, config),
        results_table=_results_table(results),
        usage=_usage(usage_ref or model_name, saved_as_adapter),
        limitations=_limitations(results, labels, dataset),
    )
    variables.update(_reproduce(strategy, results, config, data_args))
    return _render_card(ModelCard, card_data, path, variables)


def write_model_card(folder: str | Path, results: Mapping, config=None, data_args=None, **kwargs) -> Path:
    """Render :func:`build_model_card` into ``<folder>/README.md`` (replacing any card written by PEFT or
    the Trainer); returns the path."""
    card = build_model_card(results, config, data_args, **kwargs)
    path = Path(folder) / CARD_NAME
    card.save(path)
    return path


def _labels_used(results: Mapping, n_per_class) -> str:
    if results.get("strategy") == "labelmap":
        gold = f"{n_per_class} gold labels per class" if n_per_class else "no gold labels"
        pool = results.get("n_pool")
        how = "by the teacher" if results.get("map_method") == "identity" else "through the map"
        return f"{gold}; an unlabelled pool of {pool} rows pseudo-labelled {how}"
    n_train = results.get("n_train")
    if results.get("extra_train"):  # synthetic (or other extra) rows joined the real sample
        real = "all real rows" if n_per_class is None else f"{n_per_class} real per class" if n_per_class else "0 real"
        return f"{real}, plus the rows of `{results['extra_train']}` ({n_train} training rows in all)"
    if n_per_class == 0:
        return "none (zero-shot: the head comes from label descriptions)"
    if n_per_class is None:
        return f"all {n_train} training rows" if n_train is not None else "all training rows"
    return f"{n_per_class} per class ({n_train} rows)" if n_train is not None else f"{n_per_class} per class"


def _summary(strategy: str, results: Mapping) -> str:
    acc = results.get("accuracy")
    text = f"Accuracy {acc:.3f}, macro-F1 {results.get('f1_macro', float('nan')):.3f}" if acc is not None else ""
    if strategy == "labelmap" and results.get("zero_shot_accuracy") is not None:
        text += f" ({_source_score_name(results)}: {results['zero_shot_accuracy']:.3f})"
    return text + "." if text else ""


def _source_score_name(results: Mapping) -> str:
    """What the source model's own accuracy is: a zero-shot floor through a map, or, when the source already
    classifies the target task (identity map: self-training), its teacher."""
    return (
        "the teacher (source model) alone"
        if results.get("map_method") == "identity"
        else "zero-shot through the label map"
    )


def _hyperparameters(results: Mapping, config) -> dict[str, str]:
    """The run's options that its results depend on (``trainer.result_options``: the config's own fields and
    the TrainingArguments that change training, declared once there), as scalars: mappings such as label
    descriptions or a label map have sections of their own."""
    from .trainer import result_options

    if config is not None and dataclasses.is_dataclass(config):
        options = result_options(config)
    else:  # a card from results alone
        options = {name: results.get(name) for name in ("method", "head_init", "seed")}
    if results.get("map_method"):  # what 'auto' resolved to
        options["map_method"] = results["map_method"]
    out = {}
    for name, value in options.items():
        value = _plain(value)
        if value is None or isinstance(value, dict | list):
            continue
        out[name] = _fmt(portable_ref(value) if isinstance(value, str) else value)  # aliases, local paths
    for name in ("n_per_class", "sample_seed", "n_train"):
        if results.get(name) is not None:
            out[name] = _fmt(results[name])
    return out


def _results_table(results: Mapping) -> list[tuple[str, str]]:
    rows = [("accuracy", f"{results['accuracy']:.4f}"), ("macro-F1", f"{results['f1_macro']:.4f}")]
    if results.get("zero_shot_accuracy") is not None:
        name = _source_score_name(results)
        rows.append((f"accuracy, {name}", f"{results['zero_shot_accuracy']:.4f}"))
        rows.append((f"macro-F1, {name}", f"{results['zero_shot_f1_macro']:.4f}"))
    for r in results.get("rounds") or []:
        rows.append((f"round {r['round']}: pseudo-labelled rows", str(r["pseudo_labelled"])))
        if r.get("pseudo_label_accuracy") is not None:
            rows.append((f"round {r['round']}: pseudo-label accuracy", f"{r['pseudo_label_accuracy']:.4f}"))
    if results.get("train_seconds") is not None:
        rows.append(("training time (s)", f"{results['train_seconds']:.1f}"))
    if results.get("wall_seconds") is not None:
        procs = results.get("num_processes", 1)
        rows.append((f"wall time, whole run (s, {procs} process{'es' if procs != 1 else ''})",
                     f"{results['wall_seconds']:.1f}"))  # fmt: skip
    return rows


def _usage(model_name: str, adapter: bool) -> str:
    """Loading with hf_transfer installed (its registered class, no remote code) and, as comments, without
    it (``trust_remote_code=True`` runs the ``modeling.py`` that ``save_pretrained`` ships in the folder)."""
    load = f'model = AutoModelForSequenceClassification.from_pretrained("{model_name}")'
    lines = [
        "import hf_transfer  # pip install hf-transfer-learning: registers the classifier with the Auto classes",
        "from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline",
        "",
        load + ("  # base + PEFT adapter" if adapter else ""),
        f'tokenizer = AutoTokenizer.from_pretrained("{model_name}")',
        'classify = pipeline("text-classification", model=model, tokenizer=tokenizer)',
        'print(classify("an example text"))',
    ]
    if adapter:
        lines += [
            "",
            "# or with PEFT's own loader:",
            "from peft import AutoPeftModelForSequenceClassification",
            f'model = AutoPeftModelForSequenceClassification.from_pretrained("{model_name}")',
        ]
    lines += [
        "",
        "# without hf_transfer: the classifier's code ships with the model (modeling.py); allow it to run",
        f'# model = AutoModelForSequenceClassification.from_pretrained("{model_name}", trust_remote_code=True)',
        f'# classify = pipeline("text-classification", model="{model_name}", trust_remote_code=True)',
    ]
    return "\n".join(lines)


def _limitations(results: Mapping, labels: list[str], dataset: str) -> list[str]:
    items = [
        f"It only knows the labels {', '.join(labels)}; every input is forced into one of them "
        "(no 'none of these' class).",
        f"Measured on one split of `{dataset}` with one seed; expect a few points of variance on other "
        "samples, and more on text unlike the training data.",
        "The classifier is a custom class (it pools the way the encoder was trained): load it after "
        "`import hf_transfer`, or pass `trust_remote_code=True` to run the `modeling.py` shipped with the model.",
    ]
    n = results.get("n_per_class")
    if n is not None and 0 < n <= 64:
        items.append(f"Trained on only {n} labelled examples per class: the numbers above are noisy.")
    if results.get("strategy") == "labelmap":
        items.append("Pseudo-labels inherit the source classifier's biases and errors on the new domain.")
    return items


def _reproduce(strategy: str, results: Mapping, config, data_args) -> dict:
    if results.get("recipe"):
        command = f"hf-transfer {strategy} --config {results['recipe']}"
        return dict(
            reproduce_intro=f"The run's recipe is `{results['recipe']}` in the hf_transfer repository:",
            command=command + f"\n# data-parallel:\naccelerate launch -m hf_transfer.cli {strategy} "
            f"--config {results['recipe']}",
            recipe_yaml=None,
        )
    options = recipe_options(config, data_args)
    return dict(
        reproduce_intro="Save the options below as `recipe.yaml` (every option that differs from its default; "
        "flags override any of them), then:",
        command=f"pip install hf-transfer-learning=={results.get('hf_transfer_version', __version__)}\n"
        f"hf-transfer {strategy} --config recipe.yaml\n"
        f"# or data-parallel:\naccelerate launch -m hf_transfer.cli {strategy} --config recipe.yaml",
        recipe_yaml=_yaml(options) if options else "{}",
    )


def synthetic_recipe(dataset: str | None) -> dict | None:
    """Generator and filter statistics when ``dataset`` is a folder saved by the generate strategy."""
    if not dataset:
        return None
    info = Path(dataset) / "dataset_info.json"
    if not info.is_file():
        return None
    try:
        stats = json.loads(json.loads(info.read_text()).get("description") or "{}")
    except (json.JSONDecodeError, AttributeError):
        return None
    if not isinstance(stats, dict) or "removed" not in stats:
        return None
    generator = "a generative model"
    results_file = Path(dataset).parent / "results.json"
    if results_file.is_file():
        try:
            generator = json.loads(results_file.read_text()).get("generator") or generator
        except json.JSONDecodeError:
            pass
    return {
        "generator": generator,
        "generated": stats.get("generated", "?"),
        "kept": stats.get("kept", "?"),
        "removed": stats.get("removed", {}),
    }


# --------------------------------------------------------------------------------------------- dataset card


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
    labels = dataset.features["label"].names
    counts = dict.fromkeys(labels, 0)
    for label_id in dataset["label"]:
        counts[labels[label_id]] += 1
    generator_ref = hub_model_ref(config.generator)
    n = len(dataset)
    card_data = DatasetCardData(
        license=KNOWN_LICENSES.get(generator_ref or ""),
        task_categories=["text-classification"],
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
        "length": f"{config.min_words} to {config.max_words} words",
        "contamination": f"shares {config.contamination_ngram} consecutive words with an eval text"
        if config.contamination_ngram
        else "off",
        "exact_duplicate": "identical text (after normalising case and spaces)",
        "near_duplicate": f"character 5-gram Jaccard ≥ {config.near_dup_threshold}",
        "consistency": f"scorer's P(intended label) < {stats.get('consistency_threshold', '?')} "
        f"(scorer: {config.consistency_model})",
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
        + (" (`hf_transfer/generate/templates/default.yaml`)" if config.templates == "default" else ""),  # fmt: skip
        n_per_label=config.n_per_label,
        n_seed_examples=n_seed_examples,
        n_shots=config.n_shots,
        temperature=config.temperature,
        top_p=config.top_p,
        max_new_tokens=config.max_new_tokens,
        bf16=config.use_bf16,
        seed=config.seed,
        label_descriptions=config.label_descriptions or {},
        generated=stats.get("generated", "?"),
        kept=stats.get("kept", n),
        filters=filters,
        label_distribution=counts,
        usage=usage,
        command=" ".join(["hf-transfer generate", *flags]),
    )
    return _render_card(DatasetCard, card_data, path, variables)


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
