"""Resumable labelmap runs: what a run has computed so far, kept in ``output_dir/_labelmap_state``.

Each finished expensive step leaves a file: the pool's probabilities for round k (``pool-k``, an Arrow
column written whole or not at all) and a finished round's record (``round-k.json``, written after the
pool it needs); the Trainer checkpoints into ``round-k/``. With ``resume_from_checkpoint=last`` the run skips
what is there and ends as an uninterrupted run would; without it a folder holding a state is refused
(``output.check_fresh``) unless ``overwrite_output_dir``. Leading underscore: never pushed (``hub.IGNORE_PATTERNS``).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from accelerate import PartialState
from datasets import Dataset, concatenate_datasets

from ..output import wants_resume
from ..state import check_fingerprint, jsonable, load_dataset_state, read_json, save_dataset, write_json
from .predict import PROBS_COLUMN

STATE_DIR = "_labelmap_state"
RUN_FILE = "run.json"


def run_fingerprint(config, data_args, num_processes: int) -> dict:
    """What the saved state depends on: data, source model, map, selection and the student's training."""
    from ..trainer import result_options

    data_args = data_args.seeded(config.seed)  # an unset sample_seed is the run's seed (as the run reads it)
    data = {f"data.{key}": value for key, value in vars(data_args).items()}  # a changed key is named alone
    return jsonable({**result_options(config), **data, "num_processes": num_processes})


def open_state(config, data_args) -> LabelMapState | None:
    """The run's state folder, started on every rank (kept when resuming, else cleared); None without an
    ``output_dir``, where nothing is saved and nothing resumes."""
    if not config.output_dir:
        return None
    ranks = PartialState()
    fingerprint = run_fingerprint(config, data_args, ranks.num_processes)
    state = LabelMapState(config.output_dir, fingerprint, resume=wants_resume(config), is_main=ranks.is_main_process)
    state.start()
    ranks.wait_for_everyone()
    return state


def pool_with_probs(
    state: LabelMapState | None, pool: Dataset, score: Callable[[Dataset], Dataset]
) -> tuple[Dataset, float]:
    """``pool`` with the source's probabilities (:data:`PROBS_COLUMN`) and the seconds they took: the copy a stopped
    run saved, else ``score(pool)``, saved before any rank goes on. The sentence and the tagging pipelines share it."""
    saved = state.load_pool(pool, 1, PROBS_COLUMN) if state else None
    if saved:
        return saved
    start = time.perf_counter()
    pool = score(pool)
    seconds = time.perf_counter() - start
    if state:
        state.save_pool(pool, 1, PROBS_COLUMN, seconds)
    return pool, seconds


class LabelMapState:
    """The state folder of one run; every method is safe on every process, only the main one writes."""

    def __init__(self, output_dir: str | os.PathLike, fingerprint: dict, *, resume: bool, is_main: bool = True):
        self.root = Path(output_dir) / STATE_DIR
        self.fingerprint = fingerprint
        self.resume = resume
        self.is_main = is_main

    def check(self) -> None:
        """With ``resume``, refuse a state that another config made (before any model loads)."""
        if self.resume:
            check_fingerprint(
                self.root / RUN_FILE,
                self.fingerprint,
                what=f"resume_from_checkpoint: {str(self.root)!r} holds the state of a different labelmap run",
                fix="Use another output_dir, or start over with --overwrite_output_dir and without "
                "resume_from_checkpoint.",
            )

    def start(self) -> None:
        """Keep a matching state when resuming; else clear it and record this run's fingerprint."""
        self.check()
        if not self.is_main:
            return
        if not self.resume and self.root.exists():
            shutil.rmtree(self.root)
        self.root.mkdir(parents=True, exist_ok=True)
        write_json(self.root / RUN_FILE, self.fingerprint)

    def round_dir(self, round_number: int) -> str:
        return str(self.root / f"round-{round_number}")

    def load_pool(self, pool: Dataset, round_number: int, column: str) -> tuple[Dataset, float] | None:
        """``pool`` with the round's saved probabilities and the seconds they took, or None."""
        saved = load_dataset_state(self.root / f"pool-{round_number}") if self.resume else None
        if saved is None or len(saved[0]) != len(pool) or saved[0].column_names != [column]:
            return None
        rest = pool.remove_columns([c for c in (column,) if c in pool.column_names])
        return concatenate_datasets([rest, saved[0]], axis=1), saved[1]

    def save_pool(self, pool: Dataset, round_number: int, column: str, seconds: float) -> None:
        """The main process writes; every rank waits for it, so none reads a half-written pool."""
        if self.is_main:
            save_dataset(pool.select_columns([column]), self.root / f"pool-{round_number}", seconds)
        PartialState().wait_for_everyone()

    def load_round(self, round_number: int) -> dict | None:
        record = read_json(self.root / f"round-{round_number}.json") if self.resume else None
        return record if isinstance(record, dict) else None  # absent (or foreign): the round runs again

    def save_round(self, record: dict) -> None:
        if self.is_main:
            write_json(self.root / f"round-{record['round']}.json", record)
