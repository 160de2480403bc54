"""Integration: labelmap with a MiniLM source trained on real SST-2, carried to Amazon review sentences."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hf_transfer.config import DataArguments
from hf_transfer.finetune import FinetuneConfig, run_finetune
from hf_transfer.labelmap import LabelMapConfig, run_labelmap

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
AMAZON = DataArguments(dataset="bundled:sentiment_sentences_amazon", validation_size=0.5, max_eval_samples=200)
IDENTITY = {"negative": "negative", "positive": "positive"}


@pytest.fixture(scope="module")
def sst2_source(tmp_path_factory) -> str:
    """A MiniLM SST-2 classifier: head trained on cached features of the bundled 2,000 rows (seconds)."""
    out = tmp_path_factory.mktemp("source") / "sst2"
    config = FinetuneConfig(output_dir=str(out), method="head", learning_rate=1e-2, num_train_epochs=10,
                            per_device_train_batch_size=64, disable_tqdm=True)  # fmt: skip
    results = run_finetune(config, DataArguments(dataset="bundled:sst2", max_eval_samples=200))
    assert results["accuracy"] > 0.7
    return str(out)


def labelmap_config(source: str, out: Path, **overrides) -> LabelMapConfig:
    options = dict(output_dir=str(out), source_model=source, label_map=IDENTITY, threshold=0.7,
                   init_from_source=True, num_train_epochs=1, min_train_steps=0, max_pool_samples=200,
                   disable_tqdm=True)  # fmt: skip
    return LabelMapConfig(**{**options, **overrides})


def test_zero_shot_through_the_map_and_distillation(sst2_source, tmp_path):
    results = run_labelmap(labelmap_config(sst2_source, tmp_path / "out"), AMAZON)
    assert results["zero_shot_accuracy"] > 0.7  # an SST-2 classifier already transfers to product reviews
    assert results["rounds"][0]["pseudo_labelled"] > 50
    assert results["rounds"][0]["pseudo_label_accuracy"] > 0.75
    assert results["accuracy"] > 0.7
    assert json.loads((tmp_path / "out" / "label_map.json").read_text())["hard_map"] == IDENTITY


def test_learned_map_from_eight_labels_per_class(sst2_source, tmp_path):
    config = labelmap_config(sst2_source, tmp_path / "out", label_map=None, map_method="learned")
    results = run_labelmap(config, DataArguments(**{**AMAZON.__dict__, "n_per_class": 8}))
    assert results["map_method"] == "learned" and results["label_map"] == IDENTITY
    assert results["zero_shot_accuracy"] > 0.7


@pytest.mark.multiprocess
def test_two_process_pseudo_labelling_matches_one_process(sst2_source, tmp_path):
    single = run_labelmap(labelmap_config(sst2_source, tmp_path / "one"), AMAZON)
    accelerate = Path(sys.executable).with_name("accelerate")
    cmd = [
        str(accelerate), "launch", "--config_file", str(ROOT / "recipes" / "accelerate" / "cpu-2proc.yaml"),
        "--main_process_port", "29537", "-m", "hf_transfer.cli", "labelmap",
        "--source_model", sst2_source, "--dataset", AMAZON.dataset, "--validation_size", "0.5",
        "--max_eval_samples", "200", "--max_pool_samples", "200", "--label_map", json.dumps(IDENTITY),
        "--threshold", "0.7", "--init_from_source", "true", "--num_train_epochs", "1", "--min_train_steps", "0",
        "--disable_tqdm", "true",
        "--output_dir", str(tmp_path / "two"),
    ]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    two = json.loads((tmp_path / "two" / "results.json").read_text())
    assert two["num_processes"] == 2
    # the pool was split across the two ranks and merged back: same rows, same pseudo-labels
    assert two["n_pool"] == single["n_pool"] == 200
    assert two["rounds"][0]["pseudo_labelled"] == single["rounds"][0]["pseudo_labelled"]
    assert two["zero_shot_accuracy"] == pytest.approx(single["zero_shot_accuracy"], abs=0.011)
