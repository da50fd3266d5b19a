"""Error metrics between an output and its reference: the numbers that judge a delegate or a compressed model.

Every function takes two arrays of the same shape (any numeric dtype; computed
in float64) and returns a Python float. ``actual`` is the output under test,
``reference`` the one it is judged against (ONNX Runtime fp32, the float
model). NaN where both arrays hold NaN counts as equal; any other non-finite
difference makes the error ``inf`` (or the similarity ``-inf``/``nan`` as each
function says), never a silently small number.

Used by ``unified compare``, ``unified.accuracy`` (the gate of
``delegates="auto"``) and the quantization report.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from unified.errors import InputError

__all__ = [
    "max_abs_error",
    "max_rel_error",
    "cosine_similarity",
    "sqnr_db",
    "kl_divergence",
    "topk_agreement",
    "summary",
]


def _pair(actual: Any, reference: Any) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(actual, dtype=np.float64)
    r = np.asarray(reference, dtype=np.float64)
    if a.shape != r.shape:
        raise InputError(f"metrics: shapes differ, actual {a.shape} vs reference {r.shape}; expected equal shapes")
    return a, r


def _diff(a: np.ndarray, r: np.ndarray) -> np.ndarray:
    both_nan = np.isnan(a) & np.isnan(r)
    same_inf = np.isinf(a) & (a == r)
    d = np.abs(a - r)
    d = np.where(both_nan | same_inf, 0.0, d)
    return np.nan_to_num(d, nan=math.inf)


def max_abs_error(actual: Any, reference: Any) -> float:
    """``max |actual - reference|`` over all elements (0.0 for empty arrays).

    Raises:
        InputError: the shapes differ.
    """
    a, r = _pair(actual, reference)
    return float(_diff(a, r).max()) if a.size else 0.0


def max_rel_error(actual: Any, reference: Any, eps: float = 1e-12) -> float:
    """``max |actual - reference| / max(|reference|, eps)`` (Polygraphy's relative error).

    ``eps`` keeps zeros in the reference from dividing by zero: an element
    whose reference is 0 contributes ``|actual| / eps``.

    Raises:
        InputError: the shapes differ.
    """
    a, r = _pair(actual, reference)
    if not a.size:
        return 0.0
    return float((_diff(a, r) / np.maximum(np.abs(np.nan_to_num(r)), eps)).max())


def cosine_similarity(actual: Any, reference: Any) -> float:
    """Cosine similarity of the flattened arrays, ``a.r / (|a| |r|)``, in [-1, 1].

    Two all-zero arrays give 1.0; one all-zero array gives 0.0. Non-finite
    values give 1.0 if the arrays are equal (NaN == NaN) and NaN otherwise.

    Raises:
        InputError: the shapes differ.
    """
    a, r = _pair(actual, reference)
    a, r = a.ravel(), r.ravel()
    if not (np.isfinite(a).all() and np.isfinite(r).all()):
        return 1.0 if np.array_equal(a, r, equal_nan=True) else math.nan
    na, nr = float(np.linalg.norm(a)), float(np.linalg.norm(r))
    if na == 0.0 or nr == 0.0:
        return 1.0 if na == nr else 0.0
    return float(np.clip(np.dot(a, r) / (na * nr), -1.0, 1.0))


def sqnr_db(actual: Any, reference: Any) -> float:
    """Signal-to-quantization-noise ratio, ``10 log10(sum r^2 / sum (a - r)^2)`` in dB.

    The definition PyTorch's ``torch.ao.ns.fx.utils.compute_sqnr`` and
    ExecuTorch's devtools use (there as ``20 log10(|r| / |a - r|)``, the same
    number). Identical arrays give ``inf``; a zero reference with any error
    gives ``-inf``.

    Raises:
        InputError: the shapes differ.
    """
    a, r = _pair(actual, reference)
    noise = float(np.sum(_diff(a, r) ** 2))
    signal = float(np.sum(np.nan_to_num(r) ** 2))
    if noise == 0.0:
        return math.inf
    if signal == 0.0 or math.isinf(noise):
        return -math.inf
    return 10.0 * math.log10(signal / noise)


def _softmax(x: np.ndarray, axis: int) -> np.ndarray:
    z = x - np.max(x, axis=axis, keepdims=True)
    e = np.exp(z)
    return e / np.sum(e, axis=axis, keepdims=True)


def kl_divergence(actual: Any, reference: Any, axis: int = -1, logits: bool = True) -> float:
    """Mean KL divergence ``KL(P_ref || P_act) = sum p_ref log(p_ref / p_act)`` over the rows of ``axis``, in nats.

    Kullback & Leibler, "On Information and Sufficient Statistics", 1951; the
    direction used by TensorRT's and llama.cpp's quantization reports (the
    reference distribution first). With ``logits=True`` (default) both inputs
    are turned into distributions with a softmax along ``axis``; with
    ``logits=False`` they must already be probabilities. Probabilities are
    clipped to 1e-12 before the log.

    Raises:
        InputError: the shapes differ, or a 0-d input.
    """
    a, r = _pair(actual, reference)
    if a.ndim == 0:
        raise InputError("kl_divergence: expected at least a 1-d array of logits or probabilities, got a scalar")
    p = _softmax(r, axis) if logits else r
    q = _softmax(a, axis) if logits else a
    p, q = np.clip(p, 1e-12, None), np.clip(q, 1e-12, None)
    return float(np.mean(np.sum(p * np.log(p / q), axis=axis)))


def topk_agreement(actual: Any, reference: Any, k: int = 1, axis: int = -1) -> float:
    """Share of rows whose top-1 class under ``reference`` is among the top-``k`` of ``actual``, in [0, 1].

    ``k=1``: the arg-max matches (top-1 agreement); ``k=5``: the reference's
    arg-max is among the five largest of ``actual`` (top-5 agreement, as
    ImageNet top-5 accuracy counts a hit).

    Raises:
        InputError: the shapes differ, ``k < 1``, or a 0-d input.
    """
    a, r = _pair(actual, reference)
    if a.ndim == 0 or k < 1:
        raise InputError(f"topk_agreement: expected a >= 1-d array and k >= 1, got ndim {a.ndim}, k {k}")
    a, r = np.moveaxis(a, axis, -1), np.moveaxis(r, axis, -1)
    a, r = a.reshape(-1, a.shape[-1]), r.reshape(-1, r.shape[-1])
    if not a.size:
        return 1.0
    best = np.argmax(r, axis=-1)
    k = min(k, a.shape[-1])
    top = np.argsort(-a, axis=-1, kind="stable")[:, :k]
    return float(np.mean(np.any(top == best[:, None], axis=-1)))


def summary(actual: Any, reference: Any) -> dict[str, float]:
    """``{"max_abs", "max_rel", "cosine", "sqnr_db"}`` for one tensor (see each function).

    Raises:
        InputError: the shapes differ.
    """
    return {
        "max_abs": max_abs_error(actual, reference),
        "max_rel": max_rel_error(actual, reference),
        "cosine": cosine_similarity(actual, reference),
        "sqnr_db": sqnr_db(actual, reference),
    }
