"""Per-op tests, neural-network ops: convolution, Gemm/MatMul, pooling,
normalization, LRN, Resize — each against ONNX Runtime, with attribute values
as real models use them (light_* zoo, MobileNet, BERT)."""

from __future__ import annotations

import numpy as np
from onnx import helper

from ...onnx_models import rand

X = (1, 4, 9, 9)


def _weights(shape, seed):
    fan_in = int(np.prod(shape[1:]))
    return rand(shape, seed, -1, 1) * np.float32(np.sqrt(3.0 / fan_in))


def test_conv_variants(make_model, et_check):
    nodes = [
        helper.make_node("Conv", ["x", "w3", "b8"], ["Conv"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["x", "w3", "b8"], ["Conv_asym_stride"], pads=[0, 1, 1, 0], strides=[2, 2]),
        helper.make_node("Conv", ["x", "wdw"], ["Conv_depthwise"], group=4, pads=[1, 1, 1, 1], dilations=[2, 2]),
        helper.make_node("Conv", ["x", "wg"], ["Conv_grouped"], group=2, strides=[2, 1]),
        helper.make_node("Conv", ["x", "w3"], ["Conv_same_upper"], auto_pad="SAME_UPPER", strides=[2, 2]),
        helper.make_node("ConvTranspose", ["x", "wt", "b6"], ["ConvTranspose"], strides=[2, 2], pads=[1, 1, 1, 1],
                         output_padding=[1, 1]),
        helper.make_node("ConvTranspose", ["x", "wtg"], ["ConvTranspose_grouped"], group=2, pads=[0, 1, 1, 0]),
        helper.make_node("Reshape", ["x", "to1d"], ["x1d"]),
        helper.make_node("Conv", ["x1d", "w1d"], ["Conv1d"], pads=[2, 0]),
    ]
    consts = {
        "w3": _weights((8, 4, 3, 3), 1), "b8": rand((8,), 2), "wdw": _weights((4, 1, 3, 3), 3),
        "wg": _weights((6, 2, 3, 3), 4), "wt": _weights((4, 6, 3, 3), 5), "b6": rand((6,), 6),
        "wtg": _weights((4, 3, 2, 2), 7), "to1d": np.array([1, 4, 81], np.int64), "w1d": _weights((5, 4, 5), 8),
    }
    outputs = [n.output[0] for n in nodes if n.op_type != "Reshape"]
    sess = et_check(make_model(nodes, {"x": (np.float32, X)}, consts, outputs), {"x": rand(X, 0)})
    assert sess.plan.partitions[0].details["xnnpack_ops"] >= 7  # the 2-D convolutions


def test_gemm_and_matmul(make_model, et_check):
    nodes = [
        helper.make_node("Gemm", ["a", "wt", "c"], ["Gemm_linear"], transB=1),
        helper.make_node("Gemm", ["a", "w", "c2"], ["Gemm_alpha_beta"], alpha=0.5, beta=2.0),
        helper.make_node("Transpose", ["a"], ["at"]),
        helper.make_node("Gemm", ["at", "w"], ["Gemm_transA"], transA=1),
        helper.make_node("MatMul", ["a", "w"], ["MatMul_2d"]),
        helper.make_node("Reshape", ["a", "to3d"], ["a3"]),
        helper.make_node("MatMul", ["a3", "w"], ["MatMul_3d_by_2d"]),
        helper.make_node("Reshape", ["a", "to4d"], ["a4"]),
        helper.make_node("Transpose", ["a4"], ["a4t"], perm=[0, 1, 3, 2]),
        helper.make_node("MatMul", ["a4", "a4t"], ["MatMul_batched"]),
    ]
    consts = {"wt": rand((5, 6), 1), "w": rand((6, 5), 2), "c": rand((5,), 3), "c2": rand((4, 1), 4),
              "to3d": np.array([2, 2, 6], np.int64), "to4d": np.array([1, 2, 2, 6], np.int64)}
    outputs = [n.output[0] for n in nodes if n.op_type not in ("Reshape", "Transpose")]
    model = make_model(nodes, {"a": (np.float32, (4, 6))}, consts, outputs)
    et_check(model, {"a": rand((4, 6), 5)})


def test_pooling(make_model, et_check):
    nodes = [
        helper.make_node("MaxPool", ["x"], ["MaxPool"], kernel_shape=[3, 3], strides=[2, 2]),
        helper.make_node("MaxPool", ["x"], ["MaxPool_asym_pads"], kernel_shape=[3, 3], strides=[2, 2],
                         pads=[0, 0, 1, 1]),
        helper.make_node("MaxPool", ["x"], ["MaxPool_ceil"], kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1),
        helper.make_node("MaxPool", ["x"], ["MaxPool_dilated"], kernel_shape=[2, 2], dilations=[2, 2]),
        helper.make_node("MaxPool", ["x"], ["MaxPool_same"], kernel_shape=[3, 3], strides=[2, 2],
                         auto_pad="SAME_UPPER"),
        helper.make_node("AveragePool", ["x"], ["AveragePool"], kernel_shape=[3, 3], strides=[1, 1],
                         pads=[1, 1, 1, 1]),
        helper.make_node("AveragePool", ["x"], ["AveragePool_include_pad"], kernel_shape=[3, 3],
                         pads=[1, 1, 1, 1], count_include_pad=1),
        helper.make_node("AveragePool", ["x"], ["AveragePool_asym"], kernel_shape=[2, 2], strides=[2, 2],
                         pads=[1, 0, 0, 1]),
        helper.make_node("AveragePool", ["x"], ["AveragePool_7x7"], kernel_shape=[9, 9]),
        helper.make_node("GlobalAveragePool", ["x"], ["GlobalAveragePool"]),
        helper.make_node("GlobalMaxPool", ["x"], ["GlobalMaxPool"]),
    ]
    outputs = [n.output[0] for n in nodes]
    et_check(make_model(nodes, {"x": (np.float32, X)}, outputs=outputs), {"x": rand(X, 1)})


def test_normalizations(make_model, et_check):
    nodes = [
        helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["BatchNormalization"], epsilon=1e-3),
        helper.make_node("LRN", ["x"], ["LRN"], size=3, alpha=1e-2, beta=0.75, bias=1.0),
        helper.make_node("LRN", ["x"], ["LRN_size5"], size=5, alpha=2e-2, beta=0.5, bias=2.0),
        helper.make_node("Transpose", ["x"], ["xt"], perm=[0, 2, 3, 1]),
        helper.make_node("LayerNormalization", ["xt", "ls", "lb"], ["LayerNormalization"], epsilon=1e-5),
        helper.make_node("LayerNormalization", ["xt", "ls2"], ["LayerNormalization_2axes"], axis=2),
        helper.make_node("Dropout", ["x"], ["Dropout"]),
    ]
    consts = {"s": rand((4,), 1, 0.5, 1.5), "b": rand((4,), 2), "m": rand((4,), 3), "v": rand((4,), 4, 0.5, 1.5),
              "ls": rand((4,), 5, 0.5, 1.5), "lb": rand((4,), 6), "ls2": rand((9, 4), 7, 0.5, 1.5)}
    outputs = [n.output[0] for n in nodes if n.op_type != "Transpose"]
    et_check(make_model(nodes, {"x": (np.float32, X)}, consts, outputs), {"x": rand(X, 2, -2, 2)})


def test_resize(make_model, et_check):
    empty = np.zeros((0,), np.float32)
    nodes = [
        helper.make_node("Resize", ["x", "", "s2"], ["nearest_x2"], mode="nearest"),
        helper.make_node("Resize", ["x", "", "s2"], ["nearest_asymmetric_floor"], mode="nearest",
                         coordinate_transformation_mode="asymmetric", nearest_mode="floor"),
        helper.make_node("Resize", ["x", "", "s2"], ["linear_half_pixel"], mode="linear"),
        helper.make_node("Resize", ["x", "", "", "size"], ["linear_align_corners"], mode="linear",
                         coordinate_transformation_mode="align_corners"),
        helper.make_node("Resize", ["x", "roi", "s2"], ["linear_pytorch_half_pixel"], mode="linear",
                         coordinate_transformation_mode="pytorch_half_pixel"),
    ]
    consts = {"s2": np.array([1, 1, 2, 2], np.float32), "size": np.array([1, 4, 13, 5], np.int64), "roi": empty}
    outputs = [n.output[0] for n in nodes]
    et_check(make_model(nodes, {"x": (np.float32, X)}, consts, outputs, opset=13), {"x": rand(X, 3)})
