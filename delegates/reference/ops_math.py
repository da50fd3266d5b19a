"""Arithmetic kernels of the reference delegate: matrix products, element-wise
ops, normalizations and reductions, one small NumPy function
per ONNX op (``fn(xs, attrs, opset) -> list of outputs``, see
:mod:`.kernels`).

Kernels keep the input dtype (float32 in, float32 out). Semantics follow the
ONNX operator specification (onnx.ai/onnx/operators), including the
pre-opset-13 forms the ONNX model zoo still uses (attribute ``axes``,
Softmax's 2-D coercion).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Callable

import numpy as np

if TYPE_CHECKING:
    from unified.delegates.reference.kernels import Kernel

__all__ = ["MATH_KERNELS", "erf"]


# --- matrix products ------------------------------------------------------------


def _gemm(xs, a, opset):
    A, B = xs[0], xs[1]
    C = xs[2] if len(xs) > 2 else None
    if a.get("transA", 0):
        A = A.T
    if a.get("transB", 0):
        B = B.T
    y = np.matmul(A, B)
    alpha, beta = a.get("alpha", 1.0), a.get("beta", 1.0)
    if alpha != 1.0:
        y = y * np.asarray(alpha, dtype=y.dtype)
    if C is not None:
        y = y + (C if beta == 1.0 else C * np.asarray(beta, dtype=C.dtype))
    return [y]


# --- normalization ---------------------------------------------------------------


def _lrn(xs, a, opset):
    x = xs[0]
    size = int(a["size"])
    alpha, beta, bias = a.get("alpha", 1e-4), a.get("beta", 0.75), a.get("bias", 1.0)
    sq = np.square(x.astype(np.float64))
    lo, hi = (size - 1) // 2, -(-(size - 1) // 2)
    pad = [(0, 0), (lo + 1, hi)] + [(0, 0)] * (x.ndim - 2)
    cs = np.cumsum(np.pad(sq, pad), axis=1)
    C = x.shape[1]
    window = cs[:, size : size + C] - cs[:, :C]
    return [(x / (bias + alpha / size * window) ** beta).astype(x.dtype)]


def _batchnorm(xs, a, opset):
    x, scale, bias, mean, var = xs[:5]
    shape = (1, -1) + (1,) * (x.ndim - 2)
    eps = a.get("epsilon", 1e-5)
    inv = (scale / np.sqrt(var + np.asarray(eps, var.dtype))).astype(x.dtype)
    shift = (bias - mean * inv).astype(x.dtype)
    return [x * inv.reshape(shape) + shift.reshape(shape)]


def _layernorm(xs, a, opset):
    x, scale = xs[0], xs[1]
    b = xs[2] if len(xs) > 2 else None
    axis = a.get("axis", -1) % x.ndim
    axes = tuple(range(axis, x.ndim))
    xf = x.astype(np.float32) if a.get("stash_type", 1) == 1 else x
    mean = xf.mean(axis=axes, keepdims=True)
    d = xf - mean
    inv = 1.0 / np.sqrt((d * d).mean(axis=axes, keepdims=True) + np.asarray(a.get("epsilon", 1e-5), xf.dtype))
    y = (d * inv).astype(x.dtype) * scale
    if b is not None:
        y = y + b
    return [y, mean, inv]


def _softmax(xs, a, opset):
    x = xs[0]
    if opset < 13:  # coerced to 2-D at ``axis`` (default 1)
        axis = a.get("axis", 1) % x.ndim
        x2 = x.reshape(math.prod(x.shape[:axis]), -1)
        e = np.exp(x2 - x2.max(axis=1, keepdims=True))
        return [(e / e.sum(axis=1, keepdims=True)).reshape(x.shape)]
    axis = a.get("axis", -1)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return [e / e.sum(axis=axis, keepdims=True)]


# --- element-wise ------------------------------------------------------------------


def erf(x: np.ndarray) -> np.ndarray:
    """Error function, relative error about 1e-7 (float64 inside, dtype of ``x`` out).

    ``|x| < 0.5``: Maclaurin series ``2/sqrt(pi) * sum (-1)^n x^(2n+1) / (n! (2n+1))``
    (14 terms, truncation < 1e-17); otherwise ``1 - erfc(|x|)`` with the
    Chebyshev fit of Numerical Recipes 3rd ed., section 6.2.2 (``erfc``
    fractional error < 1.2e-7).
    """
    z = np.asarray(x, dtype=np.float64)
    a = np.abs(z)
    small = np.zeros_like(z)
    term = z.copy()
    z2 = z * z
    for n in range(14):
        small += term / (2 * n + 1)
        term = term * (-z2) / (n + 1)
    small *= 2.0 / math.sqrt(math.pi)
    t = 1.0 / (1.0 + 0.5 * a)
    poly = -a * a - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (
        -0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))))))
    large = np.sign(z) * (1.0 - t * np.exp(poly))
    return np.where(a < 0.5, small, large).astype(np.asarray(x).dtype)


def _sigmoid(x):
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype)


def _clip(xs, a, opset):
    x = xs[0]
    if opset < 11:
        lo, hi = a.get("min"), a.get("max")
    else:
        lo = xs[1] if len(xs) > 1 and xs[1] is not None else None
        hi = xs[2] if len(xs) > 2 and xs[2] is not None else None
    y = x
    if lo is not None:
        y = np.maximum(y, np.asarray(lo, dtype=x.dtype))
    if hi is not None:
        y = np.minimum(y, np.asarray(hi, dtype=x.dtype))
    return [y]


def _div(xs, a, opset):
    x, y = xs
    if x.dtype.kind in "iu":  # ONNX integer division truncates toward zero
        return [(np.trunc(x / y)).astype(x.dtype)]
    return [x / y]


def _gelu(xs, a, opset):
    x = xs[0]
    if a.get("approximate", "none") == "tanh":
        c = np.asarray(math.sqrt(2 / math.pi), x.dtype)
        return [0.5 * x * (1 + np.tanh(c * (x + np.asarray(0.044715, x.dtype) * x**3)))]
    return [0.5 * x * (1 + erf(x / np.asarray(math.sqrt(2), x.dtype)))]


def _sum(xs, a, opset):
    out = xs[0]
    for v in xs[1:]:
        out = out + v
    return [out]


def _unary(fn: Callable[[np.ndarray, dict], np.ndarray]) -> Kernel:
    return lambda xs, a, opset: [fn(xs[0], a)]


def _binary(fn) -> Kernel:
    return lambda xs, a, opset: [fn(xs[0], xs[1])]


# --- reductions -----------------------------------------------------------------------


def _reduce(fn: Callable, since_input_axes: int) -> Kernel:
    """ReduceMean / ReduceSum / ReduceMax: ``axes`` an attribute before
    ``since_input_axes``, an input from it on; ``keepdims`` default 1."""

    def kernel(xs, a, opset):
        x = xs[0]
        axes = a.get("axes") if opset < since_input_axes else (
            [int(v) for v in xs[1].reshape(-1)] if len(xs) > 1 and xs[1] is not None else None
        )
        if not axes:
            if a.get("noop_with_empty_axes", 0):
                return [x]
            axes = range(x.ndim)
        return [fn(x, axis=tuple(int(v) % x.ndim for v in axes), keepdims=bool(a.get("keepdims", 1)))]

    return kernel


def _max_or_lowest(x: np.ndarray, axis, keepdims: bool) -> np.ndarray:
    """np.max, with the lowest value of the dtype for an empty set (ONNX ReduceMax)."""
    lowest = -np.inf if x.dtype.kind == "f" else np.iinfo(x.dtype).min
    return np.max(x, axis=axis, keepdims=keepdims, initial=lowest)


MATH_KERNELS: dict[str, Kernel] = {
    # MAC ops (the array); Conv and ConvTranspose are in ops_conv
    "Gemm": _gemm,
    "MatMul": _binary(np.matmul),
    # element-wise (the vector unit)
    "Add": _binary(np.add),
    "Sub": _binary(np.subtract),
    "Mul": _binary(np.multiply),
    "Div": _div,
    "Sum": _sum,
    "Relu": _unary(lambda x, a: np.maximum(x, np.zeros((), x.dtype))),
    "Clip": _clip,
    "Sigmoid": _unary(lambda x, a: _sigmoid(x)),
    "HardSigmoid": _unary(
        lambda x, a: np.clip(x * np.asarray(a.get("alpha", 0.2), x.dtype) + np.asarray(a.get("beta", 0.5), x.dtype), 0, 1)
    ),
    "HardSwish": _unary(lambda x, a: x * np.clip(x / np.asarray(6, x.dtype) + np.asarray(0.5, x.dtype), 0, 1)),
    "Tanh": _unary(lambda x, a: np.tanh(x)),
    "LeakyRelu": _unary(lambda x, a: np.where(x >= 0, x, x * np.asarray(a.get("alpha", 0.01), x.dtype))),
    "Erf": _unary(lambda x, a: erf(x)),
    "Gelu": _gelu,
    # reductions and normalization
    "GlobalAveragePool": _unary(lambda x, a: x.mean(axis=tuple(range(2, x.ndim)), keepdims=True)),
    "ReduceMean": _reduce(np.mean, 18),
    "ReduceSum": _reduce(np.sum, 13),
    "ReduceMax": _reduce(_max_or_lowest, 18),
    "Softmax": _softmax,
    "LayerNormalization": _layernorm,
    "BatchNormalization": _batchnorm,
    "LRN": _lrn,
}
"""The arithmetic ops' kernels."""
