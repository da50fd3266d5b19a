"""Lowerings of elementwise ops (arithmetic with NumPy broadcasting, comparisons,
logic, activations), Where, Cast and reductions.

Ops that also make sense on host values (shape arithmetic, constant folding)
carry a NumPy ``host_fn``. Semantics: the ONNX operator spec
(https://onnx.ai/onnx/operators/); broadcasting is NumPy's, which torch shares.
"""

from __future__ import annotations

import functools
import operator

import numpy as np

from unified.delegate import attr_in
from unified.graph import NodeView
from unified.onnx import dtype_name, to_numpy

from .ops_common import F, host_ints, torch, torch_dtype
from .support import ALL, BOOL, FLOAT, NUMERIC, TORCH_DTYPES, Lowering, torch_dtype_names

__all__ = ["LOWERINGS"]


def _is_int(x) -> bool:
    return not x.dtype.is_floating_point and x.dtype != torch.bool


def _div(node: NodeView, a, b):
    if _is_int(a):
        return torch.div(a, b, rounding_mode="trunc")  # ONNX integer Div truncates, as C does
    return a / b


def _host_div(node: NodeView, a, b):
    if a.dtype.kind in "iu" and b.dtype.kind in "iu":
        q = np.abs(a) // np.abs(b)
        return (np.sign(a) * np.sign(b) * q).astype(np.result_type(a, b))
    if a.dtype == object or b.dtype == object:
        return a // b  # SymInt shape arithmetic: sizes are positive
    return (a / b).astype(np.result_type(a, b))


def _variadic(name: str):
    def lower(node: NodeView, *xs):
        return functools.reduce(getattr(torch, name), xs)

    return lower


def _mean(node: NodeView, *xs):
    return functools.reduce(torch.add, xs) / len(xs)


def _binary(name: str):
    return lambda node, a, b: getattr(torch, name)(a, b)


def _host_binary(fn):
    def host(node: NodeView, a, b):
        out = fn(a, b)
        return out if out.dtype == object or a.dtype == object else out.astype(np.result_type(a, b), copy=False)

    return host


def _host_compare(fn):
    return lambda node, a, b: np.asarray(fn(a, b), dtype=bool)


def _unary(name: str):
    return lambda node, x: getattr(torch, name)(x)


def clip(node: NodeView, x, lo=None, hi=None):
    if node.opset < 11:
        lo, hi = node.attr("min", None), node.attr("max", None)
    else:
        lo = None if lo is None else lo.reshape(()).item()
        hi = None if hi is None else hi.reshape(()).item()
    if lo is None and hi is None:
        return x
    return torch.clamp(x, lo, hi)


def hard_sigmoid(node: NodeView, x):
    alpha, beta = node.attr("alpha", 0.2), node.attr("beta", 0.5)
    if abs(alpha - 1 / 6) < 1e-7 and beta == 0.5:
        return F.hardsigmoid(x)
    return torch.clamp(x * alpha + beta, 0.0, 1.0)


def gelu(node: NodeView, x):
    if node.attr("approximate", "none") == "tanh":
        # spelled out: ExecuTorch's XNNPACK gelu computes the exact (erf) form whatever ``approximate`` says
        # 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), Hendrycks & Gimpel 2016, eq. in section 2
        return 0.5 * x * (1.0 + torch.tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)))
    return F.gelu(x)


def leaky_relu(node: NodeView, x):
    return F.leaky_relu(x, node.attr("alpha", 0.01))


def elu(node: NodeView, x):
    return F.elu(x, node.attr("alpha", 1.0))


def prelu(node: NodeView, x, slope):
    return torch.where(x < 0, x * slope, x)


def where(node: NodeView, cond, a, b):
    return torch.where(cond, a, b)


def cast(node: NodeView, x):
    return x.to(torch_dtype(node.attr("to")))


def _host_cast(node: NodeView, x):
    if x.dtype == object:  # symbolic sizes stay symbolic (ints)
        return x
    return x.astype(to_numpy(node.attr("to")))


def _cast_check(node: NodeView) -> str | None:
    to = node.attr("to")
    if to not in TORCH_DTYPES:
        return f"Cast to {dtype_name(to)} not handled (handled: {torch_dtype_names()})"
    return None


def _host_where(node: NodeView, c, a, b):
    out = np.where(c, a, b)
    return out if out.dtype == object else out.astype(np.result_type(a, b), copy=False)


# --- reductions --------------------------------------------------------------


def _axes(node: NodeView, x, axes_input) -> list | None:
    """Reduction axes from the attribute (older opsets) or input 1 (newer)."""
    axes = host_ints(axes_input) if axes_input is not None else node.attr("axes", None)
    if not axes:
        return None
    return [int(a) % x.dim() for a in axes]


def _reduce(kind: str):
    def lower(node: NodeView, x, axes_input=None):
        axes = _axes(node, x, axes_input)
        keep = bool(node.attr("keepdims", 1))
        if axes is None:
            if node.attr("noop_with_empty_axes", 0):
                return x
            axes = list(range(x.dim()))
        if kind == "mean":
            return x.mean(dim=axes, keepdim=keep)
        if kind == "sum":
            return x.sum(dim=axes, keepdim=keep)
        if kind == "max":
            return x.amax(dim=axes, keepdim=keep)
        if kind == "min":
            return x.amin(dim=axes, keepdim=keep)
        if kind == "l2":
            return torch.sqrt((x * x).sum(dim=axes, keepdim=keep))
        if kind == "sumsquare":
            return (x * x).sum(dim=axes, keepdim=keep)
        y = x  # prod: one axis at a time, highest first so indices stay valid
        for a in sorted(axes, reverse=True):
            y = torch.prod(y, a, keepdim=keep)
        return y

    return lower


def _arg(kind: str):
    def lower(node: NodeView, x):
        fn = torch.argmax if kind == "max" else torch.argmin
        return fn(x, node.attr("axis", 0), keepdim=bool(node.attr("keepdims", 1)))

    return lower


def _reduce_entry(op: str, kind: str, axes_input_since: int = 18) -> list[Lowering]:
    attrs = frozenset({"axes", "keepdims", "noop_with_empty_axes"})
    return [
        Lowering(op, _reduce(kind), attrs, dtypes=NUMERIC if kind != "mean" else FLOAT, until=axes_input_since - 1),
        Lowering(
            op, _reduce(kind), attrs, dtypes=NUMERIC if kind != "mean" else FLOAT, since=axes_input_since, host_inputs=(1,)
        ),
    ]


_ARITH = {
    "Add": (_binary("add"), operator.add),
    "Sub": (_binary("sub"), operator.sub),
    "Mul": (_binary("mul"), operator.mul),
}

_COMPARE = {
    "Equal": ("eq", np.equal, ALL),
    "Greater": ("gt", np.greater, NUMERIC),
    "Less": ("lt", np.less, NUMERIC),
    "GreaterOrEqual": ("ge", np.greater_equal, NUMERIC),
    "LessOrEqual": ("le", np.less_equal, NUMERIC),
}

_LOGIC = {"And": "logical_and", "Or": "logical_or", "Xor": "logical_xor"}

_UNARY_FLOAT = {
    "Relu": "relu",
    "Sigmoid": "sigmoid",
    "Tanh": "tanh",
    "Exp": "exp",
    "Log": "log",
    "Sqrt": "sqrt",
    "Reciprocal": "reciprocal",
    "Floor": "floor",
    "Ceil": "ceil",
    "Erf": "erf",
    "Sin": "sin",
    "Cos": "cos",
}

LOWERINGS: tuple[Lowering, ...] = (
    *(Lowering(op, fn, dtypes=NUMERIC, since=7, host_fn=_host_binary(h)) for op, (fn, h) in _ARITH.items()),
    Lowering("Div", _div, dtypes=NUMERIC, since=7, host_fn=_host_div),
    Lowering("Pow", _binary("pow"), dtypes=FLOAT, since=7),
    Lowering("Sum", _variadic("add"), dtypes=FLOAT, since=8),
    Lowering("Mean", _mean, dtypes=FLOAT, since=8),
    Lowering("Max", _variadic("maximum"), dtypes=NUMERIC, since=8, host_fn=lambda n, *xs: functools.reduce(np.maximum, xs)),
    Lowering("Min", _variadic("minimum"), dtypes=NUMERIC, since=8, host_fn=lambda n, *xs: functools.reduce(np.minimum, xs)),
    *(Lowering(op, _binary(t), dtypes=d, since=7, host_fn=_host_compare(h)) for op, (t, h, d) in _COMPARE.items()),
    *(Lowering(op, _binary(t), dtypes=BOOL, since=7) for op, t in _LOGIC.items()),
    Lowering("Not", _unary("logical_not"), dtypes=BOOL, host_fn=lambda n, x: np.logical_not(x)),
    Lowering("Abs", _unary("abs"), dtypes=NUMERIC, since=6),
    Lowering("Neg", _unary("neg"), dtypes=NUMERIC, since=6, host_fn=lambda n, x: -x),
    *(Lowering(op, _unary(t), since=6) for op, t in _UNARY_FLOAT.items()),
    Lowering("IsNaN", _unary("isnan"), since=9),
    Lowering("IsInf", _unary("isinf"), frozenset({"detect_negative", "detect_positive"}), since=10,
             constraints=(lambda n: None if n.attr("detect_negative", 1) and n.attr("detect_positive", 1)
                          else "IsInf with one-sided detection not handled",)),
    Lowering("Clip", clip, frozenset({"min", "max"}), since=6, host_inputs=(1, 2)),
    Lowering("HardSigmoid", hard_sigmoid, frozenset({"alpha", "beta"}), since=6),
    Lowering("HardSwish", lambda node, x: F.hardswish(x), since=14),
    Lowering("Gelu", gelu, frozenset({"approximate"}), since=20),
    Lowering("LeakyRelu", leaky_relu, frozenset({"alpha"}), since=6),
    Lowering("Elu", elu, frozenset({"alpha"}), since=6),
    Lowering("PRelu", prelu, since=7),
    Lowering("Softplus", lambda node, x: F.softplus(x)),
    Lowering("Where", where, dtypes=BOOL, since=9, host_fn=_host_where),
    Lowering("Cast", cast, frozenset({"to", "saturate"}), dtypes=ALL, since=6, host_fn=_host_cast, constraints=(_cast_check,)),
    *_reduce_entry("ReduceMean", "mean"),
    *_reduce_entry("ReduceSum", "sum", axes_input_since=13),
    *_reduce_entry("ReduceMax", "max"),
    *_reduce_entry("ReduceMin", "min"),
    *_reduce_entry("ReduceProd", "prod"),
    *_reduce_entry("ReduceL2", "l2"),
    *_reduce_entry("ReduceSumSquare", "sumsquare"),
    Lowering("ArgMax", _arg("max"), frozenset({"axis", "keepdims", "select_last_index"}), dtypes=NUMERIC,
             constraints=(attr_in("select_last_index", (0,), 0),)),
    Lowering("ArgMin", _arg("min"), frozenset({"axis", "keepdims", "select_last_index"}), dtypes=NUMERIC,
             constraints=(attr_in("select_last_index", (0,), 0),)),
)
