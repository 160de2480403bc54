"""A saved hf_transfer model loads without hf_transfer: ``save_pretrained`` ships ``modeling.py`` next to the
weights and writes ``auto_map`` into ``config.json``, so ``trust_remote_code=True`` is all a user needs. With
hf_transfer imported, the plain call still resolves to the package's own (registered) class."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer
from transformers.dynamic_module_utils import get_imports, get_relative_imports

import hf_transfer
from hf_transfer.finetune import prepare
from hf_transfer.hub import save_model_folder

pytestmark = pytest.mark.usefixtures("single_thread")

LABELS = ["negative", "positive"]
TEXTS = ["good movie", "a very awful plot and a boring cast", "the film was fun"]
AUTO_MAP = {
    "AutoConfig": "modeling.TransferConfig",
    "AutoModelForSequenceClassification": "modeling.TransferForSequenceClassification",
}

# Runs in a fresh interpreter where hf_transfer cannot be imported, whatever is on sys.path.
WITHOUT_HF_TRANSFER = """
import sys
sys.modules["hf_transfer"] = None
try:
    import hf_transfer
except ImportError:
    pass
else:
    raise SystemExit("hf_transfer is importable")
import json
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

torch.set_num_threads(1)
texts, folders = json.loads(sys.argv[1]), json.loads(sys.argv[2])
results = {}
for name, folder in folders.items():
    model = AutoModelForSequenceClassification.from_pretrained(folder, trust_remote_code=True).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=True)  # else it asks (config.json)
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        logits = model(**batch).logits
    classify = pipeline("text-classification", model=folder, trust_remote_code=True)
    results[name] = {
        "class": type(model).__module__ + "." + type(model).__name__,
        "adapter": bool(getattr(model, "_hf_peft_config_loaded", False)),
        "logits": logits.tolist(),
        "labels": [p["label"] for p in classify(texts)],
    }
print("RESULTS=" + json.dumps(results))
"""


def logits_and_labels(model, tokenizer) -> tuple[torch.Tensor, list[str]]:
    """The model's logits on ``TEXTS`` and the label names it predicts, as a pipeline would report them."""
    batch = tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        logits = model.eval()(**batch).logits
    id2label = model.config.id2label
    return logits, [id2label[int(i)] for i in logits.argmax(-1)]


@pytest.fixture(scope="module")
def saved(tiny_encoder, tmp_path_factory) -> dict[str, tuple[Path, torch.Tensor, list[str]]]:
    """A merged (plain) model folder and a LoRA adapter folder (saved with its base), with their outputs."""
    root = tmp_path_factory.mktemp("remote_code")
    out = {}
    torch.manual_seed(0)
    model, tokenizer = prepare(tiny_encoder, LABELS, head_init="random")
    out["plain"] = (root / "plain", *logits_and_labels(model, tokenizer))
    save_model_folder(model, root / "plain")
    tokenizer.save_pretrained(root / "plain")

    peft_model, tokenizer = prepare(tiny_encoder, LABELS, method="lora", head_init="random")
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():  # LoRA starts as a no-op (B = 0): give it weight, so a lost adapter would show
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.5)
    out["lora"] = (root / "lora", *logits_and_labels(peft_model, tokenizer))
    assert save_model_folder(peft_model, root / "lora")
    tokenizer.save_pretrained(root / "lora")
    return out


@pytest.mark.parametrize("name", ["plain", "lora"])
def test_saved_folder_ships_its_code(saved, name):
    folder = saved[name][0]
    config_text = (folder / "config.json").read_text()
    assert json.loads(config_text)["auto_map"] == AUTO_MAP
    shipped = folder / "modeling.py"
    assert shipped.read_bytes() == Path(hf_transfer.modeling.__file__).read_bytes()
    # what transformers checks before running shipped code: torch, transformers and the standard library only
    # (so no hf_transfer), and no sibling files to copy
    assert set(get_imports(shipped)) - set(sys.stdlib_module_names) == {"torch", "transformers"}
    assert not get_relative_imports(shipped)
    assert str(folder) not in config_text and str(folder.resolve()) not in config_text  # no local path
    assert (folder / "adapter_config.json").exists() == (name == "lora")


def test_loads_without_hf_transfer_installed(saved, tmp_path):
    folders = {name: str(folder) for name, (folder, _, _) in saved.items()}
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "modules"), "OMP_NUM_THREADS": "1"}
    run = subprocess.run(
        [sys.executable, "-c", WITHOUT_HF_TRANSFER, json.dumps(TEXTS), json.dumps(folders)],
        capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    results = json.loads(run.stdout.split("RESULTS=", 1)[1])
    for name, (_, logits, labels) in saved.items():
        got = results[name]
        assert not got["class"].startswith("hf_transfer"), got["class"]  # the copy shipped in the folder
        assert got["class"].endswith(".modeling.TransferForSequenceClassification")
        assert got["adapter"] == (name == "lora")
        assert torch.allclose(torch.tensor(got["logits"]), logits, atol=1e-5), name
        assert got["labels"] == labels, name


@pytest.mark.parametrize("name", ["plain", "lora"])
@pytest.mark.parametrize("trust_remote_code", [None, True])
def test_with_hf_transfer_the_package_class_loads(saved, name, trust_remote_code):
    """The registered class wins over the folder's copy: no prompt, no error, no dynamic module."""
    folder, logits, _ = saved[name]
    assert "auto_map" in json.loads((folder / "config.json").read_text())  # so there is remote code to resolve
    kwargs = {} if trust_remote_code is None else {"trust_remote_code": trust_remote_code}
    model = AutoModelForSequenceClassification.from_pretrained(folder, **kwargs)
    assert type(model) is hf_transfer.modeling.TransferForSequenceClassification
    assert type(model.config) is hf_transfer.modeling.TransferConfig
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert torch.allclose(logits_and_labels(model, tokenizer)[0], logits, atol=1e-5)
