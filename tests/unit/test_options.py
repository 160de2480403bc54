"""Every option is checked when its config is built, before any model loads: numeric ranges, PEFT keyword
arguments, and command-line flags spelled out in full (no unique-prefix abbreviations)."""

from __future__ import annotations

import math

import pytest
from peft import IA3Config, LoraConfig

from hf_transfer.cli import main
from hf_transfer.cli.parsing import parse_with_config
from hf_transfer.cli.train import make_parser
from hf_transfer.errors import ConfigError
from hf_transfer.finetune import FinetuneConfig
from hf_transfer.generate import GenerateConfig
from hf_transfer.labelmap import LabelMapConfig


@pytest.mark.parametrize(
    ("name", "value", "valid"),
    [
        ("learning_rate", 0.0, "> 0"),
        ("learning_rate", -1e-3, "> 0"),
        ("learning_rate", math.nan, "> 0"),
        ("head_learning_rate", -1.0, "> 0"),
        ("num_train_epochs", -1.0, ">= 0 (0: no training)"),
        ("per_device_train_batch_size", 0, ">= 1"),
        ("per_device_eval_batch_size", -4, ">= 1"),
        ("gradient_accumulation_steps", 0, ">= 1"),
        ("warmup_steps", -0.1, ">= 0 (below 1: a share of all steps)"),
        ("weight_decay", -0.01, ">= 0"),
        ("max_grad_norm", -1.0, ">= 0 (0: no clipping)"),
        ("max_steps", -2, ">= -1 (-1: num_train_epochs decides)"),
        ("head_init_scale", 0.0, "> 0"),
        ("max_length", 0, ">= 1"),
        ("prior_weight", 1.5, "in [0, 1]"),
    ],
)
def test_out_of_range_finetune_option(tmp_path, name, value, valid):
    with pytest.raises(ConfigError) as info:
        FinetuneConfig(output_dir=str(tmp_path), **{name: value})
    assert str(info.value) == f"{name}={value!r} must be {valid}."


def test_out_of_range_option_of_a_labelmap_run(tmp_path):
    """LabelMapConfig is a FinetuneConfig: the same checks, plus its own batch size."""
    with pytest.raises(ConfigError, match=r"^learning_rate=-1\.0 must be > 0\.$"):
        LabelMapConfig(output_dir=str(tmp_path), source_model="my-org/src", learning_rate=-1.0)
    with pytest.raises(ConfigError, match=r"^inference_batch_size=0 must be >= 1\.$"):
        LabelMapConfig(output_dir=str(tmp_path), source_model="my-org/src", inference_batch_size=0)


def test_option_that_is_not_a_number(tmp_path):
    with pytest.raises(ConfigError, match=r"^weight_decay='a lot' must be a number\.$"):
        FinetuneConfig(output_dir=str(tmp_path), weight_decay="a lot")


def test_boundary_values_are_accepted(tmp_path):
    config = FinetuneConfig(output_dir=str(tmp_path), num_train_epochs=0, max_steps=-1, max_grad_norm=0.0,
                            warmup_steps=0, weight_decay=0.0, prior_weight=1.0, wise_alpha=0.0)  # fmt: skip
    assert (config.num_train_epochs, config.max_steps, config.max_grad_norm) == (0, -1, 0.0)


def test_generate_temperature_nan(tmp_path):
    with pytest.raises(ConfigError, match="temperature=nan must be > 0"):
        GenerateConfig(target_labels=["a", "b"], output_dir=str(tmp_path), temperature=math.nan)


# -------------------------------------------------------------------------------------------------- peft_kwargs


def test_peft_config_class():
    from hf_transfer.classifier import peft_config_class  # here: the rest of the module runs without it

    assert peft_config_class("lora") is LoraConfig and peft_config_class("dora") is LoraConfig
    assert peft_config_class("ia3") is IA3Config


@pytest.mark.parametrize(
    ("method", "kwargs", "match"),
    [
        ("lora", {"rr": 4}, r"LoraConfig \(method='lora'\) does not take: 'rr' \(did you mean 'r'\?\)"),
        (
            "dora",
            {"r": 4, "lora_alpa": 8},
            r"LoraConfig \(method='dora'\) does not take: 'lora_alpa' \(did you mean "
            r"'lora_alpha'\?\)",
        ),  # fmt: skip
        ("ia3", {"r": 4}, r"IA3Config \(method='ia3'\) does not take: 'r'"),
        (
            "lora",
            '{"target_module": ["query"], "zzz": 1}',
            r"'target_module' \(did you mean 'target_modules'\?\), 'zzz'",
        ),
    ],
)
def test_unknown_peft_kwargs_are_refused(tmp_path, method, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        FinetuneConfig(output_dir=str(tmp_path), method=method, peft_kwargs=kwargs)


def test_valid_peft_kwargs_pass(tmp_path):
    peft_kwargs = {"r": 4, "lora_alpha": 8, "target_modules": ["query"], "use_dora": True}
    config = FinetuneConfig(output_dir=str(tmp_path), method="dora", peft_kwargs=peft_kwargs)
    assert config.peft_kwargs["lora_alpha"] == 8
    assert FinetuneConfig(output_dir=str(tmp_path), method="ia3", peft_kwargs={"feedforward_modules": []}).is_peft


# ---------------------------------------------------------------------------------------------------- CLI flags


def test_abbreviated_flag_is_refused(tmp_path):
    parser = make_parser("finetune")
    with pytest.raises(ConfigError, match="Unknown command-line argument.*--n_per_clas 8"):
        parse_with_config(parser, ["--n_per_clas", "8", "--output_dir", str(tmp_path)])
    data_args, _ = parse_with_config(make_parser("finetune"), ["--n_per_class", "8", "--output_dir", str(tmp_path)])
    assert data_args.n_per_class == 8


def test_abbreviated_config_flag_is_refused(tmp_path):
    """The pre-parser must not take --conf for --config either."""
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("n_per_class: 4\n")
    with pytest.raises(ConfigError, match="Unknown command-line argument.*--conf"):
        parse_with_config(make_parser("finetune"), ["--conf", str(recipe), "--output_dir", str(tmp_path)])


def test_abbreviated_flag_exits_2_from_the_command(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["finetune", "--n_per_clas", "8", "--output_dir", str(tmp_path)])
    assert info.value.code == 2
    assert "--n_per_clas" in capsys.readouterr().err


def test_out_of_range_flag_exits_2_from_the_command(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["finetune", "--learning_rate", "-1", "--output_dir", str(tmp_path)])
    assert info.value.code == 2
    assert "learning_rate=-1.0 must be > 0" in capsys.readouterr().err
