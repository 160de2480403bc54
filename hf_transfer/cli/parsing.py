"""One parser for YAML recipes and flags: defaults < YAML file < command-line flags.

Unknown YAML keys fail loudly (with the closest known name), as does an empty or non-mapping file,
so a typo in a recipe can never be silently ignored.
"""

from __future__ import annotations

import dataclasses
import difflib
from pathlib import Path

import yaml
from transformers import HfArgumentParser

from ..errors import ConfigError


def known_fields(parser: HfArgumentParser) -> set[str]:
    return {f.name for dtype in parser.dataclass_types for f in dataclasses.fields(dtype) if f.init}


def read_config_file(path: str | Path, known: set[str]) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"Config file {str(path)!r} does not exist.")
    try:
        values = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"Config file {str(path)!r} is not valid YAML: {err}") from None
    if values is None:
        raise ConfigError(f"Config file {str(path)!r} is empty; it must be a mapping of option: value.")
    if not isinstance(values, dict):
        raise ConfigError(
            f"Config file {str(path)!r} holds a {type(values).__name__}, not a mapping of option: value."
        )
    unknown = sorted(set(values) - known)
    if unknown:
        hints = []
        for key in unknown:
            close = difflib.get_close_matches(str(key), known, n=1)
            hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise ConfigError(f"Config file {str(path)!r} has unknown option(s): {', '.join(hints)}.")
    return values


def parse_with_config(parser: HfArgumentParser, argv: list[str] | None) -> tuple:
    """Parse ``argv`` into the parser's dataclasses, taking defaults from ``--config FILE`` when given."""
    pre = HfArgumentParser([], add_help=False, allow_abbrev=False)  # else it takes --con/--conf for --config
    pre.add_argument("--config", default=None)
    known, rest = pre.parse_known_args(argv)
    if known.config:
        values = read_config_file(known.config, known_fields(parser))
        # argparse only type-converts string defaults; YAML already gave typed values.
        parser.set_defaults(**values)
        missing_required = [a for a in parser._actions if a.required and a.dest in values]
        for action in missing_required:
            action.required = False
    outputs = parser.parse_args_into_dataclasses(args=rest, return_remaining_strings=True)
    remaining = outputs[-1]
    if remaining:
        raise ConfigError(f"Unknown command-line argument(s): {' '.join(remaining)}. See --help.")
    # Arguments added outside the dataclasses (``--config``) come back as one extra namespace: drop it.
    return tuple(outputs[: len(parser.dataclass_types)])
