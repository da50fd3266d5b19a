"""``zoo.calibrate_batchnorm`` / ``redraw_weights(calibrate=True)``: statistics against NumPy, ResNet-50 under ORT."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from unified.conformance import zoo

EPS = 1e-5


def _all_values(model: onnx.ModelProto, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every node output of ``model`` on ``feed``, by ONNX Runtime (CPU)."""
    import onnxruntime as ort

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    probe.ir_version = min(probe.ir_version, 10)
    names = [o for n in probe.graph.node for o in n.output if o]
    have = {o.name for o in probe.graph.output}
    probe.graph.output.extend(helper.make_tensor_value_info(x, TensorProto.FLOAT, None) for x in names if x not in have)
    so = ort.SessionOptions()
    so.log_severity_level = 3
    session = ort.InferenceSession(probe.SerializeToString(), so, providers=["CPUExecutionProvider"])
    fetch = [o.name for o in probe.graph.output]
    return dict(zip(fetch, session.run(fetch, feed)))


def _two_bn_chain() -> onnx.ModelProto:
    """x(2,3,4,4) -> BN1 -> Mul 2 -> Add 1 -> BN2 -> y, random BN statistics far from x's."""
    rng = np.random.default_rng(7)
    inits = []
    for k in (1, 2):
        for name, value in (("s", rng.uniform(0.5, 1.5, 3)), ("b", rng.normal(0, 0.1, 3)),
                            ("m", rng.normal(5, 1, 3)), ("v", rng.uniform(10, 20, 3))):
            inits.append(numpy_helper.from_array(value.astype(np.float32), f"{name}{k}"))
    inits += [numpy_helper.from_array(np.float32(2), "two"), numpy_helper.from_array(np.float32(1), "one")]
    nodes = [
        helper.make_node("BatchNormalization", ["x", "s1", "b1", "m1", "v1"], ["y1"], epsilon=EPS),
        helper.make_node("Mul", ["y1", "two"], ["z0"]),
        helper.make_node("Add", ["z0", "one"], ["z"]),
        helper.make_node("BatchNormalization", ["z", "s2", "b2", "m2", "v2"], ["y"], epsilon=EPS),
    ]
    graph = helper.make_graph(nodes, "chain", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 4, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3, 4, 4])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)], ir_version=8)


def _bn_params(model: onnx.ModelProto, k: int) -> list[np.ndarray]:
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    bn = [n for n in model.graph.node if n.op_type == "BatchNormalization"][k]
    return [inits[x].astype(np.float64) for x in bn.input[1:5]]


def test_statistics_are_the_inputs_moments_pass_after_pass():
    model = _two_bn_chain()
    feeds = [{"x": np.random.default_rng(s).normal(3, 2, (2, 3, 4, 4)).astype(np.float32)} for s in (0, 1)]
    out = zoo.calibrate_batchnorm(model, feeds)
    x = np.concatenate([f["x"] for f in feeds]).astype(np.float64)
    s1, b1, m1, v1 = _bn_params(out, 0)
    np.testing.assert_allclose(m1, x.mean(axis=(0, 2, 3)), rtol=1e-6)
    np.testing.assert_allclose(v1, x.var(axis=(0, 2, 3)), rtol=1e-6)
    # BN2 sees BN1's calibrated output: hand-computed from the new m1, v1, not from the old ones
    c = (slice(None), None, None)
    z = 2 * (s1[c] * (x - m1[c]) / np.sqrt(v1[c] + EPS) + b1[c]) + 1
    _, _, m2, v2 = _bn_params(out, 1)
    np.testing.assert_allclose(m2, z.mean(axis=(0, 2, 3)), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(v2, z.var(axis=(0, 2, 3)), rtol=1e-5)
    # scale, bias kept; the input model untouched
    np.testing.assert_array_equal(_bn_params(out, 1)[:2], _bn_params(model, 1)[:2])
    assert _bn_params(model, 0)[3].min() >= 10


def test_errors_and_no_batchnorm():
    model = _two_bn_chain()
    with pytest.raises(ValueError, match="at least one feed"):
        zoo.calibrate_batchnorm(model, [])
    model.graph.node[0].input[3] = "x"  # a mean that is not an initializer
    with pytest.raises(ValueError, match="must be"):
        zoo.calibrate_batchnorm(model, {"x": np.zeros((2, 3, 4, 4), np.float32)})
    plain = _two_bn_chain()
    del plain.graph.node[:]
    plain.graph.node.append(helper.make_node("Relu", ["x"], ["y"]))
    out = zoo.calibrate_batchnorm(plain, {"x": np.zeros((2, 3, 4, 4), np.float32)})
    assert out.graph.node == plain.graph.node


@pytest.mark.slow
def test_calibrated_resnet50_stays_in_fp16_range():
    original = onnx.load(zoo.light_model_path("resnet50"))
    raw = zoo.redraw_weights(original, seed=0)
    calibrated = zoo.redraw_weights(original, seed=0, calibrate=True)
    feed = zoo.random_inputs(raw, seed=0)  # not the calibration data (seed 1)
    raw_values, values = _all_values(raw, feed), _all_values(calibrated, feed)
    assert max(np.abs(v).max() for v in raw_values.values()) > 65504  # the problem: fp16 would overflow
    assert max(np.abs(v).max() for v in values.values()) < 100  # measured 20.1
    # still re-drawn weights: conv weights as redraw_weights draws them, a non-uniform output unlike the fills
    inits = {t.name: numpy_helper.to_array(t) for t in calibrated.graph.initializer}
    raw_inits = {t.name: numpy_helper.to_array(t) for t in raw.graph.initializer}
    conv_w = [n.input[1] for n in calibrated.graph.node if n.op_type == "Conv"]
    assert all(np.array_equal(inits[w], raw_inits[w]) for w in conv_w)
    (y,) = [values[o.name] for o in calibrated.graph.output]
    assert y.std() > 1e-3 and not np.allclose(y, zoo.light_reference_output("resnet50"), atol=1e-4)
