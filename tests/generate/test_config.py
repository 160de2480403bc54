"""Bad input fails with a clear ConfigError before any generator weights load."""

from __future__ import annotations

import pytest

from hf_transfer.errors import ConfigError
from hf_transfer.generate import GenerateConfig, generate_dataset
from hf_transfer.generate import pipeline as pipeline_module


@pytest.fixture
def no_weights(monkeypatch):
    """Any attempt to load generator weights fails the test."""

    def forbidden(*args, **kwargs):
        raise AssertionError("the generator must not load for bad input")

    monkeypatch.setattr(pipeline_module, "load_generator", forbidden)


def config(tmp_path, tiny_lm_dir, **kwargs):
    base = dict(generator=tiny_lm_dir, target_labels=["good", "bad"], n_per_label=2, output_dir=str(tmp_path / "out"))
    return GenerateConfig(**{**base, **kwargs})


def test_no_labels(tmp_path, tiny_lm_dir, no_weights):
    with pytest.raises(ConfigError, match="at least one label"):
        config(tmp_path, tiny_lm_dir, target_labels=[])
    with pytest.raises(ConfigError, match="No labels"):
        generate_dataset(config(tmp_path, tiny_lm_dir, target_labels=None))


def test_duplicate_labels(tmp_path, tiny_lm_dir):
    with pytest.raises(ConfigError, match=r"Duplicate label name\(s\) \['good'\]"):
        config(tmp_path, tiny_lm_dir, target_labels=["good", "bad", "good"])


def test_description_for_unknown_label(tmp_path, tiny_lm_dir):
    with pytest.raises(ConfigError, match="'meh'"):
        config(tmp_path, tiny_lm_dir, label_descriptions='{"meh": "so-so"}')


def test_labels_that_are_bare_ids_need_descriptions(tmp_path, tiny_lm_dir, no_weights):
    with pytest.raises(ConfigError, match=r"label\(s\) \['1'\] are ids with no description"):
        config(tmp_path, tiny_lm_dir, target_labels=["0", "1"], label_descriptions={"0": "a bad movie"})
    assert config(tmp_path, tiny_lm_dir, target_labels=["0", "1"], label_descriptions={"0": "bad", "1": "good"})


@pytest.mark.parametrize("n", [0, -3])
def test_n_per_label_must_be_positive(tmp_path, tiny_lm_dir, n):
    with pytest.raises(ConfigError, match="n_per_label"):
        config(tmp_path, tiny_lm_dir, n_per_label=n)


@pytest.mark.parametrize(
    "kwargs", [{"near_dup_threshold": 1.5}, {"near_dup_threshold": -0.1}, {"consistency_threshold": 2.0}]
)
def test_threshold_outside_unit_interval(tmp_path, tiny_lm_dir, kwargs):
    with pytest.raises(ConfigError, match=r"must be in \[0, 1\]"):
        config(tmp_path, tiny_lm_dir, **kwargs)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"temperature": 0}, "temperature"),
        ({"top_p": 0}, "top_p"),
        ({"batch_size": 0}, "batch_size"),
        ({"min_words": 5, "max_words": 2}, "min_words"),
        ({"contamination_ngram": -1}, "contamination_ngram"),
        ({"balance": "max"}, r"balance='max': expected one of none, min"),
        ({"target_per_label": 0}, "target_per_label=0 must be >= 1"),
        ({"max_rounds": 0}, "max_rounds=0 must be >= 1"),
        ({"top_k": -1}, "top_k=-1 must be >= 0"),
    ],
)
def test_other_ranges(tmp_path, tiny_lm_dir, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        config(tmp_path, tiny_lm_dir, **kwargs)


def test_template_without_label_placeholder(tmp_path, tiny_lm_dir, no_weights):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "templates:\n  - id: nolabel\n    text: Write a {{ style }} sentence.\nattributes:\n  style: [dry]\n"
    )
    with pytest.raises(ConfigError, match=r"'nolabel' has no \{\{ label \}\} placeholder"):
        generate_dataset(config(tmp_path, tiny_lm_dir, templates=str(bad)))


def test_template_with_unknown_placeholder_or_bad_jinja(tmp_path, tiny_lm_dir, no_weights):
    typo = tmp_path / "typo.jinja"
    typo.write_text("Write about {{ label }} in a {{ stlye }} way.")
    with pytest.raises(ConfigError, match=r"unknown placeholder\(s\) \['stlye'\]"):
        generate_dataset(config(tmp_path, tiny_lm_dir, templates=str(typo)))
    broken = tmp_path / "broken.jinja"
    broken.write_text("Write about {{ label }")
    with pytest.raises(ConfigError, match="not valid Jinja"):
        generate_dataset(config(tmp_path, tiny_lm_dir, templates=str(broken)))
    with pytest.raises(ConfigError, match="neither a file nor a bundled"):
        generate_dataset(config(tmp_path, tiny_lm_dir, templates="nope"))


def test_seed_example_with_unknown_label(tmp_path, tiny_lm_dir, no_weights):
    with pytest.raises(ConfigError, match="'meh' is not among the labels"):
        generate_dataset(config(tmp_path, tiny_lm_dir), seed_examples=[{"text": "so so", "label": "meh"}])


def test_generator_that_is_not_a_causal_lm(tmp_path, tiny_model_dir, no_weights):
    with pytest.raises(ConfigError, match="not a causal"):
        generate_dataset(config(tmp_path, tiny_model_dir))  # a BertModel checkpoint
    with pytest.raises(ConfigError, match="Cannot load the config of generator"):
        generate_dataset(config(tmp_path, str(tmp_path / "missing")))


def test_output_dir_of_a_different_run(tmp_path, tiny_lm_dir, no_weights, monkeypatch):
    out = tmp_path / "out"
    (out / "shards").mkdir(parents=True)
    (out / "shards" / "shard-00000.jsonl").write_text('{"raw_text": "x"}\n')
    with pytest.raises(ConfigError, match="holds shards but no run_config.json"):
        generate_dataset(config(tmp_path, tiny_lm_dir))
    (out / "run_config.json").write_text('{"seed": 99}')
    with pytest.raises(ConfigError, match="different generation run.*seed"):
        generate_dataset(config(tmp_path, tiny_lm_dir))


def test_overwrite_replaces_another_runs_shards(tmp_path, tiny_lm, tiny_lm_dir):
    out = tmp_path / "out"
    (out / "shards").mkdir(parents=True)
    (out / "shards" / "shard-00007.jsonl").write_text('{"raw_text": "stale"}\n')
    (out / "run_config.json").write_text('{"seed": 99}')
    ds = generate_dataset(
        config(tmp_path, tiny_lm_dir, overwrite=True, consistency_threshold=0, min_words=1), generator=tiny_lm
    )
    assert not (out / "shards" / "shard-00007.jsonl").exists()
    assert sorted(p.name for p in (out / "shards").iterdir()) == ["shard-00000.jsonl"]
    assert len(ds) <= 4


def test_cli_parser_accepts_the_config_with_data_arguments():
    """GenerateConfig's fields must not clash with DataArguments' (the CLI parses both together)."""
    from transformers import HfArgumentParser

    from hf_transfer.config import DataArguments

    parser = HfArgumentParser((DataArguments, GenerateConfig))
    data_args, cfg = parser.parse_args_into_dataclasses(
        ["--dataset", "none", "--labels", "a", "b", "--n_per_label", "3", "--label_descriptions", '{"a": "x"}']
    )
    assert data_args.labels == ["a", "b"] and cfg.n_per_label == 3 and cfg.label_descriptions == {"a": "x"}
    assert all(f.metadata.get("help") for f in GenerateConfig.__dataclass_fields__.values())


def test_bad_consistency_model_fails_before_generation(tmp_path, tiny_lm_dir, no_weights):
    with pytest.raises(ConfigError, match="Cannot load the config of model"):
        generate_dataset(config(tmp_path, tiny_lm_dir, consistency_model=str(tmp_path / "missing")))
    assert config(tmp_path, tiny_lm_dir, target_labels=["only"]).resolved_consistency_threshold() == 0.0
