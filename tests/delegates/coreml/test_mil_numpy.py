"""The mil-numpy kernels against hand-computed MIL op results (small hand-written arrays).

Every kernel of ``KERNELS`` has at least one case here (checked by
``test_every_kernel_has_a_hand_computed_case``); the expected values are
worked out by hand from the coremltools op definitions cited in each kernel.
No coremltools needed: ops are built as ``MilOp`` records directly.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from unified.delegates.coreml.mil_numpy import KERNELS, Arg, MilOp, run_op
from unified.errors import DelegateError

F = np.float32


class Many(list):
    """Values of a tuple parameter (``concat``'s ``values``)."""


def mil(op_type: str, outputs: int = 1, out_dtype=F, **inputs) -> list[np.ndarray]:
    """Run one op on constant operands; every output declared ``out_dtype`` with no fixed shape."""
    bound = {k: [Arg(value=np.asarray(x)) for x in v] if isinstance(v, Many) else [Arg(value=np.asarray(v))]
             for k, v in inputs.items()}
    op = MilOp(op_type, bound, [(f"y{i}", out_dtype, None) for i in range(outputs)])
    env: dict = {}
    run_op(op, env)
    return [env[f"y{i}"] for i in range(outputs)]


def one(op_type: str, out_dtype=F, **inputs) -> np.ndarray:
    return mil(op_type, 1, out_dtype, **inputs)[0]


X = np.array([[-2.0, -0.5], [0.0, 3.0]], F)
I32 = np.int32
B = np.bool_

# (op type, inputs, expected, output dtype) -- expected by hand from the MIL definitions
CASES = [
    ("add", dict(x=X, y=np.array([1, 2], F)), [[-1, 1.5], [1, 5]], F),
    ("sub", dict(x=X, y=F(1)), [[-3, -1.5], [-1, 2]], F),
    ("mul", dict(x=X, y=F(2)), [[-4, -1], [0, 6]], F),
    ("real_div", dict(x=X, y=F(2)), [[-1, -0.25], [0, 1.5]], F),
    ("real_div", dict(x=np.array([7, -7], I32), y=np.array([2, 2], I32)), [3, -3], I32),
    ("floor_div", dict(x=np.array([7, -7], F), y=F(2)), [3, -4], F),
    ("mod", dict(x=np.array([7, -7], F), y=F(3)), [1, 2], F),
    ("pow", dict(x=np.array([2, 3], F), y=F(2)), [4, 9], F),
    ("maximum", dict(x=X, y=F(0)), [[0, 0], [0, 3]], F),
    ("minimum", dict(x=X, y=F(0)), [[-2, -0.5], [0, 0]], F),
    ("equal", dict(x=X, y=F(0)), [[0, 0], [1, 0]], B),
    ("not_equal", dict(x=X, y=F(0)), [[1, 1], [0, 1]], B),
    ("less", dict(x=X, y=F(0)), [[1, 1], [0, 0]], B),
    ("less_equal", dict(x=X, y=F(0)), [[1, 1], [1, 0]], B),
    ("greater", dict(x=X, y=F(0)), [[0, 0], [0, 1]], B),
    ("greater_equal", dict(x=X, y=F(0)), [[0, 0], [1, 1]], B),
    ("logical_and", dict(x=np.array([1, 1, 0], B), y=np.array([1, 0, 0], B)), [1, 0, 0], B),
    ("logical_or", dict(x=np.array([1, 1, 0], B), y=np.array([1, 0, 0], B)), [1, 1, 0], B),
    ("logical_xor", dict(x=np.array([1, 1, 0], B), y=np.array([1, 0, 0], B)), [0, 1, 0], B),
    ("logical_not", dict(x=np.array([1, 0], B)), [0, 1], B),
    ("abs", dict(x=X), [[2, 0.5], [0, 3]], F),
    ("acos", dict(x=np.array([1, 0], F)), [0, math.pi / 2], F),
    ("asin", dict(x=np.array([0, 1], F)), [0, math.pi / 2], F),
    ("atan", dict(x=np.array([0, 1], F)), [0, math.pi / 4], F),
    ("atanh", dict(x=np.array([0, 0.5], F)), [0, 0.5 * math.log(3)], F),
    ("ceil", dict(x=np.array([-1.5, 1.2], F)), [-1, 2], F),
    ("floor", dict(x=np.array([-1.5, 1.2], F)), [-2, 1], F),
    ("round", dict(x=np.array([0.5, 1.5, -2.5, 2.6], F)), [0, 2, -2, 3], F),
    ("cos", dict(x=np.array([0, math.pi], F)), [1, -1], F),
    ("cosh", dict(x=np.array([0], F)), [1], F),
    ("sin", dict(x=np.array([0, math.pi / 2], F)), [0, 1], F),
    ("sinh", dict(x=np.array([0], F)), [0], F),
    ("tan", dict(x=np.array([0, math.pi / 4], F)), [0, 1], F),
    ("tanh", dict(x=np.array([0], F)), [0], F),
    ("exp", dict(x=np.array([0, 1], F)), [1, math.e], F),
    ("exp2", dict(x=np.array([0, 3], F)), [1, 8], F),
    ("log", dict(x=np.array([1, math.e], F)), [0, 1], F),
    ("sqrt", dict(x=np.array([4, 9], F)), [2, 3], F),
    ("rsqrt", dict(x=np.array([4, 0.25], F)), [0.5, 2], F),
    ("inverse", dict(x=np.array([2, 0.5], F), epsilon=F(0)), [0.5, 2], F),
    ("inverse", dict(x=np.array([1.0], F)), [1 / 1.0001], F),  # default epsilon 1e-4
    ("square", dict(x=np.array([-3], F)), [9], F),
    ("sign", dict(x=np.array([-2, 0, 5], F)), [-1, 0, 1], F),
    ("erf", dict(x=np.array([0, 1], F)), [0, 0.8427007929497149], F),
    ("relu", dict(x=X), [[0, 0], [0, 3]], F),
    ("relu6", dict(x=np.array([-1, 3, 7], F)), [0, 3, 6], F),
    ("sigmoid", dict(x=np.array([0, math.log(3)], F)), [0.5, 0.75], F),
    ("softplus", dict(x=np.array([0, math.log(math.e - 1)], F)), [math.log(2), 1], F),
    ("softsign", dict(x=np.array([-1, 3], F)), [-0.5, 0.75], F),
    ("silu", dict(x=np.array([0, math.log(3)], F)), [0, 0.75 * math.log(3)], F),
    ("clip", dict(x=X, alpha=F(-1), beta=F(1)), [[-1, -0.5], [0, 1]], F),
    ("threshold", dict(x=X, alpha=F(-1)), [[-1, -0.5], [0, 3]], F),
    ("cast", dict(x=np.array([1.7, -1.7], F), dtype="int32"), [1, -1], I32),
    ("cast", dict(x=np.array([1, 0], I32), dtype="bool"), [1, 0], B),
    ("select", dict(cond=np.array([1, 0], B), a=np.array([1, 2], F), b=np.array([3, 4], F)), [1, 4], F),
    ("elu", dict(x=np.array([-math.log(2), 2], F), alpha=F(2)), [-1, 2], F),
    ("leaky_relu", dict(x=np.array([-2, 2], F), alpha=F(0.5)), [-1, 2], F),
    ("thresholded_relu", dict(x=np.array([0.5, 1, 2], F), alpha=F(1)), [0, 1, 2], F),
    ("prelu", dict(x=np.array([[[-2.0]], [[-2.0]]], F)[None], alpha=np.array([0.5, 2], F)), [[[[-1]], [[-4]]]], F),
    ("sigmoid_hard", dict(x=np.array([-10, 0, 1, 10], F), alpha=F(0.2), beta=F(0.5)), [0, 0.5, 0.7, 1], F),
    ("clamped_relu", dict(x=np.array([-2, 1, 8], F), alpha=F(0.5), beta=F(6)), [-1, 1, 6], F),
    ("scaled_tanh", dict(x=np.array([0], F), alpha=F(2), beta=F(3)), [0], F),
    ("linear_activation", dict(x=np.array([1, 2], F), alpha=F(2), beta=F(1)), [3, 5], F),
    ("gelu", dict(x=np.array([0, 1], F), mode="EXACT"), [0, 0.8413447460685429], F),
    ("gelu", dict(x=np.array([1], F), mode="TANH_APPROXIMATION"), [0.8411919906082768], F),
    ("gelu", dict(x=np.array([1], F), mode="SIGMOID_APPROXIMATION"), [1 / (1 + math.exp(-1.702))], F),
    # tensor ops
    ("reshape", dict(x=np.arange(6, dtype=F), shape=np.array([2, -1], I32)), [[0, 1, 2], [3, 4, 5]], F),
    ("reshape", dict(x=np.arange(6, dtype=F).reshape(2, 3), shape=np.array([0, 3], I32)), [[0, 1, 2], [3, 4, 5]], F),
    ("transpose", dict(x=np.arange(6, dtype=F).reshape(2, 3), perm=np.array([1, 0], I32)),
     [[0, 3], [1, 4], [2, 5]], F),
    ("expand_dims", dict(x=np.array([1, 2], F), axes=np.array([-1], I32)), [[1], [2]], F),
    ("squeeze", dict(x=np.array([[[1], [2]]], F), axes=np.array([0, 2], I32)), [1, 2], F),
    ("squeeze", dict(x=np.array([[[1], [2]]], F)), [1, 2], F),
    ("flatten2d", dict(x=np.arange(8, dtype=F).reshape(2, 2, 2), axis=I32(1)),
     [[0, 1, 2, 3], [4, 5, 6, 7]], F),
    ("concat", dict(values=Many([np.array([[1]], F), np.array([[2, 3]], F)]), axis=I32(1)), [[1, 2, 3]], F),
    ("concat", dict(values=Many([np.array([1, 2], F), np.array([3, 4], F)]), axis=I32(0), interleave=True),
     [1, 3, 2, 4], F),
    ("stack", dict(values=Many([np.array([1, 2], F), np.array([3, 4], F)]), axis=I32(1)), [[1, 3], [2, 4]], F),
    ("slice_by_index", dict(x=np.arange(10, dtype=F), begin=np.array([1], I32), end=np.array([8], I32),
                            stride=np.array([3], I32)), [1, 4, 7], F),
    ("slice_by_index", dict(x=np.arange(6, dtype=F).reshape(2, 3), begin=np.array([1, 0], I32),
                            end=np.array([0, 2], I32), end_mask=np.array([1, 0], B),
                            squeeze_mask=np.array([0, 0], B)), [[3, 4]], F),
    ("slice_by_index", dict(x=np.arange(6, dtype=F).reshape(2, 3), begin=np.array([1, -1], I32),
                            end=np.array([2, 0], I32), squeeze_mask=np.array([1, 1], B)), 5, F),
    ("slice_by_size", dict(x=np.arange(6, dtype=F).reshape(2, 3), begin=np.array([0, 1], I32),
                           size=np.array([-1, 2], I32)), [[1, 2], [4, 5]], F),
    ("gather", dict(x=np.array([[1, 2], [3, 4], [5, 6]], F), indices=np.array([2, -3], I32), axis=I32(0)),
     [[5, 6], [1, 2]], F),
    ("gather", dict(x=np.array([[1, 2], [3, 4]], F), indices=np.array([[1], [0]], I32), axis=I32(1),
                    batch_dims=I32(1)), [[2], [3]], F),
    ("gather_along_axis", dict(x=np.array([[1, 2], [3, 4]], F), indices=np.array([[1, 0], [0, 0]], I32),
                               axis=I32(1)), [[2, 1], [3, 3]], F),
    ("gather_nd", dict(x=np.array([[1, 2], [3, 4]], F), indices=np.array([[1, 0], [0, 1]], I32)), [3, 2], F),
    ("pad", dict(x=np.array([[1, 2]], F), pad=np.array([1, 0], I32), mode="constant", constant_val=F(9)),
     [[9, 1, 2]], F),
    ("pad", dict(x=np.array([[1, 2, 3]], F), pad=np.array([0, 0, 2, 1], I32), mode="reflect"),
     [[3, 2, 1, 2, 3, 2]], F),
    ("pad", dict(x=np.array([[1, 2]], F), pad=np.array([1, 1], I32), mode="replicate"), [[1, 1, 2, 2]], F),
    ("tile", dict(x=np.array([[1, 2]], F), reps=np.array([2, 1], I32)), [[1, 2], [1, 2]], F),
    ("fill", dict(shape=np.array([2], I32), value=F(7)), [7, 7], F),
    ("fill_like", dict(ref_tensor=np.zeros((1, 2), I32), value=F(3)), [[3, 3]], F),
    ("range_1d", dict(start=I32(1), end=I32(7), step=I32(2)), [1, 3, 5], I32),
    ("shape", dict(x=np.zeros((2, 5), F)), [2, 5], I32),
    ("identity", dict(x=X), X, F),
    ("cumsum", dict(x=np.array([1, 2, 3], F), axis=I32(0)), [1, 3, 6], F),
    ("cumsum", dict(x=np.array([1, 2, 3], F), axis=I32(0), exclusive=True, reverse=True), [5, 3, 0], F),
    ("reduce_sum", dict(x=X, axes=np.array([1], I32)), [-2.5, 3], F),
    ("reduce_mean", dict(x=X, axes=np.array([0], I32), keep_dims=True), [[-1, 1.25]], F),
    ("reduce_max", dict(x=X), 3, F),
    ("reduce_min", dict(x=X, axes=np.array([-1], I32)), [-2, 0], F),
    ("reduce_prod", dict(x=np.array([2, 3, 4], F)), 24, F),
    ("reduce_l1_norm", dict(x=X), 5.5, F),
    ("reduce_l2_norm", dict(x=np.array([3, 4], F)), 5, F),
    ("reduce_sum_square", dict(x=np.array([3, 4], F)), 25, F),
    ("reduce_log_sum", dict(x=np.array([1, math.e - 1], F)), 1, F),
    ("reduce_log_sum_exp", dict(x=np.array([0, 0], F)), math.log(2), F),
    ("reduce_argmax", dict(x=np.array([[1, 5, 5], [7, 0, 1]], F), axis=I32(1)), [1, 0], I32),
    ("reduce_argmin", dict(x=np.array([[1, 5, 0]], F), axis=I32(1), keep_dims=True), [[2]], I32),
    # nn ops
    ("matmul", dict(x=np.array([[1, 2]], F), y=np.array([[3], [4]], F)), [[11]], F),
    ("matmul", dict(x=np.array([[1, 2]], F), y=np.array([[3, 4]], F), transpose_y=True), [[11]], F),
    ("linear", dict(x=np.array([[1, 2]], F), weight=np.array([[3, 4], [1, 0]], F), bias=np.array([1, 1], F)),
     [[12, 2]], F),
    ("softmax", dict(x=np.array([0, math.log(3)], F), axis=I32(-1)), [0.25, 0.75], F),
    ("batch_norm", dict(x=np.array([[[2.0]], [[4.0]]], F)[None], mean=np.array([1, 2], F),
                        variance=np.array([4, 1], F), gamma=np.array([2, 1], F), beta=np.array([0, 1], F),
                        epsilon=F(0)), [[[[1]], [[3]]]], F),
    ("instance_norm", dict(x=np.array([[[1, 3]]], F), gamma=np.array([2], F), beta=np.array([1], F),
                           epsilon=F(0)), [[[-1, 3]]], F),
    ("layer_norm", dict(x=np.array([[1, 3], [4, 2]], F), axes=np.array([-1], I32), epsilon=F(0),
                        gamma=np.array([1, 2], F), beta=np.array([0, 1], F)), [[-1, 3], [1, -1]], F),
    ("local_response_norm", dict(x=np.array([[[[1.0]], [[2.0]]]], F), size=I32(2), alpha=F(2), beta=F(1),
                                 k=F(1)), [[[[1 / 6]], [[2 / 5]]]], F),
    ("resize_bilinear", dict(x=np.array([[[[0, 2]]]], F), target_size_height=I32(1), target_size_width=I32(3),
                             sampling_mode="STRICT_ALIGN_CORNERS"), [[[[0, 1, 2]]]], F),
    ("resize_bilinear", dict(x=np.array([[[[0, 2]]]], F), target_size_height=I32(1), target_size_width=I32(4),
                             sampling_mode="UNALIGN_CORNERS"), [[[[0, 0.5, 1.5, 2]]]], F),
    ("resize_bilinear", dict(x=np.array([[[[0, 2]]]], F), target_size_height=I32(1), target_size_width=I32(4),
                             sampling_mode="DEFAULT"), [[[[0, 1, 2, 2]]]], F),
    ("upsample_nearest_neighbor", dict(x=np.array([[[[1, 2]]]], F), scale_factor_height=I32(2),
                                       scale_factor_width=I32(2)), [[[[1, 1, 2, 2], [1, 1, 2, 2]]]], F),
]

# 1 x 1 x 3 x 3 input 1..9 for the spatial ops
IMG = np.arange(1, 10, dtype=F).reshape(1, 1, 3, 3)
ONES_2x2 = np.ones((1, 1, 2, 2), F)
SPATIAL = [
    # 2x2 all-ones kernel, valid: window sums of 1..9
    ("conv", dict(x=IMG, weight=ONES_2x2, pad_type="valid"), [[[[12, 16], [24, 28]]]], F),
    # custom pad [top 1, bottom 0, left 0, right 1] (interleaved per axis), stride 2, bias 1
    ("conv", dict(x=IMG, weight=ONES_2x2, pad_type="custom", pad=np.array([1, 0, 0, 1], I32),
                  strides=np.array([2, 2], I32), bias=np.array([1], F)), [[[[4, 4], [25, 16]]]], F),
    # same: ceil(3/1) = 3 outputs, the extra pad at the end
    ("conv", dict(x=IMG, weight=ONES_2x2, pad_type="same"), [[[[12, 16, 9], [24, 28, 15], [15, 17, 9]]]], F),
    # dilation 2 over 3x3: only the four corners
    ("conv", dict(x=IMG, weight=ONES_2x2, pad_type="valid", dilations=np.array([2, 2], I32)), [[[[20]]]], F),
    # depthwise, 2 groups: channel 0 * 1, channel 1 * 2 (1x1 kernels)
    ("conv", dict(x=np.concatenate([IMG, IMG], 1)[:, :, :1, :1], weight=np.array([1, 2], F).reshape(2, 1, 1, 1),
                  groups=I32(2)), [[[[1]], [[2]]]], F),
    # transpose conv of a 1x1x2x2 input with a 2x2 ones kernel, stride 2: each pixel a 2x2 block
    ("conv_transpose", dict(x=np.array([[[[1, 2], [3, 4]]]], F), weight=ONES_2x2, strides=np.array([2, 2], I32)),
     [[[[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 4, 4], [3, 3, 4, 4]]]], F),
    # stride 1: overlap-add; pad [1, 1, 1, 1] crops the border of the 3x3 full output
    ("conv_transpose", dict(x=np.array([[[[1, 2], [3, 4]]]], F), weight=ONES_2x2, pad_type="custom",
                            pad=np.array([1, 1, 1, 1], I32)), [[[[10]]]], F),
    ("max_pool", dict(x=IMG, kernel_sizes=np.array([2, 2], I32), strides=np.array([1, 1], I32), pad_type="valid"),
     [[[[5, 6], [8, 9]]]], F),
    ("max_pool", dict(x=IMG, kernel_sizes=np.array([2, 2], I32), strides=np.array([2, 2], I32), pad_type="valid",
                      ceil_mode=True), [[[[5, 6], [8, 9]]]], F),
    ("avg_pool", dict(x=IMG, kernel_sizes=np.array([2, 2], I32), strides=np.array([2, 2], I32), pad_type="custom",
                      pad=np.array([0, 1, 0, 1], I32), exclude_padding_from_average=True),
     [[[[3, 4.5], [7.5, 9]]]], F),
    ("avg_pool", dict(x=IMG, kernel_sizes=np.array([2, 2], I32), strides=np.array([2, 2], I32), pad_type="custom",
                      pad=np.array([0, 1, 0, 1], I32), exclude_padding_from_average=False),
     [[[[3, 2.25], [3.75, 2.25]]]], F),
    ("l2_pool", dict(x=np.array([[[[3, 4]]]], F), kernel_sizes=np.array([1, 2], I32), strides=np.array([1, 1], I32),
                     pad_type="valid"), [[[[5]]]], F),
]


@pytest.mark.parametrize("op_type, inputs, expected, dtype", CASES + SPATIAL,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES + SPATIAL)])
def test_kernel_matches_hand_computed(op_type: str, inputs: dict, expected, dtype) -> None:
    got = one(op_type, dtype, **inputs)
    want = np.asarray(expected, dtype=dtype)
    assert got.dtype == want.dtype
    assert got.shape == want.shape, (got.shape, want.shape)
    np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64), rtol=1e-6, atol=1e-6)


def test_split_by_count_and_by_sizes() -> None:
    a, b = mil("split", 2, x=np.arange(4, dtype=F), num_splits=I32(2), axis=I32(0))
    assert a.tolist() == [0, 1] and b.tolist() == [2, 3]
    a, b = mil("split", 2, x=np.arange(4, dtype=F), split_sizes=np.array([1, 3], I32), axis=I32(-1))
    assert a.tolist() == [0] and b.tolist() == [1, 2, 3]


def test_every_kernel_has_a_hand_computed_case() -> None:
    covered = {c[0] for c in CASES + SPATIAL} | {"split"}
    assert sorted(set(KERNELS) - covered) == []


def test_fp16_output_is_rounded_once_from_fp32_accumulation() -> None:
    # 2048 + 1 + 1 ... : in fp16 (ULP 2 at 2048) a running fp16 sum would stay at 2048;
    # MIL's fp16 program accumulates in fp32 and rounds the result once: 2048 + 4 = 2052.
    x = np.array([2048, 1, 1, 1, 1], np.float16)
    got = one("reduce_sum", np.float16, x=x)
    assert got.dtype == np.float16 and float(got) == 2052.0
    # and the result is representable fp16: 1/3 rounds to the nearest half (0.333251953125)
    third = one("real_div", np.float16, x=np.float16(1), y=np.float16(3))
    assert float(third) == float(np.float16(1 / 3)) == 0.333251953125


def test_unknown_op_is_an_error_naming_it() -> None:
    with pytest.raises(DelegateError, match=r"no kernel for MIL op 'band_part' \(op 'y0'\)"):
        one("band_part", x=X)


def test_declared_shape_mismatch_is_an_error() -> None:
    op = MilOp("relu", {"x": [Arg(value=X)]}, [("y", F, (3, 3))])
    with pytest.raises(DelegateError, match=r"output 'y' has shape \(2, 2\), the program declares \(3, 3\)"):
        run_op(op, {})


def test_unbound_variable_is_an_error() -> None:
    op = MilOp("relu", {"x": [Arg(name="missing")]}, [("y", F, None)])
    with pytest.raises(DelegateError, match="reads 'missing', which no earlier op produced"):
        run_op(op, {})
