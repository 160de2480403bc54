"""How multi-label decision thresholds should be chosen, measured on the GoEmotions *validation* split only
(the test split stays untouched for benchmarks/multilabel_goemotions.py): fixed 0.5 after the calibrated bias,
cross-fitted per label with 2 and 4 folds, for head-only and full fine-tuning at 8 labels per label.

    python benchmarks/multilabel_thresholds.py   # JSON in benchmarks/results/multilabel_thresholds.json
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
from hf_transfer import DataArguments, FinetuneConfig, run_finetune  # noqa: E402

OUT = Path(__file__).parent / "results" / "multilabel_thresholds.json"
DATA = os.environ.get("GOEMOTIONS", str(Path(__file__).resolve().parents[2] / "shared" / "data" / "goemotions"))
SETTINGS = [("head", "0.5", 4), ("head", "cross_fit", 2), ("head", "cross_fit", 4),
            ("full", "0.5", 4), ("full", "cross_fit", 2)]  # fmt: skip


def cpu() -> str:
    try:
        return next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor()


def main(seeds=(0, 1), n=8) -> None:
    runs = []
    for method, thresholds, folds in SETTINGS:
        for seed in seeds:
            start = time.perf_counter()
            config = FinetuneConfig(output_dir=f"outputs/bench-ml-thresholds/{method}-{thresholds}-{folds}-{seed}",
                                    method=method, thresholds=thresholds, threshold_folds=folds, seed=seed,
                                    overwrite_output_dir=True, disable_tqdm=True)  # fmt: skip
            data = DataArguments(dataset=DATA, n_per_class=n, sample_seed=seed, eval_split="validation")
            r = run_finetune(config, data)
            runs.append({"method": method, "thresholds": thresholds, "folds": folds, "seed": seed,
                         "f1_micro": r.f1_micro, "f1_macro": r.f1_macro, "f1_samples": r.f1_samples,
                         "n_train": r.n_train, "wall_seconds": time.perf_counter() - start})  # fmt: skip
            print(json.dumps(runs[-1]), flush=True)
    summary = {}
    for method, thresholds, folds in SETTINGS:
        rs = [r for r in runs if (r["method"], r["thresholds"], r["folds"]) == (method, thresholds, folds)]
        summary[f"{method} {thresholds} folds={folds}"] = {
            k: round(100 * statistics.mean(r[k] for r in rs), 1) for k in ("f1_micro", "f1_macro")
        } | {"wall_seconds": round(statistics.mean(r["wall_seconds"] for r in rs), 1)}
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps({"cpu": cpu(), "n_per_label": n, "eval_split": "validation", "data": "goemotions",
                               "summary": summary, "runs": runs}, indent=2))  # fmt: skip
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main(n=int(sys.argv[1]) if len(sys.argv) > 1 else 8)
