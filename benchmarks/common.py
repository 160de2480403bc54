"""What the benchmark scripts share: run a recipe resumably, and summarise seeds."""

from __future__ import annotations

import json
import os
import platform
import statistics
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]


def run(strategy: str, recipe: str | None, out: Path, **overrides) -> dict:
    """Run a recipe exactly as ``hf-transfer <strategy> --config recipes/<recipe>.yaml`` would (no recipe: the
    CLI defaults), with flag overrides; a finished run (its results.json, same overrides) is reused, so a killed
    benchmark resumes."""
    done = out / "results.json"
    stamp = out / "bench-overrides.json"
    if done.is_file() and stamp.is_file() and json.loads(stamp.read_text()) == [recipe, _jsonable(overrides)]:
        return json.loads(done.read_text())
    from hf_transfer.cli.parsing import parse_with_config
    from hf_transfer.cli.train import make_parser
    from hf_transfer.registry import get_strategy

    argv = ["--config", str(ROOT / "recipes" / f"{recipe}.yaml")] if recipe else []
    argv += ["--output_dir", str(out)]
    if strategy != "generate":  # TrainingArguments flags
        argv += ["--disable_tqdm", "true", "--logging_strategy", "no", "--save_strategy", "no"]
        argv += ["--overwrite_output_dir", "true"]  # a re-run replaces the folder's previous run
    for key, value in overrides.items():
        argv += [f"--{key}", json.dumps(value) if isinstance(value, dict) else str(value)]
    data_args, config = parse_with_config(make_parser(strategy), argv)
    result = get_strategy(strategy).load()[1](config, data_args)
    out.mkdir(parents=True, exist_ok=True)
    stamp.write_text(json.dumps([recipe, _jsonable(overrides)]))
    return result


def _jsonable(overrides: dict) -> dict:
    return {k: str(v) if isinstance(v, Path) else v for k, v in overrides.items()}


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def quiet() -> None:
    import datasets
    import transformers

    transformers.logging.set_verbosity_error()
    datasets.disable_progress_bars()


def cpu() -> str:
    """The CPU every figure is measured on: model, cores, and the bf16 features precision.py decides by."""
    try:
        flags = open("/proc/cpuinfo").read()
        name = next(line.split(":", 1)[1].strip() for line in flags.splitlines() if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor()
    extra = [f for f in ("avx512f", "avx512_bf16", "amx_bf16") if f" {f}" in flags]
    return f"{name}, {os.cpu_count()} cores" + (f" ({', '.join(extra)})" if extra else " (AVX2, no AVX-512)")
