"""tflite against executorch with default options: the converter's gap, not the hardware's.

Both delegates run XNNPACK kernels, so with the same threads the difference is
what each converter makes of the ONNX graph. Models: ``light_resnet50`` and
``light_squeezenet`` (weights re-drawn, seed 0). For each, a strict
``InferenceSession(model, ["tflite"])`` and ``InferenceSession(model,
["executorch"])``, both with their default options (tflite: one interpreter
thread per physical core; executorch: its threadpool's default), run the same
input alternately, one run each; the figure is the median.

Usage:
    .venv/bin/python benchmarks/tflite_vs_executorch.py [--runs 40] [--markdown]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile

import onnx

from _versus_ort import alternate, print_rows


def measure(name: str, runs: int) -> dict:
    """Median seconds of tflite and executorch (defaults, strict), alternating."""
    from unified import InferenceSession, SessionOptions
    from unified.conformance import zoo

    model = zoo.redraw_weights(onnx.load(zoo.light_model_path(name.removeprefix("light_"))), seed=0)
    feeds = zoo.random_inputs(model, seed=0)
    with tempfile.TemporaryDirectory() as cache:
        opts = SessionOptions(strict=True, cache_dir=cache)
        tfl = InferenceSession(model, ["tflite"], opts)
        et = InferenceSession(model, ["executorch"], opts)
        threads = tfl.plan.partitions[0].details.get("num_threads")
        t_tfl, t_et = alternate(lambda: tfl.run(None, feeds), lambda: et.run(None, feeds), runs)
    a, b = statistics.median(t_tfl), statistics.median(t_et)
    return {"tflite": a, "executorch": b, "ratio": a / b, "threads": threads}


def _cells(row) -> tuple:
    name, r = row
    return name, r["threads"], f"{r['tflite'] * 1e3:.2f}", f"{r['executorch'] * 1e3:.2f}", f"{r['ratio']:.2f}x"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=40)
    p.add_argument("--models", nargs="+", default=["light_resnet50", "light_squeezenet"])
    p.add_argument("--markdown", action="store_true")
    args = p.parse_args()
    from importlib.metadata import version

    print(f"# host: {platform.processor() or platform.machine()}, ai-edge-litert {version('ai-edge-litert')}, "
          f"executorch {version('executorch')}, {args.runs} alternating runs")
    rows = [(name, measure(name, args.runs)) for name in args.models]
    print_rows(rows, args.markdown, ("model", "tflite threads", "tflite ms", "executorch ms", "tflite / executorch"),
               _cells, lambda row: "  ".join(str(c) for c in _cells(row)))


if __name__ == "__main__":
    main()
