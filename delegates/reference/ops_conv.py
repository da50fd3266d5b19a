"""Windowed kernels of the reference delegate: convolution (im2col + BLAS),
transposed convolution (GEMM + col2im) and pooling, for 1-D to 3-D inputs.

Strides, dilations and pads (``pads`` or ``auto_pad``) are read with
:mod:`unified.onnx.spatial`, the one reading of the ONNX Conv / pooling spec. No Python
loop runs per output element: windows are ``sliding_window_view`` views, the
im2col copy feeds one ``np.matmul`` per group, and the only loops run over
kernel offsets (depthwise convolution, col2im).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from unified.onnx import Window, conv_transpose_pads, resolve_pads, window

__all__ = ["conv", "conv_transpose", "pool"]


# --- helpers ---------------------------------------------------------------------


def _windows(xp: np.ndarray, kernel, strides, dilations) -> np.ndarray:
    """View ``(N, C, *out, *kernel)`` of a padded ``(N, C, *S)`` array."""
    n = len(kernel)
    ext = [(k - 1) * d + 1 for k, d in zip(kernel, dilations)]
    axes = tuple(range(2, 2 + n))
    v = sliding_window_view(xp, ext, axis=axes)
    sl = (slice(None), slice(None)) + tuple(slice(None, None, s) for s in strides)
    sl += tuple(slice(None, None, d) for d in dilations)
    return v[sl]


def _pad_spatial(x: np.ndarray, begins: Sequence[int], ends: Sequence[int], value: float = 0.0) -> np.ndarray:
    """``x`` ``(N, C, *S)`` padded with ``value``: ``begins[i]`` before and
    ``ends[i]`` after spatial dim ``i``."""
    if not any(begins) and not any(ends):
        return x
    width = [(0, 0), (0, 0)] + list(zip(begins, ends))
    return np.pad(x, width, mode="constant", constant_values=value)


# --- MAC ops -----------------------------------------------------------------------


def conv(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, attrs: dict) -> np.ndarray:
    """ONNX Conv (1-D to 3-D, groups, dilations, strides, pads, auto_pad).

    Args:
        x: ``(N, C, *S)``; w: ``(F, C/group, *k)``; b: ``(F,)`` or None.

    Returns:
        ``(N, F, *O)`` in the dtype of ``x`` (float64 inputs make the integer
        path exact: products and sums of int8 values stay below 2**53).
    """
    spec = window(attrs, w.shape[2:])
    kernel, strides, dilations, g = list(spec.kernel), spec.strides, spec.dilations, spec.group
    n = len(kernel)
    begins, ends = resolve_pads(attrs, x.shape[2:], spec)
    N, C = x.shape[:2]
    F = w.shape[0]
    cg, fg = C // g, F // g
    if all(k == 1 for k in kernel) and all(s == 1 for s in strides) and not any(begins + ends) and g == 1:
        y = np.matmul(w.reshape(F, C), x.reshape(N, C, -1)).reshape((N, F) + x.shape[2:])
    else:
        win = _windows(_pad_spatial(x, begins, ends), kernel, strides, dilations)  # (N, C, *O, *k)
        out = win.shape[2 : 2 + n]
        kp = math.prod(kernel)
        if cg == 1 and g > 1:  # depthwise (channel multiplier fg): one vectorized step per kernel offset
            wk = w.reshape(g, fg, kp)
            y = np.zeros((N, g, fg) + out, dtype=np.result_type(x, w))
            wv = win.reshape(win.shape[: 2 + n] + (kp,))
            expand = (None,) * n
            for t in range(kp):
                y += wv[:, :, None, ..., t] * wk[(None, slice(None), slice(None), t) + expand]
            y = y.reshape((N, F) + out)
        else:
            # im2col: (N, *O, g, C/g, *k) -> (g, N*O, C/g*kp), one BLAS GEMM per group
            perm = (0,) + tuple(range(2, 2 + n)) + (1,) + tuple(range(2 + n, 2 + 2 * n))
            cols = np.ascontiguousarray(win.transpose(perm)).reshape(N * math.prod(out), g, cg * kp)
            wg = w.reshape(g, fg, cg * kp)
            if g == 1:
                y = np.matmul(cols[:, 0, :], wg[0].T)  # (N*O, F)
            else:
                y = np.matmul(cols.transpose(1, 0, 2), wg.transpose(0, 2, 1))  # (g, N*O, F/g)
                y = y.transpose(1, 0, 2).reshape(N * math.prod(out), F)
            y = np.moveaxis(y.reshape((N,) + out + (F,)), -1, 1)
    if b is not None:
        y = y + b.reshape((1, F) + (1,) * n)
    return np.ascontiguousarray(y)


def conv_transpose(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, attrs: dict) -> np.ndarray:
    """ONNX ConvTranspose (scatter form: one GEMM per group, then col2im with
    one vectorized add per kernel offset); pads and the output size from
    :func:`unified.onnx.spatial.conv_transpose_pads`.

    Args:
        x: ``(N, C, *S)``; w: ``(C, F/group, *k)``; b: ``(F,)`` or None.
    """
    spec = window(attrs, w.shape[2:])
    kernel, strides, dilations, g = list(spec.kernel), spec.strides, spec.dilations, spec.group
    n = len(kernel)
    N, C = x.shape[:2]
    S = x.shape[2:]
    begins, ends, out = conv_transpose_pads(attrs, S, spec)
    cg, fg = C // g, w.shape[1]
    F = fg * g
    kp = math.prod(kernel)
    xs = x.reshape(N, g, cg, -1).transpose(1, 0, 3, 2).reshape(g, -1, cg)  # (g, N*S, C/g)
    cols = np.matmul(xs, w.reshape(g, cg, fg * kp))  # (g, N*S, F/g*kp)
    cols = cols.reshape((g, N) + tuple(S) + (fg,) + tuple(kernel))
    full = [begins[i] + out[i] + ends[i] for i in range(n)]  # the uncropped output (output_padding included)
    y = np.zeros((N, g, fg) + tuple(full), dtype=cols.dtype)
    src_perm = (1, 0, 2 + n) + tuple(range(2, 2 + n))  # -> (N, g, F/g, *S) per kernel offset
    for idx in np.ndindex(*kernel):
        dst = (slice(None),) * 3 + tuple(
            slice(idx[i] * dilations[i], idx[i] * dilations[i] + (S[i] - 1) * strides[i] + 1, strides[i])
            for i in range(n)
        )
        y[dst] += cols[(slice(None),) * (3 + n) + idx].transpose(src_perm)
    crop = (slice(None),) * 3 + tuple(slice(begins[i], begins[i] + out[i]) for i in range(n))
    y = y[crop].reshape((N, F) + tuple(out))
    if b is not None:
        y = y + b.reshape((1, F) + (1,) * n)
    return np.ascontiguousarray(y)


# --- pooling -------------------------------------------------------------------------


def _ceil_overhang(sizes: Sequence[int], begins: Sequence[int], ends: Sequence[int], spec: Window) -> list[int]:
    """Extra end padding per spatial dim that ``ceil_mode=1`` adds (the last
    window must start inside the input or its begin pad)."""
    extra = []
    for i, size in enumerate(sizes):
        ext = (spec.kernel[i] - 1) * spec.dilations[i] + 1
        span = size + begins[i] + ends[i] - ext
        out = -(-span // spec.strides[i]) + 1
        if (out - 1) * spec.strides[i] >= size + begins[i]:
            out -= 1
        extra.append(max(0, (out - 1) * spec.strides[i] + ext - (size + begins[i] + ends[i])))
    return extra


def pool(x: np.ndarray, a: dict, kind: str) -> np.ndarray:
    """MaxPool (``kind="max"``) or AveragePool (``"avg"``) of ``(N, C, *S)``:
    kernel_shape, strides, pads / auto_pad, dilations, ceil_mode, and for
    averages count_include_pad (the ceil-mode overhang is never counted)."""
    spec = window(a, a["kernel_shape"])
    kernel, strides, dilations = spec.kernel, spec.strides, spec.dilations
    n = len(kernel)
    S = x.shape[2:]
    begins, ends = resolve_pads(a, S, spec)
    extra = _ceil_overhang(S, begins, ends, spec) if a.get("ceil_mode", 0) else [0] * n
    full_ends = [ends[i] + extra[i] for i in range(n)]
    axes = tuple(range(-n, 0))
    if kind == "max":
        fill = -np.inf if x.dtype.kind == "f" else np.iinfo(x.dtype).min
        return _windows(_pad_spatial(x, begins, full_ends, fill), kernel, strides, dilations).max(axis=axes)
    sums = _windows(_pad_spatial(x, begins, full_ends), kernel, strides, dilations).sum(axis=axes, dtype=np.float64)
    mask = np.ones((1, 1) + tuple(S), dtype=np.float64)
    if a.get("count_include_pad", 0):
        mask = _pad_spatial(mask, begins, ends, 1.0)
        mask = _pad_spatial(mask, [0] * n, extra)
    else:
        mask = _pad_spatial(mask, begins, full_ends)
    counts = _windows(mask, kernel, strides, dilations).sum(axis=axes)
    return (sums / counts).astype(x.dtype)
