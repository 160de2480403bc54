"""Every shipped recipe parses into its strategy's config: no unknown keys, no invalid values."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from hf_transfer.cli.parsing import parse_with_config
from hf_transfer.cli.train import make_parser
from hf_transfer.data import load_data_args
from hf_transfer.multi_label import MULTI_LABEL, task_of
from hf_transfer.token_classification import TOKEN_CLASSIFICATION

RECIPES = Path(__file__).resolve().parents[2] / "recipes"
FILES = sorted(p for p in RECIPES.glob("*/*.yaml") if p.parent.name != "accelerate")


@pytest.mark.parametrize("path", FILES, ids=[f"{p.parent.name}/{p.name}" for p in FILES])
def test_recipe_parses(path, tmp_path):
    strategy = "labelmap" if "labelmap" in (path.parent.name, path.stem.split("-")[0]) \
        else "generate" if path.stem.split("-")[-1] == "generate" else "finetune"  # fmt: skip
    data_args, config = parse_with_config(
        make_parser(strategy), ["--config", str(path), "--output_dir", str(tmp_path)]
    )
    assert data_args.dataset.startswith("bundled:")
    assert str(path.relative_to(RECIPES.parent)) in (RECIPES / "README.md").read_text()
    if data_args.n_per_class and not data_args.extra_train:  # the bundled slice holds the sample it asks for
        train = load_data_args(data_args)[0]  # token classification: sample_per_type refuses a short type itself
        if task_of(train) != TOKEN_CLASSIFICATION:
            classes = 2 if task_of(train) == MULTI_LABEL else len(set(train["label"]))
            assert len(train) >= data_args.n_per_class * classes


@pytest.mark.parametrize("path", sorted(RECIPES.glob("accelerate/*.yaml")), ids=lambda p: p.name)
def test_accelerate_configs_are_mappings(path):
    config = yaml.safe_load(path.read_text())
    assert config["distributed_type"] in ("NO", "MULTI_GPU", "FSDP") and config["num_processes"] >= 1
