"""Fixtures of the executorch delegate tests.

The whole folder is skipped (with the reason) where torch or executorch is
not installed.

make_model: ``make_model(nodes, inputs, consts=None, outputs=("y",), opset=17)``
    — an ONNX model (IR 10) from nodes, graph inputs ``{name: (dtype, shape)}``
    (a dim may be a str: a symbolic dim), initializers ``{name: array}`` and
    output names (typed by ONNX shape inference). Every graph input passes an
    Identity first, so nodes sharing an input form one partition.
et_check: ``et_check(model, feeds, options=None, rtol=1e-3, atol=1e-4)`` —
    runs the model with ``delegates=[("executorch", options)]`` and
    ``strict=True``, checks that one executorch partition took every node,
    compares every output (shape, dtype, values) with ONNX Runtime called
    directly, naming the output (so the op) that differs, and returns the
    session.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper

pytest.importorskip("torch", reason="the executorch delegate needs torch")
pytest.importorskip("executorch", reason="the executorch delegate needs executorch")

from unified import InferenceSession, SessionOptions  # noqa: E402

from ...onnx_models import graph_model  # noqa: E402


def _make_model(nodes, inputs, consts=None, outputs=("y",), opset=17):
    # Each graph input first passes an Identity: the planner groups nodes through
    # their producers, so ops reading only graph inputs would each be a partition
    # (and a lowering) of their own.
    roots = [helper.make_node("Identity", [n], [n + "__root"]) for n in inputs]
    for node in nodes:
        for i, x in enumerate(node.input):
            if x in inputs:
                node.input[i] = x + "__root"
    return graph_model(roots + list(nodes), inputs, consts, outputs, opset, data_prop=True)


@pytest.fixture(scope="session")
def make_model():
    return _make_model


@pytest.fixture
def et_check(ort_reference, tmp_path):
    def check(model: onnx.ModelProto, feeds: dict, options: dict | None = None, rtol: float = 1e-3,
              atol: float = 1e-4):
        sess = InferenceSession(
            model,
            delegates=[("executorch", options or {})],
            options=SessionOptions(strict=True, cache_dir=tmp_path / "cache"),
        )
        assert [p.delegate for p in sess.plan.partitions] == ["executorch"]
        assert len(sess.plan.partitions[0].nodes) == len(model.graph.node)
        got = sess.run(None, feeds)
        ref = ort_reference(model, feeds)
        assert len(got) == len(ref)
        for name, g, r in zip([o.name for o in model.graph.output], got, ref):
            assert g.shape == r.shape, f"{name}: shape {g.shape} != ONNX Runtime's {r.shape}"
            assert g.dtype == r.dtype, f"{name}: dtype {g.dtype} != ONNX Runtime's {r.dtype}"
            np.testing.assert_allclose(g, r, rtol=rtol, atol=atol, err_msg=name)
        return sess

    return check
