"""``LabelMap``: a matrix ``M[s, t]``, how source label ``s`` carries over to target label ``t``, and how target
scores follow from the source's probabilities (:meth:`LabelMap.predict_proba`, the one place for it).

A single-label target: ``M[s, t] = P(t | s)`` and ``P(t | x) ∝ Σ_s P(s | x) M[s, t]``, renormalised over the
mapped mass. A multi-label target: ``M[s, t] = P(t present | s)`` and each label scores on its own, in [0, 1],
not renormalised across labels: the chance that a source class mapped to ``t`` is the text's (a softmax source:
``Σ_s P(s | x) M[s, t]``), or that at least one of the source labels mapped to ``t`` is present (a sigmoid
source, noisy-OR: ``1 − Π_s (1 − P(s | x) M[s, t])``). Built explicitly (``from_dict``: unmapped source labels
get a zero row, so their mass is dropped), learned from a few labelled examples (``learn``: Co-Tuning, You et
al. 2020; ``learn_multi_label``) or from label-name similarity (``from_names``).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError
from ..thresholds import fit_thresholds, out_of_fold


def check_label_map(mapping: Mapping) -> dict[str, list[str]]:
    """``mapping`` with every value as a list of target names; a value that is neither a label name nor a
    non-empty list of names is a ConfigError naming it (checked on the config, before any model loads)."""
    out = {}
    for source, targets in mapping.items():
        names = [targets] if isinstance(targets, str) else targets
        if not isinstance(names, list | tuple) or not names or not all(isinstance(t, str) for t in names):
            raise ConfigError(
                f"label_map maps {source!r} to {targets!r}: each source label takes a target label name or a list "
                f"of them, e.g. {{{str(source)!r}: ['a', 'b']}}. To drop a source label, leave it out of label_map."
            )
        out[str(source)] = list(dict.fromkeys(names))  # repeats dropped, order kept
    return out


@dataclass
class LabelMap:
    source_labels: list[str]
    target_labels: list[str]
    matrix: np.ndarray  # (num_source, num_target): P(t | s) (multi-label: P(t present | s)); all-zero rows: dropped
    method: str = "explicit"
    notes: dict = field(default_factory=dict)
    multi_label_target: bool = False  # the target scores each label on its own (sigmoid); see predict_proba
    multi_label_source: bool = False  # the source's probabilities are sigmoids, not a softmax
    thresholds: list[float] | None = None  # multi-label target: t is predicted where its score reaches this

    def __post_init__(self):
        self.matrix = np.asarray(self.matrix, dtype=np.float64)
        expected = (len(self.source_labels), len(self.target_labels))
        if self.matrix.shape != expected:
            raise ConfigError(f"Label map matrix has shape {self.matrix.shape}, expected {expected}.")

    @classmethod
    def from_dict(
        cls,
        mapping: Mapping[str, str | Sequence[str]],
        source_labels: Sequence[str],
        target_labels: Sequence[str],
        *,
        allow_unreachable: bool = False,
        multi_label_target: bool = False,
        multi_label_source: bool = False,
    ) -> LabelMap:
        """An explicit map; checks every name against the source model and the target task. A source label maps
        to one target label or a list: for a multi-label target each listed label gets ``M = 1`` (many-to-many);
        for a single-label target the source's mass is shared evenly among them (many-to-one, with a split)."""
        source_labels, target_labels = list(source_labels), list(target_labels)
        if not mapping:
            raise ConfigError("The label map is empty: map at least one source label to a target label.")
        mapping = check_label_map(mapping)
        for verb, side, owner, names, known in (
            ("names", "source", "the source model", mapping.keys(), source_labels),
            ("maps to", "target", "the target task", [t for ts in mapping.values() for t in ts], target_labels),
        ):
            if unknown := sorted(set(names) - set(known)):
                raise ConfigError(
                    f"The label map {verb} {side} label(s) {unknown} that {owner} does not have; "
                    f"its labels are {known}."
                )
        matrix = np.zeros((len(source_labels), len(target_labels)))
        for s, targets in mapping.items():
            weight = 1.0 if multi_label_target else 1 / len(targets)
            for t in targets:
                matrix[source_labels.index(s), target_labels.index(t)] = weight
        label_map = cls(source_labels, target_labels, matrix, method="explicit", multi_label_target=multi_label_target,
                        multi_label_source=multi_label_source)  # fmt: skip
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
    def learn_multi_label(
        cls,
        source_probs: np.ndarray,
        targets: np.ndarray,
        source_labels: Sequence[str],
        target_labels: Sequence[str],
        *,
        multi_label_source: bool = False,
        smoothing: float = 1.0,
        require_every_label: bool = True,
    ) -> LabelMap:
        """``M[s, t] = Σ_x P(s | x) y_t(x) / Σ_x P(s | x)``, how often ``t`` is present where the source says
        ``s``: Co-Tuning's map with a 0/1 ``targets`` matrix ``(rows, labels)`` in place of one label per row.
        ``smoothing`` pseudo-rows at each label's base rate keep a source label the sample barely shows from
        0/1 entries; ``require_every_label=False`` lets a cross-fitting fold lack a label (its column stays 0)."""
        source_probs = np.asarray(source_probs, dtype=np.float64)
        targets = (np.asarray(targets) > 0.5).astype(np.float64)
        if require_every_label and (missing := [target_labels[t] for t in np.flatnonzero(targets.sum(0) == 0)]):
            raise ConfigError(
                f"Cannot learn a label map: no labelled example for target label(s) {missing}. "
                f"Give at least one example per target label."
            )
        rate = targets.mean(0) if len(targets) else np.zeros(len(target_labels))
        mass = source_probs.sum(0)[:, None]  # (S, 1)
        matrix = (source_probs.T @ targets + smoothing * rate[None, :]) / np.maximum(mass + smoothing, 1e-12)
        return cls(list(source_labels), list(target_labels), matrix, method="learned", notes={"n": len(targets)},
                   multi_label_target=True, multi_label_source=multi_label_source)  # fmt: skip

    @classmethod
    def from_names(
        cls,
        source_embeddings: np.ndarray,
        target_embeddings: np.ndarray,
        source_labels: Sequence[str],
        target_labels: Sequence[str],
        *,
        multi_label_target: bool = False,
        multi_label_source: bool = False,
    ) -> LabelMap:
        """Map each source label to the target label whose name embedding is most similar (cosine)."""
        s = np.asarray(source_embeddings, dtype=np.float64)
        t = np.asarray(target_embeddings, dtype=np.float64)
        s /= np.linalg.norm(s, axis=1, keepdims=True)
        t /= np.linalg.norm(t, axis=1, keepdims=True)
        similarity = s @ t.T
        matrix = np.zeros_like(similarity)
        matrix[np.arange(len(s)), similarity.argmax(1)] = 1.0
        return cls(list(source_labels), list(target_labels), matrix, method="names",
                   notes={"similarity": similarity.tolist()}, multi_label_target=multi_label_target,
                   multi_label_source=multi_label_source)  # fmt: skip

    def check_reachable(self, allow_unreachable: bool = False) -> None:
        unreachable = [t for j, t in enumerate(self.target_labels) if self.matrix[:, j].sum() == 0]
        if unreachable and not allow_unreachable:
            raise ConfigError(
                f"No source label maps to target label(s) {unreachable}, so they could never be predicted. "
                f"Map a source label to each, or pass allow_unreachable=True to accept that."
            )

    def predict_proba(self, source_probs: np.ndarray) -> np.ndarray:
        """Target scores from the source's probabilities (rows). A single-label target: ``P(t | x)``,
        renormalised over the mapped mass. A multi-label target: each label's chance of being present, on its
        own (see the module docstring): a sum for a softmax source, clipped to 1; noisy-OR for a sigmoid one."""
        probs = np.asarray(source_probs, dtype=np.float64)
        if self.multi_label_target and self.multi_label_source:
            absent = np.ones((len(probs), len(self.target_labels)))
            for s in range(len(self.source_labels)):  # one (rows, targets) product per source label
                absent *= 1.0 - np.clip(probs[:, s : s + 1] * self.matrix[s], 0.0, 1.0)
            return 1.0 - absent
        target = probs @ self.matrix
        if self.multi_label_target:
            return np.clip(target, 0.0, 1.0)
        total = target.sum(1, keepdims=True)
        uniform = np.full_like(target, 1.0 / target.shape[1])
        return np.where(total > 0, target / np.where(total > 0, total, 1.0), uniform)

    def decide(self, scores: np.ndarray) -> np.ndarray:
        """Multi-label: a bool ``(rows, labels)`` matrix, each label where its score reaches its threshold (0.5
        where the map has none); single-label: the most likely label per row."""
        scores = np.asarray(scores)
        if not self.multi_label_target:
            return scores.argmax(1)
        return scores >= np.asarray(self.thresholds or [0.5] * len(self.target_labels))

    def with_thresholds(self, source_probs: np.ndarray, targets: np.ndarray, *, folds: int, seed: int) -> LabelMap:
        """This map with per-label thresholds chosen on labelled target rows (``targets``, 0/1), never on the eval
        split. A learned map is cross-fitted: each row is scored by the map learned on the other folds (cheap, no
        model trains), since the map learned on a row scores it too well; other maps did not see the rows."""
        source_probs, targets = np.asarray(source_probs, dtype=np.float64), np.asarray(targets)
        if self.method != "learned":
            scores = self.predict_proba(source_probs)
        else:

            def learn_and_score(rows: np.ndarray, held_out: np.ndarray) -> np.ndarray:
                fold_map = LabelMap.learn_multi_label(
                    source_probs[rows], targets[rows], self.source_labels, self.target_labels,
                    multi_label_source=self.multi_label_source, require_every_label=False,
                )  # fmt: skip
                return fold_map.predict_proba(source_probs[held_out])

            scores = out_of_fold(targets, folds, seed, learn_and_score)
        return dataclasses.replace(self, thresholds=fit_thresholds(scores, targets))

    def as_dict(self) -> dict[str, str | list[str]]:
        """The hard map, dropped labels left out: each source label's most likely target; for a multi-label
        target the list of targets it makes more likely present than not (at least its most likely one)."""
        out: dict[str, str | list[str]] = {}
        for s, row in zip(self.source_labels, self.matrix):
            if row.sum() == 0:
                continue
            if not self.multi_label_target:
                out[s] = self.target_labels[int(row.argmax())]
            else:
                hits = np.flatnonzero(row >= 0.5)
                out[s] = [self.target_labels[j] for j in (hits if len(hits) else [int(row.argmax())])]
        return out

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
                "multi_label_target": self.multi_label_target,
                "multi_label_source": self.multi_label_source,
                "thresholds": self.thresholds,
            },
            indent=2,
        )

    def __str__(self) -> str:
        width = max(len(s) for s in self.source_labels)
        header = " " * width + "  " + "  ".join(f"{t:>10}" for t in self.target_labels)
        rows = [
            f"{s:>{width}}  " + "  ".join(f"{v:10.3f}" for v in row) for s, row in zip(self.source_labels, self.matrix)
        ]
        what = "P(target present | source)" if self.multi_label_target else "P(target | source)"
        return f"LabelMap ({self.method}): {what}\n" + "\n".join([header, *rows])
