"""Publishing to the Hub: settings checked before any model loads, then one push of the finished folder.

Why not let the stock ``Trainer`` push: with ``push_to_hub=True`` it creates the repo in ``__init__`` (a
network call before training), pushes at every save, and ``Trainer.push_to_hub`` rewrites ``README.md``
with its auto-generated card. hf_transfer trains with the push settings and the token withheld from the
Trainer (:func:`trainer_args`, so they never reach ``training_args.bin``), saves the folder with our card,
then uploads it once with ``HfApi.upload_folder`` -- the call ``Trainer.push_to_hub`` itself ends with.

The token comes from ``hub_token`` or huggingface_hub's own lookup (``HF_TOKEN``, ``hf auth login``). It is
handed to ``HfApi`` calls only: never printed, logged, or written to a file, and a folder holding a file
that contains it is refused rather than uploaded.
"""

from __future__ import annotations

import copy
import fnmatch
import json
import logging
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ConfigError, HfTransferError

logger = logging.getLogger(__name__)

# Never uploaded: Trainer checkpoints (they hold optimizer state), logs, private files.
IGNORE_PATTERNS = ["checkpoint-*", "_*", "runs/*", "training_args.bin", "*.lock"]
_REPO_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class PushTarget:
    """Where a folder goes: ``repo_id`` (``name`` or ``namespace/name``), its type and visibility."""

    repo_id: str
    repo_type: str = "model"
    private: bool | None = None
    revision: str | None = None
    token: str | None = field(default=None, repr=False, compare=False)  # repr=False: never shown


def is_offline() -> bool:
    """True when huggingface_hub is in offline mode (``HF_HUB_OFFLINE=1``), checked now, not at import."""
    from huggingface_hub import constants

    def env_true(name: str) -> bool:
        return os.environ.get(name, "").strip().upper() in ("1", "ON", "YES", "TRUE")

    return bool(constants.HF_HUB_OFFLINE) or env_true("HF_HUB_OFFLINE") or env_true("TRANSFORMERS_OFFLINE")


def check_repo_id(repo_id: str, option: str = "hub_model_id") -> str:
    """``repo_id`` if it has the Hub's form (``name`` or ``namespace/name``), else a ``ConfigError``."""
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
    """The repo to push to: ``hub_model_id``, else the name of ``output_dir`` (the Trainer's own rule; the
    Hub puts a bare name in the token owner's namespace). ``ConfigError`` when neither gives a valid id."""
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
    """Everything about publishing that can fail before a model loads: the repo id's form (also when not
    pushing, to catch typos) and offline mode. Returns the repo id when pushing, else ``None``."""
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
    """:func:`check_push` on a ``FinetuneConfig``/``LabelMapConfig`` (``TrainingArguments`` fields) or a
    ``GenerateConfig``."""
    return check_push(getattr(config, "push_to_hub", False), getattr(config, "hub_model_id", None), config.output_dir)


def push_target(config, repo_type: str = "model") -> PushTarget | None:
    """The :class:`PushTarget` a config asks for, or ``None`` when it does not push."""
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
    """The arguments to give the ``Trainer``: ``config`` itself, or, when it pushes or holds a token, a
    shallow copy without them (no repo created mid-run, no push per save, no token in ``training_args.bin``).
    The caller pushes after saving, with :func:`push_folder`."""
    if not getattr(config, "push_to_hub", False) and getattr(config, "hub_token", None) is None:
        return config
    args = copy.copy(config)
    args.push_to_hub = False
    args.hub_token = None
    return args


def push_folder(folder: str | Path, target: PushTarget, *, commit_message: str | None = None) -> str:
    """Create ``target.repo_id`` if needed and upload ``folder`` to it (``HfApi.create_repo`` +
    ``HfApi.upload_folder``, skipping checkpoints and logs). Returns the repo id."""
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
    """Refuse to upload a folder in which any file contains the token (checked in overlapping chunks)."""
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
    """The publishing checks a strategy runs before loading models: push settings (:func:`check_config_push`)
    and that the card template exists (default: the model card's; generate passes the dataset card's).
    Returns the repo id when pushing."""
    from .model_card import MODEL_CARD_TEMPLATE, check_card_template

    check_card_template(template or MODEL_CARD_TEMPLATE)  # exists, and reaches for no Python (sandbox.py)
    return check_config_push(config)


def save_model_folder(model, folder: str | Path, *, adapter_base: str | None = None) -> bool:
    """Save ``model`` so that ``AutoModelForSequenceClassification.from_pretrained(folder)`` (after
    ``import hf_transfer``, or with ``trust_remote_code=True`` where it is not installed: ``save_pretrained``
    ships ``modeling.py`` and ``auto_map``) reloads it in one call. Returns True when it was saved as a PEFT
    adapter.

    A plain model is saved as is. A ``PeftModel`` is saved as an adapter *with its base model embedded*:
    ``adapter_config.json`` + ``adapter_model.safetensors`` (PEFT's own ``save_pretrained``) next to the
    base classifier's ``config.json`` + ``model.safetensors`` (the adapter unloaded from a copy), which
    transformers loads as base + adapter, and ``AutoPeftModelForSequenceClassification`` loads from the
    adapter config's ``base_model_name_or_path`` (set to ``adapter_base``: the repo id when pushing, else
    this folder).
    """
    from peft import PeftModel

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if not isinstance(model, PeftModel):
        model.save_pretrained(folder)
        return False
    # the base classifier, embeddings included, is saved whole beside the adapter: no need for PEFT to look
    # the base up by name (offline, or a local name, that only warns) to decide whether to copy embeddings
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
    """The run finished and is saved, but publishing it failed; ``folder`` and ``results`` say what is safe."""

    def __init__(self, message: str, *, folder: str | Path, results: dict | None = None):
        super().__init__(message)
        self.folder = str(folder)
        self.results = results

    @classmethod
    def after(cls, err: Exception, folder: str | Path, target: PushTarget, results: dict | None) -> PushError:
        """The error for a push of the saved ``folder`` that raised ``err``: the first line of the cause and how
        to push it later (a network or auth failure is told in one line, not a traceback)."""
        cause = str(err).strip().splitlines()[0] if str(err).strip() else "no message"
        kind = " --repo-type dataset" if target.repo_type == "dataset" else ""
        return cls(
            f"pushing {str(folder)!r} to {target.repo_id!r} failed: {type(err).__name__}: {cause}. The folder is "
            f"saved; push it later with `hf upload {target.repo_id} {folder}{kind}` or hf_transfer.hub.push_folder.",
            folder=folder,
            results=results,
        )


def push_run(folder: str | Path, config, results: dict | None = None, repo_type: str = "model") -> str | None:
    """Push a saved run folder when ``config`` asks for it (``push_to_hub``); returns the repo id or None.

    A failed push (network, auth, a refused token leak) raises :class:`PushError`, which carries the saved
    folder and the results so that the caller can show them before the cause."""
    target = push_target(config, repo_type=repo_type)
    if target is None:
        return None
    try:
        return push_folder(folder, target, commit_message=f"hf_transfer: {Path(folder).name}")
    except Exception as err:  # noqa: BLE001 - whatever failed, the saved folder is what the user needs to know
        raise PushError.after(err, folder, target, results) from err


def push_dataset(dataset, card_path: str | Path, target: PushTarget, *, staging_dir: str | Path) -> str:
    """Push a ``datasets.Dataset`` as ``data/train-00000-of-00001.parquet`` (features, ``ClassLabel``
    included, kept in the Parquet schema) with the card at ``card_path`` as its ``README.md``: staged in
    ``staging_dir``, then :func:`push_folder`. Returns the repo id."""
    staging = Path(staging_dir)
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "data").mkdir(parents=True)
    dataset.to_parquet(str(staging / "data" / "train-00000-of-00001.parquet"))
    shutil.copyfile(card_path, staging / "README.md")
    return push_folder(staging, target, commit_message="hf_transfer: generated dataset")


def save_run(
    trainer,
    config,
    tokenizer,
    results: dict,
    data_args=None,
    extra_files: dict[str, str] | None = None,
) -> Path:
    """Write a Hub-ready folder to ``config.output_dir``: the exported model (or PEFT adapter with its base,
    ``merge_adapter=False``), tokenizer, ``extra_files`` (name -> text), the model card ``README.md`` and
    ``results.json``, staged and moved into place with ``results.json`` last (:func:`save_atomically`)."""
    from . import model_card  # looked up at call time: tests and benchmarks/faults.py stop a save inside it
    from .classifier import export_model
    from .defaults import portable_ref
    from .output import RESULTS_FILE, save_atomically

    out = Path(config.output_dir)
    peft_config = model_card.peft_summary(trainer.model)  # before export: merging drops the adapter
    model = export_model(trainer.model, merge_adapter=config.merge_adapter)
    repo_id = resolve_repo_id(config.hub_model_id, config.output_dir) if config.push_to_hub else None
    results_text = json.dumps(results, indent=2)

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
