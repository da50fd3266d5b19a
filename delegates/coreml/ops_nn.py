"""Lowerings of neural-network ops to MIL: convolution, pooling, normalization,
matrix products, activations, softmax and resize.

ONNX semantics are the operator specification's (``onnx/docs/Operators.md``);
MIL's are coremltools' op definitions (``converters/mil/mil/ops/defs``). The
differences handled here: MIL pads are interleaved per axis
(``[begin0, end0, begin1, end1]``) where ONNX lists all begins then all ends;
ONNX ``Softmax`` before opset 13 normalizes over the input flattened to 2-D at
``axis``; ``Gemm``'s alpha/beta/transposes.
"""

from __future__ import annotations

import numpy as np

from unified.errors import DelegateError

from unified.onnx import Node, conv_transpose_pads, resolve_pads, window

from .convert import Ctx, np_dtype, out_name
from .support import pool_output_size

__all__ = ["LOWERINGS"]

_PAD_TYPES = {"VALID": "valid", "SAME_UPPER": "same", "SAME_LOWER": "same_lower"}


def _mil_pad(begins: list[int], ends: list[int]) -> dict:
    """Custom MIL padding: interleaved per axis, ``[b0, e0, b1, e1, ...]``."""
    return {"pad_type": "custom", "pad": np.array([v for b, e in zip(begins, ends) for v in (b, e)], dtype=np.int32)}


def _padding(ctx: Ctx, n: Node, x, win) -> dict:
    """MIL padding of a Conv or pooling node: MIL's own ``valid``/``same``/``same_lower``
    for ``auto_pad`` (so symbolic spatial dims stay symbolic), else the explicit pads."""
    auto = n.attr("auto_pad", "NOTSET")
    if auto in _PAD_TYPES:
        return {"pad_type": _PAD_TYPES[auto]}
    return _mil_pad(*resolve_pads(n.attrs, ctx.shape(x)[2:], win))


def _weight(ctx: Ctx, name: str, dt: str):
    w = ctx.const(name)
    return ctx.var(name, dt) if w is None else w.astype(np_dtype(dt))


def _conv(ctx: Ctx, n: Node):
    dt = ctx.mil_dtype(n.inputs[0])
    x = ctx.var(n.inputs[0])
    w = _weight(ctx, n.inputs[1], dt)
    # a symbolic kernel dim (weight fed at run time) reads 0: MIL pads SAME itself, explicit pads need none
    win = window(n.attrs, [0 if d is None else d for d in ctx.shape(w)[2:]])
    k = len(win.kernel)
    kw = dict(
        strides=np.array(win.strides, dtype=np.int32),
        dilations=np.array(win.dilations, dtype=np.int32),
        groups=win.group,
        **_padding(ctx, n, x, win),
    )
    if n.input(2) and ctx.is_const(n.inputs[2]):
        kw["bias"] = _weight(ctx, n.inputs[2], dt)
    elif n.input(2):  # MIL conv takes a constant bias only: add a (C, 1, ...) bias after the conv
        y = ctx.mb.conv(x=x, weight=w, **kw)
        bias = ctx.mb.expand_dims(x=ctx.var(n.inputs[2], dt), axes=list(range(1, k + 1)))
        return ctx.mb.add(x=y, y=bias, **out_name(ctx, n))
    return ctx.mb.conv(x=x, weight=w, **kw, **out_name(ctx, n))


def _conv_transpose(ctx: Ctx, n: Node):
    dt = ctx.mil_dtype(n.inputs[0])
    x = ctx.var(n.inputs[0])
    w = _weight(ctx, n.inputs[1], dt)
    win = window(n.attrs, w.shape[2:])
    begins, ends, outs = conv_transpose_pads(n.attrs, ctx.shape(x)[2:], win)
    kw = dict(
        strides=np.array(win.strides, dtype=np.int32),
        dilations=np.array(win.dilations, dtype=np.int32),
        groups=win.group,
        **_mil_pad(begins, ends),
        output_shape=np.array([ctx.shape(x)[0], int(w.shape[1]) * win.group, *outs], dtype=np.int32),
    )
    if n.input(2):
        kw["bias"] = _weight(ctx, n.inputs[2], dt)
    return ctx.mb.conv_transpose(x=x, weight=w, **kw, **out_name(ctx, n))


def _pool(op: str):
    def lower(ctx: Ctx, n: Node):
        x = ctx.var(n.inputs[0])
        win = window(n.attrs, n.attr("kernel_shape"))
        padding = _padding(ctx, n, x, win)
        ceil_mode = bool(n.attr("ceil_mode", 0))
        if ceil_mode:
            padding, ceil_mode = _ceil_as_padding(ctx, n, x, win, op)
        kw = dict(kernel_sizes=list(win.kernel), strides=list(win.strides), ceil_mode=ceil_mode, **padding)
        if op == "avg_pool":
            kw["exclude_padding_from_average"] = not n.attr("count_include_pad", 0)
        return getattr(ctx.mb, op)(x=x, **kw, **out_name(ctx, n))

    return lower


def _ceil_as_padding(ctx: Ctx, n: Node, x, win, op: str):
    """``(padding kwargs, ceil_mode)`` giving ONNX's ceil_mode output size with MIL floor pooling.

    Each axis gets the end padding that makes the floor rule produce the ONNX
    ceil-mode size (extra end padding is never read by max pooling, and is
    excluded from the average when ``count_include_pad=0``). When no axis
    gains a window the node is plain floor pooling. Average pooling with
    ``count_include_pad=1`` would count the extra padding, so it is only
    lowered when ceil and floor agree (``support._ceil_mode`` declines the rest).

    Raises:
        DelegateError: symbolic spatial dims, or AveragePool with
            ``count_include_pad=1`` where ceil mode adds a window.
    """
    kernel, strides = win.kernel, win.strides
    spatial = ctx.shape(x)[2:]
    if any(d is None for d in spatial):
        raise DelegateError(f"coreml: {n.op_type} '{n.name}' ceil_mode=1 needs static spatial dims")
    begins, pad_ends = resolve_pads(n.attrs, spatial, win)
    ends = []
    for i in range(len(kernel)):
        want = pool_output_size(spatial[i], kernel[i], strides[i], begins[i], pad_ends[i], True)
        floor = pool_output_size(spatial[i], kernel[i], strides[i], begins[i], pad_ends[i], False)
        if want != floor and op == "avg_pool" and n.attr("count_include_pad", 0):
            raise DelegateError(
                f"coreml: AveragePool '{n.name}' ceil_mode=1 with count_include_pad=1 adds a partial window "
                f"on axis {i + 2}; Core ML would count its padding"
            )
        ends.append(max(pad_ends[i], (want - 1) * strides[i] + kernel[i] - spatial[i] - begins[i]))
    return _mil_pad(begins, ends), False


def _global_pool(op: str):
    def lower(ctx: Ctx, n: Node):
        x = ctx.var(n.inputs[0])
        axes = list(range(2, len(x.shape)))
        return getattr(ctx.mb, op)(x=x, axes=axes, keep_dims=True, **out_name(ctx, n))

    return lower


def _batch_norm(ctx: Ctx, n: Node):
    dt = ctx.mil_dtype(n.inputs[0])
    scale, bias, mean, var = (_weight(ctx, n.inputs[i], dt) for i in range(1, 5))
    return ctx.mb.batch_norm(
        x=ctx.var(n.inputs[0]), mean=mean, variance=var, gamma=scale, beta=bias,
        epsilon=np.array(n.attr("epsilon", 1e-5), dtype=np_dtype(dt)), **out_name(ctx, n),
    )


def _instance_norm(ctx: Ctx, n: Node):
    dt = ctx.mil_dtype(n.inputs[0])
    return ctx.mb.instance_norm(
        x=ctx.var(n.inputs[0]), gamma=_weight(ctx, n.inputs[1], dt), beta=_weight(ctx, n.inputs[2], dt),
        epsilon=np.array(n.attr("epsilon", 1e-5), dtype=np_dtype(dt)), **out_name(ctx, n),
    )


def _layer_norm(ctx: Ctx, n: Node):
    dt = ctx.mil_dtype(n.inputs[0])
    x = ctx.var(n.inputs[0])
    rank = len(x.shape)
    axis = int(n.attr("axis", -1))
    axis = axis + rank if axis < 0 else axis
    axes = list(range(axis, rank))
    norm_shape = [int(d) for d in ctx.shape(x)[axis:]]
    gamma = ctx.const(n.inputs[1])
    beta = ctx.const(n.input(2))
    kw = {}
    if gamma is not None:
        kw["gamma"] = np.broadcast_to(gamma, norm_shape).astype(np_dtype(dt))
    if beta is not None:
        kw["beta"] = np.broadcast_to(beta, norm_shape).astype(np_dtype(dt))
    return ctx.mb.layer_norm(
        x=x, axes=axes, epsilon=np.array(n.attr("epsilon", 1e-5), dtype=np_dtype(dt)), **kw, **out_name(ctx, n)
    )


def _lrn(ctx: Ctx, n: Node):
    # ONNX LRN: x / (bias + alpha/size * sum(x^2 over size channels))^beta, MIL local_response_norm the same.
    dt = ctx.mil_dtype(n.inputs[0])
    f = np_dtype(dt)
    return ctx.mb.local_response_norm(
        x=ctx.var(n.inputs[0]), size=int(n.attr("size")), alpha=f(n.attr("alpha", 1e-4)),
        beta=f(n.attr("beta", 0.75)), k=f(n.attr("bias", 1.0)), **out_name(ctx, n),
    )


def _matmul(ctx: Ctx, n: Node):
    """ONNX MatMul (numpy.matmul): a 1-D operand is promoted to a matrix, the added axis removed after.

    The promotion is explicit here (MIL's matmul type inference fails on a
    1-D ``y``): ``x`` (K,) -> (1, K), ``y`` (K,) -> (K, 1), then those axes are
    squeezed; two 1-D operands are a dot product (``reduce_sum`` of the product).
    """
    dt = ctx.mil_dtype(n.inputs[0])
    x, y = ctx.var(n.inputs[0], dt), ctx.var(n.inputs[1], dt)
    if len(x.shape) == 1 and len(y.shape) == 1:  # dot product -> rank 0
        return ctx.mb.reduce_sum(x=ctx.mb.mul(x=x, y=y), axes=[0], keep_dims=False, **out_name(ctx, n))
    squeeze = []
    if len(x.shape) == 1:
        x = ctx.mb.expand_dims(x=x, axes=[0])
        squeeze.append(-2)
    if len(y.shape) == 1:
        y = ctx.mb.expand_dims(x=y, axes=[-1])
        squeeze.append(-1)
    if not squeeze:
        return ctx.mb.matmul(x=x, y=y, **out_name(ctx, n))
    out = ctx.mb.matmul(x=x, y=y)
    return ctx.mb.squeeze(x=out, axes=squeeze, **out_name(ctx, n))


def _gemm(ctx: Ctx, n: Node):
    """Y = alpha * A' @ B' + beta * C, A' = A or A^T, B' = B or B^T (ONNX Gemm)."""
    dt = ctx.mil_dtype(n.inputs[0])
    f = np_dtype(dt)
    alpha, beta = float(n.attr("alpha", 1.0)), float(n.attr("beta", 1.0))
    ta, tb = bool(n.attr("transA", 0)), bool(n.attr("transB", 0))
    a = ctx.var(n.inputs[0], dt)
    b = ctx.const(n.inputs[1])
    c = ctx.const(n.input(2)) if n.input(2) else None
    dynamic_c = bool(n.input(2)) and c is None
    if b is not None and not dynamic_c:
        weight = ((b if tb else b.T) * alpha).astype(f)  # linear wants (N, K)
        n_out = weight.shape[0]
        bias = None
        if c is None:
            bias = np.zeros(n_out, dtype=f)
        elif c.size in (1, n_out) and (c.ndim <= 1 or (c.ndim == 2 and c.shape[0] == 1)):
            bias = np.broadcast_to((c * beta).astype(f).reshape(-1), (n_out,)).copy()
        if bias is not None:
            if ta:
                a = ctx.mb.transpose(x=a, perm=[1, 0])
            return ctx.mb.linear(x=a, weight=weight, bias=bias, **out_name(ctx, n))
    y = ctx.mb.matmul(x=a, y=ctx.var(n.inputs[1], dt), transpose_x=ta, transpose_y=tb)
    if alpha != 1.0:
        y = ctx.mb.mul(x=y, y=f(alpha))
    if n.input(2):
        cv = ctx.var(n.inputs[2], dt)
        if beta != 1.0:
            cv = ctx.mb.mul(x=cv, y=f(beta))
        return ctx.mb.add(x=y, y=cv, **out_name(ctx, n))
    return ctx.mb.identity(x=y, **out_name(ctx, n))


def _softmax(log: bool):
    def lower(ctx: Ctx, n: Node):
        x = ctx.var(n.inputs[0])
        rank = len(x.shape)
        default = -1 if n.opset >= 13 else 1
        axis = int(n.attr("axis", default))
        axis = axis + rank if axis < 0 else axis
        if n.opset >= 13 or axis == rank - 1:
            return _softmax_axis(ctx, n, x, axis, log)
        # opset < 13: the input is coerced to 2-D [prod(:axis), prod(axis:)] and normalized per row
        dims = ctx.shape(x)
        tail = int(np.prod(dims[axis:], dtype=np.int64))
        flat = ctx.mb.reshape(x=x, shape=np.array([-1, tail], dtype=np.int32))
        y = _softmax_axis(ctx, None, flat, 1, log)
        return ctx.mb.reshape(x=y, shape=ctx.mb.shape(x=x), **out_name(ctx, n))

    return lower


def _softmax_axis(ctx: Ctx, n: Node | None, x, axis: int, log: bool):
    kw = out_name(ctx, n) if n is not None else {}
    if not log:
        return ctx.mb.softmax(x=x, axis=axis, **kw)
    lse = ctx.mb.reduce_log_sum_exp(x=x, axes=[axis], keep_dims=True)
    return ctx.mb.sub(x=x, y=lse, **kw)


def _act(op: str, **params):
    """An activation whose ONNX attributes map to MIL parameters: params = {mil: (onnx, default)}."""

    def lower(ctx: Ctx, n: Node):
        f = np_dtype(ctx.mil_dtype(n.inputs[0]))
        kw = {mil: f(n.attr(onnx_name, default)) for mil, (onnx_name, default) in params.items()}
        return getattr(ctx.mb, op)(x=ctx.var(n.inputs[0]), **kw, **out_name(ctx, n))

    return lower


def _selu(ctx: Ctx, n: Node):
    f = np_dtype(ctx.mil_dtype(n.inputs[0]))
    y = ctx.mb.elu(x=ctx.var(n.inputs[0]), alpha=f(n.attr("alpha", 1.67326319217681884765625)))
    return ctx.mb.mul(x=y, y=f(n.attr("gamma", 1.05070102214813232421875)), **out_name(ctx, n))


def _hard_swish(ctx: Ctx, n: Node):
    # ONNX HardSwish: x * max(0, min(1, x/6 + 1/2))
    f = np_dtype(ctx.mil_dtype(n.inputs[0]))
    x = ctx.var(n.inputs[0])
    gate = ctx.mb.sigmoid_hard(x=x, alpha=f(1.0 / 6.0), beta=f(0.5))
    return ctx.mb.mul(x=x, y=gate, **out_name(ctx, n))


def _thresholded_relu(ctx: Ctx, n: Node):
    # ONNX ThresholdedRelu: x if x > alpha else 0 (strict). MIL thresholded_relu keeps x == alpha
    # (iOS15.activation.thresholded_relu: "x if x >= alpha"), found by mil-numpy on onnx
    # test_thresholdedrelu_example (x = alpha = 2 gave 2), so it is a select on a strict compare.
    f = np_dtype(ctx.mil_dtype(n.inputs[0]))
    x = ctx.var(n.inputs[0])
    keep = ctx.mb.greater(x=x, y=f(n.attr("alpha", 1.0)))
    return ctx.mb.select(cond=keep, a=x, b=f(0), **out_name(ctx, n))


def _prelu(ctx: Ctx, n: Node):
    # ONNX PRelu: x if x >= 0 else slope * x, slope broadcast to x: relu(x) + slope * min(x, 0)
    dt = ctx.mil_dtype(n.inputs[0])
    x = ctx.var(n.inputs[0])
    neg = ctx.mb.mul(x=ctx.var(n.inputs[1], dt), y=ctx.mb.minimum(x=x, y=np_dtype(dt)(0)))
    return ctx.mb.add(x=ctx.mb.relu(x=x), y=neg, **out_name(ctx, n))


def _gelu(ctx: Ctx, n: Node):
    mode = "TANH_APPROXIMATION" if n.attr("approximate", "none") == "tanh" else "EXACT"
    return ctx.mb.gelu(x=ctx.var(n.inputs[0]), mode=mode, **out_name(ctx, n))


def _mish(ctx: Ctx, n: Node):
    x = ctx.var(n.inputs[0])
    return ctx.mb.mul(x=x, y=ctx.mb.tanh(x=ctx.mb.softplus(x=x)), **out_name(ctx, n))


def _resize(ctx: Ctx, n: Node):
    x = ctx.var(n.inputs[0])
    dims = ctx.shape(x)
    out = ctx.shapes[n.outputs[0]]
    sh, sw = out[2] / dims[2], out[3] / dims[3]
    mode = n.attr("mode", "nearest")
    if mode == "nearest":
        return ctx.mb.upsample_nearest_neighbor(
            x=x, scale_factor_height=int(round(sh)), scale_factor_width=int(round(sw)), **out_name(ctx, n)
        )
    coord = n.attr("coordinate_transformation_mode", "half_pixel")
    if coord == "align_corners":
        return ctx.mb.resize_bilinear(
            x=x, target_size_height=int(out[2]), target_size_width=int(out[3]),
            sampling_mode="STRICT_ALIGN_CORNERS", **out_name(ctx, n),
        )
    sampling = {"asymmetric": "DEFAULT", "half_pixel": "UNALIGN_CORNERS", "pytorch_half_pixel": "UNALIGN_CORNERS"}
    return ctx.mb.resize_bilinear(
        x=x, target_size_height=int(out[2]), target_size_width=int(out[3]), sampling_mode=sampling[coord],
        **out_name(ctx, n),
    )


LOWERINGS = {
    "Conv": _conv,
    "ConvTranspose": _conv_transpose,
    "MaxPool": _pool("max_pool"),
    "AveragePool": _pool("avg_pool"),
    "GlobalAveragePool": _global_pool("reduce_mean"),
    "GlobalMaxPool": _global_pool("reduce_max"),
    "BatchNormalization": _batch_norm,
    "InstanceNormalization": _instance_norm,
    "LayerNormalization": _layer_norm,
    "LRN": _lrn,
    "MatMul": _matmul,
    "Gemm": _gemm,
    "Softmax": _softmax(log=False),
    "LogSoftmax": _softmax(log=True),
    "Relu": _act("relu"),
    "Sigmoid": _act("sigmoid"),
    "Tanh": _act("tanh"),
    "Softplus": _act("softplus"),
    "Softsign": _act("softsign"),
    "LeakyRelu": _act("leaky_relu", alpha=("alpha", 0.01)),
    "Elu": _act("elu", alpha=("alpha", 1.0)),
    "ThresholdedRelu": _thresholded_relu,
    "HardSigmoid": _act("sigmoid_hard", alpha=("alpha", 0.2), beta=("beta", 0.5)),
    "Selu": _selu,
    "HardSwish": _hard_swish,
    "PRelu": _prelu,
    "Gelu": _gelu,
    "Mish": _mish,
    "Resize": _resize,
}
