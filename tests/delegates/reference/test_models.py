"""Whole models on the reference delegate against ONNX Runtime: the nine
light architectures in fp32, a QDQ int8 CNN in int8 mode, fp16 mode."""

from __future__ import annotations


import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from unified import InferenceSession
from unified.conformance import zoo

FP32_RTOL, FP32_ATOL = 1e-3, 1e-4


def _with_logits(model: onnx.ModelProto) -> onnx.ModelProto:
    """Also expose the input of a final Softmax (saturated softmax outputs hide errors)."""
    last = model.graph.node[-1]
    if last.op_type == "Softmax" and last.input[0] not in {o.name for o in model.graph.output}:
        model.graph.output.append(helper.make_empty_tensor_value_info(last.input[0]))
        inferred = onnx.shape_inference.infer_shapes(model)
        del model.graph.output[:]
        model.graph.output.extend(inferred.graph.output)
    return model


@pytest.mark.slow
@pytest.mark.parametrize("name", zoo.LIGHT_MODELS)
def test_light_model_fp32_matches_onnxruntime(name, light, ort_reference, options):
    model = _with_logits(light(name))
    feeds = zoo.random_inputs(model, seed=0)
    options.strict = True
    options.enable_profiling = True
    sess = InferenceSession(model, delegates=["reference"], options=options)
    assert [p.delegate for p in sess.plan.partitions] == ["reference"]
    got = sess.run(None, feeds)
    want = ort_reference(model, feeds)
    np.testing.assert_allclose(got[0], want[0], rtol=FP32_RTOL, atol=FP32_ATOL, err_msg=f"{name}: model output")
    if len(got) > 1:
        # Logits of re-drawn nets reach 1.8e5 (resnet50); fp32 summation order then
        # moves them by ~0.07 in both ORT and NumPy (each measured against a float64
        # run), so the absolute tolerance scales with the range: 1e-6 x max|logit|.
        atol = 1e-6 * float(np.abs(want[1]).max())
        np.testing.assert_allclose(got[1], want[1], rtol=FP32_RTOL, atol=atol, err_msg=f"{name}: logits")
    stats = sess.profile[0].stats
    assert stats["dtype"] == "fp32" and stats["totals"]["macs"] > 0


def _qdq_model() -> onnx.ModelProto:
    from unified.conformance import nets

    return nets.qdq_cnn(seed=0)


def _output_step(model: onnx.ModelProto) -> float:
    """Scale of the QuantizeLinear that produces the output's integers."""
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    producer = {o: n for n in model.graph.node for o in n.output}
    dq = producer[model.graph.output[0].name]
    assert dq.op_type == "DequantizeLinear"
    return float(inits[dq.input[1]])


def _spec_reference(model: onnx.ModelProto, feeds: dict) -> list[np.ndarray]:
    """The ONNX spec's own evaluator (``onnx.reference``).

    The QDQ oracle: ONNX Runtime 1.32.0 with its default graph optimizations
    fuses the QDQ pattern into int8 kernels that are up to 20 quantization
    steps off both ``onnx.reference`` and ORT itself with optimizations
    disabled (measured on this model, seed 123); ORT 1.31.1 was within one.
    """
    from onnx.reference import ReferenceEvaluator

    return ReferenceEvaluator(model).run(None, feeds)


@pytest.mark.slow
def test_qdq_int8_model_within_one_quantization_step(options):
    model = _qdq_model()
    options.strict = True
    sess = InferenceSession(model, delegates=[("reference", {"dtype": "int8"})], options=options)
    exe = sess.partitions[0].executable
    assert exe.details["int8_fused_macs"] == sum(n.op_type in ("Conv", "Gemm") for n in model.graph.node)
    step = _output_step(model)
    rng = np.random.default_rng(123)
    got, want = [], []
    for _ in range(100):
        x = rng.uniform(-1, 1, (1, 3, 32, 32)).astype(np.float32)
        got.append(sess.run(None, {"input": x})[0])
        want.append(_spec_reference(model, {"input": x})[0])
    steps = np.abs(np.concatenate(got) - np.concatenate(want)) / step
    within = float(np.mean(steps <= 1 + 1e-3))
    assert within >= 0.999, f"{within:.4%} of outputs within 1 step (max {steps.max():.2f} steps)"


def test_int8_mode_on_a_float_model_quantizes_the_macs(options, ort_reference):
    """A float Conv in int8 mode: int8 x int8 -> int32 with symmetric scales,
    so the result is close to fp32 but not equal to it."""
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (1, 8, 10, 10)).astype(np.float32)
    w = rng.normal(0, 0.2, (16, 8, 3, 3)).astype(np.float32)
    g = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])],
        "g",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, x.shape)],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, (1, 16, 10, 10))],
        initializer=[numpy_helper.from_array(w, "w")],
    )
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)
    got = InferenceSession(model, delegates=[("reference", {"dtype": "int8"})], options=options).run(None, {"x": x})[0]
    want = ort_reference(model, {"x": x})[0]
    # symmetric int8: each operand off by at most half a step (max|v| / 254)
    bound = 9 * 8 * (np.abs(x).max() / 254 * np.abs(w).max() + np.abs(w).max() / 254 * np.abs(x).max())
    err = np.abs(got - want)
    assert 0 < err.max() <= bound


def test_fp16_mode_rounds_every_tensor_to_half(options, ort_reference):
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, (2, 64)).astype(np.float32)
    w = rng.normal(0, 0.3, (64, 32)).astype(np.float32)
    g = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["m"]), helper.make_node("Tanh", ["m"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, x.shape)],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, (2, 32))],
        initializer=[numpy_helper.from_array(w, "w")],
    )
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)
    got = InferenceSession(model, delegates=[("reference", {"dtype": "fp16"})], options=options).run(None, {"x": x})[0]
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, got.astype(np.float16).astype(np.float32))
    # fp16 operands, fp32 accumulation: the reference computed here independently
    m = x.astype(np.float16).astype(np.float64) @ w.astype(np.float16).astype(np.float64)
    expect = np.tanh(m.astype(np.float32).astype(np.float16).astype(np.float32)).astype(np.float16).astype(np.float32)
    np.testing.assert_allclose(got, expect, rtol=0, atol=2e-3)
    want = ort_reference(model, {"x": x})[0]
    assert 0 < np.abs(got - want).max() < 5e-3
