"""hf-transfer export: ONNX models that onnxruntime runs with the saved model's logits, and clear refusals."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort  # the export extra: part of `make setup`
import pytest
import torch
from conftest import LABELS
from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification, AutoTokenizer

from hf_transfer.classifier import prepare
from hf_transfer.cli import main
from hf_transfer.errors import ConfigError
from hf_transfer.export import StaticClassifier, check_export, export_onnx, export_static
from hf_transfer.token_classification import tag_names

TEXTS = ["a very good film", "the worst noun of all, and a long sentence after it", "x"]


def saved(folder, model_dir, labels, **kwargs):
    model, tokenizer = prepare(model_dir, labels, **kwargs)
    torch.manual_seed(0)
    with torch.no_grad():  # a head that is not the description init, so the test sees the weights travel
        model.classifier.weight.add_(torch.randn_like(model.classifier.weight))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def onnx_logits(path, tokenizer, texts) -> np.ndarray:
    enc = tokenizer(texts, padding=True, return_tensors="np")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {name: enc[name].astype(np.int64) for name in ("input_ids", "attention_mask")}
    return session.run(["logits"], feeds)[0]


@pytest.fixture(scope="module")
def sentence_export(tmp_path_factory, tiny_model_dir):
    root = tmp_path_factory.mktemp("export")
    folder = saved(root / "run", tiny_model_dir, LABELS)
    return folder, export_onnx(folder, root / "onnx", quantize="int8")


def test_onnx_logits_match_the_saved_model(sentence_export):
    folder, files = sentence_export
    tokenizer = AutoTokenizer.from_pretrained(files["onnx"].parent)  # the exported tokenizer
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    with torch.no_grad():
        expected = model(**tokenizer(TEXTS, padding=True, return_tensors="pt")).logits.numpy()
    got = onnx_logits(files["onnx"], tokenizer, TEXTS)
    assert got.shape == (3, len(LABELS)) and np.abs(got - expected).max() <= 1e-4
    assert onnx_logits(files["onnx"], tokenizer, TEXTS[:1]).shape == (1, len(LABELS))  # batch is dynamic
    int8 = onnx_logits(files["int8"], tokenizer, TEXTS)
    assert int8.shape == got.shape and files["int8"].stat().st_size < files["onnx"].stat().st_size
    labels = json.loads(files["labels"].read_text())
    assert labels["id2label"] == {str(i): name for i, name in enumerate(LABELS)}
    assert labels["problem_type"] == "single_label_classification"


def test_a_tagger_exports_with_its_word_level_logits(tmp_path, tiny_model_dir):
    tags = tag_names(["org", "person"])
    folder = saved(tmp_path / "run", tiny_model_dir, tags, task="token_classification")
    files = export_onnx(folder, tmp_path / "onnx")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForTokenClassification.from_pretrained(folder).eval()
    with torch.no_grad():
        expected = model(**tokenizer(TEXTS, padding=True, return_tensors="pt")).logits.numpy()
    got = onnx_logits(files["onnx"], tokenizer, TEXTS)
    assert got.shape == expected.shape and np.abs(got - expected).max() <= 1e-4
    assert json.loads(files["labels"].read_text())["problem_type"] == "token_classification"
    assert "int8" not in files


@pytest.mark.parametrize(
    "fmt, quantize, fragment",
    [
        ("tflite", None, "format='tflite': use onnx or static"),
        ("onnx", "int4", "quantize='int4': onnx supports int8"),
        ("static", "int8", "quantize='int8': static is not quantised"),
    ],
)
def test_unknown_format_or_quantisation_is_refused(sentence_export, fmt, quantize, fragment):
    with pytest.raises(ConfigError, match=fragment):
        check_export(sentence_export[0], fmt, quantize)


def test_folders_that_are_not_saved_hf_transfer_models_are_refused(tmp_path, tiny_model_dir):
    with pytest.raises(ConfigError, match="not a saved model folder"):
        check_export(tmp_path, "onnx", None)
    with pytest.raises(ConfigError, match="holds a 'bert' model, not one hf_transfer saved"):
        check_export(tiny_model_dir, "onnx", None)
    (tmp_path / "adapter_config.json").write_text("{}")
    with pytest.raises(ConfigError, match="holds a PEFT adapter"):
        check_export(tmp_path, "onnx", None)


def test_a_missing_extra_names_what_to_install(sentence_export, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_onnxruntime(name, *args, **kwargs):
        if name == "onnxruntime":
            raise ImportError("No module named 'onnxruntime'", name="onnxruntime")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_onnxruntime)
    with pytest.raises(ConfigError, match=r"needs onnxruntime: pip install 'hf-transfer-learning\[export\]'"):
        check_export(sentence_export[0], "onnx", None)


def test_cli_export_exits_2_with_the_reason(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["export", str(tmp_path), "--quantize", "int4"])
    assert info.value.code == 2
    assert "quantize='int4'" in capsys.readouterr().err


def test_static_export_is_the_encoder_per_token_and_the_same_head(sentence_export, tmp_path):
    folder, _ = sentence_export
    files = export_static(folder, tmp_path / "static")
    static = StaticClassifier(tmp_path / "static")
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert static.embeddings.shape == (len(tokenizer), model.config.hidden_size)
    # a one-token text is exactly the classifier on [CLS] token [SEP]
    words = [w for w in ("good", "bad", "film") if len(tokenizer.tokenize(w)) == 1]
    with torch.no_grad():
        expected = model(**tokenizer(words, return_tensors="pt", padding=True)).logits.numpy()
    assert words and np.abs(static.logits(words) - expected).max() <= 1e-4
    # a longer text: the (normalised) mean of its tokens' vectors through the head
    ids = tokenizer("a very good film", add_special_tokens=False)["input_ids"]
    mean = static.embeddings[ids].mean(0)
    mean /= np.linalg.norm(mean) if model.config.normalize else 1.0
    head = model.classifier
    manual = mean @ head.weight.detach().numpy().T + head.bias.detach().numpy()
    assert np.allclose(static.logits(["a very good film"])[0], manual, atol=1e-5)
    assert static.predict(["a very good film"])[0] in LABELS
    assert json.loads(files["labels"].read_text())["format"] == "static"


def test_static_export_refuses_a_tagger(tmp_path, tiny_model_dir):
    folder = saved(tmp_path / "run", tiny_model_dir, tag_names(["org"]), task="token_classification")
    with pytest.raises(ConfigError, match="static' exports sentence classifiers"):
        check_export(folder, "static", None)


def test_distil_head_fits_a_teacher_and_picks_its_penalty_on_held_out_rows():
    from hf_transfer.export import WEIGHT_DECAYS, distil_head

    rng = np.random.default_rng(0)
    features = rng.normal(size=(200, 8)).astype(np.float32)
    teacher = features @ rng.normal(size=(8, 3)) * 3.0  # a linear teacher: a linear head can agree everywhere
    weight, bias, record = distil_head(features, teacher)
    assert weight.shape == (3, 8) and bias.shape == (3,)
    assert ((features @ weight.T + bias).argmax(1) == teacher.argmax(1)).mean() >= 0.97
    assert record["head"] == "distilled" and record["head_weight_decay"] in WEIGHT_DECAYS
    assert record["head_rows"] == 200 and record["head_held_out_agreement"] >= 0.9
    _, _, multi = distil_head(features, teacher, multi_label=True)  # per-label sigmoids
    assert multi["head_train_agreement"] >= 0.95


def test_static_export_distils_a_head_on_unlabelled_texts(sentence_export, tmp_path):
    """With texts the head is refitted to the classifier's predictions on them: it agrees with the classifier
    on those texts at least as often as the classifier's own head does on static vectors."""
    folder, _ = sentence_export
    texts = [f"{a} {b} film {c}" for a in ("a", "the", "one") for b in ("good", "bad", "long", "very")
             for c in ("here", "of all", "x")]  # fmt: skip
    own = StaticClassifier(export_static(folder, tmp_path / "own")["head"].parent)
    files = export_static(folder, tmp_path / "distilled", texts=texts)
    distilled = StaticClassifier(tmp_path / "distilled")
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    with torch.no_grad():
        teacher = model(**tokenizer(texts, padding=True, return_tensors="pt")).logits.numpy().argmax(1)
    agree = {name: (s.logits(texts).argmax(1) == teacher).mean() for name, s in [("own", own), ("new", distilled)]}
    assert agree["new"] >= agree["own"] and agree["new"] >= 0.8
    labels = json.loads(files["labels"].read_text())
    assert labels["head"] == "distilled" and labels["head_rows"] == len(texts)
    assert json.loads((tmp_path / "own" / "labels.json").read_text())["head"] == "the classifier's"
    with pytest.raises(ConfigError, match="texts=\\[\\]"):
        export_static(folder, tmp_path / "none", texts=[])


def test_cli_static_export_reads_the_distillation_texts(sentence_export, tmp_path, capsys):
    folder, _ = sentence_export
    data = tmp_path / "pool.jsonl"
    data.write_text("".join(json.dumps({"sentence": f"a {w} film", "id": i}) + "\n"
                            for i, w in enumerate(["good", "bad", "long", "fine", "dull"] * 4)))  # fmt: skip
    out = tmp_path / "static"
    assert main(["export", str(folder), "--format", "static", "--distill_texts", str(data),
                 "--output_dir", str(out)]) == 0  # fmt: skip
    assert json.loads((out / "labels.json").read_text())["head_rows"] == 20  # the 'sentence' column, all rows
    assert main(["export", str(folder), "--format", "static", "--output_dir", str(tmp_path / "s2")]) == 0
    assert "results.json names no data set" in capsys.readouterr().out  # no run record: the classifier's head


def test_a_run_whose_data_set_is_gone_names_distill_texts(sentence_export, tmp_path, capsys):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(sentence_export[0], run)
    (run / "results.json").write_text(json.dumps({"dataset": str(tmp_path / "moved-away.jsonl")}))
    with pytest.raises(SystemExit) as info:
        main(["export", str(run), "--format", "static"])
    assert info.value.code == 2 and "--distill_texts FILE" in capsys.readouterr().err
