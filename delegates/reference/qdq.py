"""Integer execution of QDQ groups: ``DequantizeLinear -> op -> QuantizeLinear``
run as one integer kernel on the quantized tensors.

A QDQ model states each op's arithmetic with a DequantizeLinear on every data
input and one QuantizeLinear on the output. When every such parameter is a
compile-time constant (activations per tensor; MAC weights per tensor or per
output channel) and the output goes only to that QuantizeLinear, the reference
delegate runs the group in integers (the way an int8 NPU, TFLite's int8
kernels or ONNX Runtime's QLinear* kernels do):

* Conv, Gemm, MatMul: ``acc = sum (x - zx) * (w - zw)`` exact (int8 x int8
  products summed in float64 BLAS, exact below 2**53), plus the int32 bias
  when it is ``DequantizeLinear(int32, scale = sx * sw, zp = 0)`` (else the
  float bias is added after the rescale); then
  ``q = saturate(rint(acc * sx * sw / sy) + zy)``.
* Mul: ``acc = (a - za) * (b - zb)``, rescaled by ``sa * sb / sy``.
* Add: ``(a - za) * sa / sy + (b - zb) * sb / sy``, rounded once.
* AveragePool: the window mean of ``x - zx`` (exact sum, float64 division),
  rescaled by ``sx / sy``. Relu: ``max(x - zx, 0) * sx / sy``.
* Concat: each input requantized to the output's scale (a plain integer
  copy when the scales and zero points agree).

Rescale: the multiplier (``sx * sw / sy``) is formed in float32 and applied
to the exact accumulator in float64, rounding half to even, as the ONNX
spec's reference kernels do (``onnx/reference/ops/op_qlinear_conv.py``,
``op_qlinear_matmul.py``); TFLite/gemmlowp's fixed-point multiplier
(``MultiplyByQuantizedMultiplier``) rounds ties away from zero and differs
from this by at most 1 LSB. Against the float QDQ semantics (dequantize,
float op, quantize; ONNX Runtime with ``session.disable_quant_qdq=1``) the
result differs by at most 1 LSB: float32 accumulation moves a value that
sits near a rounding boundary to the other side.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import onnx

from unified.delegates.reference.ops_conv import conv, conv_transpose, pool
from unified.delegates.reference.ops_quant import centered, is_integer, requantize
from unified.onnx import decode_attributes

__all__ = ["QParam", "QdqGroup", "find_groups", "mac", "out_channel_shape"]

_QUANT_OUT = ("int8", "uint8")


@dataclass(frozen=True)
class QParam:
    """A quantized tensor: name, scale (float32), zero point (or None), axis."""

    q: str
    scale: np.ndarray
    zp: np.ndarray | None
    axis: int

    @property
    def per_tensor(self) -> bool:
        return self.scale.size == 1


@dataclass(frozen=True)
class QdqGroup:
    """One integer kernel replacing ``op`` and the QuantizeLinear after it.

    Attributes:
        op_index / q_index: node indices of the op and of its QuantizeLinear.
        inputs: the kernel's inputs (quantized tensors, float bias if any).
        output: the QuantizeLinear's output name.
        fn: ``fn(list of arrays) -> [quantized output]``.
    """

    op_index: int
    q_index: int
    inputs: list[str]
    output: str
    fn: Callable[[list], list]


def mac(op: str, x: np.ndarray, w: np.ndarray, attrs: dict) -> np.ndarray:
    """The MAC op without bias (and, for Gemm, without alpha/beta/C)."""
    if op == "Conv":
        return conv(x, w, None, attrs)
    if op == "ConvTranspose":
        return conv_transpose(x, w, None, attrs)
    if op == "Gemm":
        a = x.T if attrs.get("transA", 0) else x
        b = w.T if attrs.get("transB", 0) else w
        return np.matmul(a, b)
    return np.matmul(x, w)


def out_channel_shape(op: str, attrs: dict, w: np.ndarray, y_ndim: int) -> tuple[tuple, int]:
    """Broadcast shape of a per-output-channel vector against the output,
    and the weight axis that indexes output channels."""
    if op == "Conv":
        return (1, -1) + (1,) * (y_ndim - 2), 0
    if op == "ConvTranspose":
        return (1, -1) + (1,) * (y_ndim - 2), 1
    if op == "Gemm" and attrs.get("transB", 0):
        return (1, -1), 0
    return (-1,), w.ndim - 1


def _f32(*values) -> np.ndarray:
    """Product / quotient chain in float32: ``_f32(a, b, c)`` = ``a * b / c``."""
    *num, den = [np.asarray(v, np.float32) for v in values]
    out = num[0]
    for v in num[1:]:
        out = out * v
    return (out / den).astype(np.float32)


def _out_dtype(n: onnx.NodeProto, consts: dict) -> np.dtype | None:
    if len(n.input) > 2 and n.input[2]:
        return consts[n.input[2]].dtype
    out = decode_attributes(n).get("output_dtype", 0)
    if out:
        return np.dtype(onnx.helper.tensor_dtype_to_np_dtype(out))
    return np.dtype(np.uint8)


def _qparam(n: onnx.NodeProto, consts: dict) -> QParam | None:
    """The parameters of a Q or DQ node with constant per-tensor / per-axis scale and zero point."""
    attrs = decode_attributes(n)
    if attrs.get("block_size", 0) or attrs.get("precision", 0) or len(n.input) < 2 or n.input[1] not in consts:
        return None
    zp = None
    if len(n.input) > 2 and n.input[2]:
        if n.input[2] not in consts:
            return None
        zp = consts[n.input[2]]
    scale = consts[n.input[1]]
    if scale.dtype != np.float32 or scale.ndim > 1:
        return None
    return QParam(n.input[0], scale, zp, int(attrs.get("axis", 1)))


def _mac_kernel(op: str, attrs: dict, x: QParam, w: QParam, bias, y: QParam, dtype, consts: dict):
    """Inputs and kernel of a Conv / Gemm / MatMul group, or None."""
    w_int = consts.get(w.q)
    if w_int is None or not is_integer(w_int.dtype) or not x.per_tensor or not y.per_tensor:
        return None
    _, ch_axis = out_channel_shape(op, attrs, w_int, 2)
    if not w.per_tensor and (w.axis % w_int.ndim != ch_axis or (op == "MatMul" and w_int.ndim != 2)):
        return None
    sx, sy = x.scale.reshape(()), y.scale.reshape(())
    wc = centered(w_int, w.zp, ch_axis)
    mult = (_f32(sx, w.scale.reshape(-1), sy) * np.float32(attrs.get("alpha", 1.0))).astype(np.float64)
    b = _bias(bias, sx * w.scale.reshape(-1), consts, attrs)
    if b is None:
        return None
    b_int, b_float, b_name = b
    beta = float(attrs.get("beta", 1.0)) if op == "Gemm" else 1.0

    def channels(v: np.ndarray, ndim: int) -> np.ndarray:
        """A per-output-channel vector (or a Gemm C) shaped against the output."""
        if v.size == 1:
            return v.reshape(())
        return v.reshape((1, -1) + (1,) * (ndim - 2)) if op == "Conv" else v

    def run(xs: list) -> list:
        acc = mac(op, centered(xs[0], x.zp), wc, attrs)
        if b_int is not None:
            acc = acc + channels(b_int, acc.ndim)
        scaled = acc * channels(mult, acc.ndim)
        extra = b_float if b_float is not None else (xs[2] if b_name else None)
        if extra is not None:
            scaled = scaled + channels(extra.astype(np.float64), acc.ndim) * (beta / np.float64(sy))
        return [requantize(scaled, 1.0, y.zp, dtype)]

    # the weight and bias names stay inputs (constants: read for the cost model, not by the kernel)
    bias_input = [bias.q if isinstance(bias, QParam) else bias] if bias is not None else []
    return [x.q, w.q] + bias_input, run


def _bias(bias, sxw: np.ndarray, consts: dict, attrs: dict):
    """``(int32 bias, float bias, runtime bias name)`` of a MAC group's bias
    slot (at most one set), or None when the group cannot take it."""
    if bias is None:
        return None, None, None
    if not isinstance(bias, QParam):
        return (None, consts[bias].astype(np.float64), None) if bias in consts else (None, None, bias)
    b = consts.get(bias.q)
    if b is None:
        return None  # a bias dequantized at run time: the float path
    same = np.allclose(bias.scale.reshape(-1), sxw.astype(np.float32), rtol=1e-6, atol=0)
    no_zp = bias.zp is None or not np.any(bias.zp)
    if b.dtype == np.int32 and same and no_zp and float(attrs.get("beta", 1.0)) == 1.0:
        return b.astype(np.float64), None, None
    scale = bias.scale.astype(np.float64).reshape(-1 if bias.scale.size > 1 else ())
    return None, centered(b, bias.zp, bias.axis) * scale, None


def _elementwise_kernel(op: str, attrs: dict, ins: Sequence[QParam], y: QParam, dtype):
    """Inputs and kernel of an Add / Mul / AveragePool / Relu / Concat group, or None."""
    if not all(p.per_tensor for p in ins) or not y.per_tensor:
        return None
    sy = y.scale.reshape(())
    names = [p.q for p in ins]
    if op == "Mul":
        m = _f32(ins[0].scale.reshape(()), ins[1].scale.reshape(()), sy).astype(np.float64)
        return names, lambda xs: [requantize(centered(xs[0], ins[0].zp) * centered(xs[1], ins[1].zp), m, y.zp, dtype)]
    ms = [_f32(p.scale.reshape(()), sy).astype(np.float64) for p in ins]
    if op == "Add":
        return names, lambda xs: [
            requantize(centered(xs[0], ins[0].zp) * ms[0] + centered(xs[1], ins[1].zp) * ms[1], 1.0, y.zp, dtype)
        ]
    if op == "AveragePool":
        return names, lambda xs: [requantize(pool(centered(xs[0], ins[0].zp), attrs, "avg"), ms[0], y.zp, dtype)]
    if op == "Relu":
        return names, lambda xs: [requantize(np.maximum(centered(xs[0], ins[0].zp), 0.0), ms[0], y.zp, dtype)]
    if op == "Concat":
        return names, lambda xs: [
            np.concatenate([requantize(centered(v, p.zp), m, y.zp, dtype) for v, p, m in zip(xs, ins, ms)], attrs["axis"])
        ]
    return None


GROUP_OPS = frozenset({"Conv", "Gemm", "MatMul", "Add", "Mul", "AveragePool", "Relu", "Concat"})
"""Ops run in integers when wrapped in DequantizeLinear / QuantizeLinear."""


def _group(i: int, n: onnx.NodeProto, q: tuple[int, onnx.NodeProto], dq: dict, consts: dict) -> QdqGroup | None:
    qi, qn = q
    y = _qparam(qn, consts)
    dtype = _out_dtype(qn, consts) if y is not None else None
    if y is None or dtype is None or dtype.name not in _QUANT_OUT:
        return None
    attrs = decode_attributes(n)
    data = list(n.input[:2]) if n.op_type in ("Conv", "Gemm", "MatMul") else list(n.input)
    if not all(x in dq for x in data):
        return None
    ins = [dq[x] for x in data]
    if n.op_type in ("Conv", "Gemm", "MatMul"):
        b = n.input[2] if len(n.input) > 2 and n.input[2] else None
        made = _mac_kernel(n.op_type, attrs, ins[0], ins[1], dq.get(b, b), y, dtype, consts)
    else:
        made = _elementwise_kernel(n.op_type, attrs, ins, y, dtype)
    if made is None:
        return None
    return QdqGroup(i, qi, made[0], qn.output[0], made[1])


def find_groups(nodes: Sequence[onnx.NodeProto], consts: dict, outputs: set[str]) -> dict[int, QdqGroup]:
    """Every QDQ group of a partition, keyed by the op's node index.

    Args:
        nodes: the partition's nodes in topological order.
        consts: initializer name -> array (scales, zero points, weights).
        outputs: the partition's output names (a graph output is never fused away).

    Returns:
        op node index -> :class:`QdqGroup`; ops that do not match the pattern
        (runtime scales, blocked parameters, an output read by another node,
        a non-integer input) are absent and run as float ops.
    """
    dq: dict[str, QParam] = {}
    readers: dict[str, list[tuple[int, onnx.NodeProto]]] = {}
    for i, n in enumerate(nodes):
        for x in n.input:
            readers.setdefault(x, []).append((i, n))
        if n.op_type == "DequantizeLinear" and n.domain in ("", "ai.onnx"):
            p = _qparam(n, consts)
            if p is not None:
                dq[n.output[0]] = p
    groups = {}
    for i, n in enumerate(nodes):
        if n.op_type not in GROUP_OPS or n.domain not in ("", "ai.onnx") or n.output[0] in outputs:
            continue
        r = readers.get(n.output[0], [])
        if len(r) == 1 and r[0][1].op_type == "QuantizeLinear":
            g = _group(i, n, r[0], dq, consts)
            if g is not None:
                groups[i] = g
    return groups
