"""The runner: statuses from real delegates and deliberately broken ones, in worker processes."""

from __future__ import annotations

import numpy as np
import pytest

from unified.conformance import ConformanceError, run_conformance
from unified.conformance.cases import collect_sources

from .conftest import BROKEN, TOY_SOURCE


def _by(report):
    return {(r.delegate, r.case): r for r in report.results}


def test_wrong_numbers_fail_and_abort_errors_while_the_run_goes_on(node_case):
    cases = [node_case(n) for n in ("test_add", "test_add_bcast", "test_relu", "test_add_uint8")]
    report = run_conformance(cases, ["wrong_add", "abort_add", "onnxruntime"], plugins=[BROKEN], jobs=2)
    res = _by(report)
    assert len(report.results) == 3 * len(cases)

    wrong = res[("wrong_add", "onnx-node/test_add")]
    assert wrong.status == "fail"
    data = node_case("test_add").loader()
    (inputs, expected), = data.data_sets
    # the broken kernel adds 1 to every element: error exactly 1 everywhere
    (out,) = wrong.outputs
    assert out["mismatches"] == out["size"] == expected[0].size
    assert out["max_abs"] == pytest.approx(1.0, abs=1e-6)
    assert out["required_atol"] == pytest.approx(1.0, abs=1e-6)
    assert res[("wrong_add", "onnx-node/test_add_bcast")].status == "fail"

    aborted = res[("abort_add", "onnx-node/test_add")]
    assert aborted.status == "error" and aborted.phase == "worker"
    assert "SIGABRT" in aborted.reason
    assert res[("abort_add", "onnx-node/test_add_bcast")].status == "error"

    # the run went on: ONNX Runtime passes the same case against onnx's shipped outputs
    assert res[("onnxruntime", "onnx-node/test_add")].status == "pass"
    assert np.allclose(inputs["x"] + inputs["y"], expected[0])

    relu = res[("wrong_add", "onnx-node/test_relu")]
    assert relu.status == "unsupported" and "no kernel for op Relu" in relu.reason
    uint8 = res[("wrong_add", "onnx-node/test_add_uint8")]
    assert uint8.status == "unsupported" and "uint8" in uint8.reason

    summary = report.summary()
    assert summary["wrong_add"].false_claims == 2
    assert summary["wrong_add"].ops_claimed == 1 and summary["wrong_add"].ops_conformant == 0
    assert summary["abort_add"].false_claim_cases == ["onnx-node/test_add", "onnx-node/test_add_bcast"]
    assert summary["onnxruntime"].false_claims == 0


@pytest.mark.slow
def test_a_hang_becomes_an_error_at_the_time_limit(node_case):
    cases = [node_case("test_add"), node_case("test_add_bcast")]
    report = run_conformance(cases, ["hang_add", "onnxruntime"], plugins=[BROKEN], jobs=1, timeout=2.0)
    res = _by(report)
    hung = res[("hang_add", "onnx-node/test_add")]
    assert hung.status == "error" and "timed out after 2 s" in hung.reason
    assert 2.0 <= hung.seconds < 30
    assert res[("onnxruntime", "onnx-node/test_add")].status == "pass"
    assert res[("onnxruntime", "onnx-node/test_add_bcast")].status == "pass"


@pytest.mark.slow
def test_a_framework_import_does_not_count_against_the_case_time_limit(node_case):
    """``Delegate.preload`` (3 s here) runs before the first case's 2 s limit starts."""
    cases = [node_case("test_add"), node_case("test_add_bcast")]
    report = run_conformance(cases, ["slow_import_add"], plugins=[BROKEN], jobs=1, timeout=2.0)
    assert [(r.status, r.reason) for r in report.results] == [("pass", ""), ("pass", "")]
    assert all(r.seconds < 2.0 for r in report.results)


def test_compile_only_is_compiled_and_a_compile_error_is_an_error(node_case):
    report = run_conformance([node_case("test_add")], ["compile_only_add", "raise_add"], plugins=[BROKEN],
                             isolate=False)
    res = _by(report)
    compiled = res[("compile_only_add", "onnx-node/test_add")]
    assert compiled.status == "compiled"
    assert "numerics skipped: needs macOS (test double)" in compiled.reason
    assert compiled.claimed and not compiled.false_claim
    raised = res[("raise_add", "onnx-node/test_add")]
    assert raised.status == "error" and raised.phase == "compile"
    assert "cannot compile anything" in raised.reason
    assert report.delegates["compile_only_add"]["executes"] is False


def test_unknown_delegate_names_the_registered_ones(node_case):
    with pytest.raises(ConformanceError, match=r"unknown delegate\(s\) \['nope'\]; registered: .*onnxruntime"):
        run_conformance([node_case("test_add")], ["nope"])


def test_a_plugin_contributed_source_runs_in_workers():
    sources = collect_sources(["toy-add"], plugins=[TOY_SOURCE])
    cases = list(sources["toy-add"].cases())
    assert [c.id for c in cases] == ["toy-add/same", "toy-add/row", "toy-add/scalar"]
    report = run_conformance(cases, ["onnxruntime", "wrong_add"], plugins=[TOY_SOURCE, BROKEN], jobs=2)
    statuses = {(r.delegate, r.case): r.status for r in report.results}
    assert all(statuses[("onnxruntime", c.id)] == "pass" for c in cases)
    assert all(statuses[("wrong_add", c.id)] == "fail" for c in cases)


def test_unknown_source_lists_the_known_ones():
    with pytest.raises(ConformanceError, match=r"unknown conformance source\(s\) \['nope'\]; available: .*onnx-node"):
        collect_sources(["nope"])


def test_a_comparison_bug_is_an_error_of_the_case_not_a_dead_worker(node_case, monkeypatch):
    import unified.conformance.execute as execute

    def broken(*args, **kwargs):
        raise ValueError("data type <class 'ml_dtypes.int4'> not inexact")

    monkeypatch.setattr(execute, "compare_outputs", broken)
    report = run_conformance([node_case("test_add")], ["onnxruntime"], isolate=False)
    r = report.results[0]
    assert (r.status, r.phase) == ("error", "compare")
    assert r.reason.startswith("the comparison itself failed (a conformance bug): ValueError: data type")
