"""`make demo`: run the strategies on the embedded defaults and bundled real data, print a comparison.

Each row is one recipe from ``recipes/sst2/`` run exactly as ``hf-transfer finetune --config ...`` would
run it (same parser, same code path), on the embedded all-MiniLM-L6-v2 and the bundled SST-2 slice,
evaluated on all 872 SST-2 validation sentences.
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
RECIPES = ["zeroshot", "head-8shot", "lora-8shot", "full-8shot", "head-64shot", "lora-64shot", "full-64shot"]


def run_recipe(name: str) -> dict:
    from hf_transfer.cli.parsing import parse_with_config
    from hf_transfer.cli.train import make_parser
    from hf_transfer.registry import get_strategy

    argv = ["--config", str(ROOT / "recipes" / "sst2" / f"{name}.yaml"), "--output_dir", str(OUT / name)]
    argv += ["--disable_tqdm", "true", "--logging_strategy", "no"]
    data_args, config = parse_with_config(make_parser("finetune"), argv)
    _, run = get_strategy("finetune").load()
    return run(config, data_args) | {"recipe": f"recipes/sst2/{name}.yaml"}


def table(rows: list[dict]) -> str:
    lines = [
        "| strategy | method | labels/class | accuracy | macro-F1 | train s | wall s |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        method = "zero-shot (label descriptions)" if r["n_per_class"] == 0 else r["method"]
        lines.append(
            f"| {r['strategy']} | {method} | {r['n_per_class']} | {r['accuracy']:.3f} | {r['f1_macro']:.3f} "
            f"| {r['train_seconds']:.1f} | {r['wall_seconds']:.1f} |"
        )
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
    rows = []
    for name in RECIPES:
        print(f"[demo] running recipes/sst2/{name}.yaml ...", flush=True)
        rows.append(run_recipe(name))
        r = rows[-1]
        print(f"[demo]   accuracy {r['accuracy']:.3f} in {r['wall_seconds']:.1f}s", flush=True)
    (OUT / "results.json").write_text(json.dumps(rows, indent=2))
    print()
    print("SST-2 validation (872 sentences), encoder: embedded all-MiniLM-L6-v2, 2-core CPU")
    print(table(rows))
    print(f"\nTotal {time.perf_counter() - start:.0f}s; per-run folders and results.json in {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
