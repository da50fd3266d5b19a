"""``unified compare`` and ``unified bisect``: the command-line faces of :mod:`unified.debug`.

::

    unified compare MODEL --delegates tflite,executorch,reference [--all-tensors]
                    [--input NAME=FILE.npy ...] [--seed N] [--json OUT]
    unified compare Q.onnx --against FLOAT.onnx [--delegates a,b] [--json OUT]
    unified bisect MODEL --delegate D [--max-abs K | --cosine C] [--input ...] [--json OUT]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from unified.cli_command import Command
from unified.errors import InputError

__all__ = ["COMMANDS"]


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="path to a .onnx model")
    p.add_argument("--input", action="append", metavar="NAME=FILE.npy", help="an input value (others are random)")
    p.add_argument("--seed", type=int, default=0, help="seed for random inputs")
    p.add_argument("--json", metavar="OUT", help="also write the result as JSON to OUT")
    p.add_argument("--place", action="append", metavar="NODE_OR_OP=DELEGATE", help="placement override (repeatable)")
    p.add_argument("--cache-dir", help="compile cache directory (default ~/.cache/unified)")
    p.add_argument("--no-cache", action="store_true", help="do not read or write the compile cache")
    p.add_argument("--free-dim", action="append", metavar="NAME=VALUE", help="fix a symbolic input dim (repeatable)")
    p.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS,
                   help="debug lines, and the frameworks' own logging")
    p.set_defaults(strict=False, min_partition_nodes=1)


def _add_compare(p: argparse.ArgumentParser) -> None:
    _common(p)
    p.add_argument("--delegates", help="delegates to compare, each run alone with the onnxruntime fallback, "
                                       "e.g. tflite,executorch,reference")
    p.add_argument("--all-tensors", action="store_true",
                   help="make every intermediate tensor a partition boundary and compare it too")
    p.add_argument("--against", metavar="FLOAT.onnx",
                   help="compare MODEL (e.g. quantized) with this float model per output: KL, top-1/top-5, SQNR")


def _add_bisect(p: argparse.ArgumentParser) -> None:
    _common(p)
    p.add_argument("--delegate", required=True, help="the delegate to search (its plan, with onnxruntime behind)")
    gate = p.add_mutually_exclusive_group()
    gate.add_argument("--max-abs", type=float, metavar="K", help="tolerance: max abs error <= K x max(1, max|ref|) "
                                                                 "per tensor (default 1e-3)")
    gate.add_argument("--cosine", type=float, metavar="C", help="tolerance: cosine similarity >= C per tensor")


def _prepare(args):
    from unified.cli import _load_inputs, _session_options

    return _session_options(args), _load_inputs(args.input)


def _run_compare(args) -> int:
    from unified.cli import parse_delegates
    from unified.debug import compare, compare_models, format_rows, rows_to_json

    options, inputs = _prepare(args)
    delegates = parse_delegates(args.delegates) or []
    if args.against:
        if args.all_tensors:
            raise InputError("--all-tensors compares against ONNX Runtime on the same model; drop it with --against")
        rows = compare_models(args.model, args.against, delegates, inputs, options=options, seed=args.seed)
    else:
        if not delegates:
            raise InputError("compare needs --delegates (e.g. tflite,executorch,reference) or --against FLOAT.onnx")
        rows = compare(args.model, delegates, inputs, args.all_tensors, options=options, seed=args.seed)
    print(format_rows(rows))
    if args.json:
        Path(args.json).write_text(rows_to_json(rows))
        print(f"wrote {args.json} ({len(rows)} rows)")
    return 0


def _run_bisect(args) -> int:
    from unified.cli import parse_delegates
    from unified.debug import bisect, to_json

    options, inputs = _prepare(args)
    specs = parse_delegates(args.delegate) or []
    if len(specs) != 1:
        raise InputError(f"--delegate takes one delegate name, got {args.delegate!r}")
    tolerance = {"max_abs": args.max_abs} if args.max_abs is not None else (
        {"cosine": args.cosine} if args.cosine is not None else None)
    result = bisect(args.model, specs[0], inputs, tolerance=tolerance, options=options, seed=args.seed)
    print(result.report())
    if args.json:
        Path(args.json).write_text(to_json(result.to_dict()))
        print(f"wrote {args.json}")
    return 0


COMMANDS = (
    Command("compare", "per-tensor error of delegates against ONNX Runtime at every partition boundary",
            _add_compare, _run_compare),
    Command("bisect", "find the first node whose output on a delegate diverges from ONNX Runtime",
            _add_bisect, _run_bisect),
)
"""The two subcommands, added to ``unified``'s parser by ``unified.cli``."""
