"""One labelmap run: source model → label map → zero-shot → pseudo-labels → distilled student.

Everything that can be checked without weights (data, map names, thresholds, the source model's
``id2label``) is checked first; the source model then runs once over the eval split and the pool.

A multi-label target decides each label by a threshold, chosen from training data only, never on the eval split:
the teacher's (the source through the map) at 0.5 zero-shot, or with labelled rows (``n_per_class > 0``) by
``thresholds.fit_thresholds`` on their scores (a learned map cross-fitted: each row scored by the map learned on
the other folds). The student's are set after training so that on the pool it predicts each label as often as its
teacher did: a quantile per label of its pool probabilities. That needs no labelled row, and it keeps the
teacher's label rates, which a sigmoid trained on soft targets reproduces in ranking but not at 0.5 (a label
present in 3% of the texts rarely scores above 0.5 anywhere). A fixed ``thresholds`` value replaces both.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import torch
from datasets import Dataset, concatenate_datasets
from transformers import set_seed

from ..classifier import check_prepare_args, export_model, prepare
from ..config import DataArguments
from ..data import load_data_args, readable_label, sample_per_class, tokenize
from ..errors import ConfigError
from ..inference import embed_texts
from ..inference import predict_proba as model_proba
from ..metrics import classification_scores, multi_label_scores
from ..multi_label import MULTI_LABEL, PROBLEM_TYPES, label_matrix, multi_hot, task_of
from ..precision import resolve_bf16
from ..run import fit, run_training
from ..token_classification import TOKEN_CLASSIFICATION
from ..trainer import SOFT_TARGETS
from .config import LabelMapConfig
from .head import transfer_head
from .mapping import LabelMap
from .predict import PROBS_COLUMN, add_source_probs, load_source, source_config, source_label_names
from .pseudo import pseudo_label
from .result import LabelMapResult
from .state import open_state, pool_with_probs
from .tag_pipeline import run_labelmap_tags


def build_label_map(
    method: str,
    config: LabelMapConfig,
    source_labels: list[str],
    target_labels: list[str],
    gold: Dataset | None = None,
    *,
    multi_label_target: bool = False,
    multi_label_source: bool = False,
) -> LabelMap:
    kinds = dict(multi_label_target=multi_label_target, multi_label_source=multi_label_source)
    if method == "explicit":
        return LabelMap.from_dict(
            config.label_map, source_labels, target_labels, allow_unreachable=config.allow_unreachable, **kinds
        )
    if method == "identity":
        missing = [t for t in target_labels if t not in source_labels]
        if missing:
            raise ConfigError(
                f"map_method='identity' needs the source model to have every target label; it lacks {missing} "
                f"(its labels: {source_labels}). Give label_map, or use map_method 'learned' or 'names'."
            )
        identity = LabelMap.from_dict({t: t for t in target_labels}, source_labels, target_labels, **kinds)
        return dataclasses.replace(identity, method="identity")
    if method == "learned":
        if gold is None or len(gold) == 0:
            raise ConfigError("map_method='learned' needs labelled target examples: set n_per_class > 0.")
        probs = np.asarray(gold[PROBS_COLUMN])
        if multi_label_target:
            targets = label_matrix(gold, len(target_labels))
            return LabelMap.learn_multi_label(probs, targets, source_labels, target_labels,
                                              multi_label_source=multi_label_source)  # fmt: skip
        return LabelMap.learn(probs, gold["label"], source_labels, target_labels)
    encoder, tokenizer = prepare(config.model_name_or_path, target_labels, head_init="random", method="head")
    with torch.no_grad():
        source_emb = embed_texts(encoder, tokenizer, [readable_label(s) for s in source_labels]).numpy()
        target_emb = embed_texts(encoder, tokenizer, [readable_label(t) for t in target_labels]).numpy()
    label_map = LabelMap.from_names(source_emb, target_emb, source_labels, target_labels, **kinds)
    label_map.check_reachable(config.allow_unreachable)
    return label_map


def decision_thresholds(label_map: LabelMap, config: LabelMapConfig, gold: Dataset) -> LabelMap:
    """A multi-label map with its per-label thresholds: a fixed ``thresholds`` value, else fitted on the labelled
    rows' scores (cross-fitted for a learned map), else 0.5 (zero-shot). Never the eval split."""
    if not label_map.multi_label_target:
        return label_map
    num_labels = len(label_map.target_labels)
    if config.thresholds != "cross_fit":
        return dataclasses.replace(label_map, thresholds=[float(config.thresholds)] * num_labels)
    if not len(gold):
        return dataclasses.replace(label_map, thresholds=[0.5] * num_labels)
    targets = label_matrix(gold, num_labels)
    return label_map.with_thresholds(np.asarray(gold[PROBS_COLUMN]), targets, folds=config.threshold_folds,
                                     seed=config.seed)  # fmt: skip


def evaluate_through_map(eval_ds: Dataset, label_map: LabelMap) -> dict[str, float]:
    """Scores of the source through the map on ``eval_ds``; multi-label: ``accuracy`` is subset accuracy, plus
    micro- and samples-F1, each label decided at the map's thresholds."""
    probs = label_map.predict_proba(np.asarray(eval_ds[PROBS_COLUMN]))
    num_labels = len(label_map.target_labels)
    if not label_map.multi_label_target:
        return classification_scores(probs.argmax(1), np.asarray(eval_ds["label"]), num_labels)
    scores = multi_label_scores(label_map.decide(probs), label_matrix(eval_ds, num_labels))
    return {"accuracy": scores["subset_accuracy"], "f1_macro": scores["f1_macro"], "f1_micro": scores["f1_micro"],
            "f1_samples": scores["f1_samples"]}  # fmt: skip


def _training_rows(pseudo: Dataset, gold: Dataset, num_labels: int) -> Dataset:
    """Pseudo-labelled rows (soft labels from the teacher) plus gold rows (one-hot soft labels). Multi-label:
    ``labels`` the multi-hot hard decisions (gold: the gold labels) and ``soft_targets`` the teacher's per-label
    scores (gold: its multi-hot), the columns ``TransferTrainer``'s per-label distillation reads."""
    soft = pseudo.select_columns(["text", "label", "soft_label"]).rename_column("soft_label", SOFT_TARGETS)
    if task_of(pseudo) == MULTI_LABEL:
        parts = [multi_hot(soft).select_columns(["text", "labels", SOFT_TARGETS])]
        if len(gold):
            gold_rows = multi_hot(gold.select_columns(["text", "label"]))
            gold_rows = gold_rows.add_column(SOFT_TARGETS, gold_rows["labels"])
            parts.append(gold_rows.select_columns(["text", "labels", SOFT_TARGETS]).cast(parts[0].features))
        return concatenate_datasets(parts)
    parts = [soft]
    if len(gold):
        eye = np.eye(num_labels, dtype=np.float32)
        gold_rows = gold.select_columns(["text", "label"]).map(
            lambda b: {SOFT_TARGETS: eye[np.asarray(b["label"])]}, batched=True, desc="One-hot gold labels"
        )
        parts.append(gold_rows.cast(parts[0].features))
    return concatenate_datasets(parts)


def _student(config: LabelMapConfig, labels, source, source_tok, label_map: LabelMap, calibration):
    """A fresh student, or the source with its head mapped; multi-label: a sigmoid head whose biases start at
    the teacher's label rates on the pool (``calibration = (texts, rates)``)."""
    if config.init_from_source:
        calibrate = (source_tok, *calibration) if calibration else None
        return transfer_head(source, label_map, calibrate=calibrate, max_length=config.max_length), None
    problem_type = PROBLEM_TYPES[MULTI_LABEL] if label_map.multi_label_target else None
    return prepare(config, labels, problem_type=problem_type, calibrate=calibration)


def run_labelmap(config: LabelMapConfig, data_args: DataArguments) -> LabelMapResult:
    """Map → zero-shot → pseudo-label → distil (``rounds`` times); saves the student and ``results.json``."""
    data_args = data_args.seeded(config.seed)
    if data_args.extra_train:
        raise ConfigError(
            "extra_train is a finetune option; labelmap trains on pseudo-labels of the target train split. "
            "Add the rows to the target data, or train on them with `hf-transfer finetune --extra_train ...`."
        )
    train, eval_ds, labels = load_data_args(
        DataArguments(**{**data_args.__dict__, "n_per_class": None})  # the whole train split is the pool
    )
    if task_of(train) == TOKEN_CLASSIFICATION:
        return run_labelmap_tags(config, data_args, train, eval_ds, labels)
    multi = task_of(train) == MULTI_LABEL
    gold = sample_per_class(train, data_args.n_per_class, seed=data_args.sample_seed) if data_args.n_per_class \
        else train.select([])  # fmt: skip
    # Everything checkable without weights, before any model loads.
    source = source_config(config.source_model)
    source_labels = source_label_names(source)
    kinds = dict(multi_label_target=multi,
                 multi_label_source=getattr(source, "problem_type", None) == PROBLEM_TYPES[MULTI_LABEL])  # fmt: skip
    method = config.resolved_map_method(data_args.n_per_class, source_labels, labels)
    if method in ("explicit", "identity"):
        build_label_map(method, config, source_labels, labels, **kinds)
    if not config.init_from_source:
        check_prepare_args(config, labels)
    pool = train.select_columns(["text"])
    if config.max_pool_samples is not None:
        pool = pool.select(range(min(config.max_pool_samples, len(pool))))
    return run_training(
        config,
        data_args,
        lambda: _map_and_distil(config, data_args, train, eval_ds, gold, pool, labels, source_labels, method, kinds),
        weights_from=config.source_model if config.init_from_source else config.model_name_or_path,
    )


def _map_and_distil(config: LabelMapConfig, data_args, train, eval_ds, gold, pool, labels, source_labels, method,
                    kinds):  # fmt: skip
    """Source predictions → map → zero-shot → ``rounds`` of pseudo-label + distil, resumable by round."""
    state = open_state(config, data_args)  # what a stopped run computed: kept, or cleared when not resuming

    multi = kinds["multi_label_target"]
    source, source_tok, _ = load_source(config.source_model)
    bf16 = resolve_bf16(config.inference_bf16)
    infer = dict(batch_size=config.inference_batch_size, max_length=config.max_length, bf16=bf16)
    eval_ds = add_source_probs(eval_ds, source, source_tok, desc="Source predictions (eval)", **infer)
    if len(gold):
        gold = add_source_probs(gold, source, source_tok, desc="Source predictions (labelled)", **infer)
    label_map = build_label_map(method, config, source_labels, labels, gold if len(gold) else None, **kinds)
    label_map = decision_thresholds(label_map, config, gold)
    zero_shot = evaluate_through_map(eval_ds, label_map)

    pool, pool_seconds = pool_with_probs(
        state, pool, lambda rows: add_source_probs(rows, source, source_tok, desc="Source predictions (pool)", **infer)
    )
    # rounds > 1: the student is the teacher, its own probabilities through the identity
    identity = LabelMap(labels, labels, np.eye(len(labels)), method="identity", multi_label_target=multi,
                        multi_label_source=multi)  # fmt: skip
    teacher_map, rounds = label_map, []
    eval_rows = eval_ds.select_columns(["text", "label"])
    eval_rows = multi_hot(eval_rows) if multi else eval_rows
    for round_index in range(config.rounds):
        number, last = round_index + 1, round_index + 1 == config.rounds
        done = state.load_round(number) if state and not last else None
        relabelled = state.load_pool(pool, number + 1, PROBS_COLUMN) if done else None
        if relabelled:  # finished before the run was stopped: its record and the re-labelled pool were saved
            rounds.append(done)
            pool = relabelled[0]
            teacher_map = dataclasses.replace(identity, thresholds=done.get("label_thresholds"))
            continue
        pseudo = pseudo_label(pool, teacher_map, threshold=config.threshold, top_k=config.top_k)
        rates = _positive_rates(pool, teacher_map) if multi else None
        calibration = (_sample_texts(pool, CALIBRATION_ROWS, config.seed), rates) if multi else None
        set_seed(config.seed)  # the same student whether or not earlier rounds ran in this process
        student, student_tok = _student(config, labels, source, source_tok, label_map, calibration)
        student_tok = student_tok or source_tok
        rows = _training_rows(pseudo, gold, len(labels))
        fitted = fit(
            student,
            student_tok,
            tokenize(rows, student_tok, config.max_length),
            tokenize(eval_rows, student_tok, config.max_length),
            config,
            num_labels=len(labels),
            soft_weight=config.distill_weight,  # the teacher's soft labels, temperature-scaled
            temperature=config.temperature,
            checkpoint_dir=state.round_dir(number) if state else None,  # a resumed round finds its own
        )
        relabelled_pool = None
        if not last:  # the student becomes the teacher: re-label the pool
            relabel_start = time.perf_counter()
            relabelled_pool = add_source_probs(pool.remove_columns(PROBS_COLUMN), export_model(fitted.trainer.model),
                                               student_tok, desc="Student re-labels the pool", **infer)  # fmt: skip
            relabel_seconds = time.perf_counter() - relabel_start
        if multi:  # before scoring: Fit.scores decides the eval split at the model's thresholds
            if config.thresholds != "cross_fit":
                cuts = [float(config.thresholds)] * len(labels)
            else:
                student_probs = np.asarray(relabelled_pool[PROBS_COLUMN]) if relabelled_pool is not None else \
                    model_proba(fitted.trainer.model, student_tok, _sample_texts(pool, THRESHOLD_ROWS, config.seed),
                                **infer)  # fmt: skip
                cuts = student_thresholds(student_probs, rates)
            _model_config(fitted.trainer.model).label_thresholds = cuts
        rounds.append(_round_record(number, pseudo, labels, train, fitted))
        if relabelled_pool is not None:
            pool = relabelled_pool
            if state:
                state.save_pool(pool, number + 1, PROBS_COLUMN, relabel_seconds)
                state.save_round(rounds[-1])  # after the pool it needs: a saved record means both are there
            teacher_map = dataclasses.replace(identity, thresholds=rounds[-1].get("label_thresholds"))
    result = LabelMapResult.from_run(
        fitted, data_args, labels, config, map_method=method, label_map=label_map.as_dict(), n_train=len(rows),
        n_pool=len(pool), zero_shot=zero_shot, rounds=rounds, pool_seconds=pool_seconds,
        zero_shot_thresholds=label_map.thresholds,
    )  # fmt: skip
    fitted.extra_files["label_map.json"] = label_map.to_json()
    return result, fitted


CALIBRATION_ROWS = 2000  # pool texts that set a multi-label student's starting biases
THRESHOLD_ROWS = 10_000  # pool texts whose student probabilities set its thresholds (quantiles: plenty)


def _model_config(model):
    """The config a (PEFT-wrapped) model saves and ``run.Fit.scores`` reads."""
    return (model.get_base_model() if hasattr(model, "get_base_model") else model).config


def _sample_texts(pool: Dataset, n: int, seed: int) -> list[str]:
    """Up to ``n`` pool texts, a seeded random subset (the pool's order may follow its labels)."""
    if len(pool) <= n:
        return list(pool["text"])
    rows = np.sort(np.random.default_rng(seed).choice(len(pool), size=n, replace=False))
    return list(pool.select(rows)["text"])


def _positive_rates(pool: Dataset, teacher_map: LabelMap) -> list[float]:
    """Each label's share of the pool that the teacher predicts it for, kept inside (0, 1) so that a quantile
    at it is a cut, not the pool's minimum or maximum."""
    counts, n = np.zeros(len(teacher_map.target_labels)), 0
    for batch in pool.select_columns([PROBS_COLUMN]).iter(batch_size=4096):
        counts += teacher_map.decide(teacher_map.predict_proba(np.asarray(batch[PROBS_COLUMN]))).sum(0)
        n += len(batch[PROBS_COLUMN])
    return np.clip(counts / max(n, 1), 1 / (n + 1), 1 - 1 / (n + 1)).tolist()


def student_thresholds(probs: np.ndarray, rates: list[float]) -> list[float]:
    """Per label, the cut at which the student predicts it on a ``rates[label]`` share of the pool rows whose
    probabilities ``probs`` holds: its teacher's rate (see the module docstring)."""
    probs = np.asarray(probs, dtype=np.float64)
    return [float(np.quantile(probs[:, j], 1 - rate)) for j, rate in enumerate(rates)]


def _round_record(number: int, pseudo: Dataset, labels: list[str], train: Dataset, fitted) -> dict:
    """What a round records; multi-label: counts of each label's positives, micro-F1 and the thresholds."""
    if task_of(pseudo) != MULTI_LABEL:
        per_class = np.bincount(pseudo["label"], minlength=len(labels)).tolist()
        return {
            "round": number,
            "pseudo_labelled": len(pseudo),
            "pseudo_labelled_per_class": dict(zip(labels, per_class)),
            "pseudo_label_accuracy": _pseudo_accuracy(pseudo, train),
            "num_train_epochs": fitted.config.num_train_epochs,
            "train_steps": fitted.trainer.state.global_step,
            "accuracy": fitted.metrics["eval_accuracy"],
            "f1_macro": fitted.metrics["eval_f1_macro"],
        }
    scores = fitted.scores(labels)
    return {
        "round": number,
        "pseudo_labelled": len(pseudo),
        "pseudo_labelled_per_class": dict(zip(labels, label_matrix(pseudo, len(labels)).sum(0).tolist())),
        "pseudo_label_f1_micro": _pseudo_f1(pseudo, train, len(labels)),
        "num_train_epochs": fitted.config.num_train_epochs,
        "train_steps": fitted.trainer.state.global_step,
        "accuracy": scores["accuracy"],
        "f1_macro": scores["f1_macro"],
        "f1_micro": scores["f1_micro"],
        "label_thresholds": scores["label_thresholds"],
    }


def _pseudo_accuracy(pseudo: Dataset, train: Dataset) -> float | None:
    """How often pseudo-labels agree with the pool's own labels, when the pool happens to have them."""
    if len(train) > 100_000:  # a diagnostic only: not worth holding a huge pool's texts in memory
        return None
    gold = dict(zip(train["text"], train["label"]))
    pairs = [(label, gold.get(text)) for text, label in zip(pseudo["text"], pseudo["label"])]
    pairs = [(p, g) for p, g in pairs if g is not None]
    return float(np.mean([p == g for p, g in pairs])) if pairs else None


def _pseudo_f1(pseudo: Dataset, train: Dataset, num_labels: int) -> float | None:
    """Multi-label :func:`_pseudo_accuracy`: micro-F1 of the pseudo-labels against the pool's own labels."""
    if len(train) > 100_000:
        return None
    gold = dict(zip(train["text"], train["label"]))
    pairs = [(label, gold[text]) for text, label in zip(pseudo["text"], pseudo["label"]) if text in gold]
    if not pairs:
        return None
    predicted, truth = np.zeros((2, len(pairs), num_labels), dtype=bool)
    for i, (p, g) in enumerate(pairs):
        predicted[i, p], truth[i, g] = True, True
    return multi_label_scores(predicted, truth)["f1_micro"]
