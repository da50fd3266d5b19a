"""Latency of int8 (QDQ) models against their fp32 originals, per delegate.

Models: ``light_resnet50`` and ``light_squeezenet`` (weights re-drawn, seed
0, as the conformance ``models`` source draws them) and
the MobileNet-style net from ``unified.conformance.nets``. Each is quantized
with ``unified.quantize.quantize_static`` (QDQ format, per-channel
symmetric int8 weights, int8 activations, 32 seeded calibration inputs;
models below opset 13 are converted first), cached on disk as the
``quantized-models`` conformance source caches them. For each model and delegate
(``tflite``, ``executorch``), ``InferenceSession(fp32, [delegate])`` and
``InferenceSession(int8, [delegate])`` run the same input alternately, one run
each, so both see the same machine load (``_versus_ort.alternate``); the
figure is the median of the per-run wall times. A delegate that cannot take a
whole model (strict session fails) or is not installed gets its reason instead
of numbers.

Usage:
    .venv/bin/python benchmarks/quantized_speed.py [--runs 50] [--delegates tflite executorch] [--markdown]

Prints one row per (model, delegate): median fp32 ms, median int8 ms and the
ratio int8 / fp32 (below 1: int8 is faster).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile

import onnx

from _versus_ort import alternate, print_rows



def float_models() -> dict[str, onnx.ModelProto]:
    """The fp32 models (the light ones re-drawn as the conformance suite's ``models`` source does)."""
    from unified.conformance import nets, zoo

    out = {}
    for name in ("resnet50", "squeezenet"):
        out[f"light_{name}"] = zoo.redraw_weights(onnx.load(zoo.light_model_path(name)), seed=0)
    out["mobilenet_like"] = nets.mobilenet_like()
    return out


def quantize(name: str, model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` quantized by ``unified.quantize.quantize_static`` (QDQ int8, per-channel weights,
    32 seeded calibration inputs), through the conformance suite's on-disk cache."""
    from unified.conformance.quantized_models import cached_quantized

    return cached_quantized(name, model)


def measure(fp32: onnx.ModelProto, int8: onnx.ModelProto, delegate: str, runs: int) -> dict:
    """Median seconds of the fp32 and the int8 model on ``delegate`` (strict sessions), alternating runs."""
    from unified import InferenceSession, SessionOptions
    from unified.conformance import zoo

    feeds = zoo.random_inputs(fp32, seed=1000)
    with tempfile.TemporaryDirectory() as cache:
        opts = SessionOptions(strict=True, cache_dir=cache)
        try:
            a = InferenceSession(fp32, [delegate], options=opts)
            b = InferenceSession(int8, [delegate], options=opts)
        except Exception as exc:
            return {"error": f"{type(exc).__name__}: {' '.join(str(exc).split())[:160]}"}
        t_a, t_b = alternate(lambda: a.run(None, feeds), lambda: b.run(None, feeds), runs)
    fa, fb = statistics.median(t_a), statistics.median(t_b)
    return {"fp32": fa, "int8": fb, "ratio": fb / fa}


def _cells(row) -> tuple:
    name, delegate, r = row
    if "error" in r:
        return name, delegate, "-", "-", r["error"]
    return name, delegate, f"{r['fp32'] * 1e3:.2f}", f"{r['int8'] * 1e3:.2f}", f"{r['ratio']:.2f}x"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=50)
    p.add_argument("--delegates", nargs="+", default=["tflite", "executorch"])
    p.add_argument("--models", nargs="+", default=None, help="subset of: light_resnet50 light_squeezenet "
                   "mobilenet_like")
    p.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = p.parse_args()
    import onnxruntime

    print(f"# host: {platform.processor() or platform.machine()}, onnxruntime {onnxruntime.__version__}, "
          f"{args.runs} alternating runs (fp32, int8) per delegate")
    rows = []
    for name, fp32 in float_models().items():
        if args.models and name not in args.models:
            continue
        int8 = quantize(name.removeprefix("light_"), fp32)
        for delegate in args.delegates:
            rows.append((name, delegate, measure(fp32, int8, delegate, args.runs)))
    print_rows(rows, args.markdown, ("model", "delegate", "fp32 ms", "int8 ms", "int8 / fp32"), _cells,
               lambda row: "  ".join(str(c) for c in _cells(row)))


if __name__ == "__main__":
    main()
