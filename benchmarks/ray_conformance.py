"""Wall time of ``unified conformance run --ray`` against the local runner, on the same cases.

Runs the ONNX node tests (``--fast`` by default; ``--all`` for every one) on
onnxruntime and reference three ways, all with ``--jobs`` cases at once:

1. the local runner (``jobs`` worker processes);
2. Ray, *cold*: a one-node Ray instance started here (``--jobs`` CPUs, this
   host's ``unified:*`` resources; start time printed apart), first run: its
   worker processes start and import the delegates inside the run;
3. Ray, *warm*: the same run again on the same driver, whose Ray workers (and
   their loaded plugins) are reused.

Then where the Ray run's time goes: cluster start; worker warm-up (cold minus
warm); dispatch and result transfer (warm wall time minus the summed case
time over ``--jobs``), with the pickled size of the results. The local
runner's wall time includes starting its own worker processes. Checks that both runs give the same
statuses. Run it on a quiet machine: numbers under load are meaningless.

Usage::

    .venv/bin/python benchmarks/ray_conformance.py [--jobs 2] [--all] [-k PATTERN] [--address ADDR]
"""

from __future__ import annotations

import argparse
import logging
import pickle
import sys
import time

DELEGATES = ["onnxruntime", "reference"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=2, help="cases at once, both runners (Ray: the node's CPUs)")
    ap.add_argument("--all", action="store_true", help="every node test, not the --fast subset")
    ap.add_argument("-k", dest="pattern", default=None, help="only cases matching (as unified conformance run -k)")
    ap.add_argument("--address", default=None, help="an existing Ray cluster instead of a local one-node instance")
    args = ap.parse_args(argv)

    import ray

    from unified.conformance.cases import gather_cases
    from unified.conformance.runner import run_conformance
    from unified.integrations.ray import node_resources

    _, cases = gather_cases(["onnx-node"], args.pattern, fast=not args.all)
    print(f"{len(cases)} node test(s) x {DELEGATES}, {args.jobs} at once")
    t = time.perf_counter()
    local = run_conformance(cases, DELEGATES, jobs=args.jobs)
    local_s = time.perf_counter() - t

    t = time.perf_counter()
    kw = {"logging_level": logging.ERROR, "log_to_driver": False}
    if args.address:
        ray.init(address=args.address, **kw)
    else:
        ray.init(num_cpus=args.jobs, resources=node_resources(), include_dashboard=False, **kw)
    start_s = time.perf_counter() - t
    try:
        runs = []
        for _ in range(2):
            t = time.perf_counter()
            report = run_conformance(cases, DELEGATES, ray=args.address or "local")
            runs.append((time.perf_counter() - t, report))
    finally:
        ray.shutdown()
    (cold_s, cold), (warm_s, warm) = runs
    same = [(r.case, r.delegate, r.status) for r in local.results] == [(r.case, r.delegate, r.status)
                                                                       for r in warm.results]
    case_s = sum(r.seconds for r in local.results)
    size = len(pickle.dumps(warm.results))
    print(f"| run | wall s | results |\n|---|---|---|")
    print(f"| local runner, {args.jobs} workers | {local_s:.1f} | {len(local.results)} |")
    print(f"| Ray cluster start | {start_s:.1f} | - |")
    print(f"| Ray, cold workers | {cold_s:.1f} | {len(cold.results)} |")
    print(f"| Ray, warm workers | {warm_s:.1f} | {len(warm.results)} |")
    busy = sum(r.seconds for r in warm.results) / args.jobs  # the case work spread over the slots
    print(f"\nsummed case time: local {case_s:.1f} s, Ray warm {busy * args.jobs:.1f} s; "
          f"worker warm-up ~{cold_s - warm_s:.1f} s (cold minus warm); dispatch + transfer ~{warm_s - busy:.1f} s "
          f"(warm wall minus case time / {args.jobs}: {1e3 * (warm_s - busy) / max(1, len(warm.results)):.1f} ms "
          f"a task); results {size / 1024:.0f} KiB pickled; statuses equal to local: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
