"""A sequence classifier that pools the way its encoder was trained to.

The stock ``AutoModelForSequenceClassification`` classifies from the pooler, which in sentence-transformers
checkpoints carries no trained meaning (they are trained with mean pooling); pooling as trained keeps the embedding
space, so the head can start from label-description embeddings. Only torch and transformers are imported, as
``save_pretrained`` ships this file next to the weights for ``trust_remote_code=True`` loading without hf_transfer.
"""

from __future__ import annotations

import contextlib
from typing import Literal

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, PreTrainedConfig, PreTrainedModel

try:
    from transformers.configuration_utils import SubConfigSpec
except ImportError:  # transformers < 5.20 (vLLM 0.32-0.34 pin it below 5.20): the older sub_configs declaration
    SubConfigSpec = None
from transformers.modeling_outputs import SequenceClassifierOutput, TokenClassifierOutput

POOLING_MODES = ("mean", "cls", "max", "pooler")


class TransferConfig(PreTrainedConfig):
    """Config of a pooled encoder + linear head; ``encoder_config`` is the backbone's own config."""

    model_type = "hf_transfer"
    if SubConfigSpec is not None:
        sub_configs_defaults = {"encoder_config": SubConfigSpec(config_class=AutoConfig, model_type="bert")}
    else:
        sub_configs = {"encoder_config": AutoConfig}

    encoder_config: PreTrainedConfig | dict | None = None
    pooling: Literal["mean", "cls", "max", "pooler"] = "mean"
    normalize: bool = False
    classifier_dropout: float = 0.0
    # multi-label: the probability at which each label is predicted (chosen on training data when trained)
    label_thresholds: list[float] | None = None
    # token classification: which sub-tokens of a word carried its tag in training ("first" or "all"), and
    # whether a token tagged B-x right after an x token is read as continuing it (see continue_runs)
    subword_labels: str | None = None
    continue_runs: bool = True

    def __post_init__(self, **kwargs):
        if SubConfigSpec is None and not isinstance(self.encoder_config, PreTrainedConfig):
            # what sub_configs_defaults does from transformers 5.20 on
            encoder = dict(self.encoder_config or {})
            self.encoder_config = AutoConfig.for_model(encoder.pop("model_type", "bert"), **encoder)
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
    # Set when the whole backbone is frozen (hf_transfer's method="head"): the encoder is a fixed feature extractor.
    frozen_encoder = False

    def train(self, mode: bool = True):
        """``nn.Module.train``, but a frozen encoder (``frozen_encoder``) stays in eval mode, its dropout off: a head
        trained on live inputs sees the features that the cached path computes once in eval mode."""
        super().train(mode)
        if mode and self.frozen_encoder:
            self.encoder.eval()
        return self

    def _init_weights(self, module):
        # The encoder arrives pretrained; only the head is ever freshly initialised here.
        if isinstance(module, nn.Linear) and module is getattr(self, "classifier", None):
            nn.init.normal_(module.weight, std=0.02)
            nn.init.zeros_(module.bias)

    def _attach_encoder(self, encoder: PreTrainedModel | None) -> None:
        self.encoder = encoder if encoder is not None else AutoModel.from_config(self.config.encoder_config)
        if self.encoder.config._attn_implementation is None:
            self.encoder.config._attn_implementation = self.config._attn_implementation
        self.config.encoder_config = self.encoder.config
        self.dropout = nn.Dropout(self.config.classifier_dropout)
        self.classifier = nn.Linear(self.config.hidden_size, self.config.num_labels)

    def _encode(self, input_ids, attention_mask, token_type_ids, inputs_embeds=None, **kwargs):
        given = {**kwargs, "inputs_embeds": inputs_embeds}
        keys = ("inputs_embeds", "output_attentions", "output_hidden_states", "position_ids")
        extra = {key: given[key] for key in keys if given.get(key) is not None}
        if token_type_ids is not None:
            extra["token_type_ids"] = token_type_ids
        return self.encoder(input_ids=input_ids, attention_mask=attention_mask, return_dict=True, **extra)

    def get_input_embeddings(self) -> nn.Module:
        return self.encoder.get_input_embeddings()

    def head(self, features: torch.Tensor) -> torch.Tensor:
        """Dropout + the linear head, computed in the head's own dtype outside any autocast: under bf16 autocast
        the logits come out rounded to bf16 (steps of 0.03 at |logit| 4-8), enough to swap near-tied tags. A
        CrossNER politics tagger (8 sentences per type, MiniLM, fp32-trained) scored 29.0 entity F1 on test under
        bf16 autocast with its head inside it, 41.6 with the head outside (fp32 throughout: 41.6; words whose
        argmax matches fp32's: 96.7% vs 99.9%). The head is a few hundred thousand FLOPs per row."""
        device = features.device.type
        autocast = torch.amp.is_autocast_available(device) and torch.is_autocast_enabled(device)
        with torch.autocast(device, enabled=False) if autocast else contextlib.nullcontext():
            return self.classifier(self.dropout(features.to(self.classifier.weight.dtype)))

    def embed(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        **kwargs,
    ) -> torch.Tensor:
        """The pooled (and, if configured, L2-normalised) sentence embedding."""
        outputs = self._encode(input_ids, attention_mask, token_type_ids, **kwargs)
        mode = self.config.pooling
        pooled = outputs.pooler_output if mode == "pooler" else pool(outputs.last_hidden_state, attention_mask, mode)
        if self.config.normalize:
            pooled = nn.functional.normalize(pooled, dim=-1)
        return pooled


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


def masked_bce(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy over the ``(batch, labels)`` entries whose target is in [0, 1]; a negative target
    (``-1``) marks a label the row says nothing about (a synthetic text asked for other labels), so it adds
    no gradient. Without such entries this is ``binary_cross_entropy_with_logits``' mean."""
    targets = targets.float()
    known = targets >= 0
    loss = nn.functional.binary_cross_entropy_with_logits(logits.float(), targets.clamp(0, 1), reduction="none")
    return (loss * known).sum() / known.sum().clamp(min=1)


class TransferForSequenceClassification(TransferPreTrainedModel):
    """Encoder → pooling → (normalise) → dropout → linear head. ``forward`` also takes a precomputed
    ``sentence_embedding``, so the stock Trainer can train the head on cached features of a frozen backbone."""

    def __init__(self, config: TransferConfig, encoder: PreTrainedModel | None = None):
        super().__init__(config)
        self._attach_encoder(encoder)
        self.post_init()

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
            sentence_embedding = self.embed(
                input_ids, attention_mask, token_type_ids, inputs_embeds=inputs_embeds, **kwargs
            )
        logits = self.head(sentence_embedding)
        loss = None
        if labels is not None and self.config.problem_type == "multi_label_classification":
            loss = masked_bce(logits, labels)  # multi-hot; a negative entry is "unknown", left out of the loss
        elif labels is not None:  # float labels are soft targets (distributions over labels)
            targets = labels.to(logits.dtype) if labels.is_floating_point() else labels.long()
            loss = nn.functional.cross_entropy(logits, targets)
        return SequenceClassifierOutput(loss=loss, logits=logits)

    def decide(self, logits: torch.Tensor) -> torch.Tensor:
        """Predicted labels from logits: class ids (single-label), or a bool ``(batch, labels)`` matrix of
        the labels whose sigmoid reaches ``config.label_thresholds`` (0.5 where none are saved)."""
        if self.config.problem_type != "multi_label_classification":
            return logits.argmax(-1)
        thresholds = self.config.label_thresholds or [0.5] * logits.shape[-1]
        return logits.float().sigmoid() >= torch.tensor(thresholds, device=logits.device)


def token_soft_target_loss(logits: torch.Tensor, targets: torch.Tensor, labels: torch.Tensor | None = None,
                           *, weight: float = 1.0, temperature: float = 1.0) -> torch.Tensor:  # fmt: skip
    """Per-token distillation: ``(1 − weight) · CE(z, y) + weight · T² · KL(q_T ‖ softmax(z / T))`` over the
    tokens whose target row sums to 1 (padding and unlabelled sub-tokens carry zeros), averaged over those
    tokens; CE over the tokens whose label is not -100."""
    logits = logits.float()
    scored = targets.float().sum(-1) > 0.5
    target_log = nn.functional.log_softmax(targets.float().clamp_min(1e-8).log() / temperature, dim=-1)
    log_probs = nn.functional.log_softmax(logits / temperature, dim=-1)
    kl = (target_log.exp() * (target_log - log_probs)).sum(-1)
    kl = (kl * scored).sum() / scored.sum().clamp(min=1) * temperature**2
    if labels is None or weight == 1.0:
        return kl
    ce = nn.functional.cross_entropy(logits.flatten(0, 1), labels.flatten().long(), ignore_index=-100)
    return (1 - weight) * torch.nan_to_num(ce) + weight * kl


def continue_runs(logits: torch.Tensor) -> torch.Tensor:
    """Tag logits ``(batch, seq, tags)`` over ``O, B-t1, I-t1, B-t2, ...`` with ``B-x`` and ``I-x`` swapped where
    the argmax is ``B-x`` right after a token whose argmax is of type ``x``: that token continues the entity.

    A tagger learns the entity *type* of a word far sooner than whether it *begins* one (whose signal is in
    the word before): trained on 2,000 CoNLL-2003 sentences, MiniLM tagged "Andy Caddick" as two persons, and
    its entity F1 on validation was 43.1 as predicted, 83.1 read this way. An entity of one type directly after
    another of the same type, with no word between, is what this reading merges: none of CoNLL-2003 train's
    23,499 entities, 0.2% of CrossNER politics'. Swapping keeps each token's distribution (its mass moves from
    ``B-x`` to ``I-x``), so soft labels stay calibrated; the rule is idempotent and needs no training."""
    tags = logits.argmax(-1)
    kind = (tags + 1) // 2  # 0 for O, k for B-tk / I-tk
    previous = torch.nn.functional.pad(kind, (1, 0))[:, :-1]
    swap = (tags % 2 == 1) & (kind == previous) & (kind > 0)
    # No early return when nothing swaps: a data-dependent branch stops torch.export (hf-transfer export); an
    # unswapped token writes its own two values back.
    begin = torch.where(swap, tags, torch.zeros_like(tags)).unsqueeze(-1)
    inside = begin + 1
    out = logits.clone()
    b_values, i_values = logits.gather(-1, begin), logits.gather(-1, inside)
    mask = swap.unsqueeze(-1)
    out.scatter_(-1, begin, torch.where(mask, i_values, b_values))
    out.scatter_(-1, inside, torch.where(mask, b_values, i_values))
    return out


def carry_word_pieces(logits: torch.Tensor, continues: torch.Tensor) -> torch.Tensor:
    """Tag logits ``(batch, seq, tags)`` with each token that continues a word (``continues``, ``(batch, seq)``:
    WordPiece's ``##`` pieces) given the logits of its word's first piece, the one the tagger was trained and is
    scored on. Why: ``pipeline("token-classification", aggregation_strategy="simple")`` groups tokens by their
    own tags, and an untrained ``##n`` tagged ``O`` cut "Macron" to "macro". Exportable: a running maximum as a
    masked max over earlier positions (ONNX has no cummax), then a gather; no data-dependent branch."""
    positions = torch.arange(logits.shape[1], device=logits.device)
    starts = torch.where(continues, torch.zeros_like(continues, dtype=positions.dtype), positions)  # 0 if piece
    earlier = positions.unsqueeze(1) >= positions.unsqueeze(0)  # (seq, seq): position s is at or before t
    first = (starts.unsqueeze(1) * earlier).amax(-1)  # per token: the last word start at or before it
    return logits.gather(1, first.unsqueeze(-1).expand_as(logits))


class TransferForTokenClassification(TransferPreTrainedModel):
    """Encoder → token states → (normalise) → dropout → linear head, one tag per token: the pooled-encoder family's
    tagger. It keeps the sentence classifier's config (pooling and normalisation as the checkpoint was trained),
    so the same type-description head init applies to token states, and ``forward`` takes precomputed
    ``token_embeddings`` (one per word) so the Trainer can train the head on cached features of a frozen
    backbone. ``labels``: tag ids with -100 for sub-tokens and padding left out (CE), or per-token distributions
    (soft targets; rows of zeros are left out)."""

    # saved since this buffer was added; a checkpoint from before it loads with no word piece marked
    _keys_to_ignore_on_load_missing = [r"word_pieces"]

    def __init__(self, config: TransferConfig, encoder: PreTrainedModel | None = None):
        super().__init__(config)
        self._attach_encoder(encoder)
        # per vocabulary id: does the token continue a word (set from the tokenizer by hf_transfer.prepare)
        self.register_buffer("word_pieces", torch.zeros(self.config.encoder_config.vocab_size, dtype=torch.bool))
        self.post_init()

    def _init_weights(self, module):
        super()._init_weights(module)
        if module is self:  # a missing buffer is otherwise left as allocated
            self.word_pieces.zero_()

    def token_states(self, input_ids=None, attention_mask=None, token_type_ids=None, **kwargs) -> torch.Tensor:
        """``(batch, seq, hidden)`` token states, L2-normalised when the checkpoint normalises its embeddings."""
        hidden = self._encode(input_ids, attention_mask, token_type_ids, **kwargs).last_hidden_state
        return nn.functional.normalize(hidden, dim=-1) if self.config.normalize else hidden

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        token_embeddings: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        **kwargs,
    ) -> TokenClassifierOutput:
        if token_embeddings is None:
            token_embeddings = self.token_states(
                input_ids, attention_mask, token_type_ids, inputs_embeds=inputs_embeds, **kwargs
            )
        logits = self.head(token_embeddings)
        loss = None
        if labels is not None and labels.is_floating_point():
            loss = token_soft_target_loss(logits, labels)
        elif labels is not None:
            loss = nn.functional.cross_entropy(logits.float().flatten(0, 1), labels.flatten(), ignore_index=-100)
        if not self.training and input_ids is not None:  # what it predicts; training reads the raw logits
            logits = carry_word_pieces(logits, self.word_pieces[input_ids])
        if not self.training and self.config.continue_runs:
            logits = continue_runs(logits)
        return TokenClassifierOutput(loss=loss, logits=logits)

    def decide(self, logits: torch.Tensor) -> torch.Tensor:
        """Tag ids from logits, one per token."""
        return logits.argmax(-1)


# Ship this file with every save: ``save_pretrained`` copies it next to the weights and adds ``auto_map``.
TransferConfig.register_for_auto_class()
TransferForSequenceClassification.register_for_auto_class("AutoModelForSequenceClassification")
TransferForTokenClassification.register_for_auto_class("AutoModelForTokenClassification")


def register_auto_classes() -> None:
    """Load saved models with this package's classes, no ``trust_remote_code``: transformers prefers a
    registered (local) class to the folder's ``auto_map`` copy."""
    from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification

    with contextlib.suppress(ValueError):  # already registered (module reloaded)
        AutoConfig.register(TransferConfig.model_type, TransferConfig)
    with contextlib.suppress(ValueError):
        AutoModelForSequenceClassification.register(TransferConfig, TransferForSequenceClassification)
    with contextlib.suppress(ValueError):
        AutoModelForTokenClassification.register(TransferConfig, TransferForTokenClassification)
