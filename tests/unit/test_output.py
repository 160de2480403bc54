"""Run folders: checked before models load, one run each, locked, saved so a half-written folder never looks
finished; runs are reproducible and resumable bit for bit; saved folders are portable and can be continued."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForSequenceClassification

from hf_transfer.config import DataArguments
from hf_transfer.defaults import EMBEDDED_MODELS, portable_ref, resolve_model
from hf_transfer.errors import ConfigError
from hf_transfer.finetune import FinetuneConfig, run_finetune
from hf_transfer.hub import PushError
from hf_transfer.output import (
    LOCK_FILE,
    STAGING_DIR,
    SaveError,
    check_output_dir,
    last_complete_checkpoint,
    run_lock,
)

pytestmark = pytest.mark.usefixtures("single_thread")


def config_for(out, encoder, **overrides) -> FinetuneConfig:
    values = dict(output_dir=str(out), model_name_or_path=encoder, method="full", num_train_epochs=2,
                  min_train_steps=0, per_device_train_batch_size=4, disable_tqdm=True, seed=3)  # fmt: skip
    values.update(overrides)
    return FinetuneConfig(**values)


def weights(folder) -> dict[str, torch.Tensor]:
    model = AutoModelForSequenceClassification.from_pretrained(folder)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"weights differ: {different[:5]}"


# --- the folder can take the run, checked before any model loads ---------------------------------------------


def test_output_dir_that_is_a_file_stops_before_models_load(tmp_path, tiny_encoder, sentiment_dir, no_weights):
    (tmp_path / "taken").write_text("not a folder")
    with pytest.raises(ConfigError, match="is a file, not a folder"):
        run_finetune(config_for(tmp_path / "taken", tiny_encoder), DataArguments(dataset=str(sentiment_dir)))


def test_output_dir_under_proc_is_refused():
    with pytest.raises(ConfigError, match="virtual file system"):
        check_output_dir("/proc/self/hf_transfer_run")


def test_unwritable_output_dir_is_refused(tmp_path, tiny_encoder, sentiment_dir, no_weights, monkeypatch):
    """Root ignores permission bits, so a read-only mount is simulated where the probe file is created."""
    import hf_transfer.output as output

    def read_only(folder):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(output, "probe_write", read_only)
    with pytest.raises(ConfigError, match="cannot be written .*Read-only file system"):
        run_finetune(config_for(tmp_path / "run", tiny_encoder), DataArguments(dataset=str(sentiment_dir)))


def test_too_little_free_space_is_refused_with_the_sizes(tmp_path, tiny_encoder, sentiment_dir, no_weights,
                                                         monkeypatch):  # fmt: skip
    import shutil

    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda p: real(p)._replace(free=1 << 20))
    with pytest.raises(ConfigError, match=r"has 1 MiB free but this run needs about"):
        run_finetune(config_for(tmp_path / "run", tiny_encoder), DataArguments(dataset=str(sentiment_dir)))


# --- one folder, one run -------------------------------------------------------------------------------------


def test_a_folder_holding_another_run_is_refused_unless_resumed_or_overwritten(tmp_path, tiny_encoder, sentiment_dir):
    data = DataArguments(dataset=str(sentiment_dir), n_per_class=4)
    out = tmp_path / "run"
    run_finetune(config_for(out, tiny_encoder, num_train_epochs=1), data)
    first = json.loads((out / "results.json").read_text())
    with pytest.raises(ConfigError, match="already holds another run .*results.json.*--overwrite_output_dir"):
        run_finetune(config_for(out, tiny_encoder, method="head"), data)
    assert json.loads((out / "results.json").read_text()) == first  # untouched

    run_finetune(config_for(out, tiny_encoder, method="head", overwrite_output_dir=True), data)
    assert json.loads((out / "results.json").read_text())["method"] == "head"
    run_finetune(config_for(out, tiny_encoder, method="head", resume_from_checkpoint="last"), data)


def test_overwrite_clears_old_checkpoints_so_none_is_resumed(tmp_path, tiny_encoder, sentiment_dir):
    data = DataArguments(dataset=str(sentiment_dir), n_per_class=4)
    out = tmp_path / "run"
    run_finetune(config_for(out, tiny_encoder, save_strategy="epoch", num_train_epochs=3), data)
    assert (out / "checkpoint-6").is_dir()
    run_finetune(config_for(out, tiny_encoder, save_strategy="epoch", num_train_epochs=1, overwrite_output_dir=True),
                 data)  # fmt: skip
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-2"]


def test_a_second_process_on_the_same_folder_is_refused_while_the_first_runs(tmp_path, tiny_encoder, sentiment_dir):
    out = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, time
            from hf_transfer.output import run_lock
            with run_lock({str(out)!r}):
                print("locked", flush=True)
                time.sleep(60)
        """)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(ConfigError, match="in use by another hf_transfer run"):
            run_finetune(config_for(out, tiny_encoder), DataArguments(dataset=str(sentiment_dir)))
        holder.send_signal(signal.SIGKILL)  # a crash: the kernel drops the lock with the process
        holder.wait(timeout=30)
        with run_lock(out):
            assert (out / LOCK_FILE).exists()
    finally:
        holder.kill()


def test_the_lock_is_released_after_a_run_and_on_error(tmp_path):
    with pytest.raises(RuntimeError), run_lock(tmp_path):
        raise RuntimeError("the run failed")
    with run_lock(tmp_path), run_lock(tmp_path):  # re-entrant within one run; free again after the error
        pass


# --- same seed, same model; resume ends where an uninterrupted run ends --------------------------------------


@pytest.mark.parametrize(
    ("method", "overrides"),
    [("full", {"head_init": "random"}), ("head", {"head_init": "random"}), ("lora", {})],
)
def test_same_config_gives_bitwise_equal_weights(tmp_path, tiny_encoder, sentiment_dir, method, overrides):
    """Random heads and LoRA's A matrices are drawn when the model is built: seeded before it, they repeat."""
    data = DataArguments(dataset=str(sentiment_dir), n_per_class=4)
    torch.manual_seed(123)  # whatever the global RNG held before must not matter
    run_finetune(config_for(tmp_path / "a", tiny_encoder, method=method, **overrides), data)
    torch.rand(7)
    run_finetune(config_for(tmp_path / "b", tiny_encoder, method=method, **overrides), data)
    assert_same_weights(weights(tmp_path / "a"), weights(tmp_path / "b"))


KILLED_RUN = """
import os, signal, sys
from transformers import TrainerCallback
import hf_transfer.run as run
from hf_transfer.config import DataArguments
from hf_transfer.finetune import FinetuneConfig, run_finetune

class KillAfterSave(TrainerCallback):  # kill -9 right after the first checkpoint is on disk
    def on_save(self, args, state, control, **kwargs):
        os.kill(os.getpid(), signal.SIGKILL)

Trainer = run.TransferTrainer  # the one trainer of every run
class Killed(Trainer):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.add_callback(KillAfterSave())

run.TransferTrainer = Killed
config = FinetuneConfig(**{config})
run_finetune(config, DataArguments(dataset={dataset!r}, n_per_class=4))
"""


@pytest.mark.parametrize("method", ["full", "lora"])
def test_killed_run_resumes_to_the_uninterrupted_weights(tmp_path, tiny_encoder, sentiment_dir, method):
    values = dict(model_name_or_path=tiny_encoder, method=method, num_train_epochs=3, min_train_steps=0,
                  per_device_train_batch_size=4, disable_tqdm=True, seed=5, save_strategy="epoch",
                  resume_from_checkpoint="last", head_init="random")  # fmt: skip
    data = DataArguments(dataset=str(sentiment_dir), n_per_class=4)
    run_finetune(FinetuneConfig(output_dir=str(tmp_path / "whole"), **values), data)

    out = tmp_path / "killed"
    script = KILLED_RUN.format(config=repr({**values, "output_dir": str(out)}), dataset=str(sentiment_dir))
    killed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert (out / "checkpoint-2").is_dir() and not (out / "results.json").exists()

    run_finetune(FinetuneConfig(output_dir=str(out), **values), data)
    state = json.loads((out / "checkpoint-6" / "trainer_state.json").read_text())
    assert [round(h["epoch"]) for h in state["log_history"] if "loss" in h] == [1, 2, 3]  # epoch 1 once
    assert_same_weights(weights(tmp_path / "whole"), weights(out))


# --- a checkpoint cut short by a kill is skipped -------------------------------------------------------------


def test_resume_skips_a_checkpoint_without_its_state_file(tmp_path, tiny_encoder, sentiment_dir, caplog):
    data = DataArguments(dataset=str(sentiment_dir), n_per_class=4)
    out = tmp_path / "run"
    common = dict(save_strategy="epoch", resume_from_checkpoint="last")
    run_finetune(config_for(out, tiny_encoder, num_train_epochs=2, **common), data)
    (out / "results.json").unlink()
    (out / "checkpoint-4" / "trainer_state.json").unlink()  # killed while checkpoint-4 was being written
    assert last_complete_checkpoint(out) == str(out / "checkpoint-2")
    with caplog.at_level("WARNING"):
        run_finetune(config_for(out, tiny_encoder, num_train_epochs=2, **common), data)
    assert "Skipping incomplete checkpoint" in caplog.text and "checkpoint-4" in caplog.text
    state = json.loads((out / "checkpoint-4" / "trainer_state.json").read_text())
    assert [round(h["epoch"]) for h in state["log_history"] if "loss" in h] == [1, 2]  # resumed from epoch 1


def test_truncated_checkpoint_files_are_skipped(tmp_path, tiny_encoder, sentiment_dir):
    out = tmp_path / "run"
    run_finetune(config_for(out, tiny_encoder, num_train_epochs=3, save_strategy="epoch"),
                 DataArguments(dataset=str(sentiment_dir), n_per_class=4))  # fmt: skip
    weights_file = out / "checkpoint-6" / "model.safetensors"
    weights_file.write_bytes(weights_file.read_bytes()[:-100])
    optimizer = out / "checkpoint-4" / "optimizer.pt"
    optimizer.write_bytes(optimizer.read_bytes()[: len(optimizer.read_bytes()) // 2])
    assert last_complete_checkpoint(out) == str(out / "checkpoint-2")


# --- saving: never a folder that looks finished when it is not; a failed save says where the model is ----------


def test_a_failed_save_leaves_no_results_and_says_where_the_model_went(tmp_path, tiny_encoder, sentiment_dir,
                                                                       monkeypatch):  # fmt: skip
    import hf_transfer.model_card as model_card

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(model_card, "write_model_card", disk_full)
    out = tmp_path / "run"
    with pytest.raises(SaveError) as info:
        run_finetune(config_for(out, tiny_encoder, save_strategy="epoch"),
                     DataArguments(dataset=str(sentiment_dir), n_per_class=4))  # fmt: skip
    message = str(info.value)
    assert "No space left on device" in message and str(out / "checkpoint-4") in message
    assert not (out / "results.json").exists() and not (out / "model.safetensors").exists()
    rescued = Path(message.split("was saved to '")[1].split("'")[0])
    assert (rescued / "results.json").is_file()
    assert_same_weights(weights(rescued), weights(out / "checkpoint-4"))
    # the next attempt resumes the finished training and saves it; the staging folder is gone
    monkeypatch.undo()
    run_finetune(config_for(out, tiny_encoder, save_strategy="epoch", resume_from_checkpoint="last"),
                 DataArguments(dataset=str(sentiment_dir), n_per_class=4))  # fmt: skip
    assert (out / "results.json").is_file() and not (out / STAGING_DIR).exists()


def test_a_failed_push_carries_the_saved_folder_and_results(tmp_path, tiny_encoder, sentiment_dir, monkeypatch):
    import hf_transfer.hub as hub

    monkeypatch.setattr(hub, "check_config_push", lambda config: "me/model" if config.push_to_hub else None)

    def offline(*args, **kwargs):
        raise ConnectionError("Network is unreachable\nmore lines")

    monkeypatch.setattr(hub, "push_folder", offline)
    out = tmp_path / "run"
    with pytest.raises(PushError) as info:
        run_finetune(config_for(out, tiny_encoder, push_to_hub=True, hub_model_id="me/model"),
                     DataArguments(dataset=str(sentiment_dir), n_per_class=2))  # fmt: skip
    assert info.value.folder == str(out)
    assert "ConnectionError: Network is unreachable." in str(info.value) and "more lines" not in str(info.value)
    # the error carries this run's results, as saved before the push was tried
    assert info.value.results["n_train"] == 4 and "accuracy" in info.value.results
    assert json.loads((out / "results.json").read_text()) == info.value.results


# --- continued transfer and portable folders -----------------------------------------------------------------


def test_a_saved_model_is_the_base_of_a_run_on_another_label_set(tmp_path, tiny_encoder, sentiment_dir):
    first = tmp_path / "first"
    run_finetune(config_for(first, tiny_encoder), DataArguments(dataset=str(sentiment_dir)))
    pairs = [("good movie", "a"), ("bad movie", "b"), ("great film", "a"), ("awful film", "b"), ("fun plot", "c"),
             ("boring plot", "c")]  # fmt: skip
    rows = [{"text": text, "label": label} for text, label in pairs]
    (tmp_path / "three").mkdir()
    (tmp_path / "three" / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows * 2))
    (tmp_path / "three" / "validation.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    second = tmp_path / "second"
    results = run_finetune(config_for(second, str(first), num_train_epochs=0),
                           DataArguments(dataset=str(tmp_path / "three")))  # fmt: skip
    assert results["labels"] == ["a", "b", "c"]
    saved, continued = weights(first), weights(second)
    assert continued["classifier.weight"].shape[0] == 3
    assert_same_weights({k: v for k, v in saved.items() if k.startswith("encoder.")},
                        {k: v for k, v in continued.items() if k.startswith("encoder.")})  # fmt: skip


@pytest.mark.parametrize("method", ["full", "lora"])
def test_saved_folder_holds_no_local_path(tmp_path, tiny_encoder, sentiment_dir, method):
    out = tmp_path / "run"
    run_finetune(config_for(out, tiny_encoder, method=method, merge_adapter=method == "full"),
                 DataArguments(dataset=str(sentiment_dir), n_per_class=2))  # fmt: skip
    for name in ("config.json", "README.md", "results.json"):
        text = (out / name).read_text()
        assert str(tmp_path) not in text and "/tmp/" not in text, name
    if method == "lora":
        assert json.loads((out / "adapter_config.json").read_text())["modules_to_save"] == ["classifier"]


def test_embedded_models_are_recorded_by_their_hub_id():
    minilm = EMBEDDED_MODELS["minilm"].hub_id
    assert minilm == "sentence-transformers/all-MiniLM-L6-v2"
    assert portable_ref("minilm") == minilm == portable_ref(resolve_model("minilm"))
    assert portable_ref("/data/runs/sst2") == "sst2" and portable_ref("bundled:sst2") == "bundled:sst2"
