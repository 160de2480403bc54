"""One finetune run end to end: data → prepared model → stock ``Trainer`` → evaluation → saved folder.

The CLI, the recipes and the demo all call :func:`run_finetune`; users with their own scripts call the
pieces (``load_target``, ``prepare``, ``embed_dataset``) and their own ``Trainer``.
"""

from __future__ import annotations

import time

import torch
from accelerate import PartialState
from transformers import DataCollatorWithPadding, default_data_collator, set_seed

from .. import __version__
from ..classifier import check_prepare_args, prepare
from ..config import DataArguments
from ..data import load_data_args, tokenize
from ..defaults import portable_ref
from ..hub import check_publish, push_run, save_run, trainer_args
from ..inference import embed_texts
from ..metrics import classification
from ..output import claim_output_dir, last_complete_checkpoint, save_bytes, wants_resume
from ..trainer import SOFT_TARGETS, TransferTrainer, WeightInterpolationCallback
from .config import FinetuneConfig
from .features import embed_dataset


def run_finetune(config: FinetuneConfig, data_args: DataArguments) -> dict:
    """Train (unless ``n_per_class == 0``), evaluate, save to ``config.output_dir``; returns the results."""
    start = time.perf_counter()
    counts: dict = {}
    train, eval_ds, labels = load_data_args(data_args, counts)
    check_publish(config)  # push settings and card template
    check_prepare_args(config, labels)
    need = save_bytes(config.model_name_or_path, config.save_strategy)
    with claim_output_dir(config, need_bytes=need):
        results, trainer, tokenizer, config = _train_and_evaluate(config, data_args, train, eval_ds, labels, counts)
        results["wall_seconds"] = time.perf_counter() - start
        if PartialState().is_main_process and config.output_dir:
            folder = save_run(trainer, config, tokenizer, results, data_args)
    if PartialState().is_main_process and config.output_dir:
        push_run(folder, config, results)
    return results


def _train_and_evaluate(config: FinetuneConfig, data_args: DataArguments, train, eval_ds, labels, counts):
    set_seed(config.seed)  # before the model is built: PEFT adapters and random heads start the same each run
    model, tokenizer = prepare(config, labels)
    base = model.get_base_model() if config.is_peft else model
    use_features = config.method == "head" and config.cache_features
    if use_features:
        train = embed_dataset(train, base, tokenizer, max_length=config.max_length, cache_dir=config.feature_cache_dir)
        eval_ds = embed_dataset(
            eval_ds, base, tokenizer, max_length=config.max_length, cache_dir=config.feature_cache_dir
        )
        if config.prior_weight > 0 and len(train):  # the zero-shot head on the cached features
            train = _with_prior(train, base, torch.tensor(train["sentence_embedding"]))
        # Torch-formatted columns collate by stacking tensors instead of converting lists of floats per step.
        train = train.remove_columns("text").with_format("torch")
        eval_ds = eval_ds.remove_columns("text").with_format("torch")
        collator = default_data_collator
    else:
        if config.prior_weight > 0 and len(train):
            features = embed_texts(base, tokenizer, train["text"], max_length=config.max_length)
            train = _with_prior(train, base, features)
        train = tokenize(train, tokenizer, config.max_length)
        eval_ds = tokenize(eval_ds, tokenizer, config.max_length)
        collator = DataCollatorWithPadding(tokenizer)
    config = config.for_train_size(len(train))  # a copy when the epochs are raised: the card shows what ran
    callbacks = [WeightInterpolationCallback(config.wise_alpha)] if config.wise_alpha < 1.0 else []
    trainer = TransferTrainer(
        model=model,
        args=trainer_args(config),  # push settings and token withheld: we push once, with our card
        train_dataset=train if len(train) else None,
        eval_dataset=eval_ds,
        data_collator=collator,
        processing_class=tokenizer,
        compute_metrics=classification(len(labels)),
        callbacks=callbacks,
        soft_weight=config.prior_weight,  # KL toward the zero-shot prior, T = 1
    )
    train_seconds = 0.0
    if len(train):
        train_start = time.perf_counter()
        trainer.train(resume_from_checkpoint=_resume_target(config))
        train_seconds = time.perf_counter() - train_start
    metrics = trainer.evaluate()
    results = {
        "strategy": "finetune",
        "method": config.method,
        "model": portable_ref(config.model_name_or_path),
        "dataset": portable_ref(data_args.dataset),
        "eval_split": data_args.eval_split,
        "n_per_class": data_args.n_per_class,
        "n_train": len(train),
        **counts,
        "repeat_train": data_args.repeat_train,
        "extra_train": portable_ref(data_args.extra_train),
        "n_eval": len(eval_ds),
        "labels": labels,
        "seed": config.seed,
        "sample_seed": data_args.sample_seed,
        "head_init": config.head_init,
        "accuracy": metrics["eval_accuracy"],
        "f1_macro": metrics["eval_f1_macro"],
        "num_train_epochs": config.num_train_epochs if len(train) else 0,
        "train_steps": trainer.state.global_step,
        "train_seconds": train_seconds,
        "num_processes": PartialState().num_processes,
        "hf_transfer_version": __version__,
    }
    return results, trainer, tokenizer, config  # the config that ran (epochs raised by for_train_size)


def _with_prior(train, model, features: torch.Tensor):
    """``train`` with the zero-shot prediction per row (the description head on the row's pooled features) as
    its ``soft_targets``, computed once before training: the prior that ``prior_weight`` anchors to."""
    with torch.no_grad():
        prior = model.classifier(features.to(model.classifier.weight.dtype)).float().softmax(-1)
    return train.add_column(SOFT_TARGETS, prior.numpy().tolist())


def _resume_target(config: FinetuneConfig) -> str | bool | None:
    """``resume_from_checkpoint``: a checkpoint folder, or ``last``/``true`` for the newest one in output_dir."""
    value = config.resume_from_checkpoint
    if not wants_resume(config):
        return None
    if str(value).lower() in ("last", "true", "yes"):
        # nothing saved yet: start from scratch, so one command both starts and resumes; a checkpoint a kill
        # cut short is skipped for the one before it
        return last_complete_checkpoint(config.output_dir)
    return value
