"""Averaging the two encoder-training methods instead of choosing between them, at few labels per class.

Run by hand; writes ``benchmarks/results/weight_average.json``:

    python benchmarks/weight_average.py                      # seven tasks x seeds 0-2
    python benchmarks/weight_average.py --n_per_class 64 --seeds 0

Why: ``method: auto`` cannot tell LoRA from full fine-tuning at 8 per class (a held-out row is 2.5-6 points, the
gaps 0.3-3), so the README named averaging them as a way past choosing. This measures it on the same rows and
runs as ``few_shot_auto.py`` (its ``full`` and ``lora`` runs, CLI defaults, label names only): the uniform weight
average of the two saved models (LoRA merged into its base; both start from the same encoder and description
head), the average of their probabilities (an ensemble of two encoders), WiSE-FT halfway back to the start
(``wise_alpha=0.5``, computed from the saved full model and the untrained start), and the start itself
(zero-shot from the label names). The question asked of it: is the weight average clearly above both of its
members on average over the seven tasks and three seeds (then ``method: auto`` could train both and average
instead of cross-validating)? At 8 per class it is not: 73.34 against full 73.30 and LoRA 72.99 (the probability
average 73.47, at two encoders' inference cost); at 64 per class (seed 0) both averages are below full (79.81 and
79.90 vs 80.22). README, "method: auto"; nothing in the package uses it.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
from common import ROOT, cpu, quiet, run
from few_shot_auto import TASKS

RESULTS = ROOT / "benchmarks" / "results" / "weight_average.json"
RUNS = ROOT / "outputs" / "bench-weight-average"
TASK_NAMES = ("sst2", "sst5", "ag_news", "sms_spam", "amazon", "imdb", "rotten_tomatoes")
VARIANTS = ("full", "lora", "weight_average", "probability_average", "wise_full_0.5", "start")


def averaged(states: list[dict], weights: list[float]) -> dict:
    """The weighted average of state dicts with the same keys; integer buffers are taken from the first."""
    first = states[0]
    return {k: (sum(w * s[k].float() for s, w in zip(states, weights)).to(v.dtype) if v.is_floating_point() else v)
            for k, v in first.items()}  # fmt: skip


def measure(task: str, n: int, seed: int) -> dict:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    import hf_transfer  # noqa: F401  (registers the Auto classes the saved folders name)
    from hf_transfer.classifier import prepare
    from hf_transfer.cli.parsing import parse_with_config
    from hf_transfer.cli.train import make_parser
    from hf_transfer.config import DataArguments
    from hf_transfer.data import load_data_args
    from hf_transfer.inference import predict_proba

    dataset, split = TASKS[task]
    runs = {m: run("finetune", None, RUNS / f"{task}-{n}-{m}-{seed}", dataset=dataset, eval_split=split,
                   n_per_class=n, seed=seed, method=m) for m in ("full", "lora")}  # fmt: skip
    _, eval_ds, labels = load_data_args(DataArguments(dataset=dataset, eval_split=split, n_per_class=n,
                                                      sample_seed=seed), announce=False)  # fmt: skip
    texts, truth = list(eval_ds["text"]), np.asarray(eval_ds["label"])
    tokenizer = AutoTokenizer.from_pretrained(RUNS / f"{task}-{n}-full-{seed}")
    states, probs = {}, {}
    for method in ("full", "lora"):
        model = AutoModelForSequenceClassification.from_pretrained(RUNS / f"{task}-{n}-{method}-{seed}").eval()
        states[method] = {k: v.clone() for k, v in model.state_dict().items()}
        probs[method] = predict_proba(model, tokenizer, texts)
    argv = ["--output_dir", str(RUNS / "unused"), "--method", "full", "--dataset", dataset, "--seed", str(seed)]
    config = parse_with_config(make_parser("finetune"), argv)[1]
    start = prepare(config, labels, problem_type="single_label_classification")[0].state_dict()
    for name, state in {
        "weight_average": averaged([states["full"], states["lora"]], [0.5, 0.5]),
        "wise_full_0.5": averaged([states["full"], start], [0.5, 0.5]),
        "start": start,
    }.items():
        model.load_state_dict(state)
        probs[name] = predict_proba(model, tokenizer, texts)
    probs["probability_average"] = (probs["full"] + probs["lora"]) / 2
    return {"task": task, "n_per_class": n, "seed": seed, "cpu": cpu(),
            "accuracy": {k: float((probs[k].argmax(1) == truth).mean()) for k in VARIANTS},
            "recorded_accuracy": {m: r["accuracy"] for m, r in runs.items()},
            "wall_seconds": {m: r["wall_seconds"] for m, r in runs.items()}}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=list(TASK_NAMES), choices=list(TASKS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--n_per_class", type=int, default=8)
    args = parser.parse_args(argv)
    quiet()
    recorded = json.loads(RESULTS.read_text())["runs"] if RESULTS.is_file() else []
    done = {(r["task"], r["n_per_class"], r["seed"]): r for r in recorded}
    for seed in args.seeds:
        for task in args.tasks:
            if (task, args.n_per_class, seed) not in done:
                row = measure(task, args.n_per_class, seed)
                done[(task, args.n_per_class, seed)] = row
                print(json.dumps(row), flush=True)
                _write(list(done.values()))
    _write(list(done.values()))
    return 0


def _write(runs: list[dict]) -> None:
    summary = {}
    for n in sorted({r["n_per_class"] for r in runs}):
        rows = [r for r in runs if r["n_per_class"] == n]
        tasks = list(dict.fromkeys(r["task"] for r in rows))
        per_task = {t: {v: round(100 * float(np.mean([r["accuracy"][v] for r in rows if r["task"] == t])), 2)
                        for v in VARIANTS} for t in tasks}  # fmt: skip
        summary[str(n)] = {"per_task": per_task,
                           "mean": {v: round(float(np.mean([p[v] for p in per_task.values()])), 2) for v in VARIANTS},
                           "seeds": sorted({r["seed"] for r in rows})}  # fmt: skip
        for t, p in per_task.items():
            print(f"| {t} | " + " | ".join(f"{p[v]:.2f}" for v in VARIANTS) + " |")
        print("| mean | " + " | ".join(f"{summary[str(n)]['mean'][v]:.2f}" for v in VARIANTS) + " |")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"benchmark": "weight_average", "summary": summary, "runs": runs}, indent=1))


if __name__ == "__main__":
    sys.exit(main())
