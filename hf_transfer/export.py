"""Export a saved hf_transfer classifier for serving without PyTorch or hf_transfer: ONNX (+ int8).

``export_onnx(run_folder, out)`` writes ``model.onnx`` (inputs ``input_ids``, ``attention_mask``; output
``logits``, batch and sequence dynamic), the tokenizer, and ``labels.json`` (id -> label, the problem type and,
for multi-label models, the per-label decision thresholds), so a server needs only ``onnxruntime`` and
``tokenizers``. ``quantize="int8"`` adds ``model.int8.onnx``: onnxruntime's dynamic quantisation (int8
weights of the matrix multiplications, one scale per output channel; activations quantised at run time), the
usual CPU serving choice.

Why torch's own exporter and not ``optimum``: our classifier is a custom architecture (pooled encoder + linear
head, ``modeling.py``) that optimum's per-architecture export configs do not know; ``torch.onnx.export``
traces its forward as it is, in a few lines. Tracing records one path through Python branches, so the
forward keeps none that depend on the data (``modeling.continue_runs``), and the tests check the logits at
other batch sizes and lengths than the traced ones.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
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
        # per-channel weight scales: on the 64-shot SST-2 classifier (2 AMX cores) 77.3% vs 76.6% per-tensor
        # (fp32: 77.5%), max |Δlogit| 0.59 vs 1.55, at the same speed
        quantize_dynamic(str(files["onnx"]), str(files["int8"]), weight_type=QuantType.QInt8, per_channel=True)
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


def export_static(
    folder: str | Path, out: str | Path, *, texts: Sequence[str] | None = None, batch_size: int = 512
) -> dict[str, Path]:
    """A static-embedding classifier from the run saved in ``folder``: one vector per vocabulary token (the
    fine-tuned encoder's pooled output for ``[CLS] token [SEP]``, model2vec's distillation), a text's vector the
    mean of its tokens' (L2-normalised where the classifier normalises), then a linear head. No attention at
    serving time: numpy and ``tokenizers`` only (:class:`StaticClassifier`).

    The head: with ``texts`` (unlabelled; labels are never read), one fitted to the classifier's own predictions
    on them (:func:`distil_head`); without, the classifier's head as it is. Why: the classifier's head reads
    contextual sentence vectors, not means of token vectors -- on SST-2 (64 per class, 2 AMX cores) it scored
    51.0% on static vectors, a head distilled on the 2,000 bundled train texts 72.7% (the classifier: 77.5%).

    Why not ``model2vec.distill``: its ``distill`` extra pins ``transformers<5.4`` (0.10.0), and this package
    needs transformers 5; the method is one batched forward pass per token, done here on the saved encoder."""
    config = check_export(folder, "static", None)
    if texts is not None and not len(texts):
        raise ConfigError("texts=[]: give the texts to fit the static head on, or None to keep the classifier's.")
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
    embeddings = torch.cat(vectors).numpy().astype(np.float32)
    np.save(files["embeddings"], embeddings)
    weight = model.classifier.weight.detach().float().numpy()
    bias = model.classifier.bias.detach().float().numpy()
    normalize = bool(model.config.normalize)
    head = {"head": "the classifier's"}
    if texts is not None:
        from .inference import run_batched

        texts = list(texts)
        teacher = run_batched(model, tokenizer, texts, lambda m, b: m(**b).logits, dim=len(bias))
        token_ids = tokenizer(texts, add_special_tokens=False)["input_ids"]  # as StaticClassifier: no truncation
        features = mean_token_vectors(embeddings, token_ids, normalize)
        multi_label = config.get("problem_type") == "multi_label_classification"
        weight, bias, head = distil_head(features, teacher, multi_label=multi_label)
    np.savez(files["head"], weight=weight, bias=bias, normalize=normalize)
    tokenizer.save_pretrained(out)
    files["labels"].write_text(json.dumps({
        "id2label": {int(k): v for k, v in model.config.id2label.items()}, "format": "static",
        "problem_type": config.get("problem_type") or "single_label_classification",
        "label_thresholds": getattr(model.config, "label_thresholds", None), **head}, indent=2))  # fmt: skip
    return files


WEIGHT_DECAYS = (1e-3, 1e-4, 1e-5, 1e-6)  # the L2 penalties distil_head chooses among


def distil_head(
    features: np.ndarray, teacher_logits: np.ndarray, *, multi_label: bool = False, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, dict]:
    """A linear head on ``features`` fitted to a teacher's soft predictions (softmax, or per-label sigmoids for a
    multi-label teacher) by L-BFGS: the L2 penalty is the one of :data:`WEIGHT_DECAYS` whose head agrees most with
    the teacher on a held-out fifth of the rows (seeded), then the head is refitted on all rows. ``(weight, bias,
    record)``; the record (penalty, agreement, rows) goes into ``labels.json``."""
    x = torch.as_tensor(features, dtype=torch.float32)
    logits = torch.as_tensor(teacher_logits, dtype=torch.float32)
    target = logits.sigmoid() if multi_label else logits.softmax(-1)

    def fit(rows: torch.Tensor, decay: float) -> torch.nn.Linear:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            head = torch.nn.Linear(x.shape[1], target.shape[1])
        optimizer = torch.optim.LBFGS(head.parameters(), max_iter=500, line_search_fn="strong_wolfe")

        def closure():
            optimizer.zero_grad()
            out = head(x[rows])
            if multi_label:
                loss = torch.nn.functional.binary_cross_entropy_with_logits(out, target[rows])
            else:
                loss = -(target[rows] * out.log_softmax(-1)).sum(-1).mean()
            loss = loss + decay * head.weight.pow(2).sum()
            loss.backward()
            return loss

        optimizer.step(closure)
        return head

    def agreement(head: torch.nn.Linear, rows: torch.Tensor) -> float:
        with torch.no_grad():
            out = head(x[rows])
        if multi_label:
            return float(((out > 0) == (logits[rows] > 0)).float().mean())
        return float((out.argmax(-1) == logits[rows].argmax(-1)).float().mean())

    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    held = max(1, len(x) // 5)
    scores = {}
    if len(x) >= 10:  # enough rows to hold some out
        for decay in WEIGHT_DECAYS:
            scores[decay] = agreement(fit(order[held:], decay), order[:held])
    decay = max(scores, key=scores.get) if scores else WEIGHT_DECAYS[0]
    head = fit(order, decay)
    record = {"head": "distilled", "head_weight_decay": decay, "head_rows": len(x),
              "head_held_out_agreement": round(scores[decay], 4) if scores else None,
              "head_train_agreement": round(agreement(head, order), 4)}  # fmt: skip
    return head.weight.detach().numpy(), head.bias.detach().numpy(), record


def read_texts(spec: str) -> list[str]:
    """The texts of a dataset spec's train split (a file, a folder, ``bundled:NAME``, a Hub id; labels unused):
    its ``text`` column, else a column of a common text name, else its only string column."""
    from .data import BUNDLED_DIR, TEXT_COLUMN_NAMES, read_source

    source = str(BUNDLED_DIR / spec.removeprefix("bundled:")) if spec.startswith("bundled:") else spec
    data = read_source(source)
    train = data["train"] if "train" in data else next(iter(data.values()))
    strings = [c for c, f in train.features.items() if getattr(f, "dtype", None) in ("string", "large_string")]
    column = next((c for c in TEXT_COLUMN_NAMES if c in strings), strings[0] if len(strings) == 1 else None)
    if column is None:
        raise ConfigError(f"{spec!r}: no text column among {train.column_names}; name one 'text'.")
    return [t for t in train[column] if isinstance(t, str) and t.strip()]


def run_texts(folder: str | Path) -> list[str] | None:
    """The train texts of the data set a run's ``results.json`` names, or None where it names none."""
    results = Path(folder) / "results.json"
    if not results.is_file():
        return None
    dataset = json.loads(results.read_text()).get("dataset")
    if not isinstance(dataset, str):
        return None
    from .errors import DataError

    try:
        return read_texts(dataset)
    except DataError as err:
        raise ConfigError(
            f"The run's data set {dataset!r} (its results.json) cannot be read here ({err}): pass the texts to fit "
            "the static head on with --distill_texts FILE, or --distill_texts none to keep the classifier's head."
        ) from None


def mean_token_vectors(embeddings: np.ndarray, token_ids: Sequence[Sequence[int]], normalize: bool) -> np.ndarray:
    """A static model's text vectors: the mean of each text's token vectors (token 0's for an empty text),
    L2-normalised where the classifier normalises; what export fits the head on and serving computes."""
    vectors = np.stack([embeddings[list(ids) or [0]].mean(0) for ids in token_ids])
    if normalize:
        vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    return vectors


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
        token_ids = [e.ids for e in self.tokenizer.encode_batch(list(texts), add_special_tokens=False)]
        return mean_token_vectors(self.embeddings, token_ids, self.normalize)

    def logits(self, texts: list[str]) -> np.ndarray:
        return self.embed(texts) @ self.weight.T + self.bias

    def predict(self, texts: list[str]) -> list[str]:
        return [self.id2label[i] for i in self.logits(texts).argmax(1)]
