"""Where a conformance run spends its time, from its report.json.

Prints the run's wall time, then per delegate x source the number of results
and the summed worker time (seconds; worker time overlaps across the
``jobs`` workers, so the sums exceed the wall time), and the slowest cases.

Usage::

    unified conformance run --delegates onnxruntime,reference --sources onnx-node,ops,models --out out
    .venv/bin/python benchmarks/conformance_times.py out/report.json
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("report", help="report.json")
    ap.add_argument("--slowest", type=int, default=8)
    args = ap.parse_args(argv)
    from unified.conformance import load_report

    report = load_report(args.report)
    print(f"wall time {report.duration_s:.1f} s for {len(report.results)} results "
          f"({len(report.cases)} cases x {len(report.delegates)} delegates), "
          f"{report.options.get('jobs')} workers on {report.host.get('cpus')} CPUs")
    sums: dict[tuple[str, str], list[float]] = defaultdict(list)
    for r in report.results:
        sums[(r.delegate, report.cases.get(r.case, {}).get("source", "?"))].append(r.seconds)
    print("| delegate | source | results | worker seconds | mean ms |")
    print("|---|---|---|---|---|")
    for (d, s), secs in sorted(sums.items()):
        print(f"| {d} | {s} | {len(secs)} | {sum(secs):.1f} | {1e3 * sum(secs) / len(secs):.1f} |")
    print("\nslowest:")
    for r in sorted(report.results, key=lambda r: -r.seconds)[: args.slowest]:
        print(f"  {r.seconds:7.1f} s  {r.delegate:<12} {r.case} ({r.status})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
