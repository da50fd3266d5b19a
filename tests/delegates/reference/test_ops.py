"""The reference delegate's kernels, one node at a time, against ONNX Runtime.

Each case is a one-node model; the chain checks both that the node was
delegated to ``reference`` (strict mode, nothing falls back) and that the
numbers match ONNX Runtime called directly.
"""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from unified import InferenceSession
from unified.delegates.reference import KERNELS, OP_SUPPORT, ReferenceDelegate
from unified.graph import Graph

from ...onnx_models import node_model

F = TensorProto.FLOAT
RNG = np.random.default_rng(7)


def _r(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def _ints(*vals):
    return np.array(vals, dtype=np.int64)


CASES = {
    "conv_pads_strides_dilations": (
        "Conv", {"x": _r(2, 4, 11, 9)}, {"pads": [1, 2, 0, 1], "strides": [2, 1], "dilations": [1, 2]},
        {"w": _r(6, 4, 3, 3), "b": _r(6)}, 17,
    ),
    "conv_grouped": ("Conv", {"x": _r(1, 8, 7, 7)}, {"group": 4, "pads": [1, 1, 1, 1]}, {"w": _r(12, 2, 3, 3)}, 17),
    "conv_depthwise_multiplier": (
        "Conv", {"x": _r(1, 6, 9, 9)}, {"group": 6, "strides": [2, 2], "auto_pad": "SAME_UPPER"}, {"w": _r(12, 1, 3, 3)}, 17,
    ),
    "conv_1d": ("Conv", {"x": _r(2, 3, 20)}, {"pads": [2, 2]}, {"w": _r(5, 3, 5), "b": _r(5)}, 17),
    "conv_3d": ("Conv", {"x": _r(1, 2, 5, 6, 7)}, {"pads": [1] * 6}, {"w": _r(3, 2, 3, 3, 3)}, 17),
    "conv_transpose": (
        "ConvTranspose", {"x": _r(1, 4, 5, 6)}, {"strides": [2, 3], "pads": [1, 0, 0, 1], "output_padding": [1, 0]},
        {"w": _r(4, 3, 3, 4), "b": _r(3)}, 17,
    ),
    "conv_transpose_grouped": ("ConvTranspose", {"x": _r(2, 4, 4, 4)}, {"group": 2, "strides": [2, 2]}, {"w": _r(4, 3, 2, 2)}, 17),
    "gemm_trans_alpha_beta": (
        "Gemm", {"a": _r(5, 4)}, {"transA": 1, "transB": 1, "alpha": 0.5, "beta": 2.0}, {"b": _r(3, 5), "c": _r(3)}, 17,
    ),
    "matmul_batched": ("MatMul", {"a": _r(2, 3, 4, 5), "b": _r(3, 5, 6)}, {}, {}, 17),
    "matmul_vector": ("MatMul", {"a": _r(7), "b": _r(2, 7, 3)}, {}, {}, 17),
    "add_broadcast": ("Add", {"a": _r(2, 3, 4), "b": _r(4)}, {}, {}, 17),
    "sub": ("Sub", {"a": _r(3, 1), "b": _r(1, 5)}, {}, {}, 17),
    "mul": ("Mul", {"a": _r(2, 3), "b": _r(2, 1)}, {}, {}, 17),
    "div": ("Div", {"a": _r(4, 4), "b": np.abs(_r(4, 4)) + 0.5}, {}, {}, 17),
    "sum3": ("Sum", {"a": _r(2, 3), "b": _r(3), "c": _r(2, 1)}, {}, {}, 17),
    "relu": ("Relu", {"x": _r(3, 7)}, {}, {}, 17),
    "clip_inputs": ("Clip", {"x": _r(4, 5)}, {}, {"lo": np.array(-0.3, np.float32), "hi": np.array(0.4, np.float32)}, 17),
    "clip_attrs_opset6": ("Clip", {"x": _r(4, 5)}, {"min": -0.2, "max": 0.1}, {}, 6),
    "sigmoid": ("Sigmoid", {"x": _r(50) * 20}, {}, {}, 17),
    "hardsigmoid": ("HardSigmoid", {"x": _r(40) * 4}, {"alpha": 0.3, "beta": 0.4}, {}, 17),
    "hardswish": ("HardSwish", {"x": _r(40) * 4}, {}, {}, 17),
    "tanh": ("Tanh", {"x": _r(30) * 3}, {}, {}, 17),
    "leakyrelu": ("LeakyRelu", {"x": _r(30)}, {"alpha": 0.2}, {}, 17),
    "erf": ("Erf", {"x": np.concatenate([_r(200) * 3, np.float32([0, 1e-8, -1e-5, 0.49999, 0.5, 6, -9])])}, {}, {}, 17),
    "gelu": ("Gelu", {"x": _r(64) * 3}, {}, {}, 20),
    "gelu_tanh": ("Gelu", {"x": _r(64) * 3}, {"approximate": "tanh"}, {}, 20),
    "maxpool_ceil_dilated": (
        "MaxPool", {"x": _r(1, 3, 10, 11)}, {"kernel_shape": [3, 3], "strides": [2, 2], "ceil_mode": 1, "dilations": [1, 2]},
        {}, 17,
    ),
    "maxpool_same_lower": ("MaxPool", {"x": _r(2, 2, 7, 7)}, {"kernel_shape": [2, 2], "auto_pad": "SAME_LOWER"}, {}, 17),
    "avgpool_pads_exclude": (
        "AveragePool", {"x": _r(1, 2, 8, 8)}, {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}, {}, 17,
    ),
    "avgpool_ceil_include": (
        "AveragePool", {"x": _r(1, 2, 9, 9)},
        {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 0, 0], "ceil_mode": 1, "count_include_pad": 1}, {}, 17,
    ),
    "global_avgpool": ("GlobalAveragePool", {"x": _r(2, 5, 6, 7)}, {}, {}, 17),
    "softmax_axis1": ("Softmax", {"x": _r(2, 3, 4)}, {"axis": 1}, {}, 17),
    "softmax_coerced_opset11": ("Softmax", {"x": _r(2, 3, 4)}, {"axis": 1}, {}, 11),
    "layernorm": ("LayerNormalization", {"x": _r(2, 5, 8)}, {"axis": -1, "epsilon": 1e-5}, {"s": _r(8), "b": _r(8)}, 17),
    "batchnorm": (
        "BatchNormalization", {"x": _r(2, 3, 4, 5)}, {"epsilon": 1e-3},
        {"s": _r(3), "b": _r(3), "m": _r(3), "v": np.abs(_r(3)) + 0.5}, 15,
    ),
    "lrn": ("LRN", {"x": _r(1, 7, 4, 4)}, {"size": 3, "alpha": 1e-2, "beta": 0.75, "bias": 2.0}, {}, 17),
    "reshape_zero_infer": ("Reshape", {"x": _r(2, 3, 4)}, {}, {"s": _ints(0, -1, 2)}, 17),
    "flatten_axis2": ("Flatten", {"x": _r(2, 3, 4, 5)}, {"axis": 2}, {}, 17),
    "flatten_negative_axis": ("Flatten", {"x": _r(2, 3, 4, 5)}, {"axis": -3}, {}, 17),
    "reduce_max_empty_set": ("ReduceMax", {"x": _r(2, 0, 4)}, {"keepdims": 1}, {"ax": _ints(1)}, 18),
    "transpose": ("Transpose", {"x": _r(2, 3, 4)}, {"perm": [2, 0, 1]}, {}, 17),
    "concat": ("Concat", {"a": _r(2, 3), "b": _r(2, 1)}, {"axis": -1}, {}, 17),
    "slice_negative_step": ("Slice", {"x": _r(5, 6)}, {}, {"st": _ints(-1, 1), "en": _ints(-100, 6), "ax": _ints(0, 1), "sp": _ints(-2, 2)}, 17),
    "squeeze": ("Squeeze", {"x": _r(1, 3, 1, 2)}, {}, {"ax": _ints(-2)}, 17),
    "unsqueeze_attr_opset11": ("Unsqueeze", {"x": _r(3, 2)}, {"axes": [0, -1]}, {}, 11),
    "pad_reflect": ("Pad", {"x": _r(2, 3, 4)}, {"mode": "reflect"}, {"p": _ints(0, 1, 2, 0, 1, -1)}, 17),
    "pad_constant_value": ("Pad", {"x": _r(2, 3)}, {}, {"p": _ints(1, 0, 0, 2), "v": np.array(1.5, np.float32)}, 17),
    "pad_edge_opset2": ("Pad", {"x": _r(2, 3)}, {"mode": "edge", "pads": [1, 1, 0, 2]}, {}, 2),
    "resize_nearest_scales": (
        "Resize", {"x": _r(1, 2, 3, 4)}, {"mode": "nearest"},
        {"roi": np.zeros(0, np.float32), "sc": np.array([1, 1, 2.5, 1.5], np.float32)}, 17,
    ),
    "resize_nearest_sizes_align": (
        "Resize", {"x": _r(1, 1, 5, 4)}, {"mode": "nearest", "coordinate_transformation_mode": "align_corners", "nearest_mode": "ceil"},
        {"roi": np.zeros(0, np.float32), "sc": np.zeros(0, np.float32), "sz": _ints(1, 1, 3, 7)}, 17,
    ),
    "reduce_mean": ("ReduceMean", {"x": _r(2, 3, 4)}, {"keepdims": 0}, {"ax": _ints(1, -1)}, 18),
    "dropout_inference": ("Dropout", {"x": _r(3, 4)}, {}, {}, 17),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_kernel_matches_onnxruntime(case, options, ort_reference):
    op, inputs, attrs, inits, opset = CASES[case]
    model = node_model(op, inputs, attrs, opset, initializers=inits)
    options.strict = True
    sess = InferenceSession(model, delegates=["reference"], options=options)
    assert [p.delegate for p in sess.plan.partitions] == ["reference"]
    got = sess.run(None, inputs)[0]
    want = ort_reference(model, inputs)[0]
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_quantize_dequantize_per_axis_match_onnxruntime(options, ort_reference):
    x = _r(2, 3, 4) * 3
    scale = np.array([0.02, 0.05, 0.1], np.float32)
    zp = np.array([-3, 0, 7], np.int8)
    q = helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"], axis=1)
    dq = helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"], axis=1)
    g = helper.make_graph(
        [q, dq], "g", [helper.make_tensor_value_info("x", F, x.shape)],
        [helper.make_tensor_value_info("q", TensorProto.INT8, x.shape), helper.make_tensor_value_info("y", F, x.shape)],
        initializer=[numpy_helper.from_array(scale, "s"), numpy_helper.from_array(zp, "z")],
    )
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)
    options.strict = True
    got = InferenceSession(model, delegates=["reference"], options=options).run(None, {"x": x})
    want = ort_reference(model, {"x": x})
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])


def test_support_table_and_kernel_table_list_the_same_ops():
    assert {e.op_type for e in OP_SUPPORT} == set(KERNELS)


@pytest.mark.parametrize(
    "op, inputs, attrs, inits, reason",
    [
        ("Resize", {"x": _r(1, 1, 2, 2)}, {"mode": "linear"}, {"roi": np.zeros(0, np.float32), "sc": np.ones(4, np.float32)},
         "Resize mode='linear' not supported (supported: 'nearest')"),
        ("ConvTranspose", {"x": _r(1, 2, 3, 3)}, {"auto_pad": "SAME_UPPER"}, {"w": _r(2, 2, 3, 3)},
         "ConvTranspose auto_pad='SAME_UPPER' not supported (supported: 'NOTSET')"),
        ("TopK", {"x": _r(5)}, {}, {"k": _ints(2)}, "reference has no kernel for op TopK"),
    ],
)
def test_declines_with_a_reason(op, inputs, attrs, inits, reason):
    model = node_model(op, inputs, attrs, outputs=2 if op == "TopK" else 1, initializers=inits)
    view = Graph(model).node_views[0]
    answer = ReferenceDelegate().supports(view)
    assert not answer.ok and answer.reason == reason


def test_maxpool_with_indices_declined():
    model = node_model("MaxPool", {"x": _r(1, 1, 4, 4)}, {"kernel_shape": [2, 2]}, outputs=2)
    answer = ReferenceDelegate().supports(Graph(model).node_views[0])
    assert answer.reason == "MaxPool output 1 (Indices) is not produced by the reference kernels"
