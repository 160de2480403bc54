"""The hf-transfer command: help, YAML recipes (defaults < YAML < flags), loud errors, runs end to end."""

from __future__ import annotations

import json

import pytest
import yaml
from conftest import LABELS, scores_of

from hf_transfer import __version__
from hf_transfer.cli import main
from hf_transfer.cli.parsing import parse_with_config
from hf_transfer.cli.train import make_parser
from hf_transfer.config import DataArguments
from hf_transfer.data import load_data_args
from hf_transfer.errors import ConfigError
from hf_transfer.finetune import FinetuneConfig

pytestmark = pytest.mark.usefixtures("single_thread")


def write_yaml(path, values) -> str:
    """Write ``values`` (YAML text, or a mapping to dump) to ``path``."""
    path.write_text(values if isinstance(values, str) else yaml.safe_dump(values))
    return str(path)


def parse(argv):
    return parse_with_config(make_parser("finetune"), argv)


# --------------------------------------------------------------------------------------------------------------
# Help, version, commands
# --------------------------------------------------------------------------------------------------------------


def test_finetune_help(capsys):
    with pytest.raises(SystemExit) as info:
        main(["finetune", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for option in ("--method", "--config", "--dataset", "--n_per_class", "--label_descriptions", "--wise_alpha",
                   "--learning_rate"):  # fmt: skip
        assert option in out, option
    assert "hf-transfer finetune" in out
    assert "or a PEFT method name: 'lora'" in " ".join(out.split())  # joined help strings keep spaces


def test_top_level_help_lists_the_commands(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    assert "finetune" in capsys.readouterr().out


def test_version(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert f"hf-transfer {__version__}" in capsys.readouterr().out


def _exit_code(argv) -> int:
    try:
        return main(argv)
    except SystemExit as exit_:
        return 0 if exit_.code is None else exit_.code if isinstance(exit_.code, int) else 1


def test_unknown_command_fails(capsys):
    assert _exit_code(["bogus"]) != 0
    assert "invalid choice: 'bogus'" in capsys.readouterr().err


def test_no_command_fails(capsys):
    assert _exit_code([]) != 0
    captured = capsys.readouterr()
    assert "finetune" in captured.out + captured.err


# --------------------------------------------------------------------------------------------------------------
# YAML recipes: defaults < YAML < flags
# --------------------------------------------------------------------------------------------------------------


def test_defaults_without_config(tmp_path):
    data_args, config = parse(["--output_dir", str(tmp_path)])
    assert data_args.dataset == "bundled:sst2" and data_args.n_per_class is None and data_args.labels is None
    assert config.method == "auto" and config.auto_methods == ["head", "lora", "full"]
    assert config.num_train_epochs == 10.0
    assert config.output_dir == str(tmp_path)


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--method", "head"], 1e-2),  # 2e-5 left a head on frozen features where it started
        (["--method", "lora"], 5e-4),
        (["--method", "IA3"], 3e-3),
        (["--method", "loha"], 5e-4),
        (["--method", "head", "--learning_rate", "0.5"], 0.5),  # a given rate always wins
    ],
)
def test_learning_rate_defaults_by_method(tmp_path, flags, expected):
    _, config = parse([*flags, "--output_dir", str(tmp_path)])
    assert config.learning_rate == pytest.approx(expected)
    assert FinetuneConfig(output_dir=str(tmp_path), method=flags[1]).learning_rate == pytest.approx(
        expected if "--learning_rate" not in flags else 1e-2
    )


def test_yaml_replaces_defaults_and_flags_replace_yaml(tmp_path):
    recipe = write_yaml(
        tmp_path / "recipe.yaml",
        {
            "dataset": "my/data.jsonl",
            "labels": ["neg", "pos"],
            "n_per_class": 8,
            "method": "lora",
            "peft_kwargs": {"r": 4},
            "label_descriptions": {"pos": ["good", "great"]},
            "learning_rate": 0.1,
            "num_train_epochs": 3,
            "freeze_embeddings": True,
            "output_dir": str(tmp_path / "from-yaml"),
        },
    )
    data_args, config = parse(["--config", recipe, "--learning_rate", "0.5", "--n_per_class", "2"])
    # flags beat YAML
    assert config.learning_rate == 0.5 and data_args.n_per_class == 2
    # YAML beats defaults, with its types kept
    assert data_args.dataset == "my/data.jsonl" and data_args.labels == ["neg", "pos"]
    assert config.method == "lora" and config.is_peft
    assert config.peft_kwargs == {"r": 4}
    assert config.label_descriptions == {"pos": ["good", "great"]}
    assert config.num_train_epochs == 3 and config.freeze_embeddings is True
    assert config.output_dir == str(tmp_path / "from-yaml")
    # untouched options keep their defaults
    assert config.max_length == 128 and config.wise_alpha == 1.0 and data_args.eval_split == "validation"


def test_yaml_scientific_notation_and_flag_after_config(tmp_path):
    # PyYAML reads '1e-3' (no dot) as a string; the parser must still give a float.
    recipe = write_yaml(tmp_path / "recipe.yaml", "learning_rate: 1e-3\nmethod: head\n")
    _, config = parse(["--method", "full", "--config", recipe, "--output_dir", str(tmp_path)])
    assert config.learning_rate == pytest.approx(1e-3) and isinstance(config.learning_rate, float)
    assert config.method == "full"  # a flag wins wherever it stands relative to --config


def test_yaml_values_are_validated_like_flags(tmp_path):
    recipe = write_yaml(tmp_path / "recipe.yaml", {"method": "full", "peft_kwargs": {"r": 4}})
    with pytest.raises(ValueError, match="not a PEFT method"):
        parse(["--config", recipe, "--output_dir", str(tmp_path)])


@pytest.mark.parametrize(
    ("content", "fragments"),
    [
        ({"learning_rat": 0.1}, ["unknown option(s): 'learning_rat' (did you mean 'learning_rate'?)"]),
        ({"metod": "head", "dataset": "x"}, ["'metod'", "did you mean 'method'"]),
        ({"zzzzzz": 1}, ["'zzzzzz'", "unknown option"]),
        ("", ["is empty"]),
        ("# only a comment\n", ["is empty"]),
        ("- method: head\n- dataset: x\n", ["holds a list, not a mapping"]),
        ("just a string", ["holds a str", "mapping"]),
        ("method: [unclosed\n", ["is not valid YAML"]),
    ],
    ids=["typo", "typo-among-good", "far-off", "empty", "comment-only", "list", "scalar", "invalid"],
)
def test_bad_yaml_is_a_config_error(tmp_path, content, fragments):
    recipe = write_yaml(tmp_path / "recipe.yaml", content)
    with pytest.raises(ConfigError) as info:
        parse(["--config", recipe])
    message = str(info.value)
    assert "recipe.yaml" in message
    for fragment in fragments:
        assert fragment in message, message


def test_unknown_yaml_key_without_close_match_has_no_hint(tmp_path):
    recipe = write_yaml(tmp_path / "recipe.yaml", {"zzzzzz": 1})
    with pytest.raises(ConfigError) as info:
        parse(["--config", recipe])
    assert "did you mean" not in str(info.value)


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        parse(["--config", str(tmp_path / "nope.yaml")])


def test_unknown_flag_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="Unknown command-line argument.*--bogus_flag"):
        parse(["--output_dir", str(tmp_path), "--bogus_flag", "1"])


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--bogus_flag", "1"], "Unknown command-line argument"),
        (["--method", "bogus"], "method='bogus' is not known"),
        (["--n_per_class", "-1"], "n_per_class=-1"),
    ],
)
def test_main_reports_bad_options_without_traceback(tmp_path, capsys, argv, fragment):
    with pytest.raises(SystemExit) as info:
        main(["finetune", "--output_dir", str(tmp_path), *argv])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "hf-transfer finetune: error:" in err and fragment in err and "Traceback" not in err


def test_main_reports_bad_data_without_traceback(tmp_path, capsys, tiny_model_dir):
    argv = ["finetune", "--dataset", str(tmp_path / "missing.jsonl"), "--model_name_or_path", tiny_model_dir]
    with pytest.raises(SystemExit) as info:
        main([*argv, "--output_dir", str(tmp_path / "out")])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "missing.jsonl' is neither an existing file or folder" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_bad_model_exits_cleanly(sentiment_dir, tmp_path, capsys):
    argv = ["--dataset", str(sentiment_dir), "--model_name_or_path", "/no/such/model", "--output_dir", str(tmp_path)]
    with pytest.raises(SystemExit) as exit_info:
        main(["finetune", *argv])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Cannot load the config of model '/no/such/model'" in err and "Traceback" not in err


# --------------------------------------------------------------------------------------------------------------
# End to end
# --------------------------------------------------------------------------------------------------------------


def test_main_runs_a_yaml_recipe_end_to_end(tmp_path, capsys, tiny_model_dir, target_dir):
    recipe = write_yaml(
        tmp_path / "recipe.yaml",
        {
            "dataset": str(target_dir),
            "model_name_or_path": tiny_model_dir,
            "method": "head",
            "n_per_class": 4,
            "num_train_epochs": 1,
            "learning_rate": 0.01,
            "max_length": 16,
            "use_cpu": True,
            "disable_tqdm": True,
            "logging_strategy": "no",
            "output_dir": str(tmp_path / "ignored"),
        },
    )
    out = tmp_path / "run"
    assert main(["finetune", "--config", recipe, "--output_dir", str(out), "--eval_split", "test"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["method"] == "head" and results["n_train"] == 12 and results["n_eval"] == 12
    assert results["eval_split"] == "test" and results["labels"] == LABELS
    _, test_ds, _ = load_data_args(DataArguments(dataset=str(target_dir), eval_split="test"))
    assert scores_of(out, test_ds) == pytest.approx({"accuracy": results["accuracy"], "f1_macro": results["f1_macro"]})
    assert (out / "config.json").is_file() and (out / "model.safetensors").is_file()
    assert not (tmp_path / "ignored").exists()
    stdout = capsys.readouterr().out
    summary = json.loads(stdout[stdout.rindex("{\n") :])  # the indented JSON summary comes last
    assert summary["accuracy"] == results["accuracy"] and "labels" not in summary
