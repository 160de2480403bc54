"""Choose generate settings on the bundled SST-2 *train* slice (2,000 rows), never on validation.

Run by hand (``python benchmarks/generate_sst2_select.py``) after ``benchmarks/generate_sst2.py`` has made the raw
generations (``outputs/bench-generate/generate-<seed>``): each variant re-filters those raw rows, or generates
anew if it changes sampling, trains ``recipes/sst2/full-synthetic.yaml`` on it and is scored on
the train slice (``eval_split=train``; no real row is trained on). Writes
``benchmarks/results/generate_sst2_select.json``.

The recorded runs were made before the recipe set ``top_k: 50`` (the choice they led to): runs marked
``"base": "no top-k"`` re-filtered or extended the no-top-k generations; "recipe" is the current recipe.
"""

from __future__ import annotations

import argparse
import json
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
}
SAMPLING = {"top_k", "temperature", "top_p", "n_per_label", "max_new_tokens", "templates"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS))
    parser.add_argument("--balance", nargs="+", default=["none", "min"], help="balance settings to cross with")
    args = parser.parse_args(argv)
    quiet()
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
                          extra_train=gen["dataset_path"], eval_split="train")  # fmt: skip
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
    RESULTS.write_text(json.dumps({"benchmark": "generate_sst2_select", "eval": "bundled sst2 train slice (2000)",
                                   "summary": summary, "runs": runs}, indent=2))  # fmt: skip
    for s in summary:
        print(f"| {s['variant']} | {s['balance']} | {100 * s['train_slice_accuracy_mean']:.1f} ± "
              f"{100 * s['train_slice_accuracy_std']:.1f} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
