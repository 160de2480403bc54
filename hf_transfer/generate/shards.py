"""Resumable output in ``output_dir``: ``run_config.json`` and one JSONL shard per batch, written to a temporary
name and renamed (a killed run leaves whole shards or none). A restart with the same config skips finished batches,
and each batch's seed comes from (run seed, batch index), so interruptions do not change the rows."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterable
from pathlib import Path

from ..errors import ConfigError
from ..state import atomic_write, check_fingerprint, jsonable, read_json, write_json

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
        self.shard_dir, self.config_file = self.root / SHARDS, self.root / RUN_CONFIG

    def shard_path(self, batch_index: int) -> Path:
        return self.shard_dir / f"shard-{batch_index:05d}.jsonl"

    def existing_shards(self) -> list[Path]:
        return sorted(self.shard_dir.glob("shard-*.jsonl")) if self.shard_dir.is_dir() else []

    def check(self, fingerprint: dict, overwrite: bool = False) -> None:
        """Refuse (``ConfigError``) an output_dir holding another run's shards, unless ``overwrite``.
        Read-only: safe to call on every process."""
        if overwrite:
            return
        fix = "Use another output_dir, or overwrite=True to delete its shards and start again."
        check_fingerprint(self.config_file, fingerprint, what=f"output_dir {str(self.root)!r} holds a different "
                          "generation run", fix=fix)  # fmt: skip
        if not self.config_file.is_file() and self.existing_shards():
            raise ConfigError(
                f"output_dir {str(self.root)!r} holds shards but no {RUN_CONFIG}, so they cannot be matched to "
                f"this run. Use another output_dir, or overwrite=True to delete them."
            )

    def start(self, fingerprint: dict, overwrite: bool = False) -> None:
        """Record this run's config (main process only); with ``overwrite`` first delete other runs' shards."""
        self.check(fingerprint, overwrite)
        if overwrite and self.shard_dir.exists() and read_json(self.config_file) != jsonable(fingerprint):
            shutil.rmtree(self.shard_dir)
        self.shard_dir.mkdir(parents=True, exist_ok=True)
        for stale in self.shard_dir.glob("*.tmp*"):  # half-written shards of a killed run
            stale.unlink(missing_ok=True)
        write_json(self.config_file, fingerprint)

    def done(self, num_batches: int) -> set[int]:
        return {i for i in range(num_batches) if self.shard_path(i).is_file()}

    def write(self, batch_index: int, rows: Iterable[dict]) -> None:
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        atomic_write(self.shard_path(batch_index), text)

    def read(self, num_batches: int) -> list[dict]:
        """All rows of batches ``0 .. num_batches-1``, in batch order; a missing shard is an error."""
        rows = []
        for i in range(num_batches):
            path = self.shard_path(i)
            if not path.is_file():
                raise FileNotFoundError(f"Shard {path} is missing: generation did not finish.")
            # split on "\n" only: str.splitlines() also breaks at U+2028, U+0085 ..., which
            # json.dumps(ensure_ascii=False) leaves in a generated text unescaped
            rows.extend(json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line.strip())
        return rows
