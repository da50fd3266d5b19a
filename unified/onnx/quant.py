"""DequantizeLinear as the ONNX spec defines it, shared by the load-time
constant fold (:mod:`unified.onnx.fold`) and the reference delegate.

ONNX operator spec, DequantizeLinear (onnx.ai/onnx/operators,
opsets 10-24): ``y = (x - zero_point) * scale`` per tensor, per axis
(``axis``, default 1) or per block (``block_size`` along ``axis``, opset 21:
scale and zero point have ``ceil(D / block_size)`` entries there). Data may
be int8/uint8/int16/uint16/int32, int4/uint4 or float8/float4 (``ml_dtypes``
arrays, as ``onnx.numpy_helper.to_array`` unpacks them); for float data the
zero point is zero by spec and is not applied. ``x - zero_point`` and the
product are formed in float64 and rounded once to the output type: for 8- and
16-bit data that equals float32 arithmetic (the difference and the product of
two float32 values are exact in float64), and an int32 bias is exact where a
float32 difference would round.
"""

from __future__ import annotations

import numpy as np
from onnx import helper

__all__ = ["broadcast_param", "dequantize", "is_integer"]


def is_integer(dtype: np.dtype) -> bool:
    """An integer dtype, NumPy's or ``ml_dtypes``' (int4, uint4, int2, uint2)."""
    return dtype.kind in "iu" or dtype.name in ("int4", "uint4", "int2", "uint2")


def broadcast_param(p: np.ndarray, shape: tuple[int, ...], axis: int = 1, block_size: int = 0) -> np.ndarray:
    """A scale or zero point shaped to broadcast against a tensor of ``shape``.

    Args:
        p: scalar or one-element (per tensor), 1-D of ``shape[axis]`` (per
            axis) or, with ``block_size > 0``, ``shape`` with
            ``ceil(shape[axis] / block_size)`` along ``axis`` (blocked).
        shape: the data tensor's shape.
        axis: the quantization axis (negative counts from the end).
        block_size: 0, or the block length along ``axis``.

    Returns:
        An array broadcastable to ``shape`` (a view or a repeat of ``p``).
    """
    p = np.asarray(p)
    if (p.size == 1 and not block_size) or not shape:
        return p.reshape(())
    axis %= len(shape)
    if block_size:
        return np.repeat(p, block_size, axis=axis)[(slice(None),) * axis + (slice(0, shape[axis]),)]
    out = [1] * len(shape)
    out[axis] = -1
    return p.reshape(out)


def dequantize(x: np.ndarray, scale: np.ndarray, zero_point: np.ndarray | None = None, *, axis: int = 1,
               block_size: int = 0, output_dtype: int = 0) -> np.ndarray:
    """``(x - zero_point) * scale`` (ONNX DequantizeLinear, see the module docstring).

    Args:
        x: the quantized data, any shape; integer or ``ml_dtypes`` float8/float4.
        scale: per tensor (one element), per axis (``x.shape[axis]``) or blocked.
        zero_point: as ``scale``, the data's type; None: zero.
        axis: the quantization axis; block_size: 0 or the block length (opset 21).
        output_dtype: an ONNX ``TensorProto`` type (opset 24's attribute); 0:
            the scale's type.

    Returns:
        ``x``'s shape, in the output type.
    """
    scale = np.asarray(scale)
    out = np.dtype(helper.tensor_dtype_to_np_dtype(output_dtype)) if output_dtype else scale.dtype
    v = np.asarray(x).astype(np.float64)
    if zero_point is not None and is_integer(x.dtype):
        v = v - broadcast_param(zero_point, x.shape, axis, block_size).astype(np.float64)
    return (v * broadcast_param(scale, x.shape, axis, block_size).astype(np.float64)).astype(out)
