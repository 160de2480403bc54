"""Multi-label few-shot on GoEmotions (28 labels), side by side on the same samples and backbone (MiniLM).

Evaluated on the full test split (5,427 comments); the few-shot sample is ``sample_per_class(train, n, seed)``
(at least n rows per label, rarest first), the same rows for every method. For n beyond the rarest label's
train rows (64: train has 60 of ``grief``) the pool is train ∪ validation, written once as files; test is never
sampled and no setting is chosen on it:

* hf_transfer finetune (``--method head`` / ``lora`` / ``full``), thresholds cross-fitted on the sample; and zero-shot
  from the label names (n = 0: each label predicted on its top 1/28 of unlabelled train texts);
* one-vs-rest logistic regression on frozen MiniLM embeddings (scikit-learn, threshold 0.5), as is and with
  ``class_weight="balanced"`` (the usual fix when positives are rare);
* the stock ``Trainer`` + ``AutoModelForSequenceClassification(problem_type="multi_label_classification")``
  (full fine-tuning, the library's defaults but 10 epochs and lr 5e-5, threshold 0.5);
* SetFit 1.2 (``multi_target_strategy="one-vs-rest"``) in its own venv (``.venv-setfit``), on the same rows;
* zero-shot reference: cosine of text and label-name embeddings, one global threshold -- chosen on the
  *validation* labels (generous to it: our zero-shot uses no label at all).

    python benchmarks/multilabel_goemotions.py [n ...] [--skip NAME ...]   # default n: 8; JSON in benchmarks/results/
    python benchmarks/multilabel_goemotions.py 64 --skip SetFit --skip lora --skip "ours full" --skip stock

Finished runs are kept in the JSON and not run again, so a killed benchmark resumes; ``--skip SetFit`` leaves out
the methods whose name contains the word (e.g. to add seeds to the fast methods first).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import ROOT, mean_std, quiet, run

from hf_transfer.data import load_target, sample_per_class
from hf_transfer.defaults import resolve_model
from hf_transfer.metrics import multi_label_scores
from hf_transfer.multi_label import label_matrix

DATA = os.environ.get("GOEMOTIONS", str(ROOT.parent / "shared" / "data" / "goemotions"))
OUT = ROOT / "outputs" / "bench-goemotions"
RESULTS = ROOT / "benchmarks" / "results" / "multilabel_goemotions.json"
SETFIT_PY = ROOT / ".venv-setfit" / "bin" / "python"
SEEDS = (0, 1, 2)


def cpu() -> str:
    return next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
                "?")  # fmt: skip


def embed(texts, batch_size=128):
    from hf_transfer.classifier import prepare
    from hf_transfer.inference import embed_texts

    model, tokenizer = prepare("minilm", ["a", "b"], head_init="random")
    return embed_texts(model, tokenizer, list(texts), batch_size=batch_size).numpy()


def scores(predicted, test) -> dict:
    s = multi_label_scores(predicted, label_matrix(test))
    return {k: s[k] for k in ("f1_micro", "f1_macro", "f1_samples", "subset_accuracy")}


def logistic_regression(sample, test, test_emb, class_weight=None) -> dict:
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier

    start = time.perf_counter()
    clf = OneVsRestClassifier(LogisticRegression(max_iter=2000, class_weight=class_weight))
    clf.fit(embed(sample["text"]), label_matrix(sample))
    predicted = clf.predict_proba(test_emb) >= 0.5
    return {**scores(predicted, test), "wall_seconds": time.perf_counter() - start + EMBED_SECONDS["test"]}


def stock_trainer(sample, test, seed: int) -> dict:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, Trainer, TrainingArguments

    start = time.perf_counter()
    names = sample.features["label"].feature.names
    path = resolve_model("minilm")
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=len(names),
                                                               problem_type="multi_label_classification")  # fmt: skip

    def encode(ds):
        enc = tokenizer(list(ds["text"]), truncation=True, max_length=128)
        hot = label_matrix(ds).astype(np.float32)
        return [{**{k: v[i] for k, v in enc.items()}, "labels": hot[i]} for i in range(len(ds))]

    with tempfile.TemporaryDirectory() as folder:
        args = TrainingArguments(folder, num_train_epochs=10, learning_rate=5e-5, per_device_train_batch_size=16,
                                 save_strategy="no", report_to="none", seed=seed, disable_tqdm=True,
                                 use_cpu=True)  # fmt: skip
        from transformers import DataCollatorWithPadding

        trainer = Trainer(model=model, args=args, train_dataset=encode(sample),
                          data_collator=DataCollatorWithPadding(tokenizer))  # fmt: skip
        trainer.train()
        logits = trainer.predict(encode(test)).predictions
    predicted = torch.tensor(logits).sigmoid().numpy() >= 0.5
    return {**scores(predicted, test), "wall_seconds": time.perf_counter() - start}


def setfit(sample, test, seed: int) -> dict:
    if not SETFIT_PY.is_file():
        return {
            "skipped": f"no {SETFIT_PY} (python -m venv .venv-setfit && .venv-setfit/bin/pip install setfit==1.2.*)"
        }
    names = sample.features["label"].feature.names
    with tempfile.TemporaryDirectory() as folder:
        job = Path(folder) / "job.json"
        job.write_text(json.dumps({
            "model": str(resolve_model("minilm")), "seed": seed, "num_labels": len(names),
            "train": {"text": list(sample["text"]), "labels": label_matrix(sample).astype(int).tolist()},
            "test": list(test["text"]), "out": str(Path(folder) / "probs.npy"),
        }))  # fmt: skip
        start = time.perf_counter()
        done = subprocess.run([str(SETFIT_PY), str(ROOT / "benchmarks" / "setfit_multilabel_job.py"), str(job)],
                              capture_output=True, text=True, timeout=1800)  # fmt: skip
        seconds = time.perf_counter() - start
        if done.returncode != 0:
            return {"failed": done.stderr[-1500:]}
        probs = np.load(Path(folder) / "probs.npy")
    return {**scores(probs >= 0.5, test), "wall_seconds": seconds}


def cosine_zero_shot(test_emb, validation, names) -> dict:
    from hf_transfer.data import readable_label

    label_emb = embed([readable_label(n) for n in names])
    norm = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)  # noqa: E731
    val_sim = norm(embed(validation["text"])) @ norm(label_emb).T
    grid = np.round(np.arange(0.05, 0.8, 0.01), 2)
    truth = label_matrix(validation)
    best = max(grid, key=lambda t: multi_label_scores(val_sim >= t, truth)["f1_macro"])
    sim = norm(test_emb) @ norm(label_emb).T
    return {"threshold (chosen on validation labels)": float(best), "f1_macro_on_validation": float(
        multi_label_scores(val_sim >= best, truth)["f1_macro"])} | scores(sim >= best, TEST)  # fmt: skip


METHODS = ("ours head", "ours lora", "ours full", "logistic regression (frozen MiniLM)", "stock Trainer (full, 0.5)",
           "SetFit 1.2 one-vs-rest", "logistic regression, class_weight=balanced")  # fmt: skip


def one_run(name: str, n: int, seed: int, sample, test_emb, dataset: str) -> dict:
    if name.startswith("ours"):
        method = name.split()[1]
        union = {"validation_size": 0} if dataset != DATA else {}  # nothing carved from the pool
        return run("finetune", None, OUT / f"{method}-{n}-{seed}", dataset=dataset, eval_split="test", method=method,
                   n_per_class=n, sample_seed=seed, seed=seed, **union)  # fmt: skip
    if name.startswith("logistic"):
        return logistic_regression(sample, TEST, test_emb, "balanced" if "balanced" in name else None)
    if name.startswith("stock"):
        return stock_trainer(sample, TEST, seed)
    return setfit(sample, TEST, seed)


def union_pool(data):
    """Train and validation as one train split (test stays apart), for n per label beyond the rarest label's train
    rows; written as files so that every method samples the same rows from it."""
    from datasets import concatenate_datasets

    pool = concatenate_datasets([data["train"], data["validation"]])
    folder = OUT / "train+validation"
    if not (folder / "test.jsonl").is_file():
        folder.mkdir(parents=True, exist_ok=True)
        names = pool.features["label"].feature.names
        for split, ds in (("train", pool), ("test", data["test"])):
            with open(folder / f"{split}.jsonl", "w") as f:
                for text, ids in zip(ds["text"], ds["label"]):
                    f.write(json.dumps({"text": text, "labels": [names[i] for i in ids]}) + "\n")
    return load_target(str(folder), validation_size=0)["train"], str(folder)


EMBED_SECONDS: dict[str, float] = {}
TEST = None


def pm(values: list[float]) -> str:
    mean, std = mean_std(values)
    return f"{100 * mean:.1f} ± {100 * std:.1f}"


def main(shots=(8,), skip=()) -> None:
    global TEST
    quiet()
    data = load_target(DATA)
    train, TEST, validation = data["train"], data["test"], data["validation"]
    names = train.features["label"].feature.names
    start = time.perf_counter()
    test_emb = embed(TEST["text"])
    EMBED_SECONDS["test"] = time.perf_counter() - start
    results = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    results.update(cpu=cpu(), data=f"goemotions: train {len(train)}, test {len(TEST)}", labels=len(names))
    runs = results.setdefault("runs", {})

    def record(key, value):
        runs[key] = value
        print(key, json.dumps(value)[:300], flush=True)
        RESULTS.write_text(json.dumps(results, indent=2))

    if "cosine zero-shot" not in runs:
        record("cosine zero-shot", cosine_zero_shot(test_emb, validation, names))
    for seed in SEEDS:
        key = f"ours zero-shot seed={seed}"
        if key not in runs:
            r = run("finetune", None, OUT / f"zeroshot-{seed}", dataset=DATA, eval_split="test", method="head",
                    n_per_class=0, sample_seed=seed, seed=seed)  # fmt: skip
            record(key, {k: r[k] for k in ("f1_micro", "f1_macro", "f1_samples", "accuracy", "wall_seconds")})
    for n in shots:
        pool, dataset = train, DATA
        if n > int(label_matrix(train).sum(0).min()):  # 64: grief has 60 train rows; validation is never scored
            pool, dataset = union_pool(data)
        for seed in SEEDS:
            sample = sample_per_class(pool, n, seed=seed)
            for name in METHODS:
                key = f"{name} n={n} seed={seed}"
                if key in runs or any(word.lower() in name.lower() for word in skip):
                    continue
                r = one_run(name, n, seed, sample, test_emb, dataset)
                if name.startswith("ours"):
                    r = {k: r[k] for k in ("f1_micro", "f1_macro", "f1_samples", "accuracy", "wall_seconds",
                                           "n_train")}  # fmt: skip
                record(key, {**r, "n_rows": len(sample)})
    summary = {}
    for key, value in runs.items():
        if "f1_macro" not in value:
            continue
        group = key.rsplit(" seed=", 1)[0]
        summary.setdefault(group, []).append(value)
    results["summary"] = {
        group: {
            "f1_micro": pm([v["f1_micro"] for v in values]),
            "f1_macro": pm([v["f1_macro"] for v in values]),
            "wall_seconds": round(float(np.mean([v.get("wall_seconds", 0) for v in values])), 1),
            "seeds": len(values),
        }
        for group, values in summary.items()
    }
    RESULTS.write_text(json.dumps(results, indent=2))
    print(json.dumps(results["summary"], indent=2))


if __name__ == "__main__":
    args = sys.argv[1:]
    skip = [args[i + 1] for i, a in enumerate(args[:-1]) if a == "--skip"]
    main(tuple(int(a) for a in args if a.isdigit()) or (8,), skip)
