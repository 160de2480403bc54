"""Benchmark of the generate strategy on SST-2: synthetic data from the embedded SmolLM2-135M-Instruct,
a MiniLM classifier trained on it, evaluated on the 872 real SST-2 validation sentences.

Run by hand (``python benchmarks/generate_sst2.py``); writes ``benchmarks/results/generate_sst2.json`` and
prints the Markdown tables the README quotes. Every run is a recipe from ``recipes/`` (only seeds, output
folders and the dataset path changed), and a killed benchmark resumes where it stopped.

Per seed (0, 1, 2):
1. ``recipes/sst2/generate.yaml``: 400 prompts per label, all filters on → the synthetic set;
2. ``recipes/sst2/full-synthetic.yaml``: MiniLM trained on the synthetic set alone (0 real labels);
3. ``recipes/sst2/full-8shot-synthetic.yaml`` vs ``recipes/sst2/full-8shot.yaml``: 8 real labels/class
   with and without the synthetic set (and with the real rows repeated 10x, ``repeat_train=10``);
4. ablation: the same raw generations re-filtered with one filter off (no new generation), then step 2;
5. ``recipes/labelmap/sst2-self-train.yaml``: step 2's classifier pseudo-labels the 2,000 bundled SST-2 train
   texts (labels not used) and a student trains on them: still 0 real labels, but unlabelled target text.
Plus the zero-shot floor (``recipes/sst2/zeroshot.yaml``) and generation throughput: the batch-1 fp32
``model.generate`` loop vs the recipe's engine (continuous batching, batch size, dtype for this machine) and vs
``model.generate`` at batch 64, on the same prompts (``--only_throughput`` re-measures just that).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
from pathlib import Path

from common import ROOT, mean_std, quiet, run

RESULTS = ROOT / "benchmarks" / "results" / "generate_sst2.json"
RUNS = ROOT / "outputs" / "bench-generate"
# each filter off in turn: the setting that disables it (exact duplicates and cleaning always run)
ABLATIONS = {
    "length": {"min_words": 0, "max_words": 100000},
    "near_duplicate": {"near_dup_threshold": 1.0},
    "contamination": {"contamination_ngram": 0},
    "consistency": {"consistency_threshold": 0.0},
}


def refilter(source: Path, out: Path) -> None:
    """Give ``out`` the raw generations of ``source`` so generate only re-filters them."""
    if not (out / "shards").is_dir():
        out.mkdir(parents=True, exist_ok=True)
        shutil.copytree(source / "shards", out / "shards")
        shutil.copy(source / "run_config.json", out / "run_config.json")


def throughput(n_prompts: int, batch_1_prompts: int) -> dict:
    """New tokens/s: the batch-1 ``model.generate`` loop in fp32 vs the recipe's settings (batch size, continuous
    batching, dtype resolved for this machine) and vs ``model.generate`` in batches, on the same recipe prompts."""
    import platform

    import torch
    import yaml

    from hf_transfer.generate import GenerateConfig, generate_rows, load_generator, load_templates, measure_throughput
    from hf_transfer.generate.prompts import build_prompts
    from hf_transfer.precision import bf16_is_fast

    recipe = yaml.safe_load((ROOT / "recipes" / "sst2" / "generate.yaml").read_text())
    config = GenerateConfig(**{k: v for k, v in recipe.items() if k in GenerateConfig.__dataclass_fields__})
    labels = config.target_labels or sorted(config.label_descriptions)
    prompts = build_prompts(labels, n_prompts // len(labels), load_templates(config.templates), seed=0,
                            descriptions=config.label_descriptions)  # fmt: skip
    texts = [p.text for p in prompts]
    kwargs = dict(max_new_tokens=config.max_new_tokens, temperature=config.temperature, top_p=config.top_p,
                  top_k=config.top_k, stop_at_newline=config.stop_at_newline)  # fmt: skip
    result = {"prompts": len(texts), "batch_1_prompts": batch_1_prompts, "max_new_tokens": config.max_new_tokens,
              "cpu": platform.processor() or platform.machine(),
              "cpu_capability": torch.backends.cpu.get_cpu_capability(),
              "bf16_is_fast": bf16_is_fast("cpu"), "torch_threads": torch.get_num_threads()}  # fmt: skip
    model, tokenizer = load_generator(config.generator)  # fp32, as loaded
    measure_throughput(model, tokenizer, texts[:2], batch_size=1, bf16=False, **kwargs)  # warm-up
    result["batch_1_fp32"] = measure_throughput(model, tokenizer, texts[:batch_1_prompts], batch_size=1, bf16=False,
                                                **kwargs)  # fmt: skip
    bf16 = config.use_bf16
    if bf16:
        model.to(torch.bfloat16)
    result["generate_batched"] = measure_throughput(model, tokenizer, texts, batch_size=64, bf16=bf16, **kwargs)
    generate_rows(model, tokenizer, texts[:8], seed=0, batch_size=8, bf16=bf16, **kwargs)  # warm-up
    out = generate_rows(model, tokenizer, texts, seed=0, batch_size=config.batch_size, bf16=bf16,
                        continuous_batching=config.continuous_batching, **kwargs)  # fmt: skip
    tokens = sum(out.new_tokens)
    result["recipe"] = {"batch_size": config.batch_size, "continuous_batching": config.continuous_batching,
                        "bf16": bf16, "new_tokens": tokens, "seconds": out.seconds,
                        "tokens_per_second": tokens / out.seconds}  # fmt: skip
    base = result["batch_1_fp32"]["tokens_per_second"]
    result["speedup_vs_batch_1_fp32"] = result["recipe"]["tokens_per_second"] / base
    result["generate_batched_speedup_vs_batch_1_fp32"] = result["generate_batched"]["tokens_per_second"] / base
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--throughput_prompts", type=int, default=512)
    parser.add_argument("--batch_1_prompts", type=int, default=32, help="the batch-1 loop is slow: a prefix")
    parser.add_argument("--only_throughput", action="store_true", help="re-measure throughput, keep the runs")
    parser.add_argument("--keep_throughput", action="store_true", help="keep the recorded throughput, redo the runs")
    args = parser.parse_args(argv)
    quiet()
    if args.only_throughput:
        previous = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {"benchmark": "generate_sst2"}
        previous["throughput"] = speed = throughput(args.throughput_prompts, args.batch_1_prompts)
        RESULTS.write_text(json.dumps(previous, indent=2))
        print(json.dumps(speed, indent=2))
        return 0
    runs: list[dict] = []

    def record(setting: str, seed: int, result: dict, **extra) -> None:
        runs.append({"setting": setting, "seed": seed, "accuracy": result["accuracy"],
                     "f1_macro": result["f1_macro"], "n_train": result["n_train"],
                     "wall_seconds": result["wall_seconds"], **extra})  # fmt: skip
        print(f"{setting} | seed {seed}: {result['accuracy']:.4f} ({result['n_train']} train rows)", flush=True)

    zero = run("finetune", "sst2/zeroshot", RUNS / "zeroshot")
    record("zero-shot (label descriptions), 0 real labels", 0, zero)
    generations = []
    for seed in args.seeds:
        gen_dir = RUNS / f"generate-{seed}"
        gen = run("generate", "sst2/generate", gen_dir, seed=seed)
        generations.append({"seed": seed, "wall_seconds": gen["wall_seconds"], **gen["stats"]})
        data = str(gen_dir / gen["dataset_path"])
        syn = run("finetune", "sst2/full-synthetic", RUNS / f"synthetic-{seed}", seed=seed, extra_train=data)
        # decoding time from the shards: the same whether the rows were generated now or resumed from disk
        record("synthetic only, 0 real labels", seed, syn, generate_seconds=gen["wall_seconds"],
               decoding_seconds=gen["stats"]["generation_seconds"],
               resumed_shards=gen["stats"]["resumed_batches"])  # fmt: skip
        st = run("labelmap", "labelmap/sst2-self-train", RUNS / f"self-train-{seed}", seed=seed,
                 source_model=RUNS / f"synthetic-{seed}")  # fmt: skip
        record("synthetic, then self-training on 2,000 unlabelled train texts, 0 real labels", seed,
               {**st, "n_train": st["rounds"][-1]["pseudo_labelled"]}, teacher_accuracy=st["zero_shot_accuracy"],
               pseudo_label_accuracy=st["rounds"][-1]["pseudo_label_accuracy"])  # fmt: skip
        mixed = run("finetune", "sst2/full-8shot-synthetic", RUNS / f"mixed-{seed}", seed=seed, sample_seed=seed,
                    extra_train=data)  # fmt: skip
        record("8 real/class + synthetic", seed, mixed)
        # the real rows repeated 10x: as often seen as in the 10-epoch real-only recipe (not the recipe default)
        mixed10 = run("finetune", "sst2/full-8shot-synthetic", RUNS / f"mixed-x10-{seed}", seed=seed,
                      sample_seed=seed, extra_train=data, repeat_train=10)  # fmt: skip
        record("8 real/class (repeated 10x) + synthetic", seed, mixed10)
        real = run("finetune", "sst2/full-8shot", RUNS / f"real8-{seed}", seed=seed, sample_seed=seed)
        record("8 real/class alone", seed, real)
        for name, off in ABLATIONS.items():
            out = RUNS / f"generate-{seed}-no-{name}"
            refilter(gen_dir, out)
            ablated = run("generate", "sst2/generate", out, seed=seed, **off)
            res = run("finetune", "sst2/full-synthetic", RUNS / f"synthetic-{seed}-no-{name}", seed=seed,
                      extra_train=str(out / ablated["dataset_path"]))  # fmt: skip
            record(f"synthetic only, {name} filter off", seed, res)

    summary = []
    for setting in dict.fromkeys(r["setting"] for r in runs):
        rs = [r for r in runs if r["setting"] == setting]
        mean, std = mean_std([r["accuracy"] for r in rs])
        summary.append({"setting": setting, "seeds": len(rs), "accuracy_mean": mean, "accuracy_std": std,
                        "f1_macro_mean": statistics.mean(r["f1_macro"] for r in rs),
                        "n_train_mean": statistics.mean(r["n_train"] for r in rs),
                        "wall_seconds_mean": statistics.mean(r["wall_seconds"] for r in rs)})  # fmt: skip
    recorded = json.loads(RESULTS.read_text()).get("throughput") if RESULTS.is_file() else None
    if args.keep_throughput and recorded:
        speed = recorded
    else:
        speed = throughput(args.throughput_prompts, args.batch_1_prompts)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"benchmark": "generate_sst2", "summary": summary, "generations": generations,
                                   "throughput": speed, "runs": runs}, indent=2))  # fmt: skip
    print("| setting | accuracy (mean ± std) | macro-F1 | train rows | wall s/run |\n|---|---|---:|---:|---:|")
    for r in summary:
        acc = f"{100 * r['accuracy_mean']:.1f} ± {100 * r['accuracy_std']:.1f}"
        print(f"| {r['setting']} | {acc} | {100 * r['f1_macro_mean']:.1f} | {r['n_train_mean']:.0f} "
              f"| {r['wall_seconds_mean']:.0f} |")  # fmt: skip
    print("\nrows removed per filter (mean over seeds):")
    for name in generations[0]["removed"]:
        print(f"  {name}: {statistics.mean(g['removed'][name] for g in generations):.1f}")
    print(json.dumps(speed, indent=2))
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
