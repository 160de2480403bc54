"""Turn a pretrained encoder into a classifier for the target labels, ready for ``transformers.Trainer``:
pooling as the checkpoint was trained, optional freezing and PEFT, and a head initialised from label
descriptions so training starts from the zero-shot classifier instead of from chance."""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from torch import nn
from transformers import AutoConfig, AutoModel, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from .config import as_mapping, check_range, option
from .data import readable_label
from .defaults import DEFAULT_ENCODER, portable_ref, resolve_model, sentence_transformers_pooling
from .errors import ConfigError
from .inference import embed_texts, run_batched, run_batched_words
from .modeling import (
    POOLING_MODES,
    TransferConfig,
    TransferForSequenceClassification,
    TransferForTokenClassification,
    register_auto_classes,
)
from .multi_label import MULTI_LABEL, PROBLEM_TYPES
from .token_classification import (
    SUBWORD_LABELS,
    TOKEN_CLASSIFICATION,
    readable_type,
    types_of_tags,
    word_piece_ids,
    word_tokenizer,
)

BUILTIN_METHODS = ("full", "head")
AUTO_METHOD = "auto"  # finetune only: the method picked by cross-validation (finetune/auto.py)


def peft_method_names() -> list[str]:
    """Every PEFT type, plus ``dora``."""
    from peft.mapping import PEFT_TYPE_TO_CONFIG_MAPPING

    return sorted([t.value.lower() for t in PEFT_TYPE_TO_CONFIG_MAPPING] + ["dora"])


def peft_type_of(method: str):
    from peft import PeftType

    return PeftType.LORA if method == "dora" else PeftType[method.upper()]  # dora: LoRA with use_dora


def peft_config_class(method: str) -> type:
    """One lookup, both to check ``peft_kwargs`` before the model loads and to build the config."""
    from peft.mapping import PEFT_TYPE_TO_CONFIG_MAPPING

    return PEFT_TYPE_TO_CONFIG_MAPPING[peft_type_of(method)]


@dataclass
class ModelArguments:
    """Every model option, declared and checked once (TRL's ``ModelConfig``); each strategy's config extends
    it, so the CLI, recipes and cards see the same fields."""

    # fields that do not change what is trained: not fingerprinted, not in cards
    io_fields: ClassVar[tuple[str, ...]] = ("merge_adapter",)
    picks_method: ClassVar[bool] = False  # True where method='auto' is allowed (FinetuneConfig)

    model_name_or_path: str = option(
        DEFAULT_ENCODER, "Encoder to adapt: Hub id, local path, or 'minilm' (the embedded all-MiniLM-L6-v2)."
    )
    method: str = option(
        "full",
        "'full' (all weights), 'head' (frozen backbone; trains the head on cached features), "
        "or a PEFT method name: 'lora', 'dora', 'ia3', 'loha', 'lokr', 'vera', ...",
    )
    peft_kwargs: dict | str | None = option(None, "Extra PEFT config arguments, a mapping or JSON: '{\"r\": 16}'.")
    merge_adapter: bool = option(True, "Merge PEFT weights into the base model when saving (plain model export).")
    freeze_embeddings: bool = option(False, "Freeze the encoder's embedding layer.")
    freeze_layers: int = option(0, "Freeze the bottom k transformer layers.")
    pooling: str | None = option(None, "mean, cls, max or pooler; default: what the checkpoint declares, else mean.")
    normalize: bool | None = option(None, "L2-normalise pooled features; default: the checkpoint's own setting.")
    max_length: int = option(128, "Truncate texts to this many tokens.")
    head_init: str = option(
        "label_descriptions",
        "'label_descriptions': start the head from the encoder's embeddings of a text per label "
        "(zero-shot before training); 'random': a fresh head.",
    )
    label_descriptions: dict | str | None = option(
        None,
        "Text (or list of texts, averaged) per label for head_init: a mapping, JSON, or a .json/.yaml file; "
        "default: the label's name in words.",
    )
    head_init_scale: float = option(10.0, "Logit scale (inverse temperature) of a description-initialised head.")
    subword_labels: str = option(
        "first",
        "Token classification: which sub-tokens of a word carry its tag in training: 'first' (the rest -100, left "
        "out of the loss) or 'all' (the rest as I- of the word's type). Scores always read the first sub-token.",
    )

    def __post_init__(self):
        self.method = self.method.lower()
        if self.method == AUTO_METHOD and not self.picks_method:
            raise ConfigError(
                f"method='auto' picks by cross-validation on labelled target rows, which only finetune has; "
                f"{type(self).__name__} trains on other rows: use 'full', 'head' or a PEFT method."
            )
        if self.method not in (*BUILTIN_METHODS, AUTO_METHOD) and self.method not in peft_method_names():
            raise ConfigError(
                f"method={self.method!r} is not known. Use 'full', 'head', "
                + ("'auto', " if self.picks_method else "")
                + "or a PEFT method: "
                f"{', '.join(peft_method_names())}."
            )
        check_range("max_length", self.max_length, low=1)
        check_range("freeze_layers", self.freeze_layers, low=0)
        check_range("head_init_scale", self.head_init_scale, low=0, low_open=True)
        self.peft_kwargs = as_mapping("peft_kwargs", self.peft_kwargs)
        self.label_descriptions = as_mapping("label_descriptions", self.label_descriptions)
        peft_methods = [m for m in self.candidate_methods() if m not in BUILTIN_METHODS]
        if self.peft_kwargs and not peft_methods:
            raise ConfigError(f"peft_kwargs is set but method={self.method!r} is not a PEFT method.")
        for method in peft_methods if self.peft_kwargs else ():
            self._check_peft_kwargs(method)
        if self.pooling is not None and self.pooling not in POOLING_MODES:
            raise ConfigError(f"pooling={self.pooling!r}: use {', '.join(POOLING_MODES)}.")
        if self.head_init not in ("label_descriptions", "random"):
            raise ConfigError(f"head_init={self.head_init!r}: use 'label_descriptions' or 'random'.")
        if self.subword_labels not in SUBWORD_LABELS:
            raise ConfigError(f"subword_labels={self.subword_labels!r}: use {' or '.join(map(repr, SUBWORD_LABELS))}.")

    def candidate_methods(self) -> list[str]:
        """The methods this config may train: its method, or under 'auto' the candidates."""
        return list(getattr(self, "auto_methods", ())) if self.method == AUTO_METHOD else [self.method]

    def _check_peft_kwargs(self, method: str) -> None:
        """PEFT would only fail on an unknown key after the encoder has loaded, with a bare ``TypeError``."""
        config_class = peft_config_class(method)
        valid = sorted(f.name for f in dataclasses.fields(config_class) if f.init)
        unknown = sorted(set(map(str, self.peft_kwargs)) - set(valid))
        if unknown:
            close = {key: difflib.get_close_matches(key, valid, n=1) for key in unknown}
            hints = [f"{key!r}" + (f" (did you mean {c[0]!r}?)" if c else "") for key, c in close.items()]
            raise ConfigError(
                f"peft_kwargs has key(s) that {config_class.__name__} (method={method!r}) does not take: "
                f"{', '.join(hints)}. Fix or remove them; see the {config_class.__name__} documentation in PEFT."
            )

    @property
    def is_peft(self) -> bool:
        return self.method not in (*BUILTIN_METHODS, AUTO_METHOD)

    def model_options(self) -> dict:
        """Only the model options (a strategy config holds many more fields)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(ModelArguments)}


def num_layers(config) -> int | None:
    return getattr(config, "num_hidden_layers", None) or getattr(config, "n_layer", None)


def check_prepare_args(model: str | ModelArguments, labels: Sequence[str], **options) -> ModelArguments:
    """Validate all that needs no weights (options, labels, the model's config), so a run fails before
    loading; ``options`` replace fields of a ``ModelArguments`` ``model``."""
    if isinstance(model, ModelArguments):
        args = ModelArguments(**{**model.model_options(), **options}) if options else model
    else:
        args = ModelArguments(model_name_or_path=model, **options)
    name, freeze_layers = args.model_name_or_path, args.freeze_layers
    labels = list(labels)
    if len(labels) < 2:
        raise ConfigError(f"Need at least 2 labels to classify, got {labels}.")
    if len(set(labels)) != len(labels):
        raise ConfigError(f"Labels must be unique, got {labels}.")
    described = types_of_tags(labels) or labels  # a tag set (O, B-x, I-x, ...) is described per entity type
    unknown = sorted(set(args.label_descriptions or ()) - set(described))
    if unknown:
        raise ConfigError(
            f"label_descriptions names label(s) {unknown} that the task does not have (labels: {described})."
        )
    register_auto_classes()  # a model hf_transfer saved is a base too (continued transfer)
    try:
        path = resolve_model(name)
        config = AutoConfig.from_pretrained(path)
    except (OSError, ValueError) as err:
        raise ConfigError(
            f"Cannot load the config of model {name!r} ({str(err).splitlines()[0]}). Pass a local "
            f"folder, a Hub id reachable from here, or 'minilm' for the embedded encoder."
        ) from None
    if isinstance(config, TransferConfig) and Path(path, "adapter_config.json").is_file():
        raise ConfigError(
            f"{name!r} is a PEFT adapter saved with merge_adapter=False; continue from a merged "
            f"model instead: save it with merge_adapter=True, or merge_and_unload() it and save_pretrained()."
        )
    if freeze_layers:
        total = num_layers(getattr(config, "encoder_config", None) or config)
        if total is None:
            raise ConfigError(f"Cannot tell how many layers {name!r} has, so freeze_layers cannot apply.")
        if freeze_layers > total:
            raise ConfigError(
                f"freeze_layers={freeze_layers} but {name!r} has only {total} layers; "
                f"use at most {total} (or method='head' to freeze the whole backbone)."
            )
    return args


def check_base_task(name: str, task: str, forced: bool) -> None:
    """Refuse a single-label classifier as the base of a multi-label run unless the task was asked for
    (``task="multi_label"``): its head is replaced either way, but a classifier trained to pick one label is
    more often a wrong ``model_name_or_path`` (or data that should be single-label) than a deliberate start."""
    if task != MULTI_LABEL or forced:
        return
    register_auto_classes()
    config = AutoConfig.from_pretrained(resolve_model(name))
    names = [str(v) for v in (getattr(config, "id2label", None) or {}).values()]
    trained = names and not all(re.fullmatch(r"LABEL_\d+", n) for n in names)
    if trained and getattr(config, "problem_type", None) != PROBLEM_TYPES[MULTI_LABEL]:
        raise ConfigError(
            f"{name!r} is a single-label classifier (labels {names[:5]}{' ...' if len(names) > 5 else ''}) and the "
            f"data is multi-label. To start from its encoder with a new multi-label head, pass task='multi_label' "
            f"(--task multi_label); otherwise give an encoder or a multi-label model as model_name_or_path."
        )


def load_encoder(path: str, dtype: torch.dtype | None = None) -> tuple[PreTrainedModel, tuple[str, bool] | None]:
    """The encoder at ``path`` and its declared ``(pooling, normalise)``; of a saved hf_transfer classifier or
    tagger (continued transfer) the encoder and pooling are kept and the head dropped."""
    kwargs = {"dtype": dtype} if dtype else {}
    config = AutoConfig.from_pretrained(path)
    if isinstance(config, TransferConfig):
        tagger = any(a.endswith("ForTokenClassification") for a in config.architectures or ())
        model_class = TransferForTokenClassification if tagger else TransferForSequenceClassification
        saved = model_class.from_pretrained(path, **kwargs)
        return saved.encoder, (saved.config.pooling, saved.config.normalize)
    return AutoModel.from_pretrained(path, **kwargs), sentence_transformers_pooling(path)


def layer_stack(encoder: nn.Module) -> nn.ModuleList:
    """The transformer blocks, found by shape rather than by architecture name."""
    total = num_layers(encoder.config)
    for module in encoder.modules():
        if isinstance(module, nn.ModuleList) and len(module) == total:
            return module
    raise ValueError(f"Could not find the {total} transformer layers of {type(encoder).__name__}.")


def freeze(model: TransferForSequenceClassification, *, backbone=False, embeddings=False, layers: int = 0) -> None:
    encoder = model.encoder
    if backbone:
        encoder.requires_grad_(False)
        model.frozen_encoder = True  # no dropout in it either: training on live inputs = on cached features
        return
    if embeddings:
        encoder.get_input_embeddings().requires_grad_(False)
        for name, module in encoder.named_children():
            if "embed" in name:
                module.requires_grad_(False)
    if layers:
        for block in layer_stack(encoder)[:layers]:
            block.requires_grad_(False)


def description_head(
    model: TransferForSequenceClassification,
    tokenizer: PreTrainedTokenizerBase,
    descriptions: Sequence[Sequence[str]],
    scale: float = 10.0,
    max_length: int = 128,
) -> torch.Tensor:
    """Head weights whose rows are the (averaged, normalised) embeddings of each label's descriptions."""
    rows = []
    for texts in descriptions:
        emb = embed_texts(model, tokenizer, list(texts), max_length=max_length)
        rows.append(nn.functional.normalize(nn.functional.normalize(emb, dim=-1).mean(0), dim=-1))
    return torch.stack(rows) * scale


def calibrate_bias(
    model: TransferForSequenceClassification,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    rates: Sequence[float],
    max_length: int = 128,
) -> None:
    """Multi-label: set each label's bias so that its sigmoid passes 0.5 on a ``rates[label]`` share of ``texts``.

    A description head scores by similarity, and similarities are positive for most text-label pairs: with a zero
    bias every label starts near probability 1, and binary cross-entropy spends its first hundred steps pulling
    all of them down (measured: GoEmotions at 8/label, head-only, still at loss 0.37 after 110 steps). Starting at
    the labels' rates ("init the bias to the base rate") lets training refine the ranking instead; with no
    labelled rows, ``rates`` = 1/num_labels is the zero-shot decision rule."""
    with torch.no_grad():
        model.classifier.bias.zero_()
    dim = model.config.num_labels
    logits = run_batched(model, tokenizer, texts, lambda m, b: m(**b).logits.float(), dim=dim, max_length=max_length)
    quantiles = [float(np.quantile(logits[:, j], 1 - rate)) for j, rate in enumerate(rates)]
    with torch.no_grad():
        model.classifier.bias.copy_(-torch.tensor(quantiles, dtype=model.classifier.bias.dtype))


def calibrate_token_bias(
    model: TransferForTokenClassification,
    tokenizer: PreTrainedTokenizerBase,
    sentences: Sequence[Sequence[str]],
    rates: Sequence[float],
    max_length: int = 128,
) -> None:
    """Token classification: set each entity type's biases so that its logit passes ``O``'s (0) on a
    ``rates[type]`` share of the words of ``sentences``; ``I-`` gets a hair more than ``B-``.

    The description head scores a word by its state's similarity to each type's description, and most
    similarities are positive, so with zero biases every word starts inside an entity (the multi-label head's
    problem, per token). Untrained, ``B-`` and ``I-`` rows are the same; leaning to ``I-`` reads a run of one
    type's words as one entity (an ``I-`` after ``O`` opens an entity in seqeval's default reading and in
    ``pipeline(aggregation_strategy="simple")``), where leaning to ``B-`` would split it into one per word."""
    with torch.no_grad():
        model.classifier.bias.zero_()
    dim = model.config.num_labels
    words = run_batched_words(model, tokenizer, sentences, lambda m, b: m(**b).logits.float(), max_length=max_length)
    logits = np.concatenate([w for w in words if len(w)] or [np.zeros((0, dim), np.float32)])
    bias = torch.zeros(dim)
    for k, rate in enumerate(rates):
        cut = float(np.quantile(logits[:, 2 + 2 * k], 1 - rate)) if len(logits) else 0.0
        bias[1 + 2 * k], bias[2 + 2 * k] = -cut, -cut + 1e-3
    with torch.no_grad():
        model.classifier.bias.copy_(bias.to(model.classifier.bias.dtype))


def descriptions_for(
    labels: Sequence[str], label_descriptions: Mapping | None, *, entity_types: bool = False
) -> list[list[str]]:
    """The texts that describe each label: the given ones, else its name as words (entity types:
    :func:`~hf_transfer.token_classification.readable_type`, which also spells out "PER", "GPE", ...)."""
    readable = readable_type if entity_types else readable_label
    given = [(label_descriptions or {}).get(label, readable(label)) for label in labels]
    return [[texts] if isinstance(texts, str) else list(texts) for texts in given]


def peft_config_for(method: str, encoder_model_type: str, *, tokens: bool = False, **overrides):
    """A PEFT config for ``method`` whose target modules suit the encoder, with the head saved in full."""
    import peft.utils.constants as peft_constants
    from peft import TaskType

    config_cls, peft_type = peft_config_class(method), peft_type_of(method)
    kwargs = {"task_type": TaskType.TOKEN_CLS if tokens else TaskType.SEQ_CLS}
    if method == "dora":
        kwargs["use_dora"] = True
    fields = getattr(config_cls, "__dataclass_fields__", {})
    for key, fallback in (("target_modules", "all-linear"), ("feedforward_modules", None)):
        if key in fields and key not in overrides:
            kind = key.split("_")[0].upper()
            mapping = getattr(peft_constants, f"TRANSFORMERS_MODELS_TO_{peft_type.value}_{kind}_MODULES_MAPPING", {})
            value = mapping.get(encoder_model_type, fallback)
            if value is not None:
                kwargs[key] = value
    if "modules_to_save" in fields:
        kwargs["modules_to_save"] = ["classifier"]
    kwargs.update(overrides)
    return config_cls(**kwargs)


def prepare(
    model: str | ModelArguments,
    labels: Sequence[str],
    *,
    dtype: torch.dtype | None = None,
    problem_type: str | None = None,
    calibrate: tuple[Sequence, Sequence[float]] | None = None,
    task: str | None = None,
    **options,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load ``model`` (a name with :class:`ModelArguments` fields as keywords, or a ``ModelArguments``) as a
    classifier over ``labels``; returns ``(model, tokenizer)``. A PEFT ``method`` returns a ``PeftModel``
    with the head in ``modules_to_save``; either way it goes straight to ``transformers.Trainer``.
    ``problem_type="multi_label_classification"``: a sigmoid per label, trained with binary cross-entropy; saved in
    ``config.json``, so plain transformers (``pipeline``) scores labels independently too; ``calibrate=(texts,
    rates)`` sets its biases by :func:`calibrate_bias` before any freezing or adapter.
    ``task="token_classification"``: a tagger (:class:`~hf_transfer.modeling.TransferForTokenClassification`)
    over the tag set ``labels`` (``O``, ``B-t``, ``I-t`` per type ``t``), its head from the types' descriptions and
    ``calibrate=(sentences, type_rates)`` by :func:`calibrate_token_bias`."""
    labels = list(labels)
    args = check_prepare_args(model, labels, **options)
    tokens = task == TOKEN_CLASSIFICATION
    types = types_of_tags(labels)
    if tokens and types is None:
        raise ConfigError(f"A tagger needs the tag set 'O', 'B-<type>', 'I-<type>', ... as labels, got {labels[:5]}.")
    method, ref = args.method, portable_ref(args.model_name_or_path)  # saved in config.json: no local path
    path = resolve_model(args.model_name_or_path)
    tokenizer = word_tokenizer(path) if tokens else AutoTokenizer.from_pretrained(path)
    encoder, declared = load_encoder(path, dtype)
    declared = declared or ("mean", False)
    encoder.config.name_or_path = ref
    config = TransferConfig(
        encoder_config=encoder.config.to_dict(),
        pooling=args.pooling or declared[0],
        normalize=declared[1] if args.normalize is None else args.normalize,
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
        problem_type=problem_type,
        subword_labels=args.subword_labels if tokens else None,
        pad_token_id=tokenizer.pad_token_id,  # what the Trainer would otherwise align (and log) on every run
    )
    config.name_or_path = ref
    model = (TransferForTokenClassification if tokens else TransferForSequenceClassification)(config, encoder=encoder)
    if tokens:
        pieces = [i for i in word_piece_ids(tokenizer) if i < len(model.word_pieces)]
        model.word_pieces[pieces] = True
    if args.head_init == "label_descriptions":
        descriptions = descriptions_for(types if tokens else labels, args.label_descriptions, entity_types=tokens)
        weights = description_head(model, tokenizer, descriptions, args.head_init_scale, args.max_length)
        if tokens:  # O: no direction of its own (the biases set where it wins); B-t and I-t: type t's
            weights = torch.cat([torch.zeros_like(weights[:1]), weights.repeat_interleave(2, dim=0)])
        with torch.no_grad():
            model.classifier.weight.copy_(weights)
            model.classifier.bias.zero_()
    if calibrate is not None:
        calibrate_fn = calibrate_token_bias if tokens else calibrate_bias
        calibrate_fn(model, tokenizer, *calibrate, max_length=args.max_length)
    freeze(model, backbone=method == "head", embeddings=args.freeze_embeddings, layers=args.freeze_layers)
    model.eval()  # like from_pretrained; the Trainer switches to train mode itself
    if args.is_peft:
        from peft import get_peft_model

        peft_config = peft_config_for(method, encoder.config.model_type, tokens=tokens, **(args.peft_kwargs or {}))
        model = get_peft_model(model, peft_config)
        saved = model.peft_config["default"]
        if getattr(saved, "modules_to_save", None):  # PEFT appends its SEQ_CLS defaults ("classifier", "score"):
            names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}  # list each real module once
            saved.modules_to_save = [m for m in dict.fromkeys(saved.modules_to_save) if m in names]
        model.eval()  # get_peft_model leaves its new layers in train mode
    return model, tokenizer


def export_model(model: PreTrainedModel, merge_adapter: bool = True) -> PreTrainedModel:
    """The model to save: PEFT weights merged into the base unless told otherwise."""
    from peft import PeftModel

    return model.merge_and_unload() if isinstance(model, PeftModel) and merge_adapter else model
