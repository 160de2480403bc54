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

import numpy as np
import torch

from .errors import ConfigError

EXPORT_FORMATS = ("onnx", "static")
QUANTIZATIONS = ("int8",)
EXTRA = "pip install 'hf-transfer-learning[export]' (onnx, onnxruntime)"
ONNX_FILE, INT8_FILE, LABELS_FILE = "model.onnx", "model.int8.onnx", "labels.json"
OPSET = 18


def check_export(folder: str | Path, fmt: str, quantize: str | None) -> dict:
    """The saved model's config, after the checks that need no weights: a known format and quantisation, a
    folder that an hf_transfer run saved (a ``TransferConfig``), not a PEFT adapter, and the extra installed."""
    if fmt not in EXPORT_FORMATS:
        raise ConfigError(f"format={fmt!r}: use {' or '.join(EXPORT_FORMATS)}.")
    if quantize is not None and (fmt != "onnx" or quantize not in QUANTIZATIONS):
        supports = f"supports {', '.join(QUANTIZATIONS)} (or none)" if fmt == "onnx" else "is not quantised"
        raise ConfigError(f"quantize={quantize!r}: {fmt} {supports}.")
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
    if fmt == "static" and "TransferForSequenceClassification" not in (config.get("architectures") or []):
        raise ConfigError("format='static' exports sentence classifiers; a tagger needs every token in context.")
    if fmt == "onnx":
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


STATIC_EMBEDDINGS, STATIC_HEAD = "embeddings.npy", "head.npz"


def export_static(folder: str | Path, out: str | Path, *, batch_size: int = 512) -> dict[str, Path]:
    """A static-embedding classifier from the run saved in ``folder``: one vector per vocabulary token (the
    fine-tuned encoder's pooled output for ``[CLS] token [SEP]``, model2vec's distillation), a text's vector the
    mean of its tokens' (L2-normalised where the classifier normalises), then the classifier's own head. No
    attention at serving time: numpy and ``tokenizers`` only (:class:`StaticClassifier`).

    Why not ``model2vec.distill``: its ``distill`` extra pins ``transformers<5.4`` (0.10.0), and this package
    needs transformers 5; the method is one batched forward pass per token, done here on the saved encoder."""
    config = check_export(folder, "static", None)
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from . import modeling  # noqa: F401  (registers the classifier with the Auto classes)

    tokenizer = AutoTokenizer.from_pretrained(folder)
    if tokenizer.cls_token_id is None or tokenizer.sep_token_id is None:
        raise ConfigError(f"{str(folder)!r}: static export needs a tokenizer with [CLS] and [SEP] (BERT-style).")
    model = AutoModelForSequenceClassification.from_pretrained(folder, dtype=torch.float32).eval()
    ids = torch.arange(len(tokenizer))
    vectors = []
    with torch.inference_mode():
        for start in range(0, len(ids), batch_size):
            chunk = ids[start : start + batch_size, None]
            cls = torch.full_like(chunk, tokenizer.cls_token_id)
            sep = torch.full_like(chunk, tokenizer.sep_token_id)
            batch = torch.cat([cls, chunk, sep], dim=1)
            vectors.append(model.embed(batch, torch.ones_like(batch)).float())
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = {"embeddings": out / STATIC_EMBEDDINGS, "head": out / STATIC_HEAD, "labels": out / LABELS_FILE}
    np.save(files["embeddings"], torch.cat(vectors).numpy().astype(np.float32))
    np.savez(files["head"], weight=model.classifier.weight.detach().float().numpy(),
             bias=model.classifier.bias.detach().float().numpy(), normalize=bool(model.config.normalize))  # fmt: skip
    tokenizer.save_pretrained(out)
    files["labels"].write_text(json.dumps({
        "id2label": {int(k): v for k, v in model.config.id2label.items()}, "format": "static",
        "problem_type": config.get("problem_type") or "single_label_classification",
        "label_thresholds": getattr(model.config, "label_thresholds", None)}, indent=2))  # fmt: skip
    return files


class StaticClassifier:
    """Serve a :func:`export_static` folder: token vectors averaged per text, then the head (numpy)."""

    def __init__(self, folder: str | Path):
        from tokenizers import Tokenizer

        folder = Path(folder)
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()
        self.embeddings = np.load(folder / STATIC_EMBEDDINGS)
        head = np.load(folder / STATIC_HEAD)
        self.weight, self.bias, self.normalize = head["weight"], head["bias"], bool(head["normalize"])
        self.id2label = {int(k): v for k, v in json.loads((folder / LABELS_FILE).read_text())["id2label"].items()}

    def embed(self, texts: list[str]) -> np.ndarray:
        rows = []
        for encoding in self.tokenizer.encode_batch(list(texts), add_special_tokens=False):
            ids = encoding.ids or [0]
            rows.append(self.embeddings[ids].mean(0))
        vectors = np.stack(rows)
        if self.normalize:
            vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        return vectors

    def logits(self, texts: list[str]) -> np.ndarray:
        return self.embed(texts) @ self.weight.T + self.bias

    def predict(self, texts: list[str]) -> list[str]:
        return [self.id2label[i] for i in self.logits(texts).argmax(1)]
