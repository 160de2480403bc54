"""The finetune strategy: adapt a pretrained encoder to the target labels (full, head-only, PEFT)."""

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
from .trainer import PriorRegularizedTrainer, WeightInterpolationCallback, prior_kl

__all__ = [
    "FinetuneConfig",
    "PriorRegularizedTrainer",
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
    "prior_kl",
    "run_finetune",
    "tokenize",
]
