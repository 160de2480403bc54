"""Shared fixtures: one tiny random BERT + tokenizer on disk, and small target-data files in every format.

Nothing here downloads: the Hub is switched off before any Hugging Face library is imported, the encoder
is built from a config with a fixed seed, and the data is written by the fixtures themselves.
"""

from __future__ import annotations

import json
import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
# bf16 "auto" resolves to fp32 on every CPU, so exact comparisons mean the same everywhere; the tests in
# test_precision.py turn the rule on themselves.
os.environ["HF_TRANSFER_BF16"] = "0"
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("WANDB_DISABLED", "true")

import pytest  # noqa: E402

# The 3-label task (target_dir, target_files): adjective x noun, 20 rows per label.
ADJECTIVES = {
    "positive": ["good", "great", "fine", "lovely"],
    "negative": ["bad", "awful", "terrible", "boring"],
    "neutral": ["okay", "average", "plain", "ordinary"],
}
NOUNS = ["movie", "film", "plot", "story", "cast"]
LABELS = sorted(ADJECTIVES)  # ['negative', 'neutral', 'positive']
# The multi-label task: an adjective x noun text is labelled with its tone and its topic (0, 1 or 2 labels).
TONE_LABEL = {"positive": "praise", "negative": "criticism", "neutral": None}
NOUN_LABEL = {"movie": "film", "film": "film", "plot": "story", "story": None, "cast": None}


def multi_label_rows() -> list[dict]:
    """60 rows, 8 of them without any label (neutral tone, no topic)."""
    rows = []
    for tone, adjectives in ADJECTIVES.items():
        for i, adjective in enumerate(adjectives):
            for noun in NOUNS:
                labels = [x for x in (TONE_LABEL[tone], NOUN_LABEL[noun]) if x]
                rows.append({"text": f"{'the' if i % 2 else 'a very'} {adjective} {noun}", "labels": labels})
    return rows


# The 2-label task (sentiment_dir): short reviews, 8 per label.
POSITIVE = ["good movie", "great film", "fun plot", "loved it", "very good", "a great movie", "fine actors",
            "good fun"]  # fmt: skip
NEGATIVE = ["bad movie", "awful film", "boring plot", "hated it", "very bad", "a terrible movie", "bad actors",
            "awful"]  # fmt: skip
EXTRA_WORDS = "the a was it this very and not really so negative neutral positive".split()  # + label names
# One vocabulary for every fixture: each text of both tasks tokenizes without [UNK] (checked when it is built).
WORDS = sorted(
    {w for ws in ADJECTIVES.values() for w in ws} | set(NOUNS) | set(EXTRA_WORDS)
    | {w for text in POSITIVE + NEGATIVE for w in text.split()}
)  # fmt: skip
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]

HIDDEN = 32
LAYERS = 2


def make_rows() -> list[dict]:
    """20 rows per label (4 adjectives x 5 nouns), interleaved so every slice is balanced."""
    rows = []
    for i, noun in enumerate(NOUNS):
        for j in range(4):
            for label in LABELS:
                adj = ADJECTIVES[label][j]
                prefix = "the" if (i + j) % 2 else "a very"
                rows.append({"text": f"{prefix} {adj} {noun}", "label": label})
    return rows


def split_rows(rows: list[dict]) -> dict[str, list[dict]]:
    """12 / 4 / 4 rows per label for train / validation / test."""
    per_label: dict[str, list[dict]] = {}
    for row in rows:
        per_label.setdefault(row["label"], []).append(row)
    splits: dict[str, list[dict]] = {"train": [], "validation": [], "test": []}
    for label_rows in per_label.values():
        splits["train"] += label_rows[:12]
        splits["validation"] += label_rows[12:16]
        splits["test"] += label_rows[16:20]
    return splits


def write_rows(path, rows: list[dict], fmt: str | None = None) -> str:
    """Write ``rows`` as jsonl, csv, tsv or parquet (from the suffix unless ``fmt`` is given)."""
    fmt = fmt or path.suffix.lstrip(".")
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    elif fmt in ("csv", "tsv"):
        import csv

        with open(path, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]), delimiter="," if fmt == "csv" else "\t")
            writer.writeheader()
            writer.writerows(rows)
    elif fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), str(path))
    else:
        raise ValueError(fmt)
    return str(path)


def build_tiny_encoder(folder, *, seed: int = 0) -> str:
    """A random 2-layer, 32-wide BERT and its WordPiece tokenizer over ``VOCAB``, saved in ``folder``.

    The weights depend on ``seed`` only: they are drawn in a forked RNG, so the caller's global RNG is left as
    it was (and a test run's order cannot change them)."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    # transformers 5 takes the vocabulary as ``vocab=`` (a ``vocab_file=`` keyword is silently ignored and
    # leaves a 5-token tokenizer that maps every word to [UNK]).
    tokenizer = BertTokenizerFast(vocab=str(folder / "vocab.txt"), do_lower_case=True)
    assert len(tokenizer) == len(VOCAB), "the tiny tokenizer must know its words"
    texts = [row["text"] for row in make_rows()] + POSITIVE + NEGATIVE
    assert all(tokenizer.unk_token_id not in ids for ids in tokenizer(texts)["input_ids"]), "a fixture text has [UNK]"
    tokenizer.model_max_length = 64
    tokenizer.save_pretrained(folder)
    config = BertConfig(
        vocab_size=len(VOCAB),
        hidden_size=HIDDEN,
        num_hidden_layers=LAYERS,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        BertModel(config).eval().save_pretrained(folder)
    return str(folder)


def scores(predictions, gold, num_labels: int) -> dict[str, float]:
    """Accuracy and macro F1 (every class counts; one never predicted nor seen scores 0), computed here."""
    import numpy as np

    predictions, gold = np.asarray(predictions), np.asarray(gold)
    f1 = []
    for k in range(num_labels):
        tp = int(((predictions == k) & (gold == k)).sum())
        fp_plus_fn = int(((predictions == k) != (gold == k)).sum())
        f1.append(2 * tp / (2 * tp + fp_plus_fn) if tp else 0.0)
    return {"accuracy": float((predictions == gold).mean()), "f1_macro": sum(f1) / num_labels}


def scores_of(model_dir, dataset) -> dict[str, float]:
    """``scores`` of a saved model's predictions on a loaded split, from its texts."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    with torch.no_grad():
        logits = model(**tokenizer(list(dataset["text"]), padding=True, return_tensors="pt")).logits
    return scores(logits.argmax(-1).numpy(), dataset["label"], model.config.num_labels)


def write_sentence_transformers_files(folder, *, mode: str = "cls", normalize: bool = True) -> None:
    """The ``modules.json`` + ``1_Pooling/config.json`` a sentence-transformers checkpoint carries."""
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    ]
    if normalize:
        modules.append(
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}
        )
    (folder / "modules.json").write_text(json.dumps(modules))
    (folder / "1_Pooling").mkdir(exist_ok=True)
    (folder / "1_Pooling" / "config.json").write_text(
        json.dumps(
            {
                "word_embedding_dimension": HIDDEN,
                "pooling_mode_cls_token": mode == "cls",
                "pooling_mode_mean_tokens": mode == "mean",
                "pooling_mode_max_tokens": mode == "max",
            }
        )
    )


@pytest.fixture(scope="module")
def single_thread():
    """One torch thread for a module's tests: tiny models gain nothing from more, and on a shared 2-core machine
    a second busy process makes multi-threaded kernels spin (3-4x slower). Restored afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> str:
    """The tiny random BERT (``build_tiny_encoder``), saved with ``save_pretrained``."""
    return build_tiny_encoder(tmp_path_factory.mktemp("tiny_bert") / "model")


@pytest.fixture(scope="session")
def tiny_encoder(tiny_model_dir) -> str:
    """Another name for ``tiny_model_dir``: the same folder, so the suite builds one encoder."""
    return tiny_model_dir


@pytest.fixture(scope="session")
def tiny_st_model_dir(tmp_path_factory, tiny_model_dir) -> str:
    """The same weights as a sentence-transformers checkpoint declaring CLS pooling + Normalize."""
    import shutil
    from pathlib import Path

    folder = tmp_path_factory.mktemp("tiny_st") / "model"
    shutil.copytree(tiny_model_dir, folder)
    write_sentence_transformers_files(Path(folder), mode="cls", normalize=True)
    return str(folder)


@pytest.fixture(scope="session")
def tiny_st_encoder(tiny_st_model_dir) -> str:
    """Another name for ``tiny_st_model_dir``."""
    return tiny_st_model_dir


@pytest.fixture(scope="session")
def target_rows() -> dict[str, list[dict]]:
    return split_rows(make_rows())


@pytest.fixture(scope="session")
def target_dir(tmp_path_factory, target_rows):
    """A folder with train.jsonl (36 rows), validation.jsonl (12) and test.jsonl (12), 3 balanced labels."""
    folder = tmp_path_factory.mktemp("target")
    for split, rows in target_rows.items():
        write_rows(folder / f"{split}.jsonl", rows)
    return folder


@pytest.fixture(scope="session")
def target_files(tmp_path_factory, target_rows):
    """The same splits in every readable format: ``{fmt: {split: path}}``."""
    folder = tmp_path_factory.mktemp("formats")
    return {
        fmt: {split: write_rows(folder / fmt / f"{split}.{fmt}", rows) for split, rows in target_rows.items()}
        for fmt in ("jsonl", "csv", "tsv", "parquet")
    }


@pytest.fixture
def sentiment_rows() -> list[dict]:
    return [{"text": t, "label": "positive"} for t in POSITIVE] + [{"text": t, "label": "negative"} for t in NEGATIVE]


@pytest.fixture
def sentiment_dir(tmp_path, sentiment_rows):
    """A folder with train.jsonl (16 rows) and validation.jsonl (8: every other row), 2 balanced labels."""
    write_rows(tmp_path / "train.jsonl", sentiment_rows)
    write_rows(tmp_path / "validation.jsonl", sentiment_rows[::2])
    return tmp_path
