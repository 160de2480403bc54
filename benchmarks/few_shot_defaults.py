"""What a user gets with no recipe: 8 labelled examples per class, label names only, the CLI's defaults.

Run by hand (``python benchmarks/few_shot_defaults.py``); writes ``benchmarks/results/few_shot_defaults.json``.
Six bundled tasks (binary and multi-class, balanced and not), methods full / head / lora, each under three
settings: "before" (learning rate 2e-5 for every method and 10 epochs, the defaults until these were
changed), "method lr" (learning rate by method: full 2e-5, head 1e-2, lora 5e-4) and "now" (method lr +
``min_train_steps`` 100: 10 epochs of 16 examples are 10 optimizer steps); full and lora also under "head lr
1e-2" (now + ``head_learning_rate`` 1e-2, an option off by default). Nothing is tuned per task; the
sample and training seeds are 0, 1, 2. A killed run resumes. Recorded before a single-label head's default rate
became 1e-2 under full and PEFT (``with_head_rate``): the "head lr 1e-2" rows are what "now" gives since.
"""

from __future__ import annotations

import argparse
import json
import sys

from common import ROOT, mean_std, quiet, run

RESULTS = ROOT / "benchmarks" / "results" / "few_shot_defaults.json"
RUNS = ROOT / "outputs" / "bench-few-shot-defaults"
TASKS = {  # name -> (dataset, evaluation split)
    "sms_spam": ("bundled:sms_spam", "validation"),  # carved from train (10%), 87% ham
    "amazon": ("bundled:sentiment_sentences_amazon", "validation"),
    "imdb": ("bundled:sentiment_sentences_imdb", "validation"),
    "sst5": ("bundled:sst5", "validation"),
    "ag_news": ("bundled:ag_news", "test"),
    "sst2": ("bundled:sst2", "validation"),
}
SETTINGS = {  # name -> overrides (None: the method's default)
    "before": {"learning_rate": 2e-5, "min_train_steps": 0},
    "method lr": {"min_train_steps": 0},
    "now": {},
    "head lr 1e-2": {"head_learning_rate": 1e-2},  # now + the head at head-only's rate (full, lora)
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--tasks", nargs="+", default=list(TASKS))
    parser.add_argument("--methods", nargs="+", default=["full", "head", "lora"])
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS))
    args = parser.parse_args(argv)
    quiet()
    recorded = json.loads(RESULTS.read_text())["runs"] if RESULTS.is_file() else []
    redo = {(t, m, g, s) for t in args.tasks for m in args.methods for g in args.settings for s in args.seeds}
    runs = [r for r in recorded if (r["task"], r["method"], r["setting"], r["seed"]) not in redo]
    for seed in args.seeds:
        for task in args.tasks:
            dataset, split = TASKS[task]
            for method in args.methods:
                for setting in args.settings:
                    overrides = SETTINGS[setting]
                    if method == "full" and setting == "method lr":  # full's default rate is 2e-5: same run
                        continue
                    if method == "head" and "head_learning_rate" in overrides:  # head-only: the same run
                        continue
                    res = run("finetune", None, RUNS / f"{task}-{method}-{setting.replace(' ', '-')}-{seed}",
                              dataset=dataset, eval_split=split, n_per_class=8, method=method, seed=seed,
                              sample_seed=seed, **overrides)  # fmt: skip
                    runs.append({"task": task, "method": method, "setting": setting, "seed": seed,
                                 "accuracy": res["accuracy"], "f1_macro": res["f1_macro"],
                                 "train_steps": res["train_steps"],
                                 "train_seconds": res["train_seconds"]})  # fmt: skip
                    print(f"{task} | {method} | {setting} | seed {seed}: {res['accuracy']:.4f} "
                          f"f1 {res['f1_macro']:.4f} ({res['train_steps']} steps)", flush=True)  # fmt: skip
    summary = []
    for key in dict.fromkeys((r["task"], r["method"], r["setting"]) for r in runs):
        rs = [r for r in runs if (r["task"], r["method"], r["setting"]) == key]
        acc, acc_std = mean_std([r["accuracy"] for r in rs])
        f1, _ = mean_std([r["f1_macro"] for r in rs])
        summary.append({"task": key[0], "method": key[1], "setting": key[2], "seeds": len(rs),
                        "accuracy_mean": acc, "accuracy_std": acc_std, "f1_macro_mean": f1,
                        "train_seconds_mean": sum(r["train_seconds"] for r in rs) / len(rs)})  # fmt: skip
    RESULTS.write_text(json.dumps({"benchmark": "few_shot_defaults", "n_per_class": 8, "summary": summary,
                                   "runs": runs}, indent=2))  # fmt: skip
    for s in summary:
        print(f"| {s['task']} | {s['method']} | {s['setting']} | {100 * s['accuracy_mean']:.1f} ± "
              f"{100 * s['accuracy_std']:.1f} | {100 * s['f1_macro_mean']:.1f} | {s['seeds']} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
