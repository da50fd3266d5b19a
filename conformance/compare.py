"""Compare a delegate's outputs with the expected ones, Polygraphy style.

For each output the comparison reports, besides pass/fail, *how far off* it
was and *what tolerance would have passed*: max absolute error, max relative
error, max error in ULPs of the output dtype, the number of mismatching
elements, and the required ``atol`` (= max abs error, with rtol 0) and
``rtol`` (= max rel error, with atol 0), as Polygraphy's comparator reports
"minimum required tolerance" (``polygraphy/comparator/compare.py``).

An element passes when ``|actual - expected| <= atol + rtol * |expected|``
(NumPy ``allclose`` semantics) *or*, when the tolerance has a ``ulp`` bound,
when it is within that many ULPs of the expected value in the output dtype.
NaN matches NaN; infinities must match exactly.

Tolerance profiles (:data:`PROFILES`), by output dtype:

* float32 / float64: atol 1e-5, rtol 1e-4 (the issue's fp32 profile;
  float64 gets the same, it is at least as precise).
* float16 / bfloat16: 5 ULP of the output dtype (so the bound scales with the
  magnitude the way half-precision rounding does), plus atol of 5 ULP at 1.0
  below |x| < 1 where ULPs of subnormals would be meaninglessly tight.
* int8 / uint8 (QDQ outputs): +-1, one quantization step of rounding slack
  (the NNAPI CTS rule for quantized int8 outputs); the share of elements off
  by exactly one step is reported (``off_by_one``).
* every other integer, bool and string: exact.

Quantized cases (``unified.conformance.quantized_ops``,
``quantized_models``) give a tolerance with a ``step``: the output's
quantization step in output units (1 for an int8/uint8 output, the scale of
the ``DequantizeLinear`` that produces a float output). An element passes
within one step (float outputs get 1e-4 of a step of float32 rounding
slack), elements off by (0.5, 1] step are counted as ``off_by_one``, and
``min_pass`` (default 1.0) is the share of elements that must pass: whole
quantized models pass at 0.99.

A case may override the profile, and a delegate may override both (see
:func:`effective_tolerance`).

**fp16 compute budget** (:func:`fp16_budget`): a delegate that computes a
float32 model in float16 (Core ML's default ``compute_precision``, checked
with the ``coreml:mil-numpy`` evaluator) is held to the NNAPI CTS rule for
relaxed float32 computation -- 5 ULP of float16 per op, atol = rtol =
``5 * 2**-10`` (``TestHarness`` in the Android CTS,
``kRelaxedFloat32`` tolerance) -- grown with the case's depth ``d`` (nodes on
the longest path of the graph) as ``sqrt(d)``: each op adds an independent,
zero-mean round-to-nearest error of at most 5 ULP, so the error of ``d``
chained ops grows like a random walk, ``sqrt(d)`` times one op's (Higham,
*Accuracy and Stability of Numerical Algorithms*, 2nd ed., section 3.2, the
probabilistic ``sqrt(n) u`` bound). The worst-case ``d`` growth would allow
an 80 % error on ResNet-50 and check nothing. For a whole model the absolute
part is scaled by the output's largest magnitude ``max|expected|``: fp16
errors are relative to the magnitudes flowing through the graph, so an
output element near zero (a cancellation) carries the absolute error of the
large values it came from. A single-node case has depth 1: exactly the CTS
per-op rule.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from unified.onnx.quant import is_integer

__all__ = ["Tolerance", "OutputStats", "PROFILES", "profile_for", "effective_tolerance", "compare_outputs",
           "fp16_budget", "FP16_OP_TOLERANCE"]


@dataclass(frozen=True)
class Tolerance:
    """How close is close enough.

    Attributes:
        atol: absolute tolerance, in output units.
        rtol: relative tolerance (fraction of ``|expected|``).
        ulp: optional bound in units in the last place of the output dtype.
        step: the output's quantization step (output units): an element
            within one step passes, one off by (0.5, 1] step counts as
            off by one (for integer outputs the step is always 1).
        min_pass: share of elements that must be within tolerance (1.0: all).
    """

    atol: float = 0.0
    rtol: float = 0.0
    ulp: float | None = None
    step: float | None = None
    min_pass: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_value(cls, value: "Tolerance | Mapping[str, Any] | None") -> "Tolerance | None":
        """Accept a Tolerance, a ``{"atol":..., "rtol":..., "ulp":...}`` dict, or None."""
        if value is None or isinstance(value, Tolerance):
            return value
        return cls(float(value.get("atol", 0.0)), float(value.get("rtol", 0.0)), value.get("ulp"),
                   value.get("step"), float(value.get("min_pass", 1.0)))

    @property
    def quantized(self) -> bool:
        """A quantized-output tolerance (a ``step`` or a pass share below 1)."""
        return self.step is not None or self.min_pass < 1.0

    def __str__(self) -> str:
        parts = [f"atol={self.atol:g}", f"rtol={self.rtol:g}"]
        if self.ulp is not None:
            parts.append(f"ulp={self.ulp:g}")
        if self.step is not None:
            parts.append(f"step={self.step:g}")
        if self.min_pass < 1.0:
            parts.append(f"min_pass={self.min_pass:g}")
        return " ".join(parts)


_HALF_ATOL = 5 * float(np.finfo(np.float16).eps)

PROFILES: dict[str, Tolerance] = {
    "float32": Tolerance(atol=1e-5, rtol=1e-4),
    "float64": Tolerance(atol=1e-5, rtol=1e-4),
    "float16": Tolerance(atol=_HALF_ATOL, ulp=5),
    "bfloat16": Tolerance(atol=5 * 2.0**-7, ulp=5),
    "int8": Tolerance(atol=1, step=1),
    "uint8": Tolerance(atol=1, step=1),
}
"""Default tolerance per output dtype name; anything else compares exactly."""

EXACT = Tolerance()
_STEP_SLACK = 1e-4  # float32 rounding of (q - zero_point) * scale, relative to one step

FP16_OP_TOLERANCE = _HALF_ATOL
"""One op computed in float16: 5 ULP of float16 at 1.0 (``5 * 2**-10``), atol and rtol (NNAPI CTS relaxed)."""


def fp16_budget(depth: int, scale: float = 1.0) -> Tolerance:
    """The tolerance of a float32 graph computed in float16 (module docstring: "fp16 compute budget").

    Args:
        depth: nodes on the longest path of the graph (>= 1).
        scale: the output's largest magnitude for a whole model (absolute
            part scales with it), 1.0 for the per-op rule.

    Returns:
        ``Tolerance(atol = 5 * 2**-10 * sqrt(depth) * max(scale, 1), rtol = 5 * 2**-10 * sqrt(depth))``.
    """
    grown = FP16_OP_TOLERANCE * float(np.sqrt(max(int(depth), 1)))
    return Tolerance(atol=grown * max(float(scale), 1.0), rtol=grown)


def profile_for(dtype_name: str) -> Tolerance:
    """The profile tolerance of an output dtype (exact when none is listed)."""
    return PROFILES.get(dtype_name, EXACT)


def effective_tolerance(
    dtype_name: str,
    case: Tolerance | None = None,
    delegate: Mapping[str, Tolerance] | None = None,
) -> Tolerance:
    """The tolerance that applies to one output.

    Precedence, lowest first: the dtype profile, the case's own tolerance
    (for float32/float64 outputs only: half-precision outputs keep the 5-ULP
    profile, since a case's fp32-sized rtol such as onnx's 1e-3 is finer
    than 2 ULP of float16 (eps 9.8e-4); integer outputs stay exact or +-1; a quantized case tolerance, one with
    a ``step``, applies to int8/uint8 outputs too, with a step of 1),
    the delegate's override for that dtype (``delegate[dtype_name]`` or
    ``delegate["*"]``).
    """
    tol = profile_for(dtype_name)
    if case is not None and dtype_name in ("float32", "float64"):
        tol = case
    elif case is not None and case.quantized and dtype_name in ("int8", "uint8"):
        tol = Tolerance(atol=1, step=1, min_pass=case.min_pass)
    if delegate:
        override = delegate.get(dtype_name) or delegate.get("*")
        if override is not None:
            tol = Tolerance.from_value(override)
    return tol


@dataclass(frozen=True)
class OutputStats:
    """The comparison of one output.

    Attributes:
        name: output name.
        dtype / shape: of the expected value.
        passed: every element within tolerance (and shapes/dtypes agree).
        reason: why it failed when the numbers cannot be compared (shape or
            dtype mismatch, missing output), else "".
        max_abs: max |actual - expected|, output units.
        max_rel: max |actual - expected| / |expected| over elements with a
            nonzero expected value (inf when a zero was missed).
        max_ulp: max error in ULPs of the output dtype (integers: the abs error).
        mismatches: elements outside tolerance (NaN/inf mismatches included).
        size: number of elements.
        required_atol / required_rtol: the smallest atol (with rtol 0) and
            rtol (with atol 0) under which every element would pass.
        tolerance: the tolerance applied.
        off_by_one: elements off by exactly one quantization step (integer
            outputs: by 1; float outputs with a ``step``: by (0.5, 1] step);
            0 when the tolerance has no step.
    """

    name: str
    dtype: str
    shape: tuple[int, ...]
    passed: bool
    reason: str = ""
    max_abs: float = 0.0
    max_rel: float = 0.0
    max_ulp: float = 0.0
    mismatches: int = 0
    size: int = 0
    required_atol: float = 0.0
    required_rtol: float = 0.0
    tolerance: Tolerance = EXACT
    off_by_one: int = 0

    @property
    def off_by_one_share(self) -> float:
        """``off_by_one / size`` (0 for an empty output)."""
        return self.off_by_one / self.size if self.size else 0.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["shape"] = list(self.shape)
        d["off_by_one_share"] = self.off_by_one_share
        for k in ("max_abs", "max_rel", "max_ulp", "required_atol", "required_rtol"):
            d[k] = _json_float(d[k])
        return d


def _json_float(x: float) -> float | str:
    if np.isfinite(x):
        return float(x)
    return "inf" if x > 0 else ("-inf" if x < 0 else "nan")


def _dtype_label(value: np.ndarray) -> str:
    return value.dtype.name


def compare_outputs(
    names: Sequence[str],
    expected: Sequence[Any],
    actual: Sequence[Any],
    case_tolerance: Tolerance | None = None,
    delegate_tolerance: Mapping[str, Tolerance] | None = None,
    values: bool = True,
) -> list[OutputStats]:
    """Compare every output; sequence outputs compare element by element.

    Args:
        names: output names, in order.
        expected / actual: one value per output (array, list of arrays, or
            None for an empty optional).
        values: False compares shapes and dtypes only (random ops, whose
            expected values come from another random generator).

    Returns:
        One :class:`OutputStats` per output (per sequence element, named
        ``"name[i]"``).
    """
    stats: list[OutputStats] = []
    for name, e, a in zip(names, expected, actual):
        if not values and e is not None and not isinstance(e, (list, tuple)):
            stats.append(_compare_meta(name, np.asarray(e), a))
            continue
        stats.extend(_compare_value(name, e, a, case_tolerance, delegate_tolerance))
    return stats


def _compare_meta(name: str, e: np.ndarray, a: Any) -> OutputStats:
    shape = tuple(int(d) for d in e.shape)
    if a is None:
        return OutputStats(name, e.dtype.name, shape, False, "output missing", size=e.size)
    a = np.asarray(a)
    if a.shape != e.shape or a.dtype != e.dtype:
        return OutputStats(name, e.dtype.name, shape, False,
                           f"got {a.dtype} {list(a.shape)}, expected {e.dtype} {list(shape)} (values not compared)",
                           size=e.size)
    return OutputStats(name, e.dtype.name, shape, True, "values not compared (random op)", size=e.size)


def _compare_value(name, e, a, case_tol, del_tol) -> list[OutputStats]:
    if isinstance(e, (list, tuple)):
        if not isinstance(a, (list, tuple)) or len(a) != len(e):
            got = f"{type(a).__name__} of length {len(a)}" if isinstance(a, (list, tuple)) else type(a).__name__
            return [OutputStats(name, "sequence", (len(e),), False, f"expected a sequence of {len(e)} tensors, got {got}")]
        out = []
        for i, (ei, ai) in enumerate(zip(e, a)):
            out.extend(_compare_value(f"{name}[{i}]", ei, ai, case_tol, del_tol))
        return out or [OutputStats(name, "sequence", (0,), True)]
    if e is None:
        ok = a is None
        return [OutputStats(name, "optional", (), ok, "" if ok else "expected an empty optional, got a value")]
    return [compare_array(name, np.asarray(e), a, effective_tolerance(np.asarray(e).dtype.name, case_tol, del_tol))]


def compare_array(name: str, expected: np.ndarray, actual: Any, tol: Tolerance) -> OutputStats:
    """Compare one tensor output; see the module docstring for the rule."""
    dname = _dtype_label(expected)
    shape = tuple(int(d) for d in expected.shape)
    if actual is None:
        return OutputStats(name, dname, shape, False, "output missing", size=expected.size, tolerance=tol)
    actual = np.asarray(actual)
    if actual.shape != expected.shape:
        return OutputStats(
            name, dname, shape, False, f"shape {list(actual.shape)} != expected {list(shape)}",
            size=expected.size, tolerance=tol,
        )
    if expected.dtype.kind in "OSUb" or actual.dtype.kind in "OSU":
        if actual.dtype.kind != expected.dtype.kind and not (expected.dtype.kind in "OSU" and actual.dtype.kind in "OSU"):
            return OutputStats(name, dname, shape, False, f"dtype {actual.dtype} != expected {expected.dtype}",
                               size=expected.size, tolerance=tol)
        bad = int(np.sum(expected != actual)) if expected.size else 0
        return OutputStats(name, dname, shape, bad == 0, max_abs=float(bad > 0), mismatches=bad,
                           size=expected.size, tolerance=tol)
    if actual.dtype != expected.dtype:
        return OutputStats(name, dname, shape, False, f"dtype {actual.dtype} != expected {expected.dtype}",
                           size=expected.size, tolerance=tol)
    if expected.size == 0:
        return OutputStats(name, dname, shape, True, size=0, tolerance=tol)
    integer = is_integer(expected.dtype)  # ml_dtypes int4/uint4 too (NumPy kind "V")
    if integer:
        e64, a64 = expected.astype(np.float64), actual.astype(np.float64)
        # int64 beyond 2**53 loses precision in float64; compare exactly there
        diff = np.abs(e64 - a64)
        exact_bad = expected != actual
        diff = np.where(exact_bad & (diff == 0), 1.0, diff)
        ulp = diff
    else:
        e64, a64 = _as_float64(expected), _as_float64(actual)
        with np.errstate(invalid="ignore", over="ignore"):
            diff = np.abs(a64 - e64)
        with np.errstate(invalid="ignore", divide="ignore"):
            ulp = diff / _ulp(expected)
    nan_e, nan_a = np.isnan(e64), np.isnan(a64)
    inf_mismatch = (np.isinf(e64) | np.isinf(a64)) & (e64 != a64) & ~(nan_e | nan_a)
    nan_mismatch = nan_e ^ nan_a
    finite = ~(nan_e | nan_a) & ~(np.isinf(e64) | np.isinf(a64))
    diff_f = np.where(finite, diff, 0.0)
    ulp_f = np.where(finite, ulp, 0.0)
    abs_e = np.abs(np.where(finite, e64, 0.0))
    with np.errstate(invalid="ignore", divide="ignore"):
        rel = np.where(abs_e > 0, diff_f / np.where(abs_e > 0, abs_e, 1.0), np.where(diff_f > 0, np.inf, 0.0))
    ok = diff_f <= tol.atol + tol.rtol * abs_e
    if tol.ulp is not None:
        ok |= ulp_f <= tol.ulp
    off1 = 0
    if tol.step is not None:
        step = 1.0 if integer else float(tol.step) * (1 + _STEP_SLACK)
        ok |= diff_f <= step
        off1 = int(np.sum(finite & (diff_f > 0.5 * step) & (diff_f <= step)))
    ok = np.where(finite, ok, ~(nan_mismatch | inf_mismatch))
    mismatches = int(np.sum(~ok))
    passed = mismatches == 0 or (tol.min_pass < 1.0 and not np.any(nan_mismatch | inf_mismatch)
                                 and (expected.size - mismatches) >= tol.min_pass * expected.size)
    bad_special = bool(np.any(nan_mismatch | inf_mismatch))
    max_abs = float(np.max(diff_f)) if diff_f.size else 0.0
    max_rel = float(np.max(rel)) if rel.size else 0.0
    if bad_special:
        max_abs = max_rel = float("inf")
    return OutputStats(
        name,
        dname,
        shape,
        bool(passed),
        "NaN/inf pattern differs" if bad_special else "",
        max_abs=max_abs,
        max_rel=max_rel,
        max_ulp=float("inf") if bad_special else float(np.max(ulp_f)),
        mismatches=mismatches,
        size=int(expected.size),
        required_atol=max_abs,
        required_rtol=max_rel,
        tolerance=tol,
        off_by_one=off1,
    )


def _as_float64(x: np.ndarray) -> np.ndarray:
    try:
        return x.astype(np.float64)
    except (TypeError, ValueError):  # ml_dtypes float8 etc. go through float32
        return x.astype(np.float32).astype(np.float64)


def _ulp(x: np.ndarray) -> np.ndarray:
    """The unit in the last place of each element of ``x`` in its own dtype, as float64.

    float16/32/64: ``np.spacing``. bfloat16 and float8 (``ml_dtypes``, which
    NumPy cannot space): ``eps * 2**floor(log2|v|)``, floored at the
    smallest subnormal (IEEE 754 definition of the ULP of a binary format).
    """
    if x.dtype.kind == "f" and x.dtype.itemsize in (2, 4, 8) and x.dtype.name.startswith("float"):
        with np.errstate(invalid="ignore"):
            return np.abs(np.spacing(x)).astype(np.float64)
    import ml_dtypes  # a dependency of onnx

    info = ml_dtypes.finfo(x.dtype)
    v = np.abs(_as_float64(x))
    with np.errstate(divide="ignore", invalid="ignore"):
        exp = np.floor(np.log2(np.maximum(v, float(info.smallest_normal))))
    return np.maximum(float(info.eps) * np.exp2(exp), float(info.smallest_subnormal))
