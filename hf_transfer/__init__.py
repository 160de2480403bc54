"""hf_transfer: transfer learning for few-label text classification and tagging on the Hugging Face stack.

Importing the package registers its classifier and tagger with the ``Auto`` classes, so a saved hf_transfer
model reloads with ``AutoModelForSequenceClassification`` (``AutoModelForTokenClassification``)
``.from_pretrained(folder)``. Everything else is imported
on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

_LAZY = {
    "load_target": "data",
    "load_bundled": "data",
    "bundled_datasets": "data",
    "label_names": "data",
    "sample_per_class": "data",
    "load_token_target": "token_classification",
    "sample_per_type": "token_classification",
    "tokenize_tokens": "token_classification",
    "EntityF1": "metrics",
    "DataError": "errors",
    "ConfigError": "errors",
    "HfTransferError": "errors",
    "DataArguments": "config",
    "resolve_model": "defaults",
    "DEFAULT_ENCODER": "defaults",
    "DEFAULT_GENERATOR": "defaults",
    "TransferConfig": "modeling",
    "TransferForSequenceClassification": "modeling",
    "TransferForTokenClassification": "modeling",
    "TransferTrainer": "trainer",
    "TransferTrainingArguments": "trainer",
    "ModelArguments": "classifier",
    "prepare": "classifier",
    "WeightInterpolationCallback": "trainer",
    "RunResult": "results",
    "fit": "run",
    "run_training": "run",
    "FinetuneResult": "finetune",
    "LabelMapResult": "labelmap",
    "FinetuneConfig": "finetune",
    "LabelMapConfig": "labelmap",
    "LabelMap": "labelmap",
    "run_labelmap": "labelmap",
    "run_finetune": "finetune",
    "GenerateConfig": "generate",
    "generate_dataset": "generate",
    "generation_stats": "generate",
    "run_generate": "generate",
    "build_model_card": "model_card",
    "write_model_card": "model_card",
    "build_dataset_card": "generate",
    "push_folder": "hub",
    "write_report": "report",
    "export_onnx": "export",
    "export_static": "export",
    "StaticClassifier": "export",
    "distil_head": "export",
    "STRATEGIES": "registry",
    "get_strategy": "registry",
}
_SUBMODULES = {
    "errors",
    "data",
    "config",
    "defaults",
    "modeling",
    "metrics",
    "finetune",
    "labelmap",
    "generate",
    "registry",
    "cli",
    "model_card",
    "hub",
    "report",
    "export",
    "trainer",
    "classifier",
    "inference",
    "state",
    "output",
    "sandbox",
    "results",
    "run",
    "multi_label",
    "thresholds",
    "token_classification",
}

__all__ = sorted([*_LAZY, *_SUBMODULES, "__version__"])

if TYPE_CHECKING:
    from . import cli, finetune, generate, hub, labelmap, metrics, model_card, report  # noqa: F401
    from .classifier import ModelArguments, prepare  # noqa: F401
    from .config import DataArguments  # noqa: F401
    from .data import bundled_datasets, label_names, load_bundled, load_target, sample_per_class  # noqa: F401
    from .defaults import DEFAULT_ENCODER, DEFAULT_GENERATOR, resolve_model  # noqa: F401
    from .errors import ConfigError, DataError, HfTransferError  # noqa: F401
    from .finetune import FinetuneConfig, FinetuneResult, run_finetune  # noqa: F401
    from .generate import GenerateConfig, build_dataset_card, generate_dataset, generation_stats, run_generate  # noqa: F401
    from .hub import push_folder  # noqa: F401
    from .labelmap import LabelMap, LabelMapConfig, LabelMapResult, run_labelmap  # noqa: F401
    from .metrics import EntityF1  # noqa: F401
    from .model_card import build_model_card, write_model_card  # noqa: F401
    from .modeling import TransferConfig, TransferForSequenceClassification, TransferForTokenClassification  # noqa: F401
    from .registry import STRATEGIES, get_strategy  # noqa: F401
    from .report import write_report  # noqa: F401
    from .results import RunResult  # noqa: F401
    from .run import fit, run_training  # noqa: F401
    from .token_classification import load_token_target, sample_per_type, tokenize_tokens  # noqa: F401
    from .trainer import TransferTrainer, TransferTrainingArguments, WeightInterpolationCallback  # noqa: F401


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'hf_transfer' has no attribute {name!r}")


def _register() -> None:
    from .modeling import register_auto_classes

    register_auto_classes()


_register()
