"""The ``hf-transfer`` command: one subcommand per registered strategy, plus ``report`` (compare runs), all
thin over the Python API."""

from __future__ import annotations

import argparse
import sys

from .. import __version__
from ..registry import STRATEGIES

# Subcommands that are not strategies: name -> (module with main(argv), help).
COMMANDS = {
    "report": ("hf_transfer.cli.report", "Compare the runs under a folder: Markdown table and accuracy plot."),
    "export": ("hf_transfer.cli.export", "Export a saved run's classifier to ONNX (optionally int8) for serving."),
}


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hf-transfer",
        allow_abbrev=False,
        description="Transfer learning for few-label text classification on the Hugging Face stack.",
    )
    parser.add_argument("--version", action="version", version=f"hf-transfer {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, strategy in sorted(STRATEGIES.items()):
        sub.add_parser(name, help=strategy.help, add_help=False)
    for name, (_, help_text) in sorted(COMMANDS.items()):
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = make_parser()
    if not argv:
        parser.print_help(sys.stderr)
        return 2
    if argv[0] in COMMANDS:
        import importlib

        return importlib.import_module(COMMANDS[argv[0]][0]).main(argv[1:])
    if argv[0] not in STRATEGIES:
        parser.parse_args(argv)  # prints help / version / the unknown-command error, and exits
        return 2
    from .train import main as train_main

    train_main(argv[0], argv[1:])
    return 0


if __name__ == "__main__":
    sys.exit(main())
