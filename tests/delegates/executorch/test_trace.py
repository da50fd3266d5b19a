"""ExecuTorch's op spans in the session trace: ETDump through ``executorch.devtools``.

The program is loaded with ``enable_etdump=True`` when the session profiles;
``end_profiling()`` reads the ETDump and places its events inside the
partition span of the run that made them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from onnx import helper

from unified import InferenceSession, SessionOptions

from ...onnx_models import graph_model, rand


def test_etdump_events_land_inside_their_partition_spans(tmp_path):
    nodes = [
        helper.make_node("Relu", ["x"], ["r"], name="relu"),
        helper.make_node("Neg", ["r"], ["n"], name="neg"),
        helper.make_node("Add", ["n", "x"], ["y"], name="add"),
    ]
    model = graph_model(nodes, {"x": (np.float32, (4, 64))})
    opts = SessionOptions(enable_profiling=True, placement={"neg": "onnxruntime"}, use_cache=False)
    sess = InferenceSession(model, ["executorch", "onnxruntime"], opts)
    assert [p.delegate for p in sess.plan.partitions] == ["executorch", "onnxruntime", "executorch"]
    x = rand((4, 64))
    for _ in range(2):
        (y,) = sess.run(None, {"x": x})
    np.testing.assert_allclose(y, -np.maximum(x, 0) + x, rtol=1e-6)
    events = json.loads(Path(sess.end_profiling(tmp_path / "t.json")).read_text())["traceEvents"]
    parts = [e for e in events if e.get("cat") == "partition" and e["args"]["delegate"] == "executorch"]
    assert len(parts) == 4  # 2 partitions x 2 runs
    et_ops = [e for e in events if e.get("cat") == "op" and "etdump_ms" in e["args"]]
    # XNNPACK runs Relu as a clamp and Add as an ND add; one event per run each
    assert sorted({e["name"] for e in et_ops}) == ["Add (ND) #1", "Clamp (NC) #1"]
    assert len(et_ops) == 4
    calls = [e for e in events if e["name"] == "executorch Method::execute"]
    assert len(calls) == 4
    for e in et_ops + calls:
        assert any(p["ts"] <= e["ts"] and e["ts"] + e["dur"] <= p["ts"] + p["dur"] + 0.002 for p in parts), e
