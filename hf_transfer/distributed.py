"""The process group every strategy shares, including CPU-only multi-process launches: without an accelerator
``PartialState()`` runs each launched process alone, so each would do all the work. The Trainer avoids that with
``use_cpu=True``; code that runs before or without one calls :func:`partial_state`."""

from __future__ import annotations

from accelerate import PartialState


def partial_state() -> PartialState:
    """The shared state, created with ``cpu=True`` where there is no accelerator so processes form a gloo group."""
    if PartialState._shared_state:  # already initialised (e.g. by TrainingArguments): reuse, never re-init
        return PartialState()
    import torch

    return PartialState(cpu=not torch.accelerator.is_available())
