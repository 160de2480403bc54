"""One finetune run end to end: data → prepared model → stock ``Trainer`` → evaluation → saved folder.

The CLI, the recipes and the demo all call :func:`run_finetune`; users with their own scripts call the
pieces (``load_target``, ``prepare``, ``embed_dataset``) and their own ``Trainer``.
"""

from __future__ import annotations

import copy
import logging
import tempfile
from pathlib import Path

import numpy as np
import torch
from accelerate import PartialState
from transformers import default_data_collator, set_seed

from ..classifier import AUTO_METHOD, check_base_task, check_prepare_args, prepare
from ..config import DataArguments
from ..data import load_data_args, tokenize, training_targets, wordless_labels
from ..defaults import portable_ref
from ..errors import ConfigError, some
from ..inference import embed_texts, predict_proba
from ..multi_label import MULTI_LABEL, PROBLEM_TYPES, SINGLE_LABEL, multi_hot, task_of
from ..run import Fit, fit, run_training
from ..thresholds import fit_thresholds, out_of_fold
from ..token_classification import TOKEN_CLASSIFICATION, tokenize_tokens, type_rates
from ..trainer import SOFT_TARGETS, WeightInterpolationCallback, result_options
from .auto import AUTO_STATE_FILE, MethodChoice, choose_method, chosen_config
from .config import FinetuneConfig
from .features import collate_token_features, embed_dataset, embed_token_dataset
from .result import FinetuneResult

logger = logging.getLogger(__name__)


def run_finetune(config: FinetuneConfig, data_args: DataArguments) -> FinetuneResult:
    """Train (unless ``n_per_class == 0``), evaluate, save to ``config.output_dir``; returns the results."""
    data_args = data_args.seeded(config.seed)
    counts: dict = {}
    train, eval_ds, labels = load_data_args(data_args, counts)
    task = task_of(train)
    if task != SINGLE_LABEL and config.prior_weight > 0:
        raise ConfigError(f"prior_weight anchors single-label runs only; for {task} data set prior_weight=0.")
    check_prepare_args(config, labels)
    check_base_task(config.model_name_or_path, task, forced=data_args.task == task)
    config = _head_init_for(config, labels, task, counts)
    unlabelled = None
    if task == TOKEN_CLASSIFICATION and not len(train):  # zero-shot: the type biases are set on unlabelled sentences
        everything = DataArguments(**{**vars(data_args), "n_per_class": None, "extra_train": None})
        unlabelled = load_data_args(everything, announce=False)[0].shuffle(seed=data_args.sample_seed)
        unlabelled = unlabelled.select(range(min(len(unlabelled), 2000)))["tokens"]
    if task == MULTI_LABEL and not counts["n_real_train"]:  # no real labels: unlabelled train texts set the decision
        everything = DataArguments(**{**vars(data_args), "n_per_class": None, "extra_train": None})
        unlabelled = load_data_args(everything, announce=False)[0].shuffle(seed=data_args.sample_seed)
        unlabelled = unlabelled.select(range(min(len(unlabelled), 2000)))["text"]
    return run_training(
        config,
        data_args,
        lambda: _train_and_evaluate(config, data_args, train, eval_ds, labels, counts, task, unlabelled),
        weights_from=config.model_name_or_path,
    )


def _head_init_for(config: FinetuneConfig, labels: list[str], task: str, counts: dict) -> FinetuneConfig:
    """``config``, or a copy with ``head_init="random"`` when every label is a bare id with no description
    (``"0"``, ``"1"``, ...): a description head would start from how numbers embed. Zero-shot has nothing else
    to read, so there it is an error. AG News with ids for names, 8 per class, full, seeds 0-2 (2-core Xeon,
    fp32): 81.4 / 78.5 / 83.9% from the id "descriptions", 83.5 / 77.8 / 85.5% from a random head."""
    if task == TOKEN_CLASSIFICATION or config.head_init != "label_descriptions":
        return config
    if wordless_labels(labels, config.label_descriptions) != list(labels):
        return config
    if config.prior_weight > 0:
        raise ConfigError(
            f"prior_weight={config.prior_weight} anchors training to the label-description head, but the labels are "
            f"ids ({some(labels, 4)}) with no descriptions. Pass label_descriptions, or prior_weight=0."
        )
    if not counts.get("n_real_train") and not counts.get("n_extra_train"):
        raise ConfigError(
            f"The labels are ids ({some(labels, 4)}) with no descriptions, and a zero-shot run (n_per_class=0) "
            f'reads only what labels say. Pass label_descriptions (e.g. \'{{"{labels[0]}": "world news"}}\'), '
            "or train on labelled rows (n_per_class > 0)."
        )
    logger.warning(
        "The labels are ids (%s) with no descriptions: the head starts random (head_init='random'). Pass "
        "label_descriptions to start it from what each label means.", some(labels, 4),
    )  # fmt: skip
    config = copy.copy(config)
    config.head_init = "random"
    return config


def _train_and_evaluate(config: FinetuneConfig, data_args, train, eval_ds, labels, counts, task, unlabelled):
    if config.method == AUTO_METHOD:
        choice = _choose_method(config, data_args, train, labels, counts, task)
        result, fitted = _train_and_evaluate(chosen_config(config, choice.chosen), data_args, train, eval_ds,
                                             labels, counts, task, unlabelled)  # fmt: skip
        result.method_selection = choice.as_dict()
        return result, fitted
    if task == TOKEN_CLASSIFICATION:
        return _train_tagger(config, data_args, train, eval_ds, labels, counts, unlabelled)
    calibration, extra, thresholds = None, np.zeros(len(train), dtype=bool), None
    if task == MULTI_LABEL:  # biases at the real rows' label rates; without real rows: 1/num_labels of the texts
        train, extra = training_targets(train, counts.get("extra_train_unasked", "negative"))
        eval_ds = multi_hot(eval_ds)
        texts = list(train["text"])
        real = np.flatnonzero(~extra)
        if len(real):  # extra rows' label shares are set by how they were made (n_per_label), not by the target
            calibration = ([texts[i] for i in real], _rates(np.asarray(train["labels"])[real], len(labels)))
        else:
            calibration = (list(unlabelled), _rates(np.zeros((0, len(labels))), len(labels)))
    else:
        config = config.with_head_rate()  # a new single-label head learns at head-only's rate unless set
    set_seed(config.seed)  # before the model is built: PEFT adapters and random heads start the same each run
    model, tokenizer = prepare(config, labels, problem_type=PROBLEM_TYPES.get(task), calibrate=calibration)
    base = model.get_base_model() if config.is_peft else model
    collator = None
    if config.method == "head" and config.cache_features:
        train, eval_ds = (embed_dataset(ds, base, tokenizer, max_length=config.max_length,
                                        cache_dir=config.feature_cache_dir) for ds in (train, eval_ds))  # fmt: skip
        if config.prior_weight > 0 and len(train):  # the zero-shot head on the cached features
            train = _with_prior(train, base, torch.tensor(train["sentence_embedding"]))
        # Torch-formatted columns collate by stacking tensors instead of converting lists of floats per step.
        train = train.remove_columns("text").with_format("torch")
        eval_ds = eval_ds.remove_columns("text").with_format("torch")
        collator = default_data_collator
    else:
        if config.prior_weight > 0 and len(train):
            train = _with_prior(train, base, embed_texts(base, tokenizer, train["text"], max_length=config.max_length))
        train = tokenize(train, tokenizer, config.max_length)
        eval_ds = tokenize(eval_ds, tokenizer, config.max_length)
    callbacks = [WeightInterpolationCallback(config.wise_alpha)] if config.wise_alpha < 1.0 else []
    if task == MULTI_LABEL:
        thresholds = _thresholds(config, labels, train, texts, extra, tokenizer, collator, callbacks)
        base.config.label_thresholds = thresholds or [0.5] * len(labels)  # extra rows only: set after training
    fitted: Fit = fit(
        model, tokenizer, train, eval_ds, config,
        num_labels=len(labels),
        soft_weight=config.prior_weight,  # KL toward the zero-shot prior, T = 1
        collator=collator,
        callbacks=callbacks,
    )  # fmt: skip
    if task == MULTI_LABEL and thresholds is None:
        base.config.label_thresholds = _rate_thresholds(fitted.trainer.model, tokenizer, unlabelled, config.max_length)
    return _result(fitted, data_args, labels, len(train), counts), fitted


def _choose_method(config: FinetuneConfig, data_args, train, labels, counts, task) -> MethodChoice:
    """``method: auto``. Single-label: cross-validation of ``config.auto_methods`` on the real training rows,
    each fold trained by this module's own path (prior, WiSE-FT and cached head features as the final run).
    Multi-label and token classification: full, the best measured there (README: macro-F1 on GoEmotions,
    entity F1 on CrossNER politics), since one fold model per candidate would add to their threshold folds."""
    n_real = counts.get("n_real_train", len(train))
    if task != SINGLE_LABEL:
        reason = f"{task}: full, the best method measured on this task type (cross-validation is single-label)"
        return MethodChoice(chosen="full", folds=0, rows=n_real, reason=reason)

    def train_and_predict(fold_config, rows, held_out) -> np.ndarray:
        _, fitted = _train_and_evaluate(fold_config, data_args, train.select(rows), train.select(held_out),
                                        labels, {}, task, None)  # fmt: skip
        output = fitted.trainer.predict(fitted.trainer.eval_dataset)
        return output.predictions[0] if isinstance(output.predictions, tuple) else output.predictions

    repeat = data_args.repeat_train if n_real else 1
    state = Path(config.output_dir) / AUTO_STATE_FILE if config.output_dir else None
    fingerprint = {"options": result_options(config), "data": vars(data_args), "rows": n_real}
    choice = choose_method(config, np.asarray(train["label"][:n_real]), n_real, repeat, len(train), train_and_predict,
                           state_file=state, fingerprint=fingerprint,
                           write_state=PartialState().is_main_process)  # fmt: skip
    print(f"method=auto chose {choice.reason}", flush=True)
    return choice


def _result(fitted: Fit, data_args, labels, n_train: int, counts: dict) -> FinetuneResult:
    return FinetuneResult(
        strategy="finetune",
        **fitted.result_fields(data_args, labels),
        n_per_class=data_args.n_per_class,
        n_train=n_train,
        **counts,
        repeat_train=data_args.repeat_train,
        extra_train=portable_ref(data_args.extra_train),
    )


def _train_tagger(config: FinetuneConfig, data_args, train, eval_ds, tags, counts, unlabelled):
    """Token classification: the tagger's type biases at the sampled sentences' type rates (zero-shot: a prior on
    unlabelled sentences), trained on aligned sub-tokens or, head-only, on cached word features."""
    sentences = list(train["tokens"]) if len(train) else list(unlabelled or [])
    set_seed(config.seed)
    model, tokenizer = prepare(config, tags, task=TOKEN_CLASSIFICATION, calibrate=(sentences, type_rates(train)))
    base = model.get_base_model() if config.is_peft else model
    collator = None
    # cached features are one row per word (its first sub-token): subword_labels="all" trains on every sub-token
    if config.method == "head" and config.cache_features and config.subword_labels == "first":
        options = dict(max_length=config.max_length, cache_dir=config.feature_cache_dir)
        train, eval_ds = (embed_token_dataset(ds, base, tokenizer, **options) for ds in (train, eval_ds))
        collator = collate_token_features
    else:
        train = tokenize_tokens(train, tokenizer, config.max_length, config.subword_labels)
        eval_ds = tokenize_tokens(eval_ds, tokenizer, config.max_length, "first")  # scores read first sub-tokens
    callbacks = [WeightInterpolationCallback(config.wise_alpha)] if config.wise_alpha < 1.0 else []
    fitted: Fit = fit(model, tokenizer, train.remove_columns("ner_tags"), eval_ds, config.for_tagger(),
                      num_labels=len(tags), collator=collator, callbacks=callbacks)  # fmt: skip
    return _result(fitted, data_args, tags, len(train), counts), fitted


def _rates(targets: np.ndarray, num_labels: int) -> list[float]:
    """Each label's share of the rows that say whether they have it (-1, unknown, is left out), kept inside
    (0, 1); a label no row speaks for, or no rows at all: 1/num_labels (a prior, not data)."""
    if not len(targets):
        return [1 / num_labels] * num_labels
    targets = np.asarray(targets, dtype=np.float64)
    known = (targets >= 0).sum(0)
    share = np.divide((targets > 0.5).sum(0), known, out=np.full(known.shape, 1 / num_labels), where=known > 0)
    return np.clip(share, 1 / (known + 1), 1 - 1 / (known + 1)).tolist()


def _thresholds(config, labels, train, texts, extra, tokenizer, collator, callbacks) -> list[float] | None:
    """Multi-label decision thresholds from training data only: cross-fitted on the real labelled rows (each
    scored by a model of the same recipe that did not see it: the other folds' real rows plus every extra_train
    row) or one fixed value. Zero-shot: 0.5, where the calibrated bias puts each label's top 1/num_labels share
    of the unlabelled train texts. ``None`` when only extra_train rows train: :func:`_rate_thresholds` after
    training (synthetic rows are not target texts, and with unasked labels unknown they hold no negatives to
    cross-fit false positives on)."""
    if not len(train) or config.thresholds != "cross_fit":
        return [0.5 if not len(train) else float(config.thresholds)] * len(labels)
    real, synthetic = np.flatnonzero(~extra), np.flatnonzero(extra)
    if not len(real):
        return None
    targets = np.asarray(train["labels"])
    texts = np.asarray(texts, dtype=object)
    with tempfile.TemporaryDirectory(prefix="hf_transfer_folds_") as folder:
        fold_config = copy.copy(config)  # checkpoints, resumption and pushes stay with the final model
        fold_config.output_dir, fold_config.resume_from_checkpoint = folder, None
        fold_config.save_strategy = type(config.save_strategy)("no")
        fold_config.eval_strategy = type(config.eval_strategy)("no")
        fold_config.load_best_model_at_end = False

        def train_and_predict(rows: np.ndarray, held_out: np.ndarray) -> np.ndarray:
            set_seed(config.seed)
            calibration = (list(texts[real[rows]]), _rates(targets[real[rows]], len(labels)))
            model, _ = prepare(config, labels, problem_type=PROBLEM_TYPES[MULTI_LABEL], calibrate=calibration)
            rows = np.concatenate([real[rows], synthetic])
            fitted = fit(model, tokenizer, train.select(rows), train.select(real[held_out]), fold_config,
                         num_labels=len(labels), collator=collator, callbacks=callbacks)  # fmt: skip
            return 1 / (1 + np.exp(-fitted.predictions.astype(np.float64)))

        probs = out_of_fold(targets[real], config.threshold_folds, config.seed, train_and_predict)
    return fit_thresholds(probs, targets[real])


def _rate_thresholds(model, tokenizer, texts, max_length: int) -> list[float]:
    """Trained on extra_train rows alone: each label's threshold at its top 1/num_labels share of the unlabelled
    target train texts, as the trained model ranks them. The zero-shot decision rule, with no label read: the
    ranking comes from training, the rate from the prior, since the synthetic rows' label shares are set by
    how many were generated, not by the target."""
    probs = predict_proba(model, tokenizer, list(texts), max_length=max_length)
    num_labels = probs.shape[1]
    return [round(float(np.clip(np.quantile(probs[:, j], 1 - 1 / num_labels), 1e-4, 1 - 1e-4)), 4)
            for j in range(num_labels)]  # fmt: skip


def _with_prior(train, model, features: torch.Tensor):
    """``train`` with the zero-shot prediction per row (the description head on the row's pooled features) as
    its ``soft_targets``, computed once before training: the prior that ``prior_weight`` anchors to."""
    with torch.no_grad():
        prior = model.classifier(features.to(model.classifier.weight.dtype)).float().softmax(-1)
    return train.add_column(SOFT_TARGETS, prior.numpy().tolist())
