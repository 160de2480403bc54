"""Benchmark of the labelmap strategy: two transfers, 3 seeds, accuracy and wall time; pool throughput.

Run by hand (``python benchmarks/labelmap.py``); writes ``benchmarks/results/labelmap.json`` and prints
the Markdown table that the README quotes. Every run goes through the recipes in ``recipes/`` with only
seeds, output folders and the source model path changed.

1. SST-5 source (5 labels, MiniLM fine-tuned on the bundled 2,000-row slice) → binary SST-2 validation
   through the explicit map (neutral dropped): zero-shot.
2. SST-2 source (MiniLM fine-tuned on the bundled 2,000-row slice) → Amazon and IMDB review sentences
   (domain shift; half of each set held out, labelled, for evaluation; the other half is the unlabelled
   pool): zero-shot through the map, pseudo-label + distil, the map learned from 8 labels/class, and
   the finetune strategy on the same 8 labels/class alone.
3. Pseudo-labelling throughput (tokens/s) with bf16 autocast and fp32 at sequence length ~64.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

from common import ROOT, mean_std, quiet, run

RESULTS = ROOT / "benchmarks" / "results" / "labelmap.json"
RUNS = ROOT / "outputs" / "bench-labelmap"


def throughput(source: str, rows: int = 2048) -> dict:
    """Tokens/s of source-model predictions on texts of ~64 tokens, bf16 autocast vs fp32."""
    from hf_transfer import load_bundled
    from hf_transfer.labelmap import load_source, predict_proba

    model, tok, _ = load_source(source)
    sentences = list(load_bundled("sst2")["validation"]["text"])
    texts, current = [], []
    for sentence in sentences * 20:  # join sentences until each text is ~64 tokens
        current.append(sentence)
        if len(tok(" ".join(current))["input_ids"]) >= 56:
            texts.append(" ".join(current))
            current = []
        if len(texts) == rows:
            break
    tokens = sum(min(len(ids), 128) for ids in tok(texts)["input_ids"])
    result = {"rows": len(texts), "mean_tokens": tokens / len(texts)}
    for name, bf16 in (("fp32", False), ("bf16", True)):
        predict_proba(model, tok, texts[:128], bf16=bf16)  # warm-up
        start = time.perf_counter()
        predict_proba(model, tok, texts, bf16=bf16, batch_size=64)
        seconds = time.perf_counter() - start
        result[f"{name}_tokens_per_second"] = tokens / seconds
        result[f"{name}_rows_per_second"] = len(texts) / seconds
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--domains", nargs="+", default=["amazon", "imdb"])
    args = parser.parse_args(argv)

    quiet()
    rows: list[dict] = []
    runs: list[dict] = []

    def record(transfer: str, method: str, seed: int, result: dict, accuracy_key: str = "accuracy", seconds=None):
        runs.append({"transfer": transfer, "method": method, "seed": seed, "accuracy": result[accuracy_key],
                     "wall_seconds": seconds if seconds is not None else result["wall_seconds"]})  # fmt: skip
        print(f"{transfer} | {method} | seed {seed}: {result[accuracy_key]:.4f}", flush=True)

    for seed in args.seeds:
        sst5 = RUNS / f"sst5-source-{seed}"
        src5 = run("finetune", "sst5/full-all", sst5, seed=seed)
        record("SST-5 source on SST-5 validation", "source model (5-way)", seed, src5)
        lm = run("labelmap", "labelmap/sst5-to-sst2", RUNS / f"sst5-to-sst2-{seed}", source_model=sst5, seed=seed)
        record("SST-5 → SST-2 validation", "zero-shot through the explicit map", seed, lm, "zero_shot_accuracy",
               lm["pool_seconds"])  # fmt: skip
        record("SST-5 → SST-2 validation", "mapped source head + pseudo-label + distil", seed, lm)

        sst2 = RUNS / f"sst2-source-{seed}"
        src2 = run("finetune", "sst2/full-all", sst2, seed=seed)
        record("SST-2 source on SST-2 validation", "source model", seed, src2)
        for domain in args.domains:
            transfer = f"SST-2 → {domain} (500 held out)"
            lm = run("labelmap", f"labelmap/sst2-to-{domain}", RUNS / f"{domain}-{seed}", source_model=sst2, seed=seed)
            record(transfer, "zero-shot through the map", seed, lm, "zero_shot_accuracy", lm["pool_seconds"])
            record(transfer, "pseudo-label + distil", seed, lm)
            learned = run("labelmap", f"labelmap/sst2-to-{domain}", RUNS / f"{domain}-learned-{seed}",
                          source_model=sst2, seed=seed, sample_seed=seed, n_per_class=8, map_method="learned",
                          label_map="{}")  # fmt: skip
            record(transfer, "learned map (8/class), zero-shot", seed, learned, "zero_shot_accuracy")
            record(transfer, "learned map (8/class) + pseudo-label + distil", seed, learned)
            ft = run("finetune", f"{domain}/full-8shot", RUNS / f"{domain}-ft8-{seed}", seed=seed, sample_seed=seed)
            record(transfer, "finetune on 8/class alone", seed, ft)

    groups: dict[tuple, list[dict]] = {}
    for r in runs:
        groups.setdefault((r["transfer"], r["method"]), []).append(r)
    for (transfer, method), rs in groups.items():
        mean, std = mean_std([r["accuracy"] for r in rs])
        seconds = statistics.mean(r["wall_seconds"] for r in rs)
        rows.append({"transfer": transfer, "method": method, "seeds": len(rs), "accuracy_mean": mean,
                     "accuracy_std": std, "wall_seconds_mean": seconds})  # fmt: skip
    speed = throughput(str(RUNS / f"sst2-source-{args.seeds[0]}"))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"benchmark": "labelmap", "summary": rows, "throughput": speed, "runs": runs},
                                  indent=2))  # fmt: skip
    print("| transfer | method | accuracy (mean ± std, 3 seeds) | wall s/run |\n|---|---|---|---:|")
    for r in rows:
        print(f"| {r['transfer']} | {r['method']} | {100 * r['accuracy_mean']:.1f} ± {100 * r['accuracy_std']:.1f} "
              f"| {r['wall_seconds_mean']:.0f} |")  # fmt: skip
    print(json.dumps(speed, indent=2))
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
