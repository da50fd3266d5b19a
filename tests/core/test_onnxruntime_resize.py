"""The onnxruntime delegate claims align_corners Resize only where ORT matches the ONNX reference."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper
from onnx.reference import ReferenceEvaluator

from unified import InferenceSession, SessionOptions
from unified.errors import UnsupportedError


def resize_model(mode: str, in_hw: tuple[int, int], scales: list[float]):
    g = helper.make_graph(
        [helper.make_node("Resize", ["X", "", "scales"], ["Y"], mode=mode, coordinate_transformation_mode="align_corners")],
        "resize",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, 1, *in_hw])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, None, None, None])],
        initializer=[helper.make_tensor("scales", TensorProto.FLOAT, [4], [1.0, 1.0, *scales])],
    )
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 19)], ir_version=9)


@pytest.mark.parametrize("mode", ["linear", "cubic"])
@pytest.mark.parametrize("in_hw, scales", [((4, 4), [2.0, 2.0]), ((8, 8), [0.5, 0.75]), ((4, 4), [1.5, 2.5])])
def test_integral_output_lengths_are_claimed_and_match_the_onnx_reference(mode, in_hw, scales):
    model = resize_model(mode, in_hw, scales)
    sess = InferenceSession(model, ["onnxruntime"], SessionOptions(strict=True, use_cache=False))
    x = np.random.default_rng(0).standard_normal((1, 1, *in_hw)).astype(np.float32)
    (got,) = sess.run(None, {"X": x})
    (want,) = ReferenceEvaluator(model).run(None, {"X": x})
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mode", ["linear", "cubic"])
@pytest.mark.parametrize("in_hw, scales", [((4, 4), [1.7, 2.3]), ((2, 4), [0.6, 0.6])])
def test_non_integral_output_lengths_are_declined_with_the_reason(mode, in_hw, scales):
    with pytest.raises(UnsupportedError, match="non-integral output length: ONNX Runtime's coordinates"):
        InferenceSession(resize_model(mode, in_hw, scales), ["onnxruntime"], SessionOptions(strict=True, use_cache=False))
