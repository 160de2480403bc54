"""Publishing to the Hub: settings checked before any model loads, then one push of the finished folder.

Not the ``Trainer``'s own push: it creates the repo before training, pushes at every save and overwrites
our ``README.md``. So the Trainer gets no push settings or token (:func:`trainer_args`, keeping them out of
``training_args.bin``) and the saved folder is uploaded once with ``HfApi.upload_folder``.

The token (``hub_token`` or huggingface_hub's lookup) goes to ``HfApi`` calls only: never printed, logged or
written, and a folder holding a file that contains it is refused rather than uploaded.
"""

from __future__ import annotations

import copy
import fnmatch
import json
import logging
import os
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ConfigError, HfTransferError

logger = logging.getLogger(__name__)

# Never uploaded: Trainer checkpoints (they hold optimizer state), logs, private files.
IGNORE_PATTERNS = ["checkpoint-*", "_*", "runs/*", "training_args.bin", "*.lock"]
_REPO_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class PushTarget:
    """Where a folder goes: ``repo_id`` (``name`` or ``namespace/name``), type, visibility, revision."""

    repo_id: str
    repo_type: str = "model"
    private: bool | None = None
    revision: str | None = None
    token: str | None = field(default=None, repr=False, compare=False)  # repr=False: never shown


def is_offline() -> bool:
    """Offline mode, read now: huggingface_hub's constant is fixed at its import."""
    from huggingface_hub import constants

    env = (os.environ.get(name, "").strip().upper() for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))
    return bool(constants.HF_HUB_OFFLINE) or any(value in ("1", "ON", "YES", "TRUE") for value in env)


def check_repo_id(repo_id: str, option: str = "hub_model_id") -> str:
    """``repo_id`` if it has the Hub's form, else a ``ConfigError`` saying what is wrong."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    problem = None
    if not isinstance(repo_id, str) or not repo_id.strip():
        problem = "it is empty"
    elif "://" in repo_id or repo_id.startswith(("hf.co", "huggingface.co")):
        problem = "it is a URL; give only the id"
    elif repo_id.count("/") > 1:
        problem = "it has more than one '/'"
    else:
        try:
            validate_repo_id(repo_id)
        except HFValidationError as err:
            problem = str(err).rstrip(".")
        if problem is None and not all(_REPO_NAME.match(part) for part in repo_id.split("/")):
            problem = "each part must start with a letter or digit and use only letters, digits, '-', '_', '.'"
    if problem:
        raise ConfigError(
            f"{option}={repo_id!r} is not a Hub repo id ({problem}). Use 'name' or 'namespace/name', "
            f"e.g. 'my-user/sst2-lora'."
        )
    return repo_id


def resolve_repo_id(hub_model_id: str | None, output_dir: str | None) -> str:
    """``hub_model_id``, else the name of ``output_dir`` (the Trainer's rule; the Hub puts a bare name in the
    token owner's namespace)."""
    if hub_model_id:
        return check_repo_id(hub_model_id)
    name = Path(str(output_dir)).resolve().name if output_dir else ""
    if not name or not _REPO_NAME.match(name) or "--" in name or ".." in name or name.endswith(".git"):
        raise ConfigError(
            f"push_to_hub is set but hub_model_id is not, and no repo name can be derived from output_dir="
            f"{output_dir!r}. Set hub_model_id (CLI: --hub_model_id my-user/my-model)."
        )
    return name


def check_push(push_to_hub: bool, hub_model_id: str | None, output_dir: str | None) -> str | None:
    """The repo id when pushing, else ``None``; fails early on a bad id (checked even when not pushing, to
    catch typos) or offline mode."""
    if not push_to_hub:
        if hub_model_id:
            check_repo_id(hub_model_id)
        return None
    repo_id = resolve_repo_id(hub_model_id, output_dir)
    if is_offline():
        raise ConfigError(
            f"push_to_hub is set (repo {repo_id!r}) but the Hub is offline (HF_HUB_OFFLINE=1). Unset "
            "HF_HUB_OFFLINE to push, or drop push_to_hub: the folder is saved either way and can be pushed "
            "later with hf_transfer.hub.push_folder or `hf upload`."
        )
    return repo_id


def check_config_push(config) -> str | None:
    return check_push(getattr(config, "push_to_hub", False), getattr(config, "hub_model_id", None), config.output_dir)


def push_target(config, repo_type: str = "model") -> PushTarget | None:
    repo_id = check_config_push(config)
    if repo_id is None:
        return None
    return PushTarget(
        repo_id=repo_id,
        repo_type=repo_type,
        private=getattr(config, "hub_private_repo", None),
        revision=getattr(config, "hub_revision", None),
        token=getattr(config, "hub_token", None),
    )


def trainer_args(config):
    """``config``, or a shallow copy without push settings and token for the ``Trainer`` (see module doc)."""
    if not getattr(config, "push_to_hub", False) and getattr(config, "hub_token", None) is None:
        return config
    args = copy.copy(config)
    args.push_to_hub = False
    args.hub_token = None
    return args


def push_folder(folder: str | Path, target: PushTarget, *, commit_message: str | None = None) -> str:
    """Create ``target.repo_id`` if needed and upload ``folder`` to it, minus IGNORE_PATTERNS; returns the id."""
    from huggingface_hub import HfApi

    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"Nothing to push: {str(folder)!r} is not a folder.")
    if is_offline():
        raise ConfigError(f"Cannot push {str(folder)!r} to {target.repo_id!r}: the Hub is offline (HF_HUB_OFFLINE=1).")
    _refuse_token_leak(folder, target.token)
    api = HfApi()
    repo = api.create_repo(
        target.repo_id, repo_type=target.repo_type, private=target.private, exist_ok=True, token=target.token
    )
    repo_id = getattr(repo, "repo_id", None) or target.repo_id
    api.upload_folder(
        repo_id=repo_id,
        folder_path=str(folder),
        repo_type=target.repo_type,
        revision=target.revision,
        commit_message=commit_message or f"Upload {target.repo_type} from hf_transfer",
        ignore_patterns=IGNORE_PATTERNS,
        token=target.token,
    )
    prefix = "datasets/" if target.repo_type == "dataset" else ""
    logger.info("Pushed %s to https://huggingface.co/%s%s", folder, prefix, repo_id)
    return repo_id


def _refuse_token_leak(folder: Path, token: str | None) -> None:
    """Refuse a folder in which any uploaded file contains the token (read in overlapping chunks)."""
    if token is None:
        from huggingface_hub import get_token

        token = get_token()
    if not token:
        return
    needle = token.encode()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        if any(fnmatch.fnmatch(path.relative_to(folder).as_posix(), p) for p in IGNORE_PATTERNS):
            continue
        tail = b""
        with path.open("rb") as f:
            while chunk := f.read(1 << 22):
                if needle in tail + chunk:
                    raise ConfigError(
                        f"Refusing to push: {str(path)!r} contains the Hub token. Remove it from the file first."
                    )
                tail = chunk[-len(needle) :]


def check_publish(config, template: str | Path | None = None) -> str | None:
    """Push settings and card template (default: the model card's), checked before models load."""
    from .model_card import MODEL_CARD_TEMPLATE, check_card_template

    check_card_template(template or MODEL_CARD_TEMPLATE)  # exists, and reaches for no Python (sandbox.py)
    return check_config_push(config)


def save_model_folder(model, folder: str | Path, *, adapter_base: str | None = None) -> bool:
    """Save ``model`` so that one ``AutoModelForSequenceClassification.from_pretrained(folder)`` reloads it;
    True when saved as a PEFT adapter. An adapter is saved beside its base classifier, so transformers loads
    base + adapter and PEFT's Auto classes find the base at ``adapter_base`` (the repo id, else this folder).
    """
    from peft import PeftModel

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if not isinstance(model, PeftModel):
        model.save_pretrained(folder)
        return False
    # the base, embeddings included, is saved whole beside it: PEFT need not look the base up by name
    model.save_pretrained(folder, save_embedding_layers=False)
    base = copy.deepcopy(model)  # unload from a copy: the caller's model keeps its adapter
    # the classifier the adapter was trained on, without the adapter (prompt-learning methods inject nothing)
    base = base.unload() if hasattr(base.base_model, "unload") else base.get_base_model()
    base.save_pretrained(folder)
    adapter_config = folder / "adapter_config.json"
    values = json.loads(adapter_config.read_text())
    values["base_model_name_or_path"] = adapter_base or str(folder.resolve())
    adapter_config.write_text(json.dumps(values, indent=2, sort_keys=True))
    return True


class PushError(HfTransferError):
    """The run is saved but publishing failed; ``folder`` and ``results`` say what is safe."""

    def __init__(self, message: str, *, folder: str | Path, results: dict | None = None):
        super().__init__(message)
        self.folder = str(folder)
        self.results = results

    @classmethod
    def after(cls, err: Exception, folder: str | Path, target: PushTarget, results: dict | None) -> PushError:
        """One line of ``err`` (not a traceback) and how to push ``folder`` later."""
        cause = str(err).strip().splitlines()[0] if str(err).strip() else "no message"
        kind = " --repo-type dataset" if target.repo_type == "dataset" else ""
        return cls(
            f"pushing {str(folder)!r} to {target.repo_id!r} failed: {type(err).__name__}: {cause}. The folder is "
            f"saved; push it later with `hf upload {target.repo_id} {folder}{kind}` or hf_transfer.hub.push_folder.",
            folder=folder,
            results=results,
        )


def push_run(folder: str | Path, config, results: dict | None = None, repo_type: str = "model") -> str | None:
    """Push a saved run folder when ``config`` asks to; returns the repo id or None. Raises
    :class:`PushError` on any failure, so the caller can show the saved folder and results first."""
    target = push_target(config, repo_type=repo_type)
    if target is None:
        return None
    try:
        return push_folder(folder, target, commit_message=f"hf_transfer: {Path(folder).name}")
    except Exception as err:  # noqa: BLE001 - whatever failed, the saved folder is what the user needs to know
        raise PushError.after(err, folder, target, results) from err


def push_dataset(dataset, card_path: str | Path, target: PushTarget, *, staging_dir: str | Path) -> str:
    """Push ``dataset`` as one Parquet file (its features, ``ClassLabel`` included, kept in the schema) with
    ``card_path`` as ``README.md``, staged in ``staging_dir``. Returns the repo id."""
    staging = Path(staging_dir)
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "data").mkdir(parents=True)
    dataset.to_parquet(str(staging / "data" / "train-00000-of-00001.parquet"))
    shutil.copyfile(card_path, staging / "README.md")
    return push_folder(staging, target, commit_message="hf_transfer: generated dataset")


def save_run(
    trainer, config, tokenizer, results: Mapping, data_args=None, extra_files: dict[str, str] | None = None
) -> Path:
    """Write a Hub-ready folder to ``config.output_dir`` (model, tokenizer, ``extra_files``, card, results),
    staged and moved into place with ``results.json`` last."""
    from . import model_card  # looked up at call time: tests and benchmarks/faults.py stop a save inside it
    from .classifier import export_model
    from .defaults import portable_ref
    from .output import save_atomically
    from .results import RESULTS_FILE, RunResult

    out = Path(config.output_dir)
    peft_config = model_card.peft_summary(trainer.model)  # before export: merging drops the adapter
    model = export_model(trainer.model, merge_adapter=config.merge_adapter)
    repo_id = resolve_repo_id(config.hub_model_id, config.output_dir) if config.push_to_hub else None
    results_text = RunResult.from_dict(results).to_json()

    def write(folder: Path) -> None:
        adapter = save_model_folder(model, folder, adapter_base=repo_id or str(out.resolve()))
        tokenizer.save_pretrained(folder)
        for name, text in (extra_files or {}).items():
            (folder / name).write_text(text)
        model_card.write_model_card(
            folder,
            results,
            config,
            data_args,
            model_name=repo_id,
            usage_ref=repo_id or portable_ref(str(out)),  # a folder on this machine: its name, not its path
            peft_config=peft_config,
            saved_as_adapter=adapter,
        )
        (folder / RESULTS_FILE).write_text(results_text)

    def rescue(folder: Path) -> None:
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        (folder / RESULTS_FILE).write_text(results_text)

    save_atomically(out, write, rescue)
    return out
