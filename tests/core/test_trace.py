"""The profiling trace: one Chrome trace-event JSON per session (``unified.trace``).

A two-delegate model (reference and onnxruntime partitions, placed with
``SessionOptions.placement``) runs with ``enable_profiling``; the file
``end_profiling()`` writes is checked against the Trace Event Format
(Google's "Trace Event Format" document, JSON Object Format: ``traceEvents``,
``ph`` "X" complete events with ``ts``/``dur`` in microseconds, "M" metadata
events), for nesting, for coverage of each run by named spans, and for
per-op spans from ONNX Runtime's profiler and the reference delegate (with
simulated cycles). Perfetto's Python trace processor needs its
``trace_processor_shell`` binary, which it downloads at first use; there is
no network here, so the file is validated structurally only.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper

import unified
from unified.cli import main

from ..onnx_models import graph_model, rand, relu_neg

PH = {"X", "M"}
CATEGORIES = {"session", "compile", "run", "partition", "boundary", "delegate", "op"}


def _model() -> onnx.ModelProto:
    """Conv -> Relu -> MatMul -> Add -> Softmax; the Relu and Add go to ONNX Runtime by placement."""
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("Reshape", ["r", "shape"], ["f"], name="flatten"),
        helper.make_node("MatMul", ["f", "m"], ["mm"], name="matmul"),
        helper.make_node("Add", ["mm", "bias"], ["a"], name="add"),
        helper.make_node("Softmax", ["a"], ["y"], name="softmax", axis=-1),
    ]
    consts = {
        "w": rand((8, 3, 3, 3), seed=1),
        "b": rand((8,), seed=2),
        "shape": np.array([1, 8 * 16 * 16], np.int64),
        "m": rand((8 * 16 * 16, 10), seed=3, lo=-0.05, hi=0.05),
        "bias": rand((10,), seed=4),
    }
    return graph_model(nodes, {"x": (np.float32, (1, 3, 16, 16))}, consts)


def _session(tmp_path: Path, **extra) -> unified.InferenceSession:
    opts = unified.SessionOptions(
        enable_profiling=True,
        placement={"relu": "onnxruntime", "add": "onnxruntime"},
        cache_dir=tmp_path / "cache",
        **extra,
    )
    return unified.InferenceSession(_model(), ["reference", "onnxruntime"], opts)


def _check_format(trace: dict) -> list[dict]:
    """Trace Event Format checks; returns the complete events."""
    assert set(trace) >= {"traceEvents", "displayTimeUnit"} and trace["displayTimeUnit"] in ("ms", "ns")
    events = trace["traceEvents"]
    assert isinstance(events, list) and events
    for e in events:
        assert e["ph"] in PH, e
        assert isinstance(e["name"], str) and e["name"], e
        assert isinstance(e["pid"], int) and isinstance(e["tid"], int), e
        assert isinstance(e.get("args", {}), dict), e
        if e["ph"] == "M":
            assert e["name"] in ("process_name", "thread_name") and isinstance(e["args"]["name"], str)
            continue
        assert e["cat"] in CATEGORIES, e
        assert isinstance(e["ts"], (int, float)) and isinstance(e["dur"], (int, float)), e
        assert e["ts"] >= 0 and e["dur"] >= 0, e
    complete = [e for e in events if e["ph"] == "X"]
    named = {(e["pid"], e["tid"]) for e in events if e["ph"] == "M" and e["name"] == "thread_name"}
    assert {(e["pid"], e["tid"]) for e in complete} <= named  # every track has a name
    return complete


def _inside(e: dict, outer: dict, slack_us: float = 0.002) -> bool:
    return e["ts"] >= outer["ts"] - slack_us and e["ts"] + e["dur"] <= outer["ts"] + outer["dur"] + slack_us


def _union(spans: list[tuple[float, float]]) -> float:
    total, end = 0.0, -np.inf
    for s, e in sorted(spans):
        if e > end:
            total += e - max(s, end)
            end = e
    return total


def test_trace_of_a_reference_and_onnxruntime_session(tmp_path):
    sess = _session(tmp_path)
    assert [p.delegate for p in sess.plan.partitions] == ["reference", "onnxruntime", "reference", "onnxruntime",
                                                          "reference"]
    x = rand((1, 3, 16, 16), seed=5)
    walls = []
    for _ in range(5):
        start = time.perf_counter()
        (y,) = sess.run(None, {"x": x})
        walls.append((time.perf_counter() - start) * 1e6)
    path = sess.end_profiling(tmp_path / "trace.json")
    assert path == str(tmp_path / "trace.json") and sess.end_profiling() == ""  # ORT: ended once
    ref = unified.InferenceSession(_model(), ["onnxruntime"]).run(None, {"x": x})[0]
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-5)  # profiling changes no numbers

    complete = _check_format(json.loads(Path(path).read_text()))
    runs = sorted((e for e in complete if e["cat"] == "run"), key=lambda e: e["ts"])
    assert [r["name"] for r in runs] == [f"run {k}" for k in range(1, 6)]
    # the run span is the caller's wall time, bar the call itself; a run of a few ms can lose
    # a scheduler time slice outside its span on a loaded machine, so most runs, not every one
    covered = [r["dur"] >= 0.95 * wall for r, wall in zip(runs, walls)]
    assert sum(covered) >= 3, list(zip([r["dur"] for r in runs], walls))
    for run in runs:
        inside = [e for e in complete if e is not run and e["tid"] == run["tid"] and e["ts"] >= run["ts"]
                  and e["ts"] < run["ts"] + run["dur"]]
        assert all(_inside(e, run) for e in inside), "an event of the run pokes out of its run span"
        children = [e for e in inside if e["cat"] in ("boundary", "partition")]
        covered = _union([(e["ts"], e["ts"] + e["dur"]) for e in children])
        assert covered >= 0.95 * run["dur"], (run["name"], covered, run["dur"])
        parts = [e for e in children if e["cat"] == "partition"]
        assert [p["args"]["delegate"] for p in sorted(parts, key=lambda e: e["ts"])] == [
            "reference", "onnxruntime", "reference", "onnxruntime", "reference"]
        assert {e["name"] for e in children if e["cat"] == "boundary"} >= {
            "check inputs", "hand-off to p0", "check p0 outputs", "hand-off to p4", "collect outputs"}
        for op in (e for e in inside if e["cat"] in ("op", "delegate")):
            assert any(_inside(op, p) and p["args"]["delegate"] in op["args"]["partition"] for p in parts), op

    ops = [e for e in complete if e["cat"] == "op"]
    ort_ops = {e["name"]: e for e in ops if e["args"]["partition"].endswith("onnxruntime")}
    ref_ops = {e["name"]: e for e in ops if e["args"]["partition"].endswith("reference")}
    assert set(ort_ops) == {"relu", "add"} and ort_ops["relu"]["args"]["op_type"] == "Relu"
    assert ort_ops["add"]["args"]["provider"] == "CPUExecutionProvider"
    assert sum(e["args"]["partition"].endswith("onnxruntime") for e in ops) == 2 * len(runs)
    assert set(ref_ops) >= {"conv", "matmul", "softmax"}
    # the reference delegate's cycles are npu_sim's own numbers for that op
    stats = {o["name"]: o for p in sess.profile if p.delegate == "reference" for o in p.stats["ops"]}
    for name in ("conv", "matmul", "softmax"):
        assert ref_ops[name]["args"]["cycles"] == stats[name]["cycles"] > 0
        assert ref_ops[name]["args"]["energy_pj"] == stats[name]["energy_pj"]
    conv = ref_ops["conv"]["args"]
    assert conv["macs"] == 8 * 16 * 16 * 3 * 3 * 3  # output elements x (C_in x kH x kW)
    assert conv["cycles"] == conv["compute_cycles"] + conv["stall_cycles"]

    compiles = [e for e in complete if e["cat"] == "compile" and e["name"].startswith("compile p")]
    assert sorted(e["name"] for e in compiles) == [
        "compile p0 reference", "compile p1 onnxruntime", "compile p2 reference", "compile p3 onnxruntime",
        "compile p4 reference"]
    assert all(e["args"]["cache_hit"] is False for e in compiles)
    assert max(e["ts"] + e["dur"] for e in compiles) <= runs[0]["ts"]


def test_cache_hits_and_file_name_prefix(tmp_path, monkeypatch):
    pytest.importorskip("ai_edge_litert")  # onnxruntime and reference partitions are not cached; tflite's are
    monkeypatch.chdir(tmp_path)
    opts = dict(enable_profiling=True, placement={"y": "onnxruntime"}, cache_dir=tmp_path / "cache")
    first = unified.InferenceSession(relu_neg(), ["tflite", "onnxruntime"], unified.SessionOptions(**opts))
    first.end_profiling(tmp_path / "first.json")
    sess = unified.InferenceSession(
        relu_neg(), ["tflite", "onnxruntime"], unified.SessionOptions(profile_file_prefix="mine_", **opts)
    )
    path = sess.end_profiling()
    assert Path(path).parent == Path(".") and Path(path).name.startswith("mine__") and path.endswith(".json")
    for trace, hit in ((tmp_path / "first.json", False), (tmp_path / path, True)):
        complete = _check_format(json.loads(trace.read_text()))
        compiles = {e["name"]: e["args"] for e in complete if e["name"].startswith("compile p")}
        assert compiles["compile p0 tflite"]["cache_hit"] is hit and compiles["compile p1 onnxruntime"]["cache_hit"] is False
        assert any(e["name"] == "tflite.load (cache hit)" for e in complete) is hit
        assert any(e["name"] == "tflite.compile" for e in complete) is not hit
        assert any(e["name"] == "cache key and get" and e["args"]["hit"] is hit for e in complete)
        assert not any(e["cat"] == "run" for e in complete)


def test_static_shape_delegate_specializes_inside_the_first_run(tmp_path):
    pytest.importorskip("ai_edge_litert")
    model = graph_model(
        [helper.make_node("Relu", ["x"], ["r"], name="relu"), helper.make_node("Neg", ["r"], ["y"], name="neg")],
        {"x": (np.float32, ("n", 4))},
    )
    opts = unified.SessionOptions(enable_profiling=True, placement={"neg": "onnxruntime"}, use_cache=False)
    sess = unified.InferenceSession(model, ["tflite", "onnxruntime"], opts)
    sess.run(None, {"x": rand((2, 4))})
    complete = _check_format(json.loads(Path(sess.end_profiling(tmp_path / "t.json")).read_text()))
    run = next(e for e in complete if e["cat"] == "run")
    spec = [e for e in complete if e["name"] == "compile p0 tflite (specialization)"]
    assert len(spec) == 1 and _inside(spec[0], run)
    assert any(e["name"] == "specialize" and e["args"]["shapes"] == "x[2,4]" for e in complete)
    assert {e["name"] for e in complete if e["cat"] == "delegate"} >= {"litert invoke"}


def test_profiling_off_records_nothing(tmp_path):
    sess = unified.InferenceSession(_model(), ["onnxruntime"], unified.SessionOptions(use_cache=False))
    sess.run(None, {"x": rand((1, 3, 16, 16))})
    assert sess.end_profiling() == "" and sess.profile[0].runs == 0
    assert not list(tmp_path.iterdir())


def test_cli_run_trace(tmp_path, capsys):
    model = tmp_path / "m.onnx"
    onnx.save(_model(), model)
    out = tmp_path / "out" / "trace.json"
    argv = ["run", str(model), "--delegates", "reference,onnxruntime", "--place", "relu=onnxruntime",
            "--no-cache", "--repeat", "2", "--trace", str(out)]
    assert main(argv) == 0
    assert f"wrote trace {out}" in capsys.readouterr().out
    complete = _check_format(json.loads(out.read_text()))
    assert sum(e["cat"] == "run" for e in complete) == 2
    assert {e["args"]["partition"] for e in complete if e["cat"] == "op"} == {"p0 reference", "p1 onnxruntime",
                                                                             "p2 reference"}
