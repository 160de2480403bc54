"""Whether bfloat16 pays off on this machine: ``None`` settings ("auto") resolve here.

Measured with torch 2.13 on 2 CPU cores: AMX ran MiniLM inference 3.7x and AVX512-BF16 (AMD EPYC) 2.5x faster
under bf16 autocast, while AVX2-only ran a bf16 matmul 7x *slower* than fp32 and SmolLM2 generation 3x slower. The
instructions alone do not settle it: an Intel Xeon reporting AVX512-BF16 without AMX (session 23) ran bf16
matmuls at 0.53-0.71x fp32, a MiniLM training step at 0.58x and batch-64 inference at 0.67x, yet SmolLM2
generation (memory-bound decoding) 1.4-1.7x *faster* in bf16. So "auto" means: CUDA devices that support bf16;
CPUs with AVX512-BF16 or AMX, and for compute-bound work (training, encoder inference) also a bf16 matmul
measured faster than fp32 here (:func:`cpu_bf16_speedup`, once per process, ~0.1 s); fp32 everywhere else.
``HF_TRANSFER_BF16=0`` (or ``1``) overrides the rule for every ``None`` setting of a process: the test suite sets
0, so its exact comparisons mean the same on every CPU. Inside a training run (:func:`run_precision`), ``None``
settings follow the run's resolved ``bf16`` instead, so ``--bf16 false`` means fp32 for the run's own inference
too (features, description heads, calibration, pool scoring).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import time
from collections.abc import Iterator
from contextvars import ContextVar

import torch

ENV_OVERRIDE = "HF_TRANSFER_BF16"
MIN_CPU_SPEEDUP = 1.2  # bf16 matmul time / fp32 needed: measured 0.53-0.71 (no AMX, Xeon) vs >= 2 where it pays
logger = logging.getLogger(__name__)
_RUN_BF16: ContextVar[bool | None] = ContextVar("hf_transfer_run_bf16", default=None)


def bf16_is_fast(device: torch.device | str | None = None, *, memory_bound: bool = False) -> bool:
    """True when ``device`` (default: the accelerator if any, else the CPU) computes bfloat16 faster than fp32 (or
    as ``HF_TRANSFER_BF16`` says, when set). ``memory_bound``: generation, where halving the bytes read pays on
    any CPU with bf16 instructions; otherwise a CPU's bf16 matmul must also measure faster."""
    forced = os.environ.get(ENV_OVERRIDE, "").strip().lower()
    if forced in ("0", "false", "no", "off"):
        return False
    if forced in ("1", "true", "yes", "on"):
        return True
    if device is None:
        device = (torch.accelerator.is_available() and torch.accelerator.current_accelerator()) or "cpu"
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
        if not any(getattr(torch.cpu, name, lambda: False)() for name in checks):
            return False
        return memory_bound or cpu_bf16_speedup() >= MIN_CPU_SPEEDUP
    return device.type in ("xpu", "mps")  # both compute bf16 natively on current hardware


@functools.cache
def cpu_bf16_speedup() -> float:
    """fp32 time / bf16 time of a MiniLM-sized matmul (512 tokens x 384 -> 1536) on this CPU, the best of 5
    interleaved rounds each (a busy neighbour slows both). Measured once per process, since the instruction flags
    do not tell: see the module docstring."""
    generator = torch.Generator().manual_seed(0)
    pairs = {dtype: (torch.randn(512, 384, generator=generator).to(dtype),
                     torch.randn(384, 1536, generator=generator).to(dtype))
             for dtype in (torch.float32, torch.bfloat16)}  # fmt: skip
    best = dict.fromkeys(pairs, float("inf"))
    with torch.inference_mode():
        for a, b in pairs.values():
            a @ b  # warm-up: oneDNN builds its kernel on first use
        for _ in range(5):
            for dtype, (a, b) in pairs.items():
                start = time.perf_counter()
                for _ in range(3):
                    a @ b
                best[dtype] = min(best[dtype], time.perf_counter() - start)
    speedup = best[torch.float32] / best[torch.bfloat16]
    logger.info(
        f"bf16 matmul on this CPU: {speedup:.2f}x fp32 (bf16 for training and encoders from {MIN_CPU_SPEEDUP}x)"
    )
    return speedup


def resolve_bf16(
    setting: bool | None, device: torch.device | str | None = None, *, memory_bound: bool = False
) -> bool:
    """An explicit ``True``/``False`` wins; ``None`` means the enclosing run's choice, else :func:`bf16_is_fast`."""
    if setting is not None:
        return bool(setting)
    run = _RUN_BF16.get()
    return bf16_is_fast(device, memory_bound=memory_bound) if run is None else run


@contextlib.contextmanager
def run_precision(bf16: bool) -> Iterator[None]:
    """Within the block, every ``None`` bf16 setting resolves to ``bf16`` (a run's resolved
    ``TrainingArguments.bf16``): one choice per run instead of one argument threaded through each call."""
    token = _RUN_BF16.set(bool(bf16))
    try:
        yield
    finally:
        _RUN_BF16.reset(token)
