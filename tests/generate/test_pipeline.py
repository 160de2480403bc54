"""End to end on the tiny LM: dataset columns, stats, shards, resume after an interruption or kill -9."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from datasets import ClassLabel, load_from_disk

from hf_transfer.errors import ConfigError
from hf_transfer.generate import GenerateConfig, generate_dataset, generation_stats, run_generate
from hf_transfer.generate import pipeline as pipeline_module

from .conftest import fake_scorer, interrupt_generation

LABELS = ["good", "bad", "fine"]


def make_config(out, generator, **kwargs) -> GenerateConfig:
    base = dict(
        generator=generator,
        target_labels=LABELS,
        n_per_label=6,
        shard_size=4,
        batch_size=2,  # < shard_size: slots are refilled within a shard
        max_new_tokens=10,
        min_words=1,
        consistency_threshold=0.3,
        bf16=False,  # fp32 like the tiny_lm fixture, so runs that load the generator themselves match it
        output_dir=str(out),
    )
    return GenerateConfig(**{**base, **kwargs})


def rows_of(ds):
    return ds.to_list()


@pytest.fixture(scope="module")
def reference(tmp_path_factory, tiny_lm, tiny_lm_dir):
    """An uninterrupted run: the dataset every resumed run must reproduce."""
    out = tmp_path_factory.mktemp("reference") / "out"
    ds = generate_dataset(make_config(out, tiny_lm_dir), scorer=fake_scorer(LABELS), generator=tiny_lm)
    return out, ds


def test_dataset_columns_labels_and_stats(reference, tiny_lm_dir):
    out, ds = reference
    assert ds.column_names == [
        "text",
        "label",
        "generator",
        "template_id",
        "attributes",
        "seed",
        "row_index",
        "new_tokens",
        "consistency",
    ]
    assert isinstance(ds.features["label"], ClassLabel) and ds.features["label"].names == LABELS
    assert len(ds) > 0 and all(t.strip() and "\n" not in t for t in ds["text"])
    assert set(ds["generator"]) == {Path(tiny_lm_dir).name}  # a local generator by its folder's name
    assert all(c >= 0.3 for c in ds["consistency"])
    stats = generation_stats(ds)
    assert stats["generated"] == 18 and stats["kept"] == len(ds)
    assert stats["generated"] - sum(stats["removed"].values()) == len(ds)
    assert sum(stats["kept_per_label"].values()) == len(ds)
    assert stats["tokens_per_second"] > 0 and stats["new_tokens"] > 0 and stats["dtype"] == "float32"
    assert stats["resumed_batches"] == 0 and stats["generated_batches"] == 5  # ceil(18 / 4)


def test_shards_and_run_config_on_disk(reference):
    out, _ = reference
    shards = sorted(p.name for p in (out / "shards").iterdir())
    assert shards == [f"shard-{i:05d}.jsonl" for i in range(5)]
    first = [json.loads(line) for line in (out / "shards" / "shard-00000.jsonl").read_text().splitlines()]
    assert [r["index"] for r in first] == [0, 1, 2, 3] and [r["label"] for r in first] == LABELS + ["good"]
    assert json.loads((out / "run_config.json").read_text())["n_per_label"] == 6


def test_rerun_is_a_no_op_and_filters_can_change(reference, tiny_lm_dir, monkeypatch):
    out, ds = reference

    def forbidden(*args, **kwargs):
        raise AssertionError("everything is generated already")

    monkeypatch.setattr(pipeline_module, "generate_rows", forbidden)
    monkeypatch.setattr(pipeline_module, "load_generator", forbidden)
    again = generate_dataset(make_config(out, tiny_lm_dir), scorer=fake_scorer(LABELS))
    assert rows_of(again) == rows_of(ds) and generation_stats(again)["resumed_batches"] == 5
    # filter settings are not part of the run's identity: re-filter the same shards
    looser = generate_dataset(make_config(out, tiny_lm_dir, consistency_threshold=0.0))
    assert len(looser) >= len(ds) and generation_stats(looser)["removed"]["consistency"] == 0


def test_resume_after_an_exception_matches_uninterrupted_run(tmp_path, reference, tiny_lm, tiny_lm_dir, monkeypatch):
    _, expected = reference
    real = pipeline_module.generate_rows
    interrupt_generation(monkeypatch, at_call=3)
    config = make_config(tmp_path / "out", tiny_lm_dir)
    with pytest.raises(KeyboardInterrupt):
        generate_dataset(config, scorer=fake_scorer(LABELS), generator=tiny_lm)
    assert len(list((tmp_path / "out" / "shards").glob("shard-*.jsonl"))) == 2
    monkeypatch.setattr(pipeline_module, "generate_rows", real)
    resumed = generate_dataset(config, scorer=fake_scorer(LABELS), generator=tiny_lm)
    assert generation_stats(resumed)["resumed_batches"] == 2
    assert generation_stats(resumed)["generated_batches"] == 3
    assert rows_of(resumed) == rows_of(expected)


KILL_SCRIPT = """
import sys, time, torch
torch.set_num_threads(1)
from hf_transfer.generate import GenerateConfig, generate_dataset
from hf_transfer.generate import pipeline
real = pipeline.generate_rows
def slow(*args, **kwargs):
    time.sleep(0.4)
    return real(*args, **kwargs)
pipeline.generate_rows = slow
config = GenerateConfig(**{config!r})
generate_dataset(config)
print("finished")
"""


def test_kill_9_then_resume_matches_an_uninterrupted_run(tmp_path, reference, tiny_lm, tiny_lm_dir):
    _, expected = reference
    config = make_config(tmp_path / "out", tiny_lm_dir)
    script = KILL_SCRIPT.format(config={**config.__dict__, "consistency_threshold": 0.0})
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    shards = tmp_path / "out" / "shards"
    deadline = time.monotonic() + 120
    try:
        while len(list(shards.glob("shard-*.jsonl"))) < 2:
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "the subprocess wrote no shards in time"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    written = len(list(shards.glob("shard-*.jsonl")))
    assert 2 <= written < 5, "the kill came too late to test a resume"
    resumed = generate_dataset(config, scorer=fake_scorer(LABELS), generator=tiny_lm)
    assert generation_stats(resumed)["resumed_batches"] == written
    assert rows_of(resumed) == rows_of(expected)
    assert not list(shards.glob("*.tmp*"))


def test_seed_examples_change_the_run(tmp_path, tiny_lm, tiny_lm_dir, reference):
    out, _ = reference
    seeds = [{"text": "a good movie", "label": "good"}, {"text": "bad plot", "label": 1}]
    with pytest.raises(ConfigError, match="seed_examples_digest"):  # same output_dir, different prompts
        generate_dataset(make_config(out, tiny_lm_dir), seed_examples=seeds, generator=tiny_lm)
    ds = generate_dataset(
        make_config(tmp_path / "seeded", tiny_lm_dir, consistency_threshold=0),
        seed_examples=seeds,
        generator=tiny_lm,
    )
    prompts = [json.loads(line)["prompt"] for line in (tmp_path / "seeded/shards/shard-00000.jsonl").open()]
    assert "a good movie" in prompts[0] and "bad plot" in prompts[1]
    assert len(ds) > 0


def test_templates_file_is_known_by_its_content(tmp_path, tiny_lm, tiny_lm_dir):
    """A templates file moved (or the project cloned elsewhere) resumes; the same path with new content does not."""
    text = 'templates:\n  - id: t\n    text: "Write a {{ label }} sentence."\n'
    first, moved = tmp_path / "a.yaml", tmp_path / "moved" / "b.yaml"
    first.write_text(text)
    moved.parent.mkdir()
    moved.write_text(text)
    out = tmp_path / "out"
    made = generate_dataset(make_config(out, tiny_lm_dir, templates=str(first)), scorer=fake_scorer(LABELS),
                            generator=tiny_lm)  # fmt: skip
    again = generate_dataset(make_config(out, tiny_lm_dir, templates=str(moved)), scorer=fake_scorer(LABELS))
    assert generation_stats(again)["generated_batches"] == 0 and rows_of(again) == rows_of(made)
    moved.write_text(text.replace("sentence", "review"))
    with pytest.raises(ConfigError, match="templates_digest"):
        generate_dataset(make_config(out, tiny_lm_dir, templates=str(moved)), generator=tiny_lm)


def test_a_base_model_is_prompted_with_text_to_continue(tmp_path):
    """A generator without a chat template (a base model) gets the completion templates, fed as plain text plus a
    newline; one with a chat template keeps the instructions. The card names the set that was used."""
    from hf_transfer.generate.card import build_dataset_card

    from .conftest import make_tiny_causal_lm

    base = make_tiny_causal_lm(tmp_path / "base", chat_template=None)
    config = make_config(tmp_path / "out", base, consistency_threshold=0.0)
    ds = generate_dataset(config)
    assert config.base_model and config.template_set == "completion"
    assert set(ds["template_id"]) <= {"list", "record"} and len(ds)
    shard = [json.loads(line) for f in sorted((tmp_path / "out" / "shards").glob("shard-*.jsonl")) for line in
             f.read_text().splitlines()]  # fmt: skip
    assert shard and all(row["prompt"].startswith(("Texts labelled", "Label:")) for row in shard)
    assert "templates/completion.yaml" in str(build_dataset_card(ds, config))
    chat = make_config(tmp_path / "chat", make_tiny_causal_lm(tmp_path / "chat-lm"), consistency_threshold=0.0)
    generate_dataset(chat)
    assert not chat.base_model and chat.template_set == "default"


def test_run_generate_saves_a_dataset_finetune_can_load(tmp_path, tiny_lm_dir, target_dir, monkeypatch):
    from hf_transfer.config import DataArguments
    from hf_transfer.data import load_target

    monkeypatch.setattr(pipeline_module, "default_scorer", lambda labels, *a: fake_scorer(labels))
    out = tmp_path / "out"
    config = GenerateConfig(
        generator=tiny_lm_dir, n_per_label=4, batch_size=6, max_new_tokens=8, min_words=1, output_dir=str(out)
    )
    results = run_generate(config, DataArguments(dataset=str(target_dir), n_per_class=2))
    assert results["labels"] == ["negative", "neutral", "positive"]  # from the target data
    assert results["n_eval_texts_checked"] == 12 and results["n_seed_examples"] == 6
    assert results["stats"]["generated"] == 12 and results["tokens_per_second"] > 0
    saved = json.loads((out / "results.json").read_text())
    assert saved["n_rows"] == results["n_rows"]
    ds = load_from_disk(str(out / "dataset"))
    assert ds.features["label"].names == results["labels"] and len(ds) == results["n_rows"]
    assert generation_stats(ds)["kept"] == len(ds)
    data = load_target(str(out / "dataset"), validation_size=0)  # as finetune's extra_train or dataset reads it
    assert data["train"].column_names == ["text", "label"] and data["train"]["text"] == ds["text"]
    assert data["train"].features["label"].names == results["labels"] and data["train"]["label"] == ds["label"]


def test_run_generate_from_labels_alone(tmp_path, tiny_lm_dir):
    from hf_transfer.config import DataArguments

    config = GenerateConfig(
        generator=tiny_lm_dir,
        n_per_label=2,
        max_new_tokens=6,
        min_words=1,
        consistency_threshold=0,
        output_dir=str(tmp_path / "out"),
    )
    results = run_generate(config, DataArguments(dataset="none", labels=["yes", "no"]))
    assert results["labels"] == ["yes", "no"] and results["stats"]["generated"] == 4
    assert results["dataset_path"] == "dataset" and (tmp_path / "out" / "dataset").is_dir()  # relative: portable
    for saved in (tmp_path / "out" / "results.json", tmp_path / "out" / "dataset" / "README.md"):
        assert "/tmp/" not in saved.read_text(), saved  # no path of this machine in what travels


def test_run_generate_twice_resumes_and_resaves(tmp_path, tiny_lm_dir, capsys):
    config = dict(
        generator=tiny_lm_dir,
        target_labels=["yes", "no"],
        n_per_label=3,
        max_new_tokens=6,
        min_words=1,
        consistency_threshold=0,
        output_dir=str(tmp_path / "out"),
    )
    first = run_generate(GenerateConfig(**config))
    capsys.readouterr()
    second = run_generate(GenerateConfig(**config))
    assert second["stats"]["resumed_batches"] == 1 and second["n_rows"] == first["n_rows"]
    assert "reused 1 of 1 shards of round 1, generating 0" in capsys.readouterr().err
    assert len(load_from_disk(str(tmp_path / "out" / first["dataset_path"]))) == first["n_rows"]


def test_bf16_loads_bfloat16_weights_and_is_recorded(tmp_path, tiny_lm_dir, monkeypatch):
    loaded = []
    real_load = pipeline_module.load_generator

    def spy(*args, **kwargs):
        model, tokenizer = real_load(*args, **kwargs)
        loaded.append(next(model.parameters()).dtype)
        return model, tokenizer

    monkeypatch.setattr(pipeline_module, "load_generator", spy)
    ds = generate_dataset(
        make_config(tmp_path / "out", tiny_lm_dir, bf16=True, n_per_label=1, consistency_threshold=0)
    )
    assert loaded == [torch.bfloat16]
    assert generation_stats(ds)["dtype"] == "bfloat16"
    assert generation_stats(ds)["scorer_dtype"] == "bfloat16"  # an explicit bf16 is the scorer's too
    assert json.loads((tmp_path / "out" / "run_config.json").read_text())["bf16"] is True


def test_everything_filtered_out_gives_an_empty_dataset(tmp_path, tiny_lm, tiny_lm_dir):
    ds = generate_dataset(
        make_config(tmp_path / "out", tiny_lm_dir, n_per_label=1, min_words=79, max_words=80), generator=tiny_lm
    )
    assert len(ds) == 0 and ds.features["label"].names == LABELS
    stats = generation_stats(ds)
    assert stats["removed"]["length"] + stats["removed"]["cleaning"] == 3 and stats["kept_per_label"]["good"] == 0


class FakeRank:
    """One of two ``PartialState`` ranks, run one after the other in this process (same contiguous split)."""

    num_processes = 2

    def __init__(self, index):
        self.process_index = index
        self.is_main_process = index == 0

    def split_between_processes(self, items):
        from contextlib import nullcontext

        per, extra = divmod(len(items), 2)
        start = self.process_index * per + min(self.process_index, extra)
        return nullcontext(items[start : start + per + (self.process_index < extra)])


def test_two_ranks_split_batches_then_main_merges_in_order(tmp_path, reference, tiny_lm, tiny_lm_dir):
    _, expected = reference
    config = make_config(tmp_path / "out", tiny_lm_dir)
    prompts, fingerprint, _ = pipeline_module.plan(config)
    store = pipeline_module.ShardStore(config.output_dir)
    store.start(fingerprint)
    batches = [prompts[i : i + config.shard_size] for i in range(0, len(prompts), config.shard_size)]
    todo = list(range(len(batches)))
    for rank in (1, 0):  # the order ranks finish in does not matter
        pipeline_module._generate(config, store, batches, todo, *tiny_lm, FakeRank(rank))
        assert len(store.done(len(batches))) == (2 if rank == 1 else 5)  # rank 1 did batches 3-4
    merged = generate_dataset(config, scorer=fake_scorer(LABELS), generator=tiny_lm)
    assert generation_stats(merged)["resumed_batches"] == 5
    assert rows_of(merged) == rows_of(expected)


def picky_scorer(labels):
    """``texts -> probs`` that gives "bad" only 0.1 on about half the texts (by a stable hash), so "bad" rows
    fail the consistency filter half the time and the label falls short."""
    import zlib

    import numpy as np

    def score(texts):
        out = np.full((len(texts), len(labels)), 1.0 / len(labels), dtype=np.float32)
        for i, text in enumerate(texts):
            if zlib.crc32(text.encode()) % 2:
                out[i] = [0.45, 0.1, 0.45]
        return out

    return score


def test_top_up_rounds_reach_the_target_exactly(tmp_path, tiny_lm, tiny_lm_dir):
    config = make_config(tmp_path / "out", tiny_lm_dir, target_per_label=5, max_rounds=4)
    ds = generate_dataset(config, scorer=picky_scorer(LABELS), generator=tiny_lm)
    stats = generation_stats(ds)
    assert stats["kept_per_label"] == {"good": 5, "bad": 5, "fine": 5}
    assert stats["rounds"] >= 2 and stats["removed"]["consistency"] > 0 and stats["removed"]["surplus"] > 0
    planned = json.loads((tmp_path / "out" / "shards" / "rounds.json").read_text())
    # only the short label got more prompts; the last entry ({}) recorded that every label had enough
    assert set(planned[0]) == {"bad"} and planned[-1] == {} and len(planned) == stats["rounds"]
    extra = sorted(i for i in ds["row_index"] if i >= 18)  # top-up rows continue the row numbering
    assert extra and all(LABELS[y] == "bad" for i, y in zip(ds["row_index"], ds["label"]) if i >= 18)
    # the first round's rows are kept first: a top-up never replaces a row the first round kept
    first = generate_dataset(make_config(tmp_path / "first", tiny_lm_dir), scorer=picky_scorer(LABELS),
                             generator=tiny_lm)  # fmt: skip
    first_bad = [t for t, y in zip(first["text"], first["label"]) if LABELS[y] == "bad"]
    assert [t for t, y in zip(ds["text"], ds["label"]) if LABELS[y] == "bad"][: len(first_bad)] == first_bad


def test_top_up_interrupted_in_a_later_round_resumes_to_the_same_rows(tmp_path, tiny_lm, tiny_lm_dir, monkeypatch):
    kwargs = dict(target_per_label=5, max_rounds=4)
    expected = generate_dataset(make_config(tmp_path / "ref", tiny_lm_dir, **kwargs), scorer=picky_scorer(LABELS),
                                generator=tiny_lm)  # fmt: skip
    real = pipeline_module.generate_rows
    interrupt_generation(monkeypatch, at_call=6)  # round 1 is 5 shards: the first top-up shard is interrupted
    config = make_config(tmp_path / "out", tiny_lm_dir, **kwargs)
    with pytest.raises(KeyboardInterrupt):
        generate_dataset(config, scorer=picky_scorer(LABELS), generator=tiny_lm)
    assert (tmp_path / "out" / "shards" / "rounds.json").is_file()
    monkeypatch.setattr(pipeline_module, "generate_rows", real)
    resumed = generate_dataset(config, scorer=picky_scorer(LABELS), generator=tiny_lm)
    assert generation_stats(resumed)["resumed_batches"] == 5
    assert rows_of(resumed) == rows_of(expected)
    # re-filtering with other settings replays the recorded rounds instead of planning new ones
    monkeypatch.setattr(pipeline_module, "generate_rows", lambda *a, **k: pytest.fail("nothing left to generate"))
    looser = generate_dataset(make_config(tmp_path / "out", tiny_lm_dir, consistency_threshold=0.0, **kwargs))
    assert generation_stats(looser)["generated_batches"] == 0


def test_a_label_left_without_rows_warns_and_is_recorded(tmp_path, tiny_lm_dir, monkeypatch):
    config = GenerateConfig(generator=tiny_lm_dir, target_labels=["yes", "no"], n_per_label=2, max_new_tokens=6,
                            min_words=1, consistency_threshold=0.5, output_dir=str(tmp_path / "out"))  # fmt: skip

    def says_yes(texts):  # a consistency scorer that reads every text as "yes": the "no" rows are all dropped
        return torch.tensor([[0.9, 0.1]] * len(texts)).numpy()

    real = pipeline_module.generate_dataset
    monkeypatch.setattr(pipeline_module, "generate_dataset", lambda config, **kw: real(config, **kw, scorer=says_yes))
    with pytest.warns(UserWarning, match=r"kept no rows for label\(s\) \['no'\]"):
        results = run_generate(config)
    assert results["labels_without_rows"] == ["no"] and results["n_rows"] == 2
    assert json.loads((tmp_path / "out" / "results.json").read_text())["labels_without_rows"] == ["no"]


def test_an_unusable_output_dir_stops_before_the_generator_loads(tmp_path, tiny_lm_dir, monkeypatch):
    monkeypatch.setattr(pipeline_module, "load_generator", lambda *a, **k: pytest.fail("generator loaded"))
    (tmp_path / "taken").write_text("a file")
    config = GenerateConfig(generator=tiny_lm_dir, target_labels=["yes", "no"], n_per_label=2,
                            consistency_threshold=0, output_dir=str(tmp_path / "taken"))  # fmt: skip
    with pytest.raises(ConfigError, match="is a file, not a folder"):
        run_generate(config)


def test_the_scorer_follows_the_compute_rule_while_decoding_follows_the_memory_rule(tmp_path, tiny_lm_dir,
                                                                                  monkeypatch):  # fmt: skip
    """A CPU with AVX512-BF16 instructions but bf16 matmuls slower than fp32 (session 23's Xeon): the generator
    decodes in bf16, the consistency scorer (an encoder, compute-bound) runs fp32."""
    from hf_transfer import precision

    monkeypatch.delenv(precision.ENV_OVERRIDE, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    monkeypatch.setattr(precision, "cpu_bf16_speedup", lambda: 0.53)
    seen = []
    scorer = fake_scorer(LABELS)

    def spy(texts):
        seen.append(precision.resolve_bf16(None))  # what an inference loop with bf16=None would use
        return scorer(texts)

    config = make_config(tmp_path / "out", tiny_lm_dir, bf16=None, n_per_label=1)
    ds = generate_dataset(config, scorer=spy)
    assert seen and not any(seen)
    stats = generation_stats(ds)
    assert (stats["dtype"], stats["scorer_dtype"]) == ("bfloat16", "float32")
