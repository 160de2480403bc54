"""The ``engine`` choice: transformers' paged-cache continuous batching writes the builtin engine's greedy text,
is seeded, cuts rows at the end of their first example, and is refused with builtin-only settings; ``auto`` keeps
old runs' fingerprints."""

from __future__ import annotations

import json

import pytest
import torch

from hf_transfer.errors import ConfigError
from hf_transfer.generate import GenerateConfig, generate_dataset, generation_stats
from hf_transfer.generate.engines import cut_at_end_of_example, resolve_engine
from hf_transfer.generate.generation import generate_rows, newline_token_ids

from .conftest import fake_scorer
from .test_continuous import PROMPTS


def test_greedy_transformers_engine_writes_the_builtin_text(tiny_lm):
    model, tokenizer = tiny_lm
    kwargs = dict(seed=0, max_new_tokens=12, do_sample=False, stop_at_newline=False)
    paged = generate_rows(model, tokenizer, PROMPTS, batch_size=3, engine="transformers", **kwargs)
    builtin = generate_rows(model, tokenizer, PROMPTS, batch_size=3, engine="builtin", **kwargs)
    assert (paged.texts, paged.new_tokens) == (builtin.texts, builtin.new_tokens)
    assert len(set(paged.new_tokens)) > 1  # some rows ended at eos, others ran to max_new_tokens


def test_transformers_engine_sampling_depends_only_on_prompts_and_seed(tiny_lm):
    model, tokenizer = tiny_lm
    kwargs = dict(batch_size=3, max_new_tokens=10, engine="transformers")
    torch.manual_seed(123)
    before = torch.rand(3)
    torch.manual_seed(123)
    a = generate_rows(model, tokenizer, PROMPTS, seed=11, **kwargs)
    assert torch.equal(torch.rand(3), before)  # the manager's seeding left the caller's RNG as it was
    b = generate_rows(model, tokenizer, PROMPTS, seed=11, **kwargs)
    c = generate_rows(model, tokenizer, PROMPTS, seed=12, **kwargs)
    assert a.texts == b.texts and a.new_tokens == b.new_tokens and a.texts != c.texts


def test_rows_are_cut_at_the_end_of_their_first_example(tiny_lm):
    _, tokenizer = tiny_lm
    newline = set(newline_token_ids(tokenizer))
    ids = tokenizer("sure here is one :\ngood film\nbad film", add_special_tokens=False)["input_ids"]
    kept = cut_at_end_of_example(tokenizer, ids, newline)
    assert [line.strip() for line in tokenizer.decode(kept).split("\n")] == ["sure here is one :", "good film", ""]
    assert kept[-1] in newline and len(kept) < len(ids)
    no_end = tokenizer("good film", add_special_tokens=False)["input_ids"]
    assert cut_at_end_of_example(tokenizer, no_end, newline) == no_end
    model, _ = tiny_lm
    out = generate_rows(model, tokenizer, PROMPTS, seed=1, batch_size=4, max_new_tokens=16, engine="transformers")
    assert all(text.count("\n") <= 2 for text in out.texts)  # at most an empty first line and the example's end


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(engine="fast"), "not one of auto, builtin, transformers, vllm"),
        (dict(engine="transformers", continuous_batching=False), "setting of the builtin engine"),
    ],
)
def test_bad_engine_settings_are_refused_by_the_config(tmp_path, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        GenerateConfig(target_labels=["a", "b"], output_dir=str(tmp_path), **kwargs)


def test_auto_is_builtin_and_only_another_engine_enters_the_fingerprint(tmp_path):
    make = lambda engine: GenerateConfig(target_labels=["a", "b"], output_dir=str(tmp_path), engine=engine)  # noqa: E731
    assert resolve_engine("auto") == "builtin" and make("auto").resolved_engine == "builtin"
    assert "engine" not in make("auto").generation_fingerprint()  # runs from before the option stay resumable
    assert make("auto").generation_fingerprint() == make("builtin").generation_fingerprint()
    assert make("transformers").generation_fingerprint()["engine"] == "transformers"


def test_a_run_on_the_transformers_engine_records_it(tmp_path, tiny_lm, tiny_lm_dir):
    config = GenerateConfig(
        generator=tiny_lm_dir, target_labels=["good", "bad"], n_per_label=3, batch_size=2, max_new_tokens=10,
        min_words=1, consistency_threshold=0.3, bf16=False, output_dir=str(tmp_path / "out"), engine="transformers",
    )  # fmt: skip
    ds = generate_dataset(config, scorer=fake_scorer(["good", "bad"]), generator=tiny_lm)
    stats = generation_stats(ds)
    assert stats["engine"] == "transformers" and stats["generated"] == 6
    assert json.loads((tmp_path / "out" / "run_config.json").read_text())["engine"] == "transformers"
