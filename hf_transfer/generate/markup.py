"""Inline entity markup, the form a generative model writes token-classification rows in:
``[Angela Merkel](politician) met the [SPD](politicalparty) .`` parsed to words and BIO tags, and real sentences
rendered the same way as few-shot examples.

Markup rather than a separate entity list because the entity cannot then be missing from its sentence, and the
model writes each mention where it belongs (a list would need matching strings back into the text, ambiguous
for repeated names). Types are matched by name with case, spaces, ``_`` and ``-`` ignored, so ``political
party`` reads as ``politicalparty``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import numpy as np

from ..token_classification import entities, tag_names

SPAN = re.compile(r"\[([^\[\]]*)\]\s*\(([^()]*)\)")
WORD = re.compile(r"\w+(?:[-'’.&]\w+)*|[^\w\s]")  # words with inner hyphens/apostrophes/dots, punctuation alone
NO_SPACE_BEFORE = {",", ".", ";", ":", "!", "?", ")", "]", "%", "'s", "n't"}


class MarkupError(ValueError):
    """A generation whose markup cannot be read (unbalanced brackets, an empty span, an unknown type)."""


def type_key(name: str) -> str:
    return re.sub(r"[\s_\-]+", "", str(name).lower())


def split_words(text: str) -> list[str]:
    """Words and punctuation marks as separate tokens (the CoNLL convention the targets' sentences use)."""
    return WORD.findall(text)


def parse_markup(text: str, types: Sequence[str]) -> tuple[list[str], list[str]]:
    """``(tokens, BIO tags)`` of a marked-up sentence. :class:`MarkupError` for brackets left over after the
    spans are read, a span without words, or a type not among ``types``."""
    index = {type_key(t): t for t in types}
    tokens: list[str] = []
    tags: list[str] = []
    position = 0
    for match in SPAN.finditer(text):
        _plain(text[position : match.start()], tokens, tags)
        words = split_words(match.group(1))
        kind = index.get(type_key(match.group(2)))
        if not words:
            raise MarkupError(f"empty entity span {match.group(0)!r}")
        if kind is None:
            raise MarkupError(f"unknown entity type {match.group(2).strip()!r} (types: {list(types)})")
        tokens += words
        tags += [f"B-{kind}"] + [f"I-{kind}"] * (len(words) - 1)
        position = match.end()
    _plain(text[position:], tokens, tags)
    return tokens, tags


def _plain(text: str, tokens: list[str], tags: list[str]) -> None:
    if re.search(r"[\[\]]", text):
        raise MarkupError(f"unbalanced entity markup in {text.strip()!r}")
    words = split_words(text)
    tokens += words
    tags += ["O"] * len(words)


def to_markup(tokens: Sequence[str], tags: Sequence[str]) -> str:
    """A tagged sentence as markup, spaced as text (no space before ``,`` etc.): the few-shot example form."""
    spans = {start: (kind, end) for kind, start, end in entities(tags)}
    pieces, i = [], 0
    while i < len(tokens):
        if i in spans:
            kind, end = spans[i]
            pieces.append(f"[{_join(tokens[i:end])}]({kind})")
            i = end
        else:
            pieces.append(tokens[i])
            i += 1
    return _join(pieces)


def _join(words: Sequence[str]) -> str:
    text = ""
    for word in words:
        glue = not text or word in NO_SPACE_BEFORE or text.endswith(("(", "[", "$"))
        text += word if glue else " " + word
    return text


def entity_consistency(word_probs: np.ndarray, tags: Sequence[str], types: Sequence[str]) -> float:
    """How much a tagger agrees with a row's markup: for each marked entity, its type's share of the tagger's
    entity-type mass (``B-`` + ``I-``, averaged over the span's words, ``O`` left out), and the lowest share over
    the row's entities. ``O`` is left out so that the check asks "is this span more this type than another",
    which a zero-shot description tagger can answer although its entity/non-entity boundary is not calibrated;
    the default threshold, 1/num_types, is the single-label rule (1/num_labels). Entities that the tagger's
    truncation cut off count 0."""
    names = tag_names(types)
    column = {name: j for j, name in enumerate(names)}
    probs = np.asarray(word_probs, dtype=np.float64)
    worst = 1.0
    for kind, start, end in entities(tags):
        if end > len(probs):
            return 0.0
        span = probs[start:end]
        mass = np.array([span[:, column[f"B-{t}"]] + span[:, column[f"I-{t}"]] for t in types]).mean(axis=1)
        worst = min(worst, float(mass[list(types).index(kind)] / max(mass.sum(), 1e-12)))
    return worst


def markup_seed_rows(rows: Sequence[Mapping]) -> list[dict]:
    """Tagged sentences (``tokens`` + string ``ner_tags``) → seed examples ``{"text": markup, "label": [types]}``:
    a sentence is an example for each type it holds (``prompts.group_seed_examples`` reads label lists)."""
    out = []
    for row in rows:
        kinds = sorted({kind for kind, _, _ in entities(row["ner_tags"])})
        if kinds:
            out.append({"text": to_markup(row["tokens"], row["ner_tags"]), "label": kinds})
    return out
