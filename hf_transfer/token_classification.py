"""The token-classification task type (NER): a sentence is a list of ``tokens``, each with a BIO tag
(``B-person`` begins an entity, ``I-person`` continues it, ``O`` is outside any).

In a loaded ``DatasetDict`` the ``ner_tags`` column is a ``List(ClassLabel)`` whose names are ``O`` then
``B-t``/``I-t`` per entity type ``t`` (sorted); every input form becomes that: token/tag JSONL (tags as strings
or ``ClassLabel`` ids), CoNLL files (``token ... tag`` per line, a blank line between sentences, ``-DOCSTART-``
skipped) and character-span JSONL (``{"text", "entities": [{"start", "end", "label"}]}``), tokenised here.
Entity-level scores follow seqeval's strict IOB2 semantics (:func:`entities`).
"""

from __future__ import annotations

import itertools
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


def is_conll(path: Path) -> bool:
    """Whether the file ``path`` is in CoNLL form: a CoNLL suffix, or a ``.txt`` (CoNLL-2003's own ``train.txt``,
    ``valid.txt``, ``test.txt``) whose first lines are all ``token ... tag``, the tag ``O`` or prefixed (``B-x``).
    A ``.txt`` in the IO scheme (bare types) needs a CoNLL suffix, since nothing tells it from prose."""
    suffix = path.suffix.lower()
    if suffix in CONLL_SUFFIXES:
        return True
    if suffix != ".txt" or not path.is_file():
        return False
    with path.open(encoding="utf-8", errors="replace") as f:
        lines = [line.split() for line in itertools.islice(f, 200)]
    lines = [parts for parts in lines if parts and parts[0] != "-DOCSTART-"]
    tag = re.compile(r"O|[BIESLU]-\S+")  # every last column a tag: prose fails at its first line
    return bool(lines) and all(len(parts) >= 2 and tag.fullmatch(parts[-1]) for parts in lines)


def read_conll(path: str | Path) -> list[dict]:
    """Sentences of a CoNLL file: the first column is the token, the last its tag; ``-DOCSTART-`` is skipped."""
    sentences, tokens, tags = [], [], []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").split("\n"), 1):  # not at U+2028 etc.
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


PREFIXED = re.compile(r"^([BIESLU])-(.+)$")
SCHEMES = {  # tag scheme -> (its prefixes, how each reads in IOB2)
    "BIO": ("BI", {"B": "B", "I": "I"}),
    "BIOES": ("BIES", {"B": "B", "I": "I", "E": "I", "S": "B"}),
    "BILOU": ("BILU", {"B": "B", "I": "I", "L": "I", "U": "B"}),
}
PREFIX_READS = {prefix: read for _, reads in SCHEMES.values() for prefix, read in reads.items()}  # S -> B, E -> I...


def tag_scheme(tag_lists) -> str:
    """The scheme the tags are written in: ``BIO`` (IOB2 or IOB1), ``BIOES`` (``S-`` single-word, ``E-`` last
    word), ``BILOU`` (``U-``, ``L-``), or ``IO`` (bare types: ``person``, ``LOC``; Few-NERD and several Hub taggers
    are like this). Tags mixing bare types and prefixes, or prefixes of two schemes, are an error."""
    prefixes, bare = set(), set()
    for tags in tag_lists:
        for tag in tags:
            if tag == "O":
                continue
            if match := PREFIXED.match(tag):
                prefixes.add(match.group(1))
            else:
                bare.add(tag)
    if bare and prefixes:
        raise DataError(
            f"The tags mix bare entity types ({sorted(bare)[:3]}) with prefixed ones ({sorted(prefixes)}-...): write "
            "every tag in one scheme, BIO ('B-x', 'I-x', 'O'), BIOES, BILOU, or IO (the bare type on every word)."
        )
    if bare:
        return "IO"
    for name, (allowed, _) in SCHEMES.items():
        if prefixes <= set(allowed):
            return name
    raise DataError(
        f"The tags use the prefixes {sorted(prefixes)}, which no one scheme has: BIO uses B/I, BIOES B/I/E/S, BILOU "
        "B/I/L/U. Convert the tags to one of them."
    )


def to_bio(splits: dict[str, list[dict]]) -> dict[str, list[dict]]:
    """The rows with their tags in BIO (IOB2) whatever scheme they came in (:func:`tag_scheme`, read over every
    split at once): BIOES/BILOU single and last words become ``B-``/``I-`` (lossless); IO runs of one type become
    one entity (two entities of one type side by side merge: IO cannot tell them apart). Logged when converted."""
    scheme = tag_scheme(row["ner_tags"] for rows in splits.values() for row in rows)
    if scheme == "BIO":
        return splits
    logger.warning("Entity tags are in the %s scheme; read as BIO (IOB2).", scheme)
    for rows in splits.values():
        for row in rows:
            row["ner_tags"] = bio_tags(row["ner_tags"], scheme)
    return splits


def bio_tags(tags: Sequence[str], scheme: str) -> list[str]:
    """One sentence's tags of ``scheme`` (:func:`tag_scheme`) in BIO (:func:`to_bio`)."""
    if scheme == "IO":
        return [t if t == "O" else ("I-" if i and tags[i - 1] == t else "B-") + t for i, t in enumerate(tags)]
    return [t if t == "O" else f"{PREFIX_READS[t[0]]}-{t[2:]}" for t in tags]


def check_bio(tags: Sequence[str], row: int, *, repair: bool = False) -> list[str]:
    """``tags`` if they are valid IOB2; an ``I-x`` that does not continue an ``x`` entity becomes ``B-x`` with a
    warning when ``repair``, else is an error naming the row and the fix. A tag not in BIO form is an error."""
    out, previous = [], "O"
    for position, tag in enumerate(tags):
        if tag != "O" and not re.fullmatch(r"[BI]-\S+", tag):
            raise DataError(
                f"Row {row}, token {position}: tag {tag!r} is not in BIO form ('O', 'B-<type>', 'I-<type>'). "
                f"Read other schemes (BIOES, BILOU, IO) through to_bio first, or fix the row."
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
    token_column, tag_column = token_columns(columns)
    if token_column is None or tag_column is None:
        raise DataError(
            f"Split {split!r} has columns {columns}: token classification needs 'tokens' + 'ner_tags' (lists; "
            f"also read as 'words' / 'tags'), or 'text' + 'entities' (character spans)."
        )
    feature = ds.features[tag_column]
    names = feature.feature.int2str if isinstance(getattr(feature, "feature", None), ClassLabel) else None
    rows = []
    for i, row in enumerate(ds):
        tokens, tags = row[token_column], row[tag_column]
        if tokens is None or tags is None or len(tokens) != len(tags):
            raise DataError(
                f"Split {split!r}, row {i}: {len(tokens or [])} tokens but {len(tags or [])} tags. Give every token "
                f"exactly one tag ('O' outside entities)."
            )
        if names is None and any(not isinstance(t, str) for t in tags):
            raise DataError(
                f"Split {split!r}, row {i}: the {tag_column!r} are ids ({list(tags)[:4]}) without tag names. Give the "
                f"tags as strings ('B-person', 'O'), or the column a ClassLabel feature naming them "
                f"(datasets.Sequence(ClassLabel(names=[...])))."
            )
        rows.append({"tokens": list(tokens), "ner_tags": [names(t) if names else t for t in tags]})
    return rows


TOKEN_ALIASES, TAG_ALIASES = ("tokens", "words"), ("ner_tags", "tags")


def token_columns(columns: Sequence[str]) -> tuple[str | None, str | None]:
    """The token and tag columns among ``columns``: ``tokens`` / ``ner_tags``, else ``words`` / ``tags`` (the
    names other NER datasets on the Hub use, e.g. the tner collection)."""
    return next((c for c in TOKEN_ALIASES if c in columns), None), next((c for c in TAG_ALIASES if c in columns), None)


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
    splits = None
    if path is not None and path.is_file() and is_conll(path):
        splits = {"train": read_conll(path)}
    elif path is not None and path.is_dir():
        conll = {SPLIT_ALIASES.get(p.stem.lower()): p for p in sorted(path.iterdir()) if is_conll(p)}
        if conll:
            splits = {split: read_conll(p) for split, p in conll.items() if split}
    if splits is None:
        splits = {split: _rows_of(ds, split) for split, ds in read_source(source).items()}
    return to_bio(splits)


def is_token_source(source) -> bool:
    """Whether ``source`` holds token-classification data: CoNLL files, or ``tokens`` + ``ner_tags`` /
    ``text`` + ``entities`` columns in its train split (the ``task="auto"`` detection)."""
    from .data import BUNDLED_DIR, read_source

    if isinstance(source, str) and source.startswith("bundled:"):
        source = str(BUNDLED_DIR / source.removeprefix("bundled:"))
    path = Path(str(source)) if isinstance(source, str | Path) else None
    if path is not None and path.is_file():
        return is_conll(path)
    if path is not None and path.is_dir() and any(is_conll(p) for p in path.iterdir()):
        return True
    try:
        data = read_source(source)
    except DataError:
        return False
    columns = set(next(iter(data.values())).column_names if "train" not in data else data["train"].column_names)
    return None not in token_columns(list(columns)) or {"text", "entities"} <= columns


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
        out["train"], out["validation"] = parts["train"], mark_carved(parts["test"], validation_size)
    return DatasetDict(out)


CARVED = "carved from train"  # the description of a validation split no file held


def mark_carved(ds: Dataset, validation_size) -> Dataset:
    """Mark a validation split that was cut out of train (the run-start summary says so)."""
    ds.info.description = f"{CARVED} (validation_size={validation_size})"
    return ds


def carved_from_train(ds: Dataset) -> bool:
    return (ds.info.description or "").startswith(CARVED)


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


# ---- model side: sub-word alignment, word-level predictions, tag-set helpers

SUBWORD_LABELS = ("first", "all")
IGNORE_INDEX = -100  # the label of a sub-token or special token that no loss or score reads
# Zero-shot (no labelled sentence): the share of tokens a description-initialised tagger puts inside entities,
# split evenly over the types. A prior, replaced by the labelled sentences' own shares whenever there are any;
# general-domain NER corpora sit near it (CoNLL-2003 train: 16.7% of tokens; CrossNER politics train: 34.9%).
ZERO_SHOT_ENTITY_SHARE = 0.15


def is_tagger(model) -> bool:
    """Whether ``model`` (or the model under its PEFT wrapper) tags tokens rather than classifying texts."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return type(base).__name__.endswith("ForTokenClassification")


# The abbreviations of the standard tag sets (CoNLL-2002/2003, OntoNotes 5, ACE, WikiANN), in words: an entity
# type's name is what a tagger's head starts from (``head_init="label_descriptions"``), and "PER" embeds as a
# sub-word, not as a person. CoNLL-2003 tagged PER/LOC/ORG/MISC, 8 sentences per type, full fine-tuning, the first
# 1,500 test sentences, seeds 0-2 (2-core Xeon, fp32): entity micro-F1 39.8 / 35.8 / 30.8 from the abbreviations,
# 43.6 / 48.6 / 50.4 from these words.
ENTITY_TYPE_WORDS = {
    "per": "person", "pers": "person", "loc": "location", "org": "organization", "misc": "miscellaneous",
    "gpe": "country, city or state", "norp": "nationality, religious or political group",
    "fac": "facility, building, airport or bridge", "evt": "event", "prod": "product", "art": "work of art",
}  # fmt: skip


def readable_type(name: str) -> str:
    """An entity type's name as words: a standard abbreviation spelled out (:data:`ENTITY_TYPE_WORDS`), else
    ``_``/``-`` and camelCase split, lower case (``WORK_OF_ART`` -> ``work of art``, ``politicalParty`` ->
    ``political party``)."""
    words = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", name).replace("_", " ").replace("-", " ").split()
    if not words:
        return name
    spelled = " ".join(words).lower()
    return ENTITY_TYPE_WORDS.get(spelled, spelled)


def word_piece_ids(tokenizer) -> list[int]:
    """The vocabulary ids of the tokens that continue a word, for a WordPiece tokenizer (``##ing``); none for
    other tokenizers, whose pieces do not say it as plainly (a SentencePiece token without ``▁`` may be a
    punctuation mark that is a word of its own)."""
    model = getattr(getattr(tokenizer, "backend_tokenizer", None), "model", None)
    prefix = getattr(model, "continuing_subword_prefix", None) if type(model).__name__ == "WordPiece" else None
    if not prefix:
        return []
    return sorted(i for token, i in tokenizer.get_vocab().items() if token.startswith(prefix))


def types_of_tags(names: Sequence[str]) -> list[str] | None:
    """The entity types of a tag set in :func:`tag_names` order, or ``None`` when ``names`` is not one."""
    names = list(names)
    if len(names) < 3 or names[0] != "O" or len(names) % 2 != 1:
        return None
    types = [name[2:] for name in names[1::2]]
    return types if tag_names(types) == names else None


def word_tokenizer(path: str):
    """The tokenizer at ``path``, ready for pre-split words: byte-level BPE tokenizers (RoBERTa, GPT-2) need
    ``add_prefix_space=True`` for ``is_split_into_words``, and only a fast tokenizer gives ``word_ids``."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    try:
        tokenizer([["a", "b"]], is_split_into_words=True)
    except (ValueError, AssertionError, TypeError):
        tokenizer = AutoTokenizer.from_pretrained(path, add_prefix_space=True)
    if not getattr(tokenizer, "is_fast", False):
        raise DataError(
            f"The tokenizer of {path!r} is not a fast (Rust) tokenizer, so sub-tokens cannot be aligned to words. "
            "Use a model that ships tokenizer.json."
        )
    return tokenizer


def fill_empty_words(tokenizer, sentences: Sequence[Sequence[str]]) -> list[list[str]]:
    """``sentences`` with each word that ``tokenizer`` turns into no sub-token (a soft hyphen, a zero-width space:
    the normaliser strips them) replaced by its unknown token. Every word then has a first sub-token, so the i-th
    labelled position is the i-th word; else the tags and predictions of every later word slide by one."""
    sentences = [list(s) for s in sentences]
    unique = list({w for s in sentences for w in s})
    if not unique:
        return sentences
    empty = {w for w, ids in zip(unique, tokenizer(unique, add_special_tokens=False)["input_ids"]) if not ids}
    if not empty:
        return sentences
    filler = tokenizer.unk_token or "-"
    return [[filler if w in empty else w for w in s] for s in sentences]


def aligned_labels(word_ids: Sequence[int | None], tags: Sequence[int], names: Sequence[str], subword_labels: str):
    """One label per sub-token: the word's tag on its first sub-token; on the others -100 (``"first"``) or the
    word's tag with ``B-`` turned into ``I-`` (``"all"``: the entity continues); -100 on special tokens."""
    out, previous = [], None
    for word in word_ids:
        if word is None:
            out.append(IGNORE_INDEX)
        elif word != previous:
            out.append(tags[word])
        elif subword_labels == "all":
            name = names[tags[word]]
            out.append(names.index("I-" + name[2:]) if name.startswith("B-") else tags[word])
        else:
            out.append(IGNORE_INDEX)
        previous = word
    return out


def tokenize_tokens(dataset: Dataset, tokenizer, max_length: int, subword_labels: str = "first") -> Dataset:
    """``tokens`` + ``ner_tags`` sentences as model inputs with aligned ``labels`` (:func:`aligned_labels`);
    ``ner_tags`` stays (the Trainer drops it: ``forward`` does not take it) for word-level scores of every word,
    also those that truncation cut off."""
    from .data import warn_if_truncated

    warn_if_truncated(tokenizer, dataset["tokens"], max_length, words=True)
    names = dataset.features["ner_tags"].feature.names

    def encode(batch):
        words = fill_empty_words(tokenizer, batch["tokens"])
        encoded = tokenizer(words, is_split_into_words=True, truncation=True, max_length=max_length)
        encoded["labels"] = [aligned_labels(encoded.word_ids(i), tags, names, subword_labels)
                             for i, tags in enumerate(batch["ner_tags"])]  # fmt: skip
        return encoded

    keep = [c for c in dataset.column_names if c != "ner_tags"]
    return dataset.map(encode, batched=True, remove_columns=keep, desc="Tokenizing and aligning tags")


def continue_word_runs(scores: np.ndarray) -> np.ndarray:
    """:func:`hf_transfer.modeling.continue_runs` on one sentence's word scores ``(words, tags)`` (logits or
    probabilities, tags in :func:`tag_names` order): where a word's argmax is ``B-x`` right after an ``x`` word,
    its ``B-x`` and ``I-x`` scores are swapped, so it continues that entity."""
    scores = np.array(scores, copy=True)
    if not len(scores):
        return scores
    tags = scores.argmax(-1)
    kind = (tags + 1) // 2
    previous = np.concatenate([[0], kind[:-1]])
    for i in np.flatnonzero((tags % 2 == 1) & (kind == previous) & (kind > 0)):
        b = tags[i]
        scores[i, [b, b + 1]] = scores[i, [b + 1, b]]
    return scores


def word_predictions(
    logits: np.ndarray, label_ids: np.ndarray, lengths: Sequence[int] | None = None, *, runs: bool = True
) -> list:
    """Tag ids per word from sub-token ``logits`` ``(rows, seq, tags)``: the argmax at each labelled position
    (first sub-tokens, or words of cached features), read with :func:`continue_word_runs` unless ``runs=False``,
    padded with ``O`` (0) to ``lengths`` (the words that truncation cut off count as predicted outside any
    entity)."""
    out = []
    for i in range(len(label_ids)):
        positions = np.flatnonzero(np.asarray(label_ids[i]) != IGNORE_INDEX)
        words = np.asarray(logits[i])[positions]
        predicted = (continue_word_runs(words) if runs else words).argmax(-1).tolist()
        if lengths is not None:
            predicted = predicted[: lengths[i]] + [0] * max(0, lengths[i] - len(predicted))
        out.append(predicted)
    return out


def tag_scores(predicted: Sequence[Sequence[int]], truth: Sequence[Sequence[int]], names: Sequence[str]) -> dict:
    """:func:`entity_scores` of tag ids, plus word-level ``accuracy``."""
    spell = [[names[t] for t in tags] for tags in predicted], [[names[t] for t in tags] for tags in truth]
    scores = entity_scores(*spell)
    words = sum(len(t) for t in truth)
    scores["accuracy"] = sum(p == t for ps, ts in zip(predicted, truth) for p, t in zip(ps, ts)) / max(words, 1)
    return scores


def type_rates(dataset: Dataset) -> list[float]:
    """Each entity type's share of the words in ``dataset`` (``B-`` and ``I-`` tags), kept above 0; without
    sentences: :data:`ZERO_SHOT_ENTITY_SHARE` split evenly over the types."""
    types = type_names(dataset)
    if not len(dataset):
        return [ZERO_SHOT_ENTITY_SHARE / len(types)] * len(types)
    return word_type_rates(dataset["ner_tags"], len(types))


def word_type_rates(sentences: Sequence[Sequence[int]], num_types: int) -> list[float]:
    """Each type's share of the words of tag-id ``sentences`` (tags in :func:`tag_names` order), kept above 0."""
    tags = np.concatenate([np.asarray(t, dtype=np.int64) for t in sentences] or [np.zeros(0, np.int64)])
    counts = np.bincount((tags[tags > 0] - 1) // 2, minlength=num_types)
    return np.clip(counts / max(len(tags), 1), 1 / (len(tags) + 1), 1.0).tolist()
