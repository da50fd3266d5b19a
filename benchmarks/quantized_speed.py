"""Latency of int8 (QDQ) models against their fp32 originals, per delegate.

Models: ``light_resnet50`` and ``light_squeezenet`` (weights re-drawn, seed
0, upgraded to opset 13 so per-channel DequantizeLinear is valid ONNX) and
the MobileNet-style net from ``unified.conformance.nets``. Each is quantized
with ``onnxruntime.quantization.quantize_static`` (QDQ format, per_channel=True,
int8 activations and weights, 32 calibration inputs from
``zoo.random_inputs`` with seeds 0..31). For each model and delegate
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
import os
import platform
import statistics
import tempfile

import onnx

from _versus_ort import alternate, print_rows

CALIBRATION_INPUTS = 32


def float_models() -> dict[str, onnx.ModelProto]:
    """The fp32 models, opset >= 13."""
    from onnx import version_converter

    from unified.conformance import nets, zoo

    out = {}
    for name in ("resnet50", "squeezenet"):
        m = zoo.redraw_weights(onnx.load(zoo.light_model_path(name)), seed=0)
        out[f"light_{name}"] = m
    out["mobilenet_like"] = nets.mobilenet_like()
    return {k: version_converter.convert_version(m, 13) if _opset(m) < 13 else m for k, m in out.items()}


def _opset(m: onnx.ModelProto) -> int:
    return next(i.version for i in m.opset_import if i.domain in ("", "ai.onnx"))


def quantize(model: onnx.ModelProto, workdir: str) -> onnx.ModelProto:
    """``model`` quantized to QDQ int8 (per-channel weights), calibrated on
    ``zoo.random_inputs(model, seed)`` for seeds 0..31."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    from unified.conformance import zoo

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._feeds = iter([zoo.random_inputs(model, seed=s) for s in range(CALIBRATION_INPUTS)])

        def get_next(self):
            return next(self._feeds, None)

    src, dst = os.path.join(workdir, "fp32.onnx"), os.path.join(workdir, "int8.onnx")
    onnx.save(model, src)
    quantize_static(src, dst, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)
    return onnx.load(dst)


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
        with tempfile.TemporaryDirectory() as work:
            int8 = quantize(fp32, work)
        for delegate in args.delegates:
            rows.append((name, delegate, measure(fp32, int8, delegate, args.runs)))
    print_rows(rows, args.markdown, ("model", "delegate", "fp32 ms", "int8 ms", "int8 / fp32"), _cells,
               lambda row: "  ".join(str(c) for c in _cells(row)))


if __name__ == "__main__":
    main()
