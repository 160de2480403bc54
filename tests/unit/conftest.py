"""Fixtures for unit tests: a tiny random BERT + tokenizer on disk, and small target-data files."""

from __future__ import annotations

import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402
from transformers import AutoModel, AutoTokenizer, BertConfig, BertModel, BertTokenizerFast  # noqa: E402

WORDS = "good great fine fun loved bad awful terrible boring hated movie film plot actors the a was it this and very"
WORDS = WORDS.split()
POSITIVE = [
    "good movie",
    "great film",
    "fun plot",
    "loved it",
    "very good",
    "a great movie",
    "fine actors",
    "good fun",
]
NEGATIVE = [
    "bad movie",
    "awful film",
    "boring plot",
    "hated it",
    "very bad",
    "a terrible movie",
    "bad actors",
    "awful",
]


def make_tiny_encoder(folder, *, sentence_transformers: bool = False) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tokenizer = BertTokenizerFast(vocab=str(folder / "vocab.txt"), do_lower_case=True)
    assert len(tokenizer) == len(vocab), "the tiny tokenizer must know its words"
    tokenizer.save_pretrained(folder)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    with torch.random.fork_rng():  # fixed weights, and the caller's global RNG left as it was
        torch.manual_seed(0)
        BertModel(config).save_pretrained(folder)
    if sentence_transformers:
        modules = [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
        ]
        (folder / "modules.json").write_text(json.dumps(modules))
        (folder / "1_Pooling").mkdir()
        (folder / "1_Pooling" / "config.json").write_text(
            json.dumps({"pooling_mode_cls_token": True, "pooling_mode_mean_tokens": False})
        )
    return str(folder)


@pytest.fixture(scope="session")
def tiny_encoder(tmp_path_factory) -> str:
    return make_tiny_encoder(tmp_path_factory.mktemp("tiny") / "bert")


@pytest.fixture(scope="session")
def tiny_st_encoder(tmp_path_factory) -> str:
    return make_tiny_encoder(tmp_path_factory.mktemp("tiny") / "st", sentence_transformers=True)


def write_jsonl(path, rows) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


@pytest.fixture
def sentiment_rows():
    rows = [{"text": t, "label": "positive"} for t in POSITIVE] + [{"text": t, "label": "negative"} for t in NEGATIVE]
    return rows


@pytest.fixture
def sentiment_dir(tmp_path, sentiment_rows):
    """A folder with train.jsonl (16 rows) and validation.jsonl (8 rows)."""
    write_jsonl(tmp_path / "train.jsonl", sentiment_rows)
    write_jsonl(tmp_path / "validation.jsonl", sentiment_rows[::2])
    return tmp_path


@pytest.fixture
def no_weights(monkeypatch):
    """Make any attempt to load weights or a tokenizer fail loudly, to prove validation came first."""

    def refuse(*args, **kwargs):
        raise AssertionError("weights or tokenizer were loaded before the input was validated")

    monkeypatch.setattr(AutoModel, "from_pretrained", refuse)
    monkeypatch.setattr(AutoTokenizer, "from_pretrained", refuse)
