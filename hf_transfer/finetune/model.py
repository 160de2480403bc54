"""Turn a pretrained encoder into a classifier for the target labels, ready for ``transformers.Trainer``.

One call, :func:`prepare`, does what adapting a checkpoint needs: a head sized to the labels, pooling
that matches how the checkpoint was trained, optional freezing, optional PEFT wrapping (head in
``modules_to_save``) and a head initialised from label descriptions so training starts from the
zero-shot classifier instead of from chance.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from ..data import readable_label
from ..defaults import portable_ref, resolve_model, sentence_transformers_pooling
from ..errors import ConfigError
from ..inference import run_batched
from ..modeling import TransferConfig, TransferForSequenceClassification, register_auto_classes
from .config import BUILTIN_METHODS, peft_config_class, peft_method_names, peft_type_of


def num_layers(config) -> int | None:
    return getattr(config, "num_hidden_layers", None) or getattr(config, "n_layer", None)


def check_prepare_args(
    model_name_or_path: str,
    labels: Sequence[str],
    *,
    method: str = "full",
    freeze_layers: int = 0,
    label_descriptions: Mapping[str, str | Sequence[str]] | None = None,
):
    """Validate everything that can be checked from the config alone, before weights are loaded."""
    labels = list(labels)
    if len(labels) < 2:
        raise ConfigError(f"Need at least 2 labels to classify, got {labels}.")
    if len(set(labels)) != len(labels):
        raise ConfigError(f"Labels must be unique, got {labels}.")
    if method not in BUILTIN_METHODS and method not in peft_method_names():
        raise ConfigError(
            f"method={method!r} is not known. Use 'full', 'head', or a PEFT method: {', '.join(peft_method_names())}."
        )
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
    return config


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


def embed_texts(
    model: TransferForSequenceClassification,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    batch_size: int = 64,
    max_length: int = 128,
) -> torch.Tensor:
    """Pooled embeddings of ``texts`` in input order, as a float32 CPU tensor (loop: ``inference.run_batched``)."""
    embed = run_batched(
        model,
        tokenizer,
        texts,
        lambda m, batch: m.embed(**batch),
        dim=model.config.hidden_size,
        batch_size=batch_size,
        max_length=max_length,
    )
    return torch.from_numpy(embed)


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
    model_name_or_path: str,
    labels: Sequence[str],
    *,
    method: str = "full",
    pooling: str | None = None,
    normalize: bool | None = None,
    head_init: str = "label_descriptions",
    label_descriptions: Mapping[str, str | Sequence[str]] | None = None,
    head_init_scale: float = 10.0,
    freeze_embeddings: bool = False,
    freeze_layers: int = 0,
    peft_kwargs: Mapping | None = None,
    max_length: int = 128,
    dtype: torch.dtype | None = None,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load ``model_name_or_path`` as a classifier over ``labels``; returns ``(model, tokenizer)``.

    ``method`` is ``full``, ``head`` (backbone frozen) or any PEFT method name (``lora``, ``dora``,
    ``ia3``, ...), in which case the returned model is a ``PeftModel`` with the head in
    ``modules_to_save``. The model is a plain ``PreTrainedModel``: hand it to ``transformers.Trainer``.
    """
    labels = list(labels)
    check_prepare_args(
        model_name_or_path, labels, method=method, freeze_layers=freeze_layers, label_descriptions=label_descriptions
    )
    path = resolve_model(model_name_or_path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    encoder, declared = load_encoder(path, dtype)
    pooling = pooling or (declared[0] if declared else "mean")
    normalize = normalize if normalize is not None else (declared[1] if declared else False)
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
    if head_init == "label_descriptions":
        weights = description_head(
            model, tokenizer, descriptions_for(labels, label_descriptions), head_init_scale, max_length
        )
        with torch.no_grad():
            model.classifier.weight.copy_(weights)
            model.classifier.bias.zero_()
    elif head_init != "random":
        raise ValueError(f"head_init={head_init!r}: use 'label_descriptions' or 'random'.")
    freeze(model, backbone=method == "head", embeddings=freeze_embeddings, layers=freeze_layers)
    model.eval()  # like from_pretrained; the Trainer switches to train mode itself
    if method not in BUILTIN_METHODS:
        from peft import get_peft_model

        peft_config = peft_config_for(method, encoder.config.model_type, **dict(peft_kwargs or {}))
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
