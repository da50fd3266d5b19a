"""Converters for matrix products and normalizations over the last dims:
Gemm, MatMul, Softmax, LogSoftmax, LayerNormalization.
"""

from __future__ import annotations

import numpy as np

from unified.errors import DelegateError

from .convert import Converter, register
from .fuse import act_enum, fused_activation


# --- fully connected / matmul -----------------------------------------------------


def _fc(cx: Converter, x_name: str, weights: np.ndarray, bias: np.ndarray | None, out_name: str,
        keep_dims: bool) -> None:
    """FULLY_CONNECTED: y = x @ weights.T + bias, weights (N, K) float32."""
    x = cx.get(x_name)
    if x.col_perm is not None and x.rank == 2:  # flattened NHWC input: permute the weight columns instead
        weights = np.take(weights, x.col_perm, axis=1)
        xt = x.tensor
    else:
        xt = cx.tensor(x, None, x_name)
    out_name, act = fused_activation(cx, out_name)
    out = cx.define(out_name)
    ins = [xt, cx.const("weights", np.ascontiguousarray(weights, np.float32))]
    ins.append(-1 if bias is None else cx.const("bias", np.asarray(bias, np.float32)))
    opts = cx.builder.options("FullyConnectedOptions", fusedActivationFunction=act_enum(cx, act), keepNumDims=keep_dims)
    cx.builder.op("FULLY_CONNECTED", ins, [out.tensor], opts)


@register("Gemm")
def gemm(cx: Converter, node, attrs) -> None:
    """Y = alpha * A' @ B' + beta * C as FULLY_CONNECTED; a B computed at run
    time is transposed to (N, K) and fed as the weights tensor."""
    if cx.const_of(node, 1) is None or (cx.inp(node, 2) is not None and cx.const_of(node, 2) is None):
        _gemm_runtime_b(cx, node, attrs)
        return
    b = cx.const_of(node, 1).astype(np.float32, copy=False)
    weights = b if attrs.get("transB", 0) else b.T
    alpha = float(attrs.get("alpha", 1.0))
    if alpha != 1.0:
        weights = weights * np.float32(alpha)
    c = cx.const_of(node, 2)
    bias = None
    if c is not None:
        bias = np.broadcast_to(c.astype(np.float32) * np.float32(attrs.get("beta", 1.0)), (1, weights.shape[0]))[0]
    _fc(cx, node.input[0], weights, bias, node.output[0], keep_dims=False)


def _gemm_runtime_b(cx: Converter, node, attrs) -> None:
    bv = cx.inp(node, 1)
    w = cx.tensor(bv, None if attrs.get("transB", 0) else (1, 0), node.input[1])
    alpha = float(attrs.get("alpha", 1.0))
    if alpha != 1.0:
        scaled = cx.new(cx.uid("alpha_b"), cx.builder.shape_of(w), np.float32)
        cx.builder.op("MUL", [w, cx.const("alpha", np.array(alpha, np.float32))], [scaled],
                      cx.builder.options("MulOptions"))
        w = scaled
    a = cx.tensor(cx.inp(node, 0), None, node.input[0])
    cv, beta = cx.inp(node, 2), float(attrs.get("beta", 1.0))
    n = cx.builder.shape_of(w)[0]
    if cv is not None and cv.const is not None:
        bias = cx.const("bias", np.broadcast_to(cv.const * beta, (1, n))[0].astype(np.float32).copy())
        out_name, act = fused_activation(cx, node.output[0])
        out = cx.define(out_name)
        opts = cx.builder.options("FullyConnectedOptions", fusedActivationFunction=act_enum(cx, act))
        cx.builder.op("FULLY_CONNECTED", [a, w, bias], [out.tensor], opts)
        return
    opts = cx.builder.options("FullyConnectedOptions")
    if cv is None:
        out = cx.define(node.output[0])
        cx.builder.op("FULLY_CONNECTED", [a, w, -1], [out.tensor], opts)
        return
    y = cx.new(cx.uid("gemm"), cx.out_shape(node.output[0]), np.float32)
    cx.builder.op("FULLY_CONNECTED", [a, w, -1], [y], opts)
    ct = cx.tensor(cv, None, node.input[2])
    if beta != 1.0:
        scaled = cx.new(cx.uid("beta_c"), cv.shape, np.float32)
        cx.builder.op("MUL", [ct, cx.const("beta", np.array(beta, np.float32))], [scaled],
                      cx.builder.options("MulOptions"))
        ct = scaled
    out = cx.define(node.output[0])
    cx.builder.op("ADD", [y, ct], [out.tensor], cx.builder.options("AddOptions"))


@register("MatMul")
def matmul(cx: Converter, node, attrs) -> None:
    a, b = cx.inp(node, 0), cx.inp(node, 1)
    if b.const is not None and b.rank == 2 and a.rank >= 2:
        bias = None
        user = cx.sole_consumer(node.output[0])
        if user is not None and user.op_type == "Add":  # MatMul + Add(bias) -> one FULLY_CONNECTED
            other = user.input[1] if user.input[0] == node.output[0] else user.input[0]
            v = cx.values.get(other)
            n = b.shape[1]
            if v is not None and v.const is not None and v.const.size == n and v.const.shape[-1:] == (n,):
                bias = v.const.reshape(-1)
                cx.mark_fused(user)
                _fc(cx, node.input[0], b.const.T, bias, user.output[0], keep_dims=True)
                return
        _fc(cx, node.input[0], b.const.T, None, node.output[0], keep_dims=True)
        return
    ta, adj_x = _maybe_adjoint(cx, a, node.input[0])
    tb, adj_y = _maybe_adjoint(cx, b, node.input[1])
    out = cx.define(node.output[0])
    opts = cx.builder.options("BatchMatMulOptions", adjX=adj_x, adjY=adj_y)
    cx.builder.op("BATCH_MATMUL", [ta, tb], [out.tensor], opts)


def _maybe_adjoint(cx: Converter, v, name: str) -> tuple[int, bool]:
    """An operand whose layout only swaps its last two dims is read as is,
    with BATCH_MATMUL's adj flag, instead of being transposed back."""
    r = v.rank
    swapped = tuple(range(r - 2)) + (r - 1, r - 2)
    if v.tensor is not None and v.col_perm is None and v.perm == swapped:
        return v.tensor, True
    return cx.tensor(v, None, name), False


# --- softmax / normalization ---------------------------------------------------------


@register("Softmax", "LogSoftmax")
def softmax(cx: Converter, node, attrs) -> None:
    """TFLite's SOFTMAX / LOG_SOFTMAX normalize the last dim. ONNX opset < 13
    normalizes the flattened dims [axis:], which is the last dim when
    axis == rank - 1; otherwise the value is read in a layout whose last
    dim is ``axis`` (and, before opset 13, reshaped to 2-D)."""
    x = cx.inp(node, 0)
    r = x.rank
    axis = int(attrs.get("axis", -1 if cx.opset >= 13 else 1)) % r
    op = "SOFTMAX" if node.op_type == "Softmax" else "LOG_SOFTMAX"
    if op == "SOFTMAX":
        opts = cx.builder.options("SoftmaxOptions", beta=1.0)
    else:
        opts = cx.builder.options("LogSoftmaxOptions")
    if cx.opset < 13 and axis != r - 1:
        xt = cx.tensor(x, None, node.input[0])
        flat = (int(np.prod(x.shape[:axis])), int(np.prod(x.shape[axis:])))
        t2 = cx.new(cx.uid("flat"), flat, x.dtype)
        cx.reshape_op(xt, t2, flat)
        y2 = cx.new(cx.uid("softmax"), flat, x.dtype)
        cx.builder.op(op, [t2], [y2], opts)
        out = cx.define(node.output[0])
        cx.reshape_op(y2, out.tensor, out.shape)
        return
    layout = x.layout
    if layout[-1] != axis:  # move the axis last, keep the rest in their current order
        layout = tuple(a for a in layout if a != axis) + (axis,)
    xt = cx.tensor(x, layout, node.input[0])
    out = cx.define(node.output[0], layout)
    cx.builder.op(op, [xt], [out.tensor], opts)


@register("LayerNormalization")
def layer_norm(cx: Converter, node, attrs) -> None:
    """y = (x - mean) / sqrt(var + eps) * scale + bias over axes [axis, rank)
    (ONNX LayerNormalization, opset 17), decomposed into MEAN, SUB, MUL, ADD,
    RSQRT ops."""
    if len([o for o in node.output if o]) > 1:
        raise DelegateError("LayerNormalization with Mean/InvStdDev outputs is not converted")
    x = cx.inp(node, 0)
    r = x.rank
    axis = int(attrs.get("axis", -1)) % r
    eps = float(attrs.get("epsilon", 1e-5))
    xt = cx.tensor(x, None, node.input[0])
    axes = cx.const("axes", np.arange(axis, r, dtype=np.int32))
    red = x.shape[:axis] + (1,) * (r - axis)
    mean = cx.new(cx.uid("ln_mean"), red, np.float32)
    cx.builder.op("MEAN", [xt, axes], [mean], cx.builder.options("ReducerOptions", keepDims=True))
    d = cx.new(cx.uid("ln_centered"), x.shape, np.float32)
    cx.builder.op("SUB", [xt, mean], [d], cx.builder.options("SubOptions"))
    sq = cx.new(cx.uid("ln_sq"), x.shape, np.float32)
    cx.builder.op("MUL", [d, d], [sq], cx.builder.options("MulOptions"))
    var = cx.new(cx.uid("ln_var"), red, np.float32)
    cx.builder.op("MEAN", [sq, axes], [var], cx.builder.options("ReducerOptions", keepDims=True))
    ve = cx.new(cx.uid("ln_var_eps"), red, np.float32)
    cx.builder.op("ADD", [var, cx.const("eps", np.array(eps, np.float32))], [ve], cx.builder.options("AddOptions"))
    inv = cx.new(cx.uid("ln_rstd"), red, np.float32)
    cx.builder.op("RSQRT", [ve], [inv])
    norm = cx.new(cx.uid("ln_norm"), x.shape, np.float32)
    cx.builder.op("MUL", [d, inv], [norm], cx.builder.options("MulOptions"))
    scale, bias = cx.const_of(node, 1), cx.const_of(node, 2)
    out = cx.define(node.output[0])
    tail = x.shape[axis:]
    scaled = norm
    if scale is not None:
        scaled = out.tensor if bias is None else cx.new(cx.uid("ln_scaled"), x.shape, np.float32)
        cx.builder.op("MUL", [norm, cx.const("gamma", np.broadcast_to(scale, tail).astype(np.float32).copy())],
                      [scaled], cx.builder.options("MulOptions"))
    if bias is not None:
        cx.builder.op("ADD", [scaled, cx.const("beta", np.broadcast_to(bias, tail).astype(np.float32).copy())],
                      [out.tensor], cx.builder.options("AddOptions"))
    elif scale is None:
        cx.reshape_op(norm, out.tensor, x.shape)
