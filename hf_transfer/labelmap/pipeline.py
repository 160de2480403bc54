"""One labelmap run: source model → label map → zero-shot → pseudo-labels → distilled student.

Everything that can be checked without weights (data, map names, thresholds, the source model's
``id2label``) is checked first; the source model then runs once over the eval split and the pool.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import torch
from accelerate import PartialState
from datasets import Dataset, concatenate_datasets
from transformers import set_seed

from ..classifier import check_prepare_args, export_model, prepare
from ..config import DataArguments
from ..data import load_data_args, readable_label, sample_per_class, tokenize
from ..defaults import portable_ref
from ..errors import ConfigError
from ..inference import embed_texts
from ..metrics import classification_scores
from ..multi_label import MULTI_LABEL, task_of
from ..output import wants_resume
from ..precision import resolve_bf16
from ..run import fit, run_training
from ..trainer import SOFT_TARGETS
from .config import LabelMapConfig
from .head import transfer_head
from .mapping import LabelMap
from .predict import PROBS_COLUMN, add_source_probs, load_source, source_config, source_label_names
from .pseudo import pseudo_label
from .result import LabelMapResult
from .state import LabelMapState, run_fingerprint


def build_label_map(
    method: str,
    config: LabelMapConfig,
    source_labels: list[str],
    target_labels: list[str],
    gold: Dataset | None = None,
) -> LabelMap:
    if method == "explicit":
        return LabelMap.from_dict(
            config.label_map, source_labels, target_labels, allow_unreachable=config.allow_unreachable
        )
    if method == "identity":
        missing = [t for t in target_labels if t not in source_labels]
        if missing:
            raise ConfigError(
                f"map_method='identity' needs the source model to have every target label; it lacks {missing} "
                f"(its labels: {source_labels}). Give label_map, or use map_method 'learned' or 'names'."
            )
        return dataclasses.replace(
            LabelMap.from_dict({t: t for t in target_labels}, source_labels, target_labels), method="identity"
        )
    if method == "learned":
        if gold is None or len(gold) == 0:
            raise ConfigError("map_method='learned' needs labelled target examples: set n_per_class > 0.")
        return LabelMap.learn(np.asarray(gold[PROBS_COLUMN]), gold["label"], source_labels, target_labels)
    encoder, tokenizer = prepare(config.model_name_or_path, target_labels, head_init="random", method="head")
    with torch.no_grad():
        source_emb = embed_texts(encoder, tokenizer, [readable_label(s) for s in source_labels]).numpy()
        target_emb = embed_texts(encoder, tokenizer, [readable_label(t) for t in target_labels]).numpy()
    label_map = LabelMap.from_names(source_emb, target_emb, source_labels, target_labels)
    label_map.check_reachable(config.allow_unreachable)
    return label_map


def evaluate_through_map(eval_ds: Dataset, label_map: LabelMap) -> dict[str, float]:
    probs = label_map.predict_proba(np.asarray(eval_ds[PROBS_COLUMN]))
    return classification_scores(probs.argmax(1), np.asarray(eval_ds["label"]), len(label_map.target_labels))


def _training_rows(pseudo: Dataset, gold: Dataset, num_labels: int) -> Dataset:
    """Pseudo-labelled rows (soft labels from the teacher) plus gold rows (one-hot soft labels)."""
    parts = [pseudo.select_columns(["text", "label", "soft_label"]).rename_column("soft_label", SOFT_TARGETS)]
    if len(gold):
        eye = np.eye(num_labels, dtype=np.float32)
        gold_rows = gold.select_columns(["text", "label"]).map(
            lambda b: {SOFT_TARGETS: eye[np.asarray(b["label"])]}, batched=True, desc="One-hot gold labels"
        )
        parts.append(gold_rows.cast(parts[0].features))
    return concatenate_datasets(parts)


def _student(config: LabelMapConfig, labels, source, label_map):
    if config.init_from_source:
        return transfer_head(source, label_map), None
    return prepare(config, labels)


def run_labelmap(config: LabelMapConfig, data_args: DataArguments) -> LabelMapResult:
    """Map → zero-shot → pseudo-label → distil (``rounds`` times); saves the student and ``results.json``."""
    if data_args.extra_train:
        raise ConfigError(
            "extra_train is a finetune option; labelmap trains on pseudo-labels of the target train split. "
            "Add the rows to the target data, or train on them with `hf-transfer finetune --extra_train ...`."
        )
    train, eval_ds, labels = load_data_args(
        DataArguments(**{**data_args.__dict__, "n_per_class": None})  # the whole train split is the pool
    )
    if task_of(train) == MULTI_LABEL:
        raise ConfigError(
            f"{data_args.dataset!r} is multi-label; labelmap maps onto single-label targets so far. Train on it "
            "with `hf-transfer finetune` (zero-shot with n_per_class 0, or few labels per label)."
        )
    gold = sample_per_class(train, data_args.n_per_class, seed=data_args.sample_seed) if data_args.n_per_class \
        else train.select([])  # fmt: skip
    # Everything checkable without weights, before any model loads.
    source_labels = source_label_names(source_config(config.source_model))
    method = config.resolved_map_method(data_args.n_per_class, source_labels, labels)
    if method in ("explicit", "identity"):
        build_label_map(method, config, source_labels, labels)
    if not config.init_from_source:
        check_prepare_args(config, labels)
    pool = train.select_columns(["text"])
    if config.max_pool_samples is not None:
        pool = pool.select(range(min(config.max_pool_samples, len(pool))))
    return run_training(
        config,
        data_args,
        lambda: _map_and_distil(config, data_args, train, eval_ds, gold, pool, labels, source_labels, method),
        weights_from=config.source_model if config.init_from_source else config.model_name_or_path,
    )


def _map_and_distil(config: LabelMapConfig, data_args, train, eval_ds, gold, pool, labels, source_labels, method):
    """Source predictions → map → zero-shot → ``rounds`` of pseudo-label + distil, resumable by round."""
    state = None
    if config.output_dir:  # what a stopped run computed; kept, or cleared when not resuming
        fingerprint = run_fingerprint(config, data_args, PartialState().num_processes)
        state = LabelMapState(config.output_dir, fingerprint, resume=wants_resume(config),
                              is_main=PartialState().is_main_process)  # fmt: skip
        state.start()
        PartialState().wait_for_everyone()

    source, source_tok, _ = load_source(config.source_model)
    bf16 = resolve_bf16(config.inference_bf16)
    infer = dict(batch_size=config.inference_batch_size, max_length=config.max_length, bf16=bf16)
    eval_ds = add_source_probs(eval_ds, source, source_tok, desc="Source predictions (eval)", **infer)
    if len(gold):
        gold = add_source_probs(gold, source, source_tok, desc="Source predictions (labelled)", **infer)
    label_map = build_label_map(method, config, source_labels, labels, gold if len(gold) else None)
    zero_shot = evaluate_through_map(eval_ds, label_map)

    saved = state.load_pool(pool, 1, PROBS_COLUMN) if state else None
    if saved:
        pool, pool_seconds = saved
    else:
        pool_start = time.perf_counter()
        pool = add_source_probs(pool, source, source_tok, desc="Source predictions (pool)", **infer)
        pool_seconds = time.perf_counter() - pool_start
        _save_pool(state, pool, 1, pool_seconds)
    identity = LabelMap(labels, labels, np.eye(len(labels)), method="identity")
    teacher_map, rounds = label_map, []
    eval_rows = eval_ds.select_columns(["text", "label"])
    for round_index in range(config.rounds):
        number, last = round_index + 1, round_index + 1 == config.rounds
        done = state.load_round(number) if state and not last else None
        relabelled = state.load_pool(pool, number + 1, PROBS_COLUMN) if done else None
        if relabelled:  # finished before the run was stopped: its record and the re-labelled pool were saved
            rounds.append(done)
            pool, teacher_map = relabelled[0], identity
            continue
        pseudo = pseudo_label(pool, teacher_map, threshold=config.threshold, top_k=config.top_k)
        set_seed(config.seed)  # the same student whether or not earlier rounds ran in this process
        student, student_tok = _student(config, labels, source, label_map)
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
        rounds.append(
            {
                "round": number,
                "pseudo_labelled": len(pseudo),
                "pseudo_labelled_per_class": dict(
                    zip(labels, np.bincount(pseudo["label"], minlength=len(labels)).tolist())
                ),
                "pseudo_label_accuracy": _pseudo_accuracy(pseudo, train),
                "num_train_epochs": fitted.config.num_train_epochs,
                "train_steps": fitted.trainer.state.global_step,
                "accuracy": fitted.metrics["eval_accuracy"],
                "f1_macro": fitted.metrics["eval_f1_macro"],
            }
        )
        if not last:  # the student becomes the teacher: re-label the pool
            student = export_model(fitted.trainer.model)
            relabel_start = time.perf_counter()
            pool = add_source_probs(
                pool.remove_columns(PROBS_COLUMN), student, student_tok, desc="Student re-labels the pool", **infer
            )
            _save_pool(state, pool, number + 1, time.perf_counter() - relabel_start)
            if state:
                state.save_round(rounds[-1])  # after the pool it needs: a saved record means both are there
            teacher_map = identity
    result = LabelMapResult(
        strategy="labelmap",
        **fitted.result_fields(data_args, labels),
        source_model=portable_ref(config.source_model),
        init_from_source=config.init_from_source,
        map_method=method,
        label_map=label_map.as_dict(),
        n_per_class=data_args.n_per_class or 0,
        n_train=len(rows),
        n_pool=len(pool),
        threshold=config.threshold,
        top_k=config.top_k,
        zero_shot_accuracy=zero_shot["accuracy"],
        zero_shot_f1_macro=zero_shot["f1_macro"],
        rounds=rounds,
        pool_seconds=pool_seconds,
        pool_rows_per_second=len(pool) / pool_seconds if pool_seconds else None,
    )
    if config.init_from_source:
        result.model = "source (mapped head)"
    fitted.extra_files["label_map.json"] = label_map.to_json()
    return result, fitted


def _save_pool(state: LabelMapState | None, pool: Dataset, round_number: int, seconds: float) -> None:
    if state:
        state.save_pool(pool, round_number, PROBS_COLUMN, seconds)
        PartialState().wait_for_everyone()


def _pseudo_accuracy(pseudo: Dataset, train: Dataset) -> float | None:
    """How often pseudo-labels agree with the pool's own labels, when the pool happens to have them."""
    if len(train) > 100_000:  # a diagnostic only: not worth holding a huge pool's texts in memory
        return None
    gold = dict(zip(train["text"], train["label"]))
    pairs = [(label, gold.get(text)) for text, label in zip(pseudo["text"], pseudo["label"])]
    pairs = [(p, g) for p, g in pairs if g is not None]
    return float(np.mean([p == g for p, g in pairs])) if pairs else None
