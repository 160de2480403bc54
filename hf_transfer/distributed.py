"""The process group every strategy shares, including CPU-only multi-process launches.

``PartialState()`` only joins a ``torchrun``/``accelerate launch`` group on an accelerator: with no GPU it
silently runs each process alone (``DistributedType.NO``), so two processes would each do all the work.
``TrainingArguments(use_cpu=True)`` avoids that for the Trainer; code that runs before or without a Trainer
(generation, pseudo-labelling from a user script) calls :func:`partial_state` instead.
"""

from __future__ import annotations

from accelerate import PartialState


def partial_state() -> PartialState:
    """The shared ``PartialState``; on a machine without an accelerator it is created with ``cpu=True`` so a
    multi-process launch forms a gloo group. Later plain ``PartialState()`` calls return the same state."""
    if PartialState._shared_state:  # already initialised (e.g. by TrainingArguments): reuse, never re-init
        return PartialState()
    import torch

    return PartialState(cpu=not torch.accelerator.is_available())
