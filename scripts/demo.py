"""`make demo`: run the strategies on the embedded defaults and bundled real data, print a comparison.

Each step is one recipe from ``recipes/`` run exactly as ``hf-transfer <strategy> --config ...`` would run
it (same parser, same code path), on the embedded all-MiniLM-L6-v2:

* finetune on SST-2 (zero-shot floor, head / LoRA / full at 8 and 64 labels per class), evaluated on all
  872 SST-2 validation sentences;
* generate: SmolLM2-135M-Instruct writes 256 SST-2-style sentences from the two label descriptions
  (filtered: cleaning, length, contamination with SST-2 validation, duplicates, label consistency);
  MiniLM trains on them with 0 real labels, and on them plus 8 real labels per class; then that 0-label
  classifier pseudo-labels the 2,000 bundled SST-2 train texts (labels unused) and a student trains on
  them (self-training through the labelmap strategy, identity map);
* labelmap: the 64-shot full SST-2 classifier of the first rows carried over to Amazon
  review sentences (a domain shift) through its label map -- zero-shot, then pseudo-labels + distillation
  -- against fine-tuning on 8 Amazon labels per class alone, all evaluated on the same 500 held-out rows;
* multi-label: GoEmotions (28 emotions, several per comment), zero-shot from the label names, head-only
  at 8 rows per label with per-label thresholds cross-fitted on the sample, and labelmap from a classifier
  over Ekman's 7 coarser groups (trained here on the bundled ``goemotions_ekman`` rows) through GoEmotions'
  own many-to-many grouping, with no GoEmotions label read; all on the bundled 1,000 test rows;
* token classification (NER): CrossNER politics (9 entity types) from 8 sentences per type, and from a CoNLL-2003
  tagger (4 types; a head on frozen MiniLM word features, trained here on the bundled 2,000 sentences) through a
  map between entity types -- zero-shot, then pseudo-labels + per-token distillation -- with no politics tag
  read; all on the 651 politics test sentences.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "outputs" / "demo"
SST2 = ["zeroshot", "head-8shot", "lora-8shot", "full-8shot", "head-64shot", "lora-64shot", "full-64shot"]
SELF_TRAIN = "labelmap/sst2-self-train"
FEATURES = ["--feature_cache_dir", str(OUT / "features")]  # head runs share the frozen features of the same texts
# (strategy, recipe, which table shows it (False: none), flags beyond the recipe's): shared work is done once --
# the labelmap source for Amazon is the 64-shot SST-2 model of the table, head runs reuse cached features.
STEPS = [
    ("finetune", f"sst2/{name}", True, FEATURES if name.startswith(("zeroshot", "head")) else []) for name in SST2
]
STEPS += [
    ("generate", "sst2/generate", False, ["--n_per_label", "128"]),  # 256 synthetic rows (no accuracy of their own)
    ("finetune", "sst2/full-synthetic", True, []),
    ("labelmap", SELF_TRAIN, True, []),  # the synthetic-data classifier as teacher
    ("finetune", "sst2/full-8shot-synthetic", True, []),
    ("finetune", "amazon/full-8shot", True, []),
    ("labelmap", "labelmap/sst2-to-amazon", True, []),
    ("finetune", "goemotions/zeroshot", "multi_label", FEATURES),
    ("finetune", "goemotions/head-8shot", "multi_label", FEATURES),
    ("finetune", "goemotions/ekman-source", False, FEATURES),  # the Ekman-group source model (7 classes)
    ("labelmap", "goemotions/labelmap-ekman", "multi_label", []),
    ("finetune", "ner/politics-full-8shot", "ner", []),
    ("finetune", "ner/conll-head", False, []),  # the CoNLL source tagger (head on frozen features: fast)
    ("labelmap", "ner/labelmap-zeroshot", "ner", []),
]
SECTIONS = {"goemotions": "multi-label", "ner": "NER"}  # recipe folder -> the demo section it times; else single-label
SOURCES = {SELF_TRAIN: "sst2/full-synthetic", "labelmap/sst2-to-amazon": "sst2/full-64shot",
           "goemotions/labelmap-ekman": "goemotions/ekman-source",
           "ner/labelmap-zeroshot": "ner/conll-head"}  # fmt: skip


def run_recipe(strategy: str, name: str, flags: list[str]) -> dict:
    from hf_transfer.cli.parsing import parse_with_config
    from hf_transfer.cli.train import make_parser
    from hf_transfer.registry import get_strategy

    argv = ["--config", str(ROOT / "recipes" / f"{name}.yaml"), "--output_dir", str(OUT / name)]
    if strategy != "generate":  # TrainingArguments flags
        argv += ["--disable_tqdm", "true", "--logging_strategy", "no", "--save_strategy", "no"]
        argv += ["--overwrite_output_dir", "true"]  # a re-run replaces the folder's previous run
    if "synthetic" in name:
        argv += ["--extra_train", str(OUT / "sst2" / "generate" / "dataset")]
    if strategy == "labelmap":
        argv += ["--source_model", str(OUT / SOURCES[name])]
    argv += flags
    data_args, config = parse_with_config(make_parser(strategy), argv)
    _, run = get_strategy(strategy).load()
    return {**run(config, data_args), "recipe": f"recipes/{name}.yaml"}


def table_rows(r: dict) -> list[tuple]:
    target = r["dataset"].removeprefix("bundled:").replace("sentiment_sentences_", "") + f" {r['eval_split']}"
    if r["strategy"] == "labelmap" and r["map_method"] == "identity":  # self-training: its source is our own model
        pseudo = r["rounds"][-1]["pseudo_labelled"]
        method = (
            f"self-training: the synthetic-data model pseudo-labels {r['n_pool']} unlabelled texts ({pseudo} kept)"
        )
        return [("generate", method, 0, target, r["accuracy"], r["f1_macro"], r["wall_seconds"])]
    if r["strategy"] == "labelmap":
        source = "SST-2 classifier (the full 64-shot row)"
        return [
            ("labelmap", f"{source}, zero-shot through the map", 0, target, r["zero_shot_accuracy"],
             r["zero_shot_f1_macro"], r["pool_seconds"]),
            ("labelmap", f"{source}, pseudo-label + distil ({r['rounds'][-1]['pseudo_labelled']} rows)", 0, target,
             r["accuracy"], r["f1_macro"], r["wall_seconds"]),
        ]  # fmt: skip
    method = "zero-shot (label descriptions)" if r["n_per_class"] == 0 else r["method"]
    strategy = "finetune"
    if r.get("extra_train"):  # trained on the generate step's synthetic rows (+ the real sample, if any)
        strategy = "generate"
        real = " + the real ones" if r["n_real_train"] else ""
        method = f"{r['method']} on {r['n_extra_train']} SmolLM2 rows{real}"
    return [(strategy, method, r["n_per_class"], target, r["accuracy"], r["f1_macro"], r["wall_seconds"])]


def table(results: list[dict]) -> str:
    lines = [
        "| strategy | method | labels/class | evaluated on | accuracy | macro-F1 | wall s |",
        "|---|---|---:|---|---:|---:|---:|",
    ]
    for r in results:
        for strategy, method, n, target, acc, f1, seconds in table_rows(r):
            lines.append(f"| {strategy} | {method} | {n} | {target} | {acc:.3f} | {f1:.3f} | {seconds:.1f} |")
    return "\n".join(lines)


def multi_label_table(results: list[dict]) -> str:
    lines = [
        "| strategy | method | rows/label | evaluated on | micro-F1 | macro-F1 | samples-F1 | wall s |",
        "|---|---|---:|---|---:|---:|---:|---:|",
    ]
    for r in results:
        rows = [(r["strategy"], "zero-shot (label names)" if r["n_per_class"] == 0 else
                 f"{r['method']} ({r['n_train']} rows)", r["f1_micro"], r["f1_macro"], r["f1_samples"],
                 r["wall_seconds"])]  # fmt: skip
        if r["strategy"] == "labelmap":
            source = "Ekman-group classifier (7 classes)"
            rows = [("labelmap", f"{source}, zero-shot through the many-to-many map", r["zero_shot_f1_micro"],
                     r["zero_shot_f1_macro"], r["zero_shot_f1_samples"], r["pool_seconds"]),
                    ("labelmap", f"{source}, pseudo-label + distil ({r['n_pool']} texts)", r["f1_micro"],
                     r["f1_macro"], r["f1_samples"], r["wall_seconds"])]  # fmt: skip
        for strategy, method, micro, macro, samples, seconds in rows:
            lines.append(
                f"| {strategy} | {method} | {r['n_per_class']} | {r['dataset'].removeprefix('bundled:')} "
                f"{r['eval_split']} | {micro:.3f} | {macro:.3f} | {samples:.3f} | {seconds:.1f} |"
            )
    return "\n".join(lines)


def ner_table(results: list[dict]) -> str:
    lines = [
        "| strategy | method | sentences/type | evaluated on | entity micro-F1 | macro-F1 | wall s |",
        "|---|---|---:|---|---:|---:|---:|",
    ]
    for r in results:
        rows = [(r["strategy"], f"{r['method']} ({r['n_train']} sentences)", r["f1_micro"], r["f1_macro"],
                 r["wall_seconds"])]  # fmt: skip
        if r["strategy"] == "labelmap":
            source = "CoNLL tagger (4 types)"
            rows = [("labelmap", f"{source}, zero-shot through the type map", r["zero_shot_f1_micro"],
                     r["zero_shot_f1_macro"], r["pool_seconds"]),
                    ("labelmap", f"{source}, pseudo-label + distil ({r['n_pool']} sentences)", r["f1_micro"],
                     r["f1_macro"], r["wall_seconds"])]  # fmt: skip
        for strategy, method, micro, macro, seconds in rows:
            lines.append(
                f"| {strategy} | {method} | {r['n_per_class']} | {r['dataset'].removeprefix('bundled:')} "
                f"{r['eval_split']} | {micro:.3f} | {macro:.3f} | {seconds:.1f} |"
            )
    return "\n".join(lines)


def main() -> int:
    import datasets
    import transformers

    transformers.logging.set_verbosity_error()
    datasets.logging.set_verbosity_error()
    datasets.disable_progress_bars()
    logging.getLogger("hf_transfer").setLevel(logging.WARNING)
    if OUT.exists():  # every row is measured in this run: no generated shards, features or models of an earlier one
        print(f"[demo] removing {OUT} (an earlier demo run)", flush=True)
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    start = time.perf_counter()
    results, multi_label, ner = [], [], []
    generate_seconds = teacher_seconds = 0.0
    section_seconds: dict[str, float] = {}
    for strategy, name, shown, flags in STEPS:
        print(f"[demo] {' '.join([f'hf-transfer {strategy} --config recipes/{name}.yaml', *flags])} ...", flush=True)
        step_start = time.perf_counter()
        r = run_recipe(strategy, name, flags)
        section = SECTIONS.get(name.split("/")[0], "single-label")
        section_seconds[section] = section_seconds.get(section, 0.0) + time.perf_counter() - step_start
        if strategy == "generate":
            removed = ", ".join(f"{k} {v}" for k, v in r["stats"]["removed"].items())
            print(f"[demo]   kept {r['n_rows']} of {r['stats']['generated']} rows (removed: {removed}); "
                  f"{r['tokens_per_second'] or 0:.0f} new tokens/s; {r['wall_seconds']:.1f}s", flush=True)  # fmt: skip
            generate_seconds = r["wall_seconds"]
            continue
        if shown == "ner" or (strategy == "finetune" and name.startswith("ner/")):
            scores = f"entity micro-F1 {r['f1_micro']:.3f}, macro-F1 {r['f1_macro']:.3f}"
            print(f"[demo]   {scores} in {r['wall_seconds']:.1f}s", flush=True)
            if shown:
                ner.append(r)
            continue
        if shown == "multi_label":
            print(f"[demo]   micro-F1 {r['f1_micro']:.3f}, macro-F1 {r['f1_macro']:.3f} in {r['wall_seconds']:.1f}s")
            multi_label.append(r)
            continue
        print(f"[demo]   accuracy {r['accuracy']:.3f} in {r['wall_seconds']:.1f}s", flush=True)
        if r.get("extra_train"):  # a synthetic-data row costs the generation too
            r = {**r, "wall_seconds": r["wall_seconds"] + generate_seconds}
            teacher_seconds = r["wall_seconds"]
        if name == SELF_TRAIN:  # ... and self-training costs its teacher
            r = {**r, "wall_seconds": r["wall_seconds"] + teacher_seconds}
        if shown:
            results.append(r)
    (OUT / "results.json").write_text(json.dumps(results + multi_label + ner, indent=2))
    print()
    print("Encoder: embedded all-MiniLM-L6-v2; 2-core CPU; one seed (benchmarks/ has 3-seed means)")
    print(table(results))
    print("\nMulti-label (a comment can carry several of the 28 emotions):")
    print(multi_label_table(multi_label))
    print("\nToken classification (NER, CrossNER politics: 9 entity types):")
    print(ner_table(ner))
    sections = ", ".join(f"{name} {seconds:.0f}s" for name, seconds in section_seconds.items())
    print(f"\nTotal {time.perf_counter() - start:.0f}s ({sections}); per-run folders (model, model card, results.json)"
          f" in {OUT}")  # fmt: skip
    from hf_transfer.report import write_report

    report = write_report(OUT, title="make demo: strategies on the embedded MiniLM")
    print(f"\nReport: {report.markdown_path} (plot: {report.png_path})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
