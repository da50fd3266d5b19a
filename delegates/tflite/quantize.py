"""QDQ pattern matching for the int8 converters (``ops_quant.py``).

An ONNX QDQ model (``onnxruntime.quantization.quantize_static(...,
quant_format=QuantFormat.QDQ)``) writes every quantized op as float math
between ``DequantizeLinear`` and ``QuantizeLinear``::

    x_q -> DequantizeLinear -> Conv(., DequantizeLinear(w_q)) [-> Relu] -> QuantizeLinear -> y_q

The int8 converters turn such a group into one TFLite int8 op that reads the
int8 tensor behind the DequantizeLinear and writes the QuantizeLinear's
output directly, with ``QuantizationParameters`` as the TFLite quantization
spec asks (https://www.tensorflow.org/lite/performance/quantization_spec):

* activations: int8, asymmetric, per tensor (scale, zero point in [-128, 127]);
* weights: int8, symmetric (zero point 0) per output channel, values in
  [-127, 127] (``quantized_dimension`` 0 for CONV_2D / FULLY_CONNECTED
  filters, 3 for DEPTHWISE_CONV_2D's 1HWO filter);
* biases: int32, zero point 0, scale ``input_scale * weight_scale[c]``.

The session's specialization folds small ``DequantizeLinear(initializer)``
nodes into float initializers before the converter sees them, so a weight is
read either from its DequantizeLinear (int8 data and scales, when it is still
there) or recovered from its float values: per channel ``scale = max|w| /
127`` and ``w_q = round(w / scale)``, accepted only when ``w_q * scale``
gives back ``w`` (to 1e-5 of the channel's largest weight), i.e. only when
the weight already lay on that int8 grid -- the grid a symmetric per-channel
int8 quantizer (ONNX Runtime's, TFLite's) puts it on. Anything else is left
to the float converters, which run the QDQ pair as QUANTIZE / DEQUANTIZE
around a float kernel (ONNX's definition of the pattern, exactly).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx

from unified.onnx import decode_attributes

from .convert import Converter, Value
from .fuse import clip_bounds

__all__ = ["QOut", "dq_source", "q_output", "same_quant", "weight_int8", "bias_int32"]

_INT8 = np.dtype(np.int8)
_LOSSLESS = 1e-5  # |w_q * scale - w| <= this * max|w| per channel


def _const_params(cx: Converter, node: onnx.NodeProto) -> tuple[np.ndarray, np.ndarray] | None:
    """(scale float32, zero point int64) of a Q/DQ node, flattened; None when not constant."""
    scale = cx.const_of(node, 1)
    if scale is None:
        return None
    zp = cx.const_of(node, 2) if len(node.input) > 2 and node.input[2] else np.zeros(scale.shape, np.int64)
    if zp is None or decode_attributes(node).get("block_size", 0):
        return None
    return scale.astype(np.float32).reshape(-1), np.asarray(zp).astype(np.int64).reshape(-1)


def same_quant(a: tuple, b: tuple) -> bool:
    """Equal per-tensor (scale, zero point) pairs (``Value.quant`` or :class:`QOut` params)."""
    return (np.array_equal(np.asarray(a[0]).reshape(-1), np.asarray(b[0]).reshape(-1))
            and np.array_equal(np.asarray(a[1]).reshape(-1), np.asarray(b[1]).reshape(-1)))


def dq_source(cx: Converter, name: str) -> Value | None:
    """The int8 activation behind ``name`` when ``name`` is the output of a
    per-tensor DequantizeLinear whose (scale, zero point) the int8 tensor
    already carries (it was made by a QuantizeLinear); else None."""
    node = cx.producer(name)
    if node is None or node.op_type != "DequantizeLinear":
        return None
    x = cx.values.get(node.input[0])
    params = _const_params(cx, node)
    if x is None or x.tensor is None or x.quant is None or x.dtype != _INT8 or params is None:
        return None
    if params[0].size != 1 or not same_quant(x.quant, params):
        return None
    return x


@dataclass
class QOut:
    """Where an int8 op writes: the QuantizeLinear output it replaces.

    Attributes:
        name: the QuantizeLinear's output (the int8 value the op defines).
        act: fused activation (NONE, RELU, RELU6) from a Relu / Clip between
            the op and the QuantizeLinear.
        scale / zero_point: the output's quantization (float32 / int64, shape (1,)).
        fused: the nodes the op absorbs (marked when :meth:`commit` is called).
    """

    name: str
    act: str
    scale: np.ndarray
    zero_point: np.ndarray
    fused: tuple

    @property
    def quant(self) -> tuple[np.ndarray, np.ndarray, int]:
        return self.scale, self.zero_point, 0

    def commit(self, cx: Converter) -> None:
        for n in self.fused:
            cx.mark_fused(n)


def q_output(cx: Converter, out_name: str, allow_act: bool = True) -> QOut | None:
    """The per-tensor int8 QuantizeLinear that alone reads ``out_name`` (through
    at most one Relu / Clip(0, 6) when ``allow_act``); None when there is none."""
    user = cx.sole_consumer(out_name)
    fused, act = [], "NONE"
    if allow_act and user is not None and user.op_type in ("Relu", "Clip"):
        act = "RELU" if user.op_type == "Relu" else {(0.0, 6.0): "RELU6"}.get(clip_bounds(cx, user), "")
        if not act:
            return None
        fused.append(user)
        user = cx.sole_consumer(user.output[0])
    if user is None or user.op_type != "QuantizeLinear":
        return None
    params = _const_params(cx, user)
    if params is None or params[0].size != 1 or cx.out_dtype(user.output[0]) != _INT8:
        return None
    if not (np.isfinite(params[0]).all() and params[0][0] > 0):
        return None
    fused.append(user)
    return QOut(user.output[0], act, params[0], params[1], tuple(fused))


def weight_int8(cx: Converter, name: str, axis: int) -> tuple[np.ndarray, np.ndarray] | None:
    """An op's constant weight as (int8 data, per-channel float32 scales along ``axis``).

    Read from its DequantizeLinear when the session did not fold it (zero
    points all 0, per tensor or per ``axis``), else recovered from the float
    values (see the module docstring); None when neither is exact.
    """
    node = cx.producer(name)
    if node is not None and node.op_type == "DequantizeLinear":
        q, params = cx.const_of(node, 0), _const_params(cx, node)
        if q is not None and q.dtype == _INT8 and params is not None and not params[1].any():
            scale = params[0]
            per_axis = int(decode_attributes(node).get("axis", 1)) % q.ndim
            if scale.size == 1:
                return q, np.full(q.shape[axis], scale[0], np.float32)
            if per_axis == axis % q.ndim and scale.size == q.shape[axis]:
                return q, scale
    w = cx.values[name].const if name in cx.values else None
    if w is None or w.dtype != np.float32:
        return None
    moved = np.moveaxis(w, axis, 0).reshape(w.shape[axis], -1).astype(np.float64)
    top = np.abs(moved).max(axis=1)
    scale = np.where(top > 0, top / 127.0, 1.0).astype(np.float32)
    q = np.round(moved / scale[:, None].astype(np.float64))
    if np.any(np.abs(q * scale[:, None] - moved) > _LOSSLESS * top[:, None]):
        return None
    shaped = np.moveaxis(q.reshape(np.moveaxis(w, axis, 0).shape), 0, axis)
    return shaped.astype(np.int8), scale


def bias_int32(bias: np.ndarray | None, channels: int, input_scale: float, weight_scale: np.ndarray):
    """A float bias quantized to int32 at ``input_scale * weight_scale[c]``, zero point 0
    (TFLite quantization spec); None when a value would not fit int32.

    Returns:
        (int32 data of shape (channels,), float32 scales of shape (channels,)).
    """
    scale = (np.float32(input_scale) * weight_scale.astype(np.float32)).astype(np.float32)
    b = np.zeros(channels) if bias is None else np.broadcast_to(np.asarray(bias, np.float64).reshape(-1), (channels,))
    q = np.round(b / scale.astype(np.float64))
    if not np.all(np.abs(q) < 2 ** 31 - 1):
        return None
    return q.astype(np.int32), scale
