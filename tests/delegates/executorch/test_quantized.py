"""QDQ (int8) models on the executorch delegate, against ONNX Runtime running
the same QDQ model as the spec writes it (``session.disable_quant_qdq``).

Quantized models are made here with ``onnxruntime.quantization.quantize_static``
(QDQ, per-channel int8 weights, int8 activations, 32 seeded calibration
inputs from ``zoo.random_inputs``). Accuracy is counted in output
quantization steps (LSB): one step is the scale of the DequantizeLinear that
produces the float output.
"""

from __future__ import annotations

import os
import tempfile

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from unified import InferenceSession, SessionOptions
from unified.conformance import zoo
from unified.delegates.executorch import ExecuTorchDelegate
from unified.delegates.executorch.ops_quant import _host_dequantize
from unified.delegates.executorch.qdq_rewrite import align_shared_qparams, duplicate_shared_dequantize, prepare_qdq
from unified.graph import Graph

quantization = pytest.importorskip("onnxruntime.quantization")


# --- helpers ---------------------------------------------------------------------


def quantize_qdq(model: onnx.ModelProto, activation=None, calibration: int = 32) -> onnx.ModelProto:
    """``model`` quantized by ``quantize_static`` (QDQ, per-channel QInt8 weights,
    ``activation`` activations, default QInt8), calibrated on ``calibration``
    ``zoo.random_inputs`` draws (seeds 0..n-1)."""
    q = quantization
    feeds = iter([zoo.random_inputs(model, seed=s) for s in range(calibration)])

    class Reader(q.CalibrationDataReader):
        def get_next(self):
            return next(feeds, None)

    with tempfile.TemporaryDirectory() as d:
        src, dst = os.path.join(d, "fp32.onnx"), os.path.join(d, "int8.onnx")
        onnx.save(model, src)
        q.quantize_static(src, dst, Reader(), quant_format=q.QuantFormat.QDQ, per_channel=True,
                          activation_type=activation or q.QuantType.QInt8, weight_type=q.QuantType.QInt8)
        return onnx.load(dst)


def ort_qdq(model: onnx.ModelProto, feeds: dict) -> list[np.ndarray]:
    """ONNX Runtime running Q/DQ as written (no fused integer kernels), called directly."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.add_session_config_entry("session.disable_quant_qdq", "1")
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"]).run(None, feeds)


def output_step(model: onnx.ModelProto, name: str) -> float:
    """Scale of the DequantizeLinear producing output ``name`` (one LSB)."""
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    dq = next(n for n in model.graph.node if n.op_type == "DequantizeLinear" and n.output[0] == name)
    return float(inits[dq.input[1]])


def lsb_errors(got: np.ndarray, ref: np.ndarray, step: float) -> np.ndarray:
    return np.abs(got.astype(np.float64) - ref.astype(np.float64)) / step


def small_cnn() -> onnx.ModelProto:
    """Conv-Relu-Conv-Add(residual)-Relu-GlobalAveragePool-Flatten-Gemm, input (1, 3, 16, 16), seeded weights."""
    rng = np.random.default_rng(0)
    inits = {
        "w1": rng.standard_normal((8, 3, 3, 3)) * 0.3, "b1": rng.standard_normal(8) * 0.1,
        "w2": rng.standard_normal((8, 8, 3, 3)) * 0.15, "b2": rng.standard_normal(8) * 0.1,
        "w3": rng.standard_normal((10, 8)) * 0.3, "b3": rng.standard_normal(10) * 0.1,
    }
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1]),
        helper.make_node("Add", ["c2", "r1"], ["a"]),
        helper.make_node("Relu", ["a"], ["r2"]),
        helper.make_node("GlobalAveragePool", ["r2"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"]),
        helper.make_node("Gemm", ["f", "w3", "b3"], ["y"], transB=1),
    ]
    graph = helper.make_graph(
        nodes, "small_cnn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])],
        [numpy_helper.from_array(v.astype(np.float32), k) for k, v in inits.items()],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)


def _check_within_one_lsb(sess, model, seeds, share=0.99):
    name = model.graph.output[0].name
    step = output_step(model, name)
    for seed in seeds:
        feeds = zoo.random_inputs(model, seed=seed)
        err = lsb_errors(sess.run(None, feeds)[0], ort_qdq(model, feeds)[0], step)
        assert np.mean(err <= 1 + 1e-3) >= share, f"seed {seed}: {np.mean(err <= 1 + 1e-3):.4f} within 1 LSB"
        assert err.max() <= 2 + 1e-3, f"seed {seed}: max error {err.max():.2f} LSB"


# --- the small QDQ CNN, compiled once ------------------------------------------------


@pytest.fixture(scope="module")
def small_qdq():
    return quantize_qdq(small_cnn())


@pytest.fixture(scope="module")
def small_session(small_qdq, tmp_path_factory):
    return InferenceSession(small_qdq, delegates=["executorch"],
                            options=SessionOptions(strict=True, cache_dir=tmp_path_factory.mktemp("cache")))


def test_small_qdq_cnn_within_one_lsb_of_ort(small_qdq, small_session):
    assert [p.delegate for p in small_session.plan.partitions] == ["executorch"]
    name = small_qdq.graph.output[0].name
    step = output_step(small_qdq, name)
    for seed in (100, 101, 102):
        feeds = zoo.random_inputs(small_qdq, seed=seed)
        err = lsb_errors(small_session.run(None, feeds)[0], ort_qdq(small_qdq, feeds)[0], step)
        assert err.max() <= 1 + 1e-3, f"seed {seed}: {err.max():.2f} LSB from ONNX Runtime"


def test_quantized_ops_are_delegated_to_xnnpack(small_session):
    """Conv, Conv, Add, GlobalAveragePool (mean), Flatten (reshape) and Gemm
    (linear) read dequantized int8 values inside the XNNPACK subgraph: its
    int8 kernels; nothing is left on portable kernels."""
    details = small_session.partitions[0].executable.details
    assert details["xnnpack_quantized_ops"] == 6, details
    assert details["portable_ops"] == 0, details


def test_int8_weights_reach_compile_unfolded(small_session):
    """The specialized partition keeps DequantizeLinear of the int8 weights
    (``unfolded_ops``): folding them would hand XNNPACK float weights."""
    exe = small_session.partitions[0].executable
    spec = exe.specialization.model
    inits = {t.name: t.data_type for t in spec.graph.initializer}
    weight_dqs = [n for n in spec.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in inits]
    assert {inits[n.input[0]] for n in weight_dqs} == {TensorProto.INT8, TensorProto.INT32}
    assert len(weight_dqs) == 6  # three weights and three int32 biases


# --- claims and declines (no compiling) -------------------------------------------


def test_specialization_leaves_dequantize_to_executorch():
    """``unfolded_ops``: the core's specialization folds a constant
    DequantizeLinear for other delegates, not for executorch."""
    from unified.specialize import specialize

    model = _dq_model(TensorProto.INT8, [4, 3], np.full(4, 0.1), np.int8, {"axis": 0}, opset=13, const_x=True)
    kept = specialize(model, {}, unfolded=ExecuTorchDelegate.unfolded_ops)
    assert [n.op_type for n in kept.model.graph.node] == ["DequantizeLinear"]
    folded = specialize(model, {})
    assert folded.model is None and folded.constants["y"].dtype == np.float32


def _reasons(model: onnx.ModelProto) -> dict[str, str]:
    """op type -> first decline reason of ``supports()`` (empty when every node of that type is claimed)."""
    delegate, out = ExecuTorchDelegate(), {}
    for view in Graph(model).node_views:
        answer = delegate.supports(view)
        if not answer.ok:
            out.setdefault(view.op_type, answer.reason)
    return out


def test_uint8_activations_declined_with_reason():
    model = quantize_qdq(small_cnn(), activation=quantization.QuantType.QUInt8, calibration=4)
    reasons = _reasons(model)
    assert "uint8" in reasons["QuantizeLinear"] and "QInt8" in reasons["QuantizeLinear"]
    assert "uint8" in reasons["DequantizeLinear"]
    assert "Conv" not in reasons  # the float ops in between are still claimed


def _dq_model(x_type, x_shape, scale, zp_type, attrs=None, opset=21, const_x=False):
    scale = np.asarray(scale, np.float32)
    inits = [numpy_helper.from_array(scale, "s"), numpy_helper.from_array(np.zeros(scale.shape, zp_type), "z")]
    inputs = [] if const_x else [helper.make_tensor_value_info("x", x_type, x_shape)]
    if const_x:
        inits.append(numpy_helper.from_array(np.ones(x_shape, helper.tensor_dtype_to_np_dtype(x_type)), "x"))
    graph = helper.make_graph(
        [helper.make_node("DequantizeLinear", ["x", "s", "z"], ["y"], **(attrs or {}))], "dq", inputs,
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=10)


@pytest.mark.parametrize(
    "model, expected",
    [
        (_dq_model(TensorProto.INT16, [1, 4], 0.1, np.int16), "int16 quantized values (computed tensor) not handled"),
        (_dq_model(TensorProto.INT8, [4, 4], np.full((4, 2), 0.1), np.int8, {"axis": 1, "block_size": 2},
                   const_x=True), "block quantization (block_size=2) not handled"),
        (_dq_model(TensorProto.INT8, [2, 4], np.full(4, 0.1), np.int8, {"axis": 1}),
         "per-axis (1-D scale) of a computed tensor not handled"),
    ],
    ids=["int16", "block", "per-axis-activation"],
)
def test_declined_quantization_gives_reason(model, expected):
    assert expected in _reasons(model)["DequantizeLinear"]


def test_int8_per_channel_weight_claimed():
    model = _dq_model(TensorProto.INT8, [4, 3], np.full(4, 0.1), np.int8, {"axis": 0}, opset=13, const_x=True)
    assert _reasons(model) == {}


def test_int32_bias_folds_like_onnx_reference():
    """The int32 bias DequantizeLinear, folded on the host, equals onnx's reference evaluator."""
    from onnx.reference import ReferenceEvaluator

    rng = np.random.default_rng(3)
    b = rng.integers(-(2**20), 2**20, size=6).astype(np.int32)
    scale = (rng.random(6) * 1e-4).astype(np.float32)
    model = _dq_model(TensorProto.INT32, [6], scale, np.int32, {"axis": 0}, opset=19)
    ref = ReferenceEvaluator(model).run(None, {"x": b})[0]
    got = _host_dequantize(Graph(model).node_views[0], b, scale, np.zeros(6, np.int32))
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, ref)


def test_align_shared_qparams_keeps_results():
    """A Concat whose inputs carry scales other than its output's gets
    requantizing Q/DQ pairs, and ONNX Runtime computes the same outputs."""
    model = quantize_qdq(_concat_net(), calibration=8)
    aligned = onnx.ModelProto()
    aligned.CopyFrom(model)
    assert align_shared_qparams(aligned) == 1  # one input (the smaller range) requantized
    concat = next(n for n in aligned.graph.node if n.op_type == "Concat")
    producers = {o: n for n in aligned.graph.node for o in n.output}
    out_q = next(n for n in aligned.graph.node if n.op_type == "QuantizeLinear" and n.input[0] == concat.output[0])
    inits = {t.name: numpy_helper.to_array(t) for t in aligned.graph.initializer}
    scales = [float(inits[producers[x].input[1]]) for x in concat.input]
    assert scales == [float(inits[out_q.input[1]])] * 2, "a Concat input still has its own scale"
    for seed in (5, 6):
        feeds = zoo.random_inputs(model, seed=seed)
        np.testing.assert_array_equal(ort_qdq(aligned, feeds)[0], ort_qdq(model, feeds)[0])


def test_prepare_qdq_gives_each_reader_its_own_dequantize():
    """The input's DequantizeLinear, read by both Convs, is copied (PT2E's
    DuplicateDQPass), results unchanged; a float model passes untouched."""
    model = quantize_qdq(_concat_net(), calibration=8)
    prepared = prepare_qdq(model)
    reads = [x for n in prepared.graph.node for x in n.input]
    dq_outputs = [n.output[0] for n in prepared.graph.node if n.op_type == "DequantizeLinear"]
    assert all(reads.count(y) <= 1 for y in dq_outputs)  # the output DQ is read by none
    feeds = zoo.random_inputs(model, seed=9)
    np.testing.assert_array_equal(ort_qdq(prepared, feeds)[0], ort_qdq(model, feeds)[0])
    assert duplicate_shared_dequantize(prepared) == 0
    fp32 = _concat_net()
    assert prepare_qdq(fp32) is fp32


def _concat_net() -> onnx.ModelProto:
    rng = np.random.default_rng(1)
    w = [numpy_helper.from_array((rng.standard_normal((4, 3, 1, 1)) * s).astype(np.float32), f"w{i}")
         for i, s in enumerate((0.2, 2.0))]
    nodes = [helper.make_node("Conv", ["x", "w0"], ["a"]), helper.make_node("Conv", ["x", "w1"], ["b"]),
             helper.make_node("Concat", ["a", "b"], ["y"], axis=1)]
    graph = helper.make_graph(nodes, "concat", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 4, 4])], w)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)


# --- a light model ---------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.heavy
def test_light_squeezenet_int8(light, tmp_path):
    """light_squeezenet (re-drawn weights, opset 13 so per-channel DequantizeLinear
    is valid ONNX) quantized to int8 QDQ: every node on executorch, >= 99 % of
    outputs within 1 LSB of ONNX Runtime, the convolutions on XNNPACK's int8 kernels."""
    from onnx import version_converter

    model = quantize_qdq(version_converter.convert_version(light("squeezenet"), 13))
    sess = InferenceSession(model, delegates=["executorch"],
                            options=SessionOptions(strict=True, cache_dir=tmp_path / "cache"))
    _check_within_one_lsb(sess, model, seeds=(100, 101))
    details = sess.partitions[0].executable.details
    assert details["xnnpack_quantized_ops"] >= 26 and details["portable_ops"] == 0, details
