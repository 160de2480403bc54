"""`hf-transfer report`: a non-strategy subcommand of the same CLI."""

from __future__ import annotations

import json

import pytest

from hf_transfer.cli import main
from hf_transfer.cli.report import make_parser


def test_report_is_listed_and_its_help_renders(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "report" in capsys.readouterr().out
    assert "report.png" in make_parser().format_help()


def test_report_writes_files_and_prints_the_table(tmp_path, capsys):
    run = tmp_path / "runs" / "head-8shot"
    run.mkdir(parents=True)
    results = {"strategy": "finetune", "method": "head", "dataset": "bundled:sst2", "eval_split": "validation",
               "n_per_class": 8, "accuracy": 0.742, "f1_macro": 0.74, "wall_seconds": 4.2}  # fmt: skip
    (run / "results.json").write_text(json.dumps(results))
    assert main(["report", str(tmp_path / "runs"), "--output_dir", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "| sst2 validation | finetune/head | 8 | 0.742 | 0.740 | 4.2 | 1 |" in out
    assert str(tmp_path / "out" / "report.md") in out
    assert (tmp_path / "out" / "report.png").stat().st_size > 0


def test_report_on_an_empty_folder_exits_with_the_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["report", str(tmp_path)])
    assert exit_info.value.code == 2
    assert "No runs found" in capsys.readouterr().err


def test_report_marks_token_classification_rows(tmp_path, capsys):
    run = tmp_path / "runs" / "ner-head"
    run.mkdir(parents=True)
    results = {"strategy": "finetune", "method": "head", "dataset": "bundled:crossner_politics",
               "eval_split": "validation", "n_per_class": 2, "task": "token_classification", "accuracy": 0.64,
               "f1_micro": 0.046, "f1_macro": 0.048, "precision": 0.036, "recall": 0.063,
               "wall_seconds": 17.0}  # fmt: skip
    (run / "results.json").write_text(json.dumps(results))
    assert main(["report", str(tmp_path / "runs"), "--output_dir", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "| crossner_politics validation | finetune/head [entity micro-F1] | 2 | 0.046 | 0.048 | 17.0 | 1 |" in out
    assert "[entity micro-F1]" in " ".join(make_parser().format_help().split())  # however argparse wraps it
