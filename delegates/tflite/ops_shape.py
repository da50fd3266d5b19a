"""Converters for data-movement ops: Reshape, Flatten, Squeeze, Unsqueeze,
Transpose, Concat, Split, Slice, Pad, Gather, Expand, reductions, and
compile-time ones (Shape, ConstantOfShape, Identity, Dropout).

Reshapes are layout-aware: a reshape of a permuted (e.g. NHWC) value is done
in TFLite order whenever it only merges or splits dims that sit together, in
order, in that layout, so ``perm`` carries over without moving data.
"""

from __future__ import annotations

import numpy as np

from unified.errors import DelegateError

from unified.onnx import attr_ints, decode_attributes

from .convert import Converter, Value, inverse, register


def _groups(src: tuple[int, ...], dst: tuple[int, ...]) -> list[tuple[list[int], list[int]]] | None:
    """Pair up runs of non-1 dims of ``src`` and ``dst`` with equal products.

    Returns:
        [(src dims, dst dims), ...] in order, or None when the sizes disagree.
    """
    a = [i for i, d in enumerate(src) if d != 1]
    b = [j for j, d in enumerate(dst) if d != 1]
    out, i, j = [], 0, 0
    while i < len(a) and j < len(b):
        ga, gb = [a[i]], [b[j]]
        pa, pb = src[a[i]], dst[b[j]]
        i, j = i + 1, j + 1
        while pa != pb:
            if pa < pb:
                if i >= len(a):
                    return None
                ga.append(a[i])
                pa *= src[a[i]]
                i += 1
            else:
                if j >= len(b):
                    return None
                gb.append(b[j])
                pb *= dst[b[j]]
                j += 1
        out.append((ga, gb))
    return None if i < len(a) or j < len(b) else out


def _place_unit_dims(order: list[int], dst: tuple[int, ...]) -> tuple[int, ...]:
    """Insert dst's size-1 dims into ``order`` right after their ONNX predecessor."""
    order = list(order)
    for j, d in enumerate(dst):
        if d == 1:
            if j == 0:
                order.insert(0, j)
            else:
                order.insert(order.index(j - 1) + 1, j)
    return tuple(order)


def reshape_value(cx: Converter, x: Value, x_name: str, out_name: str, shape: tuple[int, ...], quant=None) -> None:
    """Define ``out_name`` = ONNX reshape of ``x`` to ``shape``, keeping x's layout where possible
    (``quant``: the int8 output's (scale, zero point, axis), the input's)."""
    if x.perm is None and x.col_perm is None:
        out = cx.define(out_name, None, shape=shape, quant=quant)
        cx.reshape_op(x.tensor, out.tensor, shape)
        return
    if x.col_perm is not None:
        xt = cx.tensor(x, None, x_name)
        out = cx.define(out_name, None, shape=shape, quant=quant)
        cx.reshape_op(xt, out.tensor, shape)
        return
    groups = _groups(x.shape, shape)
    if groups is None:
        raise DelegateError(f"cannot reshape {x.shape} to {shape}")
    p = [a for a in x.layout if x.shape[a] != 1]
    first = {g[0][0]: g for g in groups}

    def fits(order: list[int]) -> bool:
        pos = {a: k for k, a in enumerate(order)}
        return all([pos[a] for a in ga] == list(range(pos[ga[0]], pos[ga[0]] + len(ga))) for ga, _ in groups)

    if not fits(p):
        flat = None if quant is not None else _flatten_for_fc(cx, x, out_name, shape)
        if flat is not None:
            return
        # move data once: bring each group's dims together, in order, where its first dim sits
        seen, q = set(), []
        for a in p:
            g = next(g for g in groups if a in g[0])
            if id(g) not in seen:
                seen.add(id(g))
                q.extend(g[0])
        full = _place_unit_dims_src(q, x.shape, x.layout)
        x_t = cx.tensor(x, full, x_name)
        p = q
    else:
        x_t = cx.tensor(x, x.layout, x_name)
    order = []
    for a in p:
        if a in first:
            order.extend(first[a][1])
    new_perm = _place_unit_dims(order, shape)
    out = cx.define(out_name, new_perm, shape=shape, quant=quant)
    cx.reshape_op(x_t, out.tensor, out.tshape())


def _place_unit_dims_src(order: list[int], shape: tuple[int, ...], old: tuple[int, ...]) -> tuple[int, ...]:
    """Complete a non-1-dim order with the size-1 dims, at their old relative spots."""
    res = list(order)
    for k, a in enumerate(old):
        if shape[a] == 1:
            prev = old[k - 1] if k else None
            res.insert(0 if prev is None or prev not in res else res.index(prev) + 1, a)
    return tuple(res)


def _flatten_for_fc(cx: Converter, x: Value, out_name: str, shape: tuple[int, ...]) -> bool | None:
    """[N, ...] -> [N, K] feeding only Gemm / constant-B MatMul: reshape in TFLite
    order and let the consumers permute their weight rows (``Value.col_perm``)."""
    if len(shape) != 2 or x.layout[0] != 0 or int(np.prod(x.shape[1:])) != shape[1] or x.shape[0] != shape[0]:
        return None
    users = cx.users(out_name)
    if not users or out_name in cx.output_names:
        return None
    for u in users:
        b = cx.values.get(u.input[1]) if len(u.input) > 1 else None
        ok_gemm = u.op_type == "Gemm" and u.input[0] == out_name and b is not None and b.const is not None
        ok_mm = u.op_type == "MatMul" and u.input[0] == out_name and b is not None and b.const is not None
        if not ((ok_gemm and not decode_attributes(u).get("transA", 0)) or ok_mm):
            return None
    inner = np.arange(shape[1]).reshape(x.shape[1:])
    col_perm = inner.transpose([a - 1 for a in x.layout[1:]]).reshape(-1)
    out = cx.define(out_name, None, shape=shape, col_perm=col_perm)
    cx.reshape_op(x.tensor, out.tensor, shape)
    return True


@register("Reshape")
def reshape(cx: Converter, node, attrs) -> None:
    reshape_value(cx, cx.inp(node, 0), node.input[0], node.output[0], cx.out_shape(node.output[0]))


@register("Flatten", "Squeeze", "Unsqueeze")
def flatten_like(cx: Converter, node, attrs) -> None:
    reshape_value(cx, cx.inp(node, 0), node.input[0], node.output[0], cx.out_shape(node.output[0]))


@register("Identity", "Dropout")
def identity(cx: Converter, node, attrs) -> None:
    x = cx.inp(node, 0)
    cx.alias(node.output[0], x)
    if len(node.output) > 1 and node.output[1]:  # Dropout's mask: all kept at inference
        cx.set_const(node.output[1], np.ones(x.shape, bool))


@register("Transpose")
def transpose(cx: Converter, node, attrs) -> None:
    """An activation's Transpose only relabels its layout: y = x.transpose(t)
    is stored as the same TFLite tensor with perm q, t[q[i]] = p[i]."""
    x = cx.inp(node, 0)
    t = attr_ints(attrs, "perm", list(range(x.rank))[::-1])
    inv = inverse(t)
    q = tuple(inv[a] for a in x.layout)
    if x.col_perm is not None:
        x = Value(x.shape, x.dtype, tensor=cx.tensor(x, None, node.input[0]))
        q = tuple(inv)
    y = Value(cx.out_shape(node.output[0]), x.dtype, tensor=x.tensor, perm=None if q == tuple(range(len(q))) else q,
              quant=x.quant)
    cx.alias(node.output[0], y)


@register("Shape")
def shape_op(cx: Converter, node, attrs) -> None:
    x = cx.inp(node, 0)
    start, end = int(attrs.get("start", 0)), attrs.get("end")
    cx.set_const(node.output[0], np.asarray(x.shape[start:end], np.int64))


@register("Concat")
def concat(cx: Converter, node, attrs) -> None:
    ins = [cx.inp(node, i) for i in range(len(node.input)) if node.input[i]]
    live = [v for v in ins if v.tensor is not None]
    layout = live[0].layout if live else tuple(range(ins[0].rank))
    out = cx.define(node.output[0], layout)
    axis = out.axis(int(attrs["axis"]))
    tensors = [cx.tensor(v, layout, n) for v, n in zip(ins, [x for x in node.input if x]) if np.prod(v.shape) > 0]
    cx.builder.op("CONCATENATION", tensors, [out.tensor], cx.builder.options("ConcatenationOptions", axis=axis))


@register("Split")
def split(cx: Converter, node, attrs) -> None:
    x = cx.inp(node, 0)
    axis = int(attrs.get("axis", 0)) % x.rank
    outs = [o for o in node.output]
    sizes = [cx.out_shape(o)[axis] for o in outs]
    xt = cx.tensor(x, x.layout, node.input[0])
    tensors = [cx.define(o, x.layout).tensor for o in outs]
    cx.builder.op("SPLIT_V", [xt, cx.const("sizes", np.asarray(sizes, np.int32)),
                              cx.const("axis", np.array(x.axis(axis), np.int32))], tensors,
                  cx.builder.options("SplitVOptions", numSplits=len(outs)))


def _slice_params(cx: Converter, node, attrs, x: Value):
    if cx.opset < 10:
        starts, ends = attr_ints(attrs, "starts", None), attr_ints(attrs, "ends", None)
        axes = attr_ints(attrs, "axes", list(range(len(starts))))
        steps = [1] * len(starts)
    else:
        starts, ends = cx.const_of(node, 1).tolist(), cx.const_of(node, 2).tolist()
        a, s = cx.const_of(node, 3), cx.const_of(node, 4)
        axes = list(range(len(starts))) if a is None else a.tolist()
        steps = [1] * len(starts) if s is None else s.tolist()
    begin, end, stride = [0] * x.rank, list(x.shape), [1] * x.rank
    to_front: set[int] = set()  # axes sliced backwards through index 0 (TFLite: an end_mask bit)
    for st, en, ax, sp in zip(starts, ends, axes, steps):
        ax %= x.rank
        dim = x.shape[ax]
        if sp == 0:
            raise DelegateError("Slice with a zero step is invalid ONNX")
        st = st + dim if st < 0 else st
        en = en + dim if en < 0 else en
        if sp > 0:
            begin[ax], end[ax] = int(min(max(st, 0), dim)), int(min(max(en, 0), dim))
        else:  # ONNX clamps starts to [0, dim-1] and ends to [-1, dim-1] for negative steps
            begin[ax], end[ax] = int(min(max(st, 0), dim - 1)), int(min(max(en, -1), dim - 1))
            if end[ax] == -1:  # -1 would wrap to dim-1 in TFLite; the mask means "through index 0"
                to_front.add(ax)
                end[ax] = 0
        stride[ax] = int(sp)
    return begin, end, stride, to_front


@register("Slice")
def slice_op(cx: Converter, node, attrs) -> None:
    x = cx.inp(node, 0)
    begin, end, stride, to_front = _slice_params(cx, node, attrs, x)
    lay = x.layout
    end_mask = sum(1 << i for i, a in enumerate(lay) if a in to_front)
    xt = cx.tensor(x, lay, node.input[0])
    out = cx.define(node.output[0], lay)
    cx.builder.op("STRIDED_SLICE", [xt, cx.const("begin", np.asarray([begin[a] for a in lay], np.int32)),
                                    cx.const("end", np.asarray([end[a] for a in lay], np.int32)),
                                    cx.const("strides", np.asarray([stride[a] for a in lay], np.int32))],
                  [out.tensor], cx.builder.options("StridedSliceOptions", endMask=end_mask))


@register("Pad")
def pad(cx: Converter, node, attrs) -> None:
    x = cx.inp(node, 0)
    r = x.rank
    if cx.opset < 11:
        pads, value = attr_ints(attrs, "pads", None), float(attrs.get("value", 0.0))
    else:
        pads = cx.const_of(node, 1).astype(np.int64).tolist()
        c = cx.const_of(node, 2)
        value = 0.0 if c is None or c.size == 0 else float(c.reshape(-1)[0])
    axes = list(range(r))
    if cx.opset >= 18 and cx.const_of(node, 3) is not None:
        axes = [int(a) % r for a in cx.const_of(node, 3)]
    full = np.zeros((r, 2), np.int32)
    for k, a in enumerate(axes):
        full[a] = (pads[k], pads[k + len(axes)])
    lay = x.layout
    xt = cx.tensor(x, lay, node.input[0])
    out = cx.define(node.output[0], lay)
    paddings = cx.const("paddings", np.ascontiguousarray(full[list(lay)]))
    mode = attrs.get("mode", "constant")
    if mode == "reflect":
        cx.builder.op("MIRROR_PAD", [xt, paddings], [out.tensor],
                      cx.builder.options("MirrorPadOptions", mode=cx.builder.schema.MirrorPadMode.REFLECT))
    elif value == 0.0:
        cx.builder.op("PAD", [xt, paddings], [out.tensor])
    else:
        cx.builder.op("PADV2", [xt, paddings, cx.const("padval", np.array(value, x.dtype))], [out.tensor])


@register("Gather")
def gather(cx: Converter, node, attrs) -> None:
    data, idx = cx.inp(node, 0), cx.inp(node, 1)
    axis = int(attrs.get("axis", 0)) % data.rank
    dt = cx.tensor(data, None, node.input[0])
    dim = data.shape[axis]
    if idx.const is not None:
        ind = cx.const("indices", np.where(idx.const < 0, idx.const + dim, idx.const).astype(np.int32))
    else:
        # ONNX allows negative indices; FLOOR_MOD maps [-dim, dim) onto [0, dim)
        raw = cx.tensor(idx, None, node.input[1])
        ind = cx.new(cx.uid("indices"), idx.shape, idx.dtype)
        cx.builder.op("FLOOR_MOD", [raw, cx.const("dim", np.array(dim, idx.dtype))], [ind])
    out = cx.define(node.output[0])
    opts = cx.builder.options("GatherOptions", axis=axis, batchDims=0)
    if idx.rank == 0:  # a 0-d index: gather a [1] index, then RESHAPE the axis away
        one = cx.new(cx.uid("gather1"), data.shape[:axis] + (1,) + data.shape[axis + 1:], data.dtype)
        flat = cx.new(cx.uid("index1"), (1,), np.int32 if idx.const is not None else idx.dtype)
        cx.reshape_op(ind, flat, (1,))
        cx.builder.op("GATHER", [dt, flat], [one], opts)
        cx.reshape_op(one, out.tensor, out.shape)
        return
    cx.builder.op("GATHER", [dt, ind], [out.tensor], opts)


@register("GatherND")
def gather_nd(cx: Converter, node, attrs) -> None:
    """GATHER_ND with constant indices (negative ones wrapped at compile time)."""
    data, idx = cx.inp(node, 0), cx.const_of(node, 1)
    k = idx.shape[-1]
    ind = np.where(idx < 0, idx + np.asarray(data.shape[:k]), idx).astype(np.int32)
    out = cx.define(node.output[0])
    cx.builder.op("GATHER_ND", [cx.tensor(data, None, node.input[0]), cx.const("indices", ind)], [out.tensor])


@register("Expand")
def expand(cx: Converter, node, attrs) -> None:
    x = cx.inp(node, 0)
    out_shape = cx.out_shape(node.output[0])
    xv = to_rank(cx, x, node.input[0], len(out_shape))
    lay = xv.layout
    xt = cx.tensor(xv, lay, node.input[0])
    out = cx.define(node.output[0], lay)
    cx.builder.op("BROADCAST_TO", [xt, cx.const("shape", np.asarray(out.tshape(), np.int32))], [out.tensor])


def to_rank(cx: Converter, x: Value, name: str, rank: int) -> Value:
    """``x`` with leading 1-dims up to ``rank`` (a RESHAPE; identity layout)."""
    if x.rank == rank:
        return x
    shape = (1,) * (rank - x.rank) + x.shape
    xt = cx.tensor(x, None, name)
    v = Value(shape, x.dtype)
    v.tensor = cx.new(cx.uid(name), shape, x.dtype)
    cx.reshape_op(xt, v.tensor, shape)
    return v


_REDUCE = {"ReduceMean": "MEAN", "ReduceMax": "REDUCE_MAX", "ReduceMin": "REDUCE_MIN", "ReduceSum": "SUM",
           "ReduceProd": "REDUCE_PROD", "ReduceL2": "SUM", "ReduceSumSquare": "SUM"}


def reduce_axes(cx: Converter, node, attrs, rank: int) -> list[int]:
    """Normalized reduction axes (attribute before opset 18, input from 18; ReduceSum input from 13)."""
    takes_input = cx.opset >= 18 or (node.op_type == "ReduceSum" and cx.opset >= 13)
    if takes_input:
        a = cx.const_of(node, 1)
        axes = [] if a is None else a.reshape(-1).tolist()
    else:
        axes = attr_ints(attrs, "axes", [])
    if not axes:
        return [] if attrs.get("noop_with_empty_axes", 0) else list(range(rank))
    return sorted(int(a) % rank for a in axes)


@register(*_REDUCE)
def reduce(cx: Converter, node, attrs) -> None:
    x = cx.inp(node, 0)
    axes = reduce_axes(cx, node, attrs, x.rank)
    keep = bool(attrs.get("keepdims", 1))
    lay = x.layout
    xt = cx.tensor(x, lay, node.input[0])
    if node.op_type in ("ReduceL2", "ReduceSumSquare"):
        sq = cx.new(cx.uid("sq"), x.tshape(), x.dtype)
        cx.builder.op("MUL", [xt, xt], [sq], cx.builder.options("MulOptions"))
        xt = sq
    if keep:
        out_lay = lay
    else:
        kept = [a for a in lay if a not in axes]
        ren = {a: k for k, a in enumerate(sorted(kept))}
        out_lay = tuple(ren[a] for a in kept)
    if not axes:
        out = cx.define(node.output[0], out_lay)
        cx.reshape_op(xt, out.tensor, out.tshape())
        return
    taxes = np.asarray(sorted(x.axis(a) for a in axes), np.int32)
    final = node.output[0]
    if node.op_type == "ReduceL2":
        out_t = cx.new(cx.uid("sumsq"), _reduced(x, axes, keep, out_lay), x.dtype)
    else:
        out_t = cx.define(final, out_lay).tensor
    cx.builder.op(_REDUCE[node.op_type], [xt, cx.const("axes", taxes)], [out_t],
                  cx.builder.options("ReducerOptions", keepDims=keep))
    if node.op_type == "ReduceL2":
        cx.builder.op("SQRT", [out_t], [cx.define(final, out_lay).tensor])


def _reduced(x: Value, axes, keep, out_lay) -> tuple[int, ...]:
    shape = [1 if a in axes else d for a, d in enumerate(x.shape)]
    if not keep:
        shape = [d for a, d in enumerate(shape) if a not in axes]
    return tuple(shape[a] for a in out_lay)


@register("ConstantOfShape")
def constant_of_shape(cx: Converter, node, attrs) -> None:
    raise DelegateError("ConstantOfShape needs a constant shape input")
