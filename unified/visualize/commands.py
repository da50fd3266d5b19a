"""The ``--explain``, ``--html``, ``--model-explorer`` options of ``unified plan``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from unified.errors import InputError
from unified.log import logger as log

__all__ = ["add_plan_arguments", "plan_outputs"]


def add_plan_arguments(p: argparse.ArgumentParser) -> None:
    """Add the options to the ``plan`` parser."""
    p.add_argument("--explain", action="store_true",
                   help="why the plan fragments: each island of nodes off the preferred delegate, the reasons, "
                        "its boundary bytes and copy time, and the rewrite that removes it (with --json: as JSON)")
    p.add_argument("--html", metavar="OUT.html", help="write a self-contained HTML picture of the partition graph")
    p.add_argument("--model-explorer", metavar="OUT.json",
                   help="write Model Explorer node data: partition to OUT.json; delegate, latency and errors beside it")
    p.add_argument("--errors", metavar="COMPARE.json", help="with --model-explorer: per-node errors (unified compare rows)")
    p.add_argument("--latency", metavar="PROFILE.json",
                   help="with --model-explorer: partition timings (profile.json of unified run --profile --output-dir)")


def _read_profile(path: str) -> list:
    try:
        rows = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"--latency '{path}': cannot read it as JSON ({exc})") from None
    if not isinstance(rows, list) or not all(isinstance(r, dict) and {"index", "runs", "total_seconds"} <= set(r)
                                             for r in rows):
        raise InputError(f"--latency '{path}': expected a list of partition profiles with index, runs, total_seconds "
                         "(the profile.json of unified run --profile --output-dir)")
    return rows


def plan_outputs(args, built, options) -> bool:
    """Write the pictures and print the explanation that ``args`` ask for.

    Args:
        args: the parsed ``plan`` arguments.
        built: the ``PlannedModel`` (or ``CompiledModel``) of ``args.model``.
        options: the ``SessionOptions`` it was planned with.

    Returns:
        True when it printed the command's main output (``--explain``).

    Raises:
        InputError: ``--errors``/``--latency`` without ``--model-explorer``,
            or an unreadable file.
    """
    from unified.cli import parse_delegates

    if (args.errors or args.latency) and not args.model_explorer:
        raise InputError("--errors and --latency go with --model-explorer OUT.json")
    explanation = None
    if args.explain:
        from unified.explain import explain

        log.info("explaining: planning each candidate rewrite")
        explanation = explain(args.model, parse_delegates(args.delegates), options, planned=built)
        if args.json:
            print(explanation.to_json())
        else:
            print(built.plan)
            print()
            print(explanation)
    if args.html:
        from unified.visualize.html import write_plan_html

        path = write_plan_html(built.plan, args.html, f"plan of {Path(args.model).name}", explanation)
        log.info("wrote %s", path)
    if args.model_explorer:
        from unified.visualize.model_explorer import load_errors, write_node_data

        errors = load_errors(args.errors) if args.errors else None
        profile = _read_profile(args.latency) if args.latency else None
        for path in write_node_data(built, args.model_explorer, profile, errors):
            log.info("wrote %s", path)
    return explanation is not None
