"""Data-movement kernels of the reference delegate: reshapes, slices, pads,
nearest-neighbour Resize and the like, one small NumPy function per ONNX op
(``fn(xs, attrs, opset) -> list of outputs``, see :mod:`.kernels`). Any dtype.

Semantics follow the ONNX operator specification (onnx.ai/onnx/operators),
including the pre-opset-13 forms the ONNX model zoo still uses (attribute
``axes``, Slice's and Pad's attributes).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from unified.delegates.reference.kernels import Kernel

__all__ = ["TENSOR_KERNELS"]


def _axes(xs, a, opset, slot=1):
    if "axes" in a:
        return [int(v) for v in a["axes"]]
    if len(xs) > slot and xs[slot] is not None:
        return [int(v) for v in np.asarray(xs[slot]).reshape(-1)]
    return None


def _reshape(xs, a, opset):
    x, shape = xs[0], [int(v) for v in xs[1].reshape(-1)]
    if not a.get("allowzero", 0):
        shape = [x.shape[i] if d == 0 else d for i, d in enumerate(shape)]
    return [x.reshape(shape)]


def _flatten(xs, a, opset):
    x = xs[0]
    axis = a.get("axis", 1)
    axis = axis + x.ndim if axis < 0 else axis  # ONNX: axis in [-r, r]
    return [x.reshape(math.prod(x.shape[:axis]), -1)]


def _squeeze(xs, a, opset):
    axes = _axes(xs, a, opset)
    x = xs[0]
    if axes is None:
        return [np.squeeze(x)]
    return [np.squeeze(x, axis=tuple(v % x.ndim for v in axes))]


def _unsqueeze(xs, a, opset):
    x, given = xs[0], _axes(xs, a, opset)
    for ax in sorted(v % (x.ndim + len(given)) for v in given):
        x = np.expand_dims(x, ax)
    return [x]


def _slice(xs, a, opset):
    x = xs[0]
    if opset < 10:
        starts, ends = a["starts"], a["ends"]
        axes = a.get("axes", list(range(len(starts))))
        steps = [1] * len(starts)
    else:
        starts, ends = xs[1].reshape(-1).tolist(), xs[2].reshape(-1).tolist()
        axes = xs[3].reshape(-1).tolist() if len(xs) > 3 and xs[3] is not None else list(range(len(starts)))
        steps = xs[4].reshape(-1).tolist() if len(xs) > 4 and xs[4] is not None else [1] * len(starts)
    sl = [slice(None)] * x.ndim
    for st, en, ax, sp in zip(starts, ends, axes, steps):
        dim = x.shape[ax]
        st = st + dim if st < 0 else st
        en = en + dim if en < 0 else en
        if sp > 0:
            st, en = min(max(st, 0), dim), min(max(en, 0), dim)
        else:
            st, en = min(max(st, 0), dim - 1), min(max(en, -1), dim - 1)
        sl[ax % x.ndim] = slice(st, None if en < 0 else en, sp)
    return [x[tuple(sl)]]


def _pad(xs, a, opset):
    x = xs[0]
    mode = a.get("mode", "constant")
    if opset < 11:
        pads, value, axes = list(a.get("pads", a.get("paddings", []))), a.get("value", 0.0), None
    else:
        pads = [int(v) for v in xs[1].reshape(-1)]
        value = xs[2].reshape(-1)[0] if len(xs) > 2 and xs[2] is not None and xs[2].size else 0
        axes = [int(v) % x.ndim for v in xs[3].reshape(-1)] if len(xs) > 3 and xs[3] is not None else None
    axes = axes if axes is not None else list(range(x.ndim))
    k = len(axes)
    begin, end = [0] * x.ndim, [0] * x.ndim
    for i, ax in enumerate(axes):
        begin[ax], end[ax] = pads[i], pads[i + k]
    crop = tuple(slice(max(0, -b), x.shape[i] - max(0, -e)) for i, (b, e) in enumerate(zip(begin, end)))
    x = x[crop]
    width = [(max(0, b), max(0, e)) for b, e in zip(begin, end)]
    if mode == "constant":
        return [np.pad(x, width, mode="constant", constant_values=value)]
    return [np.pad(x, width, mode={"reflect": "reflect", "edge": "edge", "wrap": "wrap"}[mode])]


def _resize_nearest(xs, a, opset):
    x = xs[0]
    if opset < 11:
        scales, sizes = xs[1].astype(np.float64), None
    else:
        scales = xs[2] if len(xs) > 2 and xs[2] is not None and xs[2].size else None
        sizes = xs[3] if len(xs) > 3 and xs[3] is not None and xs[3].size else None
    axes = [int(v) % x.ndim for v in a.get("axes", range(x.ndim))]
    coord = a.get("coordinate_transformation_mode", "half_pixel" if opset >= 11 else "asymmetric")
    nearest = a.get("nearest_mode", "round_prefer_floor")
    y = x
    for j, ax in enumerate(axes):
        n_in = x.shape[ax]
        if sizes is not None:
            n_out = int(sizes.reshape(-1)[j])
            scale = n_out / n_in
        else:
            scale = float(scales.reshape(-1)[j])
            n_out = int(math.floor(n_in * scale))
        o = np.arange(n_out, dtype=np.float64)
        if coord == "asymmetric":
            src = o / scale
        elif coord == "align_corners":
            src = o * (n_in - 1) / (n_out - 1) if n_out > 1 else np.zeros_like(o)
        elif coord == "pytorch_half_pixel":
            src = (o + 0.5) / scale - 0.5 if n_out > 1 else np.zeros_like(o)
        elif coord == "tf_half_pixel_for_nn":
            src = (o + 0.5) / scale
        else:  # half_pixel
            src = (o + 0.5) / scale - 0.5
        idx = {
            "round_prefer_floor": np.ceil(src - 0.5),
            "round_prefer_ceil": np.floor(src + 0.5),
            "floor": np.floor(src),
            "ceil": np.ceil(src),
        }[nearest]
        y = np.take(y, np.clip(idx, 0, n_in - 1).astype(np.int64), axis=ax)
    return [y]


def _constant_of_shape(xs, a, opset):
    value = a.get("value")
    fill = np.asarray(value).reshape(-1) if value is not None else np.zeros(1, np.float32)
    return [np.full([int(v) for v in xs[0].reshape(-1)], fill[0], dtype=fill.dtype)]


def _dropout(xs, a, opset):
    return [xs[0], np.ones(xs[0].shape, dtype=bool)]



TENSOR_KERNELS: dict[str, Kernel] = {
    "Reshape": _reshape,
    "Flatten": _flatten,
    "Transpose": lambda xs, a, o: [np.transpose(xs[0], a.get("perm"))],
    "Concat": lambda xs, a, o: [np.concatenate([x for x in xs if x is not None], axis=a["axis"])],
    "Slice": _slice,
    "Squeeze": _squeeze,
    "Unsqueeze": _unsqueeze,
    "Pad": _pad,
    "Resize": _resize_nearest,
    "Identity": lambda xs, a, o: [xs[0]],
    "ConstantOfShape": _constant_of_shape,
    "Dropout": _dropout,
}
"""The data-movement ops' kernels."""
