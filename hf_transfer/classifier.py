"""Turn a pretrained encoder into a classifier for the target labels, ready for ``transformers.Trainer``.

One call, :func:`prepare`, does what adapting a checkpoint needs: a head sized to the labels, pooling
that matches how the checkpoint was trained, optional freezing, optional PEFT wrapping (head in
``modules_to_save``) and a head initialised from label descriptions so training starts from the
zero-shot classifier instead of from chance.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from .config import as_mapping, check_range
from .data import readable_label
from .defaults import DEFAULT_ENCODER, portable_ref, resolve_model, sentence_transformers_pooling
from .errors import ConfigError
from .inference import embed_texts
from .modeling import POOLING_MODES, TransferConfig, TransferForSequenceClassification, register_auto_classes

BUILTIN_METHODS = ("full", "head")


def peft_method_names() -> list[str]:
    """PEFT methods ``method=`` accepts, besides ``full`` and ``head``: every PEFT type, plus ``dora``."""
    from peft.mapping import PEFT_TYPE_TO_CONFIG_MAPPING

    return sorted([t.value.lower() for t in PEFT_TYPE_TO_CONFIG_MAPPING] + ["dora"])


def peft_type_of(method: str):
    """The ``PeftType`` of PEFT method ``method`` (``dora`` is LoRA with ``use_dora``)."""
    from peft import PeftType

    return PeftType.LORA if method == "dora" else PeftType[method.upper()]


def peft_config_class(method: str) -> type:
    """The PEFT config dataclass of ``method``: one lookup for checking ``peft_kwargs`` before the model loads
    and for building the config from them."""
    from peft.mapping import PEFT_TYPE_TO_CONFIG_MAPPING

    return PEFT_TYPE_TO_CONFIG_MAPPING[peft_type_of(method)]


# The classifier's numeric options and their valid ranges (``check_range``'s keywords).
MODEL_RANGES: dict[str, dict] = {
    "max_length": dict(low=1),
    "freeze_layers": dict(low=0),
    "head_init_scale": dict(low=0, low_open=True),
}


@dataclass
class ModelArguments:
    """The classifier a run builds from a pretrained encoder: every model option, declared and checked once
    (TRL's ``ModelConfig``). :func:`prepare` takes it; each strategy's config extends it, so the CLI, recipes and
    cards see the same fields."""

    # fields that do not change what is trained (where things go, how fast): not fingerprinted, not in cards
    io_fields: ClassVar[tuple[str, ...]] = ("merge_adapter",)

    model_name_or_path: str = field(
        default=DEFAULT_ENCODER,
        metadata={"help": "Encoder to adapt: Hub id, local path, or 'minilm' (the embedded all-MiniLM-L6-v2)."},
    )
    method: str = field(
        default="full",
        metadata={
            "help": "'full' (all weights), 'head' (frozen backbone; trains the head on cached features), "
            "or a PEFT method name: 'lora', 'dora', 'ia3', 'loha', 'lokr', 'vera', ..."
        },
    )
    peft_kwargs: dict | str | None = field(
        default=None,
        metadata={"help": "Extra arguments for the PEFT config as a mapping or JSON, e.g. '{\"r\": 16}'."},
    )
    merge_adapter: bool = field(
        default=True,
        metadata={"help": "Merge PEFT weights into the base model when saving (plain model export)."},
    )
    freeze_embeddings: bool = field(default=False, metadata={"help": "Freeze the encoder's embedding layer."})
    freeze_layers: int = field(default=0, metadata={"help": "Freeze the bottom k transformer layers."})
    pooling: str | None = field(
        default=None,
        metadata={
            "help": "mean, cls, max or pooler; default: what a sentence-transformers checkpoint declares, else mean."
        },
    )
    normalize: bool | None = field(
        default=None, metadata={"help": "L2-normalise pooled features; default: the checkpoint's own setting."}
    )
    max_length: int = field(default=128, metadata={"help": "Truncate texts to this many tokens."})
    head_init: str = field(
        default="label_descriptions",
        metadata={
            "help": "'label_descriptions': start the head from the encoder's embeddings of a text per label "
            "(zero-shot before training); 'random': a fresh head."
        },
    )
    label_descriptions: dict | str | None = field(
        default=None,
        metadata={
            "help": "Text (or list of texts, averaged) per label for head_init, as a mapping or JSON; "
            "default: the label name."
        },
    )
    head_init_scale: float = field(
        default=10.0,
        metadata={
            "help": "Logit scale (inverse temperature) of a description-initialised head on normalised features."
        },
    )

    def __post_init__(self):
        self.method = self.method.lower()
        if self.method not in BUILTIN_METHODS and self.method not in peft_method_names():
            raise ConfigError(
                f"method={self.method!r} is not known. Use 'full', 'head', or a PEFT method: "
                f"{', '.join(peft_method_names())}."
            )
        for name, bounds in MODEL_RANGES.items():
            check_range(name, getattr(self, name), **bounds)
        self.peft_kwargs = as_mapping("peft_kwargs", self.peft_kwargs)
        self.label_descriptions = as_mapping("label_descriptions", self.label_descriptions)
        if self.peft_kwargs and not self.is_peft:
            raise ConfigError(f"peft_kwargs is set but method={self.method!r} is not a PEFT method.")
        if self.peft_kwargs:
            self._check_peft_kwargs()
        if self.pooling is not None and self.pooling not in POOLING_MODES:
            raise ConfigError(f"pooling={self.pooling!r}: use {', '.join(POOLING_MODES)}.")
        if self.head_init not in ("label_descriptions", "random"):
            raise ConfigError(f"head_init={self.head_init!r}: use 'label_descriptions' or 'random'.")

    def _check_peft_kwargs(self) -> None:
        """Refuse ``peft_kwargs`` keys the method's PEFT config does not take: PEFT would only fail on them
        after the encoder has loaded, with a bare ``TypeError``."""
        config_class = peft_config_class(self.method)
        valid = sorted(f.name for f in dataclasses.fields(config_class) if f.init)
        unknown = sorted(set(map(str, self.peft_kwargs)) - set(valid))
        if unknown:
            hints = []
            for key in unknown:
                close = difflib.get_close_matches(key, valid, n=1)
                hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
            raise ConfigError(
                f"peft_kwargs has key(s) that {config_class.__name__} (method={self.method!r}) does not take: "
                f"{', '.join(hints)}. Fix or remove them; see the {config_class.__name__} documentation in PEFT."
            )

    @property
    def is_peft(self) -> bool:
        return self.method not in BUILTIN_METHODS

    def model_options(self) -> dict:
        """This instance's model options by name (a ``FinetuneConfig`` holds many more fields)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(ModelArguments)}


def num_layers(config) -> int | None:
    return getattr(config, "num_hidden_layers", None) or getattr(config, "n_layer", None)


def model_arguments(model: str | ModelArguments, **options) -> ModelArguments:
    """``model`` as :class:`ModelArguments`: a name or path with keyword options (checked by the dataclass),
    or a ``ModelArguments`` (any strategy config) with ``options`` replacing some of its fields."""
    if isinstance(model, ModelArguments):
        return ModelArguments(**{**model.model_options(), **options}) if options else model
    return ModelArguments(model_name_or_path=model, **options)


def check_prepare_args(model: str | ModelArguments, labels: Sequence[str], **options) -> ModelArguments:
    """Validate everything that can be checked without weights (the options, the labels, the model's config)
    and return the options as :class:`ModelArguments`."""
    args = model_arguments(model, **options)
    model_name_or_path, freeze_layers = args.model_name_or_path, args.freeze_layers
    label_descriptions = args.label_descriptions
    labels = list(labels)
    if len(labels) < 2:
        raise ConfigError(f"Need at least 2 labels to classify, got {labels}.")
    if len(set(labels)) != len(labels):
        raise ConfigError(f"Labels must be unique, got {labels}.")
    if label_descriptions:
        unknown = sorted(set(label_descriptions) - set(labels))
        if unknown:
            raise ConfigError(
                f"label_descriptions names label(s) {unknown} that the task does not have (labels: {labels})."
            )
    register_auto_classes()  # a model hf_transfer saved is a base too (continued transfer)
    try:
        config = AutoConfig.from_pretrained(resolve_model(model_name_or_path))
    except (OSError, ValueError) as err:
        raise ConfigError(
            f"Cannot load the config of model {model_name_or_path!r} ({str(err).splitlines()[0]}). Pass a local "
            f"folder, a Hub id reachable from here, or 'minilm' for the embedded encoder."
        ) from None
    if isinstance(config, TransferConfig) and Path(resolve_model(model_name_or_path), "adapter_config.json").is_file():
        raise ConfigError(
            f"{model_name_or_path!r} is a PEFT adapter saved with merge_adapter=False; continue from a merged "
            f"model instead: save it with merge_adapter=True, or merge_and_unload() it and save_pretrained()."
        )
    if freeze_layers:
        total = num_layers(getattr(config, "encoder_config", None) or config)
        if total is None:
            raise ConfigError(
                f"Cannot tell how many layers {model_name_or_path!r} has, so freeze_layers cannot apply."
            )
        if freeze_layers > total:
            raise ConfigError(
                f"freeze_layers={freeze_layers} but {model_name_or_path!r} has only {total} layers; "
                f"use at most {total} (or method='head' to freeze the whole backbone)."
            )
    return args


def load_encoder(path: str, dtype: torch.dtype | None = None) -> tuple[PreTrainedModel, tuple[str, bool] | None]:
    """The encoder at ``path`` and the pooling it was trained with, ``(mode, normalise)`` when declared.

    A classifier hf_transfer saved is a base like any other (continued transfer onto another label set):
    its encoder and pooling are kept and its head is dropped, as ``prepare`` builds a new one."""
    kwargs = {"dtype": dtype} if dtype else {}
    if isinstance(AutoConfig.from_pretrained(path), TransferConfig):
        saved = TransferForSequenceClassification.from_pretrained(path, **kwargs)
        return saved.encoder, (saved.config.pooling, saved.config.normalize)
    return AutoModel.from_pretrained(path, **kwargs), sentence_transformers_pooling(path)


def layer_stack(encoder: nn.Module) -> nn.ModuleList:
    """The encoder's list of transformer blocks, found by shape rather than by architecture name."""
    total = num_layers(encoder.config)
    for module in encoder.modules():
        if isinstance(module, nn.ModuleList) and len(module) == total:
            return module
    raise ValueError(f"Could not find the {total} transformer layers of {type(encoder).__name__}.")


def freeze(model: TransferForSequenceClassification, *, backbone=False, embeddings=False, layers: int = 0) -> None:
    """Stop gradients to the whole backbone, its embeddings, and/or its bottom ``layers`` blocks."""
    encoder = model.encoder
    if backbone:
        encoder.requires_grad_(False)
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


def descriptions_for(labels: Sequence[str], label_descriptions: Mapping | None) -> list[list[str]]:
    label_descriptions = label_descriptions or {}
    result = []
    for label in labels:
        given = label_descriptions.get(label, readable_label(label))
        result.append([given] if isinstance(given, str) else list(given))
    return result


def peft_config_for(method: str, encoder_model_type: str, **overrides):
    """A PEFT config for ``method`` whose target modules suit the encoder, with the head saved in full."""
    import peft.utils.constants as peft_constants
    from peft import TaskType

    config_cls, peft_type = peft_config_class(method), peft_type_of(method)
    kwargs = {"task_type": TaskType.SEQ_CLS}
    if method == "dora":
        kwargs["use_dora"] = True
    fields = getattr(config_cls, "__dataclass_fields__", {})
    if "target_modules" in fields and "target_modules" not in overrides:
        mapping = getattr(peft_constants, f"TRANSFORMERS_MODELS_TO_{peft_type.value}_TARGET_MODULES_MAPPING", {})
        kwargs["target_modules"] = mapping.get(encoder_model_type, "all-linear")
    if "feedforward_modules" in fields and "feedforward_modules" not in overrides:
        mapping = getattr(peft_constants, f"TRANSFORMERS_MODELS_TO_{peft_type.value}_FEEDFORWARD_MODULES_MAPPING", {})
        if encoder_model_type in mapping:
            kwargs["feedforward_modules"] = mapping[encoder_model_type]
    if "modules_to_save" in fields:
        kwargs["modules_to_save"] = ["classifier"]
    kwargs.update(overrides)
    return config_cls(**kwargs)


def prepare(
    model: str | ModelArguments,
    labels: Sequence[str],
    *,
    dtype: torch.dtype | None = None,
    **options,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load ``model`` as a classifier over ``labels``; returns ``(model, tokenizer)``.

    ``model`` is a name or path with :class:`ModelArguments` fields as keywords (``method="lora"``,
    ``label_descriptions={...}``, ``freeze_layers=2``, ...), or a ``ModelArguments`` itself (any strategy's
    config). ``method`` is ``full``, ``head`` (backbone frozen) or any PEFT method name (``lora``, ``dora``,
    ``ia3``, ...), in which case the returned model is a ``PeftModel`` with the head in
    ``modules_to_save``. The model is a plain ``PreTrainedModel``: hand it to ``transformers.Trainer``.
    """
    labels = list(labels)
    args = check_prepare_args(model, labels, **options)
    model_name_or_path, method = args.model_name_or_path, args.method
    path = resolve_model(model_name_or_path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    encoder, declared = load_encoder(path, dtype)
    pooling = args.pooling or (declared[0] if declared else "mean")
    normalize = args.normalize if args.normalize is not None else (declared[1] if declared else False)
    encoder.config.name_or_path = portable_ref(model_name_or_path)  # saved in config.json: no local path
    config = TransferConfig(
        encoder_config=encoder.config.to_dict(),
        pooling=pooling,
        normalize=normalize,
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
    )
    config.name_or_path = portable_ref(model_name_or_path)
    model = TransferForSequenceClassification(config, encoder=encoder)
    if args.head_init == "label_descriptions":
        descriptions = descriptions_for(labels, args.label_descriptions)
        weights = description_head(model, tokenizer, descriptions, args.head_init_scale, args.max_length)
        with torch.no_grad():
            model.classifier.weight.copy_(weights)
            model.classifier.bias.zero_()
    freeze(model, backbone=method == "head", embeddings=args.freeze_embeddings, layers=args.freeze_layers)
    model.eval()  # like from_pretrained; the Trainer switches to train mode itself
    if method not in BUILTIN_METHODS:
        from peft import get_peft_model

        peft_config = peft_config_for(method, encoder.config.model_type, **dict(args.peft_kwargs or {}))
        model = get_peft_model(model, peft_config)
        saved = model.peft_config["default"]
        if getattr(saved, "modules_to_save", None):  # PEFT appends its SEQ_CLS defaults ("classifier", "score"):
            names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}  # list each real module once
            saved.modules_to_save = [m for m in dict.fromkeys(saved.modules_to_save) if m in names]
        model.eval()  # get_peft_model leaves its new layers in train mode
    return model, tokenizer


def export_model(model: PreTrainedModel, merge_adapter: bool = True) -> PreTrainedModel:
    """The model to save: PEFT weights merged into the base (``merge_and_unload``) unless told otherwise."""
    from peft import PeftModel

    if isinstance(model, PeftModel) and merge_adapter:
        return model.merge_and_unload()
    return model
