"""Choose generate settings on the bundled SST-2 *train* slice (2,000 rows), never on validation.

Run by hand (``python benchmarks/generate_sst2_select.py``) after ``benchmarks/generate_sst2.py`` has made the raw
generations (``outputs/bench-generate/generate-<seed>``): each variant re-filters those raw rows, or generates
anew if it changes sampling, trains ``recipes/sst2/full-synthetic.yaml`` on it and is scored on
the train slice (``eval_split=train``; no real row is trained on). Writes
``benchmarks/results/generate_sst2_select.json``.

``--self_train`` screens ``recipes/labelmap/sst2-self-train.yaml`` instead: the recipe's synthetic-data classifiers
(variant "recipe") are the teachers; the train slice is split in halves (``validation_size 0.5``), one the
unlabelled pool, the other the evaluation, so no evaluated text is pseudo-labelled.

The recorded runs were made before the recipe set ``top_k: 50`` (the choice they led to): runs marked
``"base": "no top-k"`` re-filtered or extended the no-top-k generations; "recipe" is the current recipe.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys

from common import ROOT, mean_std, quiet, run
from generate_sst2 import RUNS, refilter

RESULTS = ROOT / "benchmarks" / "results" / "generate_sst2_select.json"
OUT = ROOT / "outputs" / "bench-generate-select"

# variant -> generate overrides; re-filtering the benchmark's raw rows unless a sampling setting changes
VARIANTS: dict[str, dict] = {
    "recipe": {},
    "no top-k": {"top_k": 0},
    "consistency 0.6": {"consistency_threshold": 0.6},
    "consistency 0.7": {"consistency_threshold": 0.7},
    "n_per_label 800": {"n_per_label": 800},
    # prompt variants (benchmarks/templates/): an "angle" attribute; one persona-free template
    "angle attribute": {"templates": str(ROOT / "benchmarks" / "templates" / "angle.yaml")},
    "direct template": {"templates": str(ROOT / "benchmarks" / "templates" / "direct.yaml")},
    "temperature 1.2": {"temperature": 1.2},
    # prompts adapted to the domain (film critic, one aspect per text)
    "critic template": {"templates": str(ROOT / "benchmarks" / "templates" / "critic.yaml")},
}
# self-training variant -> labelmap overrides of recipes/labelmap/sst2-self-train.yaml
SELF_TRAIN: dict[str, dict] = {
    "recipe": {},
    "threshold 0 (every pool row)": {"threshold": 0.0},
    "student starts from the teacher": {"init_from_source": True},
    "3 rounds": {"rounds": 3},
}
SAMPLING = {"top_k", "temperature", "top_p", "n_per_label", "max_new_tokens", "templates"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS))
    parser.add_argument("--balance", nargs="+", default=["none", "min"], help="balance settings to cross with")
    parser.add_argument("--self_train", nargs="*", help="screen these self-training variants (none named: all)")
    args = parser.parse_args(argv)
    quiet()
    if args.self_train is not None:
        return self_train(args.self_train or list(SELF_TRAIN), args.seeds)
    previous = json.loads(RESULTS.read_text())["runs"] if RESULTS.is_file() else []
    redo = {(v, b, s) for v in args.variants for b in args.balance for s in args.seeds}
    runs = [r for r in previous if (r["variant"], r["balance"], r["seed"]) not in redo]
    for seed in args.seeds:
        source = RUNS / f"generate-{seed}"
        for name in args.variants:
            for balance in args.balance:
                tag = f"{name.replace(' ', '-')}-bal-{balance}-{seed}"
                gen_dir = OUT / f"generate-{tag}"
                if not SAMPLING & set(VARIANTS[name]):
                    refilter(source, gen_dir)
                elif balance != args.balance[0]:  # same raw rows as the first balance setting's run
                    refilter(OUT / f"generate-{name.replace(' ', '-')}-bal-{args.balance[0]}-{seed}", gen_dir)
                gen = run("generate", "sst2/generate", gen_dir, seed=seed, balance=balance, **VARIANTS[name])
                res = run("finetune", "sst2/full-synthetic", OUT / f"synthetic-{tag}", seed=seed,
                          extra_train=str(gen_dir / gen["dataset_path"]), eval_split="train")  # fmt: skip
                runs.append({"variant": name, "balance": balance, "seed": seed, "accuracy": res["accuracy"],
                             "n_train": res["n_train"], "kept_per_label": gen["stats"]["kept_per_label"]})  # fmt: skip
                print(f"{name} | balance {balance} | seed {seed}: {res['accuracy']:.4f} "
                      f"{gen['stats']['kept_per_label']}", flush=True)  # fmt: skip
    summary = []
    for key in dict.fromkeys((r["variant"], r["balance"]) for r in runs):
        accs = [r["accuracy"] for r in runs if (r["variant"], r["balance"]) == key]
        mean, std = mean_std(accs)
        summary.append({"variant": key[0], "balance": key[1], "seeds": len(accs), "train_slice_accuracy_mean": mean,
                        "train_slice_accuracy_std": std})  # fmt: skip
    recorded = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    RESULTS.write_text(json.dumps({**recorded, "benchmark": "generate_sst2_select",
                                   "eval": "bundled sst2 train slice (2000)", "summary": summary, "runs": runs},
                                  indent=2))  # fmt: skip
    for s in summary:
        print(f"| {s['variant']} | {s['balance']} | {100 * s['train_slice_accuracy_mean']:.1f} ± "
              f"{100 * s['train_slice_accuracy_std']:.1f} |")  # fmt: skip
    return 0


def self_train(variants: list[str], seeds: list[int]) -> int:
    """Teachers: the recipe's synthetic-data classifiers. Pool and evaluation: halves of the train slice."""
    recorded = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    runs = [r for r in recorded.get("self_train_runs", []) if (r["variant"], r["seed"]) not in
            {(v, s) for v in variants for s in seeds}]  # fmt: skip
    halves = {"dataset": str(ROOT / "hf_transfer" / "bundled" / "sst2" / "train.jsonl"), "validation_size": 0.5}
    for seed in seeds:
        teacher = OUT / f"synthetic-recipe-bal-none-{seed}"
        if not (teacher / "model.safetensors").is_file():
            raise SystemExit(f"No teacher at {teacher}: run `--variants recipe --balance none --seeds {seed}` first.")
        for name in variants:
            res = run("labelmap", "labelmap/sst2-self-train", OUT / f"self-train-{name.replace(' ', '-')}-{seed}",
                      seed=seed, source_model=teacher, **halves, **SELF_TRAIN[name])  # fmt: skip
            last = res["rounds"][-1]
            runs.append({"variant": name, "seed": seed, "teacher_accuracy": res["zero_shot_accuracy"],
                         "accuracy": res["accuracy"], "pseudo_labelled": last["pseudo_labelled"],
                         "pseudo_label_accuracy": last["pseudo_label_accuracy"]})  # fmt: skip
            print(f"self-train {name} | seed {seed}: teacher {res['zero_shot_accuracy']:.4f} -> student "
                  f"{res['accuracy']:.4f} ({last['pseudo_labelled']} pseudo-labels)", flush=True)  # fmt: skip
    summary = []
    for name in dict.fromkeys(r["variant"] for r in runs):
        rs = [r for r in runs if r["variant"] == name]
        teacher = statistics.mean(r["teacher_accuracy"] for r in rs)
        student, std = mean_std([r["accuracy"] for r in rs])
        summary.append({"variant": name, "seeds": len(rs), "teacher_accuracy_mean": teacher,
                        "student_accuracy_mean": student, "student_accuracy_std": std})  # fmt: skip
        print(f"| {name} | {100 * teacher:.1f} | {100 * student:.1f} ± {100 * std:.1f} | {len(rs)} |")
    recorded = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    recorded.update(self_train_eval="halves of the bundled sst2 train slice (1000 pool / 1000 evaluation)",
                    self_train_summary=summary, self_train_runs=runs)  # fmt: skip
    RESULTS.write_text(json.dumps(recorded, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
