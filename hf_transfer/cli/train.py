"""``hf-transfer <strategy>``: run a registered strategy from flags and/or a YAML recipe."""

from __future__ import annotations

import json
import sys

from transformers import HfArgumentParser

from ..config import DataArguments
from ..errors import HfTransferError
from ..registry import get_strategy
from .parsing import parse_with_config


def make_parser(strategy: str) -> HfArgumentParser:
    config_cls, _ = get_strategy(strategy).load()
    parser = HfArgumentParser((DataArguments, config_cls), prog=f"hf-transfer {strategy}")
    parser.add_argument(
        "--config", default=None, help="YAML recipe; its values replace defaults, command-line flags replace both."
    )
    return parser


def main(strategy: str, argv: list[str] | None = None) -> dict:
    parser = make_parser(strategy)
    _, run = get_strategy(strategy).load()
    try:
        data_args, config = parse_with_config(parser, argv)
    except ValueError as err:  # ConfigError, or a config class's __post_init__ check
        parser.exit(2, f"hf-transfer {strategy}: error: {err}\n")
    try:
        results = run(config, data_args)
    except HfTransferError as err:  # bad data or options found before training: no traceback needed
        parser.exit(2, f"hf-transfer {strategy}: error: {err}\n")
    from accelerate import PartialState

    if PartialState().is_main_process:
        summary = {k: v for k, v in results.items() if not isinstance(v, list | dict)}
        print(json.dumps(summary, indent=2), file=sys.stdout, flush=True)
    return results
