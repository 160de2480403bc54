"""Benchmark of the finetune strategy on SST-2 validation (872 sentences) with the embedded MiniLM.

Run by hand (``make bench`` or ``python benchmarks/finetune_sst2.py``); writes
``benchmarks/results/finetune_sst2.json`` and prints the Markdown table that the README quotes.

Grid: labels per class in {0, 8, 64} x sample seeds {0, 1, 2} x method (head on cached features, LoRA,
full) x head init (label descriptions / random), each run from the SST-2 recipes in ``recipes/sst2/`` with
only the seed, the sample and the head init changed; plus the plain ``Trainer`` +
``AutoModelForSequenceClassification`` baseline on the same samples, and two speed measurements:
the adapter's overhead against the stock Trainer on the same prepared model and data, and head-only
training on cached features against full fine-tuning, per epoch.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "finetune_sst2.json"
RUNS = ROOT / "outputs" / "bench"


def recipe_args(name: str, **overrides) -> tuple:
    from hf_transfer.cli.parsing import parse_with_config
    from hf_transfer.cli.train import make_parser

    argv = ["--config", str(ROOT / "recipes" / "sst2" / f"{name}.yaml")]
    argv += ["--disable_tqdm", "true", "--logging_strategy", "no", "--output_dir", str(RUNS / name)]
    argv += ["--overwrite_output_dir", "true"]  # every seed re-runs into the recipe's folder
    for key, value in overrides.items():
        argv += [f"--{key}", str(value)]
    return parse_with_config(make_parser("finetune"), argv)


def run_recipe(name: str, **overrides) -> dict:
    from hf_transfer.finetune import run_finetune

    data_args, config = recipe_args(name, **overrides)
    return run_finetune(config, data_args)


def plain_baseline(n_per_class: int, seed: int) -> dict:
    """The stock recipe: AutoModelForSequenceClassification (pooler + random head) and Trainer."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding, Trainer

    from hf_transfer.finetune import load_data_args, tokenize
    from hf_transfer.metrics import classification
    from hf_transfer.registry import get_strategy  # noqa: F401  (keeps import cost comparable)

    data_args, config = recipe_args(f"full-{n_per_class}shot", seed=seed, sample_seed=seed)
    start = time.perf_counter()
    train, eval_ds, labels = load_data_args(data_args)
    path = __import__("hf_transfer").resolve_model(config.model_name_or_path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(
        path, num_labels=len(labels), id2label=dict(enumerate(labels)), label2id={k: i for i, k in enumerate(labels)}
    )
    trainer = Trainer(
        model=model,
        args=config,
        train_dataset=tokenize(train, tokenizer, config.max_length),
        eval_dataset=tokenize(eval_ds, tokenizer, config.max_length),
        data_collator=DataCollatorWithPadding(tokenizer),
        compute_metrics=classification(len(labels)),
    )
    t = time.perf_counter()
    trainer.train()
    train_seconds = time.perf_counter() - t
    metrics = trainer.evaluate()
    return {
        "accuracy": metrics["eval_accuracy"],
        "f1_macro": metrics["eval_f1_macro"],
        "train_seconds": train_seconds,
        "wall_seconds": time.perf_counter() - start,
    }


def adapter_overhead(repeats: int = 3) -> dict:
    """Train time of run_finetune's Trainer vs the stock Trainer on the same prepared model and data."""
    import torch
    from transformers import DataCollatorWithPadding, Trainer

    from hf_transfer.finetune import TransferTrainer, load_data_args, prepare, tokenize

    data_args, config = recipe_args("full-64shot", num_train_epochs=2)
    train, _, labels = load_data_args(data_args)
    times: dict[str, list[float]] = {"stock": [], "hf_transfer": []}
    for _ in range(repeats):
        for kind in ("stock", "hf_transfer"):
            torch.manual_seed(0)
            model, tokenizer = prepare(config.model_name_or_path, labels, label_descriptions=config.label_descriptions)
            cls = Trainer if kind == "stock" else TransferTrainer
            trainer = cls(
                model=model,
                args=config,
                train_dataset=tokenize(train, tokenizer, config.max_length),
                data_collator=DataCollatorWithPadding(tokenizer),
            )
            start = time.perf_counter()
            trainer.train()
            times[kind].append(time.perf_counter() - start)
    stock, ours = statistics.median(times["stock"]), statistics.median(times["hf_transfer"])
    return {"stock_train_seconds": stock, "hf_transfer_train_seconds": ours, "overhead": ours / stock - 1, **times}


def per_epoch_speed() -> dict:
    """Seconds per epoch, 64/class, as the slope between a short and a longer run (start-up cost cancels)."""
    result = {}
    for method, (short, long) in {"full": (2, 4), "head": (4, 12)}.items():
        times = {e: run_recipe(f"{method}-64shot", num_train_epochs=e)["train_seconds"] for e in (short, long)}
        result[f"{method}_seconds_per_epoch"] = (times[long] - times[short]) / (long - short)
    result["head_speedup_per_epoch"] = result["full_seconds_per_epoch"] / result["head_seconds_per_epoch"]
    return result


def summarise(runs: list[dict]) -> list[dict]:
    groups: dict[tuple, list[dict]] = {}
    for r in runs:
        groups.setdefault((r["n_per_class"], r["method"], r["head_init"]), []).append(r)
    rows = []
    for (n, method, init), rs in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2])):
        accs = [r["accuracy"] for r in rs]
        rows.append(
            {
                "n_per_class": n,
                "method": method,
                "head_init": init,
                "seeds": len(rs),
                "accuracy_mean": statistics.mean(accs),
                "accuracy_std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
                "wall_seconds_mean": statistics.mean(r["wall_seconds"] for r in rs),
                "train_seconds_mean": statistics.mean(r["train_seconds"] for r in rs),
            }
        )
    return rows


def markdown(rows: list[dict]) -> str:
    lines = [
        "| labels/class | method | head init | accuracy (mean ± std, 3 seeds) | wall s/run |",
        "|---:|---|---|---|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['n_per_class']} | {r['method']} | {r['head_init']} | "
            f"{100 * r['accuracy_mean']:.1f} ± {100 * r['accuracy_std']:.1f} | {r['wall_seconds_mean']:.0f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--shots", type=int, nargs="+", default=[8, 64])
    parser.add_argument("--methods", nargs="+", default=["head", "lora", "full"])
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--only-speed", action="store_true", help="re-measure speed into the existing JSON")
    args = parser.parse_args(argv)

    import datasets
    import transformers

    transformers.logging.set_verbosity_error()
    datasets.disable_progress_bars()
    if args.only_speed:
        report = json.loads(RESULTS.read_text())
        report["speed"] = {"adapter_overhead": adapter_overhead(), **per_epoch_speed()}
        RESULTS.write_text(json.dumps(report, indent=2))
        print(json.dumps(report["speed"], indent=2))
        return 0
    runs: list[dict] = []
    zero = run_recipe("zeroshot")
    runs += [zero | {"sample_seed": s} for s in args.seeds]  # no sample, no training: identical across seeds
    print(f"0/class: {zero['accuracy']:.4f}", flush=True)
    for n in args.shots:
        for method in args.methods:
            for init in ("label_descriptions", "random"):
                for seed in args.seeds:
                    r = run_recipe(f"{method}-{n}shot", seed=seed, sample_seed=seed, head_init=init)
                    runs.append(r)
                    print(
                        f"{n}/class {method} {init} seed {seed}: {r['accuracy']:.4f} {r['wall_seconds']:.0f}s",
                        flush=True,
                    )
        if not args.skip_baseline:
            for seed in args.seeds:
                r = plain_baseline(n, seed)
                runs.append(r | {"n_per_class": n, "method": "plain Trainer + AutoModelForSequenceClassification",
                                 "head_init": "random", "sample_seed": seed})  # fmt: skip
                print(f"{n}/class plain baseline seed {seed}: {r['accuracy']:.4f}", flush=True)
    rows = summarise(runs)
    speed = {}
    if not args.skip_speed:
        speed["adapter_overhead"] = adapter_overhead()
        speed.update(per_epoch_speed())
    report = {
        "benchmark": "finetune_sst2",
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": sys.version.split()[0]},
        "summary": rows,
        "speed": speed,
        "runs": runs,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2))
    print(markdown(rows))
    if speed:
        print(json.dumps({k: v for k, v in speed.items() if k != "adapter_overhead"}, indent=2))
        print("adapter overhead:", f"{100 * speed['adapter_overhead']['overhead']:+.1f}%")
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
