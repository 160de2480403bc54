"""``hf-transfer <strategy>``: run a registered strategy from flags and/or a YAML recipe."""

from __future__ import annotations

import json
import sys

from transformers import HfArgumentParser

from ..config import DataArguments
from ..errors import HfTransferError
from ..hub import PushError
from ..output import SaveError
from ..registry import get_strategy
from .parsing import parse_with_config


def make_parser(strategy: str) -> HfArgumentParser:
    config_cls, _ = get_strategy(strategy).load()
    # allow_abbrev=False: a mistyped flag (--n_per_clas) is an error, not silently the option it prefixes.
    parser = HfArgumentParser((DataArguments, config_cls), prog=f"hf-transfer {strategy}", allow_abbrev=False)
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
    except PushError as err:  # trained and saved: what is safe first, then the one-line cause
        _print_summary(err.results or {}, err.folder)
        parser.exit(1, f"hf-transfer {strategy}: error: {err}\n")
    except SaveError as err:  # trained, but the folder could not be written: the message says where it went
        parser.exit(1, f"hf-transfer {strategy}: error: {err}\n")
    except HfTransferError as err:  # bad data or options found before training: no traceback needed
        parser.exit(2, f"hf-transfer {strategy}: error: {err}\n")
    from accelerate import PartialState

    if PartialState().is_main_process:
        _print_summary(results, config.output_dir)
    return results


def _print_summary(results: dict, folder: str | None) -> None:
    """The run's scalar results as JSON on stdout, then where its folder is (stderr: stdout stays JSON)."""
    summary = {k: v for k, v in results.items() if not isinstance(v, list | dict)}
    print(json.dumps(summary, indent=2), file=sys.stdout, flush=True)
    if folder:
        print(f"Output folder: {folder}", file=sys.stderr, flush=True)
