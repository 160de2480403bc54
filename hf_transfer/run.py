"""The one run path of every strategy that trains a classifier.

:func:`fit` trains prepared rows with :class:`~hf_transfer.trainer.TransferTrainer` and evaluates: finetune
calls it once, labelmap once per round (the student of round k labels the pool of round k + 1).
:func:`run_training` wraps a strategy's body: the folder is claimed before any model loads (checks, lock,
fresh/resume/overwrite), the :class:`~hf_transfer.results.RunResult` gets the wall time, and the folder is
saved whole and pushed once.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from accelerate import PartialState
from transformers import DataCollatorForTokenClassification, DataCollatorWithPadding, TrainerCallback

from .defaults import portable_ref
from .hub import check_publish, push_run, save_run, trainer_args
from .metrics import classification, multi_label, multi_label_scores, token_classification
from .output import claim_output_dir, last_complete_checkpoint, save_bytes, wants_resume
from .precision import run_precision
from .results import RunResult
from .token_classification import TOKEN_CLASSIFICATION, is_tagger, tag_scores, word_predictions
from .trainer import TransferTrainer, TransferTrainingArguments


@dataclass
class Fit:
    """A finished :func:`fit`: the trainer (its model is the trained one), eval metrics, and the config that
    ran (epochs raised by ``for_train_size``: the card shows what ran)."""

    trainer: TransferTrainer
    config: TransferTrainingArguments
    metrics: dict[str, float]
    train_seconds: float
    tokenizer: object
    predictions: np.ndarray | None = None  # eval-split logits
    label_ids: np.ndarray | None = None
    extra_files: dict[str, str] = field(default_factory=dict)  # written beside the model (a label map)

    @property
    def multi_label(self) -> bool:
        return self.trainer.model.config.problem_type == "multi_label_classification"

    @property
    def tokens(self) -> bool:
        return is_tagger(self.trainer.model)

    def scores(self, labels: list[str]) -> dict:
        """The eval scores a :class:`RunResult` records: accuracy and macro-F1; multi-label adds micro- and
        samples-F1, per-label scores and the thresholds (its ``accuracy`` is subset accuracy); token
        classification: entity-level micro/macro F1, precision, recall and per-type scores over every word of
        the eval sentences (its ``accuracy`` is word accuracy; ``labels`` are the tags)."""
        if self.tokens:
            truth = self.trainer.eval_dataset["ner_tags"]
            predicted = word_predictions(self.predictions, self.label_ids, [len(t) for t in truth])
            scores = tag_scores(predicted, truth, labels)
            per_type = {name: {k: round(v, 4) for k, v in s.items()} for name, s in scores["per_type"].items()}
            return dict(task=TOKEN_CLASSIFICATION, accuracy=scores["accuracy"], f1_macro=scores["f1_macro"],
                        f1_micro=scores["f1_micro"], precision=scores["precision"], recall=scores["recall"],
                        per_label=per_type)  # fmt: skip
        if not self.multi_label:
            return dict(accuracy=self.metrics["eval_accuracy"], f1_macro=self.metrics["eval_f1_macro"])
        thresholds = self.trainer.model.config.label_thresholds or [0.5] * len(labels)
        probs = 1 / (1 + np.exp(-self.predictions.astype(np.float64)))
        scores = multi_label_scores(probs >= np.asarray(thresholds), self.label_ids)
        per_label = {
            name: {k: round(scores[f"{k}_per_label"][j], 4) for k in ("precision", "recall", "f1")}
            for j, name in enumerate(labels)
        }
        return dict(
            task="multi_label",
            accuracy=scores["subset_accuracy"],
            f1_macro=scores["f1_macro"],
            f1_micro=scores["f1_micro"],
            f1_samples=scores["f1_samples"],
            per_label=per_label,
            label_thresholds=list(thresholds),
        )

    def result_fields(self, data_args, labels: list[str]) -> dict:
        """The :class:`RunResult` fields that every training run fills the same way: what it trained, on
        what, and how it scored on the eval split."""
        config, trained = self.config, self.trainer.state.global_step > 0
        return dict(
            method=config.method,
            model=portable_ref(config.model_name_or_path),
            dataset=portable_ref(data_args.dataset),
            eval_split=data_args.eval_split,
            n_eval=len(self.trainer.eval_dataset),
            labels=labels,
            seed=config.seed,
            sample_seed=data_args.sample_seed,
            head_init=config.head_init,
            **self.scores(labels),
            num_train_epochs=config.num_train_epochs if trained else 0,
            train_steps=self.trainer.state.global_step,
            train_seconds=self.train_seconds,
            num_processes=PartialState().num_processes,
            bf16=bool(config.bf16),
        )


def fit(
    model,
    tokenizer,
    train,
    eval_ds,
    config: TransferTrainingArguments,
    *,
    num_labels: int,
    soft_weight: float = 0.0,
    temperature: float = 1.0,
    collator=None,
    callbacks: Sequence[TrainerCallback] = (),
    checkpoint_dir: str | None = None,
) -> Fit:
    """Train ``model`` on ``train`` (skipped when it is empty: a zero-shot run) and evaluate on ``eval_ds``.

    ``soft_weight`` > 0 mixes in the soft-target term on the rows' ``soft_targets`` (prior anchor,
    distillation); ``checkpoint_dir`` replaces ``output_dir`` as where checkpoints go and are resumed from."""
    config = config.for_train_size(len(train))
    multi = getattr(model.config, "problem_type", None) == "multi_label_classification"
    tagger = is_tagger(model)
    default_collator = DataCollatorForTokenClassification if tagger else DataCollatorWithPadding
    if tagger:
        metrics = token_classification(list(model.config.id2label.values()))
    else:
        metrics = multi_label(model.config.label_thresholds) if multi else classification(num_labels)
    args = trainer_args(config)  # push settings and token withheld: we push once, with our card
    if checkpoint_dir:
        args = copy.copy(args)
        args.output_dir = checkpoint_dir
    trainer = TransferTrainer(
        model=model,
        args=args,
        train_dataset=train if len(train) else None,
        eval_dataset=eval_ds,
        data_collator=collator or default_collator(tokenizer),
        processing_class=tokenizer,
        compute_metrics=metrics,
        callbacks=list(callbacks),
        soft_weight=soft_weight,
        temperature=temperature,
    )
    train_seconds = 0.0
    if len(train):
        start = time.perf_counter()
        trainer.train(resume_from_checkpoint=resume_checkpoint(config, checkpoint_dir))
        train_seconds = time.perf_counter() - start
    if not (multi or tagger):
        return Fit(trainer, config, trainer.evaluate(), train_seconds, tokenizer)
    output = trainer.predict(eval_ds, metric_key_prefix="eval")  # evaluate(), keeping the logits for the result
    trainer.log(output.metrics)
    logits = output.predictions[0] if isinstance(output.predictions, tuple) else output.predictions
    return Fit(trainer, config, output.metrics, train_seconds, tokenizer, logits, output.label_ids)


def resume_checkpoint(config, checkpoint_dir: str | None = None) -> str | None:
    """The checkpoint to resume from: the one named, or the newest complete one in ``checkpoint_dir`` (a
    labelmap round's own folder) or, with ``last``/``true``, in ``output_dir``. None yet: start afresh, so one
    command both starts and resumes, and a checkpoint that a kill cut short is skipped for the one before."""
    if not wants_resume(config):
        return None
    value = config.resume_from_checkpoint
    if checkpoint_dir or str(value).lower() in ("last", "true", "yes"):
        return last_complete_checkpoint(checkpoint_dir or config.output_dir)
    return value


def run_training(config, data_args, body: Callable[[], tuple[RunResult, Fit]], *, weights_from: str) -> RunResult:
    """Check publishing, claim ``config.output_dir`` for a model the size of ``weights_from``, run ``body``
    (which loads models and trains), then save the folder (results.json last) and push it once."""
    start = time.perf_counter()
    check_publish(config)  # push settings and card template
    main = PartialState().is_main_process
    with claim_output_dir(config, need_bytes=save_bytes(weights_from, config.save_strategy)):
        with run_precision(config.bf16):  # the run's own inference follows its bf16, explicit or resolved
            result, fitted = body()
        result.wall_seconds = time.perf_counter() - start
        if main and config.output_dir:
            folder = save_run(fitted.trainer, fitted.config, fitted.tokenizer, result, data_args,
                              extra_files=fitted.extra_files)  # fmt: skip
    if main and config.output_dir:
        push_run(folder, config, result)
    return result
