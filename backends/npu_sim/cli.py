"""``unified simulate``: cost a model on the simulated NPU and write reports.

    unified simulate MODEL [--hw PRESET|FILE] [--dtype int8|fp16|fp32]
                     [--out DIR] [--dim NAME=VALUE ...] [--array RxC]
                     [--dataflow os|ws|is] [--max-rows N] [--no-png]

Prints the per-op table and totals, and writes ``<model>.json``,
``<model>.csv`` and ``<model>_roofline.png`` into ``--out`` (default
``./simulation``). ``--dtype`` defaults to the hardware's first dtype (int8
for every preset). Exit codes as every ``unified`` command: 1 for a
``UnifiedError`` (bad preset, TOML or model).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from unified.cli_command import Command
from unified.errors import InputError

__all__ = ["simulate_command"]


def _add_arguments(p: argparse.ArgumentParser) -> None:
    from unified.backends.npu_sim.hardware import preset_names

    p.add_argument("model", help="path to a .onnx model")
    p.add_argument(
        "--hw",
        default="scalesim-32",
        metavar="PRESET|FILE",
        help=f"hardware preset ({', '.join(preset_names())}) or a TOML file (default scalesim-32)",
    )
    p.add_argument("--dtype", default=None, choices=["int8", "fp16", "fp32"], help="default: the first the hardware supports")
    p.add_argument("--out", default="simulation", metavar="DIR", help="folder for JSON, CSV and the roofline PNG")
    p.add_argument("--dim", action="append", metavar="NAME=VALUE", help="value of a symbolic input dim (default 1)")
    p.add_argument("--array", metavar="RxC", help="override the array shape, e.g. 16x64")
    p.add_argument("--dataflow", choices=["os", "ws", "is"], help="override the dataflow")
    p.add_argument("--max-rows", type=int, default=60, help="ops shown in the table (all are in the CSV)")
    p.add_argument("--no-png", action="store_true", help="skip the roofline chart")


def _dims(items) -> dict[str, int]:
    dims = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not value.strip().isdigit():
            raise InputError(f"--dim {item!r}: expected NAME=VALUE with a positive integer VALUE")
        dims[name] = int(value)
    return dims


def _run(args: argparse.Namespace) -> int:
    from unified.backends.npu_sim.hardware import load_hardware
    from unified.backends.npu_sim.workload import simulate_model

    hw = load_hardware(args.hw)
    changes = {}
    if args.array:
        r, sep, c = args.array.lower().partition("x")
        if not sep or not r.isdigit() or not c.isdigit():
            raise InputError(f"--array {args.array!r}: expected ROWSxCOLS, e.g. 16x64")
        changes.update(rows=int(r), cols=int(c))
    if args.dataflow:
        changes["dataflow"] = args.dataflow
    if changes:
        hw = hw.with_(**changes)
    dtype = args.dtype or hw.dtypes[0]
    report = simulate_model(args.model, hw, dtype, _dims(args.dim))
    print(report.table(max_rows=args.max_rows))
    paths = report.write(args.out, stem=Path(args.model).stem, roofline=not args.no_png)
    for kind, path in paths.items():
        print(f"wrote {path}")
    return 0


def simulate_command() -> Command:
    """The ``simulate`` subcommand object."""
    return Command(
        name="simulate",
        help="cycles, DRAM traffic and energy per op on the simulated NPU (npu-sim)",
        add_arguments=_add_arguments,
        run=_run,
    )
