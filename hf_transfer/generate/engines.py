"""Which code decodes the rows: ``builtin`` (hf_transfer's continuous batching in :mod:`.continuous`, with
``model.generate`` per batch as its fallback), ``transformers`` (the library's own paged-cache continuous batching,
the manager behind ``model.generate_batch``) or ``vllm`` (vLLM's offline ``LLM.generate``, an optional extra:
:mod:`.vllm_engine`). ``auto`` resolves to ``builtin`` on every device: on 2 AVX2 CPU cores, SmolLM2-135M fp32, the
same 128 SST-2 recipe prompts, builtin 94 vs transformers 22 new tokens/s (``model.generate`` at batch 64: 35;
``benchmarks/generation_engines.py``); on 2 AMX cores, bf16, 256 prompts: 638 vs 78 (167); vLLM's CPU build: see
:mod:`.vllm_engine`. No GPU has been measured, so ``auto`` does not guess there: pass ``engine='vllm'`` on GPUs."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Sequence

import torch

from ..errors import ConfigError
from .generation import BatchOutput, Sampling, ends_example, format_prompts, newline_token_ids

ENGINES = ("auto", "builtin", "transformers", "vllm")
PAGE_SIZE = 32  # tokens per cache page: short rows (~100-150 positions) waste at most one page each


def check_engine(engine: str, continuous_batching: bool = True) -> None:
    """Refuse an unknown engine, and builtin-only settings on another engine, before any model loads."""
    if engine not in ENGINES:
        raise ConfigError(f"engine={engine!r} is not one of {', '.join(ENGINES)}.")
    if engine in ("transformers", "vllm") and not continuous_batching:
        raise ConfigError(
            "continuous_batching=False is a setting of the builtin engine (model.generate per batch); the "
            f"{engine} engine always batches continuously. Drop one of them."
        )
    if engine == "vllm":
        from .vllm_engine import check_vllm

        check_vllm()


def resolve_engine(engine: str) -> str:
    """``auto`` → ``builtin`` (the faster one where measured; see the module docstring). Callers validate first
    (:func:`check_engine`: the config's ``__post_init__``, ``generate_rows``)."""
    return "builtin" if engine == "auto" else engine


def cut_at_end_of_example(tokenizer, ids: list[int], newline_ids: set[int]) -> list[int]:
    """``ids`` up to and including the newline that ends the first line of real text (the rule the builtin engine
    stops rows by), for an engine that can only stop at eos or ``max_new_tokens``."""
    for i, token in enumerate(ids):
        if token in newline_ids and ends_example(tokenizer.decode(ids[: i + 1], skip_special_tokens=True)):
            return ids[: i + 1]
    return ids


def eos_ids(tokenizer, generation_config) -> list[int]:
    """The ids that end a row: the tokenizer's eos and the generation config's (one id or a list), in order."""
    ids: list[int] = []
    for value in (tokenizer.eos_token_id, getattr(generation_config, "eos_token_id", None)):
        for token in [value] if isinstance(value, int) else value or ():
            if token not in ids:
                ids.append(token)
    return ids


def finish_rows(tokenizer, rows: Sequence[Sequence[int]], end_ids: Sequence[int], stop_at_newline: bool):
    """``(texts, new_tokens)`` of rows an engine ran to eos or ``max_new_tokens``: each cut at the end of its first
    example (``stop_at_newline``), decoded without its eos; ``new_tokens`` counts what is kept."""
    newline = set(newline_token_ids(tokenizer)) if stop_at_newline else set()
    eos = set(end_ids)
    texts, counts = [], []
    for row in rows:
        ids = cut_at_end_of_example(tokenizer, list(row), newline) if newline else list(row)
        texts.append(tokenizer.decode([t for t in ids if t not in eos], skip_special_tokens=True))
        counts.append(len(ids))
    return texts, counts


@contextlib.contextmanager
def _never_pad(model, tokenizer, eos_ids):
    """Mask the pad token's logit while the manager runs (its processors cannot suppress tokens): padding is never
    real output, as in the builtin engine."""
    pad = tokenizer.pad_token_id
    head = model.get_output_embeddings()
    if pad is None or pad in eos_ids or head is None:
        yield
        return

    def mask(module, args, output):
        output[..., pad] = float("-inf")
        return output

    handle = head.register_forward_hook(mask)
    try:
        yield
    finally:
        handle.remove()


@torch.inference_mode()
def generate_paged(model, tokenizer, prompts: Sequence[str], *, seed: int, batch_size: int, **sampling) -> BatchOutput:
    """One continuation per prompt with transformers' continuous-batching manager (``sampling``: :class:`.Sampling`).
    Its processors apply temperature, top-k and top-p only: the pad token is masked at the LM head instead, and an
    empty first line is not suppressed as in the builtin engine. Rows run to eos or ``max_new_tokens`` and are cut at
    the end of their first example afterwards (``new_tokens`` counts what is kept). Every request is queued before
    the generation thread starts, so the schedule, and with the manager's seed the output, depend only on prompts,
    seed and ``batch_size``; the caller's global RNG is left as it was. The paged cache is sized to this workload
    (``batch_size`` rows of the longest prompt + ``max_new_tokens``): sized from free memory, as by default, a CPU
    run allocates and zeroes GBs (a 4-prompt call on a tiny model took 8 s instead of 1 s)."""
    from transformers import GenerationConfig
    from transformers.generation.configuration_utils import ContinuousBatchingConfig

    opts = Sampling(**sampling)
    if not prompts:
        return BatchOutput([], [], 0.0)
    inputs, add_special_tokens = format_prompts(tokenizer, prompts)
    prompt_ids = [tokenizer(text, add_special_tokens=add_special_tokens)["input_ids"] for text in inputs]
    defaults = getattr(model, "generation_config", None)
    top_k = opts.top_k if opts.top_k is not None else getattr(defaults, "top_k", None)
    end_ids = eos_ids(tokenizer, defaults)
    generation_config = GenerationConfig(
        max_new_tokens=opts.max_new_tokens,
        do_sample=opts.do_sample,
        eos_token_id=end_ids or None,
        pad_token_id=tokenizer.pad_token_id,
        **({"temperature": opts.temperature, "top_p": opts.top_p, "top_k": top_k or 0} if opts.do_sample else {}),
    )
    slots = min(batch_size, len(prompts))
    span = max(map(len, prompt_ids)) + opts.max_new_tokens
    cache_config = ContinuousBatchingConfig(
        seed=seed,
        max_requests_per_batch=slots,
        page_size=PAGE_SIZE,
        num_blocks=slots * math.ceil(span / PAGE_SIZE) + 1,
        max_batch_tokens=max(span, 2048),
    )
    start = time.perf_counter()
    device = next(model.parameters()).device
    keep_rng = torch.random.fork_rng(devices=[device] if device.type == "cuda" else [])  # the manager seeds it
    with keep_rng, _never_pad(model, tokenizer, end_ids):
        manager = model.init_continuous_batching(generation_config, cache_config)
        request_ids = manager.add_requests(inputs=prompt_ids, max_new_tokens=opts.max_new_tokens)
        results = {}
        manager.start()
        try:
            while len(results) < len(request_ids):
                result = manager.get_result(timeout=1)
                if result is not None and result.is_finished():
                    results[result.request_id] = result
                elif result is None and not manager.is_running():
                    break
        finally:
            manager.stop(block=True)
            manager.destroy()
    seconds = time.perf_counter() - start
    failed = [i for i in request_ids if i not in results or results[i].error is not None]
    if failed:
        first = results.get(failed[0])
        raise RuntimeError(
            f"transformers' continuous batching did not finish {len(failed)} of {len(request_ids)} rows"
            + (f": {first.error}" if first is not None and first.error else "")
            + ". Rerun with engine='builtin'."
        )
    rows = [results[request_id].generated_tokens for request_id in request_ids]
    return BatchOutput(*finish_rows(tokenizer, rows, end_ids, opts.stop_at_newline), seconds)
