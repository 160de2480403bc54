"""Multi-label: which label pairs to prompt for. A text written for one label teaches nothing about labels
that come together (GoEmotions' admiration + gratitude, ...); prompting for the pairs that co-occur most in the
labelled target rows adds such texts where they are common, without inventing combinations that never occur."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import ConfigError
from ..multi_label import label_matrix


def top_label_pairs(train, k: int) -> list[tuple[str, str]]:
    """The ``k`` label pairs that most rows of ``train`` (a ``List(ClassLabel)`` dataset) carry together, most
    frequent first, ties in label order; only pairs seen at least once (fewer than ``k`` if the rows hold fewer)."""
    names = list(train.features["label"].feature.names)
    has = label_matrix(train, len(names)).astype(np.int64)
    together = has.T @ has  # (labels, labels): rows carrying both
    pairs = [(int(together[i, j]), i, j) for i in range(len(names)) for j in range(i + 1, len(names))]
    ranked = sorted((p for p in pairs if p[0] > 0), key=lambda p: (-p[0], p[1], p[2]))
    return [(names[i], names[j]) for _, i, j in ranked[:k]]


def check_pairs(config, pairs: Sequence[Sequence[str]] | None) -> list[tuple[str, str]]:
    """``pairs`` as tuples, checked against ``config`` (a ``GenerateConfig``): multi-label only, two different
    known labels each, no pair twice; ``label_pairs > 0`` without pairs is an error (they come from labelled
    target data)."""
    if not pairs:
        if config.label_pairs:
            raise ConfigError(
                f"label_pairs={config.label_pairs} prompts for the label pairs that co-occur most in labelled target "
                "rows, but none were given. Run generate with a multi-label --dataset and n_per_class > 0 (or unset: "
                "the whole train split), pass pairs=[('joy', 'love'), ...] to generate_dataset, or set label_pairs=0."
            )
        return []
    if not config.multi_label:
        raise ConfigError("Label pairs are for multi-label runs (a text asked for two labels); set multi_label=True.")
    labels, out = config.labels, []
    for pair in pairs:
        pair = tuple(pair)
        if len(pair) != 2 or pair[0] == pair[1] or any(x not in labels for x in pair):
            raise ConfigError(f"Label pair {pair!r} must name two different labels among {labels}.")
        if pair in out or pair[::-1] in out:
            raise ConfigError(f"Label pair {pair!r} is given twice; give each pair once.")
        out.append(pair)
    return out
