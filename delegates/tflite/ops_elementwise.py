"""Converters for elementwise ops: activations, arithmetic with broadcasting,
comparisons, Where, Cast, and the QDQ pair.

Elementwise ops keep the layout of their (first full-rank) activation input;
constants are broadcast to the output rank and laid out to match, so an NHWC
chain stays NHWC.
"""

from __future__ import annotations

import math

import numpy as np

from unified.errors import DelegateError

from .convert import Converter, Value, register
from .fuse import act_enum, fused_activation, clip_bounds
from .ops_shape import to_rank
from .quantize import same_quant

_UNARY = {
    "Relu": "RELU", "Sigmoid": "LOGISTIC", "Tanh": "TANH", "Exp": "EXP", "Log": "LOG", "Sqrt": "SQRT",
    "Neg": "NEG", "Abs": "ABS", "HardSwish": "HARD_SWISH", "Floor": "FLOOR", "Ceil": "CEIL", "Sin": "SIN",
    "Cos": "COS", "Not": "LOGICAL_NOT", "Elu": "ELU",
}

_BINARY = {
    "Add": ("ADD", "AddOptions"), "Sub": ("SUB", "SubOptions"), "Mul": ("MUL", "MulOptions"),
    "Div": ("DIV", "DivOptions"), "Pow": ("POW", None), "Max": ("MAXIMUM", None), "Min": ("MINIMUM", None),
    "Sum": ("ADD", "AddOptions"), "Equal": ("EQUAL", None), "Greater": ("GREATER", None), "Less": ("LESS", None),
    "GreaterOrEqual": ("GREATER_EQUAL", None), "LessOrEqual": ("LESS_EQUAL", None),
    "And": ("LOGICAL_AND", None), "Or": ("LOGICAL_OR", None), "PRelu": ("PRELU", None),
}
_FUSABLE = {"ADD", "SUB", "MUL", "DIV"}


def out_layout(cx: Converter, ins: list[Value], rank: int) -> tuple[int, ...]:
    """Layout of an elementwise result: the first permuted full-rank activation's, else ONNX order."""
    for v in ins:
        if v.tensor is not None and v.rank == rank and v.perm is not None and v.col_perm is None:
            return v.perm
    return tuple(range(rank))


def operand(cx: Converter, v: Value, name: str, layout: tuple[int, ...], dtype=None) -> int:
    """``v`` as a TFLite tensor broadcast-compatible with a result in ``layout``."""
    rank = len(layout)
    if v.tensor is None:
        arr = v.const if dtype is None else v.const.astype(dtype)
        return cx.const_in(arr, layout, rank, name)
    return cx.tensor(to_rank(cx, v, name, rank), layout, name)


def _simple(cx: Converter, node, op: str, options=None, layout=None) -> None:
    names = [x for x in node.input if x]
    ins = [cx.get(x) for x in names]
    rank = len(cx.out_shape(node.output[0]))
    layout = out_layout(cx, ins, rank) if layout is None else layout
    tensors = [operand(cx, v, n, layout) for v, n in zip(ins, names)]
    out = cx.define(node.output[0], layout)
    cx.builder.op(op, tensors, [out.tensor], options)


@register(*_UNARY)
def unary(cx: Converter, node, attrs) -> None:
    _simple(cx, node, _UNARY[node.op_type])


@register("Reciprocal")
def reciprocal(cx: Converter, node, attrs) -> None:
    """1 / x as DIV of a broadcast constant 1 (TFLite has no RECIPROCAL builtin)."""
    x = cx.inp(node, 0)
    xt = cx.tensor(x, x.layout, node.input[0])
    out = cx.define(node.output[0], x.layout)
    one = cx.const_in(np.ones((), x.dtype), None, x.rank, "one")
    cx.builder.op("DIV", [one, xt], [out.tensor], cx.builder.options("DivOptions"))


@register("IsNaN")
def isnan(cx: Converter, node, attrs) -> None:
    """NaN is the only value unequal to itself: NOT_EQUAL(x, x)."""
    x = cx.inp(node, 0)
    xt = cx.tensor(x, x.layout, node.input[0])
    out = cx.define(node.output[0], x.layout)
    cx.builder.op("NOT_EQUAL", [xt, xt], [out.tensor])


@register(*_BINARY)
def binary(cx: Converter, node, attrs) -> None:
    op, opt_kind = _BINARY[node.op_type]
    names = [x for x in node.input if x]
    ins = [cx.get(x) for x in names]
    if node.op_type == "Pow" and ins[1].const is not None and ins[1].const.size == 1:
        e = float(ins[1].const.reshape(-1)[0])
        if e in (2.0, 0.5, 1.0):
            x = ins[0]
            xt = cx.tensor(x, x.layout, names[0])
            out = cx.define(node.output[0], x.layout)
            if e == 2.0:
                cx.builder.op("MUL", [xt, xt], [out.tensor], cx.builder.options("MulOptions"))
            elif e == 0.5:
                cx.builder.op("SQRT", [xt], [out.tensor])
            else:
                cx.reshape_op(xt, out.tensor, out.tshape())
            return
    if node.op_type == "Pow" and ins[1].dtype != ins[0].dtype:
        ins[1] = _cast_value(cx, ins[1], names[1], ins[0].dtype)  # TFLite POW needs equal types; ONNX allows int exponents
    rank = len(cx.out_shape(node.output[0]))
    layout = out_layout(cx, ins, rank)
    final, act = node.output[0], "NONE"
    if op in _FUSABLE and len(ins) == 2 and ins[0].dtype == np.float32:
        final, act = fused_activation(cx, node.output[0])
    tensors = [operand(cx, v, n, layout) for v, n in zip(ins, names)]
    if node.op_type == "PRelu":
        # TFLite PRELU broadcasts alpha like ONNX; give it the input's rank
        out = cx.define(final, layout)
        cx.builder.op("PRELU", tensors, [out.tensor])
        return
    # n-ary Sum / Max / Min: a chain of binary ops
    acc = tensors[0]
    for k, t in enumerate(tensors[1:], start=1):
        last = k == len(tensors) - 1
        if last:
            dst = cx.define(final, layout).tensor
        else:
            dst = cx.new(cx.uid(node.output[0]), _partial_shape(cx, ins[: k + 1], layout), ins[0].dtype)
        opts = None
        if opt_kind:
            opts = cx.builder.options(opt_kind, fusedActivationFunction=act_enum(cx, act if last else "NONE"))
        cx.builder.op(op, [acc, t], [dst], opts)
        acc = dst
    if len(tensors) == 1:
        out = cx.define(final, layout)
        cx.reshape_op(acc, out.tensor, out.tshape())


def _cast_value(cx: Converter, v: Value, name: str, dtype) -> Value:
    """``v`` converted to ``dtype``: at compile time for a constant, else a CAST in ``v``'s layout."""
    dtype = np.dtype(dtype)
    if v.tensor is None and v.const is not None:
        return Value(v.shape, dtype, const=v.const.astype(dtype))
    src = cx.tensor(v, v.layout, name)
    dst = cx.new(cx.uid(name), v.tshape(), dtype)
    cx.builder.op("CAST", [src], [dst])
    return Value(v.shape, dtype, tensor=dst, perm=v.perm)


def _partial_shape(cx: Converter, vals: list[Value], layout) -> tuple[int, ...]:
    shape = np.broadcast_shapes(*[v.shape for v in vals])
    shape = (1,) * (len(layout) - len(shape)) + tuple(shape)
    return tuple(shape[a] for a in layout)


@register("Where")
def where(cx: Converter, node, attrs) -> None:
    _simple(cx, node, "SELECT_V2")


@register("Clip")
def clip(cx: Converter, node, attrs) -> None:
    lo, hi = clip_bounds(cx, node)
    x = cx.inp(node, 0)
    named = {(0.0, 6.0): "RELU6", (0.0, math.inf): "RELU", (-1.0, 1.0): "RELU_N1_TO_1", (0.0, 1.0): "RELU_0_TO_1"}
    xt = cx.tensor(x, x.layout, node.input[0])
    out = cx.define(node.output[0], x.layout)
    op = named.get((lo, hi)) if x.dtype == np.float32 else None
    if op:
        cx.builder.op(op, [xt], [out.tensor])
        return
    steps = [(s, b) for s, b in (("MAXIMUM", lo), ("MINIMUM", hi)) if b is not None and math.isfinite(b)]
    cur = xt
    for k, (op, bound) in enumerate(steps):
        dst = out.tensor if k == len(steps) - 1 else cx.new(cx.uid("clip"), x.tshape(), x.dtype)
        cx.builder.op(op, [cur, cx.const("bound", np.array(bound, x.dtype))], [dst])
        cur = dst
    if not steps:
        cx.reshape_op(xt, out.tensor, out.tshape())


@register("HardSigmoid")
def hard_sigmoid(cx: Converter, node, attrs) -> None:
    """y = max(0, min(1, alpha * x + beta)) as MUL, ADD, RELU_0_TO_1."""
    x = cx.inp(node, 0)
    alpha, beta = float(attrs.get("alpha", 0.2)), float(attrs.get("beta", 0.5))
    xt = cx.tensor(x, x.layout, node.input[0])
    a = cx.new(cx.uid("hs_mul"), x.tshape(), np.float32)
    cx.builder.op("MUL", [xt, cx.const("alpha", np.array(alpha, np.float32))], [a], cx.builder.options("MulOptions"))
    c = cx.new(cx.uid("hs_add"), x.tshape(), np.float32)
    cx.builder.op("ADD", [a, cx.const("beta", np.array(beta, np.float32))], [c], cx.builder.options("AddOptions"))
    out = cx.define(node.output[0], x.layout)
    cx.builder.op("RELU_0_TO_1", [c], [out.tensor])


@register("LeakyRelu")
def leaky_relu(cx: Converter, node, attrs) -> None:
    _simple(cx, node, "LEAKY_RELU", cx.builder.options("LeakyReluOptions", alpha=float(attrs.get("alpha", 0.01))))


@register("Gelu")
def gelu(cx: Converter, node, attrs) -> None:
    _simple(cx, node, "GELU", cx.builder.options("GeluOptions", approximate=attrs.get("approximate", "none") == "tanh"))


# Abramowitz & Stegun, Handbook of Mathematical Functions (1964), formula 7.1.26:
# erf(x) = 1 - (a1 t + a2 t^2 + a3 t^3 + a4 t^4 + a5 t^5) exp(-x^2), t = 1 / (1 + p x), x >= 0;
# |error| <= 1.5e-7.
_AS_P = 0.3275911
_AS_A = (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)


@register("Erf")
def erf(cx: Converter, node, attrs) -> None:
    """Erf has no TFLite builtin: A&S 7.1.26 from ABS, MUL, ADD, DIV, EXP, SIGN
    (absolute error <= 1.5e-7)."""
    x = cx.inp(node, 0)
    lay, shp = x.layout, x.tshape()
    xt = cx.tensor(x, lay, node.input[0])

    def t(tag):
        return cx.new(cx.uid(f"erf_{tag}"), shp, np.float32)

    def c(v):
        return cx.const("erf_c", np.array(v, np.float32))

    ax = t("abs"); cx.builder.op("ABS", [xt], [ax])  # noqa: E702
    px = t("px"); cx.builder.op("MUL", [ax, c(_AS_P)], [px], cx.builder.options("MulOptions"))  # noqa: E702
    den = t("den"); cx.builder.op("ADD", [px, c(1.0)], [den], cx.builder.options("AddOptions"))  # noqa: E702
    tt = t("t"); cx.builder.op("DIV", [c(1.0), den], [tt], cx.builder.options("DivOptions"))  # noqa: E702
    poly = c(_AS_A[4])
    for a in reversed(_AS_A[:4]):  # Horner: (((a5 t + a4) t + a3) t + a2) t + a1, then * t
        m = t("m"); cx.builder.op("MUL", [poly, tt], [m], cx.builder.options("MulOptions"))  # noqa: E702
        poly = t("p"); cx.builder.op("ADD", [m, c(a)], [poly], cx.builder.options("AddOptions"))  # noqa: E702
    pt = t("pt"); cx.builder.op("MUL", [poly, tt], [pt], cx.builder.options("MulOptions"))  # noqa: E702
    sq = t("sq"); cx.builder.op("MUL", [xt, xt], [sq], cx.builder.options("MulOptions"))  # noqa: E702
    nsq = t("nsq"); cx.builder.op("NEG", [sq], [nsq])  # noqa: E702
    ex = t("exp"); cx.builder.op("EXP", [nsq], [ex])  # noqa: E702
    tail = t("tail"); cx.builder.op("MUL", [pt, ex], [tail], cx.builder.options("MulOptions"))  # noqa: E702
    pos = t("pos"); cx.builder.op("SUB", [c(1.0), tail], [pos], cx.builder.options("SubOptions"))  # noqa: E702
    sg = t("sign"); cx.builder.op("SIGN", [xt], [sg])  # noqa: E702
    out = cx.define(node.output[0], lay)
    cx.builder.op("MUL", [pos, sg], [out.tensor], cx.builder.options("MulOptions"))


@register("Cast")
def cast(cx: Converter, node, attrs) -> None:
    x = cx.inp(node, 0)
    dtype = cx.out_dtype(node.output[0])
    if dtype == x.dtype:
        cx.alias(node.output[0], x)
        return
    xt = cx.tensor(x, x.layout, node.input[0])
    out = cx.define(node.output[0], x.layout)
    cx.builder.op("CAST", [xt], [out.tensor])


# --- QDQ ------------------------------------------------------------------------------


def _qparams(cx: Converter, node, attrs, x: Value):
    scale = cx.const_of(node, 1).astype(np.float32)
    zp = cx.const_of(node, 2)
    axis = int(attrs.get("axis", 1)) % max(x.rank, 1) if scale.size > 1 else 0
    return scale, zp, axis


@register("QuantizeLinear")
def quantize(cx: Converter, node, attrs) -> None:
    """QUANTIZE into an int8/uint8 tensor that carries (scale, zero point)."""
    x = cx.inp(node, 0)
    scale, zp, axis = _qparams(cx, node, attrs, x)
    dtype = cx.out_dtype(node.output[0])
    zp = np.zeros(scale.shape, dtype) if zp is None else zp
    lay = x.layout
    taxis = x.axis(axis) if scale.size > 1 else 0
    xt = cx.tensor(x, lay, node.input[0])
    out = cx.define(node.output[0], lay, quant=(scale, zp.astype(np.int64), taxis))
    cx.builder.op("QUANTIZE", [xt], [out.tensor])


@register("DequantizeLinear")
def dequantize(cx: Converter, node, attrs) -> None:
    """DEQUANTIZE when the input tensor carries the same (scale, zero point);
    otherwise (e.g. a raw int8 partition input) (float(x) - zp) * scale."""
    x = cx.inp(node, 0)
    scale, zp, axis = _qparams(cx, node, attrs, x)
    zp = np.zeros(scale.shape, x.dtype) if zp is None else zp
    lay = x.layout
    taxis = x.axis(axis) if scale.size > 1 else 0
    if x.quant is not None and same_quant(x.quant, (scale, zp)) and x.quant[2] == taxis:
        xt = cx.tensor(x, lay, node.input[0])
        out = cx.define(node.output[0], lay)
        cx.builder.op("DEQUANTIZE", [xt], [out.tensor])
        return
    raw = Value(x.shape, x.dtype, tensor=x.tensor, perm=x.perm)
    xt = cx.tensor(raw, lay, node.input[0])
    f = cx.new(cx.uid("dq_cast"), x.tshape(), np.float32)
    cx.builder.op("CAST", [xt], [f])
    bshape = [1] * x.rank
    if scale.size > 1:
        bshape[axis] = scale.size
    zf = cx.const_in(zp.astype(np.float32).reshape(bshape), lay, x.rank, "zp")
    sf = cx.const_in(scale.reshape(bshape), lay, x.rank, "scale")
    d = cx.new(cx.uid("dq_sub"), x.tshape(), np.float32)
    cx.builder.op("SUB", [f, zf], [d], cx.builder.options("SubOptions"))
    out = cx.define(node.output[0], lay)
    cx.builder.op("MUL", [d, sf], [out.tensor], cx.builder.options("MulOptions"))
    if x.rank == 0:
        raise DelegateError("DequantizeLinear of a scalar activation is not converted")
