"""Integration: the CLI under `accelerate launch` with 2 CPU processes (torchrun + gloo)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.multiprocess]

ROOT = Path(__file__).resolve().parents[2]


def test_cli_finetune_runs_data_parallel_on_two_cpu_processes(tmp_path):
    accelerate = Path(sys.executable).with_name("accelerate")
    out = tmp_path / "run"
    cmd = [
        str(accelerate), "launch",
        "--config_file", str(ROOT / "recipes" / "accelerate" / "cpu-2proc.yaml"),
        "--main_process_port", "29533",
        "-m", "hf_transfer.cli", "finetune",
        "--config", str(ROOT / "recipes" / "sst2" / "lora-8shot.yaml"),
        "--output_dir", str(out),
        "--num_train_epochs", "1",
        "--min_train_steps", "0",
        "--max_eval_samples", "64",
        "--disable_tqdm", "true",
    ]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert results["num_processes"] == 2  # accelerate really ran two ranks, not one silently
    assert results["n_eval"] == 64 and 0.0 <= results["accuracy"] <= 1.0
    assert proc.stdout.count('"strategy": "finetune"') == 1  # only the main process reports
