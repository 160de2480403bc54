"""Do the generate settings carry over to another task? AG News (4 topics), synthetic-only vs zero-shot.

Run by hand (``python benchmarks/generate_ag_news.py``); writes ``benchmarks/results/generate_ag_news.json``.
``recipes/ag_news/generate.yaml`` uses the settings chosen for SST-2 (nothing tuned on AG News): 200 prompts per
label (800 in all), all filters on; ``recipes/ag_news/full-synthetic.yaml`` trains MiniLM on the result with
``sst2/full-synthetic.yaml``'s training settings; both are scored on the bundled AG News test slice (2,000 rows)
against ``recipes/ag_news/zeroshot.yaml``. Seeds 0, 1, 2; a killed run resumes.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys

from common import ROOT, mean_std, quiet, run

RESULTS = ROOT / "benchmarks" / "results" / "generate_ag_news.json"
RUNS = ROOT / "outputs" / "bench-generate-ag_news"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args(argv)
    quiet()
    zero = run("finetune", "ag_news/zeroshot", RUNS / "zeroshot")
    seeds = []
    for seed in args.seeds:
        gen_dir = RUNS / f"generate-{seed}"
        stats = run("generate", "ag_news/generate", gen_dir, seed=seed)["stats"]
        res = run("finetune", "ag_news/full-synthetic", RUNS / f"synthetic-{seed}", seed=seed,
                  extra_train=gen_dir / "dataset")  # fmt: skip
        seeds.append({"seed": seed, "accuracy": res["accuracy"], "f1_macro": res["f1_macro"],
                      "n_train": res["n_train"], "kept_per_label": stats["kept_per_label"],
                      "removed": stats["removed"], "decoding_seconds": stats["generation_seconds"]})  # fmt: skip
        print(f"synthetic only | seed {seed}: {res['accuracy']:.4f} ({res['n_train']} rows)", flush=True)
    mean, std = mean_std([s["accuracy"] for s in seeds])
    result = {"benchmark": "generate_ag_news", "eval": "bundled ag_news test slice (2000)",
              "zero_shot_accuracy": zero["accuracy"], "synthetic_only_accuracy_mean": mean,
              "synthetic_only_accuracy_std": std, "gain_points": 100 * (mean - zero["accuracy"]),
              "removed_mean": {k: statistics.mean(s["removed"][k] for s in seeds) for k in seeds[0]["removed"]},
              "seeds": seeds}  # fmt: skip
    RESULTS.write_text(json.dumps(result, indent=2))
    print(f"zero-shot {100 * zero['accuracy']:.1f}; synthetic only {100 * mean:.1f} ± {100 * std:.1f} "
          f"({result['gain_points']:+.1f}); wrote {RESULTS}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
