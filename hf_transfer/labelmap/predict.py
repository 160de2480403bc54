"""Run a source classifier over target text, through ``datasets.map`` so a pool larger than memory streams
through Arrow files; under ``accelerate launch`` each process takes a contiguous shard."""

from __future__ import annotations

import os
import re
import tempfile
import time

import torch
from datasets import Dataset, Value, concatenate_datasets, load_from_disk
from datasets import Sequence as SequenceFeature
from transformers import AutoModelForSequenceClassification, AutoTokenizer, PreTrainedModel

from ..defaults import resolve_model
from ..errors import ConfigError
from ..inference import predict_proba

PROBS_COLUMN = "source_probs"


def source_label_names(config) -> list[str]:
    """The source model's label names; refuses models whose ``id2label`` is missing or only placeholders."""
    id2label = getattr(config, "id2label", None) or {}
    names = [str(id2label[i]) for i in sorted(int(k) for k in id2label)] if id2label else []
    if not names or all(re.fullmatch(r"LABEL_\d+", n) for n in names):
        raise ConfigError(
            "The source model has no id2label naming its classes (found "
            f"{names or 'none'}), so its labels cannot be mapped. Set config.id2label/label2id on the model "
            "(or train it with hf_transfer, which does) and save it again."
        )
    return names


def source_config(name_or_path: str):
    """The source model's config (no weights), or a ConfigError that says what to do when it is not there."""
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(resolve_model(name_or_path))
    except (OSError, ValueError) as err:
        raise ConfigError(
            f"Cannot load source model {name_or_path!r} ({str(err).splitlines()[0]}). It must be a folder holding a "
            f"trained classifier or a Hub id reachable from here: train it first (a recipe's header names the "
            f"command, e.g. `hf-transfer finetune --config recipes/sst2/full-all.yaml`) or fix --source_model."
        ) from None


def load_source(name_or_path: str, dtype: torch.dtype | None = None):
    """Source classifier, tokenizer and label names; fails before loading weights without ``id2label``."""
    path = resolve_model(name_or_path)
    labels = source_label_names(source_config(name_or_path))
    kwargs = {"dtype": dtype} if dtype is not None else {}
    model = AutoModelForSequenceClassification.from_pretrained(path, **kwargs).eval()
    return model, AutoTokenizer.from_pretrained(path), labels


def add_source_probs(
    dataset: Dataset,
    model: PreTrainedModel,
    tokenizer,
    *,
    batch_size: int = 64,
    max_length: int = 128,
    bf16: bool = False,
    chunk_size: int = 2048,
    desc: str = "Source model predictions",
) -> Dataset:
    """``dataset`` plus a ``source_probs`` column; with several processes, each one's shard is saved to a
    shared temporary folder and every process concatenates them in order."""
    from accelerate.utils import broadcast_object_list

    from ..distributed import partial_state

    state = partial_state()
    features = dataset.features.copy()
    features[PROBS_COLUMN] = SequenceFeature(Value("float32"), length=model.config.num_labels)

    def add(batch):
        probs = predict_proba(model, tokenizer, batch["text"], batch_size=batch_size, max_length=max_length, bf16=bf16)
        return {PROBS_COLUMN: probs}

    start = time.perf_counter()
    count = state.num_processes
    part = dataset.shard(num_shards=count, index=state.process_index, contiguous=True) if count > 1 else dataset
    result = part.map(add, batched=True, batch_size=chunk_size, features=features, desc=desc)
    if count > 1:
        holder = [tempfile.mkdtemp(prefix="hf_transfer_shards_") if state.is_main_process else None]
        broadcast_object_list(holder)  # the main process's folder, for all
        shards = [os.path.join(holder[0], f"shard-{i:05d}") for i in range(count)]
        result.save_to_disk(shards[state.process_index])
        state.wait_for_everyone()
        result = concatenate_datasets([load_from_disk(shard) for shard in shards])
    result.info.description = f"{desc}: {len(dataset)} rows in {time.perf_counter() - start:.1f}s"
    return result
