"""Serving speed and accuracy of an exported classifier: PyTorch fp32 / bf16 vs ONNX fp32 / int8 vs static.

    python benchmarks/export_speed.py [--model RUN_FOLDER]     # JSON: benchmarks/results/export_speed.json

The model: the ``recipes/sst2/full-8shot.yaml`` run (trained here unless ``--model`` names a saved run),
exported with ``hf-transfer export --quantize int8`` and ``--format static`` (twice: the classifier's own head,
and a head distilled on the train texts of the run's data set, labels unused). Every engine scores the same
872 SST-2 validation sentences in the same order and batches (tokenisation included in the time, padding per
batch), one process, all cores; texts/s at batch 1 (the first 200 sentences) and batch 64 (all 872),
accuracy over all 872. The CPU is written beside the figures; the JSON keeps one entry per CPU and model.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from common import ROOT, quiet, run
from few_shot_auto import cpu

RESULTS = ROOT / "benchmarks" / "results" / "export_speed.json"


def timed(predict, texts: list[str], batch: int) -> tuple[np.ndarray, float]:
    predict(texts[:batch])  # warm-up
    start = time.perf_counter()
    logits = np.concatenate([predict(texts[i : i + batch]) for i in range(0, len(texts), batch)])
    return logits, len(texts) / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="A saved run folder; default: train recipes/sst2/full-8shot.")
    args = parser.parse_args(argv)
    quiet()
    import onnxruntime as ort
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from hf_transfer.config import DataArguments
    from hf_transfer.data import load_data_args
    from hf_transfer.export import StaticClassifier, export_onnx, export_static, run_texts

    folder = Path(args.model) if args.model else ROOT / "outputs" / "bench-export" / "sst2-full-8shot"
    if not args.model:
        run("finetune", "sst2/full-8shot", folder)
    files = export_onnx(folder, folder / "onnx", quantize="int8")
    export_static(folder, folder / "static-own-head")
    own_head = StaticClassifier(folder / "static-own-head")
    start = time.perf_counter()
    distill_texts = run_texts(folder)  # the run's data set's train texts (bundled SST-2: 2,000), labels unused
    export_static(folder, folder / "static", texts=distill_texts)
    static_seconds = time.perf_counter() - start
    static = StaticClassifier(folder / "static")
    _, eval_ds, _ = load_data_args(DataArguments(dataset="bundled:sst2", eval_split="validation"), announce=False)
    texts, truth = list(eval_ds["text"]), np.asarray(eval_ds["label"])
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()

    def torch_engine(bf16: bool):
        def predict(batch):
            enc = tokenizer(batch, padding=True, truncation=True, max_length=128, return_tensors="pt")
            with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                return model(**enc).logits.float().numpy()

        return predict

    def onnx_engine(path):
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])

        def predict(batch):
            enc = tokenizer(batch, padding=True, truncation=True, max_length=128, return_tensors="np")
            feeds = {k: enc[k].astype(np.int64) for k in ("input_ids", "attention_mask")}
            return session.run(["logits"], feeds)[0]

        return predict

    engines = {"pytorch fp32": torch_engine(False), "pytorch bf16 autocast": torch_engine(True),
               "onnx fp32": onnx_engine(files["onnx"]), "onnx int8": onnx_engine(files["int8"]),
               "static, the classifier's head": own_head.logits,
               "static, head distilled on the train texts": static.logits}  # fmt: skip
    rows, reference = [], None
    for name, predict in engines.items():
        _, one = timed(predict, texts[:200], 1)
        logits, many = timed(predict, texts, 64)
        reference = logits if reference is None else reference
        rows.append({"engine": name, "texts_per_s_batch1": round(one, 1), "texts_per_s_batch64": round(many, 1),
                     "accuracy": round(float((logits.argmax(1) == truth).mean()), 4),
                     "max_abs_logit_diff_vs_fp32": round(float(np.abs(logits - reference).max()), 6)})  # fmt: skip
        print(json.dumps(rows[-1]), flush=True)
    result = {"benchmark": "export_speed", "cpu": cpu(), "model": str(folder.name), "n_texts": len(texts),
              "static_export_seconds": round(static_seconds, 1),
              "static_distill_texts": len(distill_texts or []),
              "static_head": json.loads((folder / "static" / "labels.json").read_text()).get("head_weight_decay"),
              "rows": rows}  # fmt: skip
    previous = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {"runs": []}
    runs = previous.get("runs", [previous])  # the first file held one run
    runs = [r for r in runs if (r["cpu"], r["model"]) != (result["cpu"], result["model"])] + [result]
    RESULTS.write_text(json.dumps({"runs": runs}, indent=1) + "\n")
    for r in rows:
        print(f"| {r['engine']} | {r['texts_per_s_batch1']:.0f} | {r['texts_per_s_batch64']:.0f} | "
              f"{100 * r['accuracy']:.1f} | {r['max_abs_logit_diff_vs_fp32']:.1e} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
