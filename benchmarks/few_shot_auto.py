"""``method: auto`` against each fixed method (and SetFit) with the CLI defaults, on every single-label task.

Run by hand; writes ``benchmarks/results/few_shot_auto.json`` and prints the README table:

    python benchmarks/few_shot_auto.py                                   # 8 tasks x 8 and 64 per class x seeds 0-2
    python benchmarks/few_shot_auto.py --sizes 8 --seeds 0 --tasks sst2 clinc150 --skip setfit

What a new user gets: ``hf-transfer finetune --dataset <task> --n_per_class <n> [--method m]``, label names
only (no descriptions, no recipe), the sample and training seeded by ``--seed``. Every method of one task,
size and seed trains on the same sampled rows and is scored on the same evaluation split, which nothing here
chooses on: auto picks on cross-validation of the sample (``hf_transfer/finetune/auto.py``). Its first rule
(most held-out rows right, cheapest first) was set on principle before any run; the head's clear-lead condition
after seed 0 of the five development tasks; the current one (full fine-tuning the reference, replaced only by a
clearly better candidate; ``--tag reference``) in session 23, after every task's earlier results were known, so
no task is held out for it: the README says so beside its numbers.
SetFit 1.2 runs in its own venv (``.venv-setfit``) on the same rows and backbone, where it is installed.
A finished run is reused (its ``results.json``), so a killed benchmark resumes.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time

from common import ROOT, cpu, mean_std, quiet, run

RESULTS = ROOT / "benchmarks" / "results" / "few_shot_auto.json"
RUNS = ROOT / "outputs" / "bench-few-shot-auto"
SHARED = ROOT.parent / "shared" / "data"
SETFIT_PY = ROOT / ".venv-setfit" / "bin" / "python"
TASKS = {  # name -> (dataset, evaluation split)
    "sst2": ("bundled:sst2", "validation"),
    "sst5": ("bundled:sst5", "validation"),
    "ag_news": ("bundled:ag_news", "test"),
    "sms_spam": ("bundled:sms_spam", "validation"),  # carved from train (10%), 87% ham
    "amazon": ("bundled:sentiment_sentences_amazon", "validation"),
    "imdb": ("bundled:sentiment_sentences_imdb", "validation"),
    "rotten_tomatoes": (str(SHARED / "rotten_tomatoes"), "test"),
    "clinc150": (str(SHARED / "clinc150"), "test"),  # 151 intents (150 + out-of-scope)
}
METHODS = ("head", "lora", "full", "auto")


def ours(task: str, n: int, seed: int, method: str, runs_dir=RUNS) -> dict:
    dataset, split = TASKS[task]
    overrides = dict(dataset=dataset, eval_split=split, n_per_class=n, seed=seed)
    if method != "auto":
        overrides["method"] = method
    res = run("finetune", None, runs_dir / f"{task}-{n}-{method}-{seed}", **overrides)
    row = {"accuracy": res["accuracy"], "f1_macro": res["f1_macro"], "wall_seconds": res["wall_seconds"],
           "method": res["method"], "train_steps": res["train_steps"]}  # fmt: skip
    if res.get("method_selection"):
        row["cv"] = {c["method"]: c["accuracy"] for c in res["method_selection"]["candidates"]}
    return row


def setfit(task: str, n: int, seed: int) -> dict:
    """SetFit 1.2 on the rows ``ours`` sampled (read back through the same loader), MiniLM, its defaults."""
    if not SETFIT_PY.is_file():
        return {
            "skipped": f"no {SETFIT_PY} (python -m venv .venv-setfit && .venv-setfit/bin/pip install setfit==1.2.*)"
        }
    from hf_transfer.config import DataArguments
    from hf_transfer.data import load_data_args
    from hf_transfer.defaults import resolve_model

    dataset, split = TASKS[task]
    train, eval_ds, labels = load_data_args(DataArguments(dataset=dataset, eval_split=split, n_per_class=n,
                                                          sample_seed=seed), announce=False)  # fmt: skip
    with tempfile.TemporaryDirectory() as folder:
        job = {"model": resolve_model("minilm"), "seed": seed, "out": f"{folder}/pred.npy",
               "train": {"text": list(train["text"]), "label": list(train["label"])},
               "test": list(eval_ds["text"])}  # fmt: skip
        path = f"{folder}/job.json"
        with open(path, "w") as handle:
            json.dump(job, handle)
        start = time.perf_counter()
        try:
            subprocess.run([str(SETFIT_PY), str(ROOT / "benchmarks" / "setfit_job.py"), path], check=True,
                           timeout=1800)  # fmt: skip
        except subprocess.TimeoutExpired:
            return {"skipped": "did not finish in 30 minutes"}
        import numpy as np

        predicted = np.load(job["out"])
    truth = np.asarray(eval_ds["label"])
    from sklearn.metrics import f1_score

    return {"accuracy": float((predicted == truth).mean()), "wall_seconds": time.perf_counter() - start,
            "f1_macro": float(f1_score(truth, predicted, average="macro", labels=range(len(labels))))}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--sizes", nargs="+", type=int, default=[8, 64])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--skip", nargs="*", default=[], help="methods to leave out (head, lora, full, auto, setfit)")
    parser.add_argument("--tag", default=None,
                        help="a separate pass with its own runs and few_shot_auto_<tag>.json: e.g. 'timing' for wall "
                        "times measured with nothing else running, 'setfit' beside another pass")  # fmt: skip
    args = parser.parse_args(argv)
    quiet()
    global RESULTS
    runs_dir = RUNS
    if args.tag:
        RESULTS = RESULTS.with_name(f"few_shot_auto_{args.tag}.json")
        runs_dir = RUNS.with_name(f"{RUNS.name}-{args.tag}")
    recorded = json.loads(RESULTS.read_text())["runs"] if RESULTS.is_file() else []
    methods = [m for m in (*METHODS, "setfit") if m not in args.skip]
    key = lambda r: (r["task"], r["n_per_class"], r["method_asked"], r["seed"])  # noqa: E731
    done = {key(r): r for r in recorded}
    for n in args.sizes:
        for seed in args.seeds:
            for task in args.tasks:
                for method in methods:
                    if (task, n, method, seed) in done and "skipped" not in done[(task, n, method, seed)]:
                        continue
                    row = setfit(task, n, seed) if method == "setfit" else ours(task, n, seed, method, runs_dir)
                    row.update(task=task, n_per_class=n, method_asked=method, seed=seed, cpu=cpu())
                    done[key(row)] = row
                    print(json.dumps(row), flush=True)
                    _write(list(done.values()))
    _write(list(done.values()), table=True)
    return 0


def _write(runs: list[dict], table: bool = False) -> None:
    summary = []
    for task, n, method in dict.fromkeys((r["task"], r["n_per_class"], r["method_asked"]) for r in runs):
        rs = [r for r in runs if (r["task"], r["n_per_class"], r["method_asked"]) == (task, n, method)]
        rs = [r for r in rs if "skipped" not in r]
        if not rs:
            continue
        acc, std = mean_std([100 * r["accuracy"] for r in rs])
        summary.append({"task": task, "n_per_class": n, "method": method, "seeds": sorted(r["seed"] for r in rs),
                        "accuracy_mean": round(acc, 2), "accuracy_std": round(std, 2),
                        "wall_seconds_mean": round(sum(r["wall_seconds"] for r in rs) / len(rs), 1),
                        "chosen": [r["method"] for r in rs] if method == "auto" else None})  # fmt: skip
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"benchmark": "few_shot_auto", "summary": summary, "runs": runs}, indent=1))
    if table:
        for s in summary:
            chosen = f" chose {', '.join(s['chosen'])}" if s["chosen"] else ""
            print(f"| {s['task']} | {s['n_per_class']} | {s['method']} | {s['accuracy_mean']:.1f} ± "
                  f"{s['accuracy_std']:.1f} | {s['wall_seconds_mean']:.0f} | {len(s['seeds'])}{chosen} |")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
