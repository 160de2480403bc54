"""bf16 vs fp32, side by side: the same SST-2 recipes, seeds and samples, only ``--bf16`` changed (issue 19 item 1:
accuracy must stay within seed noise where bf16 becomes the default).

Run by hand, alone: ``python benchmarks/precision.py [--methods head full] [--shots 8 64] [--seeds 0 1 2]``;
writes ``benchmarks/results/precision.json`` after every run (a killed benchmark resumes: finished runs are
reused). bf16 numerics do not depend on the CPU (autocast rounds the matmul inputs to bf16 either way), so
accuracy can be compared on any machine; its speed only means something on a CPU with AVX512-BF16 or AMX, and
the CPU is written next to every figure.
"""

from __future__ import annotations

import argparse
import json
import sys

from common import ROOT, cpu, mean_std, quiet, run

RESULTS = ROOT / "benchmarks" / "results" / "precision.json"
RUNS = ROOT / "outputs" / "bench-precision"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=["head", "full"], choices=["head", "lora", "full"])
    parser.add_argument("--shots", type=int, nargs="+", default=[8, 64], choices=[8, 64])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args(argv)
    quiet()
    redo = {(cpu(), m, k, s, b) for m in args.methods for k in args.shots for s in args.seeds for b in (False, True)}
    previous = json.loads(RESULTS.read_text())["runs"] if RESULTS.is_file() else []
    # rows of other machines and of settings not asked for this time are kept; asked ones are (re)read below
    runs = [r for r in previous if (r["cpu"], r["method"], r["shots"], r["seed"], r["bf16"]) not in redo]
    for seed in args.seeds:
        for shots in args.shots:
            for method in args.methods:
                for bf16 in (False, True):
                    name = f"{method}-{shots}shot-seed{seed}-{'bf16' if bf16 else 'fp32'}"
                    res = run("finetune", f"sst2/{method}-{shots}shot", RUNS / name, seed=seed, bf16=bf16)
                    runs.append({"cpu": cpu(), "method": method, "shots": shots, "seed": seed, "bf16": res["bf16"],
                                 "accuracy": res["accuracy"], "train_seconds": round(res["train_seconds"], 1),
                                 "wall_seconds": round(res["wall_seconds"], 1)})  # fmt: skip
                    write(runs)
                    print(f"{name}: {res['accuracy']:.4f} ({runs[-1]['wall_seconds']} s)", flush=True)
    print(json.dumps(write(runs), indent=2))
    return 0


def write(runs: list[dict]) -> dict:
    summary = {}
    for r in runs:
        key = f"{r['cpu']} | {r['method']} {r['shots']}-shot | {'bf16' if r['bf16'] else 'fp32'}"
        summary.setdefault(key, []).append(r["accuracy"])
    summary = {k: {"accuracy_mean": mean_std(v)[0], "accuracy_std": mean_std(v)[1], "seeds": len(v)}
               for k, v in summary.items()}  # fmt: skip
    RESULTS.write_text(json.dumps({"summary": summary, "runs": runs}, indent=2) + "\n")
    return summary


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
