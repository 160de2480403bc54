"""``hf-transfer report FOLDER``: compare the runs under a folder (Markdown table + PNG plot)."""

from __future__ import annotations

import argparse
import sys

from ..errors import HfTransferError


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hf-transfer report",
        allow_abbrev=False,  # flags only by their whole name, as every hf-transfer command
        description="Compare the runs under FOLDER (every results.json, searched recursively): writes report.md "
        "(strategy x labels-per-class -> accuracy, macro-F1, wall time) and report.png (accuracy vs labels per "
        "class, one line per strategy, zero-shot floor as a reference line). Multi-label rows show micro-F1 and "
        "token-classification (NER) rows entity micro-F1 in the accuracy column, marked [micro-F1] and "
        "[entity micro-F1].",
    )
    parser.add_argument("folder", help="Folder holding the runs' output_dirs, e.g. outputs/ or outputs/demo.")
    parser.add_argument(
        "--output_dir", default=None, help="Where report.md and report.png go; default: FOLDER itself."
    )
    parser.add_argument("--title", default="Strategy comparison", help="Title of the report and the plot.")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = make_parser()
    args = parser.parse_args(argv)
    from ..report import write_report

    try:
        report = write_report(args.folder, args.output_dir, title=args.title)
    except HfTransferError as err:
        parser.exit(2, f"hf-transfer report: error: {err}\n")
    print(report.table)
    print(f"\nReport: {report.markdown_path}\nPlot:   {report.png_path}", file=sys.stdout, flush=True)
    return 0
