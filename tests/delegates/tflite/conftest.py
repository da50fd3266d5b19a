"""Fixtures of the tflite delegate tests.

make_model: ``make_model(nodes, inputs, consts, outputs, opset=17)`` — an
    ONNX model (IR 10) from nodes, graph inputs ``{name: (dtype, shape)}``,
    initializers ``{name: array}`` and output names.
tfl_check: ``tfl_check(model, feeds, rtol=1e-3, atol=1e-4)`` — runs the model
    with ``delegates=["tflite"]`` and ``strict=True``, checks that tflite took
    every node, compares every output with ONNX Runtime called directly, and
    returns the session.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from unified import InferenceSession, SessionOptions


def _make_model(nodes, inputs, consts=None, outputs=("y",), opset=17):
    g = helper.make_graph(
        nodes,
        "case",
        [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(np.dtype(dt)), list(shape))
         for n, (dt, shape) in inputs.items()],
        [helper.make_empty_tensor_value_info(o) for o in outputs],
        initializer=[numpy_helper.from_array(np.asarray(v), k) for k, v in (consts or {}).items()],
    )
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], ir_version=10)
    return onnx.shape_inference.infer_shapes(model, strict_mode=True)  # types the graph outputs


@pytest.fixture(scope="session")
def make_model():
    return _make_model


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


def rand(shape, seed=0, lo=-1.0, hi=1.0, dtype=np.float32):
    return np.random.default_rng(seed).uniform(lo, hi, shape).astype(dtype)
