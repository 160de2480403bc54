"""Multi-label generate on GoEmotions (28 labels): does a synthetic set help, and how should the labels a synthetic
text was *not* asked for enter the loss (``extra_train_unasked``: ``negative`` = absent, ``unknown`` = left out)?

The embedded SmolLM2-135M-Instruct writes ``recipes/goemotions/generate.yaml`` (one emotion per prompt, label
descriptions only, no real rows), and, for the pairs condition, the same prompts plus the 10 label pairs that
co-occur most in the 8-per-label real sample (``label_pairs: 10``, ``n_shots: 0``: pairs only, no few-shot
examples). MiniLM ``method=head`` (cached features) then trains on:

* the synthetic set alone (0 real labels; thresholds: each label on its top 1/28 of unlabelled train texts);
* 8 real rows per label + the synthetic set (thresholds cross-fitted on the real rows);
* 8 real rows per label + the synthetic set with pairs;

each with ``extra_train_unasked`` negative and unknown, beside the references (zero-shot, 8 per label alone).
Every model is trained once and scored on the bundled validation split (500 rows; the choice of default is made
there) and, the same model, on the bundled test split (1,000 rows; reported).

    python benchmarks/multilabel_generate.py [--seeds 0 1] [--skip pairs] [--n_per_label 16]   # JSON: results/

A seed sets the generation, the real sample and training at once; the pairs condition runs on the first seed only.

Finished runs (generation shards, trained models, test scores) are reused, so a killed run resumes.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from common import ROOT, cpu, quiet, run

RESULTS = ROOT / "benchmarks" / "results" / "multilabel_generate.json"
OUT = ROOT / "outputs" / "bench-multilabel-generate"
MODES = ("negative", "unknown")


def test_scores(folder) -> dict:
    """The saved model (its own thresholds) on the bundled test split."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from hf_transfer.data import load_bundled
    from hf_transfer.inference import predict_proba
    from hf_transfer.metrics import multi_label_scores
    from hf_transfer.multi_label import label_matrix

    start = time.perf_counter()
    test = load_bundled("goemotions")["test"]
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    probs = predict_proba(model, AutoTokenizer.from_pretrained(folder), list(test["text"]))
    scores = multi_label_scores(probs >= np.asarray(model.config.label_thresholds), label_matrix(test))
    return {"f1_micro": scores["f1_micro"], "f1_macro": scores["f1_macro"], "n": len(test),
            "seconds": time.perf_counter() - start}  # fmt: skip


def synthetic_stats(gen: dict) -> dict:
    stats = gen["stats"]
    kept = stats["kept_per_label"].values()
    return {"generated": stats["generated"], "kept": stats["kept"], "removed": stats["removed"],
            "kept_per_label_min_max": [min(kept), max(kept)], "label_pairs": gen["label_pairs"],
            "tokens_per_second": stats["tokens_per_second"], "generation_seconds": stats["generation_seconds"],
            "wall_seconds": gen["wall_seconds"], "resumed_batches": stats["resumed_batches"]}  # fmt: skip


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n_per_label", type=int, default=16, help="prompts per label (and per pair)")
    parser.add_argument("--skip", nargs="*", default=[], help="'pairs': leave out the label-pair condition")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    args = parser.parse_args(argv)
    quiet()
    import torch

    start = time.perf_counter()
    results = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    results.update(benchmark="multilabel_generate", cpu=cpu(), torch_threads=torch.get_num_threads(),
                   n_per_label=args.n_per_label, data="bundled goemotions: validation 500, test 1000")  # fmt: skip
    runs, synthetic = results.setdefault("runs", {}), results.setdefault("synthetic", {})
    for key in [k for k in runs if " seed=" not in k]:  # results from before --seeds: seed 0
        runs[f"{key} seed=0"] = runs.pop(key)
    for key in [k for k in synthetic if " seed=" not in k]:
        synthetic[f"{key} seed=0"] = synthetic.pop(key)

    def save():
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(results, indent=2))

    def generate(name: str, seed: int, **overrides) -> str:
        folder = OUT / (f"generate-{name}" + (f"-seed{seed}" if seed else ""))
        if seed:
            overrides.update(seed=seed, sample_seed=seed)
        gen = run("generate", "goemotions/generate", folder, n_per_label=args.n_per_label, **overrides)
        synthetic[f"{name} seed={seed}"] = synthetic_stats(gen)
        save()
        print(f"synthetic set {name!r}: {gen['n_rows']} rows kept of {gen['stats']['generated']}", flush=True)
        return str(folder / gen["dataset_path"])

    def train(name: str, seed: int, recipe: str, **overrides) -> None:
        folder = OUT / (name.replace(" ", "_").replace(",", "").replace("/", "-").replace("+", "plus")
                        + (f"-seed{seed}" if seed else ""))  # fmt: skip
        if seed:
            overrides.update(seed=seed, sample_seed=seed)
        key = f"{name} seed={seed}"
        r = run("finetune", recipe, folder, eval_split="validation", **overrides)
        entry = runs.get(key, {})
        if entry.get("wall_seconds") != r["wall_seconds"] or "test" not in entry:  # a new model: score it on test
            entry = {"validation": {"f1_micro": r["f1_micro"], "f1_macro": r["f1_macro"], "n": r["n_eval"]},
                     "test": test_scores(folder), "n_train": r["n_train"], "n_real_train": r["n_real_train"],
                     "wall_seconds": r["wall_seconds"], "overrides": overrides}  # fmt: skip
        runs[key] = entry
        save()
        v, t = entry["validation"], entry["test"]
        print(f"{key}: validation {100 * v['f1_micro']:.1f} / {100 * v['f1_macro']:.1f}, test "
              f"{100 * t['f1_micro']:.1f} / {100 * t['f1_macro']:.1f} (micro / macro F1)", flush=True)  # fmt: skip

    for seed in args.seeds:
        train("zero-shot (label names)", seed, "goemotions/zeroshot")
        train("8 real/label", seed, "goemotions/head-8shot")
        plain = generate("labels", seed)
        for mode in MODES:
            train(f"synthetic only, unasked={mode}", seed, "goemotions/head-synthetic", extra_train=plain,
                  extra_train_unasked=mode)  # fmt: skip
            train(f"8 real/label + synthetic, unasked={mode}", seed, "goemotions/head-synthetic", extra_train=plain,
                  extra_train_unasked=mode, n_per_class=8)  # fmt: skip
        if "pairs" not in args.skip and seed == args.seeds[0]:
            paired = generate("labels+pairs", seed, n_per_class=8, label_pairs=10, n_shots=0)
            for mode in MODES:
                train(f"8 real/label + synthetic with pairs, unasked={mode}", seed, "goemotions/head-synthetic",
                      extra_train=paired, extra_train_unasked=mode, n_per_class=8)  # fmt: skip

    by_mode = {mode: [v["validation"]["f1_macro"] for k, v in runs.items() if f"unasked={mode} seed=" in k]
               for mode in MODES}  # fmt: skip
    groups: dict[str, list[dict]] = {}
    for key, value in runs.items():
        groups.setdefault(key.rsplit(" seed=", 1)[0], []).append(value)
    results["summary"] = {
        name: {f"{split} {metric}": f"{100 * np.mean([v[split][metric] for v in values]):.1f} ± "
               f"{100 * np.std([v[split][metric] for v in values], ddof=1) if len(values) > 1 else 0:.1f}"
               for split in ("validation", "test") for metric in ("f1_micro", "f1_macro")}
        | {"seeds": len(values), "n_train": values[0]["n_train"],
           "wall_seconds": round(float(np.mean([v["wall_seconds"] for v in values])), 1)}
        for name, values in groups.items()
    }  # fmt: skip
    results["choice"] = {
        "rule": "extra_train_unasked with the higher mean validation macro-F1 over the synthetic conditions",
        "validation_macro_f1_mean": {mode: float(np.mean(v)) for mode, v in by_mode.items()},
        "default": max(MODES, key=lambda mode: np.mean(by_mode[mode])),
    }
    results["session_seconds"] = time.perf_counter() - start  # this invocation (finished runs are reused)
    results["compute_seconds"] = sum(v["wall_seconds"] for v in synthetic.values()) + sum(
        v["wall_seconds"] + v["test"]["seconds"] for v in runs.values()
    )  # every generation, training run and test scoring, as first run
    save()
    print(json.dumps(results["choice"], indent=2))


if __name__ == "__main__":
    main()
