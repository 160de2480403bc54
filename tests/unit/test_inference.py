"""The shared batched inference loop (``hf_transfer.inference.run_batched``) and its two users."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hf_transfer.finetune import embed_texts, prepare
from hf_transfer.inference import run_batched
from hf_transfer.labelmap.predict import predict_proba

LABELS = ["positive", "negative", "neutral"]
# In the tiny vocabulary, so the description-initialised head tells the labels apart (not uniform).
DESCRIPTIONS = {"positive": "good great fun", "negative": "bad awful boring", "neutral": "the film was a movie"}
# Mixed lengths, given out of length order, with ties (stable order) and one text past max_length.
TEXTS = [
    "the terrible film and the plain story was very very boring",
    "good",
    "a very good movie",
    "",
    "plot",
    "it was a great fun film and the actors loved it",
    "bad movie",
    "the a " * 40,
]


@pytest.fixture(scope="module")
def classifier(tiny_encoder):
    return prepare(tiny_encoder, LABELS, method="head", label_descriptions=DESCRIPTIONS)


def embed(model, batch):
    return model.embed(**batch)


def token_stats(model, batch):
    """Exact integer features of each row (real-token count, id sum), so order mistakes cannot hide."""
    mask = batch["attention_mask"]
    return torch.stack([mask.sum(1), (batch["input_ids"] * mask).sum(1)], dim=1)


class Spy:
    """A tokenizer that records the texts of each batch it is asked for."""

    def __init__(self, tokenizer):
        self.tokenizer, self.batches = tokenizer, []

    def __call__(self, texts, **kwargs):
        self.batches.append(list(texts))
        return self.tokenizer(texts, **kwargs)


def test_batches_are_length_sorted_and_rows_come_back_in_input_order(classifier):
    model, tokenizer = classifier
    spy = Spy(tokenizer)
    out = run_batched(model, spy, TEXTS, token_stats, dim=2, batch_size=3, max_length=16)
    assert [len(b) for b in spy.batches] == [3, 3, 2]  # 8 texts, batch size that does not divide them
    assert [t for b in spy.batches for t in b] == sorted(TEXTS, key=len)
    one_by_one = np.concatenate([run_batched(model, tokenizer, [t], token_stats, dim=2, max_length=16) for t in TEXTS])
    assert out.dtype == np.float32 and np.array_equal(out, one_by_one)
    assert out[TEXTS.index(""), 0] == 2 and out[-1, 0] == 16  # [CLS] [SEP] only; truncated to max_length


def test_real_forward_matches_one_text_at_a_time(classifier):
    model, tokenizer = classifier
    together = run_batched(model, tokenizer, TEXTS, embed, dim=32, batch_size=3, max_length=16)
    one_by_one = np.concatenate([run_batched(model, tokenizer, [t], embed, dim=32, max_length=16) for t in TEXTS])
    assert np.allclose(together, one_by_one, atol=1e-5)  # padding changes nothing beyond float noise


def test_embed_texts_and_predict_proba_keep_their_types_and_use_the_shared_loop(classifier):
    model, tokenizer = classifier
    emb = embed_texts(model, tokenizer, TEXTS, batch_size=3, max_length=16)
    assert isinstance(emb, torch.Tensor) and emb.dtype == torch.float32 and emb.device.type == "cpu"
    assert emb.shape == (len(TEXTS), 32)
    assert np.array_equal(
        emb.numpy(), run_batched(model, tokenizer, TEXTS, embed, dim=32, batch_size=3, max_length=16)
    )
    probs = predict_proba(model, tokenizer, TEXTS, batch_size=3, max_length=16)
    assert isinstance(probs, np.ndarray) and probs.dtype == np.float32 and probs.shape == (len(TEXTS), len(LABELS))
    assert np.allclose(probs.sum(1), 1, atol=1e-6) and probs.std(0).min() > 1e-3  # rows differ: a real test
    # The probabilities are those of the embeddings, through the head, row for row.
    expected = model.classifier(emb).softmax(-1).detach().numpy()
    assert np.allclose(probs, expected, atol=1e-6)


def test_runs_in_eval_and_inference_mode_and_restores_each_modules_mode(classifier):
    model, tokenizer = classifier
    seen = []

    def forward(m, batch):
        seen.append((m.training, m.encoder.training, torch.is_inference_mode_enabled()))
        return embed(m, batch)

    model.train()
    model.encoder.eval()  # mixed modes, e.g. a frozen backbone kept in eval: restored module by module
    try:
        run_batched(model, tokenizer, TEXTS, forward, dim=32, batch_size=4, max_length=16)
        assert seen == [(False, False, True)] * 2
        assert model.training and model.classifier.training and not model.encoder.training
        assert not any(m.training for m in model.encoder.modules())
    finally:
        model.eval()


def test_a_model_in_train_mode_gives_eval_results_and_stays_in_train_mode(classifier):
    model, tokenizer = classifier
    model.eval()
    eval_probs = predict_proba(model, tokenizer, TEXTS, batch_size=3, max_length=16)
    eval_emb = embed_texts(model, tokenizer, TEXTS, batch_size=3, max_length=16)
    # every module, the frozen encoder too (model.train() keeps it in eval): dropout would make these differ if
    # the loop did not switch to eval
    torch.nn.Module.train(model)
    try:
        assert np.array_equal(predict_proba(model, tokenizer, TEXTS, batch_size=3, max_length=16), eval_probs)
        assert model.training and all(m.training for m in model.modules())
        assert torch.equal(embed_texts(model, tokenizer, TEXTS, batch_size=3, max_length=16), eval_emb)
        assert model.training and all(m.training for m in model.modules())
    finally:
        model.eval()


def test_mode_is_restored_when_forward_raises(classifier):
    model, tokenizer = classifier

    def broken(m, batch):
        raise RuntimeError("boom")

    model.train()
    try:
        with pytest.raises(RuntimeError, match="boom"):
            run_batched(model, tokenizer, TEXTS, broken, dim=32)
        assert model.training
    finally:
        model.eval()


def test_bf16_autocast_on_cpu_stays_close_to_fp32(classifier):
    model, tokenizer = classifier
    autocast_seen = []

    def forward(m, batch):
        autocast_seen.append(torch.is_autocast_enabled("cpu"))
        return m(**batch).logits.float().softmax(-1)

    fp32 = predict_proba(model, tokenizer, TEXTS, batch_size=3, max_length=16)
    bf16 = predict_proba(model, tokenizer, TEXTS, batch_size=3, max_length=16, bf16=True)
    assert bf16.dtype == np.float32 and bf16.shape == fp32.shape
    assert not np.array_equal(bf16, fp32)  # autocast really ran the matmuls in bfloat16 ...
    assert np.allclose(bf16, fp32, atol=0.1)  # ... and stayed close (0.03 here; loose for other CPUs)
    run_batched(model, tokenizer, TEXTS, forward, dim=len(LABELS), batch_size=4, max_length=16, bf16=True)
    # bf16=False turns autocast off even inside a caller's autocast region, so results depend on the arguments only.
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        inside = run_batched(model, tokenizer, TEXTS, forward, dim=len(LABELS), batch_size=4, max_length=16)
    assert autocast_seen == [True, True, False, False]
    assert np.array_equal(
        inside, run_batched(model, tokenizer, TEXTS, forward, dim=len(LABELS), batch_size=4, max_length=16)
    )


def test_empty_input_gives_shape_zero_by_dim_without_running_the_model(classifier):
    model, tokenizer = classifier

    def refuse(m, batch):
        raise AssertionError("the model ran on no texts")

    out = run_batched(model, tokenizer, [], refuse, dim=7)
    assert out.shape == (0, 7) and out.dtype == np.float32
    emb = embed_texts(model, tokenizer, [])
    assert emb.shape == (0, 32) and emb.dtype == torch.float32
    probs = predict_proba(model, tokenizer, [])
    assert probs.shape == (0, len(LABELS)) and probs.dtype == np.float32


def test_bad_batch_size_or_forward_shape_is_refused(classifier):
    model, tokenizer = classifier
    with pytest.raises(ValueError, match="batch_size"):
        run_batched(model, tokenizer, TEXTS, embed, dim=32, batch_size=0)
    with pytest.raises(ValueError, match="forward returned shape"):
        run_batched(model, tokenizer, TEXTS, embed, dim=16, max_length=16)
    with pytest.raises(ValueError, match="forward returned shape"):  # a (1, dim) row must not broadcast
        run_batched(model, tokenizer, TEXTS, lambda m, b: embed(m, b)[:1], dim=32, batch_size=3, max_length=16)
