"""The executorch delegate compiles static shapes only (``static_shapes``):
it claims what it could lower once every dim is known, declines inputs read
at compile time that come from tensor data, and runs dynamic models through
the core's specialization, at several input shapes in one session."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from unified import InferenceSession
from unified.delegate import CompileOptions
from unified.errors import DelegateError
from unified.graph import Graph
from unified.plugins import registry

from ...onnx_models import rand


def _delegate():
    return registry().get("executorch")


def _view(model: onnx.ModelProto, op_type: str):
    return next(v for v in Graph(model).node_views if v.op_type == op_type)


def _flatten_by_shape(make_model) -> onnx.ModelProto:
    """``x (batch, 3, 4) -> Reshape(x, concat(Shape(x)[0], [-1])) -> Relu``: shape arithmetic on a dynamic dim."""
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Gather", ["s", "zero"], ["b"], axis=0),
        helper.make_node("Unsqueeze", ["b", "ax"], ["b1"]),
        helper.make_node("Concat", ["b1", "minus1"], ["target"], axis=0),
        helper.make_node("Reshape", ["x", "target"], ["r"]),
        helper.make_node("Relu", ["r"], ["y"]),
    ]
    consts = {"zero": np.array(0, np.int64), "ax": np.array([0], np.int64), "minus1": np.array([-1], np.int64)}
    return make_model(nodes, {"x": (np.float32, ("batch", 3, 4))}, consts, opset=17)


def test_declares_static_shapes():
    assert _delegate().static_shapes is True


def test_data_dependent_reshape_shape_is_declined(make_model):
    model = make_model([helper.make_node("Reshape", ["x", "shape"], ["y"])],
                       {"x": (np.float32, (2, 6)), "shape": (np.int64, (2,))})
    answer = _delegate().supports(_view(model, "Reshape"))
    assert not answer.ok
    assert "data-dependent Reshape shape: 'shape__root' is computed from tensor data" in answer.reason


def test_data_dependent_expand_and_slice_are_declined(make_model):
    model = make_model([helper.make_node("Expand", ["x", "shape"], ["e"]),
                        helper.make_node("Slice", ["e", "starts", "ends"], ["y"])],
                       {"x": (np.float32, (1, 4)), "shape": (np.int64, (2,)), "starts": (np.int64, (1,)),
                        "ends": (np.int64, (1,))})
    assert "data-dependent Expand shape" in _delegate().supports(_view(model, "Expand")).reason
    assert "data-dependent Slice starts" in _delegate().supports(_view(model, "Slice")).reason


def test_shape_derived_reshape_is_claimed(make_model):
    model = _flatten_by_shape(make_model)
    view = _view(model, "Reshape")
    assert view.inputs[1].shape_derived and view.inputs[1].const is None
    assert _delegate().supports(view).ok


@pytest.mark.parametrize(
    "node",
    [helper.make_node("Conv", ["x", "w"], ["y"], auto_pad="SAME_UPPER"),
     helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[3, 3], auto_pad="SAME_LOWER", strides=[2, 2]),
     helper.make_node("Squeeze", ["x"], ["y"])],
)
def test_symbolic_dims_are_claimed_when_known_after_specialization(make_model, node):
    model = make_model([node], {"x": (np.float32, ("n", 2, "h", "w"))}, {"w": np.zeros((2, 2, 3, 3), np.float32)})
    assert _delegate().supports(_view(model, node.op_type)).ok


def test_compile_refuses_symbolic_dims(make_model):
    model = make_model([helper.make_node("Relu", ["x"], ["y"])], {"x": (np.float32, ("batch", 3))})
    with pytest.raises(DelegateError, match=r"executorch compiles static shapes only; partition input 'x' has shape \[batch, 3\]"):
        _delegate().compile(model, CompileOptions("cpu"))


def test_two_batch_sizes_in_one_session(make_model, options, ort_reference):
    model = _flatten_by_shape(make_model)
    options.strict = True
    sess = InferenceSession(model, delegates=["executorch"], options=options)
    assert {p.delegate for p in sess.plan.partitions} == {"executorch"}
    for batch in (2, 5):
        feeds = {"x": rand((batch, 3, 4), seed=batch)}
        got = sess.run(None, feeds)[0]
        ref = ort_reference(model, feeds)[0]
        assert got.shape == ref.shape == (batch, 12)
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)


def test_free_dimensions_pin_a_dynamic_conv(make_model, options, ort_reference):
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c"], ["y"])]
    model = make_model(nodes, {"x": (np.float32, ("n", 3, "h", "w"))}, {"w": rand((4, 3, 3, 3), 1)})
    options.strict = True
    options.free_dimensions = {"n": 1, "h": 8, "w": 6}
    sess = InferenceSession(model, delegates=["executorch"], options=options)
    assert [p.delegate for p in sess.plan.partitions] == ["executorch"]
    feeds = {"x": rand((1, 3, 8, 6), seed=3)}
    np.testing.assert_allclose(sess.run(None, feeds)[0], ort_reference(model, feeds)[0], rtol=1e-4, atol=1e-5)


def test_int64_shape_output_keeps_its_type(make_model, options, ort_reference):
    model = make_model([helper.make_node("Shape", ["x"], ["s"]), helper.make_node("Relu", ["x"], ["y"])],
                       {"x": (np.float32, ("batch", 3))}, outputs=("s", "y"))
    options.strict = True
    sess = InferenceSession(model, delegates=["executorch"], options=options)
    feeds = {"x": rand((4, 3), seed=4)}
    got = sess.run(None, feeds)
    assert got[0].dtype == np.int64 and list(got[0]) == [4, 3]
    assert got[1].dtype == np.float32 and got[1].shape == (4, 3)
    assert TensorProto.INT64 == model.graph.output[0].type.tensor_type.elem_type
