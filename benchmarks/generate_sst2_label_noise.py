"""How right are the synthetic labels, and what does the consistency filter remove? A diagnostic, not a selection.

Run by hand (``python benchmarks/generate_sst2_label_noise.py``) after ``benchmarks/generate_sst2.py``: a reference
classifier (``recipes/sst2/full-all.yaml``: MiniLM trained on all 2,000 bundled real SST-2 train rows) labels the
raw synthetic rows of each seed (every filter but consistency on: the ``no-consistency`` ablation set), and we
count how often it agrees with the intended label, among the rows the consistency filter keeps and the rows it
drops. The reference is itself wrong on ~17% of validation, so agreement is a rough proxy for label accuracy.
Writes ``benchmarks/results/generate_sst2_label_noise.json``.
"""

from __future__ import annotations

import argparse
import json
import sys

from common import ROOT, quiet, run
from generate_sst2 import RUNS

RESULTS = ROOT / "benchmarks" / "results" / "generate_sst2_label_noise.json"
OUT = ROOT / "outputs" / "bench-generate-noise"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args(argv)
    quiet()
    import datasets
    import numpy as np

    from hf_transfer.labelmap.predict import load_source, predict_proba

    reference = run("finetune", "sst2/full-all", OUT / "reference")
    model, tokenizer, _ = load_source(str(OUT / "reference"))
    result = {"benchmark": "generate_sst2_label_noise", "reference": "recipes/sst2/full-all.yaml (2,000 real rows)",
              "reference_validation_accuracy": reference["accuracy"], "seeds": []}  # fmt: skip
    for seed in args.seeds:
        raw = datasets.load_from_disk(str(RUNS / f"generate-{seed}-no-consistency" / "dataset"))
        kept_ids = set(datasets.load_from_disk(str(RUNS / f"generate-{seed}" / "dataset"))["row_index"])
        agree = predict_proba(model, tokenizer, raw["text"]).argmax(-1) == np.asarray(raw["label"])
        kept = np.array([i in kept_ids for i in raw["row_index"]])
        row = {"seed": seed, "rows": len(raw), "kept": int(kept.sum()), "dropped": int((~kept).sum()),
               "agreement_all": float(agree.mean()), "agreement_kept": float(agree[kept].mean()),
               "agreement_dropped": float(agree[~kept].mean())}  # fmt: skip
        result["seeds"].append(row)
        print(json.dumps(row), flush=True)
    for key in ("agreement_all", "agreement_kept", "agreement_dropped"):
        result[f"{key}_mean"] = float(np.mean([r[key] for r in result["seeds"]]))
    RESULTS.write_text(json.dumps(result, indent=2))
    print(f"reference validation accuracy {reference['accuracy']:.3f}; agreement with the intended label: "
          f"all {result['agreement_all_mean']:.3f}, kept {result['agreement_kept_mean']:.3f}, "
          f"dropped {result['agreement_dropped_mean']:.3f}; wrote {RESULTS}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
