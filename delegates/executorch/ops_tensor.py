"""Lowerings of the data-movement and shape ops: Reshape, Flatten, Transpose,
Concat, Split, Slice, Squeeze, Unsqueeze, Pad, Gather, GatherND, Expand, Tile,
Shape, ConstantOfShape, Range, Identity, Dropout.

Shape-producing ops run on host values (see ``ops_common``): ``Shape`` of a
(static) tensor is a NumPy array, and the ops that consume shapes read them
as Python values while tracing, so no data-dependent op is exported.
Semantics: the ONNX operator spec (https://onnx.ai/onnx/operators/).
"""

from __future__ import annotations

import math

import numpy as np
from onnx import TensorProto

from unified.graph import NodeView

from .ops_common import (
    F,
    LoweringError,
    host_ints,
    is_host,
    static_output_shape,
    symbolic,
    to_tensor,
    torch,
    torch_dtype,
    torch_pad_list,
)
from .support import ALL, INTS, Lowering

__all__ = ["LOWERINGS"]

_HOST_FOLD_MAX = 1 << 16  # ConstantOfShape results up to this many elements are folded on the host


def _is_one(d) -> bool:
    return isinstance(d, (int, np.integer)) and d == 1


def _is_zero(d) -> bool:
    return isinstance(d, (int, np.integer)) and d == 0


def _shape_arg(node: NodeView, value, slot: int = 1) -> list | None:
    """A host shape input as a list, or None when only the output shape can say."""
    return host_ints(value) if is_host(value) else None


# --- Reshape / Flatten / Transpose ---------------------------------------------


def reshape(node: NodeView, x, shape):
    dims = _shape_arg(node, shape)
    if dims is None:
        return x.reshape(static_output_shape(node))
    if not node.attr("allowzero", 0):
        dims = [x.shape[i] if _is_zero(d) else d for i, d in enumerate(dims)]
    return x.reshape(_one_inferred(dims))


def _one_inferred(dims: list) -> list:
    """Write a lone symbolic dim as -1: XNNPACK's reshape takes int shapes
    with at most one inferred dim (ExecuTorch ``ViewCopyConfig``)."""
    symbolic_at = [i for i, d in enumerate(dims) if not isinstance(d, (int, np.integer))]
    if len(symbolic_at) == 1 and not any(_is_int(d) and d == -1 for d in dims):
        dims = list(dims)
        dims[symbolic_at[0]] = -1
    return dims


def _is_int(d) -> bool:
    return isinstance(d, (int, np.integer))


def _host_reshape(node: NodeView, x, shape):
    if symbolic(x, shape):
        return NotImplemented
    dims = [int(d) for d in shape.reshape(-1)]
    if not node.attr("allowzero", 0):
        dims = [x.shape[i] if d == 0 else d for i, d in enumerate(dims)]
    return x.reshape(dims)


def flatten(node: NodeView, x):
    axis = node.attr("axis", 1)
    axis = axis + x.dim() if axis < 0 else axis  # ONNX: a negative axis counts from the back, in [-r, r]
    left, right = math.prod(x.shape[:axis]), math.prod(x.shape[axis:])
    if _is_int(left):
        return x.reshape(left, -1)
    return x.reshape(-1, right) if _is_int(right) else x.reshape(left, right)


def transpose(node: NodeView, x):
    perm = node.attr("perm", list(range(x.dim() - 1, -1, -1)))
    return x.permute(*perm)


def _host_transpose(node: NodeView, x):
    return np.transpose(x, node.attr("perm", None))


# --- Concat / Split / Slice ----------------------------------------------------


def concat(node: NodeView, *xs):
    return torch.cat(xs, node.attr("axis"))


def _host_concat(node: NodeView, *xs):
    return np.concatenate([np.asarray(x).reshape(x.shape) for x in xs], axis=node.attr("axis"))


def split(node: NodeView, x, sizes=None):
    axis = node.attr("axis", 0)
    n = len(node.outputs)
    if sizes is not None:
        parts = host_ints(sizes)
    elif node.attr("split") is not None:
        parts = list(node.attr("split"))
    else:  # equal parts; opset 18: the last one smaller when not divisible
        dim = x.shape[axis]
        size = -(-dim // n)
        parts = [size] * (n - 1) + [dim - size * (n - 1)]
    return tuple(torch.split(x, parts, axis))


def _slice_args(node: NodeView, rank: int, starts, ends, axes, steps):
    if node.opset < 10:
        starts, ends, axes = node.attr("starts"), node.attr("ends"), node.attr("axes", None)
        steps = None
    else:
        starts, ends = host_ints(starts), host_ints(ends)
        axes = host_ints(axes) if axes is not None else None
        steps = host_ints(steps) if steps is not None else None
    axes = list(range(len(starts))) if not axes else [int(a) % rank for a in axes]
    steps = steps or [1] * len(starts)
    index = [slice(None)] * rank
    for a, s, e, st in zip(axes, starts, ends, steps):
        index[a] = slice(s, e, st)
    return tuple(index)


def slice_(node: NodeView, x, starts=None, ends=None, axes=None, steps=None):
    return x[_slice_args(node, x.dim(), starts, ends, axes, steps)]


def _host_slice(node: NodeView, x, starts=None, ends=None, axes=None, steps=None):
    if symbolic(starts, ends, axes, steps):
        return NotImplemented
    return x[_slice_args(node, x.ndim, starts, ends, axes, steps)]


def _positive_steps(node: NodeView) -> str | None:
    if len(node.inputs) > 4 and node.inputs[4].name:
        steps = node.inputs[4].const
        if steps is None or (steps < 1).any():
            return "Slice with negative or non-constant steps not handled (torch slicing needs positive steps)"
    return None


# --- Squeeze / Unsqueeze -------------------------------------------------------


def _squeeze_axes(node: NodeView, rank: int, axes) -> list | None:
    axes = host_ints(axes) if axes is not None else node.attr("axes", None)
    return None if axes is None else sorted(int(a) % rank for a in axes)


def squeeze(node: NodeView, x, axes=None):
    dims = _squeeze_axes(node, x.dim(), axes)
    if dims is None:
        dims = [i for i, d in enumerate(node.inputs[0].shape) if d == 1]
    return x.squeeze(tuple(dims)) if dims else x


def _host_squeeze(node: NodeView, x, axes=None):
    dims = _squeeze_axes(node, x.ndim, axes)
    return np.squeeze(x, axis=None if dims is None else tuple(dims))


def _unsqueeze_axes(node: NodeView, rank: int, axes) -> list:
    axes = host_ints(axes) if axes is not None else node.attr("axes")
    out_rank = rank + len(axes)
    return sorted(int(a) % out_rank for a in axes)


def unsqueeze(node: NodeView, x, axes=None):
    for a in _unsqueeze_axes(node, x.dim(), axes):
        x = x.unsqueeze(a)
    return x


def _host_unsqueeze(node: NodeView, x, axes=None):
    return np.expand_dims(x, tuple(_unsqueeze_axes(node, x.ndim, axes)))


# --- Pad ---------------------------------------------------------------------------

_PAD_MODES = {"constant": "constant", "reflect": "reflect", "edge": "replicate"}


def pad(node: NodeView, x, pads=None, value=None, axes=None):
    rank = x.dim()
    if node.opset < 11:
        pads, value = list(node.attr("pads")), node.attr("value", 0.0)
    else:
        pads = host_ints(pads)
        value = 0 if value is None or value.size == 0 else value.reshape(()).item()
    axes = list(range(rank)) if axes is None else [int(a) % rank for a in host_ints(axes)]
    begins, ends = [0] * rank, [0] * rank
    n = len(axes)
    for i, a in enumerate(axes):
        begins[a], ends[a] = pads[i], pads[n + i]
    first = next((i for i in range(rank) if begins[i] or ends[i]), rank)  # F.pad needs no pairs before it
    flat = torch_pad_list(begins[first:], ends[first:])
    mode = _PAD_MODES[node.attr("mode", "constant")]
    if mode == "constant":
        return F.pad(x, flat, value=value)
    return F.pad(x, flat, mode=mode)


def _pad_check(node: NodeView) -> str | None:
    mode = node.attr("mode", "constant")
    if mode not in _PAD_MODES:
        return f"Pad mode={mode!r} not handled (handled: constant, reflect, edge)"
    if mode != "constant":
        pads = node.attr("pads") if node.opset < 11 else node.inputs[1].const
        rank = node.inputs[0].rank or 0
        if pads is None:
            return f"Pad mode={mode} needs constant pads"
        pads = np.asarray(pads).reshape(2, -1)
        if len(node.inputs) > 3 and node.inputs[3].name:
            return f"Pad mode={mode} with axes not handled"
        if pads[:, :2].any() or not 3 <= rank <= 5 or (pads < 0).any():
            return f"Pad mode={mode} only pads spatial dims of a rank 3..5 (N, C, ...) tensor, by >= 0"
    return None


# --- Gather / GatherND -------------------------------------------------------------


def gather(node: NodeView, x, idx):
    axis = node.attr("axis", 0) % x.dim()
    if is_host(idx):
        if idx.dtype != object and (idx < 0).any():  # ONNX allows negative indices
            idx = np.where(idx < 0, idx + x.shape[axis], idx)
        if idx.ndim == 0:
            return x.select(axis, idx[()])
        idx = to_tensor(idx, np.int64)
    else:
        idx = torch.where(idx < 0, idx + x.shape[axis], idx)
        if idx.dim() == 0:
            return x.index_select(axis, idx.reshape(1)).squeeze(axis)
    flat = x.index_select(axis, idx.reshape(-1))
    return flat.reshape(tuple(x.shape[:axis]) + tuple(idx.shape) + tuple(x.shape[axis + 1 :]))


def _host_gather(node: NodeView, x, idx):
    if symbolic(idx):
        return NotImplemented
    return np.take(x, idx.astype(np.int64) if idx.dtype != object else idx, axis=node.attr("axis", 0))


def gather_nd(node: NodeView, x, idx):
    k = idx.shape[-1]
    parts = []
    for i in range(k):
        p = idx[..., i]
        parts.append(torch.where(p < 0, p + x.shape[i], p))
    return x[tuple(parts)]


def _gather_nd_check(node: NodeView) -> str | None:
    if node.attr("batch_dims", 0):
        return "GatherND batch_dims != 0 not handled"
    if not node.inputs[1].shape:
        return "GatherND needs indices of rank >= 1"
    return None


# --- Expand / Tile / Shape / ConstantOfShape / Range ----------------------------------


def expand(node: NodeView, x, shape):
    dims = _shape_arg(node, shape)
    if dims is None:
        return x.expand(static_output_shape(node))
    rank = x.dim()
    target = list(dims)
    if len(target) < rank:
        target = [-1] * (rank - len(target)) + target
    offset = len(target) - rank
    # ONNX Expand broadcasts both ways: a 1 in ``shape`` keeps the input's dim
    target = [-1 if i >= offset and _is_one(d) else d for i, d in enumerate(target)]
    return x.expand(target)


def _host_expand(node: NodeView, x, shape):
    if symbolic(shape):
        return NotImplemented
    return np.broadcast_to(x, np.broadcast_shapes(x.shape, tuple(int(d) for d in shape.reshape(-1)))).copy()


def tile(node: NodeView, x, repeats):
    return x.repeat(host_ints(repeats))


def shape_of(node: NodeView, x):
    dims = list(x.shape)[node.attr("start", 0) : node.attr("end", None)]
    return np.array(dims, dtype=np.int64 if all(isinstance(d, int) for d in dims) else object)


def _host_shape(node: NodeView, x):
    return np.array(x.shape[node.attr("start", 0) : node.attr("end", None)], dtype=np.int64)


def _fill_value(node: NodeView):
    value = node.attr("value")
    if value is None:
        return np.zeros((), np.float32)
    return np.asarray(value).reshape(-1)[0]


def constant_of_shape(node: NodeView, shape):
    dims = host_ints(shape) if is_host(shape) else static_output_shape(node)
    value = _fill_value(node)
    if all(isinstance(d, int) for d in dims) and math.prod(dims) <= _HOST_FOLD_MAX:
        return np.full(dims, value, dtype=value.dtype)
    return torch.full(dims, value.item(), dtype=torch_dtype(node.outputs[0].elem_type))


def _range_host(node: NodeView, start, limit, delta):
    if symbolic(start, limit, delta):  # a symbolic bound: the range is a traced op
        return NotImplemented
    return np.arange(start.item(), limit.item(), delta.item(), dtype=start.dtype)


def range_(node: NodeView, start, limit, delta):
    if not all(is_host(v) for v in (start, limit, delta)):
        raise LoweringError(
            f"Range node '{node.name}': start/limit/delta computed from tensor data; torch.export needs them "
            "known while tracing"
        )
    vals = [v.reshape(())[()] for v in (start, limit, delta)]
    vals = [v.item() if isinstance(v, np.generic) else v for v in vals]
    return torch.arange(*vals, dtype=torch_dtype(node.outputs[0].elem_type))


def identity(node: NodeView, x, *_):
    return x


def dropout(node: NodeView, x, *_):
    if len(node.outputs) > 1 and node.outputs[1].elem_type:  # inference: the mask keeps everything
        return x, torch.ones(x.shape, dtype=torch_dtype(node.outputs[1].elem_type))
    return x


def _dropout_check(node: NodeView) -> str | None:
    if len(node.inputs) > 2 and node.inputs[2].name:
        mode = node.inputs[2].const
        if mode is None or bool(mode.reshape(-1)[0]):
            return "Dropout training_mode must be a constant false (inference only)"
    if node.opset < 7 and not node.attr("is_test", 0):
        return "Dropout is_test=0 not handled (inference only)"
    return None


LOWERINGS: tuple[Lowering, ...] = (
    Lowering("Reshape", reshape, frozenset({"allowzero"}), dtypes=ALL, since=5, host_inputs=(1,), host_fn=_host_reshape),
    Lowering("Flatten", flatten, frozenset({"axis"}), dtypes=ALL),
    Lowering("Transpose", transpose, frozenset({"perm"}), dtypes=ALL, host_fn=_host_transpose),
    Lowering("Concat", concat, frozenset({"axis"}), dtypes=ALL, since=4, host_fn=_host_concat),
    Lowering("Split", split, frozenset({"axis", "split", "num_outputs"}), dtypes=ALL, since=2, host_inputs=(1,),
             max_outputs=1 << 10),
    Lowering("Slice", slice_, frozenset({"starts", "ends", "axes"}), dtypes=ALL, host_inputs=(1, 2, 3, 4),
             host_fn=_host_slice, constraints=(_positive_steps,)),
    Lowering("Squeeze", squeeze, frozenset({"axes"}), dtypes=ALL, host_inputs=(1,), host_fn=_host_squeeze),
    Lowering("Unsqueeze", unsqueeze, frozenset({"axes"}), dtypes=ALL, host_inputs=(1,), host_fn=_host_unsqueeze),
    Lowering("Pad", pad, frozenset({"mode", "pads", "value"}), dtypes=ALL, since=2, host_inputs=(1, 2, 3),
             constraints=(_pad_check,)),
    Lowering("Gather", gather, frozenset({"axis"}), dtypes=ALL, either_inputs=(1,), host_fn=_host_gather),
    Lowering("GatherND", gather_nd, frozenset({"batch_dims"}), dtypes=ALL, since=11, constraints=(_gather_nd_check,)),
    Lowering("Expand", expand, dtypes=ALL, since=8, host_inputs=(1,), host_fn=_host_expand),
    Lowering("Tile", tile, dtypes=ALL, since=6, host_inputs=(1,)),
    Lowering("Shape", shape_of, frozenset({"start", "end"}), dtypes=ALL, host_fn=_host_shape),
    Lowering("ConstantOfShape", constant_of_shape, frozenset({"value"}), dtypes=INTS, since=9, host_inputs=(0,)),
    Lowering("Range", range_, dtypes=INTS | {TensorProto.FLOAT}, since=11, host_inputs=(0, 1, 2), host_fn=_range_host),
    Lowering("Identity", identity, dtypes=ALL, host_fn=lambda n, x: x),
    Lowering("Dropout", dropout, frozenset({"ratio", "seed", "is_test"}), dtypes=ALL, host_inputs=(1, 2), max_outputs=2,
             constraints=(_dropout_check,)),
)
