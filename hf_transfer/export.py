"""Export a saved hf_transfer classifier for serving without PyTorch or hf_transfer: ONNX (+ int8).

``export_onnx(run_folder, out)`` writes ``model.onnx`` (inputs ``input_ids``, ``attention_mask``; output
``logits``, batch and sequence dynamic), the tokenizer, and ``labels.json`` (id -> label, the problem type and,
for multi-label models, the per-label decision thresholds), so a server needs only ``onnxruntime`` and
``tokenizers``. ``quantize="int8"`` adds ``model.int8.onnx``: onnxruntime's dynamic quantisation (int8
weights of the matrix multiplications, activations quantised at run time), the usual CPU serving choice.

Why torch's own exporter and not ``optimum``: our classifier is a custom architecture (pooled encoder + linear
head, ``modeling.py``) that optimum's per-architecture export configs do not know; ``torch.onnx.export``
traces its forward as it is, in a few lines. Tracing records one path through Python branches, so the
forward keeps none that depend on the data (``modeling.continue_runs``), and the tests check the logits at
other batch sizes and lengths than the traced ones.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from .errors import ConfigError

EXPORT_FORMATS = ("onnx",)
QUANTIZATIONS = ("int8",)
EXTRA = "pip install 'hf-transfer-learning[export]' (onnx, onnxruntime)"
ONNX_FILE, INT8_FILE, LABELS_FILE = "model.onnx", "model.int8.onnx", "labels.json"
OPSET = 18


def check_export(folder: str | Path, fmt: str, quantize: str | None) -> dict:
    """The saved model's config, after the checks that need no weights: a known format and quantisation, a
    folder that an hf_transfer run saved (a ``TransferConfig``), not a PEFT adapter, and the extra installed."""
    if fmt not in EXPORT_FORMATS:
        raise ConfigError(f"format={fmt!r}: use {' or '.join(EXPORT_FORMATS)}.")
    if quantize is not None and quantize not in QUANTIZATIONS:
        raise ConfigError(f"quantize={quantize!r}: {fmt} supports {', '.join(QUANTIZATIONS)} (or none).")
    folder = Path(folder)
    config_file = folder / "config.json"
    if (folder / "adapter_config.json").is_file() and not config_file.is_file():
        raise ConfigError(
            f"{str(folder)!r} holds a PEFT adapter, not a model: train with merge_adapter=True (the default) "
            "or merge it (peft's merge_and_unload) and save the merged model first."
        )
    if not config_file.is_file():
        raise ConfigError(f"{str(folder)!r} is not a saved model folder (no config.json): pass a run's output_dir.")
    try:
        config = json.loads(config_file.read_text())
    except json.JSONDecodeError as err:
        raise ConfigError(f"{config_file}: not valid JSON ({err}).") from None
    if config.get("model_type") != "hf_transfer":
        raise ConfigError(
            f"{str(folder)!r} holds a {config.get('model_type')!r} model, not one hf_transfer saved "
            "(model_type 'hf_transfer'): export a finetune or labelmap run's output_dir."
        )
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError as err:
        raise ConfigError(f"Exporting to ONNX needs {err.name}: {EXTRA}.") from None
    return config


class _Logits(torch.nn.Module):
    """The classifier as ONNX sees it: token ids and mask in, logits out (no loss, no output dataclass)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask):
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits


def export_onnx(folder: str | Path, out: str | Path, *, quantize: str | None = None) -> dict[str, Path]:
    """Write the ONNX model (and its int8 twin), tokenizer and labels of the run saved in ``folder`` into
    ``out``; returns the files written by role."""
    config = check_export(folder, "onnx", quantize)
    from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification, AutoTokenizer

    from . import modeling  # noqa: F401  (registers the classifier with the Auto classes)

    tagger = "TransferForTokenClassification" in (config.get("architectures") or [])
    auto = AutoModelForTokenClassification if tagger else AutoModelForSequenceClassification
    model = auto.from_pretrained(folder, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sample = tokenizer(["an example to trace", "a second, longer example to trace the batch"], padding=True,
                       return_tensors="pt")  # fmt: skip
    axes = {0: "batch", 1: "sequence"}
    files = {"onnx": out / ONNX_FILE}
    with torch.inference_mode():
        torch.onnx.export(
            _Logits(model).eval(),  # eval: no dropout; a tagger continues its runs as at inference
            (sample["input_ids"], sample["attention_mask"]),
            str(files["onnx"]),
            input_names=["input_ids", "attention_mask"],
            output_names=["logits"],
            dynamic_axes={"input_ids": axes, "attention_mask": axes, "logits": axes},
            opset_version=OPSET,
            dynamo=False,  # the TorchScript exporter: 3.5 s vs 25 s for torch.export on the test model, same logits
        )
    if quantize == "int8":
        from onnxruntime.quantization import QuantType, quantize_dynamic

        files["int8"] = out / INT8_FILE
        quantize_dynamic(str(files["onnx"]), str(files["int8"]), weight_type=QuantType.QInt8)
    tokenizer.save_pretrained(out)
    files["labels"] = out / LABELS_FILE
    labels = {
        "id2label": {int(k): v for k, v in model.config.id2label.items()},
        "problem_type": "token_classification"
        if tagger
        else (model.config.problem_type or "single_label_classification"),
        "label_thresholds": getattr(model.config, "label_thresholds", None),
        "max_length": getattr(model.config, "max_length", None),
    }
    files["labels"].write_text(json.dumps(labels, indent=2))
    return files
