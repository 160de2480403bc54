"""Resumable state: fingerprints compared key by key, writes that are whole or absent."""

from __future__ import annotations

import os

import pytest
from datasets import Dataset

from hf_transfer.errors import ConfigError
from hf_transfer.state import MARKER, atomic_write, check_fingerprint, load_dataset_state, save_dataset, write_json


def test_a_different_fingerprint_names_the_keys_that_differ(tmp_path):
    path = tmp_path / "run.json"
    check_fingerprint(path, {"a": 1}, what="x", fix="y")  # nothing saved yet: passes
    write_json(path, {"a": 1, "b": (2, 3), "c": "same"})
    check_fingerprint(path, {"c": "same", "b": [2, 3], "a": 1}, what="x", fix="y")  # as JSON reads it back
    with pytest.raises(ConfigError, match=r"holds another run \(differs in: a, d\)\. Start over\."):
        check_fingerprint(path, {"a": 2, "b": [2, 3], "c": "same", "d": 0}, what="holds another run",
                          fix="Start over.")  # fmt: skip
    path.write_text("{ not json")
    with pytest.raises(ConfigError, match=r"run.json cannot be read"):
        check_fingerprint(path, {}, what="x", fix="y")


def test_a_failed_write_leaves_the_old_file_whole(tmp_path, monkeypatch):
    path = tmp_path / "state.json"
    atomic_write(path, "old")

    def killed(*args):
        raise KeyboardInterrupt  # the process stops between writing the temporary file and the rename

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, "new")
    assert path.read_text() == "old"


def test_a_dataset_folder_is_loaded_only_when_whole(tmp_path):
    folder = tmp_path / "pool-1"
    assert load_dataset_state(folder) is None
    save_dataset(Dataset.from_dict({"p": [0.1, 0.9]}), folder, 1.5)
    loaded, meta = load_dataset_state(folder)
    assert loaded["p"] == pytest.approx([0.1, 0.9]) and meta == 1.5
    (folder / MARKER).unlink()  # cut short before its marker was written
    assert load_dataset_state(folder) is None
