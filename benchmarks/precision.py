"""bf16 vs fp32, side by side: the same SST-2 recipes, seeds and samples, only ``--bf16`` changed (issue 19 item 1:
accuracy must stay within seed noise where bf16 becomes the default).

Run by hand, alone: ``python benchmarks/precision.py [--methods head full] [--shots 8 64] [--seeds 0 1 2]``; writes
``benchmarks/results/precision.json`` after every run (a killed benchmark resumes: finished runs are reused).
``--speed`` adds inference throughput side by side in one process: the seed-0 full 8-shot model scores the 872 SST-2
validation sentences through ``inference.predict_proba`` (the path evaluation, pool scoring and consistency scoring
share), fp32 then bf16, three passes each, best pass kept. bf16 numerics do not depend on the CPU (autocast rounds
the matmul inputs to bf16 either way), so accuracy can be compared on any machine; its speed only means something on
a CPU with AVX512-BF16 or AMX, and the CPU is written next to every figure.
"""

from __future__ import annotations

import argparse
import json
import sys

from common import ROOT, cpu, mean_std, quiet, run

RESULTS = ROOT / "benchmarks" / "results" / "precision.json"
RUNS = ROOT / "outputs" / "bench-precision"
FINETUNE = ["head", "lora", "full"]
# SST-2 -> amazon through recipes/labelmap/sst2-to-amazon.yaml, its source the full SST-2 run of the same seed,
# shots and precision (as in `make demo`): zero-shot through the map, then pseudo-label + distil
LABELMAP = "labelmap-amazon"
# CrossNER politics from 8 sentences per type, all weights (recipes/ner/politics-full-8shot.yaml); its score is
# entity micro-F1 on the 651 test sentences (8-shot only)
NER = "ner-full"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=["head", "full"], choices=[*FINETUNE, LABELMAP, NER])
    parser.add_argument("--shots", type=int, nargs="+", default=[8, 64], choices=[8, 64])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--speed", action="store_true", help="also measure inference texts/s, fp32 vs bf16")
    args = parser.parse_args(argv)
    quiet()
    speed = measure_speed() if args.speed else None
    redo = {(cpu(), m, k, s, b) for m in args.methods for k in args.shots for s in args.seeds for b in (False, True)}
    previous = json.loads(RESULTS.read_text())["runs"] if RESULTS.is_file() else []
    # rows of other machines and of settings not asked for this time are kept; asked ones are (re)read below
    runs = [r for r in previous if (r["cpu"], r["method"], r["shots"], r["seed"], r["bf16"]) not in redo]
    for seed in args.seeds:
        for shots in args.shots:
            for method in args.methods:
                if method == NER and shots != 8:
                    continue
                for bf16 in (False, True):
                    precision = "bf16" if bf16 else "fp32"
                    name = f"{method}-{shots}shot-seed{seed}-{precision}"
                    source = RUNS / f"full-{shots}shot-seed{seed}-{precision}"
                    if method == NER:
                        res = run("finetune", "ner/politics-full-8shot", RUNS / name, seed=seed, bf16=bf16)
                        res = {**res, "accuracy": res["f1_micro"]}
                    elif method == LABELMAP:
                        run("finetune", f"sst2/full-{shots}shot", source, seed=seed, bf16=bf16)
                        res = run("labelmap", "labelmap/sst2-to-amazon", RUNS / name, source_model=source, seed=seed,
                                  bf16=bf16)  # fmt: skip
                    else:
                        res = run("finetune", f"sst2/{method}-{shots}shot", RUNS / name, seed=seed, bf16=bf16)
                    runs.append({"cpu": cpu(), "method": method, "shots": shots, "seed": seed, "bf16": res["bf16"],
                                 "accuracy": res["accuracy"], "train_seconds": round(res["train_seconds"], 1),
                                 "wall_seconds": round(res["wall_seconds"], 1)})  # fmt: skip
                    if method == LABELMAP:
                        runs[-1]["zero_shot_accuracy"] = res["zero_shot_accuracy"]
                    write(runs, speed)
                    print(f"{name}: {res['accuracy']:.4f} ({runs[-1]['wall_seconds']} s)", flush=True)
    print(json.dumps(write(runs, speed), indent=2))
    return 0


def measure_speed(passes: int = 3) -> dict:
    """Inference texts/s and padded tokens/s, fp32 vs bf16 autocast, same model, texts, batches, process."""
    import time

    import numpy as np
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from hf_transfer.config import DataArguments
    from hf_transfer.data import load_data_args
    from hf_transfer.inference import predict_proba
    from hf_transfer.precision import bf16_is_fast, cpu_bf16_speedup

    folder = RUNS / "full-8shot-seed0-fp32"
    run("finetune", "sst2/full-8shot", folder, seed=0, bf16=False)
    _, eval_ds, _ = load_data_args(DataArguments(dataset="bundled:sst2", eval_split="validation"), announce=False)
    texts = list(eval_ds["text"])
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    order = np.argsort([len(t) for t in texts])  # predict_proba sorts by length: count the padding it runs
    padded = sum(
        max(len(ids) for ids in tokenizer([texts[i] for i in order[b : b + 64]], truncation=True, max_length=128)
            ["input_ids"]) * len(order[b : b + 64])
        for b in range(0, len(texts), 64)
    )  # fmt: skip
    out = {"cpu": cpu(), "torch_threads": torch.get_num_threads(), "texts": len(texts), "padded_tokens": padded}
    probs = {}
    for bf16 in (False, True):
        predict_proba(model, tokenizer, texts[:64], bf16=bf16)  # warm-up
        best = float("inf")
        for _ in range(passes):
            start = time.perf_counter()
            probs[bf16] = predict_proba(model, tokenizer, texts, bf16=bf16)
            best = min(best, time.perf_counter() - start)
        key = "bf16" if bf16 else "fp32"
        out[key] = {"seconds": round(best, 2), "texts_per_second": round(len(texts) / best, 1),
                    "padded_tokens_per_second": round(padded / best)}  # fmt: skip
        print(key, out[key], flush=True)
    out["speedup"] = round(out["fp32"]["seconds"] / out["bf16"]["seconds"], 2)
    out["matmul_speedup"] = round(cpu_bf16_speedup(), 2)  # what the rule measures (precision.py)
    out["rule_bf16"] = bf16_is_fast("cpu")  # its choice for training and encoders on this CPU
    out["max_abs_prob_diff"] = float(np.abs(probs[True] - probs[False]).max())
    out["same_predictions"] = int((probs[True].argmax(1) == probs[False].argmax(1)).sum())
    return out


def write(runs: list[dict], speed: dict | None = None) -> dict:
    summary = {}
    for r in runs:
        key = f"{r['cpu']} | {r['method']} {r['shots']}-shot | {'bf16' if r['bf16'] else 'fp32'}"
        summary.setdefault(key, []).append(r["accuracy"])
    summary = {k: {"accuracy_mean": mean_std(v)[0], "accuracy_std": mean_std(v)[1], "seeds": len(v)}
               for k, v in summary.items()}  # fmt: skip
    previous = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    speeds = [r for r in previous.get("inference_speed", []) if speed is None or r["cpu"] != speed["cpu"]]
    speeds += [speed] if speed else []
    RESULTS.write_text(json.dumps({"summary": summary, "inference_speed": speeds, "runs": runs}, indent=2) + "\n")
    return summary


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
