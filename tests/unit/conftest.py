"""Fixtures for unit tests. The tiny encoder and the data fixtures are in tests/conftest.py."""

from __future__ import annotations

import pytest


@pytest.fixture
def no_weights(monkeypatch):
    """Make any attempt to load weights or a tokenizer fail loudly, to prove validation came first."""
    from transformers import AutoModel, AutoTokenizer

    def refuse(*args, **kwargs):
        raise AssertionError("weights or tokenizer were loaded before the input was validated")

    monkeypatch.setattr(AutoModel, "from_pretrained", refuse)
    monkeypatch.setattr(AutoTokenizer, "from_pretrained", refuse)
