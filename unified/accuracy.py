"""The accuracy gate of ``delegates="auto"``: is a candidate's output close enough to ONNX Runtime's?

``SessionOptions.tuning_tolerance`` picks the measure (see :func:`accuracy_gate`);
``unified.tune`` applies it to every candidate's first outputs.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping

import numpy as np

from unified.errors import TuningError
from unified.metrics import cosine_similarity, max_abs_error

__all__ = ["accuracy_gate", "Gate"]

Gate = Callable[[Mapping[str, Any], Mapping[str, Any]], "tuple[float, bool]"]



def accuracy_gate(tolerance: Mapping[str, float] | Callable[..., Any] | None) -> tuple[Gate, str]:
    """The gate function for ``SessionOptions.tuning_tolerance``, and its description.

    Args:
        tolerance: None or ``{"max_abs": k}`` (default k = 1e-3): per output,
            ``max|out - ref| / max(1, max|ref|) <= k``, the error reported being
            the largest such ratio; ``{"cosine": c}``: per output, the cosine
            similarity of the flattened arrays ``>= c``, the error being
            ``1 - min cosine``; or a callable ``(outputs, reference) -> bool |
            (bool, error)`` over dicts of output name -> array.

    Returns:
        ``(gate, text)``: ``gate(outputs, reference) -> (error, passed)``. NaN
        where the reference has NaN counts as equal; other NaN, or a shape
        mismatch, fails with error ``inf``.

    Raises:
        TuningError: a dict with another key or more than one, or a value that
            is not a finite number.
    """
    if callable(tolerance):
        return _callable_gate(tolerance), f"custom ({getattr(tolerance, '__qualname__', repr(tolerance))})"
    spec = {"max_abs": 1e-3} if tolerance is None else tolerance
    if not isinstance(spec, Mapping) or len(spec) != 1 or next(iter(spec)) not in ("max_abs", "cosine"):
        raise TuningError(
            f"tuning_tolerance {tolerance!r}: expected None, {{'max_abs': K}} (max abs error <= K x max(1, max|ref|)), "
            "{'cosine': C} (cosine similarity >= C) or a callable (outputs, reference) -> bool | (bool, error)"
        )
    kind, value = next(iter(spec.items()))
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise TuningError(f"tuning_tolerance {{{kind!r}: {value!r}}}: the value must be a finite number")
    if kind == "max_abs":
        return (lambda out, ref: _worst(out, ref, _scaled_abs, value)), f"max|out - ref| / max(1, max|ref|) <= {value:g}"
    return (lambda out, ref: _worst(out, ref, _cosine_gap, 1.0 - value)), f"1 - cosine(out, ref) <= {1.0 - value:g}"


def _callable_gate(fn: Callable[..., Any]) -> Gate:
    def gate(out, ref):
        answer = fn(out, ref)
        if isinstance(answer, tuple):
            ok, err = answer
            return float(err), bool(ok)
        return (0.0 if answer else math.inf), bool(answer)

    return gate


def _worst(out: Mapping[str, Any], ref: Mapping[str, Any], measure, limit: float) -> tuple[float, bool]:
    worst = 0.0
    for name, r in ref.items():
        try:
            a, b = np.asarray(out.get(name), dtype=np.float64), np.asarray(r, dtype=np.float64)
        except (TypeError, ValueError):
            return math.inf, False  # not a tensor (a sequence, a map): not comparable here
        if a.shape != b.shape:
            return math.inf, False
        if a.size:
            worst = max(worst, measure(a, b))
    return worst, bool(worst <= limit)


def _scaled_abs(a: np.ndarray, b: np.ndarray) -> float:
    finite = np.abs(b[np.isfinite(b)])
    scale = max(1.0, float(finite.max()) if finite.size else 1.0)
    return max_abs_error(a, b) / scale


def _cosine_gap(a: np.ndarray, b: np.ndarray) -> float:
    cosine = cosine_similarity(a, b)
    return math.inf if math.isnan(cosine) else 1.0 - cosine
