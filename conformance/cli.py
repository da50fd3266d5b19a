"""``unified conformance``: run the suite, compare two runs, list cases.

::

    unified conformance run [--delegates a,b] [--sources s,t] [-k PATTERN] --out DIR
                            [--jobs N] [--timeout S] [--fast] [--plugin SPEC ...]
                            [--fail-on-false-claims] [--no-progress] [--ray [ADDRESS]]
    unified conformance diff OLD.json NEW.json      exit 1 on a regression
    unified conformance list [--sources s,t] [-k PATTERN] [--fast]

Exit codes: 0 success; 1 a regression (``diff``), a false claim with
``--fail-on-false-claims``, or a ``UnifiedError``; 2 bad usage.
"""

from __future__ import annotations

import argparse
import sys

from unified.cli_command import Command

__all__ = ["command"]


def _split(text: str | None) -> list[str] | None:
    if not text:
        return None
    return [t.strip() for t in text.split(",") if t.strip()] or None


def _add_selection(p: argparse.ArgumentParser) -> None:
    from unified.conformance.cases import selection_options

    p.add_argument("-k", dest="pattern", metavar="PATTERN",
                   help="only cases whose id, op or model matches (substring, or glob with * ? [])")
    for name, kw in selection_options().items():
        p.add_argument(f"--{name}", **kw)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="conformance_command", required=True)
    p = sub.add_parser("run", help="run delegates x cases and write report.json, junit.xml, summary.md, report.html")
    p.add_argument("--delegates", help="comma-separated delegate names, NAME:BACKEND for one backend, e.g. "
                        "coreml:mil-numpy (default: every registered delegate)")
    _add_selection(p)
    p.add_argument("--out", required=True, metavar="DIR", help="directory for the reports")
    p.add_argument("--jobs", type=int, default=None, help="worker processes (default: one per CPU core)")
    p.add_argument("--timeout", type=float, default=None, help="per-case time limit in seconds (default 60)")
    p.add_argument("--fail-on-false-claims", action="store_true", help="exit 1 when any delegate has a false claim")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                   help="run the cases as Ray tasks, routed by each node's unified:<delegate> resources: on the "
                        "cluster at ADDRESS (auto, HOST:PORT, ray://...), or without ADDRESS on a one-node "
                        "cluster started here (docs/ray.md)")
    p = sub.add_parser("diff", help="regressions and fixes between two report.json files (exit 1 on regression)")
    p.add_argument("old", help="the baseline report.json")
    p.add_argument("new", help="the new report.json")
    p = sub.add_parser("list", help="list the cases a run would use")
    _add_selection(p)
    p = sub.add_parser("fast-subset", help="derive the --fast subset (every claimed op x delegate pair once) "
                                           "from a full run's report.json")
    p.add_argument("report", help="report.json of a full run (all sources)")
    p.add_argument("-o", "--output", default=None, metavar="FILE",
                   help="where to write it (default: the package's conformance/data/fast_cases.json)")


def run(args: argparse.Namespace) -> int:
    return {"run": _run, "diff": _diff, "list": _list, "fast-subset": _fast_subset}[args.conformance_command](args)


def _fast_subset(args: argparse.Namespace) -> int:
    from unified.conformance.cases import ConformanceError
    from unified.conformance.fast import FAST_CASES_FILE, write_fast_cases
    from unified.conformance.report import load_report

    report = load_report(args.report)
    if report.options.get("fast"):
        raise ConformanceError(f"{args.report} is a --fast run; derive the subset from a full run")
    out = args.output or FAST_CASES_FILE
    data = write_fast_cases(report, out)
    pairs = sum(len(g) for g in data["pairs"].values())
    print(f"wrote {out}: {len(data['cases'])} case(s) covering {pairs} claimed op x delegate pair(s)")
    return 0


def _run(args: argparse.Namespace) -> int:
    from unified.conformance.render import summary_table, write_reports
    from unified.conformance.cases import gather_cases
    from unified.conformance.runner import DEFAULT_TIMEOUT, run_conformance

    sources, cases = gather_cases(_split(args.sources), args.pattern, args.plugin, fast=args.fast)
    delegates = _split(args.delegates)
    print(f"{len(cases)} case(s) from {', '.join(sources)}; delegates: {', '.join(delegates or ['all'])}",
          file=sys.stderr)
    report = run_conformance(
        cases, delegates, plugins=args.plugin, jobs=args.jobs,
        timeout=args.timeout or DEFAULT_TIMEOUT, progress=not args.no_progress, sources=sources, ray=args.ray,
    )
    report.options.update({"pattern": args.pattern, "fast": args.fast})
    paths = write_reports(report, args.out)
    print(summary_table(report))
    print(f"\n{len(report.results)} result(s) in {report.duration_s:.1f} s; reports: "
          + ", ".join(str(p) for p in paths.values()))
    if args.fail_on_false_claims and any(s.false_claims for s in report.summary().values()):
        return 1
    return 0


def _diff(args: argparse.Namespace) -> int:
    from unified.conformance.diff import diff_reports
    from unified.conformance.report import load_report

    d = diff_reports(load_report(args.old), load_report(args.new))
    print(d.text())
    return 1 if d.regressions else 0


def _list(args: argparse.Namespace) -> int:
    from unified.conformance.cases import gather_cases

    _, cases = gather_cases(_split(args.sources), args.pattern, args.plugin, fast=args.fast)
    for c in cases:
        print(f"{c.id}\t{c.op or '-'}\t{c.dtype or '-'}")
    print(f"{len(cases)} case(s)", file=sys.stderr)
    return 0


def command() -> Command:
    """The ``conformance`` subcommand."""
    return Command("conformance", "op coverage and numerical parity of every delegate (run, diff, list)",
                   add_arguments, run)
