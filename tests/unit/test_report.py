"""The strategy-comparison report, rendered from recorded run results (no training)."""

from __future__ import annotations

import json

import pytest

from hf_transfer import ConfigError
from hf_transfer.report import collect_runs, report_rows, report_table, write_report


def _run(strategy="finetune", method="lora", n=8, acc=0.75, f1=0.74, wall=10.0, seed=0, **extra):
    common = {"dataset": "bundled:sst2", "eval_split": "validation"}
    return {"strategy": strategy, "method": method, "n_per_class": n, "accuracy": acc, "f1_macro": f1,
            "wall_seconds": wall, "seed": seed, **common, **extra}  # fmt: skip


@pytest.fixture
def runs_dir(tmp_path):
    """Recorded results.json files laid out like outputs/: nested folders, plus things the report must skip."""
    recorded = {
        "sst2/zeroshot": _run(method="full", n=0, acc=0.741, f1=0.739, wall=4.0),
        "sst2/head-8shot": _run(method="head", n=8, acc=0.742, f1=0.740, wall=4.2),
        "sst2/lora-8shot/seed0": _run(n=8, acc=0.750, f1=0.749, wall=13.0),
        "sst2/lora-8shot/seed1": _run(n=8, acc=0.760, f1=0.757, wall=15.0, seed=1),
        "sst2/lora-64shot": _run(n=64, acc=0.771, f1=0.770, wall=33.0),
        "sst2/full-all": _run(method="full", n=None, acc=0.85, f1=0.849, wall=120.0),
        "labelmap/sst2-to-amazon": _run(strategy="labelmap", method="full", n=0, acc=0.846, f1=0.845, wall=40.0,
                                        dataset="bundled:sentiment_sentences_amazon", zero_shot_accuracy=0.812,
                                        zero_shot_f1_macro=0.80, pool_seconds=3.0),
    }  # fmt: skip
    for name, results in recorded.items():
        (tmp_path / name).mkdir(parents=True)
        (tmp_path / name / "results.json").write_text(json.dumps(results))
    (tmp_path / "generate").mkdir()
    (tmp_path / "generate" / "results.json").write_text(json.dumps({"strategy": "generate", "n_rows": 90}))
    (tmp_path / "results.json").write_text(json.dumps(list(recorded.values())))  # an aggregate, like the demo's
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "results.json").write_text("{not json")
    return tmp_path


def test_collect_runs_scans_recursively_and_skips_non_runs(runs_dir):
    runs = collect_runs(runs_dir)
    assert len(runs) == 7
    assert {r["_path"] for r in runs} >= {"sst2/lora-8shot/seed1", "labelmap/sst2-to-amazon"}


def test_table_rows_average_seeds_and_keep_zero_shot_floors(runs_dir):
    rows = {(r.target, r.strategy, r.labels_per_class): r for r in report_rows(collect_runs(runs_dir))}
    lora8 = rows[("sst2 validation", "finetune/lora", 8)]
    assert lora8.runs == 2 and lora8.accuracy == pytest.approx(0.755) and lora8.wall_seconds == pytest.approx(14.0)
    assert lora8.accuracy_std == pytest.approx(0.00707, abs=1e-4)
    assert rows[("sst2 validation", "finetune zero-shot", 0)].zero_shot
    assert rows[("sst2 validation", "finetune/full", "all")].accuracy == 0.85
    floor = rows[("amazon validation", "labelmap zero-shot through the label map", 0)]
    assert floor.zero_shot and floor.accuracy == 0.812 and floor.wall_seconds == 3.0
    assert rows[("amazon validation", "labelmap (pseudo-label + distil)", 0)].accuracy == 0.846


def test_markdown_table_content(runs_dir):
    table = report_table(report_rows(collect_runs(runs_dir)))
    lines = table.splitlines()
    assert lines[0] == "| evaluated on | strategy | labels/class | accuracy | macro-F1 | wall s | runs |"
    assert "| sst2 validation | finetune/lora | 8 | 0.755 ± 0.007 | 0.753 | 14.0 | 2 |" in lines
    assert "| sst2 validation | finetune/lora | 64 | 0.771 | 0.770 | 33.0 | 1 |" in lines
    assert "| sst2 validation | finetune zero-shot | 0 | 0.741 | 0.739 | 4.0 | 1 |" in lines
    sst2 = [line for line in lines if line.startswith("| sst2")]
    assert [line.split(" | ")[2] for line in sst2] == ["0", "8", "8", "64", "all"]  # ordered by labels/class


def test_write_report_writes_markdown_and_a_png(runs_dir, tmp_path):
    out = tmp_path / "report"
    report = write_report(runs_dir, out, title="SST-2")
    assert report.markdown_path == out / "report.md" and report.png_path == out / "report.png"
    png = report.png_path.read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 5_000
    markdown = report.markdown_path.read_text()
    assert markdown.startswith("# SST-2") and report.table in markdown and "![accuracy" in markdown
    assert "`sst2/lora-8shot/seed1`: finetune, method lora, seed 1" in markdown


def test_a_folder_with_no_runs_is_a_clear_error(tmp_path):
    (tmp_path / "generate").mkdir()
    (tmp_path / "generate" / "results.json").write_text(json.dumps({"strategy": "generate"}))
    with pytest.raises(ConfigError, match="No runs found"):
        write_report(tmp_path)
    with pytest.raises(ConfigError, match="does not exist"):
        write_report(tmp_path / "missing")
    assert not (tmp_path / "report.md").exists()


def test_runs_on_synthetic_rows_are_their_own_line_not_the_zero_shot_floor(tmp_path):
    synthetic = {"extra_train": "outputs/sst2/generate/dataset"}
    recorded = {
        "zeroshot": _run(method="full", n=0, acc=0.741),
        "synthetic": _run(method="full", n=0, acc=0.775, **synthetic),
        "mixed": _run(method="full", n=8, acc=0.773, **synthetic),
        "real8": _run(method="full", n=8, acc=0.752),
    }
    for name, results in recorded.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "results.json").write_text(json.dumps(results))
    rows = {(r.strategy, r.labels_per_class): r for r in report_rows(collect_runs(tmp_path))}
    assert rows[("finetune zero-shot", 0)].accuracy == 0.741 and rows[("finetune zero-shot", 0)].runs == 1
    assert (
        rows[("generate + finetune/full", 0)].accuracy == 0.775 and not rows[("generate + finetune/full", 0)].zero_shot
    )
    assert rows[("generate + finetune/full", 8)].accuracy == 0.773
    assert rows[("finetune/full", 8)].accuracy == 0.752 and rows[("finetune/full", 8)].runs == 1


def test_self_training_is_its_own_line_without_a_zero_shot_floor(tmp_path):
    """A labelmap run whose source has the target's labels (identity map) is self-training: its source's
    accuracy is another run's row, not a zero-shot floor."""
    recorded = {
        "zeroshot": _run(method="full", n=0, acc=0.741),
        "self-train": _run(strategy="labelmap", method="full", n=0, acc=0.770, map_method="identity",
                           zero_shot_accuracy=0.764, zero_shot_f1_macro=0.76, pool_seconds=3.0),
    }  # fmt: skip
    for name, results in recorded.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "results.json").write_text(json.dumps(results))
    rows = report_rows(collect_runs(tmp_path))
    assert [(r.strategy, r.accuracy, r.zero_shot) for r in rows] == [
        ("finetune zero-shot", 0.741, True),
        ("self-training (pseudo-label + distil)", 0.770, False),
    ]


def _token_run(**extra):
    """A token-classification (NER) run: word accuracy, entity-level F1s; n_per_class is sentences per type."""
    return _run(method="head", n=2, acc=0.64, f1=0.048, wall=17.0, dataset="bundled:crossner_politics",
                task="token_classification", f1_micro=0.046, precision=0.036, recall=0.063,
                labels=["O", "B-country", "I-country"], **extra)  # fmt: skip


def test_token_run_rows_headline_entity_micro_f1(tmp_path):
    recorded = {
        "ner/head": _token_run(),
        "ner/labelmap": _run(strategy="labelmap", method="full", n=0, acc=0.7, f1=0.2, dataset="bundled:conll2003",
                             task="token_classification", f1_micro=0.3, zero_shot_accuracy=0.9,
                             zero_shot_f1_micro=0.25, zero_shot_f1_macro=0.22, pool_seconds=2.0),
        "sst2/head": _run(method="head", n=8, acc=0.742, f1=0.740, wall=4.2),
    }  # fmt: skip
    for name, results in recorded.items():
        (tmp_path / name).mkdir(parents=True)
        (tmp_path / name / "results.json").write_text(json.dumps(results))
    rows = {(r.target, r.strategy): r for r in report_rows(collect_runs(tmp_path))}
    ner = rows[("crossner_politics validation", "finetune/head [entity micro-F1]")]
    assert ner.accuracy == 0.046 and ner.f1_macro == 0.048 and ner.labels_per_class == 2  # not word accuracy
    floor = rows[("conll2003 validation", "labelmap zero-shot through the label map [entity micro-F1]")]
    assert floor.zero_shot and floor.accuracy == 0.25  # a token reference's headline is entity micro-F1 too
    assert rows[("conll2003 validation", "labelmap (pseudo-label + distil) [entity micro-F1]")].accuracy == 0.3
    assert rows[("sst2 validation", "finetune/head")].accuracy == 0.742  # a single-label row is unmarked
    table = report_table(list(rows.values()))
    assert "| crossner_politics validation | finetune/head [entity micro-F1] | 2 | 0.046 | 0.048 | 17.0 | 1 |" in table
    markdown = write_report(tmp_path, tmp_path / "report").markdown_path.read_text()
    assert "Rows marked `[entity micro-F1]` show that score instead" in markdown
    assert "sentences per entity type" in markdown


def test_markdown_notes_marked_rows_only_when_there_are_some(runs_dir, tmp_path):
    assert "Rows marked" not in write_report(runs_dir, tmp_path / "plain").markdown_path.read_text()
    (runs_dir / "multi").mkdir()
    (runs_dir / "multi" / "results.json").write_text(json.dumps(_run(task="multi_label", acc=0.1, f1_micro=0.4)))
    markdown = write_report(runs_dir, tmp_path / "multi").markdown_path.read_text()
    assert "Rows marked `[micro-F1]` show that score instead." in markdown and "entity" not in markdown
