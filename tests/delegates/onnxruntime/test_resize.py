"""align_corners Resize through the onnxruntime delegate matches the ONNX reference.

ONNX Runtime alone departs from the spec when ``in_dim * scale`` is not an
integer; the delegate rewrites the node (delegates/onnxruntime/rewrites.py), so it can
claim every case, with constant or runtime scales, up or down.
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper
from onnx.reference import ReferenceEvaluator

from unified import InferenceSession, SessionOptions

CASES = [
    ((4, 4), [2.0, 2.0]),  # integral: ORT alone is right too
    ((8, 8), [0.5, 0.75]),
    ((4, 4), [1.7, 2.3]),  # non-integral upsampling: ORT alone is off by up to 0.67
    ((2, 4), [0.6, 0.6]),  # non-integral downsampling to a length-1 axis
    ((9, 9), [0.34, 0.34]),
]


def resize_model(mode: str, in_hw: tuple[int, int], scales: list[float] | None):
    """Constant scales as an initializer, or (scales=None) a graph input."""
    inputs = [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, 2, *in_hw])]
    inits = []
    if scales is None:
        inputs.append(helper.make_tensor_value_info("scales", TensorProto.FLOAT, [4]))
    else:
        inits.append(helper.make_tensor("scales", TensorProto.FLOAT, [4], [1.0, 1.0, *scales]))
    g = helper.make_graph(
        [helper.make_node("Resize", ["X", "", "scales"], ["Y"], mode=mode, coordinate_transformation_mode="align_corners")],
        "resize",
        inputs,
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, None, None, None])],
        initializer=inits,
    )
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 19)], ir_version=9)


def reference(model, feeds):
    return ReferenceEvaluator(model).run(None, feeds)[0]


@pytest.mark.parametrize("mode", ["linear", "cubic"])
@pytest.mark.parametrize("in_hw, scales", CASES)
def test_constant_scales_are_claimed_and_match_the_onnx_reference(mode, in_hw, scales):
    model = resize_model(mode, in_hw, scales)
    sess = InferenceSession(model, ["onnxruntime"], SessionOptions(strict=True, use_cache=False))
    x = np.random.default_rng(0).standard_normal((1, 2, *in_hw)).astype(np.float32)
    (got,) = sess.run(None, {"X": x})
    np.testing.assert_allclose(got, reference(model, {"X": x}), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mode", ["linear", "cubic"])
def test_runtime_scales_are_claimed_and_match_up_and_down(mode):
    model = resize_model(mode, (4, 6), None)
    sess = InferenceSession(model, ["onnxruntime"], SessionOptions(strict=True, use_cache=False))
    x = np.random.default_rng(1).standard_normal((1, 2, 4, 6)).astype(np.float32)
    for scales in ([1, 1, 2, 2], [1, 1, 0.6, 1.7], [1, 1, 0.25, 0.5]):
        feeds = {"X": x, "scales": np.array(scales, np.float32)}
        (got,) = sess.run(None, feeds)
        np.testing.assert_allclose(got, reference(model, feeds), rtol=1e-5, atol=1e-5)


def test_onnxruntime_alone_departs_from_the_reference_where_the_rewrite_is_needed():
    """Keeps the rewrite honest: if a future ORT fixes this, the test says so."""
    model = resize_model("linear", (4, 4), [1.7, 2.3])
    x = np.random.default_rng(0).standard_normal((1, 2, 4, 4)).astype(np.float32)
    direct = ort.InferenceSession(model.SerializeToString()).run(None, {"X": x})[0]
    assert np.abs(direct - reference(model, {"X": x})).max() > 1e-2
