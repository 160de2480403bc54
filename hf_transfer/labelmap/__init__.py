"""The labelmap strategy: use a source classifier's labels on the target task.

Map its labels (explicitly, learned from a few labelled examples, or by name similarity), predict
zero-shot through the map, pseudo-label an unlabelled pool, and distil the soft labels into a student
through the stock ``Trainer``; onto single-label targets or multi-label ones (many-to-many maps, a score and
a threshold per label), or between entity tag sets for token classification (a map between types, B-/I-
laid out for you, pseudo-labelled sentences and per-token distillation: :mod:`.tagging`).
"""

from ..trainer import TransferTrainer, soft_target_loss
from .config import LabelMapConfig
from .head import transfer_head
from .mapping import LabelMap
from .pipeline import build_label_map, decision_thresholds, evaluate_through_map, run_labelmap
from .predict import add_source_probs, load_source, predict_proba, source_label_names
from .pseudo import pseudo_label, select_rows
from .result import LabelMapResult
from .tagging import expand_type_map, learn_tag_map, source_tags, tag_label_map

__all__ = [
    "LabelMap",
    "LabelMapConfig",
    "LabelMapResult",
    "TransferTrainer",
    "add_source_probs",
    "build_label_map",
    "decision_thresholds",
    "evaluate_through_map",
    "expand_type_map",
    "learn_tag_map",
    "load_source",
    "predict_proba",
    "pseudo_label",
    "run_labelmap",
    "select_rows",
    "soft_target_loss",
    "source_label_names",
    "source_tags",
    "tag_label_map",
    "transfer_head",
]
