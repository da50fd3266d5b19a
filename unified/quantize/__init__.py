"""Quantize a float ONNX model: static int8 QDQ, or weight-only int4 / MXFP4.

* :func:`quantize_static` — int8 QDQ through ``onnxruntime.quantization``
  (symmetric per-channel int8 weights, asymmetric int8 activations,
  min/max calibration on a folder of samples or seeded random inputs).
* :func:`quantize_weights` — MatMul/Gemm weights as blocked ``int4``
  (opset 21) or ``mxfp4`` (OCP MX v1.0, opset 24) data behind a standard
  ``DequantizeLinear``.

The command line is ``unified quantize MODEL -o OUT.onnx`` (see
``docs/quantization.md``). ONNX Runtime and ``ml_dtypes`` are imported only
inside these functions.
"""

from unified.quantize.blocked import SCHEMES, ort_failure, pack_int4, pack_mxfp4, quantize_weights
from unified.quantize.static import QuantizationError, load_calibration, quantize_static, random_calibration

__all__ = [
    # int8 QDQ
    "quantize_static",
    "load_calibration",
    "random_calibration",
    # weight-only blocked
    "quantize_weights",
    "pack_int4",
    "pack_mxfp4",
    "SCHEMES",
    "ort_failure",
    # errors
    "QuantizationError",
]
