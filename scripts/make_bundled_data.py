"""Rebuild the small real-data slices shipped in ``hf_transfer/bundled/`` from ``../shared/data``.

Run by hand (``python scripts/make_bundled_data.py``); the output is committed so that the demo and tests
work on a machine without ``../shared``. Sampling is deterministic: within each label, rows are ranked by
``sha256(text + "\\t" + label)`` and the first rows, in proportion to the label's share, are kept, in
their original order.

``goemotions_ekman`` is derived, not sliced: the GoEmotions train rows whose labels all fall in one Ekman group
(``ekman_mapping.json``), labelled with that group, and sharing no text with the bundled ``goemotions`` slice: a
single-label source for the labelmap strategy whose target is that slice (recipes/goemotions/labelmap-ekman.yaml).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
OUT = ROOT / "hf_transfer" / "bundled"

# dataset -> {split: rows to keep (None = all)}
SLICES = {
    "sst2": {"train": 2000, "validation": None},
    "ag_news": {"train": 2000, "test": 2000},
    "sst5": {"train": 2000, "validation": None},
    "sentiment_sentences_amazon": {"train": None},
    "sentiment_sentences_imdb": {"train": None},
    "sms_spam": {"train": 2000},  # imbalanced (87% ham): checks defaults beyond balanced sentiment sets
    # multi-label ("labels" lists); validation first: train also draws on the validation rows it leaves
    "goemotions": {"validation": 500, "test": 1000, "train": 2000},
}
MIN_PER_LABEL = {"train": 64, "validation": 5, "test": 10}  # multi-label slices: rows per label at least
# Splits whose pool gains the rows another split's slice left out: GoEmotions train has 60 `grief` rows, so 64
# per label (recipes/goemotions/*-64shot.yaml) needs validation rows too; the test split stays untouched.
TOPPED_UP = {"goemotions": {"train": "validation"}}
EKMAN_SPLITS = {"validation": 500, "train": 2000}  # goemotions_ekman, drawn in this order from one pool


def _label_text(row: dict) -> str:
    return ",".join(row["labels"]) if "labels" in row else row["label"]


def _key(row: dict) -> str:
    return hashlib.sha256(f"{row['text']}\t{_label_text(row)}".encode()).hexdigest()


def stratified_slice(rows: list[dict], n: int) -> list[dict]:
    by_label: dict[str, list[int]] = defaultdict(list)
    for i, row in enumerate(rows):
        by_label[row["label"]].append(i)
    keep: set[int] = set()
    labels = sorted(by_label)
    quotas = {lab: n * len(by_label[lab]) // len(rows) for lab in labels}
    for lab in labels[: n - sum(quotas.values())]:  # hand out the rounding remainder
        quotas[lab] += 1
    for lab in labels:
        ranked = sorted(by_label[lab], key=lambda i: _key(rows[i]))
        keep.update(ranked[: quotas[lab]])
    return [row for i, row in enumerate(rows) if i in keep]


def multi_label_slice(rows: list[dict], n: int, min_per_label: int) -> list[dict]:
    """Rarest label first, the rows with the smallest hash until each label has ``min_per_label`` (or all it
    has), then the smallest-hash rows of the rest up to ``n``."""
    ranked = sorted(range(len(rows)), key=lambda i: _key(rows[i]))
    counts = Counter(label for row in rows for label in row["labels"])
    keep: set[int] = set()
    have: Counter = Counter()
    for label in sorted(counts, key=lambda lab: (counts[lab], lab)):
        for i in ranked:
            if have[label] >= min(min_per_label, counts[label]):
                break
            if label in rows[i]["labels"] and i not in keep:
                keep.add(i)
                have.update(rows[i]["labels"])
    for i in ranked:
        if len(keep) >= n:
            break
        keep.add(i)
    return [row for i, row in enumerate(rows) if i in keep]


def main() -> None:
    for name, splits in SLICES.items():
        src, dst = SHARED / name, OUT / name
        dst.mkdir(parents=True, exist_ok=True)
        lines = [f"# Bundled slice of `{name}`", ""]
        lines.append(f"Taken from the workplace copy `shared/data/{name}/` (its provenance follows below) by")
        lines.append("`scripts/make_bundled_data.py`: per label, the rows with the smallest")
        lines.append('`sha256(text + "\\t" + label)` in proportion to the label\'s share; original order kept.')
        if name == "goemotions":
            floors = ", ".join(f"{n} in {split}" for split, n in MIN_PER_LABEL.items())
            lines.append(
                f"Multi-label (`labels` lists) instead: rarest label first, the smallest-hash rows until each "
                f"label has {floors} (or all it has), then the smallest-hash rows up to the split's size."
            )
            shutil.copyfile(src / "ekman_mapping.json", dst / "ekman_mapping.json")
        lines += ["", "| split | rows kept | of | per label |", "|---|---:|---:|---|"]
        left: dict[str, list[dict]] = {}  # per split, the source rows its slice did not keep
        notes: list[str] = []
        slices: dict[str, list[dict]] = {}
        for split, n in splits.items():
            rows = [json.loads(line) for line in (src / f"{split}.jsonl").open(encoding="utf-8")]
            if split in TOPPED_UP.get(name, {}):
                other = TOPPED_UP[name][split]
                held = {row["text"] for kept_rows in slices.values() for row in kept_rows}
                rows = [row for row in rows + left[other] if row["text"] not in held]  # no text in two splits
                notes.append(f"The {split} split also draws on the {len(left[other])} {other} rows that the "
                             f"bundled {other} split does not hold (counted in {split}'s 'of').")  # fmt: skip
            multi = "labels" in rows[0]
            if n is None or n >= len(rows):
                kept = rows
            else:
                kept = multi_label_slice(rows, n, MIN_PER_LABEL[split]) if multi else stratified_slice(rows, n)
            slices[split] = kept
            kept_texts = {row["text"] for row in kept}
            left[split] = [row for row in rows if row["text"] not in kept_texts]
            key = "labels" if multi else "label"
            with (dst / f"{split}.jsonl").open("w", encoding="utf-8") as f:
                for row in kept:
                    f.write(json.dumps({"text": row["text"], key: row[key]}, ensure_ascii=False) + "\n")
            per_label = Counter(lab for r in kept for lab in (r["labels"] if multi else [r["label"]]))
            counts = ", ".join(f"{k}: {v}" for k, v in sorted(per_label.items()))
            lines.append(f"| {split} | {len(kept)} | {len(rows)} | {counts} |")
        lines += [
            "",
            *(notes and [*notes, ""]),
            "---",
            "",
            "## Upstream provenance (copied from the source SOURCE.md)",
            "",
        ]
        upstream = (src / "SOURCE.md").read_text(encoding="utf-8")
        lines.append(upstream)
        (dst / "SOURCE.md").write_text("\n".join(lines), encoding="utf-8")
        print(f"{name}: wrote {dst}")
    ekman_slice()
    for name, splits in TOKEN_SLICES.items():
        token_slice(name, splits)


# token classification (NER): dataset -> {split: sentences to keep (None = all)}
TOKEN_SLICES = {
    "conll2003": {"train": 2000, "validation": 500, "test": 1000},
    "crossner_politics": {"train": None, "validation": None, "test": None},
}


def token_slice(name: str, splits: dict) -> None:
    """NER slices: the sentences with the smallest ``sha256(tokens + tags)``, original order kept."""
    src, dst = SHARED / name, OUT / name
    dst.mkdir(parents=True, exist_ok=True)
    lines = [f"# Bundled slice of `{name}` (token classification, BIO tags)", ""]
    lines.append(f"Taken from the workplace copy `shared/data/{name}/` (its provenance follows below) by")
    lines.append("`scripts/make_bundled_data.py`: the sentences with the smallest")
    lines.append('`sha256(" ".join(tokens) + "\\t" + " ".join(ner_tags))`; original order kept.')
    lines += ["", "| split | sentences kept | of | entities per type |", "|---|---:|---:|---|"]
    for split, n in splits.items():
        rows = [json.loads(line) for line in (src / f"{split}.jsonl").open(encoding="utf-8")]
        kept = rows
        if n is not None and n < len(rows):
            key = lambda r: hashlib.sha256(f"{' '.join(r['tokens'])}\t{' '.join(r['ner_tags'])}".encode()).hexdigest()  # noqa: E731
            chosen = set(sorted(range(len(rows)), key=lambda i: key(rows[i]))[:n])
            kept = [row for i, row in enumerate(rows) if i in chosen]
        with (dst / f"{split}.jsonl").open("w", encoding="utf-8") as f:
            for row in kept:
                f.write(json.dumps({"tokens": row["tokens"], "ner_tags": row["ner_tags"]}, ensure_ascii=False) + "\n")
        per_type = Counter(tag[2:] for r in kept for tag in r["ner_tags"] if tag.startswith("B-"))
        counts = ", ".join(f"{k}: {v}" for k, v in sorted(per_type.items()))
        lines.append(f"| {split} | {len(kept)} | {len(rows)} | {counts} |")
    lines += ["", "---", "", "## Upstream provenance (copied from the source SOURCE.md)", ""]
    lines.append((src / "SOURCE.md").read_text(encoding="utf-8"))
    (dst / "SOURCE.md").write_text("\n".join(lines), encoding="utf-8")
    print(f"{name}: wrote {dst}")


def ekman_slice() -> None:
    """``goemotions_ekman``: single-label Ekman-group rows from GoEmotions train, disjoint from bundled goemotions."""
    src, dst, name = SHARED / "goemotions", OUT / "goemotions_ekman", "goemotions_ekman"
    groups = json.loads((src / "ekman_mapping.json").read_text(encoding="utf-8"))
    group_of = {label: group for group, labels in groups.items() for label in labels}
    taken = {json.loads(line)["text"] for path in sorted((OUT / "goemotions").glob("*.jsonl"))
             for line in path.open(encoding="utf-8")}  # fmt: skip
    rows = [json.loads(line) for line in (src / "train.jsonl").open(encoding="utf-8")]
    seen = Counter(row["text"] for row in rows)
    pool = []
    for row in rows:
        kinds = {group_of[label] for label in row["labels"]}
        if len(kinds) == 1 and seen[row["text"]] == 1 and row["text"] not in taken:
            pool.append({"text": row["text"], "label": kinds.pop()})
    dst.mkdir(parents=True, exist_ok=True)
    lines = [
        f"# Bundled `{name}`: GoEmotions train rows labelled with their Ekman group (single-label)",
        "",
        "Derived from the workplace copy `shared/data/goemotions/` (its provenance follows below) by",
        "`scripts/make_bundled_data.py`, as a single-label *source* task over a coarser grouping of the bundled",
        "`goemotions` target: a classifier trained here is mapped onto the 28 GoEmotions labels by the labelmap",
        "strategy through `goemotions/ekman_mapping.json` (`recipes/goemotions/labelmap-ekman.yaml`).",
        "",
        f"- Of the {len(rows)} rows of `train.jsonl`, kept: those whose labels all fall in one Ekman group of",
        "  `ekman_mapping.json` (6 emotions + neutral), labelled with that group; texts that occur more than once",
        "  dropped (some carry different labels); texts in any split of the bundled `goemotions` slice dropped, so",
        f"  the source never sees a target text. {len(pool)} rows remain.",
        '- From them, per group, the rows with the smallest `sha256(text + "\\t" + label)` in proportion to the',
        "  group's share: validation first, then train from the rest (no text in both); original order kept.",
        "",
        "| split | rows kept | of | per label |",
        "|---|---:|---:|---|",
    ]
    for split, n in EKMAN_SPLITS.items():
        kept = stratified_slice(pool, n)
        chosen = {row["text"] for row in kept}
        with (dst / f"{split}.jsonl").open("w", encoding="utf-8") as f:
            for row in kept:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
        counts = ", ".join(f"{k}: {v}" for k, v in sorted(Counter(r["label"] for r in kept).items()))
        lines.append(f"| {split} | {len(kept)} | {len(pool)} | {counts} |")
        pool = [row for row in pool if row["text"] not in chosen]
    lines += ["", "---", "", "## Upstream provenance (copied from the source SOURCE.md)", ""]
    lines.append((src / "SOURCE.md").read_text(encoding="utf-8"))
    (dst / "SOURCE.md").write_text("\n".join(lines), encoding="utf-8")
    print(f"{name}: wrote {dst}")


if __name__ == "__main__":
    main()
