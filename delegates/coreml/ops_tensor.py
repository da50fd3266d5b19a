"""Lowerings of elementwise, shape, indexing and reduction ops to MIL.

Each function takes the converter context and one node and returns the MIL
``Var`` (or tuple of them) for the node's outputs, or a NumPy array when the
result is known at compile time (e.g. ``Shape`` of a static tensor). The ONNX
semantics followed are those of the ONNX operator specification
(``onnx/docs/Operators.md``); where MIL differs (int64, negative indices,
``Slice``'s "to the end" markers) the difference is handled here, in one place.
"""

from __future__ import annotations

import numpy as np

from unified.onnx import Node

from .convert import Ctx, np_dtype, out_name

__all__ = ["LOWERINGS"]

_I32_MAX = int(np.iinfo(np.int32).max)
_I32_MIN = int(np.iinfo(np.int32).min)


# --- elementwise -----------------------------------------------------------

def _binary(op: str, operand_dtype_from_input: bool = True):
    def lower(ctx: Ctx, n: Node):
        dt = ctx.mil_dtype(n.inputs[0]) if operand_dtype_from_input else ctx.mil_dtype(n.outputs[0])
        return getattr(ctx.mb, op)(x=ctx.var(n.inputs[0], dt), y=ctx.var(n.inputs[1], dt), **out_name(ctx, n))

    return lower


def _variadic(op: str, mean: bool = False):
    def lower(ctx: Ctx, n: Node):
        dt = ctx.mil_dtype(n.outputs[0])
        names = [x for x in n.inputs if x]
        acc = ctx.var(names[0], dt)
        last = len(names) - 1
        for k, x in enumerate(names[1:], 1):
            kw = out_name(ctx, n) if (k == last and not mean) else {}
            acc = getattr(ctx.mb, op)(x=acc, y=ctx.var(x, dt), **kw)
        if mean:
            acc = ctx.mb.real_div(x=acc, y=np.array(len(names), dtype=np_dtype(dt)), **out_name(ctx, n))
        elif len(names) == 1:
            acc = ctx.mb.identity(x=acc, **out_name(ctx, n))
        return acc

    return lower


def _unary(op: str, **fixed):
    def lower(ctx: Ctx, n: Node):
        return getattr(ctx.mb, op)(x=ctx.var(n.inputs[0]), **fixed, **out_name(ctx, n))

    return lower


def _neg(ctx: Ctx, n: Node):
    dt = ctx.mil_dtype(n.inputs[0])
    return ctx.mb.mul(x=ctx.var(n.inputs[0]), y=np.array(-1, dtype=np_dtype(dt)), **out_name(ctx, n))


def _reciprocal(ctx: Ctx, n: Node):
    # MIL ``inverse`` adds epsilon=1e-4 to the denominator; ONNX Reciprocal is exactly 1/x.
    dt = ctx.mil_dtype(n.inputs[0])
    return ctx.mb.real_div(x=np.array(1, dtype=np_dtype(dt)), y=ctx.var(n.inputs[0]), **out_name(ctx, n))


def _isnan(ctx: Ctx, n: Node):
    x = ctx.var(n.inputs[0])
    return ctx.mb.not_equal(x=x, y=x, **out_name(ctx, n))


def _where(ctx: Ctx, n: Node):
    """MIL ``select`` infers its output type from ``a`` and ``b`` only (coremltools
    ``iOS15.control_flow.select.type_inference`` ignores ``cond``'s shape): when ``cond``
    is the larger operand, ``a`` is first broadcast to the output shape, else the saved
    program declares a too-small output (caught by mil-numpy on MiniLM's attention mask)."""
    dt = ctx.mil_dtype(n.outputs[0])
    a, b = ctx.var(n.inputs[1], dt), ctx.var(n.inputs[2], dt)
    out = ctx.shapes.get(n.outputs[0])
    if out is not None and all(isinstance(d, (int, np.integer)) for d in out) and all(
            isinstance(d, (int, np.integer)) for d in (*a.shape, *b.shape)):
        if tuple(np.broadcast_shapes(tuple(a.shape), tuple(b.shape))) != tuple(out):
            a = ctx.mb.add(x=a, y=np.zeros(tuple(int(d) for d in out), dtype=np_dtype(dt)))
    return ctx.mb.select(cond=ctx.var(n.inputs[0], "bool"), a=a, b=b, **out_name(ctx, n))


def _clip(ctx: Ctx, n: Node):
    dt = ctx.mil_dtype(n.inputs[0])
    x = ctx.var(n.inputs[0])
    if n.opset < 11:
        lo, hi = n.attr("min"), n.attr("max")
        lo = None if lo is None else np.array(lo, dtype=np_dtype(dt))
        hi = None if hi is None else np.array(hi, dtype=np_dtype(dt))
    else:
        lo = ctx.get(n.input(1))
        hi = ctx.get(n.input(2))
    if lo is None and hi is None:
        return ctx.mb.identity(x=x, **out_name(ctx, n))
    if lo is not None:
        x = ctx.mb.maximum(x=x, y=ctx.var(lo, dt), **(out_name(ctx, n) if hi is None else {}))
    if hi is not None:
        x = ctx.mb.minimum(x=x, y=ctx.var(hi, dt), **out_name(ctx, n))
    return x


def _cast(ctx: Ctx, n: Node):
    """Cast, and CastLike (opset 15), whose second input gives only the output type."""
    dt = ctx.mil_dtype(n.outputs[0])
    x = ctx.var(n.inputs[0])
    return ctx.mb.cast(x=x, dtype=dt, **out_name(ctx, n))


def _identity(ctx: Ctx, n: Node):
    return ctx.get(n.inputs[0])


def _dropout(ctx: Ctx, n: Node):
    """Inference Dropout: the input unchanged; the mask (if named) all ones/true (opset < 10: input type)."""
    x = ctx.get(n.inputs[0])
    if len(n.outputs) < 2 or not n.outputs[1]:
        return x
    kind = np.bool_ if n.opset >= 10 else np_dtype(ctx.mil_dtype(n.inputs[0]))
    dims = ctx.shape(x)
    if all(d is not None for d in dims):
        return [x, np.ones(dims, dtype=kind)]
    ones = ctx.mb.fill_like(ref_tensor=ctx.var(x), value=1.0 if kind is not np.bool_ else 1)
    return [x, ctx.mb.cast(x=ones, dtype="bool") if kind is np.bool_ else ones]


# --- shape ops ---------------------------------------------------------------

def _shape(ctx: Ctx, n: Node):
    x = ctx.get(n.inputs[0])
    dims = ctx.shape(x)
    rank = len(dims)
    start = n.attr("start", 0)
    end = n.attr("end", rank)
    start = min(max(start + rank if start < 0 else start, 0), rank)
    end = min(max(end + rank if end < 0 else end, 0), rank)
    if all(d is not None for d in dims[start:end]):
        return np.array(dims[start:end], dtype=np.int64)
    s = ctx.mb.shape(x=x)
    if start == 0 and end == rank:
        return s
    return ctx.mb.slice_by_index(x=s, begin=[start], end=[end], **out_name(ctx, n))


def _size(ctx: Ctx, n: Node):
    dims = ctx.shape(ctx.get(n.inputs[0]))
    if all(d is not None for d in dims):
        return np.array(int(np.prod(dims, dtype=np.int64)), dtype=np.int64)
    s = ctx.mb.shape(x=ctx.var(n.inputs[0]))
    return ctx.mb.reduce_prod(x=s, axes=[0], keep_dims=False, **out_name(ctx, n))


def _dim(ctx: Ctx, x, i: int):
    """Dim ``i`` of ``x``: an int when static, else a 1-element int32 Var."""
    d = ctx.shape(x)[i]
    if d is not None:
        return d
    return ctx.mb.slice_by_index(x=ctx.mb.shape(x=x), begin=[i], end=[i + 1])


def _vector(ctx: Ctx, parts: list):
    """A 1-D int32 shape vector from ints and 1-element Vars."""
    if all(isinstance(p, (int, np.integer)) for p in parts):
        return np.array(parts, dtype=np.int32)
    return ctx.mb.concat(
        values=[np.array([p], dtype=np.int32) if isinstance(p, (int, np.integer)) else p for p in parts], axis=0
    )


def _reshape(ctx: Ctx, n: Node):
    x = ctx.var(n.inputs[0])
    out = ctx.shapes.get(n.outputs[0])
    if out is not None and all(isinstance(d, int) for d in out):
        return ctx.mb.reshape(x=x, shape=np.array(out, dtype=np.int32), **out_name(ctx, n))
    shape = ctx.const(n.inputs[1])
    if shape is None:  # data-dependent shape: MIL reshape copies a 0 dim like ONNX allowzero=0
        return ctx.mb.reshape(x=x, shape=ctx.var(n.inputs[1], "int32"), **out_name(ctx, n))
    parts = [int(s) for s in shape]
    if not n.attr("allowzero", 0):
        parts = [_dim(ctx, x, i) if s == 0 else s for i, s in enumerate(parts)]
    return ctx.mb.reshape(x=x, shape=_vector(ctx, parts), **out_name(ctx, n))


def _flatten(ctx: Ctx, n: Node):
    x = ctx.var(n.inputs[0])
    rank = len(x.shape)
    axis = n.attr("axis", 1)
    axis = axis + rank if axis < 0 else axis
    dims = ctx.shape(x)
    head, tail = dims[:axis], dims[axis:]
    if all(d is not None for d in head):
        shape = [int(np.prod(head, dtype=np.int64)), -1]
    elif all(d is not None for d in tail):
        shape = [-1, int(np.prod(tail, dtype=np.int64))]
    else:
        return ctx.mb.flatten2d(x=x, axis=axis, **out_name(ctx, n))
    return ctx.mb.reshape(x=x, shape=np.array(shape, dtype=np.int32), **out_name(ctx, n))


def _transpose(ctx: Ctx, n: Node):
    x = ctx.var(n.inputs[0])
    perm = n.attr("perm") or list(reversed(range(len(x.shape))))
    return ctx.mb.transpose(x=x, perm=[int(p) for p in perm], **out_name(ctx, n))


def _axes(ctx: Ctx, n: Node, input_from_opset: int, slot: int = 1):
    """The ``axes`` of a node: an attribute before ``input_from_opset``, else a constant input."""
    if n.opset < input_from_opset:
        axes = n.attr("axes")
        return None if axes is None else [int(a) for a in axes]
    v = ctx.const(n.input(slot))
    return None if v is None else [int(a) for a in np.asarray(v).reshape(-1)]


def _squeeze(ctx: Ctx, n: Node):
    x = ctx.var(n.inputs[0])
    dims = ctx.shape(x)
    axes = _axes(ctx, n, 13)
    if axes is None:
        axes = [i for i, d in enumerate(dims) if d == 1]
    axes = sorted(a + len(dims) if a < 0 else a for a in axes)
    return ctx.mb.squeeze(x=x, axes=axes, **out_name(ctx, n))


def _unsqueeze(ctx: Ctx, n: Node):
    x = ctx.var(n.inputs[0])
    axes = _axes(ctx, n, 13)
    out_rank = len(x.shape) + len(axes)
    axes = sorted(a + out_rank if a < 0 else a for a in axes)
    return ctx.mb.expand_dims(x=x, axes=axes, **out_name(ctx, n))


def _concat(ctx: Ctx, n: Node):
    dt = ctx.mil_dtype(n.outputs[0])
    values = [ctx.var(x, dt) for x in n.inputs if x]
    if len(values) == 1:
        return ctx.mb.identity(x=values[0], **out_name(ctx, n))
    return ctx.mb.concat(values=values, axis=int(n.attr("axis")), **out_name(ctx, n))


def _split(ctx: Ctx, n: Node):
    x = ctx.var(n.inputs[0])
    axis = int(n.attr("axis", 0))
    sizes = n.attr("split") if n.opset < 13 else ctx.const(n.input(1))
    count = len([o for o in n.outputs])
    if sizes is not None and len(sizes):
        out = ctx.mb.split(x=x, split_sizes=[int(s) for s in np.asarray(sizes).reshape(-1)], axis=axis)
    else:
        dim = ctx.shape(x)[axis]
        if dim is not None and dim % count:
            # opset 18 num_outputs with a remainder: ceil-sized chunks, the last one smaller
            chunk = -(-dim // count)
            sizes = [chunk] * (count - 1) + [dim - chunk * (count - 1)]
            out = ctx.mb.split(x=x, split_sizes=sizes, axis=axis)
        else:
            out = ctx.mb.split(x=x, num_splits=count, axis=axis)
    return list(out) if isinstance(out, (list, tuple)) else [out]


def _slice(ctx: Ctx, n: Node):
    x = ctx.var(n.inputs[0])
    dims = ctx.shape(x)
    rank = len(dims)
    if n.opset < 10:
        starts, ends = np.array(n.attr("starts")), np.array(n.attr("ends"))
        axes = n.attr("axes")
        steps = None
    else:
        starts, ends = ctx.get(n.inputs[1]), ctx.get(n.inputs[2])
        axes = ctx.const(n.input(3))
        steps = ctx.const(n.input(4))
    count = _length(ctx, starts)
    axes = list(range(count)) if axes is None else [int(a) + rank if int(a) < 0 else int(a) for a in axes]
    steps = [1] * count if steps is None else [int(s) for s in steps]
    begin, end = [0] * rank, [0] * rank
    stride, bmask, emask = [1] * rank, [True] * rank, [True] * rank
    for k, ax in enumerate(axes):
        stride[ax] = steps[k]
        begin[ax], bmask[ax] = _bound(ctx, starts, k, dims[ax], steps[k], is_end=False)
        end[ax], emask[ax] = _bound(ctx, ends, k, dims[ax], steps[k], is_end=True)
    return ctx.mb.slice_by_index(
        x=x, begin=_vector(ctx, begin), end=_vector(ctx, end), stride=np.array(stride, dtype=np.int32),
        begin_mask=bmask, end_mask=emask, **out_name(ctx, n),
    )


def _length(ctx: Ctx, v) -> int:
    return int(np.asarray(v).size) if isinstance(v, np.ndarray) else int(ctx.shape(v)[0])


def _bound(ctx: Ctx, values, k: int, dim, step: int, is_end: bool):
    """(bound, mask) for one axis of Slice; mask=True means 'from the start / to the end'."""
    if not isinstance(values, np.ndarray):
        return ctx.mb.slice_by_index(x=ctx.var(values, "int32"), begin=[k], end=[k + 1]), False
    v = int(values.reshape(-1)[k])
    if step > 0:
        if is_end and (v >= _I32_MAX or (dim is not None and v >= dim)):
            return 0, True
        if not is_end and (v <= -_I32_MAX or (dim is not None and v <= -dim)):
            return 0, True
    else:
        if is_end and (v <= _I32_MIN or (dim is not None and v < -dim)):
            return 0, True
        if not is_end and (v >= _I32_MAX or (dim is not None and v >= dim)):
            return 0, True
    return int(np.clip(v, _I32_MIN + 1, _I32_MAX)), False


def _broadcast_shape(a: tuple, b: tuple):
    rank = max(len(a), len(b))
    a = (1,) * (rank - len(a)) + tuple(a)
    b = (1,) * (rank - len(b)) + tuple(b)
    out = []
    for x, y in zip(a, b):
        if x is None or y is None:
            return None
        out.append(max(x, y) if 1 in (x, y) else x)
    return out


def _expand(ctx: Ctx, n: Node):
    x = ctx.var(n.inputs[0])
    shape = ctx.const(n.inputs[1])
    xs = ctx.shape(x)
    if shape is not None and all(d is not None for d in xs):
        out = _broadcast_shape(xs, tuple(int(s) for s in shape))
        x_full = x
        if len(out) > len(xs):
            x_full = ctx.mb.expand_dims(x=x, axes=list(range(len(out) - len(xs))))
        full = (1,) * (len(out) - len(xs)) + xs
        reps = [o // d for o, d in zip(out, full)]
        if all(r == 1 for r in reps):
            return ctx.mb.identity(x=x_full, **out_name(ctx, n))
        return ctx.mb.tile(x=x_full, reps=reps, **out_name(ctx, n))
    # data-dependent target shape: broadcast against a zero tensor of that shape
    dt = ctx.mil_dtype(n.inputs[0])
    fill_dt = "int32" if dt == "bool" else dt
    zeros = ctx.mb.fill(shape=ctx.var(n.inputs[1], "int32"), value=np.array(0, dtype=np_dtype(fill_dt)).item())
    if fill_dt != "fp32":
        zeros = ctx.mb.cast(x=zeros, dtype=fill_dt)
    xin = ctx.mb.cast(x=x, dtype="int32") if dt == "bool" else x
    y = ctx.mb.add(x=xin, y=zeros, **({} if dt == "bool" else out_name(ctx, n)))
    return ctx.mb.cast(x=y, dtype="bool", **out_name(ctx, n)) if dt == "bool" else y


def _tile(ctx: Ctx, n: Node):
    return ctx.mb.tile(x=ctx.var(n.inputs[0]), reps=ctx.var(n.inputs[1], "int32"), **out_name(ctx, n))


def _constant_of_shape(ctx: Ctx, n: Node):
    value = n.attr("value")
    value = np.zeros(1, np.float32) if value is None else np.asarray(value).reshape(-1)
    dt = ctx.mil_dtype(n.outputs[0])
    fill_dt = "int32" if dt == "bool" else dt
    y = ctx.mb.fill(shape=ctx.var(n.inputs[0], "int32"), value=np_dtype(fill_dt)(value[0]).item(), **(
        out_name(ctx, n) if fill_dt == "fp32" else {}))
    if fill_dt != "fp32":
        y = ctx.mb.cast(x=y, dtype=fill_dt, **({} if dt == "bool" else out_name(ctx, n)))
    return ctx.mb.cast(x=y, dtype="bool", **out_name(ctx, n)) if dt == "bool" else y


def _range(ctx: Ctx, n: Node):
    dt = ctx.mil_dtype(n.outputs[0])
    args = [ctx.var(x, dt) for x in n.inputs[:3]]
    return ctx.mb.range_1d(start=args[0], end=args[1], step=args[2], **out_name(ctx, n))


def _pad(ctx: Ctx, n: Node):
    x = ctx.var(n.inputs[0])
    rank = len(x.shape)
    if n.opset < 11:
        pads = [int(p) for p in n.attr("pads")]
        value = float(n.attr("value", 0.0))
        axes = list(range(rank))
    else:
        pads = [int(p) for p in ctx.const(n.inputs[1]).reshape(-1)]
        cv = ctx.const(n.input(2))
        value = 0.0 if cv is None or cv.size == 0 else float(cv.reshape(-1)[0])
        ax = ctx.const(n.input(3))
        axes = list(range(rank)) if ax is None else [int(a) + rank if a < 0 else int(a) for a in ax.reshape(-1)]
    k = len(axes)
    full = [(0, 0)] * rank
    for i, a in enumerate(axes):
        full[a] = (pads[i], pads[i + k])
    first = next((i for i, p in enumerate(full) if p != (0, 0)), rank)
    if first == rank:
        return ctx.mb.identity(x=x, **out_name(ctx, n))
    mil_pad = [v for p in full[first:] for v in p]
    mode = {"constant": "constant", "reflect": "reflect", "edge": "replicate"}[n.attr("mode", "constant")]
    value = np_dtype(ctx.mil_dtype(n.inputs[0]))(value)  # MIL wants constant_val in x's dtype
    return ctx.mb.pad(
        x=x, pad=np.array(mil_pad, dtype=np.int32), mode=mode, constant_val=value, **out_name(ctx, n)
    )


# --- indexing ----------------------------------------------------------------

def _positive_indices(ctx: Ctx, x, idx_name: str, axis: int):
    """Indices as int32 with negatives wrapped (MIL iOS17 gathers reject negatives)."""
    idx = ctx.get(idx_name)
    dim = ctx.shape(x)[axis]
    if isinstance(idx, np.ndarray):
        idx = idx.astype(np.int64)
        if dim is not None:
            idx = np.where(idx < 0, idx + dim, idx)
        return ctx.var(idx, "int32")
    idx = ctx.var(idx, "int32")
    if dim is None:
        return idx
    return ctx.mb.select(cond=ctx.mb.less(x=idx, y=np.int32(0)), a=ctx.mb.add(x=idx, y=np.int32(dim)), b=idx)


def _bool_safe(lower):
    """MIL gathers take fp16/fp32/int32 data: bool data goes through int32."""

    def wrapped(ctx: Ctx, n: Node):
        if ctx.mil_dtype(n.inputs[0]) != "bool":
            return lower(ctx, n, ctx.var(n.inputs[0]), out_name(ctx, n))
        y = lower(ctx, n, ctx.var(n.inputs[0], "int32"), {})
        return ctx.mb.cast(x=y, dtype="bool", **out_name(ctx, n))

    return wrapped


def _gather_on_axis(op: str):
    """Gather / GatherElements: ``axis`` normalized, negative indices wrapped, then MIL ``op``."""

    @_bool_safe
    def lower(ctx: Ctx, n: Node, x, name: dict):
        axis = int(n.attr("axis", 0))
        axis = axis + len(x.shape) if axis < 0 else axis
        idx = _positive_indices(ctx, x, n.inputs[1], axis)
        return getattr(ctx.mb, op)(x=x, indices=idx, axis=axis, **name)

    return lower


@_bool_safe
def _gather_nd(ctx: Ctx, n: Node, x, name: dict):
    idx = ctx.var(n.inputs[1], "int32")
    kw = {"batch_dims": int(n.attr("batch_dims", 0))} if n.attr("batch_dims", 0) else {}
    return ctx.mb.gather_nd(x=x, indices=idx, **kw, **name)


# --- reductions --------------------------------------------------------------

def _reduce(op: str, axes_input_from: int):
    def lower(ctx: Ctx, n: Node):
        x = ctx.var(n.inputs[0])
        axes = _axes(ctx, n, axes_input_from)
        keep = bool(n.attr("keepdims", 1))
        if not axes:
            if n.attr("noop_with_empty_axes", 0):
                return ctx.mb.identity(x=x, **out_name(ctx, n))
            axes = None
        return getattr(ctx.mb, op)(x=x, axes=axes, keep_dims=keep, **out_name(ctx, n))

    return lower


def _arg(op: str):
    def lower(ctx: Ctx, n: Node):
        x = ctx.var(n.inputs[0])
        return getattr(ctx.mb, op)(
            x=x, axis=int(n.attr("axis", 0)), keep_dims=bool(n.attr("keepdims", 1)), **out_name(ctx, n)
        )

    return lower


def _cumsum(ctx: Ctx, n: Node):
    return ctx.mb.cumsum(
        x=ctx.var(n.inputs[0]), axis=int(ctx.const(n.inputs[1]).reshape(-1)[0]),
        exclusive=bool(n.attr("exclusive", 0)), reverse=bool(n.attr("reverse", 0)), **out_name(ctx, n),
    )


LOWERINGS = {
    # elementwise binary (NumPy-style broadcasting in both ONNX and MIL)
    "Add": _binary("add"),
    "Sub": _binary("sub"),
    "Mul": _binary("mul"),
    "Div": _binary("real_div"),
    "Pow": _binary("pow"),
    "Equal": _binary("equal"),
    "Greater": _binary("greater"),
    "GreaterOrEqual": _binary("greater_equal"),
    "Less": _binary("less"),
    "LessOrEqual": _binary("less_equal"),
    "And": _binary("logical_and"),
    "Or": _binary("logical_or"),
    "Xor": _binary("logical_xor"),
    "Sum": _variadic("add"),
    "Max": _variadic("maximum"),
    "Min": _variadic("minimum"),
    "Mean": _variadic("add", mean=True),
    "Where": _where,
    # elementwise unary
    "Abs": _unary("abs"),
    "Neg": _neg,
    "Reciprocal": _reciprocal,
    "Sqrt": _unary("sqrt"),
    "Exp": _unary("exp"),
    "Log": _unary("log"),
    "Floor": _unary("floor"),
    "Ceil": _unary("ceil"),
    "Sin": _unary("sin"),
    "Cos": _unary("cos"),
    "Tan": _unary("tan"),
    "Sign": _unary("sign"),
    "Erf": _unary("erf"),
    "Not": _unary("logical_not"),
    "IsNaN": _isnan,
    "Clip": _clip,
    "Cast": _cast,
    "CastLike": _cast,
    "Identity": _identity,
    "Dropout": _dropout,
    # shape
    "Shape": _shape,
    "Size": _size,
    "Reshape": _reshape,
    "Flatten": _flatten,
    "Transpose": _transpose,
    "Squeeze": _squeeze,
    "Unsqueeze": _unsqueeze,
    "Concat": _concat,
    "Split": _split,
    "Slice": _slice,
    "Expand": _expand,
    "Tile": _tile,
    "ConstantOfShape": _constant_of_shape,
    "Range": _range,
    "Pad": _pad,
    # indexing
    "Gather": _gather_on_axis("gather"),
    "GatherElements": _gather_on_axis("gather_along_axis"),
    "GatherND": _gather_nd,
    # reductions
    "ReduceSum": _reduce("reduce_sum", 13),
    "ReduceMean": _reduce("reduce_mean", 18),
    "ReduceMax": _reduce("reduce_max", 18),
    "ReduceMin": _reduce("reduce_min", 18),
    "ReduceProd": _reduce("reduce_prod", 18),
    "ReduceL1": _reduce("reduce_l1_norm", 18),
    "ReduceL2": _reduce("reduce_l2_norm", 18),
    "ReduceSumSquare": _reduce("reduce_sum_square", 18),
    "ReduceLogSumExp": _reduce("reduce_log_sum_exp", 18),
    "ArgMax": _arg("reduce_argmax"),
    "ArgMin": _arg("reduce_argmin"),
    "CumSum": _cumsum,
}
