"""Fixtures of the tflite delegate tests.

make_model: ``tests.onnx_models.graph_model`` — an ONNX model (IR 10) from
    nodes, graph inputs ``{name: (dtype, shape)}``, initializers
    ``{name: array}`` and output names.
tfl_check: ``tfl_check(model, feeds, rtol=1e-3, atol=1e-4)`` — runs the model
    with ``delegates=["tflite"]`` and ``strict=True``, checks that tflite took
    every node, compares every output with ONNX Runtime called directly, and
    returns the session.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from unified import InferenceSession, SessionOptions

from ...onnx_models import graph_model


@pytest.fixture(scope="session")
def make_model():
    return graph_model


@pytest.fixture
def tfl_check(ort_reference, tmp_path):
    def check(model: onnx.ModelProto, feeds: dict, rtol: float = 1e-3, atol: float = 1e-4, exact: bool = False):
        sess = InferenceSession(model, delegates=["tflite"],
                                options=SessionOptions(strict=True, cache_dir=tmp_path / "cache"))
        assert sess.plan.node_counts() == {"tflite": len(model.graph.node)}
        got = sess.run(None, feeds)
        ref = ort_reference(model, feeds)
        assert len(got) == len(ref)
        for name, g, r in zip([o.name for o in model.graph.output], got, ref):
            assert g.shape == r.shape and g.dtype == r.dtype, name
            if exact:
                np.testing.assert_array_equal(g, r, err_msg=name)
            else:
                np.testing.assert_allclose(g, r, rtol=rtol, atol=atol, err_msg=name)
        return sess

    return check
