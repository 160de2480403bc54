"""Prompt templates as data: load, check, and render one prompt per row. Row ``i`` draws its template, attributes
and few-shot examples from ``Random(f"{seed}:{i}")``, so every process and every restart builds the same list."""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import jinja2.meta
import yaml

from .. import sandbox
from ..data import readable_label
from ..errors import ConfigError

TEMPLATES_DIR = Path(__file__).parent / "templates"
BUILTIN_VARIABLES = {"label", "description", "examples", "types"}  # types: every label name, joined


@dataclass(frozen=True)
class Template:
    id: str
    text: str


@dataclass
class TemplateSet:
    templates: list[Template]
    attributes: dict[str, list[str]] = field(default_factory=dict)
    source: str = field(default="templates", compare=False)  # the file, for messages; not in the digest

    def digest(self) -> str:
        return digest([[t.id, t.text] for t in self.templates] + [self.attributes])


@dataclass(frozen=True)
class Prompt:
    index: int  # row index in the run; batches are consecutive slices of these
    label: str  # the target's name: the label, or for a label pair "a + b" (target_name)
    label_id: int  # the first asked label
    template_id: str
    attributes: dict
    text: str
    label_ids: tuple[int, ...] = ()  # every asked label (multi-label: one, or a pair)


def target_name(labels: Sequence[str], ids: Sequence[int]) -> str:
    """A target's key in top-up counts and stats: the label name, or the asked labels joined by ``" + "``."""
    return " + ".join(labels[i] for i in ids)


def load_templates(spec: str) -> TemplateSet:
    """``'default'`` / a bundled name, a YAML file (``templates:`` list + ``attributes:``) or a .jinja file."""
    path = Path(spec)
    if not path.is_file():
        bundled = TEMPLATES_DIR / f"{spec}.yaml"
        if not bundled.is_file():
            known = sorted(p.stem for p in TEMPLATES_DIR.glob("*.yaml"))
            raise ConfigError(f"templates={spec!r} is neither a file nor a bundled template set ({known}).")
        path = bundled
    if path.suffix in (".jinja", ".j2", ".txt"):
        data = {"templates": [{"id": path.stem, "text": path.read_text()}]}
    else:
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as err:
            raise ConfigError(f"Template file {str(path)!r} is not valid YAML: {err}") from None
        if isinstance(data, list):
            data = {"templates": data}
    return check_templates(data, source=str(path))


def check_templates(data: Mapping, source: str = "templates") -> TemplateSet:
    """Validate templates: each parses, reaches no Python object (:mod:`hf_transfer.sandbox`: checked here, so
    before any model loads), uses ``{{ label }}`` and only known variables; ids are unique."""
    if not isinstance(data, Mapping) or not data.get("templates"):
        raise ConfigError(f"{source}: expected a non-empty 'templates:' list.")
    attributes = data.get("attributes") or {}
    if not isinstance(attributes, Mapping) or any(
        not isinstance(v, list) or not v or not all(isinstance(x, str) for x in v) for v in attributes.values()
    ):
        raise ConfigError(f"{source}: 'attributes' must map names to non-empty lists of strings.")
    clash = sorted(set(attributes) & BUILTIN_VARIABLES)
    if clash:
        raise ConfigError(f"{source}: attribute name(s) {clash} are reserved placeholders.")
    templates = []
    for i, entry in enumerate(data["templates"]):
        if isinstance(entry, str):
            entry = {"id": f"t{i}", "text": entry}
        if not isinstance(entry, Mapping) or not isinstance(entry.get("text"), str):
            raise ConfigError(f"{source}: template #{i} needs a 'text' string.")
        template_id = str(entry.get("id", f"t{i}"))
        ast = sandbox.parse(entry["text"], _where(template_id, source), allowed=frozenset(attributes))
        used = jinja2.meta.find_undeclared_variables(ast)
        if "label" not in used:
            raise ConfigError(
                f"{source}: template {template_id!r} has no {{{{ label }}}} placeholder, so its examples could "
                f"not depend on the label. Add {{{{ label }}}} where the label name belongs."
            )
        unknown = sorted(used - BUILTIN_VARIABLES - set(attributes))
        if unknown:
            raise ConfigError(
                f"{source}: template {template_id!r} uses unknown placeholder(s) {unknown}; known: "
                f"{sorted(BUILTIN_VARIABLES | set(attributes))} (attributes come from the 'attributes:' section)."
            )
        templates.append(Template(template_id, entry["text"]))
    ids = [t.id for t in templates]
    if len(set(ids)) != len(ids):
        raise ConfigError(f"{source}: template ids must be unique, got {ids}.")
    return TemplateSet(templates, {k: list(v) for k, v in attributes.items()}, source)


def build_prompts(
    labels: Sequence[str],
    n_per_label: int | Mapping[str, int],
    templates: TemplateSet,
    *,
    seed: int,
    descriptions: Mapping[str, str] | None = None,
    seed_examples: Mapping[str, Sequence[str]] | None = None,
    n_shots: int = 2,
    start_index: int = 0,
    targets: Sequence[Sequence[int]] | None = None,
) -> list[Prompt]:
    """``n_per_label`` prompts per target (a mapping: per target name, for top-up rounds), numbered from
    ``start_index``, targets interleaved while each still needs some (row i has label ``i % len(labels)`` when all
    need as many). A target is one label, or several asked together (multi-label pairs: ``targets=[(0,), (1,),
    (0, 1)]``), rendered as ``{{ label }}`` = "a and b" with both descriptions; its few-shot examples are the seed
    texts that carry all its labels. Default targets: each label alone."""
    targets = [tuple(t) for t in targets] if targets is not None else [(j,) for j in range(len(labels))]
    names = [target_name(labels, t) for t in targets]
    left = [int(n_per_label.get(x, 0)) if isinstance(n_per_label, Mapping) else n_per_label for x in names]
    order = []
    while any(n > 0 for n in left):
        for target, n in enumerate(left):
            if n > 0:
                order.append(target)
                left[target] -= 1
    descriptions, seed_examples = descriptions or {}, seed_examples or {}
    prompts = []
    for index, target in enumerate(order, start=start_index):
        ids = targets[target]
        rng = random.Random(f"{seed}:{index}")
        template = rng.choice(templates.templates)
        attributes = {name: rng.choice(values) for name, values in sorted(templates.attributes.items())}
        pool = _shared_examples([seed_examples.get(labels[i], ()) for i in ids])
        examples = rng.sample(pool, min(n_shots, len(pool))) if pool else []
        variables = {  # the name in words, as finetune's descriptions
            "label": " and ".join(readable_label(labels[i]) for i in ids),
            "description": "; ".join(d for d in (descriptions.get(labels[i], "") for i in ids) if d),
            "examples": examples,
            "types": ", ".join(labels),
            **attributes,
        }
        text = sandbox.render(template.text, _where(template.id, templates.source), variables)
        prompts.append(Prompt(index, names[target], ids[0], template.id, attributes, text.strip(), ids))
    return prompts


def _shared_examples(pools: Sequence[Sequence[str]]) -> list[str]:
    """The texts in every pool, in the first pool's order: seed examples of all of a target's labels."""
    common = set(pools[0]).intersection(*pools[1:]) if len(pools) > 1 else None
    return [t for t in pools[0] if common is None or t in common]


def _where(template_id: str, source: str) -> str:
    return f"template {template_id!r} in {source}"


def group_seed_examples(rows, labels: Sequence[str]) -> dict[str, list[str]]:
    """``[{'text':..., 'label':...}]`` (label as name or id, or a list of them for multi-label rows) or a ``Dataset``
    → ``{label: [texts]}``, checked; a multi-label text is an example of each of its labels."""
    if rows is None:
        return {}
    if hasattr(rows, "features"):  # a datasets.Dataset with a ClassLabel / List(ClassLabel) (or string) label
        feature = rows.features["label"]
        feature = getattr(feature, "feature", feature)  # List(ClassLabel): the names are on the item
        names = getattr(feature, "names", None)
        spell = (lambda y: names[y]) if names else (lambda y: y)  # noqa: E731
        rows = [{"text": t, "label": [spell(v) for v in y] if isinstance(y, list) else spell(y)}
                for t, y in zip(rows["text"], rows["label"])]  # fmt: skip
    grouped: dict[str, list[str]] = {}
    for row in rows:
        if not isinstance(row, Mapping) or "text" not in row or "label" not in row:
            raise ConfigError(f"Seed examples need 'text' and 'label'; got {row!r}.")
        text = str(row["text"]).strip()
        for label in row["label"] if isinstance(row["label"], list | tuple) else [row["label"]]:
            if isinstance(label, int) and not isinstance(label, bool) and 0 <= label < len(labels):
                label = labels[label]
            if label not in labels:
                raise ConfigError(f"Seed example label {label!r} is not among the labels {list(labels)}.")
            if text:
                grouped.setdefault(label, []).append(text)
    return grouped


def digest(data) -> str:
    """A short content hash of JSON-able ``data`` (templates, seed examples) for the run's fingerprint."""
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]
