"""Elementwise MIL ops in NumPy: binary, unary, activations, comparisons, select, cast.

Semantics are coremltools' MIL op definitions
(``coremltools.converters.mil.mil.ops.defs``; the module named in each
kernel's docstring, section = class name). Binary ops broadcast as NumPy
(``elementwise_binary``: "broadcasting semantics follow numpy"). Float
operands are read widened to float32 (:mod:`.args`); the evaluator rounds
each result to the declared output dtype.
"""

from __future__ import annotations

import math

import numpy as np

from .args import OpArgs, up

__all__ = ["KERNELS"]


def _binary(fn):
    def kernel(a: OpArgs):
        return fn(a.f("x"), a.f("y"))

    kernel.__doc__ = f"``iOS15.elementwise_binary``: ``{fn.__name__}(x, y)`` with NumPy broadcasting."
    return kernel


def _real_div(x, y):
    """``iOS15.elementwise_binary.real_div``: ``x / y`` (true division; int results truncate on the cast)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        if np.issubdtype(np.asarray(x).dtype, np.integer) and np.issubdtype(np.asarray(y).dtype, np.integer):
            return np.trunc(np.true_divide(x, y))
        return np.true_divide(x, y)


def _floor_div(x, y):
    """``iOS15.elementwise_binary.floor_div``: ``floor(x / y)``."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.floor_divide(x, y)


def _pow(x, y):
    """``iOS15.elementwise_binary.pow``: ``x ** y``."""
    with np.errstate(all="ignore"):
        return np.power(x, y)


def _unary(fn):
    def kernel(a: OpArgs):
        with np.errstate(all="ignore"):
            return fn(a.f("x"))

    kernel.__doc__ = "``iOS15.elementwise_unary`` (NumPy equivalent applied elementwise)."
    return kernel


def _with_eps(fn, eps: float):
    def kernel(a: OpArgs):
        x = a.f("x")
        e = a.f("epsilon", np.float32(eps))
        with np.errstate(all="ignore"):
            return fn(x + e)

    kernel.__doc__ = f"``iOS15.elementwise_unary``: ``{fn.__name__}(x + epsilon)``, epsilon default {eps}."
    return kernel


def _erf(x):
    """``iOS15.elementwise_unary.erf`` (``math.erf`` elementwise, in float64)."""
    return np.vectorize(math.erf, otypes=[np.float64])(x) if np.size(x) else np.asarray(x, np.float64)


def _clip(a: OpArgs):
    """``iOS15.elementwise_unary.clip``: ``min(max(x, alpha), beta)``."""
    return np.minimum(np.maximum(a.f("x"), a.f("alpha")), a.f("beta"))


def _threshold(a: OpArgs):
    """``iOS15.elementwise_unary.threshold``: ``max(x, alpha)``."""
    return np.maximum(a.f("x"), a.f("alpha"))


def _cast(a: OpArgs):
    """``iOS15.elementwise_unary.cast``: to ``dtype`` (float -> int truncates toward zero, as C)."""
    x = a.get("x")
    target = {"fp16": np.float16, "fp32": np.float32, "int32": np.int32, "bool": np.bool_, "int8": np.int8,
              "uint8": np.uint8, "int16": np.int16, "uint16": np.uint16, "fp64": np.float64,
              "int64": np.int64}[a.scalar("dtype")]
    if np.dtype(target).kind in "iu" and np.asarray(x).dtype.kind == "f":
        with np.errstate(invalid="ignore"):
            return np.trunc(up(x)).astype(target)
    return np.asarray(x).astype(target)


def _round(x):
    """``iOS15.elementwise_unary.round``: ``np.round`` (half to even, as MIL's value inference)."""
    return np.round(x)


def _select(a: OpArgs):
    """``iOS15.control_flow.select``: ``where(cond, a, b)`` with broadcasting."""
    return np.where(np.asarray(a.get("cond")).astype(bool), a.f("a"), a.f("b"))


# --- activations (``iOS15.activation``) ---------------------------------------

def _sigmoid(x):
    """``iOS15.activation.sigmoid``: ``1 / (1 + exp(-x))``."""
    return 1.0 / (1.0 + np.exp(-x))


def _alpha(fn, default: float = 1.0):
    def kernel(a: OpArgs):
        with np.errstate(all="ignore"):
            return fn(a.f("x"), a.f("alpha", np.float32(default)))

    kernel.__doc__ = fn.__doc__
    return kernel


def _elu(x, alpha):
    """``iOS15.activation.elu``: ``x if x > 0 else alpha * (exp(x) - 1)``."""
    return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0)))


def _leaky_relu(x, alpha):
    """``iOS15.activation.leaky_relu``: ``x if x >= 0 else alpha * x``."""
    return np.where(x >= 0, x, alpha * x)


def _thresholded_relu(x, alpha):
    """``iOS15.activation.thresholded_relu``: ``x if x >= alpha else 0``."""
    return np.where(x >= alpha, x, 0).astype(x.dtype)


def _prelu(a: OpArgs):
    """``iOS15.activation.prelu``: ``x if x >= 0 else alpha[c] * x``, alpha per channel (axis 1 of rank >= 3)."""
    x, alpha = a.f("x"), a.f("alpha")
    alpha = alpha.reshape((1, -1) + (1,) * (x.ndim - 2))
    return np.where(x >= 0, x, alpha * x)


def _sigmoid_hard(a: OpArgs):
    """``iOS15.activation.sigmoid_hard``: ``min(max(alpha * x + beta, 0), 1)``, defaults alpha 0.2, beta 0.5."""
    return np.clip(a.f("alpha", np.float32(0.2)) * a.f("x") + a.f("beta", np.float32(0.5)), 0, 1)


def _clamped_relu(a: OpArgs):
    """``iOS15.activation.clamped_relu``: ``min(max(x, 0), beta) + min(min(x, 0) * alpha, beta)``."""
    x, alpha, beta = a.f("x"), a.f("alpha"), a.f("beta")
    return np.minimum(np.maximum(x, 0), beta) + np.minimum(np.minimum(x, 0) * alpha, beta)


def _scaled_tanh(a: OpArgs):
    """``iOS15.activation.scaled_tanh``: ``alpha * tanh(beta * x)``."""
    return a.f("alpha", np.float32(1)) * np.tanh(a.f("beta", np.float32(1)) * a.f("x"))


def _linear_activation(a: OpArgs):
    """``iOS15.activation.linear_activation``: ``alpha * x + beta``."""
    return a.f("alpha", np.float32(1)) * a.f("x") + a.f("beta", np.float32(0))


def _softplus(x):
    """``iOS15.activation.softplus``: ``log(1 + exp(x))`` (computed stably)."""
    return np.logaddexp(0, x).astype(x.dtype)


def _gelu(a: OpArgs):
    """``iOS15.activation.gelu``: EXACT ``0.5 x (1 + erf(x / sqrt 2))``; TANH_APPROXIMATION
    ``0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))``; SIGMOID_APPROXIMATION ``x sigmoid(1.702 x)``."""
    x, mode = a.f("x"), a.scalar("mode", "EXACT")
    if mode == "TANH_APPROXIMATION":
        return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))
    if mode == "SIGMOID_APPROXIMATION":
        return x * _sigmoid(1.702 * x)
    return 0.5 * x * (1 + _erf(x / np.sqrt(2)))


def _silu(x):
    """``iOS15.activation.silu``: ``x * sigmoid(x)``."""
    return x * _sigmoid(x)


_BINARY = {
    "add": np.add, "sub": np.subtract, "mul": np.multiply, "maximum": np.maximum, "minimum": np.minimum,
    "mod": np.mod, "equal": np.equal, "not_equal": np.not_equal, "less": np.less, "less_equal": np.less_equal,
    "greater": np.greater, "greater_equal": np.greater_equal, "logical_and": np.logical_and,
    "logical_or": np.logical_or, "logical_xor": np.logical_xor, "real_div": _real_div, "floor_div": _floor_div,
    "pow": _pow,
}
_UNARY = {
    "abs": np.abs, "acos": np.arccos, "asin": np.arcsin, "atan": np.arctan, "atanh": np.arctanh, "ceil": np.ceil,
    "cos": np.cos, "cosh": np.cosh, "exp": np.exp, "exp2": np.exp2, "floor": np.floor, "logical_not": np.logical_not,
    "round": _round, "sign": np.sign, "sin": np.sin, "sinh": np.sinh, "sqrt": np.sqrt, "square": np.square,
    "tan": np.tan, "tanh": np.tanh, "erf": _erf, "relu": lambda x: np.maximum(x, 0).astype(x.dtype),
    "relu6": lambda x: np.clip(x, 0, 6).astype(x.dtype), "sigmoid": _sigmoid, "softplus": _softplus,
    "softsign": lambda x: x / (1 + np.abs(x)), "silu": _silu,
}

KERNELS = {
    **{name: _binary(fn) for name, fn in _BINARY.items()},
    **{name: _unary(fn) for name, fn in _UNARY.items()},
    "inverse": _with_eps(np.reciprocal, 1e-4),
    "log": _with_eps(np.log, 1e-45),
    "rsqrt": _with_eps(lambda v: 1.0 / np.sqrt(v), 1e-12),
    "clip": _clip,
    "threshold": _threshold,
    "cast": _cast,
    "select": _select,
    "elu": _alpha(_elu),
    "leaky_relu": _alpha(_leaky_relu, 0.01),
    "thresholded_relu": _alpha(_thresholded_relu),
    "prelu": _prelu,
    "sigmoid_hard": _sigmoid_hard,
    "clamped_relu": _clamped_relu,
    "scaled_tanh": _scaled_tanh,
    "linear_activation": _linear_activation,
    "gelu": _gelu,
}
