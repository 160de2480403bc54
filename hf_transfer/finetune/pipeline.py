"""One finetune run end to end: data → prepared model → stock ``Trainer`` → evaluation → saved folder.

The CLI, the recipes and the demo all call :func:`run_finetune`; users with their own scripts call the
pieces (``load_target``, ``prepare``, ``embed_dataset``) and their own ``Trainer``.
"""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path

import torch
from accelerate import PartialState
from datasets import Dataset, concatenate_datasets
from transformers import DataCollatorWithPadding, default_data_collator, set_seed

from .. import __version__
from ..config import DataArguments
from ..data import DataError, label_names, load_bundled, load_target, sample_per_class
from ..defaults import portable_ref
from ..hub import check_publish, push_run, resolve_repo_id, save_model_folder, trainer_args
from ..metrics import classification
from ..model_card import peft_summary, write_model_card
from ..output import (
    RESULTS_FILE,
    claim_output_dir,
    last_complete_checkpoint,
    save_atomically,
    save_bytes,
    wants_resume,
)
from ..trainer import SOFT_TARGETS, TransferTrainer, WeightInterpolationCallback
from .config import FinetuneConfig
from .features import embed_dataset
from .model import check_prepare_args, embed_texts, export_model, prepare


def load_data_args(data_args: DataArguments, counts: dict | None = None):
    """Load and sample the target data described by ``data_args``: ``(train, eval, labels)``. ``counts``, if
    given, receives ``n_real_train`` (sampled real rows, before ``repeat_train``) and ``n_extra_train``."""
    kwargs = dict(
        text_column=data_args.text_column,
        label_column=data_args.label_column,
        labels=data_args.labels,
        normalize_labels=data_args.normalize_labels,
        validation_size=data_args.validation_size,
        seed=data_args.sample_seed,
    )
    if data_args.dataset.startswith("bundled:"):
        data = load_bundled(data_args.dataset.split(":", 1)[1], **kwargs)
    else:
        data = load_target(data_args.dataset, **kwargs)
    if data_args.eval_split not in data:
        raise DataError(f"eval_split={data_args.eval_split!r} is not among the splits {list(data)}.")
    train = data["train"]
    if data_args.n_per_class is not None:
        train = sample_per_class(train, data_args.n_per_class, seed=data_args.sample_seed)
    n_real = len(train)
    if data_args.repeat_train > 1 and n_real:
        train = concatenate_datasets([train] * data_args.repeat_train)
    extra = (
        load_extra_train(data_args.extra_train, label_names(data), normalize_labels=data_args.normalize_labels)
        if data_args.extra_train
        else None
    )
    missing: list[str] = []
    if extra is not None:
        train = concatenate_datasets([train, extra])
        missing = _labels_missing(extra, label_names(data))
        if missing:
            warnings.warn(
                f"extra_train={str(data_args.extra_train)!r} has no rows for label(s) {missing}: "
                + ("the model never sees them in training (n_per_class=0)." if not n_real else "only the real rows "
                   "teach them, outnumbered by the extra rows of the other labels.")
                + " Add rows for them (e.g. generate with a higher n_per_label) or drop those labels.",
                stacklevel=2,
            )  # fmt: skip
    if counts is not None:
        counts.update(n_real_train=n_real, n_extra_train=len(extra) if extra is not None else 0)
        if extra is not None:
            counts["extra_train_missing_labels"] = missing
    eval_ds = data[data_args.eval_split]
    if data_args.max_eval_samples is not None:
        eval_ds = eval_ds.select(range(min(data_args.max_eval_samples, len(eval_ds))))
    return train, eval_ds, label_names(data)


def _labels_missing(dataset: Dataset, labels: list[str]) -> list[str]:
    present = set(dataset.unique("label")) if len(dataset) else set()
    return [name for i, name in enumerate(labels) if i not in present]


def load_extra_train(source, labels: list[str], normalize_labels: bool = False) -> Dataset:
    """Rows from ``source`` (file, folder, saved ``Dataset``) with labels re-encoded by name to ``labels``."""
    try:
        extra = load_target(source, labels=labels, validation_size=0, normalize_labels=normalize_labels)
    except DataError as err:
        raise DataError(f"extra_train={str(source)!r}: {err}") from None
    return concatenate_datasets(list(extra.values()))


def check_config(config: FinetuneConfig, labels: list[str]) -> None:
    """The model-side checks of ``prepare`` (method, layers, descriptions) and the publishing checks (push
    settings, card template), without loading weights."""
    check_publish(config)
    check_prepare_args(
        config.model_name_or_path,
        labels,
        method=config.method,
        freeze_layers=config.freeze_layers,
        label_descriptions=config.label_descriptions,
    )


def prepare_from_config(config: FinetuneConfig, labels: list[str]):
    """``prepare`` with every model option taken from a ``FinetuneConfig`` (or a subclass)."""
    return prepare(
        config.model_name_or_path,
        labels,
        method=config.method,
        pooling=config.pooling,
        normalize=config.normalize,
        head_init=config.head_init,
        label_descriptions=config.label_descriptions,
        head_init_scale=config.head_init_scale,
        freeze_embeddings=config.freeze_embeddings,
        freeze_layers=config.freeze_layers,
        peft_kwargs=config.peft_kwargs,
        max_length=config.max_length,
    )


def tokenize(dataset: Dataset, tokenizer, max_length: int) -> Dataset:
    return dataset.map(
        lambda batch: tokenizer(batch["text"], truncation=True, max_length=max_length),
        batched=True,
        remove_columns=["text"],
        desc="Tokenizing",
    )


def run_finetune(config: FinetuneConfig, data_args: DataArguments) -> dict:
    """Train (unless ``n_per_class == 0``), evaluate, save to ``config.output_dir``; returns the results."""
    start = time.perf_counter()
    counts: dict = {}
    train, eval_ds, labels = load_data_args(data_args, counts)
    check_config(config, labels)
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
    model, tokenizer = prepare_from_config(config, labels)
    base = model.get_base_model() if config.is_peft else model
    use_features = config.method == "head" and config.cache_features
    if use_features:
        train = embed_dataset(train, base, tokenizer, max_length=config.max_length, cache_dir=config.feature_cache_dir)
        eval_ds = embed_dataset(
            eval_ds, base, tokenizer, max_length=config.max_length, cache_dir=config.feature_cache_dir
        )
        # Torch-formatted columns collate by stacking tensors instead of converting lists of floats per step.
        train = train.remove_columns("text").with_format("torch")
        eval_ds = eval_ds.remove_columns("text").with_format("torch")
        collator = default_data_collator
    else:
        if config.prior_weight > 0 and len(train):
            with torch.no_grad():
                features = embed_texts(base, tokenizer, train["text"], max_length=config.max_length)
                prior = base.classifier(features.to(base.classifier.weight.dtype)).float().softmax(-1)
            train = train.add_column(SOFT_TARGETS, prior.numpy().tolist())  # the zero-shot prediction per row
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


def save_run(
    trainer,
    config: FinetuneConfig,
    tokenizer,
    results: dict,
    data_args: DataArguments | None = None,
    extra_files: dict[str, str] | None = None,
) -> Path:
    """Write a Hub-ready folder to ``config.output_dir``: the exported model (or PEFT adapter with its base,
    ``merge_adapter=False``), tokenizer, ``extra_files`` (name -> text), the model card ``README.md`` and
    ``results.json``, staged and moved into place with ``results.json`` last (:func:`save_atomically`)."""
    out = Path(config.output_dir)
    peft_config = peft_summary(trainer.model)  # before export: merging drops the adapter
    model = export_model(trainer.model, merge_adapter=config.merge_adapter)
    repo_id = resolve_repo_id(config.hub_model_id, config.output_dir) if config.push_to_hub else None
    results_text = json.dumps(results, indent=2)

    def write(folder: Path) -> None:
        adapter = save_model_folder(model, folder, adapter_base=repo_id or str(out.resolve()))
        tokenizer.save_pretrained(folder)
        for name, text in (extra_files or {}).items():
            (folder / name).write_text(text)
        write_model_card(
            folder,
            results,
            config,
            data_args,
            model_name=repo_id,
            usage_ref=repo_id or portable_ref(str(out)),  # a folder on this machine: its name, not its path
            peft_config=peft_config,
            saved_as_adapter=adapter,
        )
        (folder / RESULTS_FILE).write_text(results_text)

    def rescue(folder: Path) -> None:
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        (folder / RESULTS_FILE).write_text(results_text)

    save_atomically(out, write, rescue)
    return out
