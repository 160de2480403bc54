"""Compare strategies across runs: a Markdown table and a PNG plot from the ``results.json`` of each run.

Every strategy writes ``results.json`` into its ``output_dir``; :func:`collect_runs` finds them under a
folder (recursively), :func:`report_table` turns them into strategy × labels-per-class rows (accuracy,
macro-F1, wall time; averaged over seeds), :func:`plot_report` draws accuracy against labels per class,
one line per strategy, with the zero-shot floor as a reference line, and :func:`write_report` writes both.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError

REPORT_MD = "report.md"
REPORT_PNG = "report.png"
ALL = "all"  # labels per class when a run trained on the whole train split


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


def collect_runs(folder: str | Path) -> list[dict]:
    """Every run's results under ``folder``: each ``results.json`` (searched recursively) that holds one run
    with an accuracy. Aggregate files (a JSON list, like the demo's summary) and runs that do not classify
    (generate) are skipped. Each run gets ``_path``, its folder relative to ``folder``."""
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
            runs.append({**data, "_path": str(path.parent.relative_to(root))})
    if not runs:
        raise ConfigError(
            f"No runs found under {str(root)!r}: no results.json with an accuracy. Point the report at the "
            "folder the runs wrote to (their output_dir or a parent of it)."
        )
    return runs


def _target(run: Mapping) -> str:
    dataset = str(run.get("dataset") or "?").removeprefix("bundled:").replace("sentiment_sentences_", "")
    return f"{dataset} {run.get('eval_split') or ''}".strip()


def run_points(run: Mapping) -> list[tuple[str, str, int | str, float, float, float, bool]]:
    """``(target, strategy, labels_per_class, accuracy, f1, wall_seconds, zero_shot)`` for one run; a labelmap
    run also gives its zero-shot (through the label map) point."""
    target = _target(run)
    n = run.get("n_per_class")
    n = ALL if n is None else int(n)
    wall = float(run.get("wall_seconds") or 0.0)
    strategy = run["strategy"]
    if strategy == "labelmap" and run.get("map_method") == "identity":
        # self-training: the source is a classifier of the target task itself (its own run is its own row),
        # so its accuracy here is not a zero-shot floor
        return [(target, "self-training (pseudo-label + distil)", n, run["accuracy"],
                 run.get("f1_macro", math.nan), wall, False)]  # fmt: skip
    if strategy == "labelmap":
        points = []
        if run.get("zero_shot_accuracy") is not None:
            seconds = float(run.get("pool_seconds") or 0.0)
            acc, f1 = run["zero_shot_accuracy"], run.get("zero_shot_f1_macro", math.nan)
            points.append((target, "labelmap zero-shot (through the map)", 0, acc, f1, seconds, True))
        name = "labelmap (pseudo-label + distil)"
        points.append((target, name, n, run["accuracy"], run.get("f1_macro", math.nan), wall, False))
        return points
    method = run.get("method")
    if run.get("extra_train"):  # trained on generated (or other extra) rows plus n real labels per class
        name = f"generate + {strategy}/{method}" if method else f"generate + {strategy}"
        return [(target, name, n, run["accuracy"], run.get("f1_macro", math.nan), wall, False)]
    if n == 0:
        return [(target, f"{strategy} zero-shot", 0, run["accuracy"], run.get("f1_macro", math.nan), wall, True)]
    name = f"{strategy}/{method}" if method else strategy
    return [(target, name, n, run["accuracy"], run.get("f1_macro", math.nan), wall, False)]


def report_rows(runs: Iterable[Mapping]) -> list[Row]:
    """Group the runs' points by (target, strategy, labels per class) and average over seeds."""
    groups: dict[tuple, list] = defaultdict(list)
    zero = {}
    for run in runs:
        for target, strategy, n, acc, f1, wall, zero_shot in run_points(run):
            groups[(target, strategy, n)].append((acc, f1, wall))
            zero[(target, strategy, n)] = zero_shot
    rows = []
    for (target, strategy, n), values in groups.items():
        accs = [v[0] for v in values]
        mean = sum(accs) / len(accs)
        std = math.sqrt(sum((a - mean) ** 2 for a in accs) / (len(accs) - 1)) if len(accs) > 1 else 0.0
        rows.append(
            Row(
                target=target,
                strategy=strategy,
                labels_per_class=n,
                accuracy=mean,
                accuracy_std=std,
                f1_macro=sum(v[1] for v in values) / len(values),
                wall_seconds=sum(v[2] for v in values) / len(values),
                runs=len(values),
                zero_shot=zero[(target, strategy, n)],
            )
        )
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
    """Accuracy vs labels per class (categorical axis: the observed counts, then "all"), one line per
    strategy, one panel per evaluation target; zero-shot floors are dashed horizontal lines."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    targets = sorted({r.target for r in rows})
    fig, axes = plt.subplots(1, len(targets), figsize=(6 * len(targets), 5.2), squeeze=False)
    for ax, target in zip(axes[0], targets):
        mine = [r for r in rows if r.target == target]
        counts = sorted({r.labels_per_class for r in mine if not r.zero_shot}, key=_n_key)
        position = {n: i for i, n in enumerate(counts)}
        by_strategy: dict[str, list[Row]] = defaultdict(list)
        for r in mine:
            if not r.zero_shot:
                by_strategy[r.strategy].append(r)
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
        ax.set_xlabel("labelled examples per class")
        ax.set_ylabel("accuracy")
        ax.set_title(target)
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
    folder: str | Path,
    output_dir: str | Path | None = None,
    *,
    title: str = "Strategy comparison",
) -> Report:
    """Collect the runs under ``folder`` and write ``report.md`` (table + plot + the runs it used) and
    ``report.png`` to ``output_dir`` (default: ``folder``). ``ConfigError`` if there are no runs."""
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
    markdown = (
        f"# {title}\n\n{len(runs)} run(s) under `{folder}`; accuracy ± sample std over runs with the same "
        f"strategy and labels per class.\n\n{table}\n\n![accuracy vs labels per class]({png.name})\n\n"
        f"## Runs\n\n{sources}\n"
    )
    md = out / REPORT_MD
    md.write_text(markdown)
    return Report(table=table, markdown_path=md, png_path=png, rows=rows)
