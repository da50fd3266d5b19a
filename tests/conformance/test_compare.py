"""Comparison statistics and tolerance profiles, against NumPy computed by hand."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

from unified.conformance.compare import PROFILES, Tolerance, compare_outputs, effective_tolerance


def test_errors_ulps_and_required_tolerances_fp32():
    e = np.array([1.0, -2.0, 0.5, 100.0], np.float32)
    a = e.copy()
    a[1] = np.nextafter(np.nextafter(e[1], np.float32(0)), np.float32(0))  # 2 ULP towards zero
    a[3] = np.float32(100.01)
    (s,) = compare_outputs(["y"], [e], [a])
    diff = np.abs(a.astype(np.float64) - e.astype(np.float64))
    assert s.max_abs == pytest.approx(diff.max())
    assert s.max_rel == pytest.approx((diff / np.abs(e)).max())
    assert s.max_ulp == pytest.approx((diff / np.spacing(e).astype(np.float64)).max())
    assert s.required_atol == s.max_abs and s.required_rtol == s.max_rel
    # fp32 profile atol 1e-5 + rtol 1e-4 * 100 = 0.01001 > 0.00999...
    assert s.tolerance == PROFILES["float32"] and s.passed and s.mismatches == 0
    a[3] = np.float32(100.02)
    (s,) = compare_outputs(["y"], [e], [a])
    assert not s.passed and s.mismatches == 1


def test_fp16_profile_is_five_ulps():
    e = np.array([1.0, 1024.0], np.float16)
    ulp = np.spacing(e)
    five = (e + 5 * ulp).astype(np.float16)
    six = (e + 6 * ulp).astype(np.float16)
    assert compare_outputs(["y"], [e], [five])[0].passed
    bad = compare_outputs(["y"], [e], [six])[0]
    assert not bad.passed and bad.max_ulp == pytest.approx(6.0)


def test_int8_allows_one_step_int64_is_exact():
    e = np.array([-128, 0, 127], np.int8)
    assert compare_outputs(["q"], [e], [np.array([-127, 1, 126], np.int8)])[0].passed
    assert not compare_outputs(["q"], [e], [np.array([-126, 0, 127], np.int8)])[0].passed
    big = np.array([2**60 + 1], np.int64)
    s = compare_outputs(["i"], [big], [big - 1])[0]
    assert not s.passed and s.mismatches == 1  # beyond float64's 2**53, still caught


def test_nan_and_inf_must_match_exactly():
    e = np.array([np.nan, np.inf, -np.inf, 1.0], np.float32)
    assert compare_outputs(["y"], [e], [e.copy()])[0].passed
    s = compare_outputs(["y"], [e], [np.array([0.0, np.inf, np.inf, 1.0], np.float32)])[0]
    assert not s.passed and s.mismatches == 2 and s.reason == "NaN/inf pattern differs"


def test_shape_dtype_and_sequence_mismatches_are_reported():
    e = np.zeros((2, 3), np.float32)
    assert compare_outputs(["y"], [e], [np.zeros((3, 2), np.float32)])[0].reason == "shape [3, 2] != expected [2, 3]"
    assert "dtype float64 != expected float32" in compare_outputs(["y"], [e], [np.zeros((2, 3))])[0].reason
    stats = compare_outputs(["s"], [[e, e]], [[e, e + 1]])
    assert [x.name for x in stats] == ["s[0]", "s[1]"] and [x.passed for x in stats] == [True, False]
    assert not compare_outputs(["s"], [[e]], [e])[0].passed


def test_bfloat16_ulps_use_its_own_epsilon():
    e = np.array([1.0, 3.0], ml_dtypes.bfloat16)
    step = float(ml_dtypes.finfo(ml_dtypes.bfloat16).eps)  # 2**-7: one ULP at 1.0
    a = np.array([1.0 + 2 * step, 3.0], ml_dtypes.bfloat16)
    s = compare_outputs(["y"], [e], [a])[0]
    assert s.max_ulp == pytest.approx(2.0) and s.passed


def test_precedence_profile_case_delegate():
    case = Tolerance(atol=1e-7, rtol=1e-3)
    assert effective_tolerance("float32", case) == case
    assert effective_tolerance("float16", case) == PROFILES["float16"]  # finer than fp16 can round
    assert effective_tolerance("int64", case) == Tolerance()
    override = {"float32": {"atol": 1e-2, "rtol": 0.0}}
    assert effective_tolerance("float32", case, {"float32": Tolerance(atol=1e-2)}) == Tolerance(atol=1e-2)
    assert Tolerance.from_value(override["float32"]) == Tolerance(atol=1e-2)


def test_values_false_compares_only_shapes_and_dtypes():
    e = np.ones((2, 2), np.float32)
    (s,) = compare_outputs(["y"], [e], [e * 5], values=False)
    assert s.passed and "not compared" in s.reason
    (s,) = compare_outputs(["y"], [e], [np.ones((2, 3), np.float32)], values=False)
    assert not s.passed


def test_int4_outputs_compare_as_integers():
    """ml_dtypes int4/uint4 (NumPy kind "V") are integers: exact, errors in steps, no float ULP."""
    tol = effective_tolerance("int4", None, None)
    expected = np.array([-8, -1, 0, 7], dtype=ml_dtypes.int4)
    same, = compare_outputs(["y"], [expected], [expected.copy()], None, {"int4": tol})
    assert same.passed and same.max_abs == 0
    off = np.array([-8, 0, 0, 7], dtype=ml_dtypes.int4)
    wrong, = compare_outputs(["y"], [expected], [off], None, {"int4": Tolerance()})
    assert not wrong.passed and wrong.max_abs == 1.0 and wrong.max_ulp == 1.0 and wrong.mismatches == 1
    u = np.array([0, 15], dtype=ml_dtypes.uint4)
    assert compare_outputs(["y"], [u], [u.copy()])[0].passed
