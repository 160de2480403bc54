"""Resumable output: one JSONL shard per generated batch plus ``run_config.json``, in ``output_dir``.

A shard is written to a temporary name and renamed, so a killed run leaves whole shards or none; a
restart with the same config skips the batches whose shard exists. Each batch's sampling seed comes from
(run seed, batch index), so the merged rows are the same however often the run was interrupted.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterable
from pathlib import Path

from ..errors import ConfigError

RUN_CONFIG = "run_config.json"
SHARDS = "shards"
ROUNDS = "rounds.json"  # top-up rounds planned so far (in shards/, so overwrite deletes it with them)


def batch_seed(seed: int, batch_index: int) -> int:
    """A sampling seed for one batch that depends only on the run seed and the batch index."""
    digest = hashlib.sha256(f"hf_transfer.generate:{seed}:{batch_index}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


class ShardStore:
    def __init__(self, output_dir: str | os.PathLike):
        self.root = Path(output_dir)
        self.shard_dir = self.root / SHARDS

    def shard_path(self, batch_index: int) -> Path:
        return self.shard_dir / f"shard-{batch_index:05d}.jsonl"

    def existing_shards(self) -> list[Path]:
        return sorted(self.shard_dir.glob("shard-*.jsonl")) if self.shard_dir.is_dir() else []

    def check(self, fingerprint: dict, overwrite: bool = False) -> None:
        """Refuse (``ConfigError``) an output_dir holding another run's shards, unless ``overwrite``.
        Read-only: safe to call on every process."""
        if overwrite:
            return
        config_file = self.root / RUN_CONFIG
        if config_file.is_file():
            try:
                saved = json.loads(config_file.read_text())
            except json.JSONDecodeError:
                saved = None
            wanted = _jsonable(fingerprint)
            if saved != wanted:
                saved = saved if isinstance(saved, dict) else {}
                changed = sorted(k for k in set(saved) | set(wanted) if saved.get(k) != wanted.get(k))
                raise ConfigError(
                    f"output_dir {str(self.root)!r} holds a different generation run (differs in: "
                    f"{', '.join(changed) or 'unreadable run_config.json'}). Use another output_dir, or "
                    f"overwrite=True to delete its shards and start again."
                )
        elif self.existing_shards():
            raise ConfigError(
                f"output_dir {str(self.root)!r} holds shards but no {RUN_CONFIG}, so they cannot be matched to "
                f"this run. Use another output_dir, or overwrite=True to delete them."
            )

    def start(self, fingerprint: dict, overwrite: bool = False) -> None:
        """Record this run's config (main process only); with ``overwrite`` first delete other runs' shards."""
        self.check(fingerprint, overwrite)
        config_file = self.root / RUN_CONFIG
        if overwrite and self.shard_dir.exists():
            same = config_file.is_file() and json.loads(config_file.read_text()) == _jsonable(fingerprint)
            if not same:
                shutil.rmtree(self.shard_dir)
        self.shard_dir.mkdir(parents=True, exist_ok=True)
        for stale in self.shard_dir.glob("*.tmp*"):  # half-written shards of a killed run
            stale.unlink(missing_ok=True)
        atomic_write(config_file, json.dumps(_jsonable(fingerprint), indent=2, sort_keys=True))

    def done(self, num_batches: int) -> set[int]:
        return {i for i in range(num_batches) if self.shard_path(i).is_file()}

    def write(self, batch_index: int, rows: Iterable[dict]) -> None:
        atomic_write(self.shard_path(batch_index), "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))

    def read(self, num_batches: int) -> list[dict]:
        """All rows of batches ``0 .. num_batches-1``, in batch order; a missing shard is an error."""
        rows = []
        for i in range(num_batches):
            path = self.shard_path(i)
            if not path.is_file():
                raise FileNotFoundError(f"Shard {path} is missing: generation did not finish.")
            rows.extend(json.loads(line) for line in path.read_text().splitlines() if line.strip())
        return rows


def atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    with open(tmp, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _jsonable(value):
    return json.loads(json.dumps(value, sort_keys=True))
