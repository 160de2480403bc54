"""Jinja templates from user files (prompt templates, card templates), rendered so that no code in them runs.

A plain ``jinja2.Environment`` lets a template reach Python: ``{{ lipsum.__globals__['os'].system(...) }}``
or ``{{ self.__init__.__globals__.__builtins__.open(...) }}`` run code and write files. Templates are data
here, so they are rendered in Jinja's immutable sandbox with no globals, and checked when they are loaded,
before any model loads: an attribute or key starting with ``_``, a Jinja global (``lipsum``, ``cycler``,
``namespace``, ``range``, ...), ``self`` and tags that read other files are refused with a ``ConfigError``
naming the file and the expression. The sandbox still stops what a static check cannot see (a key built at
render time, a mutating method such as ``list.append``), and that too is a ``ConfigError``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from functools import lru_cache
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.defaults import DEFAULT_NAMESPACE
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

from .errors import ConfigError

# Names that are not placeholders but would reach Jinja's own objects: its default globals, and ``self``
# (the template itself, which Jinja binds whatever the variables are).
JINJA_NAMES = frozenset(DEFAULT_NAMESPACE) | {"self"}
# Tags that load other templates: a template from a file must not read further files.
_LOADING_TAGS = {nodes.Include: "include", nodes.Import: "import", nodes.FromImport: "from", nodes.Extends: "extends"}
_WHY = (
    "a template may use its placeholders, loops, conditions and filters, but no attribute or key starting "
    "with '_', no Jinja global and no other template, so that a template file cannot run code"
)


class _Sandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox without globals, where an unsafe attribute raises instead of rendering ``''``
    (the sandbox's default with a lenient ``Undefined``, which would hide an attack in a card)."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.globals.clear()

    def unsafe_undefined(self, obj: Any, attribute: str) -> jinja2.Undefined:
        raise SecurityError(f"access to attribute {attribute!r} of a {type(obj).__name__!r} object is unsafe")


# Prompt templates: a missing placeholder is an error. Cards: jinja2.Template's defaults (a missing variable
# renders as ''), as huggingface_hub's RepoCard.from_template renders them, so cards come out the same.
STRICT_ENV = _Sandbox(undefined=jinja2.StrictUndefined, keep_trailing_newline=False, autoescape=False)
LENIENT_ENV = _Sandbox()


def parse(text: str, source: str, *, strict: bool = True, allowed: frozenset[str] = frozenset()) -> nodes.Template:
    """Parse ``text`` and refuse expressions that reach Python (see :func:`check_ast`). ``source`` names the
    template in messages, e.g. ``"template 't0' in /x/t.yaml"``; ``allowed`` are variable names the template
    is given even if they shadow a Jinja global (a prompt attribute called ``range``)."""
    try:
        ast = _env(strict).parse(text)
    except jinja2.TemplateSyntaxError as err:
        raise ConfigError(f"{source} is not valid Jinja: {err}") from None
    check_ast(ast, source, allowed=allowed)
    return ast


def check_ast(ast: nodes.Node, source: str, *, allowed: frozenset[str] = frozenset()) -> None:
    """Raise ``ConfigError`` naming the first hostile expression in ``ast``: attribute and key names starting
    with ``_`` are reported before Jinja names and loading tags (the name in ``lipsum.__globals__`` is the
    symptom, the attribute the attack)."""
    found = sorted(_offences(ast, allowed), key=lambda offence: offence[0])
    if found:
        _, name, what = found[0]
        raise ConfigError(f"{source} uses {name!r} ({what}); {_WHY}. Remove it from the template.")


def render(text: str, source: str, variables: Mapping[str, Any], *, strict: bool = True) -> str:
    """``text`` rendered with ``variables`` in the sandbox; checked first (once per text, with the variables'
    names allowed to shadow Jinja globals). A ``ConfigError`` names ``source`` if the template is hostile or
    fails to render. ``strict``: a missing variable is an error (prompt templates), not ``''`` (card templates)."""
    template = _compile(text, source, strict, frozenset(variables))
    try:
        return template.render(**variables)
    except SecurityError as err:
        raise ConfigError(f"{source} was stopped by the template sandbox: {err}; {_WHY}.") from None
    except jinja2.TemplateError as err:
        raise ConfigError(f"{source} failed to render: {type(err).__name__}: {err}") from None


@lru_cache(maxsize=256)
def _compile(text: str, source: str, strict: bool, allowed: frozenset[str]) -> jinja2.Template:
    """Parse, check and compile once: prompt templates render once per row."""
    return _env(strict).from_string(parse(text, source, strict=strict, allowed=allowed))


def _env(strict: bool) -> _Sandbox:
    return STRICT_ENV if strict else LENIENT_ENV


def _offences(node: nodes.Node, allowed: frozenset[str]) -> Iterator[tuple[int, str, str]]:
    """``(rank, name, description)`` of each hostile expression under ``node``, innermost first."""
    for child in node.iter_child_nodes():
        yield from _offences(child, allowed)
    if isinstance(node, nodes.Getattr) and node.attr.startswith("_"):
        yield 0, node.attr, f"attribute {_expr(node)!r}"
    elif isinstance(node, nodes.Getitem) and _private(node.arg):
        yield 0, node.arg.value, f"key {_expr(node)!r}"
    elif isinstance(node, nodes.Filter | nodes.Test):
        for arg in [*node.args, *(keyword.value for keyword in node.kwargs)]:
            if _private(arg):
                kind = "filter" if isinstance(node, nodes.Filter) else "test"
                yield 0, arg.value, f"argument of the {kind} {node.name!r}"
    elif isinstance(node, nodes.Name) and node.name == "self":  # bound by Jinja whatever the variables are
        yield 1, node.name, "the template object, not a placeholder"
    elif isinstance(node, nodes.Name) and node.name in JINJA_NAMES and node.name not in allowed:
        yield 1, node.name, "a Jinja global, not a placeholder"
    elif type(node) in _LOADING_TAGS:
        yield 1, "{% " + _LOADING_TAGS[type(node)] + " %}", "a tag that loads another template"


def _private(node: nodes.Node) -> bool:
    return isinstance(node, nodes.Const) and isinstance(node.value, str) and node.value.startswith("_")


def _expr(node: nodes.Node) -> str:
    """Source-like text of an expression, for messages."""
    if isinstance(node, nodes.Name):
        return node.name
    if isinstance(node, nodes.Const):
        return repr(node.value)
    if isinstance(node, nodes.Getattr):
        return f"{_expr(node.node)}.{node.attr}"
    if isinstance(node, nodes.Getitem):
        return f"{_expr(node.node)}[{_expr(node.arg)}]"
    if isinstance(node, nodes.Call):
        return f"{_expr(node.node)}(...)"
    if isinstance(node, nodes.Filter) and node.node is not None:
        return f"{_expr(node.node)} | {node.name}"
    return "..."
