"""QDQ models on the tflite delegate as real int8 flatbuffers (``ops_quant.py``).

References: ONNX Runtime running the same QDQ model, both with its QDQ
fusion (int8 kernels) and with ``session.disable_quant_qdq=1`` (the QDQ
graph as ONNX defines it); the tolerance is one output quantization step.
"""

from __future__ import annotations


import numpy as np
import onnx
import pytest
from onnx import helper as h
from onnx import numpy_helper

from unified import InferenceSession, SessionOptions
from unified.errors import UnsupportedError

from ...onnx_models import graph_model

ort = pytest.importorskip("onnxruntime")
quantization = pytest.importorskip("onnxruntime.quantization")


def quantize(model: onnx.ModelProto, tmp_path, calibration: int = 32) -> onnx.ModelProto:
    """QDQ int8, per-channel weights, calibrated on ``zoo.random_inputs`` seeds 0..31."""
    from unified.conformance import zoo

    q = quantization

    class Reader(q.CalibrationDataReader):
        def __init__(self):
            self._it = iter([zoo.random_inputs(model, seed=s) for s in range(calibration)])

        def get_next(self):
            return next(self._it, None)

    src, dst = str(tmp_path / "fp32.onnx"), str(tmp_path / "int8.onnx")
    onnx.save(model, src)
    q.quantize_static(src, dst, Reader(), quant_format=q.QuantFormat.QDQ, per_channel=True,
                      activation_type=q.QuantType.QInt8, weight_type=q.QuantType.QInt8)
    return onnx.load(dst)


def output_step(model: onnx.ModelProto) -> float:
    """Scale of the DequantizeLinear producing the first graph output (one output LSB)."""
    init = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    node = next(n for n in model.graph.node if model.graph.output[0].name in n.output)
    assert node.op_type == "DequantizeLinear"
    return float(init[node.input[1]].reshape(-1)[0])


def lsb_errors(model: onnx.ModelProto, feeds: dict) -> tuple[InferenceSession, dict[str, np.ndarray]]:
    """The strict tflite session and |tflite - ORT| in output steps, against ORT fused and unfused."""
    sess = InferenceSession(model, ["tflite"], options=SessionOptions(strict=True, use_cache=False))
    y = sess.run(None, feeds)[0].astype(np.float64)
    step = output_step(model)
    errs = {}
    for label, disable in (("fused", "0"), ("unfused", "1")):
        so = ort.SessionOptions()
        so.add_session_config_entry("session.disable_quant_qdq", disable)
        ref = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
        errs[label] = np.abs(y - ref.run(None, feeds)[0]) / step
    return sess, errs


def small_net() -> onnx.ModelProto:
    """Conv+Relu, depthwise Conv+Relu, residual Add, MaxPool, GlobalAveragePool, Flatten, Gemm (float)."""
    rng = np.random.default_rng(0)
    c = {
        "w1": rng.normal(0, 0.3, (8, 3, 3, 3)).astype(np.float32), "b1": rng.normal(0, 0.1, 8).astype(np.float32),
        "w2": rng.normal(0, 0.3, (8, 1, 3, 3)).astype(np.float32), "b2": rng.normal(0, 0.1, 8).astype(np.float32),
        "w3": rng.normal(0, 0.2, (10, 8)).astype(np.float32), "b3": rng.normal(0, 0.1, 10).astype(np.float32),
    }
    nodes = [
        h.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        h.make_node("Relu", ["c1"], ["r1"]),
        h.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1], group=8),
        h.make_node("Relu", ["c2"], ["r2"]),
        h.make_node("Add", ["r1", "r2"], ["a"]),
        h.make_node("MaxPool", ["a"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
        h.make_node("GlobalAveragePool", ["p"], ["g"]),
        h.make_node("Flatten", ["g"], ["f"]),
        h.make_node("Gemm", ["f", "w3", "b3"], ["y"], transB=1),
    ]
    return graph_model(nodes, {"x": (np.float32, (1, 3, 16, 16))}, c, opset=13)


def test_small_qdq_net_runs_int8_within_one_step_of_ort(tmp_path) -> None:
    from unified.conformance import zoo

    qm = quantize(small_net(), tmp_path)
    sess, errs = lsb_errors(qm, zoo.random_inputs(qm, seed=99))
    for label, err in errs.items():
        assert np.mean(err <= 1 + 1e-6) >= 0.99, (label, err.max())
        assert err.max() <= 2 + 1e-6, label
    from unified.delegates.tflite.executable import op_counts

    counts = op_counts(sess.partitions[0].executable.serialize())
    assert counts.get("CONV_2D") == 1 and counts.get("DEPTHWISE_CONV_2D") == 1, counts
    assert counts.get("FULLY_CONNECTED") == 1 and counts.get("ADD") == 1, counts
    assert counts.get("DEQUANTIZE", 0) == 1 and counts.get("QUANTIZE") == 1, counts  # only at the edges


def test_flatbuffer_holds_int8_tensors_with_per_channel_quantization(tmp_path) -> None:
    from ai_edge_litert.interpreter import Interpreter

    qm = quantize(small_net(), tmp_path)
    sess = InferenceSession(qm, ["tflite"], options=SessionOptions(strict=True, use_cache=False))
    it = Interpreter(model_content=sess.partitions[0].executable.serialize())
    details = it.get_tensor_details()
    filters = [d for d in details if d["dtype"] == np.int8 and d["quantization_parameters"]["scales"].size == 8]
    assert filters, "no per-channel int8 filter"
    for d in filters:
        qp = d["quantization_parameters"]
        assert not qp["zero_points"].any()  # symmetric weights (TFLite quantization spec)
        assert qp["quantized_dimension"] == (3 if d["shape"][0] == 1 else 0)
    biases = [d for d in details if d["dtype"] == np.int32 and d["quantization_parameters"]["scales"].size in (8, 10)]
    assert len(biases) == 3
    acts = [d for d in details if d["dtype"] == np.int8 and d["quantization_parameters"]["scales"].size == 1]
    assert acts and all(-128 <= int(d["quantization_parameters"]["zero_points"][0]) <= 127 for d in acts)
    io = it.get_input_details()[0], it.get_output_details()[0]
    assert io[0]["dtype"] == np.float32 and io[1]["dtype"] == np.float32  # float at the graph's float edges


def test_group_it_cannot_fold_stays_float_and_matches(tmp_path) -> None:
    """A Sigmoid between QDQ pairs and a Conv whose weight is not on an int8 grid
    run as DEQUANTIZE, float op, QUANTIZE: exactly ONNX's QDQ semantics."""
    rng = np.random.default_rng(1)
    w = rng.normal(0, 0.3, (4, 2, 3, 3)).astype(np.float32)
    s = np.array(0.02, np.float32)
    z = np.array(3, np.int8)
    nodes = [
        h.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"]),
        h.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"]),
        h.make_node("Conv", ["xd", "w"], ["c"]),
        h.make_node("QuantizeLinear", ["c", "s", "z"], ["cq"]),
        h.make_node("DequantizeLinear", ["cq", "s", "z"], ["cd"]),
        h.make_node("Sigmoid", ["cd"], ["sg"]),
        h.make_node("QuantizeLinear", ["sg", "s", "z"], ["sq"]),
        h.make_node("DequantizeLinear", ["sq", "s", "z"], ["y"]),
    ]
    m = graph_model(nodes, {"x": (np.float32, (1, 2, 6, 6))}, {"w": w, "s": s, "z": z}, opset=13)
    feeds = {"x": rng.normal(0, 1, (1, 2, 6, 6)).astype(np.float32)}
    sess, errs = lsb_errors(m, feeds)
    assert errs["unfused"].max() <= 1 + 1e-6
    from unified.delegates.tflite.executable import op_counts

    counts = op_counts(sess.partitions[0].executable.serialize())
    assert counts.get("CONV_2D") == 1 and counts.get("LOGISTIC") == 1 and counts.get("DEQUANTIZE") == 3, counts


@pytest.mark.parametrize("node, inputs, consts, reason", [
    (h.make_node("DequantizeLinear", ["x", "s"], ["y"]), {"x": (np.int8, (2, 3)), "s": (np.float32, ())}, {},
     "DequantizeLinear quantization parameter 1 ('s') is computed from tensor data"),
    (h.make_node("QuantizeLinear", ["x", "s", "z"], ["y"]), {"x": (np.float32, (2, 3))},
     {"s": np.array(0.1, np.float32), "z": np.array(0, np.int16)}, "QuantizeLinear to tensor(int16) not supported (int8, uint8)"),
])
def test_qdq_it_cannot_express_is_declined_with_its_reason(node, inputs, consts, reason) -> None:
    m = graph_model([node], inputs, consts, opset=21)
    with pytest.raises(UnsupportedError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        InferenceSession(m, delegates=["tflite"], options=SessionOptions(strict=True, use_cache=False))


@pytest.mark.slow
def test_light_squeezenet_int8_within_one_step_of_ort(tmp_path) -> None:
    from onnx import version_converter

    from unified.conformance import zoo

    fp32 = zoo.redraw_weights(onnx.load(zoo.light_model_path("squeezenet")), seed=0)
    qm = quantize(version_converter.convert_version(fp32, 13), tmp_path)  # per-channel DQ needs opset 13
    _, errs = lsb_errors(qm, zoo.random_inputs(qm, seed=1234))
    for label, err in errs.items():
        assert np.mean(err <= 1 + 1e-6) >= 0.99, (label, float(err.max()))
