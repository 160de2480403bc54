"""Fault benchmark: ``kill -9`` at five points of real runs, resume, compare with the uninterrupted run.

    python benchmarks/faults.py            # ~5 min on 2 cores; JSON in benchmarks/results/faults.json

Each scenario runs the same CLI command three times on the embedded defaults and bundled data: once
uninterrupted, once in a child process that SIGKILLs itself at the fault point (a hook installed only in
that child), and once more as the resume (the same command again, no hook). Reported per scenario: whether
the resumed run ends identical to the uninterrupted one (every weight bitwise equal, or every generated row
equal), rows lost and rows duplicated. Target: 5/5 identical, 0 lost, 0 duplicated.

Fault points: mid-epoch (finetune, step 6 of 16), mid-checkpoint-write (finetune, killed after
checkpoint-8's weights and optimizer are written, before its trainer_state.json), mid-save (finetune, killed
after the final model is staged, before the card and results.json), mid-generation-shard (generate, killed
with shard 3 of 4 half written), mid-pool-scoring (labelmap, killed halfway through the source model's
predictions over the pool).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT  # noqa: E402

OUT = ROOT / "outputs" / "faults"
RESULT = ROOT / "benchmarks" / "results" / "faults.json"

FINETUNE = ["--dataset", "bundled:sst2", "--n_per_class", "8", "--max_eval_samples", "200", "--method", "full",
            "--num_train_epochs", "4", "--per_device_train_batch_size", "4", "--min_train_steps", "0",
            "--save_strategy", "epoch", "--resume_from_checkpoint", "last", "--seed", "0", "--disable_tqdm", "true",
            "--head_init", "random"]  # fmt: skip
GENERATE = ["--dataset", "none", "--target_labels", "negative", "positive", "--n_per_label", "8",
            "--shard_size", "4", "--batch_size", "4", "--max_new_tokens", "24", "--consistency_threshold", "0",
            "--min_words", "1", "--seed", "0"]  # fmt: skip
LABELMAP = ["--dataset", "bundled:sentiment_sentences_amazon", "--validation_size", "0.5", "--eval_split",
            "validation", "--label_map", '{"negative": "negative", "positive": "positive"}', "--threshold", "0",
            "--top_k", "100",
            "--method", "full", "--num_train_epochs", "2", "--min_train_steps", "0", "--inference_batch_size", "16",
            "--max_eval_samples", "200", "--max_pool_samples", "400", "--save_strategy", "epoch",
            "--resume_from_checkpoint", "last", "--seed", "0", "--disable_tqdm", "true"]  # fmt: skip

SCENARIOS = {
    "mid-epoch": "finetune",
    "mid-checkpoint-write": "finetune",
    "mid-save": "finetune",
    "mid-generation-shard": "generate",
    "mid-pool-scoring": "labelmap",
}


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def install_hook(scenario: str) -> None:
    """In the child only: SIGKILL this process at the scenario's fault point."""
    if scenario == "mid-epoch":
        from transformers import TrainerCallback

        import hf_transfer.run as run

        class KillAtStep(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                if state.global_step == 6:
                    die()

        base = run.TransferTrainer  # the one trainer of every run

        class Hooked(base):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, **kwargs)
                self.add_callback(KillAtStep())

        run.TransferTrainer = Hooked
    elif scenario == "mid-checkpoint-write":
        from transformers.trainer_callback import TrainerState

        real = TrainerState.save_to_json

        def save_to_json(self, json_path):
            if self.global_step == 8 and "checkpoint-8" in str(json_path):
                die()  # weights, optimizer, scheduler and RNG state are on disk; the state file is not
            return real(self, json_path)

        TrainerState.save_to_json = save_to_json
    elif scenario == "mid-save":
        import hf_transfer.model_card as model_card

        def write_model_card(*args, **kwargs):
            die()  # the model and tokenizer are staged; card and results.json not yet written

        model_card.write_model_card = write_model_card
    elif scenario == "mid-generation-shard":
        import hf_transfer.generate.shards as shards

        real = shards.atomic_write

        def atomic_write(path, text):
            if path.name.startswith("shard-") and "00002" in path.name:
                tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
                tmp.write_text(text[: len(text) // 2])  # half of shard 3 on disk, then the kill
                die()
            return real(path, text)

        shards.atomic_write = atomic_write
    elif scenario == "mid-pool-scoring":
        import hf_transfer.labelmap.predict as predict

        real = predict.predict_proba
        calls = []

        def predict_proba(model, tokenizer, texts, **kwargs):
            calls.append(len(texts))
            if len(calls) == 2:  # the eval split is scored first, then the pool
                real(model, tokenizer, texts[: len(texts) // 2], **kwargs)
                die()
            return real(model, tokenizer, texts, **kwargs)

        predict.predict_proba = predict_proba


def command(scenario: str, out: Path, source: Path | None) -> tuple[str, list[str]]:
    strategy = SCENARIOS[scenario]
    argv = {"finetune": FINETUNE, "generate": GENERATE, "labelmap": LABELMAP}[strategy] + ["--output_dir", str(out)]
    if strategy == "labelmap":
        argv += ["--source_model", str(source)]
    return strategy, argv


def child(args) -> None:
    """One run in this process, with the fault hook when asked."""
    import datasets

    datasets.disable_caching()  # every run computes what it claims to: no map() result from an earlier run's cache
    if args.hook:
        install_hook(args.scenario)
    from hf_transfer.cli.train import main

    strategy, argv = command(args.scenario, Path(args.out), Path(args.source) if args.source else None)
    main(strategy, argv)


def run_child(scenario: str, out: Path, source: Path | None, hook: bool) -> tuple[int, float, str]:
    cmd = [sys.executable, __file__, "--child", "--scenario", scenario, "--out", str(out)]
    cmd += ["--source", str(source)] if source else []
    cmd += ["--hook"] if hook else []
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    if proc.returncode not in (0, -signal.SIGKILL):
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"{scenario}: child failed with {proc.returncode}")
    return proc.returncode, time.perf_counter() - start, proc.stderr


def compare_weights(a: Path, b: Path) -> dict:
    from safetensors.torch import load_file

    wa, wb = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    diffs = [float((wa[k].float() - wb[k].float()).abs().max()) for k in wa] if wa.keys() == wb.keys() else [1e9]
    return {"identical": max(diffs) == 0.0, "max_abs_weight_diff": max(diffs), "rows_lost": 0, "rows_duplicated": 0}


def compare_rows(a: Path, b: Path) -> dict:
    from datasets import load_from_disk

    def rows(folder: Path) -> list[tuple]:
        ds = load_from_disk(str(folder / "dataset"))
        return list(zip(ds["row_index"], ds["text"], ds["label"]))

    whole, resumed = rows(a), rows(b)
    raw = [json.loads(line)["index"] for f in sorted((b / "shards").glob("shard-*.jsonl"))
           for line in f.read_text().splitlines() if line.strip()]  # fmt: skip
    return {
        "identical": whole == resumed,
        "rows": len(whole),
        "rows_lost": len(set(whole) - set(resumed)),
        "rows_duplicated": len(resumed) - len(set(resumed)) + len(raw) - len(set(raw)),
        "stale_tmp_files": len(list((b / "shards").glob("*.tmp*"))),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--hook", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--scenario", choices=sorted(SCENARIOS), help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--source", help=argparse.SUPPRESS)
    parser.add_argument("--only", nargs="*", choices=sorted(SCENARIOS), help="Run only these scenarios.")
    args = parser.parse_args()
    if args.child:
        return child(args)
    targets = args.only or list(SCENARIOS)
    strategies = {SCENARIOS[s] for s in targets}
    if not args.only:
        shutil.rmtree(OUT, ignore_errors=True)
    for name in targets + [f"{s}-whole" for s in strategies]:  # labelmap alone reuses finetune's source
        shutil.rmtree(OUT / name, ignore_errors=True)
    previous = json.loads(RESULT.read_text())["scenarios"] if args.only and RESULT.is_file() else []
    report = [r for r in previous if r["scenario"] not in targets]
    source = OUT / "finetune-whole"  # the uninterrupted finetune run doubles as labelmap's source model
    for scenario in targets:
        strategy = SCENARIOS[scenario]
        whole = OUT / f"{strategy}-whole"
        if not (whole / "results.json").is_file():
            if strategy == "labelmap" and not (source / "results.json").is_file():
                run_child("mid-epoch", source, None, hook=False)
            run_child(scenario, whole, source, hook=False)
        out = OUT / scenario
        code, killed_s, _ = run_child(scenario, out, source, hook=True)
        killed = code == -signal.SIGKILL
        _, resume_s, log = run_child(scenario, out, source, hook=False)
        compared = compare_rows(whole, out) if strategy == "generate" else compare_weights(whole, out)
        if strategy != "generate":
            same = json.loads((whole / "results.json").read_text())
            again = json.loads((out / "results.json").read_text())
            keys = ("accuracy", "train_steps", "rounds")
            compared["same_results"] = all(same.get(k) == again.get(k) for k in keys)
        entry = {"scenario": scenario, "strategy": strategy, "killed_by_sigkill": killed,
                 "killed_run_seconds": round(killed_s, 1), "resume_seconds": round(resume_s, 1),
                 "resume_skipped_incomplete_checkpoint": "Skipping incomplete checkpoint" in log,
                 "resume_reused_shards": "reused" in log and "shards" in log, **compared}  # fmt: skip
        report.append(entry)
        print(json.dumps(entry), flush=True)
    report.sort(key=lambda r: list(SCENARIOS).index(r["scenario"]))
    passed = sum(r["identical"] and r["killed_by_sigkill"] and not r["rows_lost"] and not r["rows_duplicated"]
                 for r in report)  # fmt: skip
    summary = {
        "cpu": platform.processor() or platform.machine(),
        "cpu_model": _cpu_model(),
        "identical": f"{passed}/{len(report)}",
        "scenarios": report,
    }
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"{passed}/{len(report)} identical after kill -9 + resume; {RESULT}")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


if __name__ == "__main__":
    main()
