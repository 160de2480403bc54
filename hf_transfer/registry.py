"""One registry of strategies: name → (config class, run function). The CLI and recipes look names up here.

Adding a strategy touches its own folder plus one ``register_strategy`` call (PEFT's pattern).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Strategy:
    name: str
    module: str  # module holding the config class and the run function, imported on first use
    config: str
    run: str
    help: str

    def load(self) -> tuple[type, Callable]:
        module = importlib.import_module(self.module)
        return getattr(module, self.config), getattr(module, self.run)


STRATEGIES: dict[str, Strategy] = {}


def register_strategy(strategy: Strategy) -> None:
    if strategy.name in STRATEGIES:
        raise ValueError(f"Strategy {strategy.name!r} is already registered.")
    STRATEGIES[strategy.name] = strategy


def get_strategy(name: str) -> Strategy:
    if name not in STRATEGIES:
        raise KeyError(f"Unknown strategy {name!r}; known: {', '.join(sorted(STRATEGIES))}.")
    return STRATEGIES[name]


register_strategy(
    Strategy(
        name="finetune",
        module="hf_transfer.finetune",
        config="FinetuneConfig",
        run="run_finetune",
        help="Adapt a pretrained encoder to the target labels (full, head-only on cached features, PEFT).",
    )
)
register_strategy(
    Strategy(
        name="labelmap",
        module="hf_transfer.labelmap",
        config="LabelMapConfig",
        run="run_labelmap",
        help="Map a source classifier's labels onto the target: zero-shot, pseudo-labels, distillation.",
    )
)
register_strategy(
    Strategy(
        name="generate",
        module="hf_transfer.generate",
        config="GenerateConfig",
        run="run_generate",
        help="Write a labelled training set with a generative model (prompted per label), filtered and resumable.",
    )
)
