"""Sequence and optional values: typed, probed by onnxruntime, declined by tensor-only delegates."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

from unified import InferenceSession, SessionOptions
from unified.errors import InputError

from .toy_delegate import ToyDelegate, ToyPlugin


def seq_model():
    seq_t = helper.make_sequence_type_proto(helper.make_tensor_type_proto(TensorProto.FLOAT, [None]))
    g = helper.make_graph(
        [
            helper.make_node("SequenceAt", ["s", "i"], ["t"]),
            helper.make_node("Relu", ["t"], ["y"]),
            helper.make_node("SequenceLength", ["s"], ["n"]),
        ],
        "seq",
        [helper.make_value_info("s", seq_t), helper.make_tensor_value_info("i", TensorProto.INT64, [])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None]), helper.make_tensor_value_info("n", TensorProto.INT64, [])],
    )
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)


def test_sequence_input_runs_and_is_typed(ort_reference):
    sess = InferenceSession(seq_model(), ["toy", "onnxruntime"], SessionOptions(plugins=[ToyPlugin(ToyDelegate())], use_cache=False))
    assert sess.get_inputs()[0].type == "seq(tensor(float))"
    # the tensor-only toy delegate declines the sequence nodes with a reason, and takes the Relu
    assert sess.plan.assignment() == {"SequenceAt_0": "onnxruntime", "Relu_1": "toy", "SequenceLength_2": "onnxruntime"}
    reasons = {r.node: r.reason for r in sess.plan.rejections}
    assert "toy runs tensors only; ['s'] are sequence/optional/map values" in reasons["SequenceLength_2"]
    items = [np.array([-1.0, 2.0], np.float32), np.array([3.0, -4.0, 5.0], np.float32)]
    feeds = {"s": items, "i": np.array(1, np.int64)}
    y, n = sess.run(None, feeds)
    want_y, want_n = ort_reference(seq_model(), feeds)
    np.testing.assert_array_equal(y, want_y)
    assert n == want_n == 2


def test_sequence_input_errors_name_the_element():
    sess = InferenceSession(seq_model(), ["onnxruntime"], SessionOptions(use_cache=False))
    with pytest.raises(InputError, match=r"input 's' must be a list of arrays \(seq\(tensor\(float\)\)\), got ndarray"):
        sess.run(None, {"s": np.zeros(3, np.float32), "i": np.array(0, np.int64)})
    with pytest.raises(InputError, match=r"input 's'\[1\] has dtype float64, expected float32"):
        sess.run(None, {"s": [np.zeros(2, np.float32), np.zeros(2)], "i": np.array(0, np.int64)})
