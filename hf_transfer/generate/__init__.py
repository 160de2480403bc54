"""The generate strategy: write a labelled training set with a generative model, from label names alone
(optionally one-line descriptions and a few real examples), then filter it. Train on the result with the
finetune strategy (``--dataset <output_dir>/dataset``)."""

from .card import build_dataset_card, write_dataset_card
from .config import GenerateConfig
from .continuous import generate_continuous
from .filters import apply_filters, clean_text, contamination_mask, default_scorer, near_duplicate_mask
from .generation import check_generator, generate_batch, generate_rows, load_generator, measure_throughput
from .label_pairs import top_label_pairs
from .pipeline import generate_dataset, generation_stats, run_generate
from .prompts import build_prompts, load_templates
from .shards import ShardStore, batch_seed

__all__ = [
    "GenerateConfig",
    "ShardStore",
    "apply_filters",
    "batch_seed",
    "build_dataset_card",
    "build_prompts",
    "check_generator",
    "clean_text",
    "contamination_mask",
    "default_scorer",
    "generate_batch",
    "generate_continuous",
    "generate_rows",
    "generate_dataset",
    "generation_stats",
    "load_generator",
    "load_templates",
    "measure_throughput",
    "near_duplicate_mask",
    "run_generate",
    "top_label_pairs",
    "write_dataset_card",
]
