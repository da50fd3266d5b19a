"""Whole models on the tflite delegate, against ONNX Runtime called directly.

* the nine ``light_*.onnx`` architectures from the onnx wheel, weights re-drawn
  (seeded, He-scaled), ``strict=True``: every node on tflite, the output
  within rtol 1e-3 / atol 1e-4 and the pre-softmax logits too (a softmax over
  1000 classes gives values near 1e-3, or one-hot ones, where the output alone
  would hide errors), with rtol 1e-3 and an atol of 1e-5 x max |logit|;
* the MobileNet-style net and MiniLM from ``unified.conformance.nets``:
  tflite takes >= 90% of the nodes, outputs within rtol 1e-3;
* the int8 QDQ CNN from ``quantize_static``;
* layout: a partition of convolutions has at most 2 TRANSPOSE ops per
  boundary tensor (NCHW in, NCHW out), none between two TFLite ops.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from unified import InferenceSession, SessionOptions
from unified.conformance import zoo

RTOL, ATOL = 1e-3, 1e-4
_SLOW_LIGHT = {"bvlc_alexnet", "densenet121", "inception_v1", "inception_v2", "resnet50", "vgg19", "zfnet512"}


def with_logits(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` with the input of every output-producing Softmax added as an output."""
    inferred = onnx.shape_inference.infer_shapes(model)
    types = {vi.name: vi for vi in inferred.graph.value_info}
    outs = {o.name for o in model.graph.output}
    extra = [n.input[0] for n in model.graph.node if n.op_type == "Softmax" and n.output[0] in outs]
    out = onnx.ModelProto()
    out.CopyFrom(model)
    out.graph.output.extend(types[x] for x in extra)
    return out


def _transposes(sess: InferenceSession) -> list[int]:
    return [c.executable.details["transposes"] for c in sess.partitions]


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n in _SLOW_LIGHT else n for n in zoo.LIGHT_MODELS]
)
def test_light_model_strict_matches_onnxruntime(name: str, light, ort_reference, options) -> None:
    model = with_logits(light(name))
    feeds = zoo.random_inputs(model, seed=0)
    options.strict = True
    sess = InferenceSession(model, delegates=["tflite"], options=options)
    assert sess.plan.node_counts() == {"tflite": len(sess.model.graph.node)}
    got, ref = sess.run(None, feeds), ort_reference(model, feeds)
    np.testing.assert_allclose(got[0], ref[0], rtol=RTOL, atol=ATOL, err_msg=f"{name}: model output")
    for o, g, r in zip(model.graph.output[1:], got[1:], ref[1:]):
        # Re-drawn weights drive logits up to ~1e5 (ResNet-50); there float32 summation
        # order alone (XNNPACK vs MLAS; ORT with and without graph optimizations differ the
        # same way) moves a near-zero logit by ~0.1, so atol scales with the logits.
        np.testing.assert_allclose(g, r, rtol=RTOL, atol=1e-5 * float(np.abs(r).max()), err_msg=f"{name}: {o.name}")
    # layout: one partition; NCHW->NHWC at the input, none inside. ShuffleNet's channel
    # shuffles (Reshape-Transpose-Reshape) are data movement the model itself asks for.
    own = sum(1 for n in model.graph.node if n.op_type == "Transpose")
    assert len(sess.partitions) == 1
    assert _transposes(sess)[0] <= 2 * (len(sess.plan.partitions[0].inputs) + len(model.graph.output)) + own


def test_conv_partition_transposes_only_at_boundaries(make_model, tfl_check) -> None:
    """Conv-Relu-Conv-MaxPool-Conv-Add-GlobalAveragePool: NHWC end to end; the
    one input is transposed once in, the one 4-D output once out."""
    from onnx import helper

    rng = np.random.default_rng(0)
    w = {f"W{i}": rng.normal(0, 0.2, s).astype(np.float32) for i, s in
         enumerate([(16, 3, 3, 3), (16, 16, 3, 3), (16, 16, 1, 1)])}
    nodes = [
        helper.make_node("Conv", ["x", "W0"], ["c0"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c0"], ["r0"]),
        helper.make_node("Conv", ["r0", "W1"], ["c1"], pads=[1, 1, 1, 1], group=1),
        helper.make_node("MaxPool", ["c1"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p", "W2"], ["c2"]),
        helper.make_node("Add", ["c2", "p"], ["y"]),
        helper.make_node("GlobalAveragePool", ["y"], ["g"]),
    ]
    m = make_model(nodes, {"x": (np.float32, (1, 3, 32, 32))}, w, outputs=("y", "g"))
    sess = tfl_check(m, {"x": rng.uniform(-1, 1, (1, 3, 32, 32)).astype(np.float32)})
    # x: 1 in; y: 1 out; g is (1, 16, 1, 1): NHWC (1, 1, 1, 16) leaves by a RESHAPE, not a TRANSPOSE
    assert _transposes(sess) == [2]


def test_mobilenet_like_mostly_tflite(ort_reference, options) -> None:
    nets = pytest.importorskip("unified.conformance.nets")
    model = nets.mobilenet_like()
    feeds = zoo.random_inputs(model, seed=0)
    sess = InferenceSession(model, delegates=["tflite"], options=options)
    counts = sess.plan.node_counts()
    assert counts.get("tflite", 0) >= 0.9 * sum(counts.values())
    np.testing.assert_allclose(sess.run(None, feeds)[0], ort_reference(model, feeds)[0], rtol=RTOL, atol=ATOL)
    assert _transposes(sess) == [1]  # NCHW in; the (1, 10) logits need none


@pytest.mark.slow
def test_minilm_mostly_tflite(ort_reference, options) -> None:
    nets = pytest.importorskip("unified.conformance.nets")
    try:
        model = nets.minilm(shape=(2, 16))
    except Exception as exc:  # the offline weights package is not installed here
        pytest.skip(f"MiniLM export unavailable: {exc}")
    feeds = nets.minilm_tokenize(["unified runs one model on many delegates", "a second, longer sentence here"],
                                 seq=16)
    sess = InferenceSession(model, delegates=["tflite"], options=options)
    counts = sess.plan.node_counts()
    assert counts.get("tflite", 0) >= 0.9 * sum(counts.values())
    got, ref = sess.run(None, feeds)[0], ort_reference(model, feeds)[0]
    np.testing.assert_allclose(got, ref, rtol=RTOL, atol=1e-5)


def test_qdq_cnn_int8_strict(options) -> None:
    """The QDQ net against ONNX Runtime with graph optimizations off, which
    evaluates QuantizeLinear/DequantizeLinear as the ONNX spec writes them
    (float ops between fake-quantized values), as the tflite lowering does.
    ORT's default optimizations fuse the QDQ groups into integer kernels
    (QLinearConv, QGemm) that round differently: here they move the logits by
    one output quantization step (about 0.027) on every seed tried."""
    import onnxruntime as ort

    nets = pytest.importorskip("unified.conformance.nets")
    model = nets.qdq_cnn()
    feeds = zoo.random_inputs(model, seed=0)
    options.strict = True
    sess = InferenceSession(model, delegates=["tflite"], options=options)
    assert sess.plan.node_counts() == {"tflite": len(model.graph.node)}
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    m = onnx.ModelProto()
    m.CopyFrom(model)
    m.ir_version = min(m.ir_version, 10)
    want = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    # int8 activations: one quantization step of the output is the meaningful tolerance
    np.testing.assert_allclose(sess.run(None, feeds)[0], want, rtol=0, atol=2e-3)
