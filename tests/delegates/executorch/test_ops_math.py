"""Per-op tests, elementwise ops, Where, Cast and reductions: each claimed op
against ONNX Runtime.

Lowering costs about a second per model, so ops that share input shapes sit
side by side in one model, one graph output per op; a mismatch names the
output, hence the op.
"""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper

from ...onnx_models import rand

X = (2, 3, 4, 5)


def test_unary_activations(make_model, et_check):
    unary = ["Relu", "Sigmoid", "Tanh", "Exp", "Floor", "Ceil", "Erf", "Sin", "Cos", "Abs", "Neg", "IsNaN",
             "IsInf", "Softplus", "HardSwish", "Identity"]
    positive = ["Log", "Sqrt", "Reciprocal"]
    nodes = [helper.make_node(op, ["x"], [op]) for op in unary]
    nodes += [helper.make_node(op, ["p"], [op]) for op in positive]
    nodes += [
        helper.make_node("HardSigmoid", ["x"], ["HardSigmoid"], alpha=0.3, beta=0.4),
        helper.make_node("HardSigmoid", ["x"], ["HardSigmoid_torch"], alpha=1 / 6, beta=0.5),
        helper.make_node("LeakyRelu", ["x"], ["LeakyRelu"], alpha=0.2),
        helper.make_node("Elu", ["x"], ["Elu"], alpha=0.7),
        helper.make_node("Clip", ["x", "lo", "hi"], ["Clip"]),
        helper.make_node("Clip", ["x", "", "hi"], ["Clip_max_only"]),
        helper.make_node("Softmax", ["x"], ["Softmax"], axis=1),
        helper.make_node("LogSoftmax", ["x"], ["LogSoftmax"], axis=-1),
    ]
    outputs = [n.output[0] for n in nodes]
    nodes = [helper.make_node("Abs", ["x"], ["abs_x"]), helper.make_node("Add", ["abs_x", "tenth"], ["p"])] + nodes
    model = make_model(nodes, {"x": (np.float32, X)},
                       {"lo": np.float32(-0.3), "hi": np.float32(0.5), "tenth": np.float32(0.1)}, outputs, opset=17)
    sess = et_check(model, {"x": rand(X, 0, -3, 3)})
    assert sess.plan.partitions[0].details["xnnpack_ops"] > 0


def test_gelu_opset20(make_model, et_check):
    nodes = [helper.make_node("Gelu", ["x"], ["exact"]), helper.make_node("Gelu", ["x"], ["tanh"], approximate="tanh")]
    et_check(make_model(nodes, {"x": (np.float32, X)}, outputs=["exact", "tanh"], opset=20), {"x": rand(X, 2, -3, 3)})


def test_binary_broadcasting_float(make_model, et_check):
    ops = ["Add", "Sub", "Mul", "Div", "Max", "Min", "PRelu"]
    nodes = [helper.make_node(op, ["a", "b"], [op]) for op in ops]
    nodes += [
        helper.make_node("Pow", ["p", "b"], ["Pow"]),
        helper.make_node("Sum", ["a", "b", "c"], ["Sum"]),
        helper.make_node("Mean", ["a", "b", "c"], ["Mean"]),
        helper.make_node("Max", ["a", "b", "c"], ["Max3"]),
        helper.make_node("Add", ["a", "w"], ["Add_const"]),  # a constant operand, as in real models
    ]
    for op in ["Equal", "Greater", "Less", "GreaterOrEqual", "LessOrEqual"]:
        nodes.append(helper.make_node(op, ["a", "c"], [op]))
    nodes.append(helper.make_node("Where", ["Greater", "a", "b"], ["Where"]))
    outputs = [n.output[0] for n in nodes]
    inputs = {"a": (np.float32, X), "b": (np.float32, (4, 1)), "c": (np.float32, (1, 3, 1, 5)), "p": (np.float32, X)}
    model = make_model(nodes, inputs, {"w": rand((5,), 9)}, outputs)
    c = rand((1, 3, 1, 5), 5)
    a = rand(X, 3)
    a[0, :, 0, :] = c[0, :, 0, :]  # some equal elements for Equal / GreaterOrEqual
    et_check(model, {"a": a, "b": rand((4, 1), 4, 0.5, 2), "c": c, "p": rand(X, 6, 0.1, 2)})


def test_integer_and_bool_ops(make_model, et_check):
    nodes = [
        helper.make_node("Add", ["i", "j"], ["Add"]),
        helper.make_node("Sub", ["i", "j"], ["Sub"]),
        helper.make_node("Mul", ["i", "j"], ["Mul"]),
        helper.make_node("Div", ["i", "j"], ["Div"]),  # truncates toward zero, as ONNX Runtime does
        helper.make_node("Abs", ["i"], ["Abs"]),
        helper.make_node("Equal", ["i", "j"], ["Equal"]),
        helper.make_node("And", ["u", "v"], ["And"]),
        helper.make_node("Or", ["u", "v"], ["Or"]),
        helper.make_node("Xor", ["u", "v"], ["Xor"]),
        helper.make_node("Not", ["u"], ["Not"]),
        helper.make_node("Cast", ["i"], ["Cast_f"], to=TensorProto.FLOAT),
        helper.make_node("Cast", ["f"], ["Cast_i"], to=TensorProto.INT32),
        helper.make_node("Cast", ["u"], ["Cast_b"], to=TensorProto.INT64),
        helper.make_node("Cast", ["f"], ["Cast_bool"], to=TensorProto.BOOL),
        # these two join the int, bool and float inputs into one partition
        helper.make_node("Where", ["u", "i", "j"], ["Where_int"]),
        helper.make_node("Mul", ["Cast_f", "f"], ["Mul_float"]),
    ]
    outputs = [n.output[0] for n in nodes]
    model = make_model(nodes, {"i": (np.int64, (3, 4)), "j": (np.int64, (4,)), "u": (np.bool_, (3, 4)),
                               "v": (np.bool_, (3, 4)), "f": (np.float32, (3, 4))}, outputs=outputs)
    rng = np.random.default_rng(7)
    feeds = {
        "i": rng.integers(-20, 20, (3, 4)).astype(np.int64),
        "j": np.array([3, -4, 7, 5], np.int64),
        "u": rng.integers(0, 2, (3, 4)).astype(bool),
        "v": rng.integers(0, 2, (3, 4)).astype(bool),
        "f": np.array([[0.0, 1.5, -2.7, 3.2]] * 3, np.float32),
    }
    et_check(model, feeds)


def test_reductions_axes_attribute(make_model, et_check):
    """Opset 13: axes as an attribute (ReduceSum: as an input)."""
    nodes = []
    for op in ["ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL2", "ReduceSumSquare"]:
        nodes.append(helper.make_node(op, ["x"], [op], axes=[1, -1], keepdims=1))
        nodes.append(helper.make_node(op, ["x"], [op + "_all"], keepdims=0))
    nodes.append(helper.make_node("ReduceSum", ["x", "axes"], ["ReduceSum"], keepdims=0))
    nodes.append(helper.make_node("ArgMax", ["x"], ["ArgMax"], axis=2, keepdims=0))
    nodes.append(helper.make_node("ArgMin", ["x"], ["ArgMin"], axis=-1))
    outputs = [n.output[0] for n in nodes]
    model = make_model(nodes, {"x": (np.float32, X)}, {"axes": np.array([0, 2], np.int64)}, outputs, opset=13)
    et_check(model, {"x": rand(X, 11, 0.5, 1.5)})


def test_reductions_axes_input_opset18(make_model, et_check):
    nodes = [
        helper.make_node("ReduceMean", ["x", "axes"], ["ReduceMean"], keepdims=1),
        helper.make_node("ReduceMax", ["x", "axes"], ["ReduceMax"], keepdims=0),
        helper.make_node("ReduceSum", ["x", "axes"], ["ReduceSum"]),
        helper.make_node("ReduceMean", ["x"], ["ReduceMean_all"], keepdims=0),
    ]
    outputs = [n.output[0] for n in nodes]
    model = make_model(nodes, {"x": (np.float32, X)}, {"axes": np.array([-1, 1], np.int64)}, outputs, opset=18)
    et_check(model, {"x": rand(X, 12)})


def test_old_opset_attributes(make_model, et_check):
    """Opset 9-10 forms: Clip min/max and Softmax's coerce-to-2-D axis."""
    nodes = [
        helper.make_node("Clip", ["x"], ["Clip"], min=-0.2, max=0.3),
        helper.make_node("Softmax", ["x"], ["Softmax"], axis=2),
        helper.make_node("Softmax", ["x"], ["Softmax_default"]),
        helper.make_node("ReduceSum", ["x"], ["ReduceSum"], axes=[0, 3], keepdims=1),
    ]
    outputs = [n.output[0] for n in nodes]
    model = make_model(nodes, {"x": (np.float32, X)}, outputs=outputs, opset=10)
    et_check(model, {"x": rand(X, 13, -2, 2)})
