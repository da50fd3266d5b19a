"""Fusions the converter makes while it walks the graph.

* an inference BatchNormalization after a Conv is folded into the conv's
  weights and bias (in ``ops_conv.conv``);
* a Relu or Clip(0, 6) that is the only reader of a Conv, pool,
  FULLY_CONNECTED or ADD/SUB/MUL/DIV output becomes that op's
  ``fused_activation_function`` (TFLite schema ``ActivationFunctionType``).
"""

from __future__ import annotations

import math

import onnx

from unified.onnx import decode_attributes

from .convert import Converter


def fused_activation(cx: Converter, out_name: str) -> tuple[str, str]:
    """Absorb a following Relu / Clip(0, 6) into the op producing ``out_name``.

    Returns:
        (final ONNX output name, fused activation name: NONE, RELU or RELU6).
    """
    user = cx.sole_consumer(out_name)
    if user is None:
        return out_name, "NONE"
    kind = None
    if user.op_type == "Relu":
        kind = "RELU"
    elif user.op_type == "Clip":
        lo, hi = clip_bounds(cx, user)
        if lo == 0.0 and hi == 6.0:
            kind = "RELU6"
        elif lo == 0.0 and hi == math.inf:
            kind = "RELU"
    if kind is None:
        return out_name, "NONE"
    cx.mark_fused(user)
    return user.output[0], kind


def clip_bounds(cx: Converter, node: onnx.NodeProto) -> tuple[float | None, float | None]:
    """(min, max) of a Clip node; None where the bound is not a constant."""
    attrs = decode_attributes(node)
    if cx.opset < 11:
        return float(attrs.get("min", -math.inf)), float(attrs.get("max", math.inf))
    bounds = []
    for i, default in ((1, -math.inf), (2, math.inf)):
        if i < len(node.input) and node.input[i]:
            v = cx.get(node.input[i])
            bounds.append(None if v.const is None else float(v.const.reshape(-1)[0]))
        else:
            bounds.append(default)
    return bounds[0], bounds[1]


def act_enum(cx: Converter, kind: str) -> int:
    """TFLite ``ActivationFunctionType`` value of ``kind`` (NONE, RELU, RELU6, ...)."""
    return getattr(cx.builder.schema.ActivationFunctionType, kind)
