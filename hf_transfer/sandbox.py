"""Jinja templates from user files (prompts, cards), rendered so that no code in them runs.

A plain ``jinja2.Environment`` lets ``{{ lipsum.__globals__['os'].system(...) }}`` run code. So templates are
checked when loaded, before any model loads, and rendered in Jinja's immutable sandbox with no globals, which stops
what a static check cannot see (a key built at render time, ``list.append``); refusals are ``ConfigError``s.
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

# Not placeholders but Jinja's own objects: its default globals, and ``self`` (bound whatever the variables are).
JINJA_NAMES = frozenset(DEFAULT_NAMESPACE) | {"self"}
# Tags that load other templates: a template from a file must not read further files.
_LOADING_TAGS = {nodes.Include: "include", nodes.Import: "import", nodes.FromImport: "from", nodes.Extends: "extends"}
_WHY = (
    "a template may use its placeholders, loops, conditions and filters, but no attribute or key starting "
    "with '_', no Jinja global and no other template, so that a template file cannot run code"
)


class _Sandbox(ImmutableSandboxedEnvironment):
    """Without globals; an unsafe attribute raises instead of rendering ``''`` (which would hide an attack)."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.globals.clear()

    def unsafe_undefined(self, obj: Any, attribute: str) -> jinja2.Undefined:
        raise SecurityError(f"access to attribute {attribute!r} of a {type(obj).__name__!r} object is unsafe")


# Prompts: a missing placeholder is an error. Cards: jinja2.Template's defaults, as RepoCard.from_template uses.
_ENVS = {
    True: _Sandbox(undefined=jinja2.StrictUndefined, keep_trailing_newline=False, autoescape=False),
    False: _Sandbox(),
}


def parse(text: str, source: str, *, strict: bool = True, allowed: frozenset[str] = frozenset()) -> nodes.Template:
    """Parse ``text``, refusing expressions that reach Python; ``source`` names it in messages, ``allowed``
    are given variables that may shadow a Jinja global (a prompt attribute called ``range``)."""
    try:
        ast = _ENVS[bool(strict)].parse(text)
    except jinja2.TemplateSyntaxError as err:
        raise ConfigError(f"{source} is not valid Jinja: {err}") from None
    check_ast(ast, source, allowed=allowed)
    return ast


def check_ast(ast: nodes.Node, source: str, *, allowed: frozenset[str] = frozenset()) -> None:
    """Report ``_`` attributes and keys first: in ``lipsum.__globals__`` the attribute is the attack."""
    first = min(_offences(ast, allowed), key=lambda offence: offence[0], default=None)
    if first:
        raise ConfigError(f"{source} uses {first[1]!r} ({first[2]}); {_WHY}. Remove it from the template.")


def render(text: str, source: str, variables: Mapping[str, Any], *, strict: bool = True) -> str:
    """``text`` checked and rendered in the sandbox; ``strict``: a missing variable is an error, not ``''``."""
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
    return _ENVS[bool(strict)].from_string(parse(text, source, strict=strict, allowed=allowed))


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
