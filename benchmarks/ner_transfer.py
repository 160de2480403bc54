"""NER transfer from CoNLL-2003 (person, organisation, location, misc) to CrossNER politics (9 types), side by side
on the same sentences and backbone (MiniLM), scored on the whole politics test split (651 sentences) by entity
micro-F1 (seqeval semantics, ``hf_transfer.token_classification.entity_scores``):

* (a) the stock ``Trainer`` + ``AutoModelForTokenClassification`` from the encoder on politics train (all 200),
  with the defaults of transformers' ``run_ner.py`` example (lr 5e-5, 3 epochs, batch 8, first sub-token),
  scored as predicted (argmax tags) and, beside it, read with our ``continue_runs`` rule;
* (b) ours, the same data: ``hf-transfer finetune --config recipes/ner/politics-full-all.yaml``;
* (c) ours from the CoNLL source tagger (``recipes/ner/conll-source.yaml``, trained once, seed 0, on the bundled
  2,000-sentence CoNLL slice): its head mapped onto the politics tags through the type map
  (``hf_transfer.labelmap.transfer_head`` + ``tag_label_map``), then fine-tuned on politics train like (b);
* (d) zero-shot through the map: the CoNLL tagger's tags mapped, no politics label read;
* (e) ours, 8 sentences per type (``recipes/ner/politics-full-8shot.yaml``), and beside it the same plus the
  sentences that ``recipes/ner/politics-generate.yaml`` writes (SmolLM2-135M, entity markup, the same 8-per-type
  sample as examples, default filters) through ``recipes/ner/politics-full-8shot-synthetic.yaml``;
* (f) pseudo-label + distil: ``recipes/ner/labelmap-zeroshot.yaml`` with the politics *dev* sentences as the
  unlabelled pool (their tags are never read for training);
* the CoNLL source's own test F1 (bundled 1,000-sentence test slice) next to the stock Trainer's on the same
  2,000 train sentences.

Seeds 0-2 for everything trained on politics; no setting is chosen on test (the map is the issue's own, the
recipes' settings are fixed in advance).

    python benchmarks/ner_transfer.py [--skip NAME ...]     # JSON in benchmarks/results/ner_transfer.json

Finished runs are kept in the JSON and not run again, so a killed benchmark resumes.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, mean_std, quiet, run

from hf_transfer.token_classification import load_token_target, tag_scores, tokenize_tokens, word_predictions

RESULTS = ROOT / "benchmarks" / "results" / "ner_transfer.json"
OUT = ROOT / "outputs" / "bench-ner"
SOURCE = OUT / "conll-source"
SEEDS = (0, 1, 2)
TYPE_MAP = {
    "person": ["person", "politician"],
    "location": ["location", "country"],
    "organisation": ["organisation", "politicalparty"],
    "misc": ["misc", "event", "election"],
}


def cpu() -> str:
    return next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
                "?")  # fmt: skip


def stock_trainer(train, test, seed: int) -> dict:
    """transformers' run_ner.py recipe: AutoModelForTokenClassification, first sub-token labelled, lr 5e-5,
    3 epochs, batch 8, everything else the library's default."""
    from transformers import (
        AutoModelForTokenClassification,
        DataCollatorForTokenClassification,
        Trainer,
        TrainingArguments,
    )

    from hf_transfer.defaults import resolve_model
    from hf_transfer.token_classification import word_tokenizer

    start = time.perf_counter()
    names = train.features["ner_tags"].feature.names
    path = resolve_model("minilm")
    tokenizer = word_tokenizer(path)
    model = AutoModelForTokenClassification.from_pretrained(
        path, num_labels=len(names), id2label=dict(enumerate(names)), label2id={n: i for i, n in enumerate(names)}
    )
    with tempfile.TemporaryDirectory() as folder:
        args = TrainingArguments(output_dir=folder, learning_rate=5e-5, num_train_epochs=3,
                                 per_device_train_batch_size=8, seed=seed, save_strategy="no", report_to="none",
                                 disable_tqdm=True, logging_strategy="no", use_cpu=True)  # fmt: skip
        rows = tokenize_tokens(train, tokenizer, 128).remove_columns("ner_tags")
        trainer = Trainer(model=model, args=args, train_dataset=rows,
                          data_collator=DataCollatorForTokenClassification(tokenizer))  # fmt: skip
        trainer.train()
        output = trainer.predict(tokenize_tokens(test, tokenizer, 128).remove_columns("ner_tags"))
    truth, lengths = test["ner_tags"], [len(t) for t in test["ner_tags"]]
    predicted = word_predictions(output.predictions, output.label_ids, lengths, runs=False)  # as a user reads it
    with_runs = word_predictions(output.predictions, output.label_ids, lengths)  # read as ours are
    return {**_scores(tag_scores(predicted, truth, names)), "wall_seconds": time.perf_counter() - start,
            "read_with_continue_runs": _scores(tag_scores(with_runs, truth, names))}  # fmt: skip


def _scores(scores: dict) -> dict:
    return {k: scores[k] for k in ("f1_micro", "f1_macro", "precision", "recall")}


def source_tagger() -> dict:
    return run("finetune", "ner/conll-source", SOURCE, eval_split="test")


def mapped_source_finetuned(train, test, seed: int) -> dict:
    """(c): the CoNLL tagger, head mapped through TYPE_MAP, fine-tuned on politics train with our defaults."""
    from transformers import AutoModelForTokenClassification, set_seed

    from hf_transfer.finetune import FinetuneConfig
    from hf_transfer.labelmap import source_tags, tag_label_map, transfer_head
    from hf_transfer.run import fit
    from hf_transfer.token_classification import word_tokenizer

    source_tagger()  # trained once (a finished run is reused)
    start = time.perf_counter()
    tags = train.features["ner_tags"].feature.names
    source = AutoModelForTokenClassification.from_pretrained(SOURCE)
    tokenizer = word_tokenizer(str(SOURCE))
    label_map = tag_label_map(TYPE_MAP, source_tags(source.config), tags, method="explicit", allow_unreachable=False)
    set_seed(seed)
    student = transfer_head(source, label_map)
    with tempfile.TemporaryDirectory() as folder:
        config = FinetuneConfig(output_dir=folder, seed=seed, method="full", disable_tqdm=True, logging_strategy="no")
        fitted = fit(student, tokenizer, tokenize_tokens(train, tokenizer, 128).remove_columns("ner_tags"),
                     tokenize_tokens(test, tokenizer, 128, "first"), config.for_tagger(),
                     num_labels=len(tags))  # fmt: skip
        scores = fitted.scores(list(tags))
    return {**_scores(scores), "wall_seconds": time.perf_counter() - start}


def dev_pool() -> Path:
    """The politics dev sentences as an unlabelled pool (train) beside the test split, written once."""
    folder = OUT / "politics-dev-pool"
    if not (folder / "test.jsonl").is_file():
        data = load_token_target("bundled:crossner_politics")
        folder.mkdir(parents=True, exist_ok=True)
        names = data["train"].features["ner_tags"].feature.names
        for split, source in (("train", "validation"), ("test", "test")):
            with open(folder / f"{split}.jsonl", "w") as handle:
                for row in data[source]:
                    tags = [names[t] for t in row["ner_tags"]]
                    handle.write(json.dumps({"tokens": row["tokens"], "ner_tags": tags}) + "\n")
    return folder


def main(skip=()) -> None:
    quiet()
    results = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    results["cpu"] = cpu()
    results.setdefault("runs", {})

    def record(name: str, fn) -> dict:
        if name not in results["runs"] and not any(word in name for word in skip):
            print(f"--- {name}", flush=True)
            results["runs"][name] = fn()
            RESULTS.write_text(json.dumps(results, indent=2))
        return results["runs"].get(name)

    politics = load_token_target("bundled:crossner_politics")
    conll = load_token_target("bundled:conll2003")
    record("conll source (ours)", lambda: {**{k: source_tagger()[k] for k in ("f1_micro", "f1_macro", "precision",
                                                                              "recall", "wall_seconds")}})  # fmt: skip
    record("conll source (stock Trainer)", lambda: stock_trainer(conll["train"], conll["test"], 0))
    for seed in SEEDS:
        record(f"(a) stock Trainer, politics train/seed {seed}",
               lambda seed=seed: stock_trainer(politics["train"], politics["test"], seed))  # fmt: skip
        record(
            f"(b) ours full, politics train/seed {seed}", lambda seed=seed: _run("ner/politics-full-all", "b", seed)
        )
        record(f"(c) ours via CoNLL, politics train/seed {seed}",
               lambda seed=seed: mapped_source_finetuned(politics["train"], politics["test"], seed))  # fmt: skip
        record(f"(e) ours full, 8 per type/seed {seed}", lambda seed=seed: _run("ner/politics-full-8shot", "e", seed))
        record(f"(e) + synthetic (SmolLM2 markup)/seed {seed}", lambda seed=seed: _with_synthetic(seed))
        record(f"(f) pseudo-label + distil, dev pool/seed {seed}", lambda seed=seed: _labelmap(seed))
    record("(d) zero-shot through the map", lambda: _zero_shot())
    RESULTS.write_text(json.dumps(results, indent=2))
    summary(results)


def _run(recipe: str, tag: str, seed: int) -> dict:
    result = run("finetune", recipe, OUT / f"{tag}-seed{seed}", seed=seed, sample_seed=seed)
    return {**_scores(result), "wall_seconds": result["wall_seconds"]}


def _with_synthetic(seed: int) -> dict:
    """Generate on the seed's 8-per-type sample (its sentences as markup examples), then (e) plus those rows."""
    generated = run("generate", "ner/politics-generate", OUT / f"e-generate-seed{seed}", seed=seed, sample_seed=seed)
    dataset = OUT / f"e-generate-seed{seed}" / "dataset"
    result = run("finetune", "ner/politics-full-8shot-synthetic", OUT / f"e-synthetic-seed{seed}", seed=seed,
                 sample_seed=seed, extra_train=dataset)  # fmt: skip
    stats = generated["stats"]
    return {**_scores(result), "wall_seconds": result["wall_seconds"] + generated["wall_seconds"],
            "generate_wall_seconds": generated["wall_seconds"], "synthetic_rows": generated["n_rows"],
            "generated_rows": stats["generated"], "removed": stats["removed"],
            "kept_per_type": stats["kept_per_label"], "new_tokens_per_second": stats["tokens_per_second"]}  # fmt: skip


def _labelmap(seed: int) -> dict:
    source_tagger()
    result = run("labelmap", "ner/labelmap-zeroshot", OUT / f"f-seed{seed}", seed=seed, dataset=dev_pool(),
                 source_model=SOURCE)  # fmt: skip
    out = {**_scores(result), "wall_seconds": result["wall_seconds"]}
    out.update(zero_shot_f1_micro=result["zero_shot_f1_micro"], pseudo_labelled=result["rounds"][0]["pseudo_labelled"],
               pseudo_label_f1_micro=result["rounds"][0]["pseudo_label_f1_micro"])  # fmt: skip
    return out


def _zero_shot() -> dict:
    source_tagger()
    result = run("labelmap", "ner/labelmap-zeroshot", OUT / "d-zero-shot", source_model=SOURCE, eval_split="test")
    return {"f1_micro": result["zero_shot_f1_micro"], "f1_macro": result["zero_shot_f1_macro"],
            "student_f1_micro": result["f1_micro"], "wall_seconds": result["wall_seconds"]}  # fmt: skip


def summary(results: dict) -> None:
    runs = results["runs"]
    groups: dict[str, list[dict]] = {}
    for name, r in runs.items():
        groups.setdefault(name.split("/seed")[0], []).append(r)
    print(f"\nCPU: {results['cpu']}\n| method | entity micro-F1 | macro-F1 | wall s | seeds |\n|---|---|---|---|---|")
    for name, rs in groups.items():
        micro, macro = mean_std([100 * r["f1_micro"] for r in rs]), mean_std([100 * r["f1_macro"] for r in rs])
        wall = mean_std([r["wall_seconds"] for r in rs])[0]
        print(
            f"| {name} | {micro[0]:.1f} ± {micro[1]:.1f} | {macro[0]:.1f} ± {macro[1]:.1f} | {wall:.0f} | {len(rs)} |"
        )


if __name__ == "__main__":
    args = sys.argv[1:]
    main(skip=[args[i + 1] for i, a in enumerate(args) if a == "--skip"])
