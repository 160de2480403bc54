"""Generation engines side by side on the same SST-2 recipe prompts, seed and model (SmolLM2-135M-Instruct): the
builtin continuous batching, transformers' paged-cache continuous batching (``engine: transformers``),
``model.generate`` in batches of 64 and the batch-1 ``model.generate`` loop; plus where the builtin engine's time
goes (prefill, decode steps, sampling, retiring rows), the profile issue 19 asks for before any speed work.

Run by hand, alone (two torch processes on 2 cores slow each other ~7x): ``python benchmarks/generation_engines.py
[--bf16 auto|true|false] [--engines builtin transformers ...]``; writes one entry per CPU x precision x prompt count
into ``benchmarks/results/generation_engines.json`` (others are kept). ``new tokens`` are the tokens each row keeps
(what the builtin engine stops at; the transformers engine runs rows to eos or ``max_new_tokens`` and cuts them
after), so tokens/s is useful output per second for every engine.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from contextlib import contextmanager

from common import ROOT, cpu, quiet

RESULTS = ROOT / "benchmarks" / "results" / "generation_engines.json"
# name -> (runs on the first --batch_1_prompts prompts only, generate_rows arguments)
ENGINES = {
    "builtin": (False, {"engine": "builtin"}),
    "transformers": (False, {"engine": "transformers"}),
    "generate_batch_64": (False, {"batch_size": 64, "continuous_batching": False}),
    "generate_batch_1": (True, {"batch_size": 1, "continuous_batching": False}),
    # vLLM's offline LLM.generate (its own copy of the weights; needs vLLM: the CPU build runs in .venv-vllm)
    "vllm": (False, {"engine": "vllm"}),
}


def recipe_prompts(n: int):
    import yaml

    from hf_transfer.generate import GenerateConfig, load_templates
    from hf_transfer.generate.prompts import build_prompts

    recipe = yaml.safe_load((ROOT / "recipes" / "sst2" / "generate.yaml").read_text())
    config = GenerateConfig(**{k: v for k, v in recipe.items() if k in GenerateConfig.__dataclass_fields__})
    labels = config.target_labels or sorted(config.label_descriptions)
    prompts = build_prompts(labels, n // len(labels), load_templates(config.templates), seed=0,
                            descriptions=config.label_descriptions)  # fmt: skip
    sampling = dict(max_new_tokens=config.max_new_tokens, temperature=config.temperature, top_p=config.top_p,
                    top_k=config.top_k, stop_at_newline=config.stop_at_newline)  # fmt: skip
    return config, [p.text for p in prompts], sampling


@contextmanager
def builtin_profile(times: dict):
    """Wall seconds inside the builtin engine's prefill (``_Batch.add``), decode steps, sampling and row retiring."""
    from hf_transfer.generate import continuous

    patched = {"prefill": (continuous._Batch, "add"), "decode_steps": (continuous._Batch, "step"),
               "sampling": (continuous, "sample_next"), "retire_rows": (continuous._Batch, "keep")}  # fmt: skip
    originals = {name: getattr(owner, attr) for name, (owner, attr) in patched.items()}

    def timed(name, fn):
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                times[name] = times.get(name, 0.0) + time.perf_counter() - start

        return wrapper

    for name, (owner, attr) in patched.items():
        setattr(owner, attr, timed(name, originals[name]))
    try:
        yield
    finally:
        for name, (owner, attr) in patched.items():
            setattr(owner, attr, originals[name])


def measure(model, tokenizer, prompts, **kwargs) -> dict:
    from hf_transfer.generate import generate_rows

    start = time.perf_counter()
    out = generate_rows(model, tokenizer, prompts, seed=0, **kwargs)
    wall = time.perf_counter() - start
    tokens = sum(out.new_tokens)
    return {"prompts": len(prompts), "new_tokens": tokens, "seconds": round(wall, 2),
            "tokens_per_second": round(tokens / wall, 1),
            "rows_ending_in_a_newline": sum(t.endswith("\n") for t in out.texts)}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=256)  # issue 19: 256 SST-2 recipe prompts
    parser.add_argument("--batch_1_prompts", type=int, default=16)
    help_bf16 = "bf16 weights for every engine; auto: the recipe's rule (hf_transfer/precision.py)"
    parser.add_argument("--bf16", choices=["auto", "true", "false"], default="auto", help=help_bf16)
    engines_help = "default: all but vllm (an optional extra; its CPU build lives in .venv-vllm)"
    parser.add_argument("--engines", nargs="+", default=[e for e in ENGINES if e != "vllm"], choices=list(ENGINES),
                        help=engines_help)  # fmt: skip
    args = parser.parse_args(argv)
    quiet()
    import torch

    from hf_transfer.generate import generate_rows, load_generator

    config, prompts, sampling = recipe_prompts(args.prompts)
    bf16 = config.use_bf16 if args.bf16 == "auto" else args.bf16 == "true"
    model, tokenizer = load_generator(config.generator, bf16=bf16)  # bf16 weights under bf16, as generate_dataset
    generate_rows(model, tokenizer, prompts[:4], seed=0, batch_size=4, bf16=bf16, **sampling)  # warm-up
    slots = min(config.batch_size, len(prompts))
    result = {"cpu": cpu(), "torch_threads": torch.get_num_threads(), "generator": config.generator,
              "bf16": bf16, "weights": str(model.dtype), "prompts": len(prompts), "sampling": sampling,
              "batch_size": slots}  # fmt: skip
    times: dict = {}
    for engine in args.engines:
        few, kwargs = ENGINES[engine]
        runner = model
        if engine == "vllm":  # vLLM loads the weights itself: start-up timed apart, one warm-up call as above
            start = time.perf_counter()
            runner, _ = load_generator(config.generator, bf16=bf16, tokenizer=tokenizer, engine="vllm",
                                       batch_size=slots, seed=0)  # fmt: skip
            load_seconds = round(time.perf_counter() - start, 1)
            generate_rows(runner, tokenizer, prompts[:4], seed=0, batch_size=slots, engine="vllm", **sampling)
        with builtin_profile(times) if engine == "builtin" else contextlib.nullcontext():
            result[engine] = measure(runner, tokenizer, prompts[: args.batch_1_prompts] if few else prompts,
                                     batch_size=kwargs.get("batch_size", slots), bf16=bf16,
                                     **{k: v for k, v in kwargs.items() if k != "batch_size"}, **sampling)  # fmt: skip
        if engine == "vllm":
            import vllm

            result[engine].update(load_seconds=load_seconds, version=vllm.__version__)
        if engine == "builtin":
            result[engine]["profile_seconds"] = {k: round(v, 2) for k, v in times.items()}
            # the same call again: a long job's later shards find the cache memory mapped and oneDNN's kernels built
            result["builtin_second_call"] = measure(model, tokenizer, prompts, batch_size=slots, bf16=bf16,
                                                    engine="builtin", **sampling)  # fmt: skip
            print("builtin_second_call", json.dumps(result["builtin_second_call"]), flush=True)
        print(engine, json.dumps(result[engine]), flush=True)
    previous = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {"runs": []}
    runs = previous.get("runs", [previous])  # the first file held one run
    same = (result["cpu"], result["bf16"], result["prompts"])
    runs = [r for r in runs if (r["cpu"], r["bf16"], r["prompts"]) != same] + [result]
    RESULTS.write_text(json.dumps({"runs": runs}, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
