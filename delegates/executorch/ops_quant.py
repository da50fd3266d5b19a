"""Lowerings of ONNX ``QuantizeLinear`` / ``DequantizeLinear`` (QDQ models) to
the ``quantized_decomposed`` ops PT2E quantization leaves in a graph, so that
XNNPACK's partitioner finds the ``dq -> conv / linear / add / ... -> q``
patterns it lowers to its int8 kernels, as after ``convert_pt2e``
(``torch/ao/quantization/fx/_decomposed.py``).

What a QDQ model (``onnxruntime.quantization.quantize_static`` with
``QuantFormat.QDQ``) holds, and what each becomes:

* ``QuantizeLinear(x, scale, zp)`` on a float tensor, per-tensor (scalar
  constant scale, int8 zero point) ->
  ``quantize_per_tensor(x, scale, zp, -128, 127, int8)``.
* ``DequantizeLinear(q, scale, zp)`` on an int8 tensor, per-tensor ->
  ``dequantize_per_tensor(q, scale, zp, -128, 127, int8)``.
* ``DequantizeLinear`` of an int8 weight initializer, per-channel (1-D scale,
  ``axis``) or per-tensor -> ``dequantize_per_channel`` /
  ``dequantize_per_tensor`` of the int8 weight kept as a module buffer:
  XNNPACK packs the int8 weight and its scales into its quantized
  convolution / fully-connected kernels.
* ``DequantizeLinear`` of an int32 bias initializer (scale
  ``in_scale * w_scale``) is folded on the host into a float bias,
  ``(b - zp) * scale`` as float32: XNNPACK takes a float bias and quantizes
  it again with ``in_scale * w_scale``, which gives back the same int32
  values (exactly, for |b| < 2**24). PT2E's XNNPACK quantizer leaves the bias
  float too.

Semantics: ONNX ``QuantizeLinear`` is ``saturate(round_half_even(x / scale) +
zp)``, ``DequantizeLinear`` is ``(x - zp) * scale`` (ONNX operator spec).
``quantize_per_tensor`` computes ``round(x * (1 / scale))``, which can differ
from ``x / scale`` by one rounding step at a tie; XNNPACK's int8 kernels
requantize in float. Results match ONNX Runtime within one quantization step
on ONNX Runtime's own QDQ models (``tests/delegates/executorch/test_quantized.py``).

Declined, with the reason: uint8, int16, int4 and float8 quantization, block
quantization (``block_size``), per-axis quantization of a computed tensor
(only constant weights are per-channel), a missing zero point (uint8
output), and non-float32 scales.
"""

from __future__ import annotations

import numpy as np
from onnx import TensorProto

from unified.graph import NodeView, TensorInfo
from unified.onnx import dtype_name

from .ops_common import torch
from .support import QUANT_DTYPES, Lowering, check_typed

__all__ = ["LOWERINGS", "INT8_RANGE"]

#: The saturation range of ONNX int8 quantization (QuantizeLinear's spec).
INT8_RANGE = (-128, 127)


def _ops():
    import torch.ao.quantization.fx._decomposed  # noqa: F401  (registers torch.ops.quantized_decomposed)

    return torch.ops.quantized_decomposed


def _is_const(t: TensorInfo) -> bool:
    return t.const is not None or t.is_initializer


def _qparams(scale: np.ndarray, zp: np.ndarray | None) -> tuple[float, int]:
    return float(scale.reshape(-1)[0]), 0 if zp is None else int(zp.reshape(-1)[0])


def _axis(node: NodeView, rank: int) -> int:
    return node.attr("axis", 1) % rank


# --- lowerings -----------------------------------------------------------------


def quantize(node: NodeView, x, scale, zp=None):
    s, z = _qparams(scale, zp)
    return _ops().quantize_per_tensor.default(x, s, z, *INT8_RANGE, torch.int8)


def _host_quantize(node: NodeView, x, scale, zp=None):
    """ONNX QuantizeLinear on a constant: round half to even, saturate to int8."""
    s, z = _qparams(scale, zp)
    q = np.rint(x.astype(np.float32) / np.float32(s)) + z
    return np.clip(q, *INT8_RANGE).astype(np.int8)


def dequantize(node: NodeView, x, scale, zp=None):
    ops = _ops()
    if scale.size == 1:
        s, z = _qparams(scale, zp)
        return ops.dequantize_per_tensor.default(x, s, z, *INT8_RANGE, torch.int8)
    scales = torch.from_numpy(scale.astype(np.float32).reshape(-1).copy())
    zps = torch.zeros(scale.size, dtype=torch.int64) if zp is None else torch.from_numpy(zp.astype(np.int64).reshape(-1).copy())
    return ops.dequantize_per_channel.default(x, scales, zps, _axis(node, x.dim()), *INT8_RANGE, torch.int8)


def _host_dequantize(node: NodeView, x, scale, zp=None):
    """Folds the dequantization of a constant other than int8 (an int32 bias;
    uint8 / int16 / uint16 weights of a float model) to float32.

    Returns ``NotImplemented`` for int8 (weights): they stay int8 in the
    program, dequantized by a traced op XNNPACK recognises.
    """
    if x.dtype == np.int8:
        return NotImplemented
    shape = [1] * x.ndim
    if scale.size > 1:
        shape[_axis(node, x.ndim)] = -1
    s = scale.astype(np.float32).reshape(shape if scale.size > 1 else ())
    z = np.zeros((), np.int64) if zp is None else zp.astype(np.int64).reshape(shape if zp.size > 1 else ())
    return ((x.astype(np.int64) - z).astype(np.float32) * s).astype(np.float32)


# --- claims ----------------------------------------------------------------------

_HOW = "the ExecuTorch lowering handles int8 QDQ (XNNPACK's quantized kernels; quantize with QuantType.QInt8)"


def _quantized(node: NodeView) -> TensorInfo:
    """The quantized side of the node: Q's output, DQ's input."""
    return node.outputs[0] if node.op_type == "QuantizeLinear" else node.inputs[0]


#: Element types of DequantizeLinear constants folded on the host (the core
#: leaves DequantizeLinear unfolded for this delegate: ``unfolded_ops``).
_HOST_FOLDED = {TensorProto.INT32: "int32", TensorProto.UINT8: "uint8", TensorProto.INT16: "int16",
                TensorProto.UINT16: "uint16"}


def _quant_typed(node: NodeView) -> str | None:
    """The entry's type check: the quantized side is int8 (for DQ of a
    constant, also a type folded on the host, such as an int32 bias), the
    other side float32; then :func:`check_typed` with those types allowed."""
    op, q = node.op_type, _quantized(node)
    allowed = dict(QUANT_DTYPES)
    if op == "DequantizeLinear" and _is_const(q):
        allowed.update(_HOST_FOLDED)
    if q.elem_type and q.elem_type not in allowed:
        where = "" if op == "QuantizeLinear" or _is_const(q) else " (computed tensor)"
        return f"{op} with {dtype_name(q.elem_type)} quantized values{where} not handled: {_HOW}"
    scale = node.inputs[1]
    if scale.elem_type and scale.elem_type != TensorProto.FLOAT:
        return f"{op} scale of dtype {dtype_name(scale.elem_type)} not handled (float32 only)"
    return check_typed(node, extra=allowed)


def _qdq_check(node: NodeView) -> str | None:
    """Block quantization, constant quantization parameters, per-axis on constants only."""
    op, x = node.op_type, node.inputs[0]
    if node.attr("block_size", 0):
        return f"{op} block quantization (block_size={node.attr('block_size')}) not handled: {_HOW}"
    if node.attr("output_dtype", 0) not in (0, TensorProto.INT8):
        return f"{op} output_dtype {dtype_name(node.attr('output_dtype'))} not handled: {_HOW}"
    for role, t in zip(("scale", "zero point"), node.inputs[1:3]):
        if t.name and t.const is None:
            return f"{op} {role} '{t.name}' is not a constant; the quantization parameters must be known at compile time"
    if node.inputs[1].const.size != 1 and not _is_const(x):
        return f"{op} per-axis (1-D scale) of a computed tensor not handled; per-tensor only (per-channel weights are)"
    return None


_ATTRS = frozenset({"axis", "saturate", "block_size", "output_dtype"})

LOWERINGS = (
    Lowering("QuantizeLinear", quantize, _ATTRS, since=10, host_inputs=(1, 2), host_fn=_host_quantize,
             constraints=(_qdq_check,), type_check=_quant_typed),
    Lowering("DequantizeLinear", dequantize, _ATTRS, dtypes=frozenset(), since=10, host_inputs=(1, 2),
             host_fn=_host_dequantize, constraints=(_qdq_check,), type_check=_quant_typed),
)

