"""Whether bfloat16 pays off on this machine: ``None`` settings ("auto") resolve here.

Measured with torch 2.13 on 2 CPU cores: AVX512-BF16 ran MiniLM inference 2.5x faster under bf16 autocast, while
AVX2-only ran a bf16 matmul 7x *slower* than fp32 and SmolLM2 generation 3x slower. So "auto" means CUDA devices
that support bf16 and CPUs with AVX512-BF16 or AMX; fp32 everywhere else. ``HF_TRANSFER_BF16=0`` (or ``1``) overrides
the rule for every ``None`` setting of a process: the test suite sets 0, so its exact comparisons mean the same
on every CPU. Inside a training run (:func:`run_precision`), ``None`` settings follow the run's resolved
``bf16`` instead, so ``--bf16 false`` means fp32 for the run's own inference too (features, description heads,
calibration, pool scoring).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from contextvars import ContextVar

import torch

ENV_OVERRIDE = "HF_TRANSFER_BF16"
_RUN_BF16: ContextVar[bool | None] = ContextVar("hf_transfer_run_bf16", default=None)


def bf16_is_fast(device: torch.device | str | None = None) -> bool:
    """True when ``device`` (default: the accelerator if any, else the CPU) computes bfloat16 natively (or as
    ``HF_TRANSFER_BF16`` says, when set)."""
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
        return any(getattr(torch.cpu, name, lambda: False)() for name in checks)
    return device.type in ("xpu", "mps")  # both compute bf16 natively on current hardware


def resolve_bf16(setting: bool | None, device: torch.device | str | None = None) -> bool:
    """An explicit ``True``/``False`` wins; ``None`` means the enclosing run's choice, else :func:`bf16_is_fast`."""
    if setting is not None:
        return bool(setting)
    run = _RUN_BF16.get()
    return bf16_is_fast(device) if run is None else run


@contextlib.contextmanager
def run_precision(bf16: bool) -> Iterator[None]:
    """Within the block, every ``None`` bf16 setting resolves to ``bf16`` (a run's resolved
    ``TrainingArguments.bf16``): one choice per run instead of one argument threaded through each call."""
    token = _RUN_BF16.set(bool(bf16))
    try:
        yield
    finally:
        _RUN_BF16.reset(token)
