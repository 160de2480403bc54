"""`make demo`: run the strategies on the embedded defaults and bundled real data, print a comparison.

Each step is one recipe from ``recipes/`` run exactly as ``hf-transfer <strategy> --config ...`` would run
it (same parser, same code path), on the embedded all-MiniLM-L6-v2:

* finetune on SST-2 (zero-shot floor, head / LoRA / full at 8 and 64 labels per class), evaluated on all
  872 SST-2 validation sentences;
* labelmap: an SST-2 classifier (trained here on the bundled 2,000-row slice) carried over to Amazon
  review sentences (a domain shift) through its label map -- zero-shot, then pseudo-labels + distillation
  -- against fine-tuning on 8 Amazon labels per class alone, all evaluated on the same 500 held-out rows.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "outputs" / "demo"
SST2 = ["zeroshot", "head-8shot", "lora-8shot", "full-8shot", "head-64shot", "lora-64shot", "full-64shot"]
STEPS = [("finetune", f"sst2/{name}", True) for name in SST2] + [
    ("finetune", "sst2/full-all", False),  # the labelmap source model (not a table row of its own)
    ("finetune", "amazon/full-8shot", True),
    ("labelmap", "labelmap/sst2-to-amazon", True),
]


def run_recipe(strategy: str, name: str) -> dict:
    from hf_transfer.cli.parsing import parse_with_config
    from hf_transfer.cli.train import make_parser
    from hf_transfer.registry import get_strategy

    argv = ["--config", str(ROOT / "recipes" / f"{name}.yaml"), "--output_dir", str(OUT / name)]
    argv += ["--disable_tqdm", "true", "--logging_strategy", "no"]
    if strategy == "labelmap":
        argv += ["--source_model", str(OUT / "sst2" / "full-all")]
    data_args, config = parse_with_config(make_parser(strategy), argv)
    _, run = get_strategy(strategy).load()
    return run(config, data_args) | {"recipe": f"recipes/{name}.yaml"}


def table_rows(r: dict) -> list[tuple]:
    target = r["dataset"].removeprefix("bundled:").replace("sentiment_sentences_", "") + f" {r['eval_split']}"
    if r["strategy"] == "labelmap":
        source = "SST-2 classifier"
        return [
            ("labelmap", f"{source}, zero-shot through the map", 0, target, r["zero_shot_accuracy"],
             r["zero_shot_f1_macro"], r["pool_seconds"]),
            ("labelmap", f"{source}, pseudo-label + distil ({r['rounds'][-1]['pseudo_labelled']} rows)", 0, target,
             r["accuracy"], r["f1_macro"], r["wall_seconds"]),
        ]  # fmt: skip
    method = "zero-shot (label descriptions)" if r["n_per_class"] == 0 else r["method"]
    return [("finetune", method, r["n_per_class"], target, r["accuracy"], r["f1_macro"], r["wall_seconds"])]


def table(results: list[dict]) -> str:
    lines = [
        "| strategy | method | labels/class | evaluated on | accuracy | macro-F1 | wall s |",
        "|---|---|---:|---|---:|---:|---:|",
    ]
    for r in results:
        for strategy, method, n, target, acc, f1, seconds in table_rows(r):
            lines.append(f"| {strategy} | {method} | {n} | {target} | {acc:.3f} | {f1:.3f} | {seconds:.1f} |")
    return "\n".join(lines)


def main() -> int:
    import datasets
    import transformers

    transformers.logging.set_verbosity_error()
    datasets.logging.set_verbosity_error()
    datasets.disable_progress_bars()
    logging.getLogger("hf_transfer").setLevel(logging.WARNING)
    OUT.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    results = []
    for strategy, name, shown in STEPS:
        print(f"[demo] hf-transfer {strategy} --config recipes/{name}.yaml ...", flush=True)
        r = run_recipe(strategy, name)
        print(f"[demo]   accuracy {r['accuracy']:.3f} in {r['wall_seconds']:.1f}s", flush=True)
        if shown:
            results.append(r)
    (OUT / "results.json").write_text(json.dumps(results, indent=2))
    print()
    print("Encoder: embedded all-MiniLM-L6-v2; 2-core CPU; one seed (benchmarks/ has 3-seed means)")
    print(table(results))
    print(f"\nTotal {time.perf_counter() - start:.0f}s; per-run folders and results.json in {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
