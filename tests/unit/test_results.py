"""Typed run results (results.json) and the layering they allow: card and report know no strategy."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from hf_transfer import ConfigError
from hf_transfer.finetune import FinetuneResult
from hf_transfer.labelmap import LabelMapResult
from hf_transfer.model_card import build_model_card
from hf_transfer.report import run_points
from hf_transfer.results import Reference, RunResult, result_type

PACKAGE = Path(__file__).resolve().parents[2] / "hf_transfer"
STRATEGIES = ("finetune", "labelmap", "generate")


def _labelmap(**overrides) -> LabelMapResult:
    values = dict(strategy="labelmap", accuracy=0.85, f1_macro=0.84, labels=["neg", "pos"], n_per_class=0,
                  dataset="bundled:sentiment_sentences_amazon", eval_split="validation", n_pool=400,
                  source_model="my/sst2", zero_shot_accuracy=0.8, zero_shot_f1_macro=0.79, pool_seconds=2.0,
                  map_method="explicit", label_map={"negative": "neg", "positive": "pos"},
                  rounds=[{"round": 1, "pseudo_labelled": 300, "pseudo_label_accuracy": 0.9}])  # fmt: skip
    return LabelMapResult(**{**values, **overrides})


def test_results_json_round_trips_to_the_strategy_class_and_keeps_unknown_keys(tmp_path):
    result = _labelmap()
    result["note"] = "added by a script"  # an undeclared key is kept, not dropped
    (tmp_path / "results.json").write_text(result.to_json())
    loaded = RunResult.load(tmp_path)
    assert type(loaded) is LabelMapResult and loaded == result and loaded.to_dict() == result.to_dict()
    assert loaded["note"] == "added by a script" and loaded.extra == {"note": "added by a script"}
    assert json.loads((tmp_path / "results.json").read_text())["zero_shot_accuracy"] == 0.8  # flat JSON


def test_a_result_reads_as_a_mapping_like_the_dicts_it_replaced():
    result = FinetuneResult(strategy="finetune", accuracy=0.7, f1_macro=0.69, method="lora", n_per_class=8)
    assert result["accuracy"] == result.accuracy == 0.7 and result.get("missing", "-") == "-"
    assert "method" in result and "missing" not in result and dict(result)["method"] == "lora"
    assert {**result, "recipe": "r.yaml"}["recipe"] == "r.yaml"
    result["accuracy"] = 0.75  # a declared field is set as the attribute
    assert result.accuracy == 0.75 and "accuracy" not in result.extra


def test_registered_strategies_resolve_to_their_result_class():
    assert result_type("finetune") is FinetuneResult and result_type("labelmap") is LabelMapResult
    assert result_type("someone-elses") is RunResult  # an unregistered strategy still loads, as the base class
    assert type(RunResult.from_dict({"strategy": "someone-elses", "accuracy": 0.5, "f1_macro": 0.5})) is RunResult
    with pytest.raises(ConfigError, match="Not a run result"):
        RunResult.from_dict({"accuracy": 0.5})
    with pytest.raises(ConfigError, match="Not a complete run result"):
        RunResult.from_dict({"strategy": "finetune", "accuracy": 0.5})


def test_each_strategy_contributes_its_own_card_section_and_report_rows():
    labelmap = _labelmap()
    assert labelmap.references() == [Reference("zero-shot through the label map", 0.8, 0.79, 2.0, floor=True)]
    card = build_model_card(labelmap).text
    assert (
        "| round 1: pseudo-labelled rows | 300 |" in card and "| accuracy, zero-shot through the label map |" in card
    )
    assert "| `negative` | `neg` |" in card  # the label map section, from the result's card variables
    assert "Pseudo-labels inherit the source classifier's biases" in card
    names = [p[1] for p in run_points(labelmap)]
    assert names == ["labelmap zero-shot through the label map", "labelmap (pseudo-label + distil)"]

    teacher = _labelmap(map_method="identity")  # self-training: the source is a teacher, not a floor
    assert [p[1] for p in run_points(teacher)] == ["self-training (pseudo-label + distil)"]
    assert "the teacher (source model) alone: 0.800" in build_model_card(teacher).text

    finetune = FinetuneResult(strategy="finetune", accuracy=0.7, f1_macro=0.69, labels=["a", "b"], method="head",
                              n_per_class=0, n_train=0)  # fmt: skip
    text = build_model_card(finetune).text
    assert "pseudo-label" not in text and "round 1" not in text and "Label map" not in text
    assert [(p[1], p[6]) for p in run_points(finetune)] == [("finetune zero-shot", True)]
    multi = FinetuneResult(strategy="finetune", accuracy=0.1, f1_macro=0.3, f1_micro=0.4, task="multi_label",
                           method="head", n_per_class=8)  # fmt: skip
    assert [(p[1], p[3]) for p in run_points(multi)] == [("finetune/head [micro-F1]", 0.4)]


def _imports(path: Path) -> set[str]:
    """The hf_transfer modules a file imports, as absolute dotted names."""
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    package = parts[:-1] if parts[-1] != "__init__" else parts[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = list(package[: len(package) - node.level + 1]) if node.level else []
            module = ".".join([*base, *(node.module.split(".") if node.module else [])])
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.startswith("hf_transfer")}


def _strategy_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in STRATEGIES else None


def test_no_strategy_imports_another_and_the_core_imports_none():
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        if rel.parts[0] == "cli" or rel.name == "__init__.py" and len(rel.parts) == 1:
            continue  # the CLI and the package's lazy re-exports sit above the strategies
        own = rel.parts[0] if rel.parts[0] in STRATEGIES else None
        for module in _imports(path):
            other = _strategy_of(module)
            if other and other != own:
                problems.append(f"{rel} imports {module}")
    assert not problems, problems
