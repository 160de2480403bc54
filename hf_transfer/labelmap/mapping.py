"""``LabelMap``: a matrix ``M[s, t] = P(target t | source s)``; predictions go ``P(t | x) ∝ Σ_s P(s | x) M[s, t]``.

Built explicitly (``from_dict``: unmapped source labels get a zero row, so their mass is dropped), learned
from a few labelled examples (``learn``: Co-Tuning, You et al. 2020) or from label-name similarity.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError


@dataclass
class LabelMap:
    source_labels: list[str]
    target_labels: list[str]
    matrix: np.ndarray  # (num_source, num_target), rows are P(target | source) or all zero (dropped)
    method: str = "explicit"
    notes: dict = field(default_factory=dict)

    def __post_init__(self):
        self.matrix = np.asarray(self.matrix, dtype=np.float64)
        expected = (len(self.source_labels), len(self.target_labels))
        if self.matrix.shape != expected:
            raise ConfigError(f"Label map matrix has shape {self.matrix.shape}, expected {expected}.")

    @classmethod
    def from_dict(
        cls,
        mapping: Mapping[str, str],
        source_labels: Sequence[str],
        target_labels: Sequence[str],
        *,
        allow_unreachable: bool = False,
    ) -> LabelMap:
        """An explicit many-to-one map; checks every name against the source model and the target task."""
        source_labels, target_labels = list(source_labels), list(target_labels)
        if not mapping:
            raise ConfigError("The label map is empty: map at least one source label to a target label.")
        for verb, side, owner, names, known in (
            ("names", "source", "the source model", mapping.keys(), source_labels),
            ("maps to", "target", "the target task", mapping.values(), target_labels),
        ):
            if unknown := sorted(set(names) - set(known)):
                raise ConfigError(
                    f"The label map {verb} {side} label(s) {unknown} that {owner} does not have; "
                    f"its labels are {known}."
                )
        matrix = np.zeros((len(source_labels), len(target_labels)))
        for s, t in mapping.items():
            matrix[source_labels.index(s), target_labels.index(t)] = 1.0
        label_map = cls(source_labels, target_labels, matrix, method="explicit")
        label_map.check_reachable(allow_unreachable)
        return label_map

    @classmethod
    def learn(
        cls,
        source_probs: np.ndarray,
        target_ids: Sequence[int],
        source_labels: Sequence[str],
        target_labels: Sequence[str],
        *,
        smoothing: float = 1e-3,
        target_prior: np.ndarray | None = None,
    ) -> LabelMap:
        """``P(t | s)`` by Bayes from ``P(s | t)``, the mean source distribution per target label (Co-Tuning)."""
        source_probs = np.asarray(source_probs, dtype=np.float64)
        target_ids = np.asarray(target_ids)
        num_targets = len(target_labels)
        missing = [target_labels[t] for t in range(num_targets) if not np.any(target_ids == t)]
        if missing:
            raise ConfigError(
                f"Cannot learn a label map: no labelled example for target label(s) {missing}. "
                f"Give at least one example per target label."
            )
        p_s_given_t = np.stack([source_probs[target_ids == t].mean(0) for t in range(num_targets)], axis=1)
        p_s_given_t = (p_s_given_t + smoothing) / (p_s_given_t + smoothing).sum(0, keepdims=True)
        prior = np.full(num_targets, 1.0 / num_targets) if target_prior is None else np.asarray(target_prior)
        joint = p_s_given_t * prior[None, :]
        matrix = joint / joint.sum(1, keepdims=True)
        return cls(list(source_labels), list(target_labels), matrix, method="learned", notes={"n": len(target_ids)})

    @classmethod
    def from_names(
        cls,
        source_embeddings: np.ndarray,
        target_embeddings: np.ndarray,
        source_labels: Sequence[str],
        target_labels: Sequence[str],
    ) -> LabelMap:
        """Map each source label to the target label whose name embedding is most similar (cosine)."""
        s = np.asarray(source_embeddings, dtype=np.float64)
        t = np.asarray(target_embeddings, dtype=np.float64)
        s /= np.linalg.norm(s, axis=1, keepdims=True)
        t /= np.linalg.norm(t, axis=1, keepdims=True)
        similarity = s @ t.T
        matrix = np.zeros_like(similarity)
        matrix[np.arange(len(s)), similarity.argmax(1)] = 1.0
        return cls(
            list(source_labels), list(target_labels), matrix, method="names", notes={"similarity": similarity.tolist()}
        )

    def check_reachable(self, allow_unreachable: bool = False) -> None:
        unreachable = [t for j, t in enumerate(self.target_labels) if self.matrix[:, j].sum() == 0]
        if unreachable and not allow_unreachable:
            raise ConfigError(
                f"No source label maps to target label(s) {unreachable}, so they could never be predicted. "
                f"Map a source label to each, or pass allow_unreachable=True to accept that."
            )

    def predict_proba(self, source_probs: np.ndarray) -> np.ndarray:
        """``P(t | x)`` from ``P(s | x)`` (rows), renormalised over the reachable mass."""
        target = np.asarray(source_probs, dtype=np.float64) @ self.matrix
        total = target.sum(1, keepdims=True)
        uniform = np.full_like(target, 1.0 / target.shape[1])
        return np.where(total > 0, target / np.where(total > 0, total, 1.0), uniform)

    def as_dict(self) -> dict[str, str]:
        """The hard map: each source label's most likely target (dropped labels left out)."""
        return {
            s: self.target_labels[int(row.argmax())]
            for s, row in zip(self.source_labels, self.matrix)
            if row.sum() > 0
        }

    def source_given_target(self) -> np.ndarray:
        """``P(s | t)`` under a uniform source prior: the weights for building a target head from a source head."""
        column_sums = self.matrix.sum(0, keepdims=True)
        return self.matrix / np.where(column_sums > 0, column_sums, 1.0)

    def to_json(self) -> str:
        return json.dumps(
            {
                "method": self.method,
                "source_labels": self.source_labels,
                "target_labels": self.target_labels,
                "matrix": self.matrix.round(6).tolist(),
                "hard_map": self.as_dict(),
            },
            indent=2,
        )

    def __str__(self) -> str:
        width = max(len(s) for s in self.source_labels)
        header = " " * width + "  " + "  ".join(f"{t:>10}" for t in self.target_labels)
        rows = [
            f"{s:>{width}}  " + "  ".join(f"{v:10.3f}" for v in row) for s, row in zip(self.source_labels, self.matrix)
        ]
        return f"LabelMap ({self.method}): P(target | source)\n" + "\n".join([header, *rows])
