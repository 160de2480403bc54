"""Integration: the CLI under `accelerate launch` with 2 CPU processes (torchrun + gloo)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytestmark = [pytest.mark.slow, pytest.mark.multiprocess]

ROOT = Path(__file__).resolve().parents[2]
# 3 epochs: the first step is warm-up at learning rate 0, so 1 epoch would train nothing to compare.
ARGS = ["--config", str(ROOT / "recipes" / "sst2" / "lora-8shot.yaml"), "--num_train_epochs", "3",
        "--min_train_steps", "0", "--max_eval_samples", "64", "--disable_tqdm", "true"]  # fmt: skip


def eval_probs(model, tokenizer, texts) -> torch.Tensor:
    batch = tokenizer(texts, padding=True, truncation=True, max_length=128, return_tensors="pt")
    with torch.no_grad():
        return model.eval()(**batch).logits.softmax(-1)


def saved_probs(folder: Path, texts) -> torch.Tensor:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(folder)
    return eval_probs(model, AutoTokenizer.from_pretrained(folder), texts)


def test_cli_finetune_runs_data_parallel_on_two_cpu_processes(tmp_path, capsys):
    """Two ranks of 8 rows train like one process of 16 (the same global batch and steps): both ranks see world
    size 2, only the main one reports, and the model and its metric match the 1-process run's, within the noise
    of each rank drawing its own dropout masks."""
    from hf_transfer.cli import main
    from hf_transfer.cli.parsing import parse_with_config
    from hf_transfer.cli.train import make_parser
    from hf_transfer.data import load_data_args
    from hf_transfer.finetune import prepare

    assert main(["finetune", *ARGS, "--output_dir", str(tmp_path / "one")]) == 0
    capsys.readouterr()
    accelerate = Path(sys.executable).with_name("accelerate")
    cmd = [
        str(accelerate), "launch",
        "--config_file", str(ROOT / "recipes" / "accelerate" / "cpu-2proc.yaml"),
        "--main_process_port", "29533",
        "-m", "hf_transfer.cli", "finetune", *ARGS,
        "--per_device_train_batch_size", "8",
        "--output_dir", str(tmp_path / "two"),
    ]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count('"strategy": "finetune"') == 1  # only the main process reports
    one, two = (json.loads((tmp_path / name / "results.json").read_text()) for name in ("one", "two"))
    assert (one["num_processes"], two["num_processes"]) == (1, 2)  # accelerate really ran two ranks
    # 16 rows a step either way: a rank that saw world size 1 would take 2 steps an epoch, not 1
    assert one["n_train"] == two["n_train"] == 16 and one["train_steps"] == two["train_steps"] == 3
    assert one["n_eval"] == two["n_eval"] == 64
    assert abs(two["accuracy"] - one["accuracy"]) <= 2 / 64, (one["accuracy"], two["accuracy"])  # 2 eval rows

    # The saved models: training moved the 1-process model's predictions, and the 2-process one's the same way.
    # Dropout noise alone (one process, another data order) is 0.11 of the move, the 2-process run 0.16; one
    # that did not train, or stepped twice as far (summed gradients), would be about 1.
    data_args, config = parse_with_config(make_parser("finetune"), [*ARGS, "--output_dir", str(tmp_path / "x")])
    _, eval_ds, labels = load_data_args(data_args)
    texts = list(eval_ds["text"])
    start = eval_probs(*prepare(config, labels), texts)  # the zero-shot model both runs started from
    p_one, p_two = saved_probs(tmp_path / "one", texts), saved_probs(tmp_path / "two", texts)
    moved = (p_one - start).abs().sum(-1).mean().item()
    apart = (p_two - p_one).abs().sum(-1).mean().item()
    assert moved > 0.005 and apart < 0.35 * moved, (moved, apart)
