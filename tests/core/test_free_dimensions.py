"""SessionOptions.free_dimensions: pin symbolic dims, fold the shape math they fix."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

from unified import InferenceSession, SessionOptions
from unified.errors import InputError, ModelError

from .toy_delegate import ToyDelegate, ToyPlugin


def dynamic_model():
    """y = relu(reshape(x, [shape(x)[0], -1]) * 2): the Reshape target is computed at run time."""
    g = helper.make_graph(
        [
            helper.make_node("Shape", ["x"], ["s"]),
            helper.make_node("Gather", ["s", "zero"], ["b"], axis=0),
            helper.make_node("Unsqueeze", ["b", "axes"], ["b1"]),
            helper.make_node("Concat", ["b1", "minus_one"], ["target"], axis=0),
            helper.make_node("Reshape", ["x", "target"], ["r"]),
            helper.make_node("Mul", ["r", "two"], ["m"]),
            helper.make_node("Relu", ["m"], ["y"]),
        ],
        "dyn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", None])],
        initializer=[
            helper.make_tensor("zero", TensorProto.INT64, [], [0]),
            helper.make_tensor("axes", TensorProto.INT64, [1], [0]),
            helper.make_tensor("minus_one", TensorProto.INT64, [1], [-1]),
            helper.make_tensor("two", TensorProto.FLOAT, [], [2.0]),
        ],
    )
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)


def test_pinned_dims_fold_the_shape_chain_and_give_static_shapes(ort_reference):
    options = SessionOptions(free_dimensions={"batch": 2}, use_cache=False, plugins=[ToyPlugin(ToyDelegate())])
    sess = InferenceSession(dynamic_model(), ["toy", "onnxruntime"], options)
    assert sess.get_inputs()[0].shape == [2, 3, 4]
    assert sess.get_outputs()[0].shape == [2, 12]
    # Shape/Gather/Unsqueeze/Concat became one constant: only Reshape, Mul, Relu are left
    assert sorted(op for p in sess.plan.partitions for op in p.op_types) == ["Mul", "Relu", "Reshape"]
    x = np.random.default_rng(0).standard_normal((2, 3, 4)).astype(np.float32)
    np.testing.assert_array_equal(sess.run(None, {"x": x})[0], ort_reference(dynamic_model(), {"x": x})[0])
    with pytest.raises(InputError, match=r"input 'x' has shape \[5, 3, 4\], expected \[2, 3, 4\]"):
        sess.run(None, {"x": np.zeros((5, 3, 4), np.float32)})


def test_pinned_dims_leave_a_qdq_weight_to_each_delegate():
    """The load-time fold with free_dimensions folds shape chains, not a constant
    DequantizeLinear: a delegate that runs int8 weights (unfolded_ops) still sees it."""
    w = np.arange(-6, 6, dtype=np.int8).reshape(4, 3)
    g = helper.make_graph(
        [helper.make_node("DequantizeLinear", ["wq", "ws"], ["w"]), helper.make_node("MatMul", ["x", "w"], ["y"])],
        "qdq",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])],
        initializer=[helper.make_tensor("wq", TensorProto.INT8, [4, 3], w.flatten().tolist()),
                     helper.make_tensor("ws", TensorProto.FLOAT, [], [0.5])],
    )
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)
    sess = InferenceSession(model, ["onnxruntime"], SessionOptions(free_dimensions={"batch": 2}, use_cache=False))
    assert sorted(op for p in sess.plan.partitions for op in p.op_types) == ["DequantizeLinear", "MatMul"]
    x = np.random.default_rng(0).standard_normal((2, 4)).astype(np.float32)
    # the spec's (wq - 0) * 0.5; ONNX Runtime's default session fuses DQ + MatMul into an integer kernel
    np.testing.assert_allclose(sess.run(None, {"x": x})[0], x @ (w.astype(np.float32) * 0.5), rtol=1e-5)


def test_without_pinning_the_shape_chain_stays():
    sess = InferenceSession(dynamic_model(), ["onnxruntime"], SessionOptions(use_cache=False))
    assert "Shape" in sess.plan.partitions[0].op_types
    assert sess.get_inputs()[0].shape == ["batch", 3, 4]


def test_unknown_or_bad_free_dimension_is_a_model_error():
    with pytest.raises(ModelError, match=r"free dimension\(s\) \['batchsize'\] are not symbolic dims .* its symbolic dims are: batch"):
        InferenceSession(dynamic_model(), ["onnxruntime"], SessionOptions(free_dimensions={"batchsize": 2}))
    with pytest.raises(ModelError, match=r"free dimension 'batch' = 0; expected a positive int"):
        InferenceSession(dynamic_model(), ["onnxruntime"], SessionOptions(free_dimensions={"batch": 0}))
