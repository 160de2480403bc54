"""Filters over generated rows, each a keep-mask over the surviving rows. ``apply_filters`` runs them cheap first,
the scorer last (``FILTER_ORDER``), and counts what each removed."""

from __future__ import annotations

import re
import unicodedata
import zlib
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from .config import BALANCE_MODES
from .generation import PREAMBLE
from .markup import MarkupError, entity_consistency, parse_markup

Scorer = Callable[[Sequence[str]], np.ndarray]  # texts -> (n, num_labels) probabilities; tokens: word lists ->
# one (words, tags) array per sentence

ARTEFACT = re.compile(r"<\|[^|>]*\|>|</?s>|\[/?INST\]|<end_of_turn>|<start_of_turn>")
ROLE = re.compile(r"^\s*(assistant|user|system|model)\s*(:\s*|$)", re.I)
FIELD = re.compile(
    r"^\s*([\w-]+\s+){0,2}(text|example|review|answer|output|response|sentence|tweet|headline|sample)\s*\d*\s*:\s*",
    re.I,
)
NUMBERING = re.compile(r"^\s*(\(?\d{1,3}[.)\]:]|[-*•–]|#+)\s+")
QUOTES = [('"', '"'), ("“", "”"), ("'", "'"), ("‘", "’"), ("«", "»"), ("`", "`")]


def clean_text(text: str, prompt: str | None = None, label: str | None = None) -> str:
    """The first line of a raw generation that is an example (``""`` if none): chat artefacts, role/field labels,
    numbering, quotes and a ``"<label>:"`` prefix (a word real texts never carry) stripped; preambles and lines
    echoing the prompt (half their word trigrams in it: small models restate the description) skipped."""
    text = ARTEFACT.sub(" ", unicodedata.normalize("NFC", text))
    prompt_trigrams = _trigrams(words(prompt)) if prompt else set()
    label_prefix = (
        re.compile(rf"^\s*{re.escape(label.strip())}\s*[:\-–]\s+", re.I) if label and label.strip() else None
    )
    for line in text.splitlines():
        line = _strip_line(line)
        if line and PREAMBLE.search(line) and ":" in line[:-1]:  # 'Here is one: "The text."' keeps the text
            line = _strip_line(line.split(":", 1)[1])
        if label_prefix is not None and label_prefix.match(line):
            line = _strip_line(label_prefix.sub("", line, count=1))
        if not line or PREAMBLE.search(line):
            continue
        line_trigrams = _trigrams(words(line))
        echoes = line_trigrams and len(line_trigrams & prompt_trigrams) >= len(line_trigrams) / 2
        if not echoes and not (prompt and len(line) > 20 and _norm(line) in _norm(prompt)):
            return line
    return ""


def _trigrams(tokens: list[str]) -> set[tuple[str, ...]]:
    return set(zip(tokens, tokens[1:], tokens[2:]))


def _strip_line(line: str) -> str:
    previous = None
    while previous != line:
        previous = line
        line = ROLE.sub("", line)
        line = FIELD.sub("", line)
        line = NUMBERING.sub("", line)
        line = line.strip()
        for left, right in QUOTES:
            if len(line) >= 2 and line.startswith(left) and line.endswith(right):
                line = line[len(left) : -len(right)].strip()
        if line.count('"') == 1 and (line.startswith('"') or line.endswith('"')):
            line = line.strip('"').strip()  # a quote cut off by the stop
    return re.sub(r"\s+", " ", line)


def _norm(text: str) -> str:
    """Lower-case, punctuation dropped, whitespace collapsed: the key for exact duplicates."""
    text = unicodedata.normalize("NFKC", text).lower()
    return " ".join(re.sub(r"[^\w\s]", " ", text).split())


def words(text: str) -> list[str]:
    return _norm(text).split()


def length_mask(texts: Sequence[str], min_words: int, max_words: int) -> np.ndarray:
    counts = np.array([len(t.split()) for t in texts], dtype=int)
    return (counts >= min_words) & (counts <= max_words)


def contamination_mask(texts: Sequence[str], eval_texts: Sequence[str] | None, n: int) -> np.ndarray:
    """False for texts sharing an ``n``-word run with any eval text (or equal to a shorter eval text); O(words)."""
    keep = np.ones(len(texts), dtype=bool)
    if not eval_texts or n <= 0:
        return keep

    def ngrams(w: list[str]) -> set[int]:
        return {hash(tuple(w[i : i + n])) for i in range(len(w) - n + 1)}

    eval_words = [words(text) for text in eval_texts]
    short = {" ".join(w) for w in eval_words if len(w) < n}
    grams = set().union(*map(ngrams, eval_words))
    for j, text in enumerate(texts):
        w = words(text)
        keep[j] = " ".join(w) not in short and ngrams(w).isdisjoint(grams)
    return keep


def exact_duplicate_mask(texts: Sequence[str]) -> np.ndarray:
    """Keep the first of each group of texts equal after normalisation."""
    return cap_mask([_norm(t) for t in texts], 1)


def shingles(text: str, k: int = 5) -> set[str]:
    t = _norm(text)
    return {t} if len(t) <= k else {t[i : i + k] for i in range(len(t) - k + 1)}


def jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


_PRIME = np.uint64(4294967311)  # > 2**32
_RNG = np.random.default_rng(20240601)
_NUM_PERM = 64
_A = _RNG.integers(1, 2**31, size=_NUM_PERM, dtype=np.uint64)
_B = _RNG.integers(0, 2**31, size=_NUM_PERM, dtype=np.uint64)


def minhash(shingle_set: set[str]) -> np.ndarray:
    hashes = np.fromiter((zlib.crc32(s.encode()) for s in shingle_set), dtype=np.uint64, count=len(shingle_set))
    return ((np.outer(hashes, _A) + _B) % _PRIME).min(axis=0)


def lsh_bands(threshold: float, num_perm: int = _NUM_PERM) -> int:
    """Number of bands b (rows r = num_perm / b) whose S-curve threshold (1/b)^(1/r) is just below ``threshold``
    (favours recall; candidates are verified with the exact Jaccard)."""
    options = [b for b in range(1, num_perm + 1) if num_perm % b == 0]
    below = [b for b in options if (1 / b) ** (b / num_perm) <= threshold]
    return min(below) if below else num_perm


def near_duplicate_mask(texts: Sequence[str], threshold: float, k: int = 5) -> np.ndarray:
    """Keep a text unless its character ``k``-gram Jaccard similarity to an earlier kept text is ``>= threshold``.
    MinHash + LSH buckets find the candidates, so only texts sharing a bucket are compared (O(n), not O(n²))."""
    keep = np.ones(len(texts), dtype=bool)
    if threshold >= 1.0 or len(texts) < 2:
        return keep
    if threshold <= 0.0:  # everything is "similar enough": keep the first row only
        keep[1:] = False
        return keep
    bands = lsh_bands(threshold)
    rows = _NUM_PERM // bands
    buckets: list[dict[bytes, list[int]]] = [{} for _ in range(bands)]
    kept_shingles: dict[int, set[str]] = {}
    for i, text in enumerate(texts):
        sh = shingles(text, k)
        signature = minhash(sh)
        keys = [signature[b * rows : (b + 1) * rows].tobytes() for b in range(bands)]
        candidates = {j for b, key in enumerate(keys) for j in buckets[b].get(key, ())}
        if any(jaccard(sh, kept_shingles[j]) >= threshold for j in sorted(candidates)):
            keep[i] = False
            continue
        kept_shingles[i] = sh
        for b, key in enumerate(keys):
            buckets[b].setdefault(key, []).append(i)
    return keep


def consistency_scores(texts: Sequence[str], label_ids: Sequence[int], scorer: Scorer) -> np.ndarray:
    """The scorer's probability of each text's intended label."""
    if not len(texts):
        return np.zeros(0, dtype=np.float32)
    probs = np.asarray(scorer(list(texts)), dtype=np.float32)
    if probs.shape != (len(texts), probs.shape[1]) or probs.shape[1] <= max(label_ids):
        raise ValueError(f"The consistency scorer returned shape {probs.shape} for {len(texts)} texts.")
    return probs[np.arange(len(texts)), np.asarray(label_ids)]


def consistency_ranks(
    texts: Sequence[str], asked: Sequence[Sequence[int]], scorer: Scorer
) -> tuple[np.ndarray, np.ndarray]:
    """Multi-label: per text, the worst rank (1 = the scorer's top label) among the labels it was asked for, and
    the lowest score among them. A rank, not a probability: a softmax scorer splits its mass between the two
    labels of a pair (each then looks unlikely), and a per-label sigmoid scorer is calibrated per label, so a
    probability cut means something different for every scorer and label count; the ranking does not."""
    if not len(texts):
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    probs = np.asarray(scorer(list(texts)), dtype=np.float32)
    if probs.ndim != 2 or probs.shape[0] != len(texts) or probs.shape[1] <= max(max(ids) for ids in asked):
        raise ValueError(f"The consistency scorer returned shape {probs.shape} for {len(texts)} texts.")
    ranks = np.empty(probs.shape, dtype=np.int64)
    rows = np.arange(len(texts))[:, None]
    ranks[rows, np.argsort(-probs, axis=1, kind="stable")] = np.arange(1, probs.shape[1] + 1)
    worst = np.array([ranks[i, list(ids)].max() for i, ids in enumerate(asked)], dtype=np.int64)
    lowest = np.array([probs[i, list(ids)].min() for i, ids in enumerate(asked)], dtype=np.float32)
    return worst, lowest


def default_scorer(labels: Sequence[str], descriptions: Mapping[str, str] | None, model: str = "minilm") -> Scorer:
    """The label-description zero-shot classifier of ``hf_transfer.finetune.prepare`` as ``texts -> probs``."""
    from ..classifier import prepare
    from ..inference import predict_proba

    descriptions = {k: v for k, v in (descriptions or {}).items() if v}
    classifier, tokenizer = prepare(model, list(labels), method="head", label_descriptions=descriptions or None)

    def score(texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        return predict_proba(classifier, tokenizer, list(texts), batch_size=batch_size)

    return score


def saved_tagger_tags(model: str, types: Sequence[str]) -> list[str] | None:
    """The tag names of ``model`` when it is a saved tagger (its config alone; ``ConfigError`` if it lacks some of
    ``types``), else ``None`` (an encoder: the zero-shot description tagger is built on it)."""
    from transformers import AutoConfig

    from ..defaults import resolve_model
    from ..errors import ConfigError
    from ..modeling import register_auto_classes
    from ..token_classification import types_of_tags

    register_auto_classes()
    try:
        config = AutoConfig.from_pretrained(resolve_model(model))
    except (OSError, ValueError) as err:
        reason = str(err).splitlines()[0]
        raise ConfigError(f"Cannot load the config of consistency_model {model!r} ({reason}).") from None
    if not any(a.endswith("ForTokenClassification") for a in getattr(config, "architectures", None) or ()):
        return None
    tags = [config.id2label[i] for i in range(len(config.id2label))]
    missing = sorted(set(types) - set(types_of_tags(tags) or ()))
    if missing:
        raise ConfigError(
            f"consistency_model {model!r} is a tagger without the entity type(s) {missing} (its tags: {tags}), so it "
            "cannot check rows marked with them. Give a tagger over the target types (a finetune or labelmap run on "
            "them), or the encoder 'minilm' for the zero-shot type-description tagger, or consistency_threshold=0."
        )
    return tags


def default_tagger_scorer(
    types: Sequence[str], descriptions: Mapping[str, str] | None, model: str = "minilm"
) -> Scorer:
    """Token classification: ``sentences -> [(words, tags) probabilities]`` in :func:`tag_names` order, from a
    saved tagger over (at least) ``types``, or the type-description zero-shot tagger on an encoder (no bias
    calibration: :func:`~hf_transfer.generate.markup.entity_consistency` compares types, not entity vs ``O``)."""
    from ..classifier import prepare
    from ..defaults import resolve_model
    from ..inference import predict_word_proba
    from ..token_classification import TOKEN_CLASSIFICATION, tag_names, word_tokenizer

    names = tag_names(types)
    saved = saved_tagger_tags(model, types)
    if saved is None:
        descriptions = {k: v for k, v in (descriptions or {}).items() if v}
        tagger, tokenizer = prepare(model, names, task=TOKEN_CLASSIFICATION, method="head",
                                    label_descriptions=descriptions or None)  # fmt: skip
        columns = list(range(len(names)))
    else:
        from transformers import AutoModelForTokenClassification

        path = resolve_model(model)
        tagger, tokenizer = AutoModelForTokenClassification.from_pretrained(path).eval(), word_tokenizer(path)
        columns = [saved.index(name) for name in names]

    def score(sentences: Sequence[Sequence[str]], batch_size: int = 64) -> list[np.ndarray]:
        probs = predict_word_proba(tagger, tokenizer, [list(s) for s in sentences], batch_size=batch_size)
        return [p[:, columns] for p in probs]

    return score


def balance_mask(label_ids: Sequence[int], mode: str, seed: int = 0) -> np.ndarray:
    """``"min"``: keep a seeded random subset of each label's rows, as many as the rarest present label has (random,
    not the most consistent rows, so no label keeps only easy examples). ``"none"``: keep all."""
    label_ids = np.asarray(label_ids, dtype=np.int64)
    keep = np.ones(len(label_ids), dtype=bool)
    if mode == "none" or len(label_ids) == 0:
        return keep
    if mode != "min":
        raise ValueError(f"balance={mode!r}: expected one of {BALANCE_MODES}.")
    present, counts = np.unique(label_ids, return_counts=True)
    target = counts.min()
    rng = np.random.default_rng(seed)
    for label, count in zip(present, counts):
        if count > target:
            rows = np.flatnonzero(label_ids == label)
            keep[rng.choice(rows, size=count - target, replace=False)] = False
    return keep


def target_of(row: Mapping) -> tuple[int, ...]:
    """The label ids a generated row was asked for: a multi-label row's ``label_ids``, else its ``label_id``."""
    return tuple(row["label_ids"]) if "label_ids" in row else (row["label_id"],)


def cap_mask(keys: Sequence, cap: int | None) -> np.ndarray:
    """Keep the first ``cap`` rows of each key, e.g. label (all if ``cap`` is None): earlier rounds' rows win, so a
    larger ``max_rounds`` never changes which rows an earlier round contributed."""
    seen: dict = {}
    keep = np.ones(len(keys), dtype=bool)
    if cap is None:
        return keep
    for i, key in enumerate(keys):
        seen[key] = seen.get(key, 0) + 1
        keep[i] = seen[key] <= cap
    return keep


FILTER_ORDER = (
    "cleaning", "markup", "entity", "length", "contamination", "exact_duplicate", "near_duplicate", "consistency",
    "surplus", "balance",
)  # fmt: skip


def apply_filters(
    rows: list[dict],
    *,
    min_words: int,
    max_words: int,
    near_dup_threshold: float,
    consistency_threshold: float,
    contamination_ngram: int,
    eval_texts: Sequence[str] | None = None,
    scorer: Scorer | None = None,
    load_scorer: Callable[[], Scorer] | None = None,
    balance: str = "none",
    seed: int = 0,
    cap_per_label: int | None = None,
    consistency_top_k: int | None = None,
    markup_types: Sequence[str] | None = None,
) -> tuple[list[dict], dict]:
    """Every filter over ``rows`` (``raw_text``, ``prompt``, ``label_id``, or multi-label ``label_ids``): the kept
    rows, with ``text`` and ``consistency`` set, and ``{"removed": {filter: count}, ...}``. ``load_scorer()`` runs
    only if rows reach the consistency filter with a threshold above 0, so the scorer loads only when needed.
    ``consistency_top_k`` (multi-label): keep a row when every asked label is among the scorer's top
    ``consistency_top_k + len(asked) - 1`` labels (:func:`consistency_ranks`; ``consistency_rank`` is set), instead
    of the probability cut. ``cap_per_label`` cuts each target (label, or label pair) to its first rows
    (``surplus``: what top-up rounds made beyond ``target_per_label``).

    ``markup_types`` (token classification): each cleaned text is entity markup over these types
    (:mod:`~hf_transfer.generate.markup`), parsed to ``tokens`` + ``ner_tags`` (``markup``: unreadable markup
    removed; ``entity``: no entity of the asked type), ``text`` becomes the plain words for the length,
    contamination and duplicate filters and ``markup`` keeps what was written; the scorer then tags word lists
    (``sentences -> [(words, tags) probabilities]``) and a row's consistency is
    :func:`~hf_transfer.generate.markup.entity_consistency`."""
    tokens = markup_types is not None
    removed = dict.fromkeys((f for f in FILTER_ORDER if tokens or f not in TOKEN_FILTERS), 0)

    def keep_where(current: list[dict], mask: np.ndarray, name: str) -> list[dict]:
        removed[name] += int((~mask).sum())
        return [row for row, k in zip(current, mask) if k]

    current = [{**row, "text": clean_text(row["raw_text"], row.get("prompt"), row.get("label"))} for row in rows]
    current = keep_where(current, np.array([bool(r["text"]) for r in current], dtype=bool), "cleaning")
    if tokens:
        current = keep_where(current, _parse_rows(current, markup_types), "markup")
        asked = [{markup_types[i] for i in target_of(r)} <= {t[2:] for t in r["ner_tags"]} for r in current]
        current = keep_where(current, np.array(asked, dtype=bool), "entity")
    current = keep_where(current, length_mask([r["text"] for r in current], min_words, max_words), "length")
    mask = contamination_mask([r["text"] for r in current], eval_texts, contamination_ngram)
    current = keep_where(current, mask, "contamination")
    current = keep_where(current, exact_duplicate_mask([r["text"] for r in current]), "exact_duplicate")
    mask = near_duplicate_mask([r["text"] for r in current], near_dup_threshold)
    current = keep_where(current, mask, "near_duplicate")
    if consistency_threshold > 0 and current and (scorer is not None or load_scorer is not None):
        scorer = scorer if scorer is not None else load_scorer()
        texts = [r["text"] for r in current]
        if tokens:
            probs = scorer([r["tokens"] for r in current])
            scores = np.array([entity_consistency(p, r["ner_tags"], markup_types) for p, r in zip(probs, current)])
            mask = scores >= consistency_threshold
        elif consistency_top_k is not None:
            asked = [target_of(r) for r in current]
            worst, scores = consistency_ranks(texts, asked, scorer)
            for row, rank in zip(current, worst):
                row["consistency_rank"] = int(rank)
            mask = worst <= consistency_top_k + np.array([len(ids) for ids in asked]) - 1
        else:
            scores = consistency_scores(texts, [r["label_id"] for r in current], scorer)
            mask = scores >= consistency_threshold
        for row, score in zip(current, scores):
            row["consistency"] = float(score)
        current = keep_where(current, mask, "consistency")
    else:
        for row in current:
            row["consistency"] = None
    current = keep_where(current, cap_mask([target_of(r) for r in current], cap_per_label), "surplus")
    targets = [target_of(r) for r in current]
    code = {target: i for i, target in enumerate(sorted(set(targets)))}  # single-label: in label id order
    current = keep_where(current, balance_mask([code[t] for t in targets], balance, seed), "balance")
    return current, {"generated": len(rows), "removed": removed, "kept": len(current)}


TOKEN_FILTERS = ("markup", "entity")  # only token-classification runs have these


def _parse_rows(rows: list[dict], types: Sequence[str]) -> np.ndarray:
    """Parse each row's markup in place (``markup``, ``tokens``, ``ner_tags``, ``text`` = the words); the mask of
    rows that parsed."""
    keep = np.ones(len(rows), dtype=bool)
    for i, row in enumerate(rows):
        try:
            words, tags = parse_markup(row["text"], types)
        except MarkupError:
            keep[i] = False
            continue
        row.update(markup=row["text"], tokens=words, ner_tags=tags, text=" ".join(words))
    return keep
