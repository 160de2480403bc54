"""Resumable state on disk, for every strategy that resumes (generate's shards, labelmap's rounds).

Two things make a stopped run safe to continue, and both live here once:

* a **fingerprint** of what the saved state depends on (``run_config.json``, ``run.json``), compared key by
  key, so a state that another config made is refused with the keys that differ;
* **writes that are whole or absent**: text and JSON go to a temporary name, are flushed to disk and renamed
  over the target (:func:`atomic_write`); a ``Dataset`` is saved to a temporary folder with a marker file
  written last, then renamed into place (:func:`save_dataset`). A ``kill -9`` leaves the old file or none,
  never half of one.
"""

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
    """``value`` as it reads back from JSON (tuples become lists, keys strings, unknown objects ``str``), so a
    fingerprint in memory compares equal to the one on disk."""
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def atomic_write(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` whole or not at all (temporary name, fsync, rename)."""
    path = Path(path)
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    with open(tmp, "w") as handle:
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
    """Raise ``ConfigError`` when ``path`` holds a fingerprint other than ``fingerprint``, naming the keys that
    differ (``data.n_per_class``, ``threshold``) so the user sees which option changed. A missing file passes."""
    saved = read_json(path)
    wanted = jsonable(fingerprint)
    if saved is None or saved == wanted:
        return
    if not isinstance(saved, dict):
        raise ConfigError(f"{what} ({Path(path).name} cannot be read). {fix}")
    changed = sorted(k for k in set(saved) | set(wanted) if saved.get(k) != wanted.get(k))
    raise ConfigError(f"{what} (differs in: {', '.join(changed)}). {fix}")


def save_dataset(dataset: Dataset, folder: str | os.PathLike, meta: Any) -> None:
    """``dataset.save_to_disk(folder)`` plus ``meta`` (JSON), whole or not at all: written to ``folder.tmp``
    with the marker last, then renamed over ``folder``."""
    folder = Path(folder)
    tmp = folder.with_name(f"{folder.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    dataset.save_to_disk(str(tmp))
    (tmp / MARKER).write_text(json.dumps(meta))  # last: its presence marks a whole folder
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)


def load_dataset_state(folder: str | os.PathLike) -> tuple[Dataset, Any] | None:
    """What :func:`save_dataset` saved (memory-mapped, so a large pool is not read into memory) and its
    ``meta``, or ``None`` when the folder is absent or was cut short."""
    folder = Path(folder)
    if not (folder / MARKER).is_file():
        return None
    return load_from_disk(str(folder)), json.loads((folder / MARKER).read_text())
