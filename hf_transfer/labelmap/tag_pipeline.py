"""One labelmap run on a token-classification target: source tagger → tag-set map → zero-shot → pseudo-labelled
sentences → a student tagger distilled per token (the tag-level counterpart of :mod:`.pipeline`, whose state,
rounds and result it shares)."""

from __future__ import annotations

import time

import numpy as np
from datasets import Dataset, concatenate_datasets
from transformers import set_seed

from ..classifier import check_prepare_args, export_model, prepare
from ..config import DataArguments
from ..errors import ConfigError
from ..inference import embed_texts
from ..precision import resolve_bf16
from ..run import fit, run_training
from ..token_classification import TOKEN_CLASSIFICATION, entities, sample_per_type, tokenize_tokens, word_type_rates
from .config import LabelMapConfig
from .head import transfer_head
from .mapping import LabelMap
from .predict import PROBS_COLUMN, source_config
from .result import LabelMapResult
from .state import open_state, pool_with_probs
from .tagging import (
    EntityTypeResolver,
    SoftTagCollator,
    add_word_probs,
    evaluate_tags,
    gold_soft_tags,
    learn_tag_map,
    load_source_tagger,
    map_words,
    pseudo_label_f1,
    pseudo_label_sentences,
    soft_rows,
    source_tags,
    tag_label_map,
    tag_types,
    type_map_of,
)

CALIBRATION_SENTENCES = 2000  # pool sentences that set a fresh student's type biases


def resolved_tag_map_method(config: LabelMapConfig, n_per_class, source: list[str], target: list[str]) -> str:
    method = config.map_method
    if method == "names":
        raise ConfigError(
            "map_method='names' is not available for token classification: give label_map between entity types "
            "(e.g. {'person': ['person', 'politician']}), or labelled sentences (n_per_class) for 'learned'."
        )
    if method != "auto":
        return method
    if config.label_map:
        return "explicit"
    if n_per_class:
        return "learned"
    if set(tag_types(target)) <= set(tag_types(source)):
        return "identity"
    raise ConfigError(
        f"No way to map the source tagger's types {tag_types(source)} onto the target's {tag_types(target)}: give "
        "label_map between entity types, or labelled sentences (n_per_class > 0) to learn it from."
    )


def run_labelmap_tags(config: LabelMapConfig, data_args: DataArguments, train: Dataset, eval_ds: Dataset,
                      tags: list[str]) -> LabelMapResult:  # fmt: skip
    """:func:`~.pipeline.run_labelmap` for a token-classification target; checks all it can before weights load."""
    source = source_tags(source_config(config.source_model))
    method = resolved_tag_map_method(config, data_args.n_per_class, source, tags)
    if method in ("explicit", "identity"):
        tag_label_map(config.label_map, source, tags, method=method, allow_unreachable=config.allow_unreachable)
    if not config.init_from_source:
        check_prepare_args(config, tags)
    n = data_args.n_per_class
    gold = sample_per_type(train, n, seed=data_args.sample_seed) if n else train.select([])
    pool = train.select_columns(["tokens", "ner_tags"])  # its tags are read only to report pseudo-label quality
    if config.max_pool_samples is not None:
        pool = pool.select(range(min(config.max_pool_samples, len(pool))))
    return run_training(
        config,
        data_args,
        lambda: _map_and_distil(config, data_args, eval_ds, gold, pool, tags, source, method),
        weights_from=config.source_model if config.init_from_source else config.model_name_or_path,
    )


def _map_and_distil(config: LabelMapConfig, data_args, eval_ds, gold, pool, tags, source, method):
    state = open_state(config, data_args)  # what a stopped run computed: kept, or cleared when not resuming
    teacher, teacher_tok, _ = load_source_tagger(config.source_model)
    infer = dict(batch_size=config.inference_batch_size, max_length=config.max_length,
                 bf16=resolve_bf16(config.inference_bf16))  # fmt: skip
    eval_probs = add_word_probs(eval_ds, teacher, teacher_tok, desc="Source predictions (eval)", **infer)
    if method == "learned":
        gold_probs = add_word_probs(gold, teacher, teacher_tok, desc="Source predictions (labelled)", **infer)
        label_map = learn_tag_map(gold_probs, source, tags)
    else:
        label_map = tag_label_map(config.label_map, source, tags, method=method,
                                  allow_unreachable=config.allow_unreachable)  # fmt: skip
    reachable = sorted({t[2:] for t in np.asarray(tags)[label_map.matrix.sum(0) > 0] if t != "O"})
    resolver = _resolver(config, label_map) if method == "explicit" and config.one_to_many == "descriptions" else None
    predicted = [p.argmax(1) for p in map_words(eval_probs, label_map, resolver)]
    zero_shot = evaluate_tags(predicted, eval_probs, reachable)

    pool, pool_seconds = pool_with_probs(
        state, pool, lambda rows: add_word_probs(rows, teacher, teacher_tok, desc="Source predictions (pool)", **infer)
    )
    identity = LabelMap(tags, tags, np.eye(len(tags)), method="identity")  # rounds > 1: the student teaches
    teacher_map, rounds, eval_rows = label_map, [], None
    for index in range(config.rounds):
        number, last = index + 1, index + 1 == config.rounds
        done = state.load_round(number) if state and not last else None
        relabelled = state.load_pool(pool, number + 1, PROBS_COLUMN) if done else None
        if relabelled:  # finished before the run was stopped: its record and the re-labelled pool were saved
            rounds.append(done)
            pool, teacher_map = relabelled[0], identity
            continue
        resolve = resolver if teacher_map is label_map else None  # a student teaching later rounds: its own tags
        pseudo = pseudo_label_sentences(pool, teacher_map, threshold=config.threshold, top_k=config.top_k,
                                        resolver=resolve)  # fmt: skip
        set_seed(config.seed)
        if config.init_from_source:
            student, student_tok = transfer_head(teacher, label_map, max_length=config.max_length), teacher_tok
        else:
            sample = _sample(pool, CALIBRATION_SENTENCES, config.seed)
            teacher_tags = [p.argmax(1) for p in map_words(sample, teacher_map, resolve)]
            sentences = [list(s) for s in _sample(pool, CALIBRATION_SENTENCES, config.seed)["tokens"]]
            calibration = (sentences, word_type_rates(teacher_tags, len(tag_types(tags))))
            student, student_tok = prepare(config, tags, task=TOKEN_CLASSIFICATION, calibrate=calibration)
        rows = pseudo.select_columns(["tokens", "ner_tags", "soft_tags"])
        if len(gold):
            rows = concatenate_datasets([rows, gold_soft_tags(gold).cast(rows.features)])
        eval_rows = tokenize_tokens(eval_ds, student_tok, config.max_length, "first")
        fitted = fit(
            student,
            student_tok,
            soft_rows(rows, student_tok, config.max_length, config.subword_labels),
            eval_rows,
            config.for_tagger(),
            num_labels=len(tags),
            soft_weight=config.distill_weight,
            temperature=config.temperature,
            collator=SoftTagCollator(student_tok),
            checkpoint_dir=state.round_dir(number) if state else None,
        )
        rounds.append(_round_record(number, pseudo, pool, tags, fitted))
        if not last:
            start = time.perf_counter()
            pool = add_word_probs(pool.remove_columns(PROBS_COLUMN), export_model(fitted.trainer.model), student_tok,
                                  desc="Student re-labels the pool", **infer)  # fmt: skip
            if state:
                state.save_pool(pool, number + 1, PROBS_COLUMN, time.perf_counter() - start)
                state.save_round(rounds[-1])
            teacher_map = identity
    result = LabelMapResult.from_run(
        fitted, data_args, tags, config, map_method=method, label_map=type_map_of(label_map), n_train=len(rows),
        n_pool=len(pool), zero_shot=zero_shot, rounds=rounds, pool_seconds=pool_seconds,
    )  # fmt: skip
    result.extra["zero_shot_types"] = reachable
    fitted.extra_files["label_map.json"] = label_map.to_json()
    return result, fitted


def _resolver(config: LabelMapConfig, label_map: LabelMap) -> EntityTypeResolver | None:
    """The one-to-many resolver, embedding with the student's encoder (``model_name_or_path``)."""
    import torch

    encoder, tokenizer = prepare(config.model_name_or_path, ["a", "b"], head_init="random", method="head")

    def embed(texts: list[str]) -> np.ndarray:
        with torch.no_grad():
            return torch.nn.functional.normalize(embed_texts(encoder, tokenizer, texts), dim=-1).numpy()

    return EntityTypeResolver.for_map(label_map, embed, config.label_descriptions or {}, config.head_init_scale)


def _sample(pool: Dataset, n: int, seed: int) -> Dataset:
    if len(pool) <= n:
        return pool
    return pool.select(np.sort(np.random.default_rng(seed).choice(len(pool), size=n, replace=False)).tolist())


def _round_record(number: int, pseudo: Dataset, pool: Dataset, tags: list[str], fitted) -> dict:
    scores = fitted.scores(tags)
    per_type = dict.fromkeys(tag_types(tags), 0)
    for sentence in pseudo["ner_tags"]:
        for kind in {k for k, *_ in entities([tags[t] for t in sentence])}:
            per_type[kind] += 1
    return {
        "round": number,
        "pseudo_labelled": len(pseudo),
        "pseudo_labelled_per_class": per_type,  # sentences holding each type
        "pseudo_label_f1_micro": pseudo_label_f1(pseudo, pool),
        "num_train_epochs": fitted.config.num_train_epochs,
        "train_steps": fitted.trainer.state.global_step,
        "accuracy": scores["accuracy"],
        "f1_macro": scores["f1_macro"],
        "f1_micro": scores["f1_micro"],
    }
