"""Per-op conversion: ONNX node -> MIL ops, checked against ONNX Runtime where
MIL can compute values off macOS, and structurally where it cannot.

Values: each case lowers one node with its inputs as MIL constants; MIL's own
value inference (coremltools' reference implementation of each MIL op) gives
the result, compared with ONNX Runtime running the ONNX node. This checks the
ONNX -> MIL mapping (pad order, axes, broadcasting, int64 -> int32, Slice
bounds, ...) on any OS. It says nothing about Core ML's runtime kernels, which
only macOS can run.
"""

from __future__ import annotations

import numpy as np
import pytest

from unified.delegates.coreml import LOWERINGS
from unified.delegates.coreml.support import OP_SUPPORT

rng = np.random.default_rng(7)


def f32(*shape, lo=-2.0, hi=2.0):
    return rng.uniform(lo, hi, shape).astype(np.float32)


def i64(*values):
    return np.array(values, dtype=np.int64)


# id: (op, inputs, attrs, opset, initializers, n_outputs)
VALUE_CASES = {
    "Add-broadcast": ("Add", {"a": f32(2, 3, 4), "b": f32(4)}, {}, 18, {}, 1),
    "Sub": ("Sub", {"a": f32(2, 3), "b": f32(2, 3)}, {}, 18, {}, 1),
    "Mul-int64": ("Mul", {"a": i64(1, -2, 3), "b": i64(4, 5, -6)}, {}, 18, {}, 1),
    "Div": ("Div", {"a": f32(3, 4), "b": f32(3, 4, lo=0.5, hi=2.0)}, {}, 18, {}, 1),
    "Pow": ("Pow", {"a": f32(5, lo=0.1, hi=2.0), "b": f32(5)}, {}, 18, {}, 1),
    "Sum-3": ("Sum", {"a": f32(2, 3), "b": f32(3), "c": f32(2, 1)}, {}, 13, {}, 1),
    "Max-3": ("Max", {"a": f32(2, 3), "b": f32(3), "c": f32(2, 3)}, {}, 13, {}, 1),
    "Mean-2": ("Mean", {"a": f32(4), "b": f32(4)}, {}, 13, {}, 1),
    "Where": ("Where", {"c": rng.integers(0, 2, (3, 4)).astype(bool), "a": f32(3, 4), "b": f32(4)}, {}, 16, {}, 1),
    "Equal-int": ("Equal", {"a": i64(1, 2, 3), "b": i64(1, 0, 3)}, {}, 13, {}, 1),
    "GreaterOrEqual": ("GreaterOrEqual", {"a": f32(6), "b": f32(6)}, {}, 16, {}, 1),
    "And": ("And", {"a": np.array([True, False, True]), "b": np.array([True, True, False])}, {}, 7, {}, 1),
    "Not": ("Not", {"a": np.array([True, False])}, {}, 1, {}, 1),
    "Neg": ("Neg", {"x": f32(5)}, {}, 13, {}, 1),
    "Abs": ("Abs", {"x": f32(5)}, {}, 13, {}, 1),
    "Reciprocal": ("Reciprocal", {"x": f32(5, lo=0.5, hi=3)}, {}, 13, {}, 1),
    "Sqrt": ("Sqrt", {"x": f32(5, lo=0.1, hi=3)}, {}, 13, {}, 1),
    "Exp": ("Exp", {"x": f32(5)}, {}, 13, {}, 1),
    "Log": ("Log", {"x": f32(5, lo=0.1, hi=3)}, {}, 13, {}, 1),
    "Erf": ("Erf", {"x": f32(7)}, {}, 13, {}, 1),
    "IsNaN": ("IsNaN", {"x": np.array([1.0, np.nan, -np.inf], np.float32)}, {}, 20, {}, 1),
    "Clip-min-max": ("Clip", {"x": f32(8)}, {}, 13, {"lo": np.array(-0.5, np.float32), "hi": np.array(0.7, np.float32)}, 1),
    "Clip-opset6": ("Clip", {"x": f32(8)}, {"min": -0.25, "max": 0.5}, 6, {}, 1),
    "Cast-float-int64": ("Cast", {"x": f32(6, lo=-5, hi=5)}, {"to": 7}, 13, {}, 1),
    "Cast-bool-float": ("Cast", {"x": np.array([True, False])}, {"to": 1}, 13, {}, 1),
    "Relu": ("Relu", {"x": f32(6)}, {}, 14, {}, 1),
    "Sigmoid": ("Sigmoid", {"x": f32(6)}, {}, 13, {}, 1),
    "Tanh": ("Tanh", {"x": f32(6)}, {}, 13, {}, 1),
    "LeakyRelu": ("LeakyRelu", {"x": f32(6)}, {"alpha": 0.2}, 16, {}, 1),
    "Elu": ("Elu", {"x": f32(6)}, {"alpha": 0.7}, 6, {}, 1),
    "Selu": ("Selu", {"x": f32(6)}, {}, 6, {}, 1),
    "HardSigmoid": ("HardSigmoid", {"x": f32(6, lo=-5, hi=5)}, {"alpha": 0.3, "beta": 0.4}, 6, {}, 1),
    "HardSwish": ("HardSwish", {"x": f32(8, lo=-5, hi=5)}, {}, 14, {}, 1),
    "PRelu": ("PRelu", {"x": f32(1, 3, 2, 2)}, {}, 16, {"s": np.array([[[0.1]], [[0.2]], [[0.3]]], np.float32)}, 1),
    "Softplus": ("Softplus", {"x": f32(6)}, {}, 1, {}, 1),
    "Gelu-exact": ("Gelu", {"x": f32(6)}, {}, 20, {}, 1),
    "Gelu-tanh": ("Gelu", {"x": f32(6)}, {"approximate": "tanh"}, 20, {}, 1),
    "Softmax-13": ("Softmax", {"x": f32(2, 3, 4)}, {"axis": 1}, 13, {}, 1),
    "Softmax-11-coerced": ("Softmax", {"x": f32(2, 3, 4)}, {"axis": 1}, 11, {}, 1),
    "LogSoftmax": ("LogSoftmax", {"x": f32(2, 5)}, {"axis": -1}, 13, {}, 1),
    "LayerNormalization": ("LayerNormalization", {"x": f32(2, 3, 4)}, {"axis": -1, "epsilon": 1e-3}, 17,
                           {"g": f32(4), "b": f32(4)}, 1),
    "MatMul-batched": ("MatMul", {"a": f32(2, 3, 4), "b": f32(4, 5)}, {}, 13, {}, 1),
    "MatMul-1d-1d": ("MatMul", {"a": f32(4), "b": f32(4)}, {}, 13, {}, 1),
    "MatMul-1d-3d": ("MatMul", {"a": f32(4), "b": f32(2, 4, 3)}, {}, 13, {}, 1),
    "MatMul-3d-1d": ("MatMul", {"a": f32(2, 3, 4), "b": f32(4)}, {}, 13, {}, 1),
    "Gemm-scalar-C": ("Gemm", {"a": f32(3, 4), "w": f32(4, 2), "c": np.array(0.5, np.float32)}, {"beta": 2.0}, 13,
                      {}, 1),
    "Gemm-linear": ("Gemm", {"a": f32(3, 4)}, {"transB": 1, "alpha": 0.5, "beta": 2.0}, 13,
                    {"w": f32(5, 4), "c": f32(5)}, 1),
    "Gemm-transA-matrixC": ("Gemm", {"a": f32(4, 3), "w": f32(4, 5)}, {"transA": 1, "beta": 0.5}, 13,
                            {"c": f32(3, 5)}, 1),
    "Reshape-zero-minus1": ("Reshape", {"x": f32(2, 3, 4)}, {}, 14, {"s": i64(0, -1)}, 1),
    "Flatten": ("Flatten", {"x": f32(2, 3, 4)}, {"axis": 2}, 13, {}, 1),
    "Transpose": ("Transpose", {"x": f32(2, 3, 4)}, {"perm": [2, 0, 1]}, 13, {}, 1),
    "Squeeze": ("Squeeze", {"x": f32(1, 3, 1, 2)}, {}, 13, {"ax": i64(0, -2)}, 1),
    "Unsqueeze": ("Unsqueeze", {"x": f32(3, 2)}, {}, 13, {"ax": i64(-1, 0)}, 1),
    "Concat": ("Concat", {"a": f32(2, 3), "b": f32(2, 1)}, {"axis": -1}, 13, {}, 1),
    "Split-sizes": ("Split", {"x": f32(2, 6)}, {"axis": 1}, 13, {"s": i64(1, 5)}, 2),
    "Split-num_outputs-uneven": ("Split", {"x": f32(7, 2)}, {"axis": 0, "num_outputs": 3}, 18, {}, 3),
    "Slice-steps-bigend": ("Slice", {"x": f32(5, 6)}, {}, 13,
                           {"st": i64(1, -1), "en": i64(2**62, -7), "ax": i64(0, 1), "sp": i64(2, -2)}, 1),
    "Slice-negative": ("Slice", {"x": f32(4, 5)}, {}, 13, {"st": i64(-3), "en": i64(-1), "ax": i64(1)}, 1),
    "Expand": ("Expand", {"x": f32(3, 1)}, {}, 13, {"s": i64(2, 3, 4)}, 1),
    "Tile": ("Tile", {"x": f32(2, 3)}, {}, 13, {"r": i64(2, 1)}, 1),
    "Range-int": ("Range", {}, {}, 11, {"a": np.array(2, np.int64), "b": np.array(11, np.int64),
                                        "c": np.array(3, np.int64)}, 1),
    "Pad-constant": ("Pad", {"x": f32(1, 2, 3, 3)}, {"mode": "constant"}, 18,
                     {"p": i64(0, 0, 1, 2, 0, 0, 2, 1), "v": np.array(1.5, np.float32)}, 1),
    "Pad-reflect": ("Pad", {"x": f32(1, 2, 4, 4)}, {"mode": "reflect"}, 18, {"p": i64(0, 0, 1, 2, 0, 0, 2, 1)}, 1),
    "Pad-edge": ("Pad", {"x": f32(1, 2, 3, 3)}, {"mode": "edge"}, 18, {"p": i64(0, 0, 0, 2, 0, 0, 1, 0)}, 1),
    "Gather-negative": ("Gather", {"x": f32(5, 3)}, {"axis": 0}, 13, {"i": i64(-1, 0, 3, -5)}, 1),
    "Gather-axis1-2d": ("Gather", {"x": f32(2, 5, 3)}, {"axis": 1}, 13, {"i": np.array([[0, -2], [4, 1]], np.int64)}, 1),
    "GatherElements": ("GatherElements", {"x": f32(3, 4)}, {"axis": 1}, 13,
                       {"i": np.array([[0, 3], [1, -1], [2, 2]], np.int64)}, 1),
    "ReduceSum-keep": ("ReduceSum", {"x": f32(2, 3, 4)}, {"keepdims": 1}, 13, {"ax": i64(1)}, 1),
    "ReduceMean-attr": ("ReduceMean", {"x": f32(2, 3, 4)}, {"axes": [0, 2], "keepdims": 0}, 13, {}, 1),
    "ReduceMax-all": ("ReduceMax", {"x": f32(2, 3, 4)}, {"keepdims": 0}, 18, {}, 1),
    "ReduceL2": ("ReduceL2", {"x": f32(2, 3)}, {"keepdims": 1}, 18, {"ax": i64(-1)}, 1),
    "ReduceLogSumExp": ("ReduceLogSumExp", {"x": f32(2, 3)}, {"keepdims": 0}, 18, {"ax": i64(0)}, 1),
    "ReduceSumSquare": ("ReduceSumSquare", {"x": f32(2, 3)}, {"keepdims": 1}, 18, {"ax": i64(1)}, 1),
    "ArgMax": ("ArgMax", {"x": f32(3, 5)}, {"axis": 1, "keepdims": 0}, 13, {}, 1),
    "CumSum": ("CumSum", {"x": f32(2, 5)}, {"reverse": 1}, 14, {"ax": np.array(1, np.int64)}, 1),
    "Identity": ("Identity", {"x": f32(3)}, {}, 16, {}, 1),
}


def test_every_supported_op_has_a_lowering_and_back() -> None:
    table = {e.op_type for e in OP_SUPPORT}
    assert table - set(LOWERINGS) == set()
    assert set(LOWERINGS) - table == set()


@pytest.mark.parametrize("case", list(VALUE_CASES))
def test_lowering_values_match_onnxruntime(case, make_node_model, mil_lower, mil_value, ort_reference) -> None:
    op, inputs, attrs, opset, inits, n_out = VALUE_CASES[case]
    model = make_node_model(op, inputs, attrs, opset, n_out, inits)
    outs, ops = mil_lower(model, inputs)
    if op != "Identity":  # Identity passes its input through
        assert ops or all(isinstance(o, np.ndarray) for o in outs), "the lowering emitted no MIL op"
    expected = ort_reference(model, inputs)
    assert len(outs) == len(expected)
    for got, want in zip(outs, expected):
        value = mil_value(got)
        assert value is not None, f"MIL could not infer a value for {case}; ops {[o.op_type for o in ops]}"
        if want.dtype == np.int64:
            assert value.dtype == np.int32  # Core ML holds ONNX int64 as int32
        elif want.dtype == np.bool_:
            assert value.dtype == np.bool_
        assert value.shape == want.shape, case
        np.testing.assert_allclose(value.astype(np.float64), want.astype(np.float64), rtol=2e-5, atol=2e-6)


def _mil_op(ops, op_type):
    found = [o for o in ops if o.op_type == op_type]
    assert len(found) == 1, f"expected one MIL {op_type}, got {[o.op_type for o in ops]}"
    return found[0]


def test_conv_pads_are_interleaved_per_axis(make_node_model, mil_lower) -> None:
    x = f32(1, 4, 8, 8)
    model = make_node_model("Conv", {"x": x}, {"pads": [1, 2, 3, 4], "strides": [2, 1], "group": 2,
                                               "dilations": [1, 2]}, 13, 1, {"w": f32(6, 2, 3, 3), "b": f32(6)})
    outs, ops = mil_lower(model, {"x": x})
    conv = _mil_op(ops, "conv")
    # ONNX pads [top, left, bottom, right] -> MIL [top, bottom, left, right]
    assert conv.pad.val.tolist() == [1, 3, 2, 4]
    assert conv.pad_type.val == "custom"
    assert conv.strides.val.tolist() == [2, 1] and conv.dilations.val.tolist() == [1, 2]
    assert conv.groups.val == 2
    assert conv.weight.shape == (6, 2, 3, 3) and conv.bias.shape == (6,)
    # output shape agrees with ONNX shape inference: (8+1+3-3)/2+1 = 5, (8+2+4-5)/1+1 = 10
    assert tuple(outs[0].shape) == (1, 6, 5, 10)


@pytest.mark.parametrize("auto_pad, mil", [("SAME_UPPER", "same"), ("SAME_LOWER", "same_lower"), ("VALID", "valid")])
def test_conv_auto_pad(auto_pad, mil, make_node_model, mil_lower) -> None:
    x = f32(1, 2, 7, 7)
    model = make_node_model("Conv", {"x": x}, {"auto_pad": auto_pad, "strides": [2, 2]}, 13, 1, {"w": f32(3, 2, 4, 4)})
    outs, ops = mil_lower(model, {"x": x})
    assert _mil_op(ops, "conv").pad_type.val == mil
    assert tuple(outs[0].shape) == {"VALID": (1, 3, 2, 2)}.get(auto_pad, (1, 3, 4, 4))


def test_conv_transpose_output_padding_sets_output_shape(make_node_model, mil_lower) -> None:
    x = f32(1, 2, 5, 5)
    model = make_node_model("ConvTranspose", {"x": x}, {"strides": [2, 2], "pads": [1, 1, 1, 1],
                                                        "output_padding": [1, 0]}, 13, 1, {"w": f32(2, 3, 3, 3)})
    outs, ops = mil_lower(model, {"x": x})
    op = _mil_op(ops, "conv_transpose")
    # ONNX: out = stride*(in-1) + output_padding + kernel - pads = 2*4 + (1|0) + 3 - 2
    assert op.output_shape.val.tolist() == [1, 3, 10, 9]
    assert tuple(outs[0].shape) == (1, 3, 10, 9)


def test_pooling_attributes(make_node_model, mil_lower) -> None:
    x = f32(1, 3, 9, 9)
    model = make_node_model("AveragePool", {"x": x}, {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 0, 1, 0],
                                                      "ceil_mode": 1, "count_include_pad": 1}, 19)
    outs, ops = mil_lower(model, {"x": x})
    op = _mil_op(ops, "avg_pool")
    # ceil and floor agree on both axes here: plain floor pooling with the ONNX pads
    assert op.pad.val.tolist() == [1, 1, 0, 0] and not op.ceil_mode.val
    assert op.exclude_padding_from_average.val is False or op.exclude_padding_from_average.val == 0
    assert op.kernel_sizes.val.tolist() == [3, 3] and op.strides.val.tolist() == [2, 2]
    model = make_node_model("MaxPool", {"x": x}, {"kernel_shape": [2, 2], "auto_pad": "SAME_UPPER"}, 12)
    outs, ops = mil_lower(model, {"x": x})
    assert _mil_op(ops, "max_pool").pad_type.val == "same"
    assert tuple(outs[0].shape) == (1, 3, 9, 9)


def test_global_average_pool_is_a_spatial_mean(make_node_model, mil_lower, mil_value, ort_reference) -> None:
    x = f32(2, 3, 4, 5)
    model = make_node_model("GlobalAveragePool", {"x": x}, {}, 13)
    outs, ops = mil_lower(model, {"x": x})
    np.testing.assert_allclose(mil_value(outs[0]), ort_reference(model, {"x": x})[0], rtol=1e-5, atol=1e-6)


def test_batch_norm_and_lrn_parameters(make_node_model, mil_lower) -> None:
    x = f32(1, 3, 4, 4)
    params = {"s": f32(3), "b": f32(3), "m": f32(3), "v": f32(3, lo=0.5, hi=1.5)}
    outs, ops = mil_lower(make_node_model("BatchNormalization", {"x": x}, {"epsilon": 1e-3}, 15, 1, params), {"x": x})
    bn = _mil_op(ops, "batch_norm")
    np.testing.assert_array_equal(bn.gamma.val, params["s"])
    np.testing.assert_array_equal(bn.mean.val, params["m"])
    np.testing.assert_array_equal(bn.variance.val, params["v"])
    assert bn.epsilon.val == pytest.approx(1e-3)
    outs, ops = mil_lower(make_node_model("LRN", {"x": x}, {"size": 3, "alpha": 2e-4, "beta": 0.5, "bias": 2.0}, 13),
                          {"x": x})
    lrn = _mil_op(ops, "local_response_norm")
    assert (lrn.size.val, lrn.alpha.val, lrn.beta.val, lrn.k.val) == (3, pytest.approx(2e-4), 0.5, 2.0)


@pytest.mark.parametrize("coord, sampling", [("half_pixel", "UNALIGN_CORNERS"), ("asymmetric", "DEFAULT"),
                                             ("align_corners", "STRICT_ALIGN_CORNERS")])
def test_resize_linear_sampling_mode(coord, sampling, make_node_model, mil_lower) -> None:
    x = f32(1, 2, 4, 5)
    model = make_node_model("Resize", {"x": x}, {"mode": "linear", "coordinate_transformation_mode": coord}, 13, 1,
                            {"roi": np.zeros(0, np.float32), "sc": np.array([1, 1, 2, 1.6], np.float32)})
    outs, ops = mil_lower(model, {"x": x})
    op = _mil_op(ops, "resize_bilinear")
    assert op.sampling_mode.val == sampling
    assert (op.target_size_height.val, op.target_size_width.val) == (8, 8)


def test_resize_nearest_integer_scale(make_node_model, mil_lower) -> None:
    x = f32(1, 2, 3, 3)
    model = make_node_model("Resize", {"x": x}, {"mode": "nearest"}, 13, 1,
                            {"roi": np.zeros(0, np.float32), "sc": np.array([1, 1, 2, 3], np.float32)})
    outs, ops = mil_lower(model, {"x": x})
    op = _mil_op(ops, "upsample_nearest_neighbor")
    assert (op.scale_factor_height.val, op.scale_factor_width.val) == (2, 3)
    assert tuple(outs[0].shape) == (1, 2, 6, 9)


def test_shape_of_static_tensor_is_a_compile_time_constant(make_node_model, mil_lower) -> None:
    x = f32(2, 3, 4)
    outs, ops = mil_lower(make_node_model("Shape", {"x": x}, {"start": 1}, 15), {"x": x})
    assert isinstance(outs[0], np.ndarray) and outs[0].tolist() == [3, 4] and not ops


def test_gather_nd_indices_become_int32(make_node_model, mil_lower) -> None:
    x = f32(2, 3, 4)
    model = make_node_model("GatherND", {"x": x}, {}, 13, 1, {"i": np.array([[0, 2], [1, 0]], np.int64)})
    outs, ops = mil_lower(model, {"x": x})
    op = _mil_op(ops, "gather_nd")
    assert op.indices.val.dtype == np.int32 and op.indices.val.tolist() == [[0, 2], [1, 0]]
    assert tuple(outs[0].shape) == (2, 4)


@pytest.mark.parametrize("size, kernel, stride, pads", [
    (4, 1, 2, (0, 0)),  # ceil adds a window that starts past the input: ONNX drops it
    (5, 2, 2, (0, 0)),  # ceil adds a partial window
    (6, 3, 2, (1, 1)),
    (4, 3, 2, (1, 1)),
    (7, 3, 3, (0, 1)),
])
def test_max_pool_ceil_mode_output_size_is_the_onnx_one(size, kernel, stride, pads, make_node_model, mil_lower,
                                                        ort_reference) -> None:
    x = f32(1, 2, size, size + 1)
    attrs = {"kernel_shape": [kernel, kernel], "strides": [stride, stride], "pads": [pads[0], pads[0], pads[1], pads[1]],
             "ceil_mode": 1}
    model = make_node_model("MaxPool", {"x": x}, attrs, 19)
    outs, ops = mil_lower(model, {"x": x})
    op = _mil_op(ops, "max_pool")
    assert not op.ceil_mode.val  # ceil mode is lowered as floor pooling with extra end padding
    (want,) = ort_reference(model, {"x": x})
    assert tuple(outs[0].shape) == want.shape


def test_pool_output_size_follows_the_onnx_reference() -> None:
    from unified.delegates.coreml.support import pool_output_size

    assert pool_output_size(4, 1, 2, 0, 0, True) == 2  # the third window would start at 4 = past the input
    assert pool_output_size(5, 2, 2, 0, 0, True) == 3
    assert pool_output_size(5, 2, 2, 0, 0, False) == 2
    assert pool_output_size(6, 3, 2, 1, 1, True) == 4


def test_conv_with_a_computed_bias_adds_it_after_the_conv(make_node_model, mil_lower) -> None:
    x, b = f32(1, 2, 5, 5), f32(3)
    model = make_node_model("Conv", {"x": x, "b": b}, {}, 13, 1, {"w": f32(3, 2, 3, 3)})
    model.graph.node[0].input[:] = ["x", "w", "b"]
    outs, ops = mil_lower(model, {"x": x, "b": b})
    conv = _mil_op(ops, "conv")
    assert conv.bias is None  # MIL conv takes constant biases only
    assert [o.op_type for o in ops if o.op_type in ("expand_dims", "add")] == ["expand_dims", "add"]
    assert tuple(outs[0].shape) == (1, 3, 3, 3)
