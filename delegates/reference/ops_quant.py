"""Quantization kernels of the reference delegate: QuantizeLinear,
DequantizeLinear, DynamicQuantizeLinear and the integer MAC ops
(QLinearConv, QLinearMatMul, ConvInteger, MatMulInteger), one small NumPy
function per ONNX op (``fn(xs, attrs, opset) -> list of outputs``, see
:mod:`.kernels`), plus :func:`requantize`, shared with the QDQ-group kernels
of :mod:`.qdq`.

Integer semantics (ONNX operator spec, onnx.ai/onnx/operators):

* QuantizeLinear: ``y = saturate(rint(x / scale) + zero_point)``, round half
  to even (``np.rint``), saturated to the output type (int8, uint8, int16,
  uint16, int4, uint4); the division in the input's float type, as the spec's
  reference (``onnx/reference/ops/op_quantize_linear.py``).
* DequantizeLinear: ``y = (x - zero_point) * scale`` per tensor, per axis or
  per block (``block_size`` along ``axis``, opset 21: scale and zero point
  have ``ceil(D / block_size)`` entries along ``axis``). Data may be int4 /
  uint4 / float4e2m1 (packed two per byte in the initializer,
  unpacked by ``onnx.numpy_helper.to_array`` into ``ml_dtypes`` arrays) and
  scales float8e8m0 (MXFP4, opset 23+). ``x - zero_point`` and the product
  are formed in float64 and rounded once to the output type (float32 by
  default), so an int32 bias is exact where float32 ``x`` would round.
* The integer MAC ops accumulate ``(x - zx) * (w - zw)`` exactly (int8
  products summed in float64 BLAS: every partial sum stays below 2**53) and
  requantize with :func:`requantize`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import ml_dtypes
import numpy as np
from onnx import helper

from unified.delegates.reference.ops_conv import conv
from unified.onnx.quant import broadcast_param, dequantize, is_integer

if TYPE_CHECKING:
    from unified.delegates.reference.kernels import Kernel

__all__ = ["QUANT_KERNELS", "broadcast_param", "centered", "is_integer", "requantize", "quantized_range"]


def _opt(xs: list, i: int) -> np.ndarray | None:
    return xs[i] if len(xs) > i and xs[i] is not None else None


def quantized_range(dtype: np.dtype) -> tuple[int, int]:
    """(min, max) of an integer dtype, including ``ml_dtypes`` int4 / uint4."""
    info = ml_dtypes.iinfo(dtype)
    return int(info.min), int(info.max)


def requantize(acc: np.ndarray, multiplier: np.ndarray | float, zero_point: np.ndarray | None, dtype) -> np.ndarray:
    """``saturate(rint(acc * multiplier) + zero_point)`` in ``dtype``.

    Args:
        acc: exact integer sums (int32 range; any numeric dtype, exact in float64).
        multiplier: the rescale ``s_in * s_w / s_out``, computed in float32 by the
            caller as ``onnx/reference/ops/op_qlinear_conv.py`` does; the product
            ``acc * multiplier`` is float64, rounded half to even (``np.rint``).
        zero_point: output zero point (None: 0).
        dtype: int8, uint8 (or another integer dtype).

    Returns:
        The quantized array in ``dtype``.
    """
    q = np.rint(np.asarray(acc, np.float64) * np.asarray(multiplier, np.float64))
    if zero_point is not None:
        q = q + np.asarray(zero_point, np.float64)
    lo, hi = quantized_range(np.dtype(dtype))
    return np.clip(q, lo, hi).astype(dtype)


def _quantize(xs, a, opset):
    x, scale, zp = xs[0], xs[1], _opt(xs, 2)
    if zp is not None:
        dtype = zp.dtype
    elif a.get("output_dtype"):
        dtype = np.dtype(helper.tensor_dtype_to_np_dtype(a["output_dtype"]))
    else:
        dtype = np.dtype(np.uint8)
    axis, block = a.get("axis", 1), a.get("block_size", 0)
    s = broadcast_param(scale, x.shape, axis, block)
    q = np.rint(x / s.astype(x.dtype)).astype(np.float64)  # the division in x's type, as the spec's reference
    if zp is not None:
        q = q + broadcast_param(zp, x.shape, axis, block).astype(np.float64)
    lo, hi = quantized_range(dtype)
    return [np.clip(q, lo, hi).astype(dtype)]


def _dequantize(xs, a, opset):
    return [dequantize(xs[0], xs[1], _opt(xs, 2), axis=a.get("axis", 1), block_size=a.get("block_size", 0),
                       output_dtype=a.get("output_dtype", 0))]


def _dynamic_quantize(xs, a, opset):
    """DynamicQuantizeLinear: uint8, scale ``(max(0, max x) - min(0, min x)) / 255``,
    zero point ``rint(clip(-min / scale, 0, 255))`` (ONNX spec formula)."""
    x = xs[0]
    hi = np.float32(max(0.0, float(x.max()) if x.size else 0.0))
    lo = np.float32(min(0.0, float(x.min()) if x.size else 0.0))
    scale = np.float32(1.0) if hi == lo else np.float32(hi - lo) / np.float32(255)
    zp = np.rint(np.clip(np.float32(0) - lo / scale, 0, 255))
    y = np.clip(np.rint(x / scale) + zp, 0, 255).astype(np.uint8)
    return [y, np.array(scale, dtype=x.dtype), np.array(zp, dtype=np.uint8)]


def centered(q: np.ndarray, zp: np.ndarray | None, axis: int | None = None) -> np.ndarray:
    """``q - zp`` as exact float64 integers; a 1-D ``zp`` indexes ``axis`` of ``q``."""
    v = q.astype(np.float64)
    if zp is None:
        return v
    zp = np.asarray(zp)
    if zp.size > 1 and axis is not None:
        return v - broadcast_param(zp, q.shape, axis).astype(np.float64)
    return v - zp.astype(np.float64).reshape(())


def _conv_integer(xs, a, opset):
    x, w, zx, zw = xs[0], xs[1], _opt(xs, 2), _opt(xs, 3)
    return [conv(centered(x, zx), centered(w, zw, 0), None, a).astype(np.int32)]


def _matmul_integer(xs, a, opset):
    x, w, zx, zw = xs[0], xs[1], _opt(xs, 2), _opt(xs, 3)
    # a 1-D a_zero_point is per row of A (axis -2), a 1-D b_zero_point per column of B (axis -1)
    xc = centered(x, zx, x.ndim - 2 if x.ndim > 1 else 0)
    return [np.matmul(xc, centered(w, zw, w.ndim - 1)).astype(np.int32)]


def _channel_multiplier(sx: np.ndarray, sw: np.ndarray, sy: np.ndarray, ndim: int, axis: int) -> np.ndarray:
    """``sx * sw / sy`` in float32 (the spec reference's precision), a
    per-channel ``sw`` shaped to index ``axis`` of an ``ndim`` output."""
    m = (sx.astype(np.float32).reshape(()) * sw.astype(np.float32) / sy.astype(np.float32).reshape(())).astype(np.float32)
    if m.size > 1:
        shape = [1] * ndim
        shape[axis] = -1
        return m.reshape(shape)
    return m.reshape(())


def _qlinear_conv(xs, a, opset):
    x, sx, zx, w, sw, zw, sy, zy = xs[:8]
    bias = _opt(xs, 8)
    acc = conv(centered(x, zx), centered(w, zw, 0), None, a)
    if bias is not None:
        acc = acc + bias.astype(np.float64).reshape((1, -1) + (1,) * (acc.ndim - 2))
    dtype = zy.dtype if zy is not None else x.dtype
    return [requantize(acc, _channel_multiplier(sx, sw, sy, acc.ndim, 1), zy, dtype)]


def _qlinear_matmul(xs, a, opset):
    x, sx, zx, w, sw, zw, sy, zy = xs[:8]
    acc = np.matmul(centered(x, zx), centered(w, zw, w.ndim - 1))
    dtype = zy.dtype if zy is not None else x.dtype
    return [requantize(acc, _channel_multiplier(sx, sw, sy, acc.ndim, acc.ndim - 1), zy, dtype)]


QUANT_KERNELS: dict[str, Kernel] = {
    "QuantizeLinear": _quantize,
    "DequantizeLinear": _dequantize,
    "DynamicQuantizeLinear": _dynamic_quantize,
    "QLinearConv": _qlinear_conv,
    "QLinearMatMul": _qlinear_matmul,
    "ConvInteger": _conv_integer,
    "MatMulInteger": _matmul_integer,
}
"""The quantization ops' kernels."""
