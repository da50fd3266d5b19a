"""Regressions found by the full conformance run (false claims of the
executorch delegate): each lowered case runs on executorch alone and
matches ONNX Runtime; each declined one says why."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from unified.graph import Graph
from unified.plugins import registry

from ...onnx_models import rand


def _supports(model, op_type: str):
    view = next(v for v in Graph(model).node_views if v.op_type == op_type)
    return registry().get("executorch").supports(view)


@pytest.mark.parametrize("axis", [-1, -3, -4, 0, 4])
def test_flatten_negative_axis(make_model, et_check, axis):
    model = make_model([helper.make_node("Flatten", ["x"], ["y"], axis=axis)], {"x": (np.float32, (2, 3, 4, 5))})
    sess = et_check(model, {"x": rand((2, 3, 4, 5))})
    assert sess.run(None, {"x": rand((2, 3, 4, 5))})[0].ndim == 2


@pytest.mark.parametrize(
    "node, consts",
    [
        (helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[2, 2, 2]), {}),
        (helper.make_node("AveragePool", ["x"], ["y"], kernel_shape=[2, 2, 2]), {}),
        (helper.make_node("Conv", ["x", "w"], ["y"]), {"w": np.ones((3, 2, 2, 2, 2), np.float32)}),
        (helper.make_node("ConvTranspose", ["x", "w"], ["y"]), {"w": np.ones((2, 3, 2, 2, 2), np.float32)}),
    ],
)
def test_3d_pool_and_conv_are_declined(make_model, node, consts):
    # the programs lower, but the runtime cannot load (pooling: 0x14) or execute (conv: 0x12) them
    model = make_model([node], {"x": (np.float32, (1, 2, 4, 4, 4))}, consts)
    answer = _supports(model, node.op_type)
    assert not answer.ok
    assert f"3-D {node.op_type} (rank-5 input) not handled: the ExecuTorch runtime has no kernel for it" in answer.reason


def test_zero_size_tensor_is_declined(make_model):
    # the runtime rejects empty tensors ("0 in strides")
    model = make_model([helper.make_node("ReduceSum", ["x"], ["y"], keepdims=1)], {"x": (np.float32, (2, 0, 4))})
    answer = _supports(model, "ReduceSum")
    assert not answer.ok and "has a zero-size dim [2, 0, 4]; the ExecuTorch runtime rejects empty tensors" in answer.reason


def test_3d_global_pool_and_resize_still_run(make_model, et_check):
    nodes = [helper.make_node("Resize", ["x", "", "s"], ["r"], mode="linear"),
             helper.make_node("GlobalAveragePool", ["r"], ["y"])]
    model = make_model(nodes, {"x": (np.float32, (1, 2, 3, 4, 4))}, {"s": np.array([1, 1, 2, 2, 2], np.float32)},
                       opset=13)
    et_check(model, {"x": rand((1, 2, 3, 4, 4), seed=5)})
