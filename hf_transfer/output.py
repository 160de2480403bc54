"""A run's output folder: checked before any model loads (so saving cannot fail after the training it keeps),
held by one run at a time (a ``flock`` the kernel releases when the holder dies), holding one run only (another
run's results, checkpoints or state are refused unless resumed or overwritten), and saved through a staging
folder with ``results.json`` moved last, so a run killed mid-save never leaves a folder that looks complete.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

from .errors import ConfigError, HfTransferError

logger = logging.getLogger(__name__)

RESULTS_FILE = "results.json"
LOCK_FILE = "_hf_transfer.lock"  # leading underscore: never pushed (hub.IGNORE_PATTERNS)
STAGING_DIR = "_saving"
# What a run leaves in its folder besides the saved model: Trainer checkpoints and the strategies' state.
RUN_STATE = ("checkpoint-*", "_labelmap_state", "shards", STAGING_DIR)
VIRTUAL_ROOTS = ("/proc", "/sys", "/dev")
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
# Adam keeps two moments per weight: a checkpoint is ~3x the weights, plus RNG and scheduler state.
CHECKPOINT_FACTOR = 3
SAFETY_MARGIN = 1.2
MIN_FREE_BYTES = 16 << 20
_HELD: set[str] = set()  # output folders whose lock this process holds


class SaveError(HfTransferError, OSError):
    """Saving a finished run failed; the message says where the trained weights are safe."""


def check_output_dir(output_dir: str | os.PathLike, need_bytes: int = 0) -> None:
    """Raise ``ConfigError`` unless ``output_dir`` is (or can become) a writable folder on a real file system
    with ``need_bytes`` (plus a margin) free. Creates nothing that stays."""
    path = Path(output_dir).expanduser()
    resolved = path.resolve()
    if any(resolved == Path(root) or Path(root) in resolved.parents for root in VIRTUAL_ROOTS):
        raise ConfigError(
            f"output_dir={str(output_dir)!r} is on a virtual file system ({resolved.parts[1]!r}): nothing saved "
            f"there survives. Use a folder on disk, e.g. --output_dir outputs/my-run."
        )
    if path.exists() and not path.is_dir():
        raise ConfigError(f"output_dir={str(output_dir)!r} is a file, not a folder. Use another output_dir.")
    base = path.absolute()
    while not base.exists() and base != base.parent:  # the nearest existing ancestor
        base = base.parent
    if not base.is_dir():
        raise ConfigError(f"output_dir={str(output_dir)!r}: {str(base)!r} is a file, so the folder cannot be made.")
    try:
        probe_write(base)
    except OSError as err:
        raise ConfigError(
            f"output_dir={str(output_dir)!r} cannot be written ({str(base)!r}: {err.strerror or err}). Use a "
            f"writable folder, or fix its permissions / remount it read-write."
        ) from None
    free = shutil.disk_usage(base).free
    need = max(int(need_bytes * SAFETY_MARGIN), MIN_FREE_BYTES)
    if free < need:
        raise ConfigError(
            f"output_dir={str(output_dir)!r} has {_mib(free)} free but this run needs about {_mib(need)} (the model "
            f"it saves{', its checkpoints' if need_bytes else ''} and a margin). Free space there, choose another "
            f"output_dir, or save fewer checkpoints (save_total_limit, save_strategy='no')."
        )


def probe_write(folder: Path) -> None:
    """Create and delete a file in ``folder``: the only reliable test of writability (read-only mounts, ACLs)."""
    with tempfile.NamedTemporaryFile(dir=folder, prefix="._hf_transfer_probe"):
        pass


def _mib(n: int) -> str:
    return f"{n / (1 << 20):,.0f} MiB"


def weights_bytes(model_name_or_path: str | None) -> int:
    """Weight bytes before the model loads: local weight files, else a float32 estimate from its config, else 0."""
    if not model_name_or_path:
        return 0
    from .defaults import resolve_model

    try:
        folder = Path(resolve_model(model_name_or_path))
    except Exception:  # noqa: BLE001 - an unresolvable name is reported by the model checks themselves
        return 0
    files = (list(folder.glob("*.safetensors")) or list(folder.glob("*.bin"))) if folder.is_dir() else []
    if files:
        return sum(f.stat().st_size for f in files)
    try:
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(str(folder))
    except Exception:  # noqa: BLE001
        return 0
    config = getattr(config, "encoder_config", None) or config
    keys = ("hidden_size", "num_hidden_layers", "vocab_size", "max_position_embeddings")
    hidden, layers, vocab, positions = (getattr(config, key, 0) or 0 for key in keys)
    return 4 * (12 * layers * hidden * hidden + (vocab + positions) * hidden)


def save_bytes(model_name_or_path: str | None, save_strategy) -> int:
    """Bytes a run writes: the model, plus two checkpoints when it checkpoints (the Trainer writes the next one
    before rotating the last)."""
    weights = weights_bytes(model_name_or_path)
    checkpoints = str(getattr(save_strategy, "value", save_strategy)) != "no"
    return weights * (1 + (2 * CHECKPOINT_FACTOR if checkpoints else 0))


def run_state_entries(output_dir: str | os.PathLike) -> list[Path]:
    """What a previous run left in ``output_dir``: its ``results.json``, checkpoints and strategy state."""
    folder = Path(output_dir)
    if not folder.is_dir():
        return []
    found = [folder / RESULTS_FILE] if (folder / RESULTS_FILE).is_file() else []
    return found + [p for pattern in RUN_STATE for p in sorted(folder.glob(pattern))]


def check_fresh(output_dir: str | os.PathLike, *, resume: bool, overwrite: bool) -> None:
    """Refuse a folder holding another run unless this run resumes or overwrites it. Read-only, so every process
    can call it (all raise together)."""
    found = [] if resume or overwrite else run_state_entries(output_dir)
    if found:
        names = ", ".join(p.name for p in found[:4]) + (", ..." if len(found) > 4 else "")
        raise ConfigError(
            f"output_dir={str(output_dir)!r} already holds another run ({names}). Resume it with "
            f"--resume_from_checkpoint last, start over with --overwrite_output_dir (its checkpoints and results "
            f"are deleted), or choose another output_dir."
        )


def clear_run(output_dir: str | os.PathLike) -> None:
    """Delete a previous run's results, checkpoints and state (``overwrite_output_dir``); leave other files."""
    for path in run_state_entries(output_dir):
        shutil.rmtree(path) if path.is_dir() else path.unlink()


@contextlib.contextmanager
def run_lock(output_dir: str | os.PathLike) -> Iterator[None]:
    """Hold ``output_dir``'s lock for the block, or raise ``ConfigError`` at once if another process holds it.
    The kernel releases a ``flock`` when its holder dies, so a killed run leaves no stale lock."""
    from filelock import FileLock, Timeout

    folder = Path(output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    key = str(folder.resolve())
    if key in _HELD:  # re-entered by the same run (run_generate -> generate_dataset): already ours
        yield
        return
    lock = FileLock(str(folder / LOCK_FILE), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise ConfigError(
            f"output_dir={str(output_dir)!r} is in use by another hf_transfer run (lock {LOCK_FILE} is held). "
            f"Wait for it to finish, or use another output_dir."
        ) from None
    _HELD.add(key)
    try:
        yield
    finally:
        _HELD.discard(key)
        lock.release()


def last_complete_checkpoint(folder: str | os.PathLike) -> str | None:
    """The newest ``checkpoint-N`` in ``folder`` that a kill did not cut short (others: skipped, warned), or None."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _CHECKPOINT.match(p.name)) and p.is_dir()]
    for _, path in sorted(found, reverse=True):
        problem = checkpoint_problem(path)
        if problem is None:
            return str(path)
        logger.warning("Skipping incomplete checkpoint %s (%s); trying the previous one.", path, problem)
    return None


def checkpoint_problem(path: Path) -> str | None:
    """Why checkpoint folder ``path`` cannot be resumed from, or ``None`` when it is whole."""
    from .state import UNREADABLE, read_json

    state = read_json(path / "trainer_state.json")  # the Trainer writes it last
    if state is None:
        return "no trainer_state.json: it was being written when the run stopped"
    if state is UNREADABLE:
        return "trainer_state.json is truncated"
    weights = list(path.glob("*.safetensors"))
    if not weights and not list(path.glob("*.bin")):
        return "no model weights"
    for file in [*weights, *path.glob("*.pt"), *path.glob("*.pth")]:  # torch.save writes zip archives
        if not (_safetensors_whole(file) if file.suffix == ".safetensors" else zipfile.is_zipfile(file)):
            return f"{file.name} is truncated"
    return None


def _safetensors_whole(file: Path) -> bool:
    """A safetensors file holds its header length, a JSON header and the tensor bytes it declares."""
    size = file.stat().st_size
    try:
        with file.open("rb") as handle:
            header_len = int.from_bytes(handle.read(8), "little")
            if header_len <= 0 or 8 + header_len > size:
                return False
            header = json.loads(handle.read(header_len))
    except (OSError, ValueError):
        return False
    ends = [t["data_offsets"][1] for k, t in header.items() if k != "__metadata__" and "data_offsets" in t]
    return 8 + header_len + max(ends, default=0) <= size


def save_atomically(output_dir: str | os.PathLike, write: Callable[[Path], None], rescue: Callable[[Path], None]):
    """Call ``write(staging_folder)``, then move what it wrote into ``output_dir``, ``results.json`` last. On
    failure ``rescue(folder)`` saves the model to a temporary folder elsewhere (another disk may have room) and a
    :class:`SaveError` names what failed, that folder and the last good checkpoint."""
    out = Path(output_dir)
    staging = out / STAGING_DIR
    try:
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        write(staging)
        (out / RESULTS_FILE).unlink(missing_ok=True)  # the folder stops looking finished until the swap ends
        for entry in sorted(staging.iterdir(), key=lambda p: p.name == RESULTS_FILE):
            target = out / entry.name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists() and entry.is_dir():
                target.unlink()
            os.replace(entry, target)
        staging.rmdir()
    except OSError as err:
        checkpoint = last_complete_checkpoint(out) if out.is_dir() else None
        rescued = None
        with contextlib.suppress(Exception):
            folder = Path(tempfile.mkdtemp(prefix=f"hf_transfer-rescue-{out.name}-"))
            rescue(folder)
            rescued = folder
        raise SaveError(
            f"Saving the finished run to {str(out)!r} failed ({type(err).__name__}: {err}). "
            + (f"The trained model was saved to {str(rescued)!r} instead. " if rescued else "")
            + (
                f"The last good checkpoint is {checkpoint!r} (resume with --resume_from_checkpoint last)."
                if checkpoint
                else "No checkpoint was written (save_strategy='no')."
            )
        ) from err


def wants_resume(config) -> bool:
    """``resume_from_checkpoint`` is set to something other than an off value."""
    return str(getattr(config, "resume_from_checkpoint", None) or "").lower() not in ("", "false", "no", "none")


@contextlib.contextmanager
def claim_output_dir(config, *, need_bytes: int = 0, overwrite: bool | None = None) -> Iterator[None]:
    """Check, lock (main process only) and, with ``overwrite_output_dir``, clear ``config.output_dir`` for the
    block, before a model loads; the other processes wait for the main one."""
    from accelerate import PartialState

    output_dir = getattr(config, "output_dir", None)
    if not output_dir:
        yield
        return
    state = PartialState()
    resume = wants_resume(config)
    overwrite = bool(getattr(config, "overwrite_output_dir", False)) if overwrite is None else overwrite
    check_output_dir(output_dir, need_bytes)
    with run_lock(output_dir) if state.is_main_process else contextlib.nullcontext():
        check_fresh(output_dir, resume=resume, overwrite=overwrite)
        if overwrite and not resume and state.is_main_process:
            clear_run(output_dir)
        state.wait_for_everyone()
        yield
