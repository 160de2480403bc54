"""One generate run: check everything → prompts → batched generation into resumable shards → filters →
a labelled ``Dataset`` (saved to ``<output_dir>/dataset`` by :func:`run_generate`, ready for finetune).
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

from datasets import ClassLabel, Dataset, Features, List, Value, load_from_disk

from .. import __version__
from ..defaults import portable_ref
from ..distributed import partial_state
from ..errors import ConfigError
from ..multi_label import MULTI_LABEL, task_of
from ..output import check_output_dir, run_lock
from ..precision import run_precision
from ..state import atomic_write
from ..token_classification import TOKEN_CLASSIFICATION, tag_names, type_names
from .card import DATASET_CARD_TEMPLATE, write_dataset_card
from .config import GenerateConfig, check_labels, check_task_options
from .filters import Scorer, apply_filters, default_scorer, default_tagger_scorer, saved_tagger_tags, target_of
from .generation import check_generator, generate_rows, has_chat_template, load_generator, load_tokenizer
from .label_pairs import check_pairs, top_label_pairs
from .markup import markup_seed_rows
from .prompts import Prompt, build_prompts, digest, group_seed_examples, load_templates, target_name
from .shards import ROUNDS, ShardStore, batch_seed
from .vllm_engine import check_vllm_run

DATASET_DIR = "dataset"


def dataset_features(labels: Sequence[str], multi_label: bool = False, tokens: bool = False) -> Features:
    """``attributes``: JSON of the style/length/... drawn for the row; ``seed``: the batch's sampling seed;
    ``consistency``: the scorer's probability of the intended label (None if off). Multi-label: ``label`` lists
    the asked label(s), ``consistency`` is the lowest score among them and ``consistency_rank`` the worst rank
    (1 = the scorer's top label). Token classification: ``tokens`` + ``ner_tags`` (BIO over the types
    ``labels``) parsed from ``text``, the markup as written; ``label`` is the type the sentence was asked for and
    ``consistency`` the lowest type share among its entities (:func:`.markup.entity_consistency`)."""
    label = List(ClassLabel(names=list(labels))) if multi_label else ClassLabel(names=list(labels))
    rank = {"consistency_rank": Value("int64")} if multi_label else {}
    tagged = {"tokens": List(Value("string")), "ner_tags": List(ClassLabel(names=tag_names(labels)))} if tokens else {}
    return Features({**tagged, "text": Value("string"), "label": label,
                     **{name: Value("string") for name in ("generator", "template_id", "attributes")},
                     **{name: Value("int64") for name in ("seed", "row_index", "new_tokens")},
                     "consistency": Value("float32"), **rank})  # fmt: skip


def _run_lock(output_dir: str, state):
    """The run lock on the main process (re-entrant: run_generate holds it over generate_dataset)."""
    check_output_dir(output_dir)
    return run_lock(output_dir) if state.is_main_process else contextlib.nullcontext()


def read_seed_examples_file(path: str, tokens: bool = False) -> list[dict]:
    """``[{"text", "label"}]`` from a file; token classification: tagged sentences (any token-data form) as markup
    examples (:func:`~hf_transfer.generate.markup.markup_seed_rows`)."""
    from ..data import read_source

    if tokens:
        from ..errors import DataError
        from ..token_classification import read_token_source

        try:
            splits = read_token_source(path)
        except (DataError, ValueError) as err:
            raise ConfigError(f"Cannot read seed_examples_file {path!r} as tagged sentences: {err}") from None
        return markup_seed_rows(splits["train"] if "train" in splits else next(iter(splits.values())))
    try:
        data = read_source(path)
    except ValueError as err:
        raise ConfigError(f"Cannot read seed_examples_file {path!r}: {err}") from None
    ds = data["train"] if "train" in data else next(iter(data.values()))
    if "text" not in ds.column_names or "label" not in ds.column_names:
        raise ConfigError(f"seed_examples_file {path!r} needs 'text' and 'label' columns, has {ds.column_names}.")
    return [{"text": t, "label": y} for t, y in zip(ds["text"], ds["label"])]


def targets_of(config: GenerateConfig, pairs: Sequence[Sequence[str]] | None = None) -> list[tuple[int, ...]]:
    """What the prompts ask for: each label alone, then (multi-label) each label pair, as label ids."""
    index = {label: i for i, label in enumerate(config.labels)}
    return [(i,) for i in range(len(index))] + [tuple(index[x] for x in pair) for pair in pairs or ()]


def plan(
    config: GenerateConfig, seed_examples=None, pairs: Sequence[Sequence[str]] | None = None
) -> tuple[list[Prompt], dict, Callable[[dict, int], list[Prompt]]]:
    """Everything decided before the generator loads (``ConfigError`` for bad labels, templates or seed examples):
    the first round's prompts, the fingerprint of the raw rows (shards of another one are refused) and
    ``more_prompts(prompts per target, first index)`` for top-up rounds. ``pairs``: label pairs to prompt for
    too (multi-label), ``n_per_label`` each."""
    labels = config.labels
    templates = load_templates(config.template_set)
    if seed_examples is None and config.seed_examples_file:
        seed_examples = read_seed_examples_file(config.seed_examples_file, tokens=bool(config.token_classification))
    grouped = group_seed_examples(seed_examples, labels)
    render = functools.partial(build_prompts, labels, templates=templates, seed=config.seed,
                               descriptions=config.label_descriptions, seed_examples=grouped,
                               n_shots=config.n_shots, targets=targets_of(config, pairs))  # fmt: skip
    fingerprint = {
        **config.generation_fingerprint(),
        "templates_digest": templates.digest(),
        "seed_examples_digest": digest(grouped),
    }
    if pairs:  # chosen from the target data, so they are part of what the rows are
        fingerprint["label_pair_names"] = [list(pair) for pair in pairs]
    if Path(config.templates).is_file():  # a file is known by its content: moved or cloned elsewhere, it resumes
        del fingerprint["templates"]
    return render(config.n_per_label), fingerprint, lambda counts, start: render(counts, start_index=start)


def generate_dataset(
    config: GenerateConfig,
    *,
    eval_texts: Sequence[str] | None = None,
    seed_examples=None,
    scorer: Scorer | None = None,
    generator=None,
    pairs: Sequence[Sequence[str]] | None = None,
) -> Dataset:
    """Generate, filter and save (``<output_dir>/dataset``) a ``Dataset`` of ``text``, ``label`` and provenance
    columns; its stats (:func:`generation_stats`) are JSON in ``info.description``. ``eval_texts`` are protected
    from contamination, ``seed_examples`` shown as few-shot examples, ``scorer`` (``texts -> probs``) replaces the
    default consistency classifier, ``generator`` is a loaded ``(model, tokenizer)``. Multi-label
    (``config.multi_label``): ``label`` lists the asked label(s) and ``pairs`` (label names, e.g. from
    :func:`~hf_transfer.generate.label_pairs.top_label_pairs`) are prompted for too. Several processes split the
    resumable shards; the main process merges them in order, filters and saves; every process returns the result."""
    state = partial_state()
    if config.multi_label is None:  # no target data to take it from: single-label unless asked
        config.multi_label = False
    if config.token_classification is None:
        config.token_classification = False
    check_task_options(config)
    pairs = check_pairs(config, pairs)
    tokenizer = generator[1] if generator is not None else None
    if generator is None:
        check_generator(config.generator)
    if config.resolved_engine == "vllm":
        check_vllm_run(generator, state.num_processes)
    if config.templates == "default" and not (config.multi_label or config.token_classification):
        # a base model (no chat template) continues text: 'default' reads as the completion set
        tokenizer = tokenizer if tokenizer is not None else load_tokenizer(config.generator)  # reused for the model
        config.base_model = not has_chat_template(tokenizer)
    prompts, fingerprint, more_prompts = plan(config, seed_examples, pairs)
    if scorer is None and config.resolved_consistency_threshold() > 0:
        from ..classifier import check_prepare_args

        if not config.token_classification or saved_tagger_tags(config.consistency_model, config.labels) is None:
            labels = tag_names(config.labels) if config.token_classification else config.labels
            check_prepare_args(config.consistency_model, labels, label_descriptions=config.label_descriptions)
    targets = targets_of(config, pairs)
    with _run_lock(config.output_dir, state), run_precision(config.scorer_bf16):  # the generator's is passed
        return _generate_dataset(config, state, prompts, fingerprint, more_prompts, eval_texts, scorer, generator,
                                 targets, tokenizer)  # fmt: skip


def _generate_dataset(
    config, state, prompts, fingerprint, more_prompts, eval_texts, scorer, generator, targets, tokenizer
) -> Dataset:
    store = ShardStore(config.output_dir)
    store.check(fingerprint, config.overwrite)  # every process: all raise together, nobody hangs
    if state.is_main_process:
        store.start(fingerprint, config.overwrite)
    state.wait_for_everyone()

    batches: list[list[Prompt]] = []
    session = {"resumed_batches": 0, "generated_batches": 0, "rounds": 0}
    # the default consistency scorer loads on first use, once for top-up planning and the final filter
    make_scorer = default_tagger_scorer if config.token_classification else default_scorer
    load_scorer = functools.cache(
        lambda: make_scorer(config.labels, config.label_descriptions, config.consistency_model)
    )
    round_prompts = prompts
    for round_index in range(config.max_rounds if config.target_per_label else 1):
        if round_index:
            counts = _plan_top_up(config, store, batches, round_index, eval_texts, scorer, load_scorer, state, targets)
            if not counts:
                break
            round_prompts = more_prompts(counts, batches[-1][-1].index + 1)
        first = len(batches)
        batches += [round_prompts[i : i + config.shard_size] for i in range(0, len(round_prompts), config.shard_size)]
        done = store.done(len(batches))
        todo = [i for i in range(first, len(batches)) if i not in done]
        reused = len(batches) - first - len(todo)
        session["resumed_batches"] += reused
        if reused and state.is_main_process:
            print(f"Resuming {config.output_dir}: reused {reused} of {len(batches) - first} shards of round "
                  f"{round_index + 1}, generating {len(todo)}.", file=sys.stderr, flush=True)  # fmt: skip
        session["generated_batches"] += len(todo)
        session["rounds"] += 1
        if todo:
            if generator is None:
                generator = load_generator(config.generator, bf16=config.use_bf16, tokenizer=tokenizer,
                                           engine=config.resolved_engine, batch_size=config.batch_size,
                                           seed=config.seed)  # fmt: skip
            _generate(config, store, batches, todo, *generator, state)
        state.wait_for_everyone()

    dataset_dir = Path(config.output_dir) / DATASET_DIR
    if state.is_main_process:  # merge the shards in batch order and filter once, on the main process
        dataset = _filter_and_build(config, store.read(len(batches)), eval_texts, scorer, session, load_scorer,
                                    targets)  # fmt: skip
        dataset.save_to_disk(str(dataset_dir))
    state.wait_for_everyone()
    if not state.is_main_process:
        dataset = load_from_disk(str(dataset_dir))
    return dataset


def _filter(config: GenerateConfig, rows: list[dict], eval_texts, scorer, load_scorer, final: bool):
    """Every filter; ``final=False`` (top-up planning) leaves out the per-label cap and balancing."""
    return apply_filters(
        rows, min_words=config.min_words, max_words=config.max_words, near_dup_threshold=config.near_dup_threshold,
        consistency_threshold=config.resolved_consistency_threshold(), contamination_ngram=config.contamination_ngram,
        eval_texts=eval_texts, scorer=scorer, load_scorer=load_scorer, balance=config.balance if final else "none",
        seed=config.seed, cap_per_label=config.target_per_label if final else None,
        consistency_top_k=config.resolved_consistency_top_k() if config.multi_label else None,
        markup_types=config.labels if config.token_classification else None,
    )  # fmt: skip


def _plan_top_up(config, store: ShardStore, batches, round_index: int, eval_texts, scorer, load_scorer, state,
                 targets):  # fmt: skip
    """Prompts per target (label, or label pair) for top-up round ``round_index``: what each short one still
    needs, divided by its keep rate so far (floor 10%), plus 20%. Planned once on the main process and recorded in
    ``shards/rounds.json``, so a resumed run (even one re-filtering with other settings) replays the same
    rounds. ``{}`` means every label has ``target_per_label`` rows: stop."""
    record = store.shard_dir / ROUNDS
    if state.is_main_process:
        planned = json.loads(record.read_text()) if record.is_file() else []
        if len(planned) < round_index:
            rows = store.read(len(batches))
            kept, _ = _filter(config, rows, eval_texts, scorer, load_scorer, final=False)
            counts = {}
            for target in targets:
                made = sum(target_of(r) == target for r in rows)
                have = sum(target_of(r) == target for r in kept)
                if have < config.target_per_label:
                    rate = max(have / made if made else 0.0, 0.1)
                    counts[target_name(config.labels, target)] = math.ceil((config.target_per_label - have) / rate
                                                                           * 1.2)  # fmt: skip
            planned.append(counts)
            atomic_write(record, json.dumps(planned, indent=2))
    state.wait_for_everyone()  # every process reads the recorded plan
    return json.loads(record.read_text())[round_index - 1]


def _filter_and_build(
    config: GenerateConfig, rows: list[dict], eval_texts, scorer, session: dict, load_scorer, targets
) -> Dataset:
    labels = config.labels
    kept, stats = _filter(config, rows, eval_texts, scorer, load_scorer, final=True)
    tokens = sum(r["new_tokens"] for r in rows)
    seconds = sum({r["batch"]: r["batch_seconds"] for r in rows}.values())
    stats.update(session, new_tokens=tokens, generation_seconds=seconds,
                 tokens_per_second=tokens / seconds if seconds else None, batch_size=config.batch_size,
                 continuous_batching=config.continuous_batching, engine=config.resolved_engine,
                 dtype="bfloat16" if config.use_bf16 else "float32",
                 scorer_dtype="bfloat16" if config.scorer_bf16 else "float32")  # fmt: skip
    asked = [target_of(r) for r in kept]
    stats["kept_per_label"] = {label: sum(i in ids for ids in asked) for i, label in enumerate(labels)}
    if config.multi_label:
        stats["kept_per_target"] = {target_name(labels, t): sum(ids == t for ids in asked) for t in targets}
        stats["consistency_top_k"] = config.resolved_consistency_top_k()
    stats["consistency_threshold"] = config.resolved_consistency_threshold()
    columns = {
        "text": [r["text"] for r in kept],
        "label": [list(ids) for ids in asked] if config.multi_label else [r["label_id"] for r in kept],
        "generator": [portable_ref(r["generator"]) for r in kept],  # an alias or Hub id, never a local path
        "template_id": [r["template_id"] for r in kept],
        "attributes": [json.dumps(r["attributes"], sort_keys=True) for r in kept],
        "seed": [r["seed"] for r in kept],
        "row_index": [r["index"] for r in kept],
        "new_tokens": [r["new_tokens"] for r in kept],
        "consistency": [r["consistency"] for r in kept],
    }
    if config.multi_label:
        columns["consistency_rank"] = [r.get("consistency_rank") for r in kept]
    if config.token_classification:  # the words and tags parsed from the markup, which `text` keeps as written
        columns = {"tokens": [r["tokens"] for r in kept], "ner_tags": [r["ner_tags"] for r in kept], **columns,
                   "text": [r["markup"] for r in kept]}  # fmt: skip
        tag_id = {tag: i for i, tag in enumerate(tag_names(labels))}
        columns["ner_tags"] = [[tag_id[t] for t in row] for row in columns["ner_tags"]]
    features = dataset_features(labels, config.multi_label, bool(config.token_classification))
    dataset = Dataset.from_dict(columns, features=features)  # columnar: works with 0 rows too
    dataset.info.description = json.dumps(stats)
    return dataset


def generation_stats(dataset: Dataset) -> dict:
    """The stats ``generate_dataset`` attached to a dataset (also after ``save_to_disk``/``load_from_disk``)."""
    return json.loads(dataset.info.description or "{}")


def _generate(config, store: ShardStore, batches, todo, model, tokenizer, state) -> None:
    from tqdm.auto import tqdm

    total = sum(len(b) for b in batches)
    remaining = sum(len(batches[i]) for i in todo)
    options = ("batch_size", "continuous_batching", "max_new_tokens", "temperature", "top_p", "top_k",
               "stop_at_newline")  # fmt: skip
    kwargs = {name: getattr(config, name) for name in options}
    with state.split_between_processes(todo) as mine:
        bar = tqdm(total=total, initial=total - remaining, unit="row", desc=f"Generating ({config.generator})",
                   disable=not state.is_main_process)  # fmt: skip
        for batch_index in mine:
            batch = batches[batch_index]
            seed = batch_seed(config.seed, batch_index)
            out = generate_rows(model, tokenizer, [p.text for p in batch], seed=seed, bf16=config.use_bf16,
                                engine=config.resolved_engine, **kwargs)  # fmt: skip
            store.write(batch_index, [
                {"index": p.index, "batch": batch_index, "label": p.label, "label_id": p.label_id,
                 **({"label_ids": list(p.label_ids)} if config.multi_label else {}),
                 "template_id": p.template_id, "attributes": p.attributes, "prompt": p.text, "raw_text": text,
                 "seed": seed, "new_tokens": n, "batch_seconds": out.seconds, "generator": config.generator}
                for p, text, n in zip(batch, out.texts, out.new_tokens)
            ])  # fmt: skip
            # every process advances by its own rows; the main process's bar shows its share x processes
            bar.update(len(batch) * state.num_processes)
            bar.set_postfix(tok_s=f"{sum(out.new_tokens) / max(out.seconds, 1e-9):.0f}")
        bar.close()


def _sentence_target(config: GenerateConfig, data_args, train, eval_ds, data_labels):
    """From sentence-classification target data: the task (multi-label or not), labels, eval texts to protect,
    seed examples and (multi-label) label pairs."""
    pairs, seed_examples = None, None
    multi = task_of(train) == MULTI_LABEL
    if config.token_classification:
        raise ConfigError(
            f"token_classification=True, but the target {data_args.dataset!r} is sentence-classification data "
            "(text + label). Give token data (tokens + ner_tags) or leave token_classification unset."
        )
    config.token_classification = False
    if config.multi_label is not None and config.multi_label != multi:
        raise ConfigError(
            f"multi_label={config.multi_label}, but the target {data_args.dataset!r} is "
            f"{'multi' if multi else 'single'}-label: rows generated for it would not train it. Leave "
            "multi_label unset (it follows the target data), or generate without --dataset (--dataset none)."
        )
    config.multi_label = multi
    if config.target_labels is None:
        config.target_labels = data_labels
    eval_texts = list(eval_ds["text"])
    if data_args.n_per_class:
        seed_examples = train
    if multi and config.label_pairs:
        if not len(train):
            raise ConfigError(
                f"label_pairs={config.label_pairs} picks the label pairs that co-occur most in the target's "
                "labelled train rows, but n_per_class=0 leaves none. Set n_per_class (e.g. 8) or leave it unset "
                "(the whole train split), or set label_pairs=0."
            )
        pairs = top_label_pairs(train, config.label_pairs)
        if len(pairs) < config.label_pairs:
            warnings.warn(
                f"label_pairs={config.label_pairs}, but the target's labelled train rows hold only {len(pairs)} "
                "label pair(s) that occur together; prompting for those.",
                stacklevel=2,
            )
    return eval_texts, seed_examples, pairs


def _token_target(config: GenerateConfig, data_args, train, eval_ds):
    """From token-classification target data: a token run over its entity types; eval sentences (as words) are
    protected from contamination and, with ``n_per_class``, the sampled sentences are the markup examples."""
    if config.multi_label:
        raise ConfigError(
            f"multi_label=True, but the target {data_args.dataset!r} is token-classification (NER) data: a sentence "
            "there holds several entity types already. Drop multi_label."
        )
    if config.token_classification is False:
        raise ConfigError(
            f"token_classification=False, but the target {data_args.dataset!r} is token-classification data: rows "
            "generated as labelled sentences would not train its tagger. Leave token_classification unset."
        )
    config.multi_label, config.token_classification = False, True
    if config.target_labels is None:
        config.target_labels = type_names(train)
    eval_texts = [" ".join(tokens) for tokens in eval_ds["tokens"]]
    seed_examples = None
    if data_args.n_per_class:
        names = train.features["ner_tags"].feature.names
        rows = zip(train["tokens"], train["ner_tags"])
        seed_examples = markup_seed_rows([{"tokens": t, "ner_tags": [names[i] for i in tags]} for t, tags in rows])
    return eval_texts, seed_examples


def run_generate(config: GenerateConfig, data_args=None) -> dict:
    """Generate the labelled dataset (``<output_dir>/dataset``, for finetune's ``--dataset``) + ``results.json``.
    The target data of ``data_args``, if any, supplies the labels when ``target_labels`` is unset, its eval split
    is protected from contamination, and with ``n_per_class`` its train sample gives the few-shot examples. A
    multi-label target makes a multi-label run, whose ``label_pairs`` come from its labelled train rows."""
    start = time.perf_counter()
    eval_texts, seed_examples, pairs = None, None, None
    if data_args is not None:
        data_args = data_args.seeded(config.seed)
    if data_args is not None and str(data_args.dataset).lower() not in ("", "none"):
        from ..config import DataArguments
        from ..data import load_data_args

        labels = config.target_labels or data_args.labels
        train, eval_ds, data_labels = load_data_args(DataArguments(**{**data_args.__dict__, "labels": labels}))
        if task_of(train) == TOKEN_CLASSIFICATION:
            eval_texts, seed_examples = _token_target(config, data_args, train, eval_ds)
        else:
            eval_texts, seed_examples, pairs = _sentence_target(config, data_args, train, eval_ds, data_labels)
    else:
        if config.target_labels is None and data_args is not None and data_args.labels:
            config.target_labels = list(data_args.labels)
        if data_args is not None and data_args.task == TOKEN_CLASSIFICATION and config.token_classification is None:
            config.token_classification = True  # --task without target data: --labels are the entity types
        if config.multi_label is None and data_args is not None and data_args.task != "auto":
            config.multi_label = data_args.task == MULTI_LABEL  # --task without target data
    if config.multi_label is None:
        config.multi_label = False
    if config.token_classification is None:
        config.token_classification = False
    check_task_options(config)
    if config.target_labels is not None:
        check_labels(config.target_labels, config.label_descriptions)
    from ..hub import PushError, check_publish, push_dataset, push_target

    check_publish(config, DATASET_CARD_TEMPLATE)  # push settings (repo id, offline), card template: before generating
    state = partial_state()
    with _run_lock(config.output_dir, state):  # held until results.json is written
        dataset = generate_dataset(config, eval_texts=eval_texts, seed_examples=seed_examples, pairs=pairs)
        stats = generation_stats(dataset)
        out = Path(config.output_dir)
        results = {
            "strategy": "generate",
            "generator": portable_ref(config.generator),
            "labels": config.labels,
            "multi_label": config.multi_label,
            "token_classification": config.token_classification,
            "label_pairs": [list(pair) for pair in pairs or ()],
            "n_per_label": config.n_per_label,
            "target_per_label": config.target_per_label,
            "n_rows": len(dataset),
            "dataset_path": DATASET_DIR,  # relative to output_dir, where results.json is: the folder stays portable
            "dataset": portable_ref(getattr(data_args, "dataset", None)),
            "n_eval_texts_checked": len(eval_texts or []),
            "n_seed_examples": len(seed_examples) if seed_examples is not None else 0,
            "seed": config.seed,
            "tokens_per_second": stats.get("tokens_per_second"),
            "labels_without_rows": [label for label, n in stats.get("kept_per_label", {}).items() if n == 0],
            "stats": stats,
            "wall_seconds": time.perf_counter() - start,
            "num_processes": state.num_processes,
            "hf_transfer_version": __version__,
        }
        if results["labels_without_rows"]:
            warnings.warn(
                f"generate kept no rows for label(s) {results['labels_without_rows']}: a model trained on this "
                "dataset alone never predicts them. Raise n_per_label or target_per_label, lower the filters "
                "(consistency_threshold, min_words), or describe those labels (label_descriptions).",
                stacklevel=2,
            )
        if state.is_main_process:
            atomic_write(out / "results.json", json.dumps(results, indent=2))
            target = push_target(config, repo_type="dataset")
            card = write_dataset_card(
                out / DATASET_DIR, dataset, config, stats, data_args=data_args,
                n_seed_examples=results["n_seed_examples"], repo_id=target.repo_id if target else None,
            )  # fmt: skip
            if target is not None:
                try:
                    results["hub_dataset_id"] = push_dataset(dataset, card, target, staging_dir=out / "hub_upload")
                except Exception as err:  # noqa: BLE001 - the saved dataset is what the user needs to know about
                    raise PushError.after(err, out / DATASET_DIR, target, results) from err
    state.wait_for_everyone()
    return results
