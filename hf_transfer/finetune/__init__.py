"""The finetune strategy: adapt a pretrained encoder to the target labels (full, head-only, PEFT)."""

from ..trainer import TransferTrainer, WeightInterpolationCallback, soft_target_loss
from .config import FinetuneConfig, peft_method_names
from .features import embed_dataset
from .model import (
    check_prepare_args,
    description_head,
    embed_texts,
    export_model,
    freeze,
    layer_stack,
    peft_config_for,
    prepare,
)
from .pipeline import load_data_args, run_finetune, tokenize

__all__ = [
    "FinetuneConfig",
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
