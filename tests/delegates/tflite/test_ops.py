"""Each op the tflite delegate claims, against ONNX Runtime, on shapes and
attributes taken from real models (ResNet-50, AlexNet, Inception, ShuffleNet,
DenseNet, MobileNetV3, MiniLM); fp32, and int8 for the QDQ pair.

Every case runs with ``delegates=["tflite"]`` and ``strict=True`` and checks
that tflite took every node before comparing numbers (``tfl_check``).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import pytest
from onnx import helper

from ...onnx_models import graph_model, rand

F = np.float32
N = helper.make_node


def _w(shape, seed=1, scale=None):
    fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else shape[0]
    s = scale if scale is not None else np.sqrt(2.0 / fan_in)
    return np.random.default_rng(seed).normal(0, s, shape).astype(F)


def unary(op, shape, lo=-3.0, hi=3.0, opset=17, **attrs):
    def build():
        m = graph_model([N(op, ["x"], ["y"], **attrs)], {"x": (F, shape)}, opset=opset)
        return m, {"x": rand(shape, lo=lo, hi=hi)}
    return build


def binary(op, a_shape, b_shape, b_const=False, n_inputs=2, lo=-2.0, hi=2.0, dtype=F):
    def build():
        names = [f"i{k}" for k in range(n_inputs)]
        shapes = [a_shape] + [b_shape] * (n_inputs - 1)
        vals = [rand(s, seed=k, lo=lo, hi=hi).astype(dtype) if dtype == F else
                np.random.default_rng(k).integers(1, 9, s).astype(dtype) for k, s in enumerate(shapes)]
        consts = {names[1]: vals[1]} if b_const else {}
        inputs = {n: (dtype, s) for n, s in zip(names, shapes) if n not in consts}
        m = graph_model([N(op, names, ["y"])], inputs, consts)
        return m, {n: v for n, v in zip(names, vals) if n not in consts}
    return build


def conv(x_shape, w_shape, bias=True, **attrs):
    def build():
        consts = {"W": _w(w_shape)}
        ins = ["x", "W"]
        if bias:
            consts["B"] = rand(w_shape[0], seed=2, lo=-0.1, hi=0.1)
            ins.append("B")
        m = graph_model([N("Conv", ins, ["y"], **attrs)], {"x": (F, x_shape)}, consts)
        return m, {"x": rand(x_shape)}
    return build


def single(op, inputs, consts, opset=17, outputs=("y",), feeds=None, **attrs):
    """One node; ``inputs``: {name: shape} of float graph inputs; ``consts``: {name: array}."""
    def build():
        names = list(inputs) + list(consts)
        order = attrs.pop("_order", names)
        m = graph_model([N(op, order, list(outputs), **attrs)], {k: (F, s) for k, s in inputs.items()}, consts,
                        outputs=outputs, opset=opset)
        return m, feeds or {k: rand(s, seed=i) for i, (k, s) in enumerate(inputs.items())}
    return build


def _i64(*v):
    return np.array(v, np.int64)


CASES: dict[str, Callable] = {
    # Conv: ResNet-50, AlexNet, MobileNetV3, ShuffleNet, Inception layers
    "conv_resnet_3x3": conv((1, 64, 56, 56), (64, 64, 3, 3), pads=[1, 1, 1, 1]),
    # 1-D convolutions (audio front ends, e.g. silero-vad's STFT): lowered as 2-D on (N, C, 1, L)
    "conv1d_stft_s2": conv((1, 1, 640), (258, 1, 256), bias=False, strides=[128]),
    "conv1d_pads_dilation": conv((2, 16, 50), (32, 16, 3), pads=[2, 2], dilations=[2]),
    "conv1d_depthwise_same": conv((1, 24, 40), (24, 1, 5), group=24, auto_pad="SAME_UPPER"),
    "conv1d_grouped": conv((1, 8, 30), (16, 4, 3), group=2, pads=[1, 1]),
    "conv_resnet_stem_7x7_s2": conv((1, 3, 112, 112), (64, 3, 7, 7), strides=[2, 2], pads=[3, 3, 3, 3]),
    "conv_resnet_1x1_s2_nobias": conv((1, 256, 28, 28), (512, 256, 1, 1), bias=False, strides=[2, 2]),
    "conv_depthwise_s2": conv((1, 48, 48, 48), (48, 1, 3, 3), group=48, strides=[2, 2], pads=[1, 1, 1, 1]),
    "conv_depthwise_multiplier2": conv((1, 16, 24, 24), (32, 1, 3, 3), group=16, pads=[1, 1, 1, 1]),
    "conv_alexnet_group2": conv((1, 96, 27, 27), (256, 48, 5, 5), group=2, pads=[2, 2, 2, 2]),
    "conv_shufflenet_group4_1x1": conv((1, 240, 14, 14), (60, 60, 1, 1), group=4),
    "conv_asymmetric_same": conv((1, 32, 28, 28), (32, 32, 3, 3), strides=[2, 2], pads=[0, 0, 1, 1]),
    "conv_asymmetric_explicit_pad": conv((1, 8, 20, 20), (16, 8, 3, 3), pads=[1, 0, 2, 1]),
    "conv_auto_pad_same_lower": conv((1, 8, 15, 15), (8, 8, 4, 4), auto_pad="SAME_LOWER", strides=[2, 2]),
    "conv_dilated": conv((1, 16, 32, 32), (16, 16, 3, 3), dilations=[2, 2], pads=[2, 2, 2, 2]),
    "conv_transpose_k4_s2": single("ConvTranspose", {"x": (1, 16, 14, 14)},
                                   {"W": _w((16, 8, 4, 4)), "B": rand(8, seed=3)}, strides=[2, 2], pads=[1, 1, 1, 1]),
    "conv_transpose_output_padding": single("ConvTranspose", {"x": (1, 8, 7, 7)}, {"W": _w((8, 4, 3, 3))},
                                            strides=[2, 2], pads=[1, 1, 1, 1], output_padding=[1, 1]),
    # matrix products: ResNet-50 / AlexNet heads, MiniLM projections and attention
    "gemm_resnet_head": single("Gemm", {"x": (1, 2048)}, {"W": _w((1000, 2048)), "B": rand(1000, seed=3)}, transB=1),
    "gemm_alpha_beta_transB0": single("Gemm", {"x": (2, 128)}, {"W": _w((128, 10)), "B": rand((1, 10), seed=3)},
                                      alpha=0.5, beta=2.0),
    "gemm_runtime_b": single("Gemm", {"x": (4, 64), "W": (32, 64)}, {}, transB=1),
    "matmul_minilm_ffn": single("MatMul", {"x": (1, 16, 384)}, {"W": _w((384, 1536), scale=0.05)}),
    "matmul_minilm_attention": single("MatMul", {"q": (1, 12, 16, 32), "k": (1, 12, 32, 16)}, {}),
    "matmul_broadcast_batch": single("MatMul", {"a": (2, 3, 8, 16), "b": (1, 1, 16, 4)}, {}),
    # elementwise with broadcasting: ResNet Sum, DenseNet per-channel Mul/Add, MiniLM biases
    "add_same_shape": binary("Add", (1, 64, 56, 56), (1, 64, 56, 56)),
    "add_minilm_bias": binary("Add", (1, 16, 384), (384,), b_const=True),
    "mul_densenet_channel_const": binary("Mul", (1, 64, 56, 56), (64, 1, 1), b_const=True),
    "sub_broadcast_activation": binary("Sub", (1, 32, 8, 8), (1, 32, 1, 1)),
    "div_minilm_pooling": binary("Div", (2, 384), (2, 1), lo=0.5, hi=2.0),
    "sum_three_resnet": binary("Sum", (1, 256, 14, 14), (1, 256, 14, 14), n_inputs=3),
    "max_two": binary("Max", (1, 16, 8, 8), (1, 16, 8, 8)),
    "add_int64": binary("Add", (2, 16), (2, 16), dtype=np.int64),
    "pow_square": single("Pow", {"x": (1, 16, 384)}, {"e": np.array(2.0, F)}),
    "pow_general": single("Pow", {"x": (1, 64)}, {"e": np.array(3.0, F)}),
    "prelu_channel": single("PRelu", {"x": (1, 32, 28, 28)}, {"slope": rand((32, 1, 1), seed=4, lo=0, hi=0.5)}),
    # activations
    "relu": unary("Relu", (1, 64, 56, 56)),
    "clip_relu6": single("Clip", {"x": (1, 32, 28, 28)}, {"lo": np.array(0, F), "hi": np.array(6, F)},
                         feeds={"x": rand((1, 32, 28, 28), lo=-8, hi=8)}),
    "clip_general": single("Clip", {"x": (1, 32, 8, 8)}, {"lo": np.array(-0.5, F), "hi": np.array(0.25, F)}),
    "clip_opset6_attrs": unary("Clip", (1, 16, 4, 4), opset=6, min=-1.0, max=1.0),
    "sigmoid": unary("Sigmoid", (1, 72, 1, 1)),
    "tanh": unary("Tanh", (1, 16, 64)),
    "hard_sigmoid_mobilenet": unary("HardSigmoid", (1, 72, 1, 1), lo=-6, hi=6, alpha=1 / 6, beta=0.5),
    "hard_sigmoid_default": unary("HardSigmoid", (1, 8, 4, 4), lo=-6, hi=6),
    "hard_swish": unary("HardSwish", (1, 48, 24, 24), lo=-5, hi=5),
    "leaky_relu": unary("LeakyRelu", (1, 32, 16, 16), alpha=0.1),
    "erf": unary("Erf", (1, 16, 1536), lo=-4, hi=4),
    "gelu_minilm": unary("Gelu", (1, 16, 1536), opset=20),
    "gelu_tanh": unary("Gelu", (1, 16, 64), opset=20, approximate="tanh"),
    "exp": unary("Exp", (1, 12, 16, 16)),
    "log": unary("Log", (1, 64), lo=0.01, hi=10),
    "sqrt": unary("Sqrt", (1, 16, 1), lo=0.0, hi=10),
    "neg": unary("Neg", (1, 16, 384)),
    "abs": unary("Abs", (1, 16, 384)),
    # pooling and normalization
    "maxpool_resnet_3x3_s2": single("MaxPool", {"x": (1, 64, 112, 112)}, {}, kernel_shape=[3, 3], strides=[2, 2],
                                    pads=[1, 1, 1, 1]),
    "maxpool_inception_asym": single("MaxPool", {"x": (1, 192, 28, 28)}, {}, kernel_shape=[3, 3], strides=[2, 2],
                                     pads=[0, 0, 1, 1]),
    "maxpool_ceil_mode": single("MaxPool", {"x": (1, 96, 55, 55)}, {}, kernel_shape=[3, 3], strides=[2, 2],
                                ceil_mode=1),
    "avgpool_include_pad": single("AveragePool", {"x": (1, 64, 28, 28)}, {}, kernel_shape=[3, 3], strides=[1, 1],
                                  pads=[1, 1, 1, 1], count_include_pad=1),
    "avgpool_exclude_pad_same": single("AveragePool", {"x": (1, 64, 28, 28)}, {}, kernel_shape=[3, 3],
                                       strides=[1, 1], pads=[1, 1, 1, 1]),
    "avgpool_inception_v1_asym": single("AveragePool", {"x": (1, 1024, 7, 7)}, {}, kernel_shape=[7, 7],
                                        strides=[1, 1], pads=[0, 0, 1, 1]),
    "avgpool_ceil_mode": single("AveragePool", {"x": (1, 32, 14, 14)}, {}, kernel_shape=[3, 3], strides=[2, 2],
                                ceil_mode=1),
    "global_avgpool_resnet": single("GlobalAveragePool", {"x": (1, 2048, 7, 7)}, {}),
    "global_maxpool": single("GlobalMaxPool", {"x": (1, 64, 7, 7)}, {}),
    "batchnorm_standalone": single("BatchNormalization", {"x": (1, 64, 28, 28)},
                                   {"s": rand(64, 1, 0.5, 1.5), "b": rand(64, 2), "m": rand(64, 3),
                                    "v": rand(64, 4, 0.5, 1.5)}, epsilon=1e-5),
    "layernorm_minilm": single("LayerNormalization", {"x": (1, 16, 384)}, {"g": rand(384, 1), "b": rand(384, 2)},
                               epsilon=1e-12, axis=-1),
    "lrn_alexnet": single("LRN", {"x": (1, 96, 55, 55)}, {}, size=5, alpha=1e-4, beta=0.75, bias=1.0,
                          feeds={"x": rand((1, 96, 55, 55), lo=-20, hi=20)}),
    "softmax_opset9_logits": single("Softmax", {"x": (1, 1000)}, {}, opset=9, axis=1),
    "softmax_attention": single("Softmax", {"x": (1, 12, 16, 16)}, {}),
    "softmax_channel_axis": single("Softmax", {"x": (1, 8, 5, 5)}, {}, axis=1),
    "softmax_opset11_coerced_2d": single("Softmax", {"x": (2, 3, 4)}, {}, opset=11, axis=1),
    "log_softmax": single("LogSoftmax", {"x": (2, 1000)}, {}),
    # resize
    "resize_nearest_asymmetric": single("Resize", {"x": (1, 16, 14, 14)},
                                        {"roi": np.array([], F), "scales": np.array([1, 1, 2, 2], F)},
                                        mode="nearest", coordinate_transformation_mode="asymmetric",
                                        nearest_mode="floor"),
    "resize_nearest_half_pixel": single("Resize", {"x": (1, 8, 10, 10)},
                                        {"roi": np.array([], F), "scales": np.array([1, 1, 2, 2], F)},
                                        mode="nearest", nearest_mode="round_prefer_ceil"),
    "resize_bilinear_half_pixel": single("Resize", {"x": (1, 16, 14, 14)},
                                         {"roi": np.array([], F), "scales": np.array([1, 1, 2, 2], F)},
                                         mode="linear"),
    "resize_bilinear_align_corners_sizes": single(
        "Resize", {"x": (1, 8, 9, 9)}, {"roi": np.array([], F), "scales": np.array([], F), "sizes": _i64(1, 8, 17, 17)},
        mode="linear", coordinate_transformation_mode="align_corners"),
    # data movement
    "reshape_resnet_flatten": single("Reshape", {"x": (1, 2048, 1, 1)}, {"s": _i64(1, -1)}),
    "reshape_minilm_heads": single("Reshape", {"x": (1, 16, 384)}, {"s": _i64(1, 16, 12, 32)}),
    "flatten_axis1": single("Flatten", {"x": (1, 256, 6, 6)}, {}, axis=1),
    "transpose_minilm_heads": single("Transpose", {"x": (1, 16, 12, 32)}, {}, perm=[0, 2, 1, 3]),
    "transpose_nchw": single("Transpose", {"x": (1, 3, 8, 8)}, {}, perm=[0, 2, 3, 1]),
    "concat_inception_channels": single("Concat", {"a": (1, 64, 28, 28), "b": (1, 128, 28, 28), "c": (1, 32, 28, 28)},
                                        {}, axis=1),
    "concat_with_const": single("Concat", {"a": (1, 4, 16)}, {"b": rand((1, 2, 16), seed=5)}, axis=1),
    "split_channels": single("Split", {"x": (1, 116, 28, 28)}, {"s": _i64(58, 58)}, outputs=("y0", "y1"), axis=1),
    "slice_channels_step": single("Slice", {"x": (1, 64, 14, 14)},
                                  {"st": _i64(0, 2), "en": _i64(32, 14), "ax": _i64(1, 3), "sp": _i64(1, 2)}),
    "slice_negative_bounds": single("Slice", {"x": (2, 16, 384)}, {"st": _i64(-4), "en": _i64(2**62), "ax": _i64(1)}),
    "squeeze": single("Squeeze", {"x": (1, 2048, 1, 1)}, {"a": _i64(2, 3)}),
    "unsqueeze": single("Unsqueeze", {"x": (1, 16)}, {"a": _i64(-1)}),
    "pad_constant_value": single("Pad", {"x": (1, 8, 10, 10)}, {"p": _i64(0, 0, 1, 2, 0, 0, 3, 0), "v": np.array(0.5, F)}),
    "pad_reflect": single("Pad", {"x": (1, 8, 10, 10)}, {"p": _i64(0, 0, 2, 2, 0, 0, 2, 2)}, mode="reflect"),
    "reduce_mean_se_block": single("ReduceMean", {"x": (1, 72, 24, 24)}, {"a": _i64(2, 3)}, opset=18),
    "reduce_mean_opset13_attr": single("ReduceMean", {"x": (1, 16, 384)}, {}, opset=13, axes=[-1], keepdims=0),
    "reduce_max": single("ReduceMax", {"x": (1, 64, 7, 7)}, {"a": _i64(1)}, opset=18, keepdims=0),
    "reduce_sum_minilm": single("ReduceSum", {"x": (2, 16, 384)}, {"a": _i64(1)}, keepdims=0),
    "reduce_l2": single("ReduceL2", {"x": (2, 384)}, {"a": _i64(1)}, opset=18),
    "dropout_inference": unary("Dropout", (1, 4096)),
    "identity": unary("Identity", (1, 10)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_op_matches_onnxruntime(case: str, tfl_check) -> None:
    model, feeds = CASES[case]()
    tfl_check(model, feeds)


def test_gather_embedding_int64_indices(tfl_check, make_model) -> None:
    table = rand((1000, 64), seed=3)
    ids = np.random.default_rng(0).integers(-1000, 1000, (2, 16)).astype(np.int64)  # negatives wrap, as in ONNX
    m = make_model([N("Gather", ["t", "ids"], ["y"], axis=0)], {"ids": (np.int64, (2, 16))}, {"t": table})
    tfl_check(m, {"ids": ids})


def test_gather_const_indices_axis1(tfl_check, make_model) -> None:
    m = make_model([N("Gather", ["x", "i"], ["y"], axis=1)], {"x": (F, (2, 16, 8))}, {"i": _i64(0, -1, 3)})
    tfl_check(m, {"x": rand((2, 16, 8))})


def test_cast_int64_to_float_and_back(tfl_check, make_model) -> None:
    m = make_model([N("Cast", ["x"], ["f"], to=1), N("Cast", ["f"], ["y"], to=7)], {"x": (np.int64, (2, 16))},
                   outputs=("f", "y"))
    tfl_check(m, {"x": np.random.default_rng(0).integers(-100, 100, (2, 16)).astype(np.int64)})


def test_where_isnan_minilm_pattern(tfl_check, make_model) -> None:
    """MiniLM's masked softmax: where(isnan(softmax), 0, softmax)."""
    nodes = [N("Softmax", ["x"], ["s"], axis=-1), N("IsNaN", ["s"], ["n"]), N("Where", ["n", "z", "s"], ["y"])]
    m = make_model(nodes, {"x": (F, (1, 12, 16, 16))}, {"z": np.array(0.0, F)})
    tfl_check(m, {"x": rand((1, 12, 16, 16), hi=4)})


def test_expand_and_comparisons(tfl_check, make_model) -> None:
    nodes = [N("Expand", ["x", "s"], ["e"]), N("Greater", ["e", "t"], ["g"]), N("Less", ["e", "t"], ["l"]),
             N("Or", ["g", "l"], ["y"])]
    m = make_model(nodes, {"x": (F, (1, 16, 1))}, {"s": _i64(2, 16, 384), "t": np.array(0.0, F)})
    tfl_check(m, {"x": rand((1, 16, 1))})


def test_conv_batchnorm_relu_fold_into_one_conv(tfl_check, make_model) -> None:
    """BatchNormalization after a Conv is folded into its weights and the Relu
    fused: the flatbuffer has one CONV_2D and no MUL/ADD."""
    nodes = [N("Conv", ["x", "W"], ["c"], pads=[1, 1, 1, 1]), N("BatchNormalization", ["c", "s", "b", "m", "v"], ["n"]),
             N("Relu", ["n"], ["y"])]
    consts = {"W": _w((32, 16, 3, 3)), "s": rand(32, 1, 0.5, 1.5), "b": rand(32, 2), "m": rand(32, 3),
              "v": rand(32, 4, 0.5, 1.5)}
    sess = tfl_check(make_model(nodes, {"x": (F, (1, 16, 28, 28))}, consts), {"x": rand((1, 16, 28, 28))})
    ops = _ops(sess.partitions[0].executable.serialize())
    assert ops.get("CONV_2D") == 1 and "MUL" not in ops and "ADD" not in ops and "RELU" not in ops


def test_quantize_dequantize_int8_per_tensor(tfl_check, make_model) -> None:
    """int8 QDQ round trip; the int8 tensor in the middle is an output too, compared exactly."""
    nodes = [N("QuantizeLinear", ["x", "s", "z"], ["q"]), N("DequantizeLinear", ["q", "s", "z"], ["y"])]
    consts = {"s": np.array(0.02, F), "z": np.array(-3, np.int8)}
    m = make_model(nodes, {"x": (F, (1, 64, 28, 28))}, consts, outputs=("q", "y"), opset=13)
    # values away from the rounding ties (k + 0.5) * scale, where round-half-even and half-away differ
    x = ((np.random.default_rng(0).integers(-140, 140, (1, 64, 28, 28)) + rand((1, 64, 28, 28), hi=0.4)) * 0.02)
    tfl_check(m, {"x": x.astype(F)}, exact=True)


def test_quantize_uint8_saturates(tfl_check, make_model) -> None:
    nodes = [N("QuantizeLinear", ["x", "s", "z"], ["y"])]
    m = make_model(nodes, {"x": (F, (1, 256))}, {"s": np.array(0.05, F), "z": np.array(128, np.uint8)}, opset=13)
    x = np.linspace(-10.01, 10.01, 256, dtype=F)  # well beyond [-6.4, 6.35]: saturates at 0 and 255
    tfl_check(m, {"x": x.reshape(1, 256)}, exact=True)


def test_dequantize_int8_input_per_channel(tfl_check, make_model) -> None:
    """A raw int8 partition input (no quantization params on the tensor), per-channel scales on axis 1."""
    nodes = [N("DequantizeLinear", ["q", "s", "z"], ["y"], axis=1)]
    consts = {"s": rand(16, 1, 0.01, 0.1), "z": np.random.default_rng(2).integers(-5, 5, 16).astype(np.int8)}
    m = make_model(nodes, {"q": (np.int8, (1, 16, 8, 8))}, consts, opset=13)
    tfl_check(m, {"q": np.random.default_rng(0).integers(-128, 128, (1, 16, 8, 8)).astype(np.int8)}, exact=True)


def test_qdq_conv_int8_weights(tfl_check, make_model) -> None:
    """Conv between QDQ pairs with int8 per-channel weights, as quantize_static writes it."""
    w = _w((16, 8, 3, 3))
    ws = (np.abs(w).reshape(16, -1).max(1) / 127).astype(F)
    wq = np.clip(np.round(w / ws[:, None, None, None]), -127, 127).astype(np.int8)
    nodes = [N("QuantizeLinear", ["x", "xs", "xz"], ["xq"]), N("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
             N("DequantizeLinear", ["wq", "ws", "wz"], ["wd"], axis=0), N("Conv", ["xd", "wd"], ["y"], pads=[1, 1, 1, 1])]
    consts = {"xs": np.array(1 / 127, F), "xz": np.array(0, np.int8), "wq": wq, "ws": ws, "wz": np.zeros(16, np.int8)}
    m = make_model(nodes, {"x": (F, (1, 8, 16, 16))}, consts, opset=13)
    tfl_check(m, {"x": rand((1, 8, 16, 16))})


def _ops(flatbuffer: bytes) -> dict[str, int]:
    from unified.delegates.tflite.delegate import _op_counts

    return _op_counts(flatbuffer)


def test_integer_div_int64_declined_with_reason(make_model) -> None:
    from unified import InferenceSession, SessionOptions
    from unified.errors import UnsupportedError

    m = make_model([N("Div", ["a", "b"], ["y"])], {"a": (np.int64, (2, 3)), "b": (np.int64, (2, 3))})
    with pytest.raises(UnsupportedError, match=r"Div input dtype int64 not supported \(supported: float, int32\)"):
        InferenceSession(m, delegates=["tflite"], options=SessionOptions(strict=True, use_cache=False))


def test_gather_scalar_index_drops_the_axis(tfl_check, make_model) -> None:
    """Gather with a 0-d index (MiniLM's CLS-style pick): the output loses that axis."""
    m = make_model([N("Gather", ["x", "i"], ["y"], axis=1)], {"x": (F, (2, 16, 384))}, {"i": np.array(-1, np.int64)})
    tfl_check(m, {"x": rand((2, 16, 384))})


def test_div_int32(tfl_check, make_model) -> None:
    m = make_model([N("Div", ["a", "b"], ["y"])], {"a": (np.int32, (2, 8)), "b": (np.int32, (2, 8))})
    rng = np.random.default_rng(0)
    tfl_check(m, {"a": rng.integers(0, 100, (2, 8)).astype(np.int32),
                  "b": rng.integers(1, 9, (2, 8)).astype(np.int32)}, exact=True)
