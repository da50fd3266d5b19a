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

import onnx

from _versus_ort import alternate, models, ort_session, print_rows


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
        t_tfl, t_ort = alternate(lambda: tfl.run(None, feeds), lambda: ort.run(None, feeds), runs, warmup)
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
    print_rows(
        rows, args.markdown, ("model", "threads", "tflite ms", "onnxruntime ms", "tflite / ORT", "TRANSPOSE ops"),
        lambda row: (row[0], row[1], f"{row[2]['tflite'] * 1e3:.2f}", f"{row[2]['onnxruntime'] * 1e3:.2f}",
                     f"{row[2]['ratio']:.2f}x", row[2]["transposes"]),
        lambda row: (f"{row[0]:16s} threads={row[1]}  tflite {row[2]['tflite'] * 1e3:8.2f} ms  onnxruntime "
                     f"{row[2]['onnxruntime'] * 1e3:8.2f} ms  ratio {row[2]['ratio']:.2f}x  "
                     f"transposes {row[2]['transposes']}"),
    )


if __name__ == "__main__":
    main()
