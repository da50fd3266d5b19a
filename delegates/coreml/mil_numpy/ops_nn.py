"""Neural-network MIL ops in NumPy: conv, pooling, normalization, matmul, softmax, resize.

Semantics are coremltools' MIL op definitions
(``coremltools.converters.mil.mil.ops.defs``; module and class named in each
kernel's docstring). Layout is MIL's: ``x`` is ``(N, C, *spatial)``, conv
weights ``(C_out, C_in / groups, *K)``, conv_transpose weights
``(C_in, C_out / groups, *K)``; custom pads are interleaved per spatial axis
``[b0, e0, b1, e1, ...]``. Products and sums accumulate in float32.
"""

from __future__ import annotations

import math
import string

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .args import OpArgs

__all__ = ["KERNELS"]


def _pads(a: OpArgs, spatial, kernel, strides, dilations) -> list[tuple[int, int]]:
    """Per spatial axis ``(begin, end)`` padding for ``pad_type`` valid/custom/same/same_lower
    (``iOS15.conv.conv``: same gives ``ceil(in / stride)`` outputs, the odd pixel at the end; same_lower at
    the beginning)."""
    kind = a.scalar("pad_type", "valid")
    k = len(spatial)
    if kind == "custom":
        p = a.ints("pad", [0] * 2 * k)
        return [(p[2 * i], p[2 * i + 1]) for i in range(k)]
    if kind == "valid":
        return [(0, 0)] * k
    out = []
    for size, kk, s, d in zip(spatial, kernel, strides, dilations):
        total = max((math.ceil(size / s) - 1) * s + (kk - 1) * d + 1 - size, 0)
        small, big = total // 2, total - total // 2
        out.append((small, big) if kind == "same" else (big, small))
    return out


def _windows(xp: np.ndarray, kernel, strides, dilations) -> np.ndarray:
    """``(N, C, *out, *K)`` view of the windows of padded ``xp`` (stride and dilation applied)."""
    k = len(kernel)
    eff = [(kk - 1) * d + 1 for kk, d in zip(kernel, dilations)]
    v = sliding_window_view(xp, eff, axis=tuple(range(2, 2 + k)))
    return v[(slice(None), slice(None)) + tuple(slice(None, None, s) for s in strides)
             + tuple(slice(None, None, d) for d in dilations)]


def _correlate(x: np.ndarray, w: np.ndarray, strides, dilations, pads, groups: int) -> np.ndarray:
    """Grouped N-d cross-correlation: ``x (N, C, *S)``, ``w (O, C/groups, *K)`` -> ``(N, O, *out)`` in float32."""
    k = w.ndim - 2
    xp = np.pad(x, [(0, 0), (0, 0)] + [tuple(p) for p in pads])
    v = _windows(xp, w.shape[2:], strides, dilations)
    if groups == 1:
        y = np.tensordot(v, w, axes=([1, *range(2 + k, 2 + 2 * k)], [1, *range(2, 2 + k)]))
        return np.moveaxis(y, -1, 1)
    n, c = v.shape[:2]
    out_dims = v.shape[2:2 + k]
    vg = v.reshape((n, groups, c // groups) + v.shape[2:])
    wg = w.reshape((groups, w.shape[0] // groups) + w.shape[1:])
    sp, ks = string.ascii_lowercase[:k], string.ascii_uppercase[:k]
    y = np.einsum(f"ngc{sp}{ks},goc{ks}->ngo{sp}", vg, wg, optimize=True)
    return y.reshape((n, w.shape[0]) + out_dims)


def _spatial_bias(y: np.ndarray, bias) -> np.ndarray:
    return y if bias is None else y + bias.reshape((1, -1) + (1,) * (y.ndim - 2))


def _conv(a: OpArgs):
    """``iOS15.conv.conv``: grouped, strided, dilated cross-correlation plus optional ``bias``."""
    x, w = a.f("x"), a.f("weight")
    k = w.ndim - 2
    strides = a.ints("strides", [1] * k)
    dilations = a.ints("dilations", [1] * k)
    pads = _pads(a, x.shape[2:], w.shape[2:], strides, dilations)
    return _spatial_bias(_correlate(x, w, strides, dilations, pads, int(a.scalar("groups", 1))), a.f("bias"))


def _conv_transpose(a: OpArgs):
    """``iOS15.conv.conv_transpose``: the gradient of conv. The full output
    ``(in - 1) * stride + (K - 1) * dilation + 1`` is cropped by ``pad`` (custom) or to
    ``output_shape`` starting after the begin pads."""
    x, w = a.f("x"), a.f("weight")
    k = w.ndim - 2
    groups = int(a.scalar("groups", 1))
    strides = a.ints("strides", [1] * k)
    dilations = a.ints("dilations", [1] * k)
    n, cin = x.shape[:2]
    # zero-stuff the input, pad by the dilated kernel extent, correlate with the flipped, regrouped kernel
    stuffed = np.zeros((n, cin) + tuple((s - 1) * st + 1 for s, st in zip(x.shape[2:], strides)), np.float32)
    stuffed[(slice(None), slice(None)) + tuple(slice(None, None, st) for st in strides)] = x
    ext = [(kk - 1) * d for kk, d in zip(w.shape[2:], dilations)]
    cout_g = w.shape[1]
    wg = w.reshape((groups, cin // groups, cout_g) + w.shape[2:])
    wf = np.flip(np.swapaxes(wg, 1, 2), axis=tuple(range(3, 3 + k))).reshape((groups * cout_g, cin // groups)
                                                                             + w.shape[2:])
    full = _correlate(stuffed, np.ascontiguousarray(wf), [1] * k, dilations, [(e, e) for e in ext], groups)
    kind = a.scalar("pad_type", "valid")
    pad = a.ints("pad", [0] * 2 * k) if kind == "custom" else [0] * 2 * k
    shape = a.ints("output_shape")
    index = [slice(None), slice(None)]
    for i in range(k):
        begin, end = pad[2 * i], pad[2 * i + 1]
        size = shape[2 + i] if shape else full.shape[2 + i] - begin - end
        if kind == "same" and not shape:
            size = x.shape[2 + i] * strides[i]
            begin = (full.shape[2 + i] - size) // 2
        if begin + size > full.shape[2 + i]:  # output_shape past the full output: zeros (ONNX output_padding)
            grow = [(0, 0)] * full.ndim
            grow[2 + i] = (0, begin + size - full.shape[2 + i])
            full = np.pad(full, grow)
        index.append(slice(begin, begin + size))
    return _spatial_bias(full[tuple(index)], a.f("bias"))


def _pool_setup(a: OpArgs, x):
    kernel = a.ints("kernel_sizes")
    k = len(kernel)
    strides = a.ints("strides", [1] * k)
    pads = _pads(a, x.shape[2:], kernel, strides, [1] * k)
    if a.scalar("ceil_mode", False):
        grown = []
        for size, kk, s, (b, e) in zip(x.shape[2:], kernel, strides, pads):
            out = math.ceil((size + b + e - kk) / s) + 1
            if (out - 1) * s >= size + b:  # the last window must start inside the input or begin pad
                out -= 1
            grown.append((b, max(e, (out - 1) * s + kk - size - b)))
        pads = grown
    return kernel, strides, pads


def _max_pool(a: OpArgs):
    """``iOS15.pool.max_pool``: window maximum; padding never wins (``-inf``); ``ceil_mode`` adds end windows."""
    x = a.f("x")
    kernel, strides, pads = _pool_setup(a, x)
    xp = np.pad(x, [(0, 0), (0, 0)] + pads, constant_values=-np.inf)
    v = _windows(xp, kernel, strides, [1] * len(kernel))
    return v.max(axis=tuple(range(-len(kernel), 0)))


def _avg_pool(a: OpArgs):
    """``iOS15.pool.avg_pool``: window mean; ``exclude_padding_from_average`` divides by the number of
    input elements in the window instead of the window size."""
    x = a.f("x")
    kernel, strides, pads = _pool_setup(a, x)
    axes = tuple(range(-len(kernel), 0))
    widths = [(0, 0), (0, 0)] + pads
    total = _windows(np.pad(x, widths), kernel, strides, [1] * len(kernel)).sum(axis=axes, dtype=np.float32)
    if a.scalar("exclude_padding_from_average", False):
        ones = np.pad(np.ones((1, 1) + x.shape[2:], np.float32), widths)
        count = _windows(ones, kernel, strides, [1] * len(kernel)).sum(axis=axes)
        return total / np.maximum(count, 1)
    return total / float(np.prod(kernel))


def _l2_pool(a: OpArgs):
    """``iOS15.pool.l2_pool``: ``sqrt(sum(x^2))`` over each window."""
    x = a.f("x")
    kernel, strides, pads = _pool_setup(a, x)
    v = _windows(np.pad(x * x, [(0, 0), (0, 0)] + pads), kernel, strides, [1] * len(kernel))
    return np.sqrt(v.sum(axis=tuple(range(-len(kernel), 0))))


def _channel(v, rank: int):
    return None if v is None else v.reshape((1, -1) + (1,) * (rank - 2))


def _batch_norm(a: OpArgs):
    """``iOS15.normalization.batch_norm``: ``(x - mean) / sqrt(variance + epsilon) * gamma + beta`` per channel
    (axis 1); epsilon default 1e-5."""
    x = a.f("x")
    r = x.ndim
    y = (x - _channel(a.f("mean"), r)) / np.sqrt(_channel(a.f("variance"), r) + a.f("epsilon", np.float32(1e-5)))
    if a.has("gamma"):
        y = y * _channel(a.f("gamma"), r)
    return y + _channel(a.f("beta"), r) if a.has("beta") else y


def _instance_norm(a: OpArgs):
    """``iOS15.normalization.instance_norm``: per (n, c) over the spatial axes, population variance, then
    ``gamma``/``beta`` per channel; epsilon default 1e-5."""
    x = a.f("x")
    axes = tuple(range(2, x.ndim))
    mean = x.mean(axis=axes, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    y = (x - mean) / np.sqrt(var + a.f("epsilon", np.float32(1e-5)))
    if a.has("gamma"):
        y = y * _channel(a.f("gamma"), x.ndim)
    return y + _channel(a.f("beta"), x.ndim) if a.has("beta") else y


def _layer_norm(a: OpArgs):
    """``iOS15.normalization.layer_norm``: over ``axes`` (population variance), then ``gamma``/``beta``
    (shaped as the normalized trailing dims); epsilon default 1e-5."""
    x = a.f("x")
    axes = a.ints("axes")
    axes = tuple(range(x.ndim)) if axes is None else tuple(ax + x.ndim if ax < 0 else ax for ax in axes)
    mean = x.mean(axis=axes, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    y = (x - mean) / np.sqrt(var + a.f("epsilon", np.float32(1e-5)))
    if a.has("gamma"):
        y = y * a.f("gamma")
    return y + a.f("beta") if a.has("beta") else y


def _local_response_norm(a: OpArgs):
    """``iOS15.normalization.local_response_norm``: ``x / (k + alpha / size * sum_j x_j^2) ^ beta``, the sum
    over channels ``c - (size-1)//2 .. c + size//2`` (alpha 1e-4, beta 0.75, k 1 by default)."""
    x = a.f("x")
    size = int(a.scalar("size"))
    sq = np.pad(x * x, [(0, 0), ((size - 1) // 2, size // 2)] + [(0, 0)] * (x.ndim - 2))
    total = sliding_window_view(sq, size, axis=1).sum(axis=-1)
    alpha, beta, k = a.f("alpha", np.float32(1e-4)), a.f("beta", np.float32(0.75)), a.f("k", np.float32(1.0))
    return x / (k + alpha / size * total) ** beta


def _matmul(a: OpArgs):
    """``iOS15.linear.matmul``: batched ``x @ y`` with NumPy broadcasting of the batch dims, after the
    optional ``transpose_x``/``transpose_y`` of the last two axes."""
    x, y = a.f("x"), a.f("y")
    if a.scalar("transpose_x", False):
        x = np.swapaxes(x, -1, -2)
    if a.scalar("transpose_y", False):
        y = np.swapaxes(y, -1, -2)
    return np.matmul(x, y)


def _linear(a: OpArgs):
    """``iOS15.linear.linear``: ``x @ weight.T + bias``, ``weight`` ``(D_out, D_in)``, ``bias`` ``(D_out,)``."""
    y = np.matmul(a.f("x"), a.f("weight").T)
    return y + a.f("bias") if a.has("bias") else y


def _softmax(a: OpArgs):
    """``iOS15.activation.softmax``: ``exp(x - max) / sum(exp(x - max))`` on ``axis`` (default -1)."""
    x = a.f("x")
    axis = int(a.scalar("axis", -1))
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def _grid(size_in: int, size_out: int, mode: str) -> np.ndarray:
    """Sampling positions of ``iOS15.image_resizing.resize_bilinear``'s ``sampling_mode``."""
    i = np.arange(size_out, dtype=np.float64)
    if mode in ("STRICT_ALIGN_CORNERS", "ALIGN_CORNERS"):
        if size_out == 1:
            g = np.array([0.0 if mode == "STRICT_ALIGN_CORNERS" else (size_in - 1) / 2])
        else:
            g = i * (size_in - 1) / (size_out - 1)
    elif mode == "UNALIGN_CORNERS":
        g = (i + 0.5) * size_in / size_out - 0.5
    elif mode == "OFFSET_CORNERS":
        delta = max(1, size_in - 1) / size_out
        g = 0.5 * delta + i * delta
    else:  # DEFAULT
        g = i * size_in / size_out
    return np.clip(g, 0, size_in - 1)


def _lerp(x: np.ndarray, axis: int, g: np.ndarray) -> np.ndarray:
    lo = np.floor(g).astype(np.int64)
    hi = np.minimum(lo + 1, x.shape[axis] - 1)
    t = (g - lo).astype(np.float32).reshape((-1,) + (1,) * (x.ndim - axis - 1))
    return np.take(x, lo, axis=axis) * (1 - t) + np.take(x, hi, axis=axis) * t


def _resize_bilinear(a: OpArgs):
    """``iOS15.image_resizing.resize_bilinear``: separable linear interpolation of the last two axes to
    ``target_size_height`` x ``target_size_width`` at the ``sampling_mode`` grid."""
    x = a.f("x")
    mode = a.scalar("sampling_mode", "DEFAULT")
    h, w = int(a.scalar("target_size_height", 1)), int(a.scalar("target_size_width", 1))
    y = _lerp(x, x.ndim - 2, _grid(x.shape[-2], h, mode))
    return _lerp(y, x.ndim - 1, _grid(x.shape[-1], w, mode))


def _upsample_nearest_neighbor(a: OpArgs):
    """``iOS15.image_resizing.upsample_nearest_neighbor``: each pixel repeated ``scale_factor_height`` x
    ``scale_factor_width`` times (integer factors; output index ``i`` reads ``floor(i / scale)``)."""
    x = a.get("x")
    sh, sw = float(a.scalar("scale_factor_height", 1)), float(a.scalar("scale_factor_width", 1))
    rows = np.floor(np.arange(int(x.shape[-2] * sh)) / sh).astype(np.int64)
    cols = np.floor(np.arange(int(x.shape[-1] * sw)) / sw).astype(np.int64)
    return np.take(np.take(x, rows, axis=-2), cols, axis=-1)


KERNELS = {
    "conv": _conv,
    "conv_transpose": _conv_transpose,
    "max_pool": _max_pool,
    "avg_pool": _avg_pool,
    "l2_pool": _l2_pool,
    "batch_norm": _batch_norm,
    "instance_norm": _instance_norm,
    "layer_norm": _layer_norm,
    "local_response_norm": _local_response_norm,
    "matmul": _matmul,
    "linear": _linear,
    "softmax": _softmax,
    "resize_bilinear": _resize_bilinear,
    "upsample_nearest_neighbor": _upsample_nearest_neighbor,
}
