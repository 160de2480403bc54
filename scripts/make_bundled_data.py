"""Rebuild the small real-data slices shipped in ``hf_transfer/bundled/`` from ``../shared/data``.

Run by hand (``python scripts/make_bundled_data.py``); the output is committed so that the demo and tests
work on a machine without ``../shared``. Sampling is deterministic: within each label, rows are ranked by
``sha256(text + "\\t" + label)`` and the first rows, in proportion to the label's share, are kept, in
their original order.
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
    "goemotions": {"train": 2000, "validation": 500, "test": 1000},  # multi-label: "labels" lists
}
MIN_PER_LABEL = {"train": 24, "validation": 5, "test": 10}  # multi-label slices: rows per label at least


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
        for split, n in splits.items():
            rows = [json.loads(line) for line in (src / f"{split}.jsonl").open(encoding="utf-8")]
            multi = "labels" in rows[0]
            if n is None or n >= len(rows):
                kept = rows
            else:
                kept = multi_label_slice(rows, n, MIN_PER_LABEL[split]) if multi else stratified_slice(rows, n)
            key = "labels" if multi else "label"
            with (dst / f"{split}.jsonl").open("w", encoding="utf-8") as f:
                for row in kept:
                    f.write(json.dumps({"text": row["text"], key: row[key]}, ensure_ascii=False) + "\n")
            per_label = Counter(lab for r in kept for lab in (r["labels"] if multi else [r["label"]]))
            counts = ", ".join(f"{k}: {v}" for k, v in sorted(per_label.items()))
            lines.append(f"| {split} | {len(kept)} | {len(rows)} | {counts} |")
        lines += ["", "---", "", "## Upstream provenance (copied from the source SOURCE.md)", ""]
        upstream = (src / "SOURCE.md").read_text(encoding="utf-8")
        lines.append(upstream)
        (dst / "SOURCE.md").write_text("\n".join(lines), encoding="utf-8")
        print(f"{name}: wrote {dst}")


if __name__ == "__main__":
    main()
