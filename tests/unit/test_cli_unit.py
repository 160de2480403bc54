"""The CLI: help renders, YAML/flag precedence, loud failures on unknown or malformed config."""

from __future__ import annotations

import json

import pytest

from hf_transfer.cli import main
from hf_transfer.cli.parsing import ConfigError, parse_with_config
from hf_transfer.cli.train import make_parser


def write_yaml(tmp_path, text: str) -> str:
    path = tmp_path / "recipe.yaml"
    path.write_text(text)
    return str(path)


def test_help_renders_with_documented_options(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["finetune", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--method", "--config", "--label_descriptions", "--n_per_class", "--learning_rate"):
        assert flag in out
    assert "or a PEFT method name: 'lora'" in " ".join(out.split())  # joined help strings keep spaces


def test_top_level_help_and_unknown_command(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0 and "finetune" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        main(["distil-everything"])
    assert exit_info.value.code != 0


def test_precedence_default_then_yaml_then_flag(tmp_path):
    recipe = write_yaml(tmp_path, "learning_rate: 0.001\nmethod: lora\nn_per_class: 8\n")
    parser = make_parser("finetune")
    data_args, config = parse_with_config(parser, ["--config", recipe, "--output_dir", str(tmp_path)])
    assert (config.learning_rate, config.method, data_args.n_per_class) == (0.001, "lora", 8)
    assert config.num_train_epochs == 10.0  # untouched default
    data_args, config = parse_with_config(
        make_parser("finetune"), ["--config", recipe, "--learning_rate", "0.5", "--output_dir", str(tmp_path)]
    )
    assert config.learning_rate == 0.5 and config.method == "lora"


def test_yaml_mappings_reach_the_config(tmp_path):
    recipe = write_yaml(tmp_path, "label_descriptions:\n  negative: [bad, awful]\n  positive: good\n")
    _, config = parse_with_config(make_parser("finetune"), ["--config", recipe, "--output_dir", str(tmp_path)])
    assert config.label_descriptions == {"negative": ["bad", "awful"], "positive": "good"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("learning_rat: 0.1\n", "unknown option(s): 'learning_rat' (did you mean 'learning_rate'?)"),
        ("", "is empty"),
        ("- a\n- b\n", "holds a list, not a mapping"),
        ("a: [unclosed\n", "is not valid YAML"),
    ],
)
def test_bad_config_files_fail_loudly(tmp_path, text, message):
    with pytest.raises(ConfigError) as err:
        parse_with_config(make_parser("finetune"), ["--config", write_yaml(tmp_path, text)])
    assert message in str(err.value)


def test_unknown_flag_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="Unknown command-line argument"):
        parse_with_config(make_parser("finetune"), ["--lerning_rate", "1"])
    with pytest.raises(ConfigError, match="does not exist"):
        parse_with_config(make_parser("finetune"), ["--config", str(tmp_path / "missing.yaml")])


def test_bad_value_exits_with_a_clear_message(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["finetune", "--method", "lorax", "--output_dir", str(tmp_path)])
    assert exit_info.value.code == 2
    assert "method='lorax' is not known" in capsys.readouterr().err


def test_cli_runs_a_recipe_end_to_end(tiny_encoder, sentiment_dir, tmp_path, capsys):
    recipe = write_yaml(
        tmp_path,
        f"dataset: {sentiment_dir}\nmodel_name_or_path: {tiny_encoder}\nmethod: head\nn_per_class: 2\n"
        "num_train_epochs: 1\nlearning_rate: 0.01\n",
    )
    assert main(["finetune", "--config", recipe, "--output_dir", str(tmp_path / "out"), "--disable_tqdm", "true"]) == 0
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["n_train"] == 4 and results["method"] == "head"
    assert '"accuracy"' in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--dataset", "no/such/file.jsonl"], "is neither an existing file or folder"),
        (["--model_name_or_path", "/no/such/model"], "Cannot load the config of model '/no/such/model'"),
    ],
)
def test_bad_data_or_model_exit_cleanly(tiny_encoder, sentiment_dir, tmp_path, capsys, args, message):
    base = ["--dataset", str(sentiment_dir), "--model_name_or_path", tiny_encoder, "--output_dir", str(tmp_path)]
    with pytest.raises(SystemExit) as exit_info:
        main(["finetune", *base, *args])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
