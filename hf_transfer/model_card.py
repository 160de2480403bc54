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

from . import sandbox
from .defaults import portable_ref
from .errors import ConfigError
from .results import RunResult

if TYPE_CHECKING:
    from huggingface_hub import RepoCard

MODEL_CARD_TEMPLATE = "model_card.md"
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


def render_card(card_class: type[RepoCard], card_data, path: Path, variables: Mapping[str, Any]) -> RepoCard:
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
    """The ``huggingface_hub.ModelCard`` of one run, from its :class:`~hf_transfer.results.RunResult` (or the
    mapping of a ``results.json``), its config and data arguments. Pure: no file or network access besides
    reading the template. ``model_name`` names the model in ``model-index`` (default: the output folder's
    name); ``usage_ref`` is what the how-to-use snippet loads (a repo id or folder; default: ``model_name``).
    What only one strategy knows (its training data, reference scores, extra rows) comes from the result's
    own methods.
    """
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    result = RunResult.from_dict(results)
    path = template_path(template)
    method = result.method or getattr(config, "method", None) or "full"
    # local paths are shown by their last part: the card travels with the folder, the machine's paths do not
    bases = [portable_ref(m) for m in result.base_models()] or [None]
    base_model = bases[0] or portable_ref(getattr(config, "model_name_or_path", None))
    base_refs = [ref for ref in dict.fromkeys(hub_model_ref(m) for m in [base_model, *bases[1:]]) if ref]
    dataset = result.dataset or getattr(data_args, "dataset", None) or "unknown"
    dataset_ref = hub_dataset_ref(dataset)
    eval_split = result.eval_split or getattr(data_args, "eval_split", None) or "validation"
    model_name = model_name or Path(str(getattr(config, "output_dir", None) or "hf-transfer-model")).name
    token = result.token_classification
    task = "token-classification" if token else "text-classification"
    common = dict(
        task_type=task,
        task_name="Token Classification" if token else "Text Classification",
        dataset_type=dataset_ref or dataset,
        dataset_name=dataset_ref or dataset.removeprefix("bundled:"),
        dataset_split=eval_split,
    )
    metrics = [("accuracy", result.accuracy, "Subset accuracy" if result.multi_label else "Accuracy", None),
               ("f1", result.f1_macro, "Macro F1", {"average": "macro"})]  # fmt: skip
    if token:  # entity-level scores (micro-F1 the headline), then word accuracy
        metrics = [("f1", result.f1_micro, "Entity micro F1", {"average": "micro"}),
                   ("f1", result.f1_macro, "Entity macro F1", {"average": "macro"}),
                   ("precision", result.precision, "Entity precision", {"average": "micro"}),
                   ("recall", result.recall, "Entity recall", {"average": "micro"}),
                   ("accuracy", result.accuracy, "Word accuracy", None)]  # fmt: skip
    elif result.multi_label:
        metrics += [("f1", result.f1_micro, "Micro F1", {"average": "micro"}),
                    ("f1", result.f1_samples, "Samples F1", {"average": "samples"})]  # fmt: skip
    eval_results = [
        EvalResult(metric_type=kind, metric_value=float(value), metric_name=name, metric_args=args, **common)
        for kind, value, name, args in metrics
        if value is not None
    ]
    card_data = ModelCardData(
        library_name="peft" if saved_as_adapter else "transformers",
        base_model=(base_refs[0] if len(base_refs) == 1 else base_refs) or None,
        datasets=[dataset_ref] if dataset_ref else None,
        tags=[LIBRARY_TAG, result.strategy, method, task]
        + (["multi-label-classification"] if result.multi_label else []),
        pipeline_tag=task,
        license=license or next((KNOWN_LICENSES[r] for r in base_refs if r in KNOWN_LICENSES), None),
        metrics=["f1", "precision", "recall", "accuracy"] if token else ["accuracy", "f1"],
        model_name=model_name,
        eval_results=eval_results,
    )
    references = result.references()
    summary = f"Accuracy {result.accuracy:.3f}, macro-F1 {result.f1_macro:.3f}"
    if result.multi_label:
        summary = (
            f"Micro-F1 {result.f1_micro:.3f}, macro-F1 {result.f1_macro:.3f}, subset accuracy {result.accuracy:.3f}"
        )
    if token:
        scores = [("Entity micro-F1", result.f1_micro), ("macro-F1", result.f1_macro),
                  ("precision", result.precision), ("recall", result.recall)]  # fmt: skip
        summary = ", ".join(f"{name} {value:.3f}" for name, value in scores if value is not None)
    # a multi-label (token) reference's accuracy slot is (entity) micro-F1
    headline = "entity micro-F1 " if token else "micro-F1 " if result.multi_label else ""
    summary += "".join(f" ({r.name}: {headline}{r.accuracy:.3f})" for r in references) + "."
    variables = dict(
        model_name=model_name,
        version=result.hf_transfer_version,
        labels=list(result.labels),
        strategy=result.strategy,
        method=method,
        base_model=base_model or "unknown",
        base_model_ref=hub_model_ref(base_model),
        source_model=None,
        head_init=result.head_init or getattr(config, "head_init", "label_descriptions"),
        dataset=dataset,
        dataset_ref=dataset_ref,
        eval_split=eval_split,
        n_eval=result.n_eval if result.n_eval is not None else "?",
        labels_used=result.training_data(),
        summary=summary,
        peft=json.dumps(dict(peft_config), indent=2) if peft_config else None,
        saved_as_adapter=saved_as_adapter,
        label_descriptions={
            k: ", ".join(f"“{t}”" for t in ([v] if isinstance(v, str) else v))
            for k, v in (getattr(config, "label_descriptions", None) or {}).items()
        },
        label_map=None,
        map_method=None,
        synthetic=None,
        multi_label=result.multi_label,
        per_label=[
            (name, scores, t)
            for (name, scores), t in zip((result.per_label or {}).items(), result.label_thresholds or [])
        ],  # fmt: skip
        token_classification=token,
        entity_types=entity_types(result) if token else [],
        per_type=list((result.per_label or {}).items()) if token else [],
        hyperparameters=_hyperparameters(result, config),
        results_table=_results_table(result, references),
        usage=_usage(usage_ref or model_name, saved_as_adapter, token=token),
        limitations=_limitations(result, dataset),
    )
    variables.update(result.card_variables())
    variables.update(_reproduce(result, config, data_args))
    return render_card(ModelCard, card_data, path, variables)


def entity_types(result: RunResult) -> list[str]:
    """A token-classification run's entity types in tag order (``B-t``/``I-t`` → ``t``; ``O`` is none), or the
    types its per-type scores name when the result lists no tags."""
    types = [label[2:] for label in result.labels if label[:2] in ("B-", "I-")]
    return list(dict.fromkeys(types)) or list(result.per_label or {})


def write_model_card(folder: str | Path, results: Mapping, config=None, data_args=None, **kwargs) -> Path:
    """Render :func:`build_model_card` into ``<folder>/README.md`` (replacing any card written by PEFT or
    the Trainer); returns the path."""
    card = build_model_card(results, config, data_args, **kwargs)
    path = Path(folder) / CARD_NAME
    card.save(path)
    return path


def _hyperparameters(result: RunResult, config) -> dict[str, str]:
    """The run's options that its results depend on (``trainer.result_options``: the config's own fields and
    the TrainingArguments that change training, declared once there) and the values the run settled itself,
    as scalars: mappings such as label descriptions or a label map have sections of their own."""
    from .trainer import result_options

    if config is not None and dataclasses.is_dataclass(config):
        options = result_options(config)
    else:  # a card from results alone
        options = {"method": result.method, "head_init": result.head_init, "seed": result.seed}
    out = {}
    for name, value in {**options, **result.card_hyperparameters()}.items():
        value = _plain(value)
        if value is None or isinstance(value, dict | list):
            continue
        out[name] = _fmt(portable_ref(value) if isinstance(value, str) else value)  # aliases, local paths
    return out


def _results_table(result: RunResult, references) -> list[tuple[str, str]]:
    token = result.token_classification
    rows = [("subset accuracy" if result.multi_label else "accuracy", f"{result.accuracy:.4f}"),
            ("macro-F1", f"{result.f1_macro:.4f}")]  # fmt: skip
    if token:
        scores = [("entity micro-F1", result.f1_micro), ("entity macro-F1", result.f1_macro),
                  ("entity precision", result.precision), ("entity recall", result.recall),
                  ("word accuracy", result.accuracy)]  # fmt: skip
        rows = [(name, f"{value:.4f}") for name, value in scores if value is not None]
    elif result.multi_label:
        rows += [("micro-F1", f"{result.f1_micro:.4f}"), ("samples-F1", f"{result.f1_samples:.4f}")]
    for r in references:
        # as the run's own headline
        headline = "entity micro-F1" if token else "micro-F1" if result.multi_label else "accuracy"
        macro = "entity macro-F1" if token else "macro-F1"
        rows += [(f"{headline}, {r.name}", f"{r.accuracy:.4f}"), (f"{macro}, {r.name}", f"{r.f1_macro:.4f}")]
    rows += result.card_rows()
    if result.train_seconds is not None:
        rows.append(("training time (s)", f"{result.train_seconds:.1f}"))
    if result.wall_seconds is not None:
        procs = result.num_processes
        rows.append((f"wall time, whole run (s, {procs} process{'es' if procs != 1 else ''})",
                     f"{result.wall_seconds:.1f}"))  # fmt: skip
    return rows


def _usage(model_name: str, adapter: bool, *, token: bool = False) -> str:
    """Loading with hf_transfer installed (its registered class, no remote code) and, as comments, without
    it (``trust_remote_code=True`` runs the ``modeling.py`` that ``save_pretrained`` ships in the folder).
    ``token``: a tagger (``AutoModelForTokenClassification``, the token-classification pipeline)."""
    if token:
        return _token_usage(model_name, adapter)
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


def _token_usage(model_name: str, adapter: bool) -> str:
    load = f'model = AutoModelForTokenClassification.from_pretrained("{model_name}")'
    task = '"token-classification"'
    lines = [
        "import hf_transfer  # pip install hf-transfer-learning: registers the tagger with the Auto classes",
        "from transformers import AutoModelForTokenClassification, AutoTokenizer, pipeline",
        "",
        load + ("  # base + PEFT adapter" if adapter else ""),
        f'tokenizer = AutoTokenizer.from_pretrained("{model_name}")',
        f'tag = pipeline({task}, model=model, tokenizer=tokenizer, aggregation_strategy="simple")',
        'print(tag("Angela Merkel met Emmanuel Macron in Paris."))  # entities: type, words, score, offsets',
    ]
    if adapter:
        lines += [
            "",
            "# or with PEFT's own loader:",
            "from peft import AutoPeftModelForTokenClassification",
            f'model = AutoPeftModelForTokenClassification.from_pretrained("{model_name}")',
        ]
    lines += [
        "",
        "# without hf_transfer: the tagger's code ships with the model (modeling.py); allow it to run",
        f'# model = AutoModelForTokenClassification.from_pretrained("{model_name}", trust_remote_code=True)',
        f'# tag = pipeline({task}, model="{model_name}", trust_remote_code=True, aggregation_strategy="simple")',
    ]
    return "\n".join(lines)


def _limitations(result: RunResult, dataset: str) -> list[str]:
    if result.token_classification:
        return _token_limitations(result, dataset)
    items = [
        f"It only knows the labels {', '.join(result.labels)}; "
        + (
            "each is predicted where its probability reaches its threshold, tuned on the training rows."
            if result.multi_label
            else "every input is forced into one of them (no 'none of these' class)."
        ),
        f"Measured on one split of `{dataset}` with one seed; expect a few points of variance on other "
        "samples, and more on text unlike the training data.",
        "The classifier is a custom class (it pools the way the encoder was trained): load it after "
        "`import hf_transfer`, or pass `trust_remote_code=True` to run the `modeling.py` shipped with the model.",
    ]
    n = result.n_per_class
    if n is not None and 0 < n <= 64:
        items.append(f"Trained on only {n} labelled examples per class: the numbers above are noisy.")
    return items + result.card_limitations()


def _token_limitations(result: RunResult, dataset: str) -> list[str]:
    types = ", ".join(entity_types(result))
    items = [
        f"It only knows the entity types {types}: it tags each word `B-<type>` (the first word of an entity), "
        "`I-<type>` (a word inside one) or `O` (outside any), so a name of any other type is missed or given "
        "one of these types.",
        "Entity scores count an entity only with its exact type and boundaries; word accuracy is high even for "
        "a weak tagger, since most words are `O`.",
        f"Measured on one split of `{dataset}` with one seed; expect a few points of variance on other "
        "samples, and more on text unlike the training data.",
        "The tagger is a custom class (a linear tag head on the encoder's token states): load it after "
        "`import hf_transfer`, or pass `trust_remote_code=True` to run the `modeling.py` shipped with the model.",
    ]
    n = result.n_per_class
    if n is not None and 0 < n <= 64:
        items.append(f"Trained on only {n} labelled sentences per entity type: the numbers above are noisy.")
    return items + result.card_limitations()


def _reproduce(result: RunResult, config, data_args) -> dict:
    strategy = result.strategy
    options = recipe_options(config, data_args)
    return dict(
        reproduce_intro="Save the options below as `recipe.yaml` (every option that differs from its default; "
        "flags override any of them), then:",
        command=f"pip install hf-transfer-learning=={result.hf_transfer_version}\n"
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
