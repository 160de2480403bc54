"""``hf-transfer export FOLDER [--format onnx|static] [--quantize int8]``: a saved run for serving."""

from __future__ import annotations

import argparse

from ..errors import HfTransferError


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hf-transfer export",
        allow_abbrev=False,
        description="Export the classifier a finetune or labelmap run saved in FOLDER: model.onnx (inputs "
        "input_ids and attention_mask, output logits), its tokenizer and labels.json, for onnxruntime without "
        "PyTorch or hf_transfer. Needs the export extra: pip install 'hf-transfer-learning[export]'.",
    )
    parser.add_argument("folder", help="A run's output_dir (a saved model, adapters merged).")
    parser.add_argument(
        "--format",
        default="onnx",
        help="onnx (the classifier as is) or static (token vectors distilled from its encoder + its head: "
        "no attention at serving time, numpy only; sentence classifiers).",
    )
    parser.add_argument("--quantize", default=None, help="Also write model.int8.onnx (dynamic int8 quantisation).")
    parser.add_argument(
        "--distill_texts",
        default="run",
        help="static: texts to fit the head on, to the classifier's own predictions (labels never read): a "
        "dataset (file, folder, bundled:NAME) whose train texts are used; 'run' (default) = the train texts of the "
        "data set the run's results.json names; 'none' = keep the classifier's head.",
    )
    parser.add_argument("--output_dir", default=None, help="Where the files go; default: FOLDER/<format>.")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = make_parser()
    args = parser.parse_args(argv)
    from ..export import check_export, export_onnx, export_static, read_texts, run_texts

    try:
        check_export(args.folder, args.format, args.quantize)
        out = args.output_dir or f"{args.folder.rstrip('/')}/{args.format}"
        if args.format == "static":
            spec = args.distill_texts
            texts = None if spec == "none" else run_texts(args.folder) if spec == "run" else read_texts(spec)
            if texts is None and spec == "run":
                print("static head: the classifier's own (results.json names no data set; see --distill_texts)")
            files = export_static(args.folder, out, texts=texts)
        else:
            files = export_onnx(args.folder, out, quantize=args.quantize)
    except HfTransferError as err:
        parser.exit(2, f"hf-transfer export: error: {err}\n")
    for role, path in files.items():
        print(f"{role}: {path}")
    return 0
