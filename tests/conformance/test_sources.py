"""The built-in sources: onnx-node tags and tolerances, op sweeps' expected values, QDQ, models."""

from __future__ import annotations

import warnings

import numpy as np
import onnx
import pytest

from unified.conformance import gather_cases, run_conformance
from unified.conformance.cases import collect_sources, oracle_outputs
from unified.conformance.op_sweeps import build_sweep, sweep_cases


def test_onnx_node_source_covers_every_node_test_with_its_tolerance():
    from onnx.backend.test.case.node import collect_testcases

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        testcases = {tc.name: tc for tc in collect_testcases()}
    cases = {c.name: c for c in collect_sources(["onnx-node"])["onnx-node"].cases()}
    assert set(cases) == set(testcases)
    abs_case = cases["test_abs"]
    assert (abs_case.op, abs_case.dtype, abs_case.tolerance.rtol) == ("Abs", "float32", testcases["test_abs"].rtol)
    expanded = cases["test_affine_grid_2d_expanded"]
    assert expanded.op == "AffineGrid" and "expanded" in expanded.tags
    assert not cases["test_training_dropout"].compare_values and cases["test_dropout_default"].compare_values


def test_fp16_sweep_expects_the_float32_result_rounded_to_float16():
    data = build_sweep("Softmax/last_axis", "float16", "ops/Softmax/last_axis/float16")
    (feeds, expected), = data.data_sets
    x = feeds["in0"].astype(np.float64)  # the float16 inputs, exactly
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    reference = (e / e.sum(axis=-1, keepdims=True)).astype(np.float16)
    assert expected[0].dtype == np.float16
    ulps = np.abs(expected[0].astype(np.float64) - reference.astype(np.float64)) / np.spacing(reference).astype(np.float64)
    assert ulps.max() <= 1


def test_qdq_sweep_is_an_int8_graph_onnx_runtime_runs_within_one_step():
    data = build_sweep("Conv/depthwise_k3_64", "int8", "ops/Conv/depthwise_k3_64/int8")
    ops = [n.op_type for n in data.model.graph.node]
    assert ops.count("DequantizeLinear") == 3 and ops[-1] == "QuantizeLinear" and "Conv" in ops
    assert data.model.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.INT8
    (feeds, _), = data.data_sets
    (q,) = oracle_outputs(data.model, feeds)
    # independent check: dequantize the int8 result and compare with the float32 conv of the same values
    fp32 = build_sweep("Conv/depthwise_k3_64", "float32", "ops/Conv/depthwise_k3_64/int8")
    (y,) = oracle_outputs(fp32.model, fp32.data_sets[0][0])
    scale = np.abs(y).max() / 127
    assert np.abs(q.astype(np.float32) * scale - y).max() < 4 * scale  # input, weight and output rounding


def test_every_sweep_builds_and_onnx_runtime_passes_it():
    cases = sweep_cases()
    assert {c.dtype for c in cases} == {"float32", "float16", "int8"}
    report = run_conformance(cases, ["onnxruntime"], isolate=False)
    bad = [(r.case, r.status, r.reason) for r in report.results if r.status not in ("pass", "unsupported")]
    assert bad == []
    assert sum(r.status == "pass" for r in report.results) >= len(cases) * 0.8


@pytest.mark.slow
def test_light_model_case_runs_through_the_delegate():
    cases = [c for c in collect_sources(["models"])["models"].cases() if c.id == "models/light/squeezenet"]
    report = run_conformance(cases, ["onnxruntime"], isolate=False)
    (r,) = report.results
    assert r.status == "pass" and r.outputs[0]["shape"][:2] == [1, 1000]


@pytest.mark.slow
def test_onnxruntime_makes_no_false_claim_on_onnx_node():
    """The issue's bar: the fallback delegate's supports() is truthful on every node test."""
    _, cases = gather_cases(["onnx-node"])
    report = run_conformance(cases, ["onnxruntime"], jobs=2)
    s = report.summary()["onnxruntime"]
    assert s.false_claims == 0, s.false_claim_cases
    assert s.claimed == s.count("pass") > 0.7 * len(cases)
