"""The finetune strategy: adapt a pretrained encoder to the target labels (full, head-only, PEFT)."""

from ..classifier import (
    check_prepare_args,
    description_head,
    embed_texts,
    export_model,
    freeze,
    layer_stack,
    peft_config_for,
    peft_method_names,
    prepare,
)
from ..data import load_data_args, tokenize
from ..trainer import TransferTrainer, WeightInterpolationCallback, soft_target_loss
from .config import FinetuneConfig
from .features import embed_dataset
from .pipeline import run_finetune
from .result import FinetuneResult

__all__ = [
    "FinetuneConfig",
    "FinetuneResult",
    "TransferTrainer",
    "WeightInterpolationCallback",
    "check_prepare_args",
    "description_head",
    "embed_dataset",
    "embed_texts",
    "export_model",
    "freeze",
    "layer_stack",
    "load_data_args",
    "peft_config_for",
    "peft_method_names",
    "prepare",
    "run_finetune",
    "soft_target_loss",
    "tokenize",
]
