"""A sequence classifier that pools the way its encoder was trained to.

Sentence-transformers checkpoints (all-MiniLM-L6-v2 and friends) are trained with mean pooling and L2
normalisation; their ``[CLS]`` token and BERT pooler carry no trained sentence meaning. The stock
``AutoModelForSequenceClassification`` classifies from the pooler, which throws away exactly what
transfer learning wants to keep. ``TransferForSequenceClassification`` wraps any ``AutoModel``
encoder, pools it as configured (mean / cls / max / pooler, optionally normalised) and puts a linear
head on top. Because the pooled features match the checkpoint's embedding space, the head can be
initialised from label-description embeddings and classify before any training.

This module only imports torch and transformers (no relative imports), so it can be shipped next to saved
weights: ``save_pretrained`` copies this file into the folder as ``modeling.py`` and writes ``auto_map``
into ``config.json`` (see the ``register_for_auto_class`` calls below the classes), so a saved model loads with
``trust_remote_code=True`` where hf_transfer is not installed. Where it is, ``import hf_transfer`` registers
these classes (:func:`register_auto_classes`) and transformers prefers them to the shipped copy.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, PreTrainedConfig, PreTrainedModel
from transformers.configuration_utils import SubConfigSpec
from transformers.modeling_outputs import SequenceClassifierOutput

POOLING_MODES = ("mean", "cls", "max", "pooler")


class TransferConfig(PreTrainedConfig):
    """Config of a pooled encoder + linear head; ``encoder_config`` is the backbone's own config."""

    model_type = "hf_transfer"
    sub_configs_defaults = {"encoder_config": SubConfigSpec(config_class=AutoConfig, model_type="bert")}

    encoder_config: PreTrainedConfig | dict | None = None
    pooling: Literal["mean", "cls", "max", "pooler"] = "mean"
    normalize: bool = False
    classifier_dropout: float = 0.0

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        if self.pooling not in POOLING_MODES:
            raise ValueError(f"pooling={self.pooling!r} is not one of {POOLING_MODES}.")

    @property
    def hidden_size(self) -> int:
        return self.encoder_config.hidden_size


class TransferPreTrainedModel(PreTrainedModel):
    config: TransferConfig
    config_class = TransferConfig
    base_model_prefix = "encoder"
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    # The loss is a per-batch mean; tell the Trainer not to rescale it by num_items_in_batch / world size.
    accepts_loss_kwargs = False

    def _init_weights(self, module):
        # The encoder arrives pretrained; only the head is ever freshly initialised here.
        if isinstance(module, nn.Linear) and module is getattr(self, "classifier", None):
            nn.init.normal_(module.weight, std=0.02)
            nn.init.zeros_(module.bias)


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor | None, mode: str) -> torch.Tensor:
    """Reduce token states ``(batch, seq, dim)`` to one vector per text, ignoring padding."""
    if mode == "cls":
        return hidden[:, 0]
    if attention_mask is None:
        attention_mask = torch.ones(hidden.shape[:2], device=hidden.device, dtype=torch.long)
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    if mode == "max":
        return hidden.masked_fill(mask == 0, torch.finfo(hidden.dtype).min).amax(dim=1)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)


class TransferForSequenceClassification(TransferPreTrainedModel):
    """Encoder → pooling → (normalise) → dropout → linear head.

    ``forward`` also accepts precomputed ``sentence_embedding`` (the pooled, normalised features), which
    lets a frozen backbone be run once and the head be trained on cached features by the stock Trainer.
    """

    def __init__(self, config: TransferConfig, encoder: PreTrainedModel | None = None):
        super().__init__(config)
        self.encoder = encoder if encoder is not None else AutoModel.from_config(config.encoder_config)
        if self.encoder.config._attn_implementation is None:
            self.encoder.config._attn_implementation = self.config._attn_implementation
        self.config.encoder_config = self.encoder.config
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def embed(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        **kwargs,
    ) -> torch.Tensor:
        """The pooled (and, if configured, L2-normalised) sentence embedding."""
        encoder_kwargs = {"attention_mask": attention_mask, **kwargs}
        if token_type_ids is not None:
            encoder_kwargs["token_type_ids"] = token_type_ids
        outputs = self.encoder(input_ids=input_ids, return_dict=True, **encoder_kwargs)
        if self.config.pooling == "pooler":
            pooled = outputs.pooler_output
        else:
            pooled = pool(outputs.last_hidden_state, attention_mask, self.config.pooling)
        if self.config.normalize:
            pooled = nn.functional.normalize(pooled, dim=-1)
        return pooled

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        sentence_embedding: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        **kwargs,
    ) -> SequenceClassifierOutput:
        if sentence_embedding is None:
            extra = {"inputs_embeds": inputs_embeds} if inputs_embeds is not None else {}
            for key in ("output_attentions", "output_hidden_states", "position_ids"):
                if kwargs.get(key) is not None:
                    extra[key] = kwargs[key]
            sentence_embedding = self.embed(input_ids, attention_mask, token_type_ids, **extra)
        logits = self.classifier(self.dropout(sentence_embedding.to(self.classifier.weight.dtype)))
        loss = None
        if labels is not None:
            if not labels.is_floating_point():
                loss = nn.functional.cross_entropy(logits, labels.long())
            else:  # soft targets (distributions over labels)
                loss = nn.functional.cross_entropy(logits, labels.to(logits.dtype))
        return SequenceClassifierOutput(loss=loss, logits=logits)

    def get_input_embeddings(self) -> nn.Module:
        return self.encoder.get_input_embeddings()


# Ship this file with every save: ``save_pretrained`` (config and model) sees ``_auto_class`` and calls
# ``custom_object_save``, which copies this module next to the weights and adds ``auto_map`` to config.json.
TransferConfig.register_for_auto_class()
TransferForSequenceClassification.register_for_auto_class("AutoModelForSequenceClassification")


def register_auto_classes() -> None:
    """Let ``AutoConfig`` / ``AutoModelForSequenceClassification`` load saved hf_transfer models with this
    package's classes and without ``trust_remote_code``: a registered class counts as local code, which
    transformers uses in preference to the ``auto_map`` copy saved in the folder."""
    from transformers import AutoModelForSequenceClassification

    try:
        AutoConfig.register(TransferConfig.model_type, TransferConfig)
    except ValueError:  # already registered (module reloaded)
        pass
    try:
        AutoModelForSequenceClassification.register(TransferConfig, TransferForSequenceClassification)
    except ValueError:
        pass
