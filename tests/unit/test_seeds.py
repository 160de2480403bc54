"""Seeds mean what they say: --seed draws the few-shot sample too unless --sample_seed is given, the default is 0
everywhere, and every run says what it trains and evaluates on (warning when a test split is left unused for a
slice carved from train)."""

from __future__ import annotations

import json

import pytest

from hf_transfer.config import DEFAULT_SEED, DataArguments
from hf_transfer.data import load_data_args


def test_sample_seed_follows_the_run_seed_unless_given():
    assert DataArguments(dataset="x").seeded(3).sample_seed == 3
    assert DataArguments(dataset="x", sample_seed=5).seeded(3).sample_seed == 5
    data = DataArguments(dataset="bundled:sst2", n_per_class=4)
    texts = {seed: load_data_args(data.seeded(seed), announce=False)[0]["text"] for seed in (0, 1)}
    assert texts[0] != texts[1]  # another --seed, another sample
    fixed = DataArguments(dataset="bundled:sst2", n_per_class=4, sample_seed=0).seeded(1)
    assert load_data_args(fixed, announce=False)[0]["text"] == texts[0]  # --sample_seed pins it
    assert load_data_args(data, announce=False)[0]["text"] == texts[DEFAULT_SEED]  # outside a run: the default


def test_one_seed_default_for_cli_python_and_recipes():
    from hf_transfer.cli.parsing import parse_with_config
    from hf_transfer.cli.train import make_parser
    from hf_transfer.finetune import FinetuneConfig
    from hf_transfer.generate import GenerateConfig
    from hf_transfer.labelmap import LabelMapConfig

    assert DEFAULT_SEED == 0
    labelmap = LabelMapConfig(source_model="minilm")
    assert FinetuneConfig().seed == labelmap.seed == GenerateConfig().seed == DEFAULT_SEED
    for strategy, flags in (("finetune", []), ("labelmap", ["--source_model", "minilm"]), ("generate", [])):
        data_args, config = parse_with_config(make_parser(strategy), ["--dataset", "bundled:sst2", *flags])
        assert config.seed == DEFAULT_SEED and data_args.sample_seed is None


def test_the_run_start_says_what_trains_and_evaluates(capsys):
    load_data_args(DataArguments(dataset="bundled:sst2", n_per_class=4, eval_split="validation"))
    err = capsys.readouterr().err
    assert "Training on train: 8 rows; per label: negative 4, positive 4" in err
    assert "Evaluating on validation: " in err and "carved" not in err
    load_data_args(DataArguments(dataset="bundled:conll2003", n_per_class=2))
    assert "Training on train: " in (err := capsys.readouterr().err) and "sentences; entities per type: " in err


def test_carving_validation_beside_a_test_split_warns(tmp_path, capsys):
    rows = [{"text": f"text number {i}", "label": "ab"[i % 2]} for i in range(40)]
    for split, part in (("train", rows[:30]), ("test", rows[30:])):
        (tmp_path / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in part))
    with pytest.warns(UserWarning, match=r"carved from train .* although it has a 'test' split.*--eval_split test"):
        _, eval_ds, _ = load_data_args(DataArguments(dataset=str(tmp_path)))
    assert "Evaluating on validation (carved from train): 3 rows" in capsys.readouterr().err
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_data_args(DataArguments(dataset=str(tmp_path), eval_split="test"))  # evaluates on test: no warning
