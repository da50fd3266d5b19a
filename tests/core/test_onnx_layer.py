"""The shared ONNX layer (``unified.onnx``) against ONNX Runtime and the onnx package.

Pads: a node with ``auto_pad`` must compute the same as the same node with the
explicit pads ``unified.onnx.spatial`` resolves (ONNX Runtime runs both).
Folding: ``evaluate_node`` must match ONNX Runtime on the same node.
"""

from __future__ import annotations


import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from unified.errors import ModelError
from unified.onnx import (
    Node,
    conv_transpose_pads,
    decode_attributes,
    dtype_name,
    evaluate_node,
    from_numpy,
    io_names,
    last_uses,
    resolve_pads,
    static_shape,
    to_numpy,
    value_types,
    window,
)


def _ort(model: onnx.ModelProto, feeds: dict) -> list[np.ndarray]:
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"]).run(None, feeds)


def _node_model(node: onnx.NodeProto, inputs: dict[str, np.ndarray], inits: dict[str, np.ndarray], opset=17):
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info(k, from_numpy(v.dtype), v.shape) for k, v in inputs.items()],
        [helper.make_empty_tensor_value_info(o) for o in node.output],
        initializer=[numpy_helper.from_array(v, k) for k, v in inits.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    return onnx.shape_inference.infer_shapes(model)  # output types for ONNX Runtime


@pytest.mark.parametrize("op", ["Conv", "MaxPool", "AveragePool"])
@pytest.mark.parametrize("auto_pad", ["SAME_UPPER", "SAME_LOWER", "VALID"])
@pytest.mark.parametrize("size,kernel,stride,dilation", [(7, 3, 2, 1), (8, 4, 3, 1), (9, 3, 1, 2), (5, 2, 2, 1)])
def test_resolved_pads_compute_what_auto_pad_computes(op, auto_pad, size, kernel, stride, dilation):
    if dilation != 1 and auto_pad != "VALID":
        pytest.skip("ONNX Runtime refuses (Conv) or ignores (MaxPool) dilations under auto_pad SAME_*")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 2, size, size + 1)).astype(np.float32)
    attrs = {"strides": [stride, stride]}
    inits: dict[str, np.ndarray] = {}
    inputs = ["x"]
    if op == "Conv":
        inits["w"] = rng.standard_normal((3, 2, kernel, kernel)).astype(np.float32)
        inputs.append("w")
        attrs["dilations"] = [dilation, dilation]
    else:
        attrs["kernel_shape"] = [kernel, kernel]
        if op == "MaxPool":
            attrs["dilations"] = [dilation, dilation]
        elif dilation != 1:
            pytest.skip("AveragePool dilations need opset 19")
    auto = helper.make_node(op, inputs, ["y"], auto_pad=auto_pad, **attrs)
    w = window({**attrs, "auto_pad": auto_pad}, [kernel, kernel])
    begins, ends = resolve_pads({**attrs, "auto_pad": auto_pad}, x.shape[2:], w)
    explicit = helper.make_node(op, inputs, ["y"], pads=begins + ends, **attrs)
    want = _ort(_node_model(auto, {"x": x}, inits), {"x": x})[0]
    got = _ort(_node_model(explicit, {"x": x}, inits), {"x": x})[0]
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("attrs", [
    {"strides": [2, 2]},
    {"strides": [2, 1], "pads": [1, 0, 0, 1], "output_padding": [1, 0]},
    {"strides": [2, 2], "auto_pad": "SAME_UPPER"},
    {"strides": [3, 2], "auto_pad": "SAME_LOWER", "dilations": [1, 2]},
    {"strides": [2, 2], "output_shape": [9, 10]},
])
def test_conv_transpose_pads_match_onnx_runtime(attrs):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1, 2, 4, 5)).astype(np.float32)
    wt = rng.standard_normal((2, 3, 3, 3)).astype(np.float32)
    node = helper.make_node("ConvTranspose", ["x", "w"], ["y"], **attrs)
    want = _ort(_node_model(node, {"x": x}, {"w": wt}), {"x": x})[0]
    begins, ends, outs = conv_transpose_pads(attrs, x.shape[2:], window(attrs, wt.shape[2:]))
    assert list(want.shape[2:]) == outs
    explicit = {k: v for k, v in attrs.items() if k not in ("auto_pad", "output_shape")}
    explicit["pads"] = begins + ends
    got = _ort(_node_model(helper.make_node("ConvTranspose", ["x", "w"], ["y"], **explicit), {"x": x}, {"w": wt}),
               {"x": x})[0]
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_resolve_pads_names_a_bad_auto_pad():
    with pytest.raises(ValueError, match="auto_pad='SAME'"):
        resolve_pads({"auto_pad": "SAME"}, [4, 4], window({}, [3, 3]))


@pytest.mark.parametrize("make", [
    lambda: (helper.make_node("Reshape", ["a", "b"], ["y"]),
             [np.arange(6, dtype=np.float32), np.array([2, -1], np.int64)]),
    lambda: (helper.make_node("Gather", ["a", "b"], ["y"], axis=1),
             [np.arange(12, dtype=np.int64).reshape(3, 4), np.array([3, 0], np.int64)]),
    lambda: (helper.make_node("DequantizeLinear", ["a", "b", "c"], ["y"], axis=1),
             [np.arange(-8, 16, dtype=np.int8).reshape(2, 3, 4), np.array([0.5, 0.25, 2.0], np.float32),
              np.array([1, -2, 3], np.int8)]),
    lambda: (helper.make_node("Split", ["a", "b"], ["y", "z"], axis=0),
             [np.arange(5, dtype=np.float32), np.array([2, 3], np.int64)]),
])
def test_evaluate_node_matches_onnx_runtime(make):
    node, args = make()
    opsets = [helper.make_opsetid("", 17)]
    got = evaluate_node(node, args, opsets)
    feeds = {name: a for name, a in zip(node.input, args)}
    want = _ort(_node_model(node, feeds, {}), feeds)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.dtype == w.dtype
        np.testing.assert_array_equal(g, w)


def test_dtypes_agree_with_the_onnx_package():
    for elem in (TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.INT8, TensorProto.INT64, TensorProto.BOOL):
        np_dtype = helper.tensor_dtype_to_np_dtype(elem)
        assert to_numpy(elem) == np_dtype
        assert from_numpy(np_dtype) == elem
    assert dtype_name(TensorProto.FLOAT) == "float" and dtype_name(TensorProto.INT64) == "int64"
    assert to_numpy(TensorProto.UNDEFINED) is None and dtype_name(0) == "unknown"
    with pytest.raises(ValueError, match="no ONNX element type"):
        from_numpy(np.dtype("complex256") if hasattr(np, "complex256") else np.dtype("V8"))


def test_attributes_decode_and_a_corrupt_one_is_a_model_error():
    node = helper.make_node("Foo", ["x"], ["y"], mode=b"linear", axes=[1, 2], value=numpy_helper.from_array(
        np.ones(3, np.float32)))
    attrs = decode_attributes(node)
    assert attrs["mode"] == "linear" and attrs["axes"] == [1, 2]
    np.testing.assert_array_equal(attrs["value"], np.ones(3, np.float32))
    view = Node(node, opset=13)
    assert view.attr("mode") == "linear" and view.attr("missing", 7) == 7 and view.input(3) == ""
    next(a for a in node.attribute if a.name == "mode").s = b"\xff\xfe"
    with pytest.raises(ModelError, match="attribute 'mode' of node .*cannot be decoded"):
        decode_attributes(node)


def test_io_names_and_liveness_of_a_node_list():
    nodes = [
        helper.make_node("Add", ["x", "w"], ["a"]),
        helper.make_node("Relu", ["a"], ["b"]),
        helper.make_node("Mul", ["b", "a"], ["c"]),
    ]
    assert io_names(nodes, constants={"w"}, needed_after={"c", "b"}) == (["x"], ["b", "c"])
    assert [sorted(f) for f in last_uses([n.input for n in nodes], keep={"x"})] == [["w"], [], ["a", "b"]]


def test_value_types_read_declared_types_and_infer_only_when_asked():
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"]), helper.make_node("Neg", ["y"], ["z"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, None)],
        value_info=[helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    declared = value_types(model)
    assert static_shape(declared["x"]) == (2, 3) and static_shape(declared["y"]) is None
    assert static_shape(value_types(model, infer=True)["y"]) is None  # every output declared: nothing inferred
    del model.graph.value_info[:]
    assert "y" not in value_types(model)
    assert static_shape(value_types(model, infer=True)["y"]) == (2, 3)
