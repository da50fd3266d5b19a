"""Latency of the executorch delegate against ONNX Runtime on the same host.

Models: ``light_resnet50`` (weights re-drawn, seed 0) and the MobileNet-style
net from ``unified.conformance.nets``. For each model, an
``InferenceSession(model, delegates=["executorch"], strict=True)`` (the
``.pte`` program on the ExecuTorch runtime, XNNPACK, through unified) and a
plain ``onnxruntime.InferenceSession`` (CPU EP, all graph optimizations) run
the same input, alternating one run each so both see the same machine load;
the figure is the median of the per-run wall times. Both use the same thread
count: ExecuTorch's XNNPACK threadpool default (one per core) unless
``--threads`` resets it, and ORT's intra-op threads set to match.

Usage:
    .venv/bin/python benchmarks/executorch_vs_ort.py [--runs 50] [--threads 1 2] [--markdown]

Prints one row per model: median ms of each, the ratio executorch /
onnxruntime (target: <= 1.5) and the plan's xnnpack_ops / portable_ops.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile

import onnx

from _versus_ort import alternate, models, ort_session, print_rows


def measure(model: onnx.ModelProto, runs: int, warmup: int = 5, threads: int | None = None) -> dict:
    """Median wall time (seconds) of executorch and onnxruntime, alternating runs."""
    from executorch.extension.pybindings import portable_lib

    from unified import InferenceSession, SessionOptions
    from unified.conformance import zoo

    feeds = zoo.random_inputs(model, seed=0)
    if threads:
        portable_lib._unsafe_reset_threadpool(threads)  # XNNPACK's threadpool, process-wide
    with tempfile.TemporaryDirectory() as cache:
        et = InferenceSession(model, delegates=["executorch"], options=SessionOptions(strict=True, cache_dir=cache))
        threads = portable_lib._threadpool_get_thread_count()
        ort = ort_session(model, threads)
        t_et, t_ort = alternate(lambda: et.run(None, feeds), lambda: ort.run(None, feeds), runs, warmup)
    a, b = statistics.median(t_et), statistics.median(t_ort)
    return {"executorch": a, "onnxruntime": b, "ratio": a / b, "threads": threads, **et.plan.partitions[0].details}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=50)
    p.add_argument("--threads", type=int, nargs="+", default=[0], help="thread counts (0: the default)")
    p.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = p.parse_args()
    from importlib.metadata import version

    import onnxruntime

    print(f"# host: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, onnxruntime "
          f"{onnxruntime.__version__}, executorch {version('executorch')}, {args.runs} alternating runs")
    rows = [(name, measure(model, args.runs, threads=t or None)) for name, model in models().items()
            for t in args.threads]
    header = ("model", "threads", "executorch ms", "onnxruntime ms", "executorch / ORT", "xnnpack_ops", "portable_ops")
    print_rows(
        rows, args.markdown, header,
        lambda row: (row[0], row[1]["threads"], f"{row[1]['executorch'] * 1e3:.2f}",
                     f"{row[1]['onnxruntime'] * 1e3:.2f}", f"{row[1]['ratio']:.2f}x", row[1]["xnnpack_ops"],
                     row[1]["portable_ops"]),
        lambda row: (f"{row[0]:16s} threads={row[1]['threads']}  executorch {row[1]['executorch'] * 1e3:8.2f} ms  "
                     f"onnxruntime {row[1]['onnxruntime'] * 1e3:8.2f} ms  ratio {row[1]['ratio']:.2f}x  "
                     f"xnnpack_ops {row[1]['xnnpack_ops']}  portable_ops {row[1]['portable_ops']}"),
    )


if __name__ == "__main__":
    main()
