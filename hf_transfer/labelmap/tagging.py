"""Label maps between entity tag sets: a source tagger (CoNLL's person / organisation / location / misc) serves a
target inventory (politician, political party, election, ...) zero-shot through the map, pseudo-labels target
sentences, and teaches a student tagger per token.

A map is given between entity *types* (``{"person": ["person", "politician"], "location": ["location",
"country"]}``) and becomes a map between *tags*: ``O → O``, ``B-s → B-t``, ``I-s → I-t`` for each target ``t`` of
``s``; a source type the map leaves out maps to ``O`` (it is not one of the target's entities). Every word is then
a single-label problem over tags, so the sentence-level :class:`~hf_transfer.labelmap.mapping.LabelMap` applies
per word unchanged: ``P(t | word) = Σ_s P(s | word) M[s, t]``, a one-to-many type sharing its mass evenly, and a
learned map (``LabelMap.learn``) is Co-Tuning over the words of a few labelled sentences, with the target tags'
word frequencies as its prior (``O`` is most words).

Pseudo-labels are chosen per sentence by *entity-level* confidence: an entity's confidence is the teacher's mean
``1 − P(O)`` over its words (is this an entity at all: the type, which a one-to-many map leaves open, is in the
soft labels), an ``O`` word's is ``P(O)``, and a sentence is as confident as its least sure entity or ``O`` word.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from datasets import ClassLabel, Dataset, Features, List, Value
from transformers import AutoModelForTokenClassification, DataCollatorForTokenClassification

from ..defaults import resolve_model
from ..errors import ConfigError, DataError
from ..inference import predict_word_proba
from ..token_classification import (
    PREFIX_READS,
    PREFIXED,
    bio_tags,
    continue_word_runs,
    entities,
    readable_type,
    tag_scheme,
    tag_scores,
)
from .mapping import LabelMap, check_label_map
from .predict import PROBS_COLUMN, source_config, source_label_names
from .pseudo import select_rows


def source_tags(config) -> list[str]:
    """The source tagger's tags (its ``id2label``), checked: a token-classification model whose labels are entity
    tags of one scheme (BIO, BIOES, BILOU or IO: :func:`read_tag` reads each) with an ``O``. A sentence classifier
    given as the source is refused (before any weights load)."""
    names = source_label_names(config)
    architectures = list(getattr(config, "architectures", None) or [])
    if architectures and not any(a.endswith("ForTokenClassification") for a in architectures):
        raise ConfigError(
            f"The source model is a {architectures[0]}, not a token classifier: a tag-set map needs a tagger "
            f"(…ForTokenClassification) as source_model, e.g. one trained with `hf-transfer finetune` on CoNLL data."
        )
    if "O" not in names:
        raise ConfigError(
            f"The source tagger's labels {names[:8]} are not entity tags ('O', 'B-<type>', 'I-<type>'): there is "
            "no 'O'."
        )
    try:
        tag_scheme([names])
    except DataError as err:
        raise ConfigError(f"The source tagger's labels {names[:8]} are not entity tags of one scheme: {err}") from None
    return names


def read_tag(tag: str) -> tuple[str, str] | None:
    """A tag as ``(B or I, type)`` whatever its scheme (:func:`~hf_transfer.token_classification.tag_scheme`):
    ``B-``, ``S-``, ``U-`` and a bare type (IO) open an entity, ``I-``, ``E-``, ``L-`` continue one; None for
    ``O``. So a source tagger trained on BIOES or IO tags (several Hub taggers) maps as a BIO one does; a run of
    IO words opening one type each becomes one entity through ``continue_word_runs``."""
    if tag == "O":
        return None
    match = PREFIXED.match(tag)
    if not match:
        return "B", tag
    return PREFIX_READS[match.group(1)], match.group(2)


def tag_types(tags: Sequence[str]) -> list[str]:
    """The entity types of a tag list, in order of first appearance."""
    return list(dict.fromkeys(read[1] for t in tags if (read := read_tag(t))))


def expand_type_map(type_map: Mapping, source: Sequence[str], target: Sequence[str]) -> dict[str, list[str]]:
    """A map between entity types as one between tags (module docstring); every type it names is checked
    against the source tagger's and the target's types, before any model loads."""
    type_map = check_label_map(type_map)
    source_types, target_types = tag_types(source), tag_types(target)
    for verb, side, owner, names, known in (
        ("names", "source", "the source tagger", type_map.keys(), source_types),
        ("maps to", "target", "the target data", [t for ts in type_map.values() for t in ts], target_types),
    ):
        if unknown := sorted(set(names) - set(known)):
            raise ConfigError(
                f"The label map {verb} {side} entity type(s) {unknown} that {owner} does not have; its types are "
                f"{known}. A tag-set map is between entity types (e.g. {{'person': ['person', 'politician']}}), "
                f"B-/I- are handled for you."
            )
    tags: dict[str, list[str]] = {"O": ["O"]}
    for tag in source:
        read = read_tag(tag)
        if read:
            prefix, kind = read
            mapped = [f"{prefix}-{t}" for t in type_map.get(kind, [])]
            tags[tag] = [t for t in mapped if t in target] or ["O"]
    return tags


def tag_label_map(
    type_map: Mapping | None, source: Sequence[str], target: Sequence[str], *, method: str, allow_unreachable: bool
) -> LabelMap:
    """The tag-level :class:`LabelMap` of an explicit type map, or the identity on shared types."""
    if method == "identity":
        missing = sorted(set(tag_types(target)) - set(tag_types(source)))
        if missing:
            raise ConfigError(
                f"map_method='identity' needs the source tagger to have every target type; it lacks {missing}. "
                "Give label_map (between entity types), or labelled sentences for map_method='learned'."
            )
        type_map = {t: t for t in tag_types(target)}
    label_map = LabelMap.from_dict(expand_type_map(type_map, source, target), source, target, allow_unreachable=True)
    reached = {t[2:] for t in np.asarray(target)[label_map.matrix.sum(0) > 0] if t != "O"}
    unreachable = [t for t in tag_types(target) if t not in reached]
    if unreachable and not allow_unreachable:
        raise ConfigError(
            f"No source type maps to the target type(s) {unreachable}, so they are never predicted. Map a source "
            "type to them, or pass allow_unreachable=True to score only the reachable ones."
        )
    label_map.method = method
    return label_map


def type_map_of(label_map: LabelMap) -> dict[str, list[str]]:
    """The tag map read back between entity types (what results and cards show): each source type's most likely
    target types from its ``B-`` row, all of them where the mass is split evenly (a one-to-many map); ``O`` where
    its words leave the target's entities."""
    out = {}
    for s, row in zip(label_map.source_labels, label_map.matrix):
        if (read := read_tag(s)) and read[0] == "B" and row.sum() > 0:
            best = np.flatnonzero(row >= row.max() - 1e-9)
            out[read[1]] = [label_map.target_labels[j].removeprefix("B-").removeprefix("I-") for j in best]
    return out


def learn_tag_map(words: Dataset, source: Sequence[str], target: Sequence[str]) -> LabelMap:
    """Co-Tuning over the words of a few labelled sentences, between entity *types* (``O`` one of them):
    ``P(target type | source type)`` from each word's source type probabilities (its ``B-`` and ``I-`` summed)
    and gold type, with the target types' word frequencies as the prior (a uniform one would make ``O`` as rare
    as any type), then laid out on tags as an explicit map is: ``B-s → B-t``, ``I-s → I-t``, and a word the
    source leaves outside (``O``) opening a target entity as ``B-t``. By types rather than tags, so a type whose
    entities are all one word (no ``I-`` seen) is still learned."""
    source_kinds, target_kinds = ["O", *tag_types(source)], ["O", *tag_types(target)]

    to_source = np.zeros((len(source), len(source_kinds)))
    for i, tag in enumerate(source):
        to_source[i, 0 if tag == "O" else source_kinds.index(read_tag(tag)[1])] = 1.0
    target_kind = np.array([0 if t == "O" else target_kinds.index(t[2:]) for t in target])
    probs = np.concatenate([np.asarray(p, dtype=np.float64) for p in words[PROBS_COLUMN]]) @ to_source
    tags = [np.asarray(t[: len(p)], dtype=np.int64) for t, p in zip(words["ner_tags"], words[PROBS_COLUMN])]
    ids = target_kind[np.concatenate(tags)]
    missing = [target_kinds[k] for k in range(len(target_kinds)) if not np.any(ids == k)]
    if missing:
        raise ConfigError(
            f"Cannot learn a tag map: the labelled sentences have no word of type {missing}. Give more sentences "
            "per type (n_per_class), or an explicit label_map between entity types."
        )
    prior = np.bincount(ids, minlength=len(target_kinds)) + 1.0
    by_type = LabelMap.learn(probs, ids, source_kinds, target_kinds, target_prior=prior / prior.sum()).matrix
    matrix = np.zeros((len(source), len(target)))
    for i, s_tag in enumerate(source):
        read = read_tag(s_tag)
        s = 0 if read is None else source_kinds.index(read[1])
        for j, t_tag in enumerate(target):
            t = target_kind[j]
            if t == 0:
                matrix[i, j] = by_type[s, 0]
            elif t_tag[0] == (read[0] if read else "B"):
                matrix[i, j] = by_type[s, t]
    return LabelMap(list(source), list(target), matrix, method="learned")


def load_source_tagger(name_or_path: str):
    """The source tagger, its word tokenizer and tags (checked from the config before weights load)."""
    from ..token_classification import word_tokenizer

    tags = source_tags(source_config(name_or_path))
    path = resolve_model(name_or_path)
    return AutoModelForTokenClassification.from_pretrained(path).eval(), word_tokenizer(path), tags


def add_word_probs(dataset: Dataset, model, tokenizer, *, desc: str, **infer) -> Dataset:
    """``dataset`` (``tokens``) plus ``source_probs``: the model's tag probabilities per word (a word that
    truncation cut off: ``O`` for sure)."""
    num_tags = model.config.num_labels
    outside = model.config.label2id.get("O", 0)
    features = dataset.features.copy()
    features[PROBS_COLUMN] = List(List(Value("float32"), length=num_tags))

    def add(batch):
        out = []
        for words, probs in zip(batch["tokens"], predict_word_proba(model, tokenizer, batch["tokens"], **infer)):
            missing = np.zeros((len(words) - len(probs), num_tags), dtype=np.float32)
            missing[:, outside] = 1.0
            out.append(np.concatenate([probs, missing]))
        return {PROBS_COLUMN: out}

    return dataset.map(add, batched=True, batch_size=1024, features=features, desc=desc)


@dataclass
class EntityTypeResolver:
    """Shares a source type's mass among the several target types an explicit map sends it to (``person →
    person, politician``) by what the entity says: the similarity of its words' embedding ("Angela Merkel") to
    each candidate type's description ("politician"), a softmax at ``scale``. An even split cannot choose: every
    ``person`` would be read as the first-listed target type, the generic one, on a domain where most are the
    specific one. Only the split among a source type's own targets changes; how much mass the map sends there,
    and the ``B-``/``I-`` reading, stay as they are."""

    label_map: LabelMap
    groups: dict[str, list[str]]  # source type -> its target types (two or more)
    embed: Callable[[list[str]], np.ndarray]  # texts -> L2-normalised embeddings
    type_vectors: dict[str, np.ndarray]  # target type -> its description's normalised embedding
    scale: float = 10.0

    @classmethod
    def for_map(cls, label_map: LabelMap, embed, descriptions: Mapping[str, str], scale: float):
        """A resolver for ``label_map``'s one-to-many source types, or None when it has none."""
        groups = {}
        for s, row in zip(label_map.source_labels, label_map.matrix):
            names = [label_map.target_labels[j] for j in np.flatnonzero(row > 0)]
            targets = [name[2:] for name in names if name != "O"]
            if (read := read_tag(s)) and read[0] == "B" and len(targets) > 1:
                groups[read[1]] = targets
        if not groups:
            return None
        kinds = sorted({t for ts in groups.values() for t in ts})
        texts = [descriptions.get(t, readable_type(t)) if isinstance(descriptions.get(t, ""), str)
                 else descriptions[t][0] for t in kinds]  # fmt: skip
        return cls(label_map, groups, embed, dict(zip(kinds, embed(texts))), scale)

    def resolve(self, tokens: Sequence[Sequence[str]], source_probs: Sequence[np.ndarray], mapped: list) -> list:
        source, target = self.label_map.source_labels, self.label_map.target_labels
        scheme = tag_scheme([source])
        spans = []  # (sentence, start, end, source type)
        for i, probs in enumerate(source_probs):
            tags = bio_tags([source[t] for t in np.asarray(probs).argmax(1)], scheme)
            spans += [(i, start, end, kind) for kind, start, end in entities(tags) if kind in self.groups]
        if not spans:
            return mapped
        vectors = self.embed([" ".join(tokens[i][start:end]) for i, start, end, _ in spans])
        out = [np.array(m, copy=True) for m in mapped]
        for (i, start, end, kind), vector in zip(spans, vectors):
            candidates = self.groups[kind]
            logits = self.scale * np.array([vector @ self.type_vectors[t] for t in candidates])
            weights = np.exp(logits - logits.max())
            weights /= weights.sum()
            for prefix in ("B", "I"):
                columns = [target.index(f"{prefix}-{t}") for t in candidates]
                mass = out[i][start:end][:, columns].sum(1, keepdims=True)
                out[i][start:end, columns] = mass * weights[None, :]
        return out


def map_words(dataset: Dataset, label_map: LabelMap, resolver: EntityTypeResolver | None = None) -> list[np.ndarray]:
    """Target tag probabilities per word of each sentence, through ``label_map`` (one-to-many types shared out by
    ``resolver``), a word that continues an entity of its type moved from ``B-`` to ``I-``
    (:func:`~hf_transfer.token_classification.continue_word_runs`)."""
    source = [np.asarray(p, dtype=np.float64) for p in dataset[PROBS_COLUMN]]
    mapped = [label_map.predict_proba(p) for p in source]
    if resolver is not None:
        mapped = resolver.resolve(dataset["tokens"], source, mapped)
    return [continue_word_runs(m) for m in mapped]


def evaluate_tags(predicted: Sequence[Sequence[int]], eval_ds: Dataset, reachable: Sequence[str] | None = None):
    """:func:`tag_scores` on ``eval_ds``; with ``reachable`` types, gold entities of other types count as ``O``
    (zero-shot through a map is scored on the types the map can reach)."""
    names = eval_ds.features["ner_tags"].feature.names
    truth = [list(t) for t in eval_ds["ner_tags"]]
    if reachable is not None:
        keep = {i for i, n in enumerate(names) if n == "O" or n[2:] in set(reachable)}
        truth = [[t if t in keep else 0 for t in tags] for tags in truth]
    return tag_scores(predicted, truth, names)


def sentence_confidence(probs: np.ndarray, names: Sequence[str]) -> tuple[list[int], float]:
    """The argmax tags of one sentence and its entity-level confidence (module docstring)."""
    tags = probs.argmax(1).tolist()
    inside = 1.0 - probs[:, 0]
    scores = [float(probs[i, 0]) for i, t in enumerate(tags) if t == 0]
    for _, start, end in entities([names[t] for t in tags]):
        scores.append(float(inside[start:end].mean()))
    return tags, min(scores) if scores else 1.0


def pseudo_label_sentences(pool: Dataset, label_map: LabelMap, *, threshold: float | None, top_k: int | None,
                           resolver: EntityTypeResolver | None = None):  # fmt: skip
    """The pool's sentences the teacher is sure of: ``tokens``, ``ner_tags`` (argmax tags), ``soft_tags`` (per
    word target distributions) and ``confidence``; ``top_k`` per entity type among the sentences holding it
    (sentences without entities form one more group)."""
    names = list(label_map.target_labels)
    types = tag_types(names)
    soft = map_words(pool, label_map, resolver)
    decided = [sentence_confidence(p, names) for p in soft]
    confidence = np.asarray([c for _, c in decided])
    holds = np.zeros((len(pool), len(types)), dtype=bool)
    for i, (tags, _) in enumerate(decided):
        for kind, *_ in entities([names[t] for t in tags]):
            holds[i, types.index(kind)] = True
    rows = select_rows(confidence, holds, len(types), threshold, top_k)
    if len(rows) == 0:
        raise ConfigError(
            f"Pseudo-labelling kept 0 of {len(pool)} sentences: none reached threshold={threshold} (the most "
            f"confident was {confidence.max():.3f}). Lower threshold, or use top_k instead."
        )
    features = Features({"tokens": List(Value("string")), "ner_tags": List(ClassLabel(names=names)),
                         "soft_tags": List(List(Value("float32"), length=len(names))),
                         "confidence": Value("float32")})  # fmt: skip
    return Dataset.from_dict(
        {
            "tokens": [pool[int(i)]["tokens"] for i in rows],
            "ner_tags": [decided[i][0] for i in rows],
            "soft_tags": [soft[i].astype(np.float32) for i in rows],
            "confidence": confidence[rows].tolist(),
        },
        features=features,
    )


def pseudo_label_f1(pseudo: Dataset, pool: Dataset) -> float | None:
    """Entity micro-F1 of the pseudo-labels against the pool's own tags, when the pool has them."""
    if "ner_tags" not in pool.column_names or len(pool) > 100_000:
        return None
    gold = {tuple(s): t for s, t in zip(pool["tokens"], pool["ner_tags"])}
    pairs = [(p, gold[tuple(s)]) for s, p in zip(pseudo["tokens"], pseudo["ner_tags"]) if tuple(s) in gold]
    if not pairs:
        return None
    return tag_scores([p for p, _ in pairs], [g for _, g in pairs], pseudo.features["ner_tags"].feature.names)[
        "f1_micro"
    ]


def soft_rows(sentences: Dataset, tokenizer, max_length: int, subword_labels: str) -> Dataset:
    """Sentences with ``soft_tags`` (per word) as model inputs: aligned hard ``labels`` and ``soft_targets`` per
    sub-token (a word's distribution on its first sub-token, zeros elsewhere: left out of the loss)."""
    from ..token_classification import aligned_labels

    names = sentences.features["ner_tags"].feature.names

    def encode(batch):
        encoded = tokenizer(batch["tokens"], is_split_into_words=True, truncation=True, max_length=max_length)
        labels, soft = [], []
        for i, (tags, dists) in enumerate(zip(batch["ner_tags"], batch["soft_tags"])):
            word_ids = encoded.word_ids(i)
            labels.append(aligned_labels(word_ids, tags, names, subword_labels))
            rows = np.zeros((len(word_ids), len(names)), dtype=np.float32)
            for position, word in enumerate(word_ids):
                if word is not None and (position == 0 or word_ids[position - 1] != word):
                    rows[position] = dists[word]
            soft.append(rows)
        encoded["labels"], encoded["soft_targets"] = labels, soft
        return encoded

    return sentences.map(encode, batched=True, remove_columns=sentences.column_names, desc="Aligning soft tags")


def gold_soft_tags(gold: Dataset) -> Dataset:
    """Labelled sentences with one-hot ``soft_tags``, to train beside pseudo-labelled ones."""
    eye = np.eye(len(gold.features["ner_tags"].feature.names), dtype=np.float32)
    return gold.select_columns(["tokens", "ner_tags"]).map(
        lambda b: {"soft_tags": [eye[np.asarray(t, dtype=np.int64)] for t in b["ner_tags"]]},
        batched=True,
        desc="One-hot gold tags",
    )


class SoftTagCollator(DataCollatorForTokenClassification):
    """:class:`DataCollatorForTokenClassification` that pads ``soft_targets`` (per sub-token distributions)
    with zero rows, which the per-token distillation loss leaves out."""

    def torch_call(self, features):
        soft = [f.pop("soft_targets") for f in features] if "soft_targets" in features[0] else None
        batch = super().torch_call(features)
        if soft is not None:
            length = batch["input_ids"].shape[1]
            dim = len(soft[0][0])
            padded = torch.zeros((len(soft), length, dim), dtype=torch.float32)
            for i, rows in enumerate(soft):
                rows = torch.as_tensor(np.asarray(rows, dtype=np.float32))
                if self.tokenizer.padding_side == "left":
                    padded[i, length - len(rows) :] = rows
                else:
                    padded[i, : len(rows)] = rows
            batch["soft_targets"] = padded
        return batch
