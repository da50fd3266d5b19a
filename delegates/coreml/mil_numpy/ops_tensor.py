"""Shape, indexing, creation and reduction MIL ops in NumPy.

Semantics are coremltools' MIL op definitions
(``coremltools.converters.mil.mil.ops.defs``; module and class named in each
kernel's docstring). Reductions accumulate in float32 (float operands are
read widened, :mod:`.args`).
"""

from __future__ import annotations

import numpy as np

from unified.errors import DelegateError

from .args import OpArgs, up

__all__ = ["KERNELS"]


def _axis(axis: int, rank: int) -> int:
    return axis + rank if axis < 0 else axis


def _reshape(a: OpArgs):
    """``iOS15.tensor_transformation.reshape``: ``-1`` is inferred; ``0`` copies ``x``'s dim when
    ``len(shape) == rank(x)``."""
    x, shape = a.get("x"), a.ints("shape")
    if len(shape) == x.ndim:
        shape = [x.shape[i] if s == 0 else s for i, s in enumerate(shape)]
    return np.reshape(x, shape)


def _transpose(a: OpArgs):
    """``iOS15.tensor_transformation.transpose``: axes permuted by ``perm``."""
    return np.transpose(a.get("x"), a.ints("perm"))


def _expand_dims(a: OpArgs):
    """``iOS15.tensor_transformation.expand_dims``: size-1 axes inserted at ``axes`` (of the output rank)."""
    x, axes = np.asarray(a.get("x")), a.ints("axes")
    rank = x.ndim + len(axes)
    return np.expand_dims(x, tuple(sorted(_axis(ax, rank) for ax in axes)))


def _squeeze(a: OpArgs):
    """``iOS15.tensor_transformation.squeeze``: size-1 ``axes`` removed (all size-1 axes when unset)."""
    x, axes = np.asarray(a.get("x")), a.ints("axes")
    return np.squeeze(x) if axes is None else np.squeeze(x, tuple(_axis(ax, x.ndim) for ax in axes))


def _flatten2d(a: OpArgs):
    """``iOS15.tensor_transformation.flatten2d``: ``(prod(dims[:axis]), prod(dims[axis:]))``, axis default 1."""
    x = a.get("x")
    axis = _axis(int(a.scalar("axis", 1)), x.ndim)
    return x.reshape(int(np.prod(x.shape[:axis], dtype=np.int64)), -1)


def _concat(a: OpArgs):
    """``iOS15.tensor_operation.concat``: ``values`` joined on ``axis`` (``interleave`` alternates slices)."""
    values = [np.asarray(v) for v in a.many("values")]
    axis = int(a.scalar("axis"))
    if a.scalar("interleave", False):
        axis = _axis(axis, values[0].ndim)
        stacked = np.stack(values, axis=axis + 1)
        shape = list(values[0].shape)
        shape[axis] = -1
        return stacked.reshape(shape)
    return np.concatenate(values, axis=axis)


def _split(a: OpArgs):
    """``iOS15.tensor_operation.split``: by ``split_sizes``, else into ``num_splits`` equal parts, on ``axis``."""
    x = a.get("x")
    axis = _axis(int(a.scalar("axis")), x.ndim)
    sizes = a.ints("split_sizes")
    if sizes is None:
        n = int(a.scalar("num_splits"))
        sizes = [x.shape[axis] // n] * n
    return tuple(np.split(x, np.cumsum(sizes)[:-1], axis=axis))


def _stack(a: OpArgs):
    """``iOS15.tensor_operation.stack``: ``values`` stacked on a new ``axis``."""
    return np.stack([np.asarray(v) for v in a.many("values")], axis=int(a.scalar("axis")))


def _slice_by_index(a: OpArgs):
    """``iOS15.tensor_transformation.slice_by_index``: ``x[begin:end:stride, ...]`` per axis; a set
    ``begin_mask``/``end_mask`` ignores that bound, ``squeeze_mask`` indexes ``begin`` and drops the axis."""
    x = np.asarray(a.get("x"))
    r = x.ndim
    begin, end = a.ints("begin"), a.ints("end")
    stride = a.ints("stride") or [1] * r
    bmask = [bool(v) for v in np.asarray(a.get("begin_mask", [False] * r)).reshape(-1)]
    emask = [bool(v) for v in np.asarray(a.get("end_mask", [False] * r)).reshape(-1)]
    smask = [bool(v) for v in np.asarray(a.get("squeeze_mask", [False] * r)).reshape(-1)]
    index = []
    for i in range(r):
        if smask[i]:
            index.append(begin[i])
        else:
            index.append(slice(None if bmask[i] else begin[i], None if emask[i] else end[i], stride[i]))
    return x[tuple(index)]


def _slice_by_size(a: OpArgs):
    """``iOS15.tensor_transformation.slice_by_size``: ``x[begin:begin+size]`` per axis, ``-1`` to the end."""
    x = a.get("x")
    begin, size = a.ints("begin"), a.ints("size")
    return x[tuple(slice(b, None if s == -1 else b + s) for b, s in zip(begin, size))]


def _gather(a: OpArgs):
    """``iOS16.scatter_gather.gather``: ``take(x, indices, axis)``; negative indices wrap
    (``batch_dims`` > 0 gathers per leading batch index)."""
    x, idx = a.get("x"), np.asarray(a.get("indices")).astype(np.int64)
    axis = _axis(int(a.scalar("axis", 0)), x.ndim)
    batch = int(a.scalar("batch_dims", 0))
    if batch == 0:
        return np.take(x, idx, axis=axis)
    out = [np.take(x[b], idx[b], axis=axis - 1) for b in range(x.shape[0])]
    if batch > 1:
        raise DelegateError(f"mil-numpy: gather batch_dims={batch} not supported (0 or 1)")
    return np.stack(out)


def _gather_along_axis(a: OpArgs):
    """``iOS15.scatter_gather.gather_along_axis``: ``take_along_axis(x, indices, axis)``."""
    x, idx = a.get("x"), np.asarray(a.get("indices")).astype(np.int64)
    axis = _axis(int(a.scalar("axis", 0)), x.ndim)
    idx = np.where(idx < 0, idx + x.shape[axis], idx)
    return np.take_along_axis(x, idx, axis=axis)


def _gather_nd(a: OpArgs):
    """``iOS16.scatter_gather.gather_nd``: the last axis of ``indices`` indexes the leading axes of ``x``
    after ``batch_dims`` batch axes."""
    x, idx = a.get("x"), np.asarray(a.get("indices")).astype(np.int64)
    batch = int(a.scalar("batch_dims", 0))
    bshape = x.shape[:batch]
    xb = x.reshape((-1,) + x.shape[batch:])
    ib = idx.reshape((-1,) + idx.shape[batch:])
    out = []
    for b in range(xb.shape[0]):
        i = ib[b]
        out.append(xb[b][tuple(np.moveaxis(i, -1, 0))])
    return np.stack(out).reshape(bshape + out[0].shape)


def _pad(a: OpArgs):
    """``iOS15.tensor_operation.pad``: ``pad`` = ``[b0, e0, b1, e1, ...]`` for the *last* ``len(pad)/2``
    axes; modes ``constant`` (``constant_val``), ``reflect``, ``replicate`` (NumPy ``edge``)."""
    x = a.get("x")
    pad = a.ints("pad")
    k = len(pad) // 2
    widths = [(0, 0)] * (x.ndim - k) + [(pad[2 * i], pad[2 * i + 1]) for i in range(k)]
    mode = a.scalar("mode", "constant")
    if mode == "constant":
        return np.pad(up(x), widths, mode="constant", constant_values=float(a.scalar("constant_val", 0.0)))
    return np.pad(x, widths, mode={"reflect": "reflect", "replicate": "edge"}[mode])


def _tile(a: OpArgs):
    """``iOS15.tensor_operation.tile``: ``x`` repeated ``reps`` times per axis."""
    return np.tile(a.get("x"), a.ints("reps"))


def _fill(a: OpArgs):
    """``iOS15.tensor_operation.fill``: a tensor of ``shape`` filled with ``value`` (default 0)."""
    return np.full(a.ints("shape"), a.scalar("value", 0.0), dtype=a.out_dtype() or np.float32)


def _fill_like(a: OpArgs):
    """``iOS16.tensor_operation.fill_like``: ``ref_tensor``'s shape filled with ``value``."""
    return np.full(np.shape(a.get("ref_tensor")), a.scalar("value", 0.0), dtype=a.out_dtype() or np.float32)


def _range_1d(a: OpArgs):
    """``iOS15.tensor_operation.range_1d``: ``arange(start, end, step)``."""
    return np.arange(a.scalar("start"), a.scalar("end"), a.scalar("step"))


def _shape(a: OpArgs):
    """``iOS15.tensor_transformation.shape``: the dims of ``x`` as int32."""
    return np.array(np.shape(a.get("x")), dtype=np.int32)


def _identity(a: OpArgs):
    """``iOS15.tensor_operation.identity``: ``x`` unchanged."""
    return np.array(a.get("x"), copy=True)


def _cumsum(a: OpArgs):
    """``iOS15.tensor_operation.cumsum``: running sum on ``axis``; ``exclusive`` shifts by one,
    ``reverse`` sums from the end."""
    x = a.f("x")
    axis = _axis(int(a.scalar("axis", 0)), x.ndim)
    if a.scalar("reverse", False):
        x = np.flip(x, axis)
    y = np.cumsum(x, axis=axis, dtype=x.dtype)
    if a.scalar("exclusive", False):
        y = np.concatenate([np.zeros_like(np.take(y, [0], axis=axis)), np.delete(y, -1, axis=axis)], axis=axis)
    return np.flip(y, axis) if a.scalar("reverse", False) else y


def _reduce(fn):
    def kernel(a: OpArgs):
        x = a.f("x")
        axes = a.ints("axes")
        axes = tuple(range(x.ndim)) if axes is None else tuple(_axis(ax, x.ndim) for ax in axes)
        with np.errstate(all="ignore"):
            return fn(x, axes, bool(a.scalar("keep_dims", False)))

    kernel.__doc__ = "``iOS15.reduction``: reduce over ``axes`` (all when unset); ``keep_dims`` default False."
    return kernel


def _log_sum_exp(x, axes, keep):
    m = np.max(x, axis=axes, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    y = np.log(np.sum(np.exp(x - m), axis=axes, keepdims=True)) + m
    return y if keep else np.squeeze(y, axes)


def _arg(fn):
    def kernel(a: OpArgs):
        x = a.f("x")
        axis = _axis(int(a.scalar("axis", -1)), x.ndim)
        y = fn(x, axis=axis).astype(np.int32)
        return np.expand_dims(y, axis) if a.scalar("keep_dims", False) else y

    kernel.__doc__ = "``iOS15.reduction.reduce_argmax/argmin``: index on ``axis`` (first on ties), int32."
    return kernel


_REDUCTIONS = {
    "reduce_sum": lambda x, ax, k: np.sum(x, axis=ax, keepdims=k),
    "reduce_mean": lambda x, ax, k: np.mean(x, axis=ax, keepdims=k),
    "reduce_max": lambda x, ax, k: np.max(x, axis=ax, keepdims=k),
    "reduce_min": lambda x, ax, k: np.min(x, axis=ax, keepdims=k),
    "reduce_prod": lambda x, ax, k: np.prod(x, axis=ax, keepdims=k),
    "reduce_l1_norm": lambda x, ax, k: np.sum(np.abs(x), axis=ax, keepdims=k),
    "reduce_l2_norm": lambda x, ax, k: np.sqrt(np.sum(x * x, axis=ax, keepdims=k)),
    "reduce_sum_square": lambda x, ax, k: np.sum(x * x, axis=ax, keepdims=k),
    "reduce_log_sum": lambda x, ax, k: np.log(np.sum(x, axis=ax, keepdims=k)),
    "reduce_log_sum_exp": _log_sum_exp,
}

KERNELS = {
    "reshape": _reshape,
    "transpose": _transpose,
    "expand_dims": _expand_dims,
    "squeeze": _squeeze,
    "flatten2d": _flatten2d,
    "concat": _concat,
    "split": _split,
    "stack": _stack,
    "slice_by_index": _slice_by_index,
    "slice_by_size": _slice_by_size,
    "gather": _gather,
    "gather_along_axis": _gather_along_axis,
    "gather_nd": _gather_nd,
    "pad": _pad,
    "tile": _tile,
    "fill": _fill,
    "fill_like": _fill_like,
    "range_1d": _range_1d,
    "shape": _shape,
    "identity": _identity,
    "cumsum": _cumsum,
    **{name: _reduce(fn) for name, fn in _REDUCTIONS.items()},
    "reduce_argmax": _arg(np.argmax),
    "reduce_argmin": _arg(np.argmin),
}
