"""Resumable state on disk (generate's shards, labelmap's rounds): a fingerprint of the config it depends on,
compared key by key so state another config made is refused; and writes that are whole or absent (temporary
name or folder, then rename), so a ``kill -9`` leaves the old file or none, never half of one."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from datasets import Dataset, load_from_disk

from .errors import ConfigError

MARKER = "done.json"  # inside a saved dataset folder: written last, so its presence means the folder is whole
UNREADABLE = object()  # what read_json gives for a file that is not JSON (a foreign or damaged file)


def jsonable(value: Any) -> Any:
    """``value`` as it reads back from JSON, so a fingerprint in memory compares equal to the one on disk."""
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def atomic_write(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` whole or not at all (temporary name, fsync, rename)."""
    path = Path(path)
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def write_json(path: str | os.PathLike, value: Any) -> None:
    atomic_write(path, json.dumps(jsonable(value), indent=2, sort_keys=True))


def read_json(path: str | os.PathLike) -> Any:
    """The JSON in ``path``; ``None`` when the file is missing, ``UNREADABLE`` when it is not JSON."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return UNREADABLE


def check_fingerprint(path: str | os.PathLike, fingerprint: dict, *, what: str, fix: str) -> None:
    """Raise ``ConfigError`` when ``path`` holds another fingerprint, naming the keys (options) that differ."""
    saved = read_json(path)
    wanted = jsonable(fingerprint)
    if saved is None or saved == wanted:
        return
    if not isinstance(saved, dict):
        raise ConfigError(f"{what} ({Path(path).name} cannot be read). {fix}")
    changed = sorted(k for k in set(saved) | set(wanted) if saved.get(k) != wanted.get(k))
    raise ConfigError(f"{what} (differs in: {', '.join(changed)}). {fix}")


def save_dataset(dataset: Dataset, folder: str | os.PathLike, meta: Any) -> None:
    """``dataset.save_to_disk(folder)`` plus ``meta``, whole or not at all (``folder.tmp``, marker last, rename)."""
    folder = Path(folder)
    tmp = folder.with_name(f"{folder.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    dataset.save_to_disk(str(tmp))
    (tmp / MARKER).write_text(json.dumps(meta))  # last: its presence marks a whole folder
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)


def load_dataset_state(folder: str | os.PathLike) -> tuple[Dataset, Any] | None:
    """What :func:`save_dataset` saved (memory-mapped) and its ``meta``; ``None`` if absent or cut short."""
    folder = Path(folder)
    if not (folder / MARKER).is_file():
        return None
    return load_from_disk(str(folder)), json.loads((folder / MARKER).read_text())
