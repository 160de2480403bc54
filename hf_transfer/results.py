"""What a run measured, typed: a :class:`RunResult` per run, saved as ``results.json`` and read back by the
model card and the report.

Each strategy subclasses it with the fields it adds and the parts of the card and the report that only it
knows (``training_data``, ``references``, ``card_rows``, ...), so neither the card nor the report names a
strategy's fields. The JSON stays flat (``jq .accuracy results.json``) and, like transformers'
``ModelOutput``, a result reads as attributes and as a mapping (``result["accuracy"]``), so scripts written
against the earlier dicts keep working.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import __version__
from .errors import ConfigError
from .output import RESULTS_FILE

_RESULT_TYPES: dict[str, type[RunResult]] = {}


@dataclass(frozen=True)
class Reference:
    """A score measured in the same run for comparison (zero-shot through a map, the teacher alone).
    ``floor``: it used no labelled target row, so the report draws it as a zero-shot floor."""

    name: str
    accuracy: float
    f1_macro: float
    seconds: float | None = None
    floor: bool = True


@dataclass(kw_only=True, eq=False)
class RunResult(Mapping):
    """The fields every classification run records; ``extra`` keeps keys this class does not declare (a
    file written by another version), so loading and saving again loses nothing."""

    strategy: str
    accuracy: float
    f1_macro: float
    labels: list[str] = field(default_factory=list)
    model: str | None = None
    dataset: str | None = None
    eval_split: str | None = None
    n_eval: int | None = None
    method: str | None = None
    head_init: str | None = None
    n_per_class: int | None = None
    n_train: int | None = None
    seed: int | None = None
    sample_seed: int | None = None
    num_train_epochs: float | None = None
    train_steps: int = 0
    train_seconds: float | None = None
    wall_seconds: float | None = None
    num_processes: int = 1
    bf16: bool | None = None  # trained and evaluated under bf16 autocast (TrainingArguments.bf16, resolved)
    hf_transfer_version: str = __version__
    # multi-label (``task="multi_label"``): ``accuracy`` is subset accuracy (every label of a row right)
    task: str = "single_label"
    f1_micro: float | None = None
    f1_samples: float | None = None
    per_label: dict[str, dict[str, float]] | None = None  # precision, recall, F1 per label on the eval split
    label_thresholds: list[float] | None = None
    # token classification (``task="token_classification"``): ``accuracy`` is word accuracy, ``f1_micro`` /
    # ``f1_macro`` / ``precision`` / ``recall`` are entity-level, ``per_label`` holds each entity type's scores
    precision: float | None = None
    recall: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __init_subclass__(cls, strategy: str | None = None, **kwargs):
        super().__init_subclass__(**kwargs)
        if strategy:
            _RESULT_TYPES[strategy] = cls

    # ---- mapping access and JSON
    def to_dict(self) -> dict[str, Any]:
        out = {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self) if f.name != "extra"}
        return {**out, **self.extra}

    def __getitem__(self, key: str) -> Any:
        if key != "extra" and key in self._field_names():
            return getattr(self, key)
        return self.extra[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.to_dict())

    def __len__(self) -> int:
        return len(self.to_dict())

    def __eq__(self, other) -> bool:
        return isinstance(other, Mapping) and self.to_dict() == dict(other)

    __hash__ = None  # mutable, like the dicts it replaces

    def __setitem__(self, key: str, value: Any) -> None:
        """Set a field, or record an undeclared key in ``extra`` (the demo adds its recipe name)."""
        if key != "extra" and key in self._field_names():
            setattr(self, key, value)
        else:
            self.extra[key] = value

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def _field_names(cls) -> set[str]:
        return {f.name for f in dataclasses.fields(cls)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunResult:
        """The result a ``results.json`` holds, as its strategy's class (looked up through the registry)."""
        if isinstance(data, RunResult):
            return data
        if not isinstance(data, Mapping) or "strategy" not in data:
            raise ConfigError("Not a run result: a mapping with 'strategy', 'accuracy' and 'f1_macro' is expected.")
        result_cls = result_type(str(data["strategy"])) if cls is RunResult else cls
        names = result_cls._field_names() - {"extra"}
        try:
            return result_cls(
                **{k: v for k, v in data.items() if k in names},
                extra={k: v for k, v in data.items() if k not in names},
            )
        except TypeError as err:
            raise ConfigError(f"Not a complete run result ({err}).") from err

    @classmethod
    def load(cls, folder: str | Path) -> RunResult:
        path = Path(folder)
        path = path / RESULTS_FILE if path.is_dir() else path
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except (OSError, json.JSONDecodeError) as err:
            raise ConfigError(f"Cannot read run results {str(path)!r}: {err}") from err

    @property
    def multi_label(self) -> bool:
        return self.task == "multi_label"

    @property
    def token_classification(self) -> bool:
        return self.task == "token_classification"

    # ---- what the card and the report show; a strategy overrides what it knows more about
    def training_data(self) -> str:
        """What the model learned from, in words (the card's "labelled examples"). A token-classification run
        samples sentences per entity type (``n_per_class``), and says so."""
        n, n_train = self.n_per_class, self.n_train
        rows, per = ("sentences", "sentences per entity type") if self.token_classification else ("rows", "per class")
        if n == 0:
            return "none (zero-shot: the head comes from label descriptions)"
        if n is None:
            return f"all {n_train} training {rows}" if n_train is not None else f"all training {rows}"
        return f"{n} {per} ({n_train} {rows})" if n_train is not None else f"{n} {per}"

    def references(self) -> list[Reference]:
        """Scores measured in the run to compare the trained model with."""
        return []

    def card_rows(self) -> list[tuple[str, str]]:
        """Rows of the card's results table beyond the headline metrics and the references."""
        return []

    def card_limitations(self) -> list[str]:
        return []

    def card_hyperparameters(self) -> dict[str, Any]:
        """Values the run settled itself that its results depend on, beside the config's options."""
        return {"n_per_class": self.n_per_class, "sample_seed": self.sample_seed, "n_train": self.n_train}

    def card_variables(self) -> dict[str, Any]:
        """Template variables only this strategy fills (a label map, synthetic-data statistics)."""
        return {}

    def base_models(self) -> list[str | None]:
        """The models the trained one starts from, first the one whose weights it continues."""
        return [self.model]

    def report_name(self) -> str:
        """The row a run is counted in when runs are compared."""
        return f"{self.strategy}/{self.method}" if self.method else self.strategy

    @property
    def zero_shot(self) -> bool:
        """Trained on no labelled target row: a floor in the report."""
        return False


def result_type(strategy: str) -> type[RunResult]:
    """The result class of a registered strategy (importing its package registers it), else ``RunResult``."""
    if strategy not in _RESULT_TYPES:
        from .registry import STRATEGIES

        if strategy in STRATEGIES:
            importlib.import_module(STRATEGIES[strategy].module)
    return _RESULT_TYPES.get(strategy, RunResult)


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return value
