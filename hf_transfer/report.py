"""Compare strategies across runs: a Markdown table and a PNG plot from the ``results.json`` of each run,
one row per strategy × labels per class (averaged over seeds), zero-shot floors as reference lines.

A row's headline ("accuracy" column) is accuracy, except for multi-label runs (micro-F1, the row marked
``[micro-F1]``) and token-classification runs (entity micro-F1, marked ``[entity micro-F1]``; their labels
per class are sentences per entity type)."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError
from .results import RunResult

REPORT_MD = "report.md"
REPORT_PNG = "report.png"
ALL = "all"  # labels per class when a run trained on the whole train split
MICRO_F1 = " [micro-F1]"  # a multi-label row's headline: micro-F1 (subset accuracy says little with 28 labels)
ENTITY_MICRO_F1 = " [entity micro-F1]"  # a token-classification row's headline: entity micro-F1, not word accuracy


@dataclass(frozen=True)
class Row:
    """One table row: runs of one strategy on one target at one labels-per-class, averaged."""

    target: str
    strategy: str
    labels_per_class: int | str  # an int, or "all"
    accuracy: float
    accuracy_std: float
    f1_macro: float
    wall_seconds: float
    runs: int
    zero_shot: bool = False  # a floor: no labelled example of the target was trained on


@dataclass(frozen=True)
class Report:
    table: str
    markdown_path: Path
    png_path: Path
    rows: list[Row]


def collect_runs(folder: str | Path) -> list[RunResult]:
    """Each ``results.json`` under ``folder`` that holds one run with an accuracy (not aggregate lists, not
    generate runs), with ``_path``: its folder relative to ``folder``."""
    root = Path(folder)
    if not root.is_dir():
        raise ConfigError(f"Report folder {str(root)!r} does not exist.")
    runs = []
    for path in sorted(root.rglob("results.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if isinstance(data, dict) and isinstance(data.get("accuracy"), int | float) and data.get("strategy"):
            runs.append(RunResult.from_dict({**data, "_path": str(path.parent.relative_to(root))}))
    if not runs:
        raise ConfigError(
            f"No runs found under {str(root)!r}: no results.json with an accuracy. Point the report at the "
            "folder the runs wrote to (their output_dir or a parent of it)."
        )
    return runs


def _target(run: RunResult) -> str:
    dataset = str(run.dataset or "?").removeprefix("bundled:").replace("sentiment_sentences_", "")
    return f"{dataset} {run.eval_split or ''}".strip()


def run_points(run: Mapping) -> list[tuple[str, str, int | str, float, float, float, bool]]:
    """``(target, row name, labels_per_class, accuracy, f1, wall_seconds, zero_shot)`` for one run, and one
    per zero-shot floor the run measured (labelmap's zero-shot through the map)."""
    run = RunResult.from_dict(run)
    target = _target(run)
    # a multi-label (token-classification) reference's accuracy slot is (entity) micro-F1
    metric = _headline_mark(run)
    floors = [(target, f"{run.strategy} {r.name}{metric}", 0, r.accuracy, r.f1_macro, float(r.seconds or 0.0), True)
              for r in run.references() if r.floor]  # fmt: skip
    n = ALL if run.n_per_class is None else int(run.n_per_class)
    wall = float(run.wall_seconds or 0.0)
    if metric and run.f1_micro is not None:  # the row shows (entity) micro-F1, and says so
        return [*floors, (target, f"{run.report_name()}{metric}", n, run.f1_micro, run.f1_macro, wall,
                          run.zero_shot)]  # fmt: skip
    return [*floors, (target, run.report_name(), n, run.accuracy, run.f1_macro, wall, run.zero_shot)]


def _headline_mark(run: RunResult) -> str:
    """What a run's row shows in place of accuracy, as the suffix of its name ("" for accuracy)."""
    if run.token_classification:
        return ENTITY_MICRO_F1
    return MICRO_F1 if run.multi_label else ""


def _group(items: Iterable, key: Callable) -> dict:
    """``key(item) -> [items]``, in first-seen order."""
    groups = defaultdict(list)
    for item in items:
        groups[key(item)].append(item)
    return groups


def report_rows(runs: Iterable[Mapping]) -> list[Row]:
    """Group the runs' points by (target, strategy, labels per class) and average over seeds."""
    rows = []
    points = (point for run in runs for point in run_points(run))
    for (target, strategy, n), group in _group(points, lambda p: p[:3]).items():
        _, _, _, accs, f1s, walls, zero_shot = zip(*group)
        mean = sum(accs) / len(accs)
        std = math.sqrt(sum((a - mean) ** 2 for a in accs) / (len(accs) - 1)) if len(accs) > 1 else 0.0
        rows.append(Row(target=target, strategy=strategy, labels_per_class=n, accuracy=mean, accuracy_std=std,
                        f1_macro=sum(f1s) / len(f1s), wall_seconds=sum(walls) / len(walls), runs=len(group),
                        zero_shot=zero_shot[-1]))  # fmt: skip
    return sorted(rows, key=lambda r: (r.target, _n_key(r.labels_per_class), not r.zero_shot, r.strategy))


def _n_key(n: int | str) -> float:
    return math.inf if n == ALL else float(n)


def report_table(rows: Sequence[Row]) -> str:
    """The Markdown table: target, strategy, labels/class, accuracy (± std over runs), macro-F1, wall s, runs."""
    lines = [
        "| evaluated on | strategy | labels/class | accuracy | macro-F1 | wall s | runs |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        acc = f"{r.accuracy:.3f}" + (f" ± {r.accuracy_std:.3f}" if r.runs > 1 else "")
        lines.append(
            f"| {r.target} | {r.strategy} | {r.labels_per_class} | {acc} | {r.f1_macro:.3f} | "
            f"{r.wall_seconds:.1f} | {r.runs} |"
        )
    return "\n".join(lines)


def plot_report(rows: Sequence[Row], path: str | Path, title: str | None = None) -> Path:
    """Accuracy vs labels per class (categorical axis, "all" last), a line per strategy, a panel per target;
    zero-shot floors are dashed horizontal lines."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    panels = sorted(_group(rows, lambda r: r.target).items())
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 5.2), squeeze=False)
    for ax, (target, mine) in zip(axes[0], panels):
        counts = sorted({r.labels_per_class for r in mine if not r.zero_shot}, key=_n_key)
        position = {n: i for i, n in enumerate(counts)}
        by_strategy = _group((r for r in mine if not r.zero_shot), lambda r: r.strategy)
        for strategy, points in sorted(by_strategy.items()):
            points.sort(key=lambda r: _n_key(r.labels_per_class))
            xs = [position[r.labels_per_class] for r in points]
            ax.errorbar(xs, [r.accuracy for r in points], yerr=[r.accuracy_std for r in points], marker="o",
                        capsize=3, label=strategy)  # fmt: skip
        for i, r in enumerate(x for x in mine if x.zero_shot):
            ax.axhline(r.accuracy, linestyle="--", color=f"C{(len(by_strategy) + i) % 10}", alpha=0.8,
                       label=f"{r.strategy}: {r.accuracy:.3f}")  # fmt: skip
        ax.set_xticks(range(len(counts)), [str(n) for n in counts])
        if len(counts) == 1:
            ax.set_xlim(-0.5, 0.5)
        ax.set(xlabel="labelled examples per class", ylabel="accuracy", title=target)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_report(
    folder: str | Path, output_dir: str | Path | None = None, *, title: str = "Strategy comparison"
) -> Report:
    """Write ``report.md`` (table, plot, the runs used) and ``report.png`` for the runs under ``folder`` to
    ``output_dir`` (default: ``folder``)."""
    runs = collect_runs(folder)
    rows = report_rows(runs)
    out = Path(output_dir) if output_dir is not None else Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    png = plot_report(rows, out / REPORT_PNG, title=title)
    table = report_table(rows)
    sources = "\n".join(
        f"- `{r['_path'] or '.'}`: {r['strategy']}"
        + (f", method {r['method']}" if r.get("method") else "")
        + (f", seed {r['seed']}" if r.get("seed") is not None else "")
        for r in runs
    )
    marks = [mark.strip() for mark in (MICRO_F1, ENTITY_MICRO_F1) if any(r.strategy.endswith(mark) for r in rows)]
    note = f" Rows marked {' or '.join(f'`{m}`' for m in marks)} show that score instead." if marks else ""
    if ENTITY_MICRO_F1.strip() in marks:
        note += " A token-classification run's labels per class are sentences per entity type."
    markdown = (
        f"# {title}\n\n{len(runs)} run(s) under `{folder}`; accuracy ± sample std over runs with the same "
        f"strategy and labels per class.{note}\n\n{table}\n\n![accuracy vs labels per class]({png.name})\n\n"
        f"## Runs\n\n{sources}\n"
    )
    md = out / REPORT_MD
    md.write_text(markdown)
    return Report(table=table, markdown_path=md, png_path=png, rows=rows)
