"""Rebuild the small real-data slices shipped in ``hf_transfer/bundled/`` from ``../shared/data``.

Run by hand (``python scripts/make_bundled_data.py``); the output is committed so that the demo and tests
work on a machine without ``../shared``. Sampling is deterministic: within each label, rows are ranked by
``sha256(text + "\\t" + label)`` and the first rows, in proportion to the label's share, are kept, in
their original order.
"""

from __future__ import annotations

import hashlib
import json
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
}


def _key(row: dict) -> str:
    return hashlib.sha256(f"{row['text']}\t{row['label']}".encode()).hexdigest()


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


def main() -> None:
    for name, splits in SLICES.items():
        src, dst = SHARED / name, OUT / name
        dst.mkdir(parents=True, exist_ok=True)
        lines = [f"# Bundled slice of `{name}`", ""]
        lines.append(f"Taken from the workplace copy `shared/data/{name}/` (its provenance follows below) by")
        lines.append("`scripts/make_bundled_data.py`: per label, the rows with the smallest")
        lines.append('`sha256(text + "\\t" + label)` in proportion to the label\'s share; original order kept.')
        lines += ["", "| split | rows kept | of | per label |", "|---|---:|---:|---|"]
        for split, n in splits.items():
            rows = [json.loads(line) for line in (src / f"{split}.jsonl").open(encoding="utf-8")]
            kept = rows if n is None or n >= len(rows) else stratified_slice(rows, n)
            with (dst / f"{split}.jsonl").open("w", encoding="utf-8") as f:
                for row in kept:
                    f.write(json.dumps({"text": row["text"], "label": row["label"]}, ensure_ascii=False) + "\n")
            counts = ", ".join(f"{k}: {v}" for k, v in sorted(Counter(r["label"] for r in kept).items()))
            lines.append(f"| {split} | {len(kept)} | {len(rows)} | {counts} |")
        lines += ["", "---", "", "## Upstream provenance (copied from the source SOURCE.md)", ""]
        upstream = (src / "SOURCE.md").read_text(encoding="utf-8")
        lines.append(upstream)
        (dst / "SOURCE.md").write_text("\n".join(lines), encoding="utf-8")
        print(f"{name}: wrote {dst}")


if __name__ == "__main__":
    main()
