"""Latency of the tflite delegate against ONNX Runtime on the same host.

Models: ``light_resnet50`` (weights re-drawn, seed 0) and the MobileNet-style
net from ``unified.conformance.nets``. For each model and thread count, an
``InferenceSession(model, delegates=["tflite"])`` (LiteRT + XNNPACK, through
unified) and a plain ``onnxruntime.InferenceSession`` (CPU EP, all graph
optimizations) run the same input, alternating one run each so both see the
same machine load; the figure is the median of the per-run wall times.

Usage:
    .venv/bin/python benchmarks/tflite_vs_ort.py [--runs 50] [--threads 1 2] [--markdown]

Prints one row per (model, threads): median ms of each and the ratio
tflite / onnxruntime (target: <= 1.5).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time

import onnx

from _versus_ort import models, ort_session


def measure(model: onnx.ModelProto, threads: int, runs: int, warmup: int = 5) -> dict[str, float]:
    """Median wall time (seconds) of tflite and onnxruntime, alternating runs."""
    from unified import InferenceSession, SessionOptions
    from unified.conformance import zoo

    feeds = zoo.random_inputs(model, seed=0)
    with tempfile.TemporaryDirectory() as cache:
        tfl = InferenceSession(model, delegates=[("tflite", {"num_threads": threads})],
                               options=SessionOptions(strict=True, cache_dir=cache))
        ort = ort_session(model, threads)
        transposes = sum(c.executable.details.get("transposes", 0) for c in tfl.partitions)
        for _ in range(warmup):
            tfl.run(None, feeds)
            ort.run(None, feeds)
        t_tfl, t_ort = [], []
        for _ in range(runs):
            start = time.perf_counter()
            tfl.run(None, feeds)
            t_tfl.append(time.perf_counter() - start)
            start = time.perf_counter()
            ort.run(None, feeds)
            t_ort.append(time.perf_counter() - start)
    a, b = statistics.median(t_tfl), statistics.median(t_ort)
    return {"tflite": a, "onnxruntime": b, "ratio": a / b, "transposes": transposes}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=50)
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = p.parse_args()
    import onnxruntime
    from importlib.metadata import version

    print(f"# host: {platform.processor() or platform.machine()}, onnxruntime {onnxruntime.__version__}, "
          f"ai-edge-litert {version('ai-edge-litert')}, {args.runs} alternating runs")
    rows = []
    for name, model in models().items():
        for threads in args.threads:
            r = measure(model, threads, args.runs)
            rows.append((name, threads, r))
    if args.markdown:
        print("| model | threads | tflite ms | onnxruntime ms | tflite / ORT | TRANSPOSE ops |")
        print("|---|---|---|---|---|---|")
    for name, threads, r in rows:
        if args.markdown:
            print(f"| {name} | {threads} | {r['tflite'] * 1e3:.2f} | {r['onnxruntime'] * 1e3:.2f} | "
                  f"{r['ratio']:.2f}x | {r['transposes']} |")
        else:
            print(f"{name:16s} threads={threads}  tflite {r['tflite'] * 1e3:8.2f} ms  onnxruntime "
                  f"{r['onnxruntime'] * 1e3:8.2f} ms  ratio {r['ratio']:.2f}x  transposes {r['transposes']}")


if __name__ == "__main__":
    main()
