"""bf16 where the hardware computes it: one rule (``precision.bf16_is_fast``) behind the training arguments, every
inference loop and the feature cache; an explicit setting wins, and a run records what it used."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import LABELS

from hf_transfer import precision
from hf_transfer.config import DataArguments
from hf_transfer.finetune import FinetuneConfig, embed_dataset, prepare, run_finetune
from hf_transfer.inference import predict_proba
from hf_transfer.trainer import TransferTrainingArguments

TEXTS = ["a good movie", "the terrible film was boring", "plot", "it was a great fun film"]


@pytest.fixture
def fast_bf16(monkeypatch):
    """This process's hardware "computes bf16": the rule without the test suite's HF_TRANSFER_BF16=0."""
    monkeypatch.delenv(precision.ENV_OVERRIDE, raising=False)
    monkeypatch.setattr(precision, "bf16_is_fast", lambda device=None, **_: True)


@pytest.mark.parametrize(("value", "expected"), [("0", False), ("false", False), ("1", True), ("on", True)])
def test_the_environment_overrides_the_hardware_rule(monkeypatch, value, expected):
    monkeypatch.setenv(precision.ENV_OVERRIDE, value)
    assert precision.bf16_is_fast("cpu") is expected
    assert precision.resolve_bf16(None, "cpu") is expected
    assert precision.resolve_bf16(not expected, "cpu") is (not expected)  # an explicit setting wins


@pytest.fixture
def cpu(monkeypatch):
    """A CPU with or without bf16 instructions whose bf16 matmul measures ``speedup`` x fp32 (no override)."""
    monkeypatch.delenv(precision.ENV_OVERRIDE, raising=False)

    def make(*, instructions: bool, speedup: float | None):
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: instructions)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)

        def measured():
            assert speedup is not None, "a CPU without bf16 instructions needs no measurement"
            return speedup

        monkeypatch.setattr(precision, "cpu_bf16_speedup", measured)

    return make


def test_a_cpu_without_bf16_instructions_stays_fp32_unmeasured(cpu):
    cpu(instructions=False, speedup=None)
    assert precision.bf16_is_fast("cpu") is False
    assert precision.bf16_is_fast("cpu", memory_bound=True) is False


@pytest.mark.parametrize(("speedup", "compute"), [(0.53, False), (1.0, False), (2.5, True)])
def test_bf16_instructions_need_a_measured_matmul_speedup_for_compute(tmp_path, cpu, speedup, compute):
    """The Xeon of session 23 reports AVX512-BF16 yet multiplies bf16 at 0.53x fp32: training stays fp32 there,
    while generation (memory-bound) still gains from bf16 weights."""
    from hf_transfer.generate import GenerateConfig

    cpu(instructions=True, speedup=speedup)
    assert precision.bf16_is_fast("cpu") is compute
    assert precision.bf16_is_fast("cpu", memory_bound=True) is True
    assert TransferTrainingArguments(output_dir=str(tmp_path), use_cpu=True).bf16 is compute
    generate = GenerateConfig(target_labels=["a", "b"], output_dir=str(tmp_path / "gen"))
    assert generate.use_bf16 is True
    assert generate.scorer_bf16 is compute  # its consistency scorer is an encoder: the compute rule


def test_the_matmul_speedup_is_measured_once_per_process():
    precision.cpu_bf16_speedup.cache_clear()
    first = precision.cpu_bf16_speedup()
    assert first > 0 and precision.cpu_bf16_speedup() == first  # cached: one measurement per process
    assert precision.cpu_bf16_speedup.cache_info().misses == 1


def test_training_arguments_default_to_the_rule(tmp_path, fast_bf16):
    args = TransferTrainingArguments(output_dir=str(tmp_path), use_cpu=True)
    assert args.bf16 is True and args.mixed_precision == "bf16"
    assert TransferTrainingArguments(output_dir=str(tmp_path), use_cpu=True, bf16=False).bf16 is False
    assert TransferTrainingArguments(output_dir=str(tmp_path), use_cpu=True).to_dict()["bf16"] is True


def test_training_arguments_stay_fp32_where_bf16_does_not_pay(tmp_path):
    assert TransferTrainingArguments(output_dir=str(tmp_path), use_cpu=True).bf16 is False  # HF_TRANSFER_BF16=0


def test_inference_autocasts_by_default_where_bf16_pays(tiny_encoder, fast_bf16):
    model, tokenizer = prepare(tiny_encoder, LABELS, method="full")
    auto = predict_proba(model, tokenizer, TEXTS)
    fp32 = predict_proba(model, tokenizer, TEXTS, bf16=False)
    bf16 = predict_proba(model, tokenizer, TEXTS, bf16=True)
    np.testing.assert_array_equal(auto, bf16)
    assert not np.array_equal(auto, fp32) and np.allclose(auto, fp32, atol=0.05)


def test_cached_features_are_keyed_by_precision(tmp_path, tiny_encoder, fast_bf16):
    from datasets import Dataset

    model, tokenizer = prepare(tiny_encoder, LABELS, method="head")
    ds = Dataset.from_dict({"text": TEXTS, "label": [0, 1, 2, 0]})
    cache = tmp_path / "features"
    bf16 = embed_dataset(ds, model, tokenizer, cache_dir=str(cache))
    fp32 = embed_dataset(ds, model, tokenizer, cache_dir=str(cache), bf16=False)
    assert len(list(cache.glob("features-*.arrow"))) == 2  # neither run reads the other's features
    assert not np.array_equal(np.asarray(bf16["sentence_embedding"]), np.asarray(fp32["sentence_embedding"]))


def test_a_run_records_the_precision_it_trained_in(tmp_path, tiny_model_dir, target_dir, fast_bf16):
    config = FinetuneConfig(
        output_dir=str(tmp_path / "run"), model_name_or_path=tiny_model_dir, method="full", num_train_epochs=1,
        min_train_steps=0, per_device_train_batch_size=12, max_length=16, disable_tqdm=True, use_cpu=True,
        logging_strategy="no", seed=0,
    )  # fmt: skip
    results = run_finetune(config, DataArguments(dataset=str(target_dir)))
    assert results["bf16"] is True
    assert json.loads((tmp_path / "run" / "results.json").read_text())["bf16"] is True
    assert "| `bf16` | True |" in (tmp_path / "run" / "README.md").read_text()


def test_inside_a_run_none_follows_the_runs_choice(tiny_encoder, fast_bf16):
    model, tokenizer = prepare(tiny_encoder, LABELS, method="full")
    fp32 = predict_proba(model, tokenizer, TEXTS, bf16=False)
    with precision.run_precision(False):  # a run with --bf16 false on a bf16 machine
        assert precision.resolve_bf16(None) is False and precision.resolve_bf16(True) is True
        np.testing.assert_array_equal(predict_proba(model, tokenizer, TEXTS), fp32)
    assert precision.resolve_bf16(None) is True  # the rule again once the run ends
