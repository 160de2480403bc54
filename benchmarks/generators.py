"""Which generator writes better training data: the embedded SmolLM2-135M-Instruct (chat template, instruction
prompts) or Gemma 3 270M base (``generator: gemma3-270m``, the ``[gemma3]`` extra; no chat template, so the
``completion`` templates)? Side by side in one run on the same recipes, seeds and rows.

Run by hand (``python benchmarks/generators.py``); writes ``benchmarks/results/generators.json``. Per task (SST-2
validation 872, AG News test slice 2,000), seed and generator: ``recipes/<task>/generate.yaml`` with only the
generator, the seed and ``--rows`` (total prompts, split over the labels) changed, then
``recipes/<task>/full-synthetic.yaml`` trains MiniLM on what the filters kept (0 real labels). Nothing is chosen
on the evaluation splits: the recipes' settings were fixed on SST-2 train before this benchmark existed. A killed
run resumes (finished runs are reused).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from common import ROOT, cpu, mean_std, quiet, run

RESULTS = ROOT / "benchmarks" / "results" / "generators.json"
RUNS = ROOT / "outputs" / "bench-generators"
TASKS = {"sst2": 2, "ag_news": 4}  # labels per task
GENERATORS = ("smollm2", "gemma3-270m")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--generators", nargs="+", default=list(GENERATORS))
    parser.add_argument("--rows", type=int, default=256, help="prompts per task, split evenly over its labels")
    args = parser.parse_args(argv)
    quiet()
    runs = []
    zero = {task: run("finetune", f"{task}/zeroshot", RUNS / task / "zeroshot") for task in args.tasks}
    for seed in args.seeds:  # seed-major: a run cut short still has every task and generator at the first seeds
        for task in args.tasks:
            for generator in args.generators:
                name = f"{generator}-{seed}"
                start = time.perf_counter()
                gen = run("generate", f"{task}/generate", RUNS / task / f"generate-{name}", seed=seed,
                          generator=generator, n_per_label=args.rows // TASKS[task])  # fmt: skip
                generate_seconds = time.perf_counter() - start
                res = run("finetune", f"{task}/full-synthetic", RUNS / task / f"synthetic-{name}", seed=seed,
                          extra_train=RUNS / task / f"generate-{name}" / "dataset")  # fmt: skip
                stats = gen["stats"]
                runs.append({"task": task, "generator": generator, "seed": seed, "accuracy": res["accuracy"],
                             "zero_shot_accuracy": zero[task]["accuracy"], "n_train": res["n_train"],
                             "kept_per_label": stats["kept_per_label"], "removed": stats["removed"],
                             "generated": stats["generated"], "tokens_per_second": gen["tokens_per_second"],
                             "generation_seconds": stats["generation_seconds"],
                             "generate_step_seconds": generate_seconds})  # fmt: skip
                write(runs, args)
                print(f"{task} | {generator} | seed {seed}: {res['accuracy']:.4f} ({res['n_train']} rows kept of "
                      f"{stats['generated']}; {gen['tokens_per_second'] or 0:.0f} new tok/s)", flush=True)  # fmt: skip
    summary = write(runs, args)
    print("\n| task | generator | synthetic-only accuracy % | rows kept | new tok/s | zero-shot % |")
    print("|---|---|---:|---:|---:|---:|")
    for key, s in summary.items():
        task, generator = key.split("/")
        print(f"| {task} | {generator} | {100 * s['accuracy_mean']:.1f} ± {100 * s['accuracy_std']:.1f} "
              f"({s['seeds']} seeds) | {s['kept_mean']:.0f} | {s['tokens_per_second_mean']:.0f} | "
              f"{100 * s['zero_shot_accuracy']:.1f} |")  # fmt: skip
    print(f"wrote {RESULTS}")
    return 0


def write(runs: list[dict], args) -> dict:
    """Summarise per task and generator and write the JSON (after every run: a cut-short benchmark keeps its rows)."""
    import torch

    from hf_transfer.precision import resolve_bf16

    summary = {}
    for task in args.tasks:
        for generator in args.generators:
            rows = [r for r in runs if r["task"] == task and r["generator"] == generator]
            if not rows:
                continue
            mean, std = mean_std([r["accuracy"] for r in rows])
            summary[f"{task}/{generator}"] = {
                "accuracy_mean": mean, "accuracy_std": std, "seeds": len(rows),
                "kept_mean": sum(r["n_train"] for r in rows) / len(rows),
                "tokens_per_second_mean": sum(r["tokens_per_second"] or 0 for r in rows) / len(rows),
                "zero_shot_accuracy": rows[0]["zero_shot_accuracy"],
            }  # fmt: skip
    result = {"benchmark": "generators", "cpu": cpu(), "rows_per_task": args.rows, "threads": torch.get_num_threads(),
              "bf16": resolve_bf16(None), "summary": summary, "runs": runs}  # fmt: skip
    RESULTS.write_text(json.dumps(result, indent=2))
    return summary


if __name__ == "__main__":
    sys.exit(main())
