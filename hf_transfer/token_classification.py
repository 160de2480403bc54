"""The token-classification task type (NER): a sentence is a list of ``tokens``, each with a BIO tag
(``B-person`` begins an entity, ``I-person`` continues it, ``O`` is outside any).

In a loaded ``DatasetDict`` the ``ner_tags`` column is a ``List(ClassLabel)`` whose names are ``O`` then
``B-t``/``I-t`` per entity type ``t`` (sorted); every input form becomes that: token/tag JSONL (tags as strings
or ``ClassLabel`` ids), CoNLL files (``token ... tag`` per line, a blank line between sentences, ``-DOCSTART-``
skipped) and character-span JSONL (``{"text", "entities": [{"start", "end", "label"}]}``), tokenised here.
Entity-level scores follow seqeval's strict IOB2 semantics (:func:`entities`).
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from datasets import ClassLabel, Dataset, DatasetDict, Features, List, Value

from .errors import DataError
from .multi_label import cover_rarest_first

logger = logging.getLogger(__name__)

TOKEN_CLASSIFICATION = "token_classification"
CONLL_SUFFIXES = (".conll", ".conllu", ".iob", ".bio")
TOKEN_PATTERN = re.compile(r"\w+(?:[-'.]\w+)*|[^\w\s]")  # words (e.g. "U.S", "don't"), then punctuation


def read_conll(path: str | Path) -> list[dict]:
    """Sentences of a CoNLL file: the first column is the token, the last its tag; ``-DOCSTART-`` is skipped."""
    sentences, tokens, tags = [], [], []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        parts = line.split()
        if not parts or parts[0] == "-DOCSTART-":
            if tokens:
                sentences.append({"tokens": tokens, "ner_tags": tags})
            tokens, tags = [], []
            continue
        if len(parts) < 2:
            raise DataError(f"{str(path)!r} line {number}: {line!r} has no tag; CoNLL lines are 'token ... tag'.")
        tokens.append(parts[0])
        tags.append(parts[-1])
    if tokens:
        sentences.append({"tokens": tokens, "ner_tags": tags})
    return sentences


def spans_to_bio(text: str, spans: Sequence[dict], row: int = 0) -> tuple[list[str], list[str]]:
    """Tokens of ``text`` and their BIO tags from character spans; a token belongs to the span it starts in.
    A span outside the text, overlapping another, or covering no token is an error naming the row."""
    ordered = sorted(spans, key=lambda s: (s["start"], s["end"]))
    for span in ordered:
        if not (0 <= span["start"] < span["end"] <= len(text)):
            raise DataError(
                f"Row {row}: entity {span} lies outside its text ({len(text)} characters). Fix start/end "
                f"(end is exclusive) or drop the entity."
            )
    for first, second in zip(ordered, ordered[1:]):
        if second["start"] < first["end"]:
            raise DataError(f"Row {row}: entities {first} and {second} overlap; BIO tags one entity per token.")
    tokens, tags, open_span = [], [], None
    for match in TOKEN_PATTERN.finditer(text):
        span = next((s for s in ordered if s["start"] <= match.start() < s["end"]), None)
        tokens.append(match.group())
        tags.append("O" if span is None else f"{'I' if span is open_span else 'B'}-{span['label']}")
        open_span = span
    hit = {id(s) for m in TOKEN_PATTERN.finditer(text) for s in ordered if s["start"] <= m.start() < s["end"]}
    missed = [s for s in ordered if id(s) not in hit]
    if missed:
        raise DataError(f"Row {row}: entity {missed[0]} covers no token of {text!r}; check its start/end.")
    return tokens, tags


def check_bio(tags: Sequence[str], row: int, *, repair: bool = False) -> list[str]:
    """``tags`` if they are valid IOB2; an ``I-x`` that does not continue an ``x`` entity becomes ``B-x`` with a
    warning when ``repair``, else is an error naming the row and the fix. A tag not in BIO form is an error."""
    out, previous = [], "O"
    for position, tag in enumerate(tags):
        if tag != "O" and not re.fullmatch(r"[BI]-\S+", tag):
            raise DataError(
                f"Row {row}, token {position}: tag {tag!r} is not in BIO form ('O', 'B-<type>', 'I-<type>'). "
                f"Convert the tags (e.g. 'PER' -> 'B-PER' / 'I-PER'), or fix the row."
            )
        if tag.startswith("I-") and previous[2:] != tag[2:]:
            if not repair:
                raise DataError(
                    f"Row {row}, token {position}: {tag!r} follows {previous!r}, so no {tag[2:]!r} entity is open. "
                    f"Fix the tag, or pass repair_bio=True to read it as {'B-' + tag[2:]!r} (IOB1 data is like this)."
                )
            logger.warning(
                "Row %d, token %d: %r follows %r; read as %r.", row, position, tag, previous, "B-" + tag[2:]
            )
            tag = "B-" + tag[2:]
        out.append(tag)
        previous = tag
    return out


def tag_names(types: Sequence[str]) -> list[str]:
    """``O``, then ``B-t``, ``I-t`` for each entity type in order: the ``ClassLabel`` names of ``ner_tags``."""
    return ["O"] + [f"{prefix}-{t}" for t in types for prefix in ("B", "I")]


def entity_types(tag_lists: Sequence[Sequence[str]]) -> list[str]:
    """The entity types the tags name, sorted."""
    return sorted({tag[2:] for tags in tag_lists for tag in tags if tag != "O"})


def _rows_of(ds: Dataset, split: str) -> list[dict]:
    columns = ds.column_names
    if "text" in columns and "entities" in columns:
        rows = []
        for i, row in enumerate(ds):
            tokens, tags = spans_to_bio(row["text"], row["entities"] or [], i)
            rows.append({"tokens": tokens, "ner_tags": tags})
        return rows
    if "tokens" not in columns or "ner_tags" not in columns:
        raise DataError(
            f"Split {split!r} has columns {columns}: token classification needs 'tokens' + 'ner_tags' (lists), "
            f"or 'text' + 'entities' (character spans)."
        )
    feature = ds.features["ner_tags"]
    spell = feature.feature.int2str if isinstance(getattr(feature, "feature", None), ClassLabel) else str
    rows = []
    for i, row in enumerate(ds):
        tokens, tags = row["tokens"], row["ner_tags"]
        if tokens is None or tags is None or len(tokens) != len(tags):
            raise DataError(
                f"Split {split!r}, row {i}: {len(tokens or [])} tokens but {len(tags or [])} tags. Give every token "
                f"exactly one tag ('O' outside entities)."
            )
        rows.append({"tokens": list(tokens), "ner_tags": [spell(t) for t in tags]})
    return rows


def read_token_source(source) -> dict[str, list[dict]]:
    """Rows ``{"tokens", "ner_tags"}`` (tags as strings) per split, from any supported form."""
    from .data import BUNDLED_DIR, SPLIT_ALIASES, read_source

    if isinstance(source, str) and source.startswith("bundled:"):
        folder = BUNDLED_DIR / source.removeprefix("bundled:")
        if not (folder / "SOURCE.md").is_file():
            raise DataError(
                f"No bundled dataset {source!r}; the token-classification ones: conll2003, crossner_politics."
            )
        source = str(folder)
    path = Path(str(source)) if isinstance(source, str | Path) else None
    if path is not None and path.is_file() and path.suffix.lower() in CONLL_SUFFIXES:
        return {"train": read_conll(path)}
    if path is not None and path.is_dir():
        conll = {SPLIT_ALIASES.get(p.stem.lower()): p for p in sorted(path.iterdir())
                 if p.suffix.lower() in CONLL_SUFFIXES}  # fmt: skip
        if conll:
            return {split: read_conll(p) for split, p in conll.items() if split}
    return {split: _rows_of(ds, split) for split, ds in read_source(source).items()}


def load_token_target(
    source,
    *,
    types: Sequence[str] | None = None,
    repair_bio: bool = False,
    validation_size: float = 0.1,
    seed: int = 0,
) -> DatasetDict:
    """A ``DatasetDict`` of ``tokens`` + ``ner_tags`` (``List(ClassLabel(tag_names(types)))``), checked: BIO
    validity (``repair_bio``), types against ``types`` when given; a validation split is carved from train
    (sentences, seeded) when there is none."""
    splits = read_token_source(source)
    if "train" not in splits:
        raise DataError(f"No 'train' split among {list(splits)}; name one split 'train' (file or key).")
    for split, rows in splits.items():
        if not rows:
            raise DataError(f"Split {split!r} is empty; remove it or point it at a file with sentences.")
        for i, row in enumerate(rows):
            row["ner_tags"] = check_bio(row["ner_tags"], i, repair=repair_bio)
    found = entity_types(row["ner_tags"] for row in splits["train"])
    if types is not None:
        types = [str(t) for t in types]
        unknown = sorted(set(entity_types(r["ner_tags"] for rows in splits.values() for r in rows)) - set(types))
        if unknown:
            raise DataError(
                f"The data tags entity type(s) {unknown} that labels={types} does not list. Add them to labels, "
                f"or map them to 'O' first."
            )
    elif not found:
        raise DataError("Split 'train' tags no entity (every tag is 'O'); give labels=[...] naming the types.")
    names = tag_names(types if types is not None else found)
    features = {"tokens": List(Value("string")), "ner_tags": List(ClassLabel(names=names))}
    index = {name: i for i, name in enumerate(names)}
    out = {}
    for split, rows in splits.items():
        missing = sorted({t for r in rows for t in r["ner_tags"]} - set(index))
        if missing:
            raise DataError(f"Split {split!r} has tag(s) {missing} that train does not; types: {names[1::2]}.")
        out[split] = Dataset.from_dict(
            {"tokens": [r["tokens"] for r in rows], "ner_tags": [[index[t] for t in r["ner_tags"]] for r in rows]},
            features=Features(features),
        )
    if "validation" not in out and validation_size:
        parts = out["train"].train_test_split(test_size=validation_size, seed=seed)
        out["train"], out["validation"] = parts["train"], parts["test"]
    return DatasetDict(out)


def type_names(ds: Dataset) -> list[str]:
    """The entity types of a loaded split, in tag order."""
    return [name[2:] for name in ds.features["ner_tags"].feature.names[1::2]]


def sample_per_type(ds: Dataset, n: int, seed: int = 0) -> Dataset:
    """At least ``n`` sentences per entity type (seeded, greedy, rarest type first: a sentence taken for a rare
    type counts for the others it holds), and up to ``n`` sentences without any entity where there are some."""
    types = type_names(ds)
    names = ds.features["ner_tags"].feature.names
    has = np.zeros((len(ds), len(types) + 1), dtype=bool)
    for i, tags in enumerate(ds["ner_tags"]):
        for tag in tags:
            if names[tag].startswith("B-"):
                has[i, types.index(names[tag][2:])] = True
        has[i, -1] = not has[i, :-1].any()
    counts = has.sum(0)
    short = [f"{types[j]!r} has {counts[j]}" for j in range(len(types)) if counts[j] < n]
    if short:
        raise DataError(
            f"n_per_class={n} (sentences per entity type) is more than some types have ({'; '.join(short)}). "
            f"Lower n_per_class, or use the full split."
        )
    return ds.select(cover_rarest_first(has, n, seed, counts).tolist())


def entities(tags: Sequence[str]) -> set[tuple[str, int, int]]:
    """``(type, start, end)`` (end exclusive) of each entity in IOB2 ``tags``: a ``B-x`` starts one, following
    ``I-x`` extend it; an ``I-x`` without an open ``x`` starts one too (seqeval's default, lenient reading)."""
    found, current = set(), None
    for position, tag in enumerate([*tags, "O"]):
        kind = tag[2:] if tag != "O" else None
        continues = current is not None and tag.startswith("I-") and kind == current[0]
        if current is not None and not continues:
            found.add((current[0], current[1], position))
            current = None
        if kind is not None and not continues:
            current = (kind, position)
    return found


def entity_scores(predicted: Sequence[Sequence[str]], truth: Sequence[Sequence[str]]) -> dict:
    """Entity-level precision, recall and F1: micro over all entities, macro over the types the truth or the
    predictions name, and per type. An entity counts only with its exact type and boundaries."""
    if len(predicted) != len(truth):
        raise ValueError(f"{len(predicted)} predicted sentences but {len(truth)} true ones.")
    tp, n_pred, n_true = Counter(), Counter(), Counter()
    for p_tags, t_tags in zip(predicted, truth):
        p, t = entities(p_tags), entities(t_tags)
        for kind, *_ in p & t:
            tp[kind] += 1
        for kind, *_ in p:
            n_pred[kind] += 1
        for kind, *_ in t:
            n_true[kind] += 1

    def prf(hits: int, pred: int, true: int) -> dict[str, float]:
        precision = hits / pred if pred else 0.0
        recall = hits / true if true else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return {"precision": precision, "recall": recall, "f1": f1}

    per_type = {k: prf(tp[k], n_pred[k], n_true[k]) for k in sorted(set(n_pred) | set(n_true))}
    micro = prf(sum(tp.values()), sum(n_pred.values()), sum(n_true.values()))
    macro = float(np.mean([v["f1"] for v in per_type.values()])) if per_type else 0.0
    return {
        "precision": micro["precision"],
        "recall": micro["recall"],
        "f1_micro": micro["f1"],
        "f1_macro": macro,
        "per_type": per_type,
    }
