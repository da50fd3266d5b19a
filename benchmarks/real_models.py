"""The real-model corpus: the default plan and its latency against ONNX Runtime alone.

For each model of ``unified.conformance.real_models`` (first input variant
unless ``--all-variants``): the default ``unified.InferenceSession(path)``
(every available delegate, default priority, fallback on), its plan (nodes
per delegate, partitions), and the median wall time of its ``run()`` against
a plain ``onnxruntime.InferenceSession`` (CPU EP, all graph optimizations,
``--threads`` intra-op threads), measured alternating one run each in one
process so both see the same machine load. The outputs are checked against
ONNX Runtime at each output's own scale (max abs error / max |ref|).

A model whose default session fails to build or run gets ``fails: <first
line of the error>`` instead of figures; one that cannot be fetched (no
network) gets ``skipped: <reason>``.

Usage:
    .venv/bin/python benchmarks/real_models.py [--runs 20] [--threads 2] [--models magika nudenet]
        [--all-variants] [--markdown]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
import warnings

import numpy as np
import onnx

from _versus_ort import alternate, ort_session


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:160]


def measure(name: str, variant: str, runs: int, threads: int, cache: str, warmup: int = 3) -> dict:
    """Plan, medians (seconds) and worst relative error of one model and input."""
    import unified
    from unified.conformance import real_models as rm

    row: dict = {"model": name, "variant": variant}
    try:
        path = rm.fetch(name)
        feeds = rm.inputs(name, variant)
    except rm.ModelUnavailableError as exc:
        return {**row, "status": f"skipped: {_first_line(exc)}"}
    ort = ort_session(onnx.load(str(path)), threads)
    expected = ort.run(None, feeds)
    try:
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sess = unified.InferenceSession(str(path), options=unified.SessionOptions(cache_dir=cache))
            row["build_s"] = time.perf_counter() - start
            row["plan"] = sess.plan.node_counts()
            row["partitions"] = len(sess.plan.partitions)
            got = sess.run(None, feeds)
            t_uni, t_ort = alternate(lambda: sess.run(None, feeds), lambda: ort.run(None, feeds), runs, warmup - 1)
        rel = max(float(np.max(np.abs(np.asarray(g, np.float64) - e))) / max(float(np.max(np.abs(e))), 1e-30)
                  for g, e in zip(got, expected, strict=True))
    except Exception as exc:  # a benchmark records the failure and goes on
        return {**row, "status": f"fails: {_first_line(exc)}"}
    a, b = statistics.median(t_uni), statistics.median(t_ort)
    return {**row, "status": "ok", "unified": a, "onnxruntime": b, "ratio": a / b, "rel_err": rel}


def main() -> None:
    from unified.conformance import real_models as rm

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--threads", type=int, default=2, help="intra-op threads of the plain ORT session")
    p.add_argument("--models", nargs="+", default=list(rm.CORPUS), choices=list(rm.CORPUS))
    p.add_argument("--all-variants", action="store_true", help="every input variant, not only the first")
    p.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = p.parse_args()
    import onnxruntime

    print(f"# host: {platform.processor() or platform.machine()}, onnxruntime {onnxruntime.__version__}, "
          f"{args.runs} alternating runs, ORT alone with {args.threads} threads", flush=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="unified-bench-") as cache:
        for name in args.models:
            for variant in (rm.variants(name) if args.all_variants else rm.variants(name)[:1]):
                r = measure(name, variant, args.runs, args.threads, cache)
                rows.append(r)
                if not args.markdown:
                    print(r, flush=True)
    if args.markdown:
        print("| model | input | default plan (nodes per delegate) | partitions | unified ms | ONNX Runtime ms "
              "| unified / ORT | max err / max\\|ref\\| |")
        print("|---|---|---|---|---|---|---|---|")
        for r in rows:
            if r["status"] != "ok":
                plan = ", ".join(f"{k} {v}" for k, v in r.get("plan", {}).items())
                print(f"| {r['model']} | {r['variant']} | {plan or '—'} | {r.get('partitions', '—')} "
                      f"| {r['status']} | | | |")
                continue
            plan = ", ".join(f"{k} {v}" for k, v in sorted(r["plan"].items(), key=lambda kv: -kv[1]))
            print(f"| {r['model']} | {r['variant']} | {plan} | {r['partitions']} | {r['unified'] * 1e3:.2f} "
                  f"| {r['onnxruntime'] * 1e3:.2f} | {r['ratio']:.2f}x | {r['rel_err']:.1e} |")


if __name__ == "__main__":
    main()
