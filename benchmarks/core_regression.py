"""Accuracy check for the one-training-core redesign: the README's best recipes, re-run on today's code.

    python benchmarks/core_regression.py      # ~15 min on 2 cores; JSON in benchmarks/results/core_regression.json

Re-runs, with the same recipes, seeds and samples as the benchmarks that produced the README numbers:
SST-2 validation at 8 and 64 labels per class (full and LoRA, label-description heads;
``benchmarks/finetune_sst2.py``), and the SST-2 → amazon labelmap transfer, zero-shot through the map and
pseudo-label + distil (``benchmarks/labelmap.py``; each seed trains its own SST-2 source). Each row is
compared with the README's mean ± std: a regression is a mean more than one recorded std below it.
"""

from __future__ import annotations

import json
import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, mean_std, quiet, run  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "core_regression.json"
RUNS = ROOT / "outputs" / "bench-core"
# README today (mean, std in %), from benchmarks/results/finetune_sst2.json and labelmap.json
README = {
    "sst2 8/class full": (75.2, 1.7),
    "sst2 8/class lora": (75.4, 0.9),
    "sst2 64/class full": (78.0, 0.8),
    "sst2 64/class lora": (77.1, 1.3),
    "SST-2 → amazon zero-shot through the map": (89.3, 0.8),
    "SST-2 → amazon pseudo-label + distil": (91.9, 0.5),
}
SEEDS = (0, 1, 2)


def main() -> int:
    quiet()
    runs: dict[str, list[float]] = {name: [] for name in README}
    for seed in SEEDS:
        for shots in (8, 64):
            for method in ("full", "lora"):
                recipe = f"sst2/{method}-{shots}shot"
                r = run("finetune", recipe, RUNS / f"{method}-{shots}-{seed}", seed=seed, sample_seed=seed)
                runs[f"sst2 {shots}/class {method}"].append(100 * r["accuracy"])
                print(f"{recipe} seed {seed}: {r['accuracy']:.4f}", flush=True)
        source = RUNS / f"sst2-source-{seed}"
        run("finetune", "sst2/full-all", source, seed=seed)
        lm = run("labelmap", "labelmap/sst2-to-amazon", RUNS / f"amazon-{seed}", source_model=source, seed=seed)
        runs["SST-2 → amazon zero-shot through the map"].append(100 * lm["zero_shot_accuracy"])
        runs["SST-2 → amazon pseudo-label + distil"].append(100 * lm["accuracy"])
        print(f"amazon seed {seed}: zero-shot {lm['zero_shot_accuracy']:.4f}, distilled {lm['accuracy']:.4f}")
    rows = []
    for name, values in runs.items():
        mean, std = mean_std(values)
        before, before_std = README[name]
        rows.append({"setting": name, "now_mean": mean, "now_std": std, "values": values, "readme_mean": before,
                     "readme_std": before_std, "within_one_std_or_better": mean >= before - before_std})  # fmt: skip
    report = {"benchmark": "core_regression", "cpu": platform.processor() or platform.machine(), "rows": rows}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print("| setting | now (mean ± std, 3 seeds) | README | within one std or better |\n|---|---|---|---|")
    for r in rows:
        print(f"| {r['setting']} | {r['now_mean']:.1f} ± {r['now_std']:.1f} | {r['readme_mean']:.1f} ± "
              f"{r['readme_std']:.1f} | {'yes' if r['within_one_std_or_better'] else 'NO'} |")  # fmt: skip
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
