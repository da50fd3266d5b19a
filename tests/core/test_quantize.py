"""``unified.quantize`` and ``unified quantize``: int8 QDQ through ONNX Runtime's
quantizer, weight-only int4 / MXFP4, checked against ONNX Runtime,
``onnx.reference`` and values computed by hand."""

from __future__ import annotations

import logging

import ml_dtypes
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from unified.cli import main
from unified.metrics import cosine_similarity
from unified.quantize import (
    QuantizationError, load_calibration, ort_failure, pack_mxfp4, quantize_static, quantize_weights,
)

from ..onnx_models import graph_model, rand


def _conv_net(seed: int = 0) -> onnx.ModelProto:
    """(1, 3, 16, 16) -> Conv 8 + Relu -> Conv 16 + Relu -> GlobalAveragePool -> Flatten -> Gemm 10."""
    rng = np.random.default_rng(seed)

    def he(*shape):
        return rng.normal(0, np.sqrt(2.0 / np.prod(shape[1:])), shape).astype(np.float32)

    consts = {"w1": he(8, 3, 3, 3), "b1": rng.normal(0, 0.05, 8).astype(np.float32),
              "w2": he(16, 8, 3, 3), "b2": rng.normal(0, 0.05, 16).astype(np.float32),
              "w3": he(10, 16), "b3": rng.normal(0, 0.05, 10).astype(np.float32)}
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("GlobalAveragePool", ["r2"], ["p"]),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("Gemm", ["f", "w3", "b3"], ["y"], transB=1),
    ]
    return graph_model(nodes, {"x": (np.float32, [1, 3, 16, 16])}, consts)


def _mlp(k: int = 96, n: int = 24, seed: int = 0) -> onnx.ModelProto:
    """(2, k) -> MatMul W1 (k, n) -> Relu -> Gemm W2 (n, k) transB=1: one weight per blocked axis."""
    rng = np.random.default_rng(seed)
    consts = {"w1": rng.normal(0, 0.2, (k, n)).astype(np.float32), "w2": rng.normal(0, 0.2, (8, n)).astype(np.float32)}
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h"]), helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("Gemm", ["r", "w2"], ["y"], transB=1)]
    return graph_model(nodes, {"x": (np.float32, [2, k])}, consts)


def _ort(model: onnx.ModelProto, feeds: dict, optimize: bool = False) -> np.ndarray:
    so = ort.SessionOptions()
    so.log_severity_level = 3
    if not optimize:
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"]).run(None, feeds)[0]


def _inits(model: onnx.ModelProto) -> dict[str, onnx.TensorProto]:
    return {t.name: t for t in model.graph.initializer}


# --- static int8 QDQ ------------------------------------------------------------


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory):
    """The conv net, a .npz calibration folder of 16 samples, and its int8 QDQ model."""
    folder = tmp_path_factory.mktemp("calib")
    for k in range(16):
        np.savez(folder / f"{k:03d}.npz", x=rand((1, 3, 16, 16), seed=100 + k))
    fp32 = _conv_net()
    return fp32, folder, quantize_static(fp32, calibration=folder)


def test_quantize_static_writes_qdq_with_per_channel_symmetric_weights(calibrated):
    fp32, _, q = calibrated
    onnx.checker.check_model(q, full_check=True)
    ops = [n.op_type for n in q.graph.node]
    assert ops.count("Conv") == 2 and "QuantizeLinear" in ops and "DequantizeLinear" in ops
    inits = _inits(q)
    producer = {o: n for n in q.graph.node for o in n.output}
    conv = next(n for n in q.graph.node if n.op_type == "Conv")
    x_dq, w_dq = producer[conv.input[0]], producer[conv.input[1]]
    assert x_dq.op_type == w_dq.op_type == "DequantizeLinear"
    # activations: a QuantizeLinear -> DequantizeLinear pair, int8
    assert producer[x_dq.input[0]].op_type == "QuantizeLinear"
    # weights: int8, one scale per output channel (axis 0), zero points 0 (symmetric)
    w_q, w_s, w_z = (numpy_helper.to_array(inits[n]) for n in w_dq.input)
    assert w_q.dtype == np.int8 and w_s.shape == (w_q.shape[0],) and not np.any(w_z)
    assert next(a.i for a in w_dq.attribute if a.name == "axis") == 0
    w = numpy_helper.to_array(_inits(fp32)[next(n for n in fp32.graph.node if n.op_type == "Conv").input[1]])
    # symmetric: the largest |w| of each channel maps to +-127
    np.testing.assert_allclose(w_s, np.abs(w).reshape(w.shape[0], -1).max(axis=1) / 127, rtol=1e-5)


def test_quantize_static_runs_in_ort_close_to_float(calibrated):
    fp32, _, q = calibrated
    feeds = {"x": rand((1, 3, 16, 16), seed=7)}
    y32, y8 = _ort(fp32, feeds), _ort(q, feeds)
    assert cosine_similarity(y8, y32) >= 0.99
    assert not np.array_equal(y8, y32)  # it did quantize


def test_per_input_npy_layout_matches_npz(tmp_path, calibrated):
    fp32, folder, q = calibrated
    (tmp_path / "x").mkdir()
    for k, path in enumerate(sorted(folder.glob("*.npz"))):
        np.save(tmp_path / "x" / f"{k:03d}.npy", np.load(path)["x"])
    a = load_calibration(folder, ["x"])
    b = load_calibration(tmp_path, ["x"])
    assert len(a) == len(b) == 16 and all(np.array_equal(i["x"], j["x"]) for i, j in zip(a, b))
    q2 = quantize_static(fp32, calibration=tmp_path)
    scales = {t.name: numpy_helper.to_array(t) for t in q.graph.initializer if t.name.endswith("_scale")}
    assert all(np.array_equal(scales[t.name], numpy_helper.to_array(t)) for t in q2.graph.initializer
               if t.name in scales)


def test_random_calibration_warns(caplog):
    with caplog.at_level(logging.WARNING, logger="unified"):
        q = quantize_static(_conv_net(), samples=4)
    assert any("not representative" in r.getMessage() for r in caplog.records)
    assert any(n.op_type == "QuantizeLinear" for n in q.graph.node)


def test_bad_calibration_names_what_is_missing(tmp_path):
    np.savez(tmp_path / "0.npz", wrong=rand((1, 3, 16, 16)))
    with pytest.raises(QuantizationError, match=r"lacks input\(s\) \['x'\]"):
        quantize_static(_conv_net(), calibration=tmp_path)
    with pytest.raises(QuantizationError, match="does not exist"):
        quantize_static(_conv_net(), calibration=tmp_path / "nope")


# --- weight-only int4 / MXFP4 -----------------------------------------------------


def _dequantized(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    """Every blocked DequantizeLinear's output, computed by onnx.reference alone."""
    dqs = [n for n in model.graph.node if n.op_type == "DequantizeLinear"]
    inits = [t for t in model.graph.initializer if any(t.name in n.input for n in dqs)]
    outs = [helper.make_tensor_value_info(n.output[0], TensorProto.FLOAT, None) for n in dqs]
    m = helper.make_model(helper.make_graph(dqs, "dq", [], outs, initializer=inits), opset_imports=model.opset_import)
    return dict(zip([n.output[0] for n in dqs], ReferenceEvaluator(m).run(None, {})))


@pytest.mark.parametrize("scheme, data_type, scale_type, opset",
                         [("int4", TensorProto.INT4, TensorProto.FLOAT, 21),
                          ("mxfp4", TensorProto.FLOAT4E2M1, TensorProto.FLOAT8E8M0, 24)])
def test_blocked_weights_dequantize_within_one_step(scheme, data_type, scale_type, opset):
    fp32 = _mlp()
    q = quantize_weights(fp32, scheme=scheme, check_ort=False)
    onnx.checker.check_model(q, full_check=True)
    assert next(o.version for o in q.opset_import if o.domain == "") >= opset
    inits = _inits(q)
    originals = {t.name: numpy_helper.to_array(t) for t in fp32.graph.initializer}
    got = _dequantized(q)
    assert set(got) == {"w1", "w2"}
    for name, axis in (("w1", 0), ("w2", 1)):
        dq = next(n for n in q.graph.node if n.output[0] == name)
        attrs = {a.name: a.i for a in dq.attribute}
        assert attrs["block_size"] == 32 and attrs["axis"] == axis
        assert inits[dq.input[0]].data_type == data_type and inits[dq.input[1]].data_type == scale_type
        scale = numpy_helper.to_array(inits[dq.input[1]]).astype(np.float32)
        per_elem = np.repeat(scale, 32, axis=axis)
        per_elem = np.take(per_elem, np.arange(originals[name].shape[axis]), axis=axis)
        # int4: round to nearest, half a step; E2M1: its widest spacing (4 -> 6) is 2 steps of X
        bound = 0.5 * per_elem if scheme == "int4" else 2.0 * per_elem
        assert np.all(np.abs(got[name] - originals[name]) <= bound * (1 + 1e-6))
        assert np.abs(got[name] - originals[name]).max() > 0


def test_mxfp4_scale_is_ocp_shared_exponent_by_hand():
    # OCP MX v1.0 section 6.3: X = 2^(floor(log2(amax)) - 2); amax 5 -> X = 1; elements round to E2M1
    block = np.zeros((32, 1), np.float32)
    block[:6, 0] = [5.0, 0.3, -2.6, 1.25, -0.2, 4.9]
    q, s = pack_mxfp4(block, axis=0)
    assert s.dtype == ml_dtypes.float8_e8m0fnu and float(s[0, 0]) == 1.0
    # E2M1 values 0, 0.5, 1, 1.5, 2, 3, 4, 6: 5 is the midpoint of 4 and 6, ties to even (4 = 1.0 x 2^2);
    # 1.25 likewise to 1.0; 0.3 is nearer 0.5 than 0; -2.6 nearer -3; -0.2 nearer 0
    np.testing.assert_array_equal(q[:6, 0].astype(np.float32), [4.0, 0.5, -3.0, 1.0, 0.0, 4.0])
    q, s = pack_mxfp4(block * 100, axis=0)  # amax 500: floor(log2 500) = 8 -> X = 2^6
    assert float(s[0, 0]) == 64.0 and float(q[0, 0]) == 6.0  # 500 / 64 = 7.8 clamps to E2M1's max 6


def test_int4_model_runs_in_ort_and_unified_close_to_float():
    import unified

    fp32, feeds = _mlp(), {"x": rand((2, 96), seed=3)}
    q = quantize_weights(fp32, scheme="int4")
    assert ort_failure(q) is None
    y32, y4 = _ort(fp32, feeds), _ort(q, feeds)
    # ORT computes the dequantized net exactly as onnx.reference does ...
    np.testing.assert_allclose(y4, ReferenceEvaluator(q).run(None, feeds)[0], rtol=1e-4, atol=1e-5)
    # ... and it stays near the float one: a step of max|w|/7 per block of 32 Gaussian weights is ~0.33 sigma,
    # a weight SQNR near 20 dB, compounded over two layers
    assert cosine_similarity(y4, y32) >= 0.97 and not np.array_equal(y4, y32)
    sess = unified.InferenceSession(q, delegates=["onnxruntime"])
    np.testing.assert_allclose(sess.run(None, feeds)[0], y4, rtol=1e-5, atol=1e-5)


def test_mxfp4_model_runs_in_onnx_reference_and_ort_says_why_not():
    fp32, feeds = _mlp(), {"x": rand((2, 96), seed=3)}
    q = quantize_weights(fp32, scheme="mxfp4", check_ort=False)
    y = ReferenceEvaluator(q).run(None, feeds)[0]
    assert cosine_similarity(y, _ort(fp32, feeds)) >= 0.98
    why = ort_failure(q)
    if why is not None:  # ONNX Runtime 1.32: no DequantizeLinear(24) kernel for float4e2m1
        assert "DequantizeLinear" in why
    else:
        np.testing.assert_allclose(_ort(q, feeds), y, rtol=1e-4, atol=1e-4)


def test_quantize_weights_errors():
    with pytest.raises(QuantizationError, match="unknown weight scheme 'int3'"):
        quantize_weights(_mlp(), scheme="int3")
    with pytest.raises(QuantizationError, match="MXFP4 blocks are 32"):
        quantize_weights(_mlp(), scheme="mxfp4", block_size=16)
    with pytest.raises(QuantizationError, match="no float MatMul/Gemm weight"):
        quantize_weights(graph_model([helper.make_node("Relu", ["x"], ["y"])], {"x": (np.float32, [2])}))


# --- the command ------------------------------------------------------------------


def test_cli_quantize_static_and_weights(tmp_path, capsys):
    src = tmp_path / "net.onnx"
    onnx.save(_mlp(), src)
    assert main(["quantize", str(src), "-o", str(tmp_path / "q8.onnx"), "--samples", "4"]) == 0
    out = capsys.readouterr().out
    assert "wrote" in out and "QuantizeLinear" in out
    q8 = onnx.load(tmp_path / "q8.onnx")
    assert any(n.op_type == "QuantizeLinear" for n in q8.graph.node)
    assert main(["quantize", str(src), "-o", str(tmp_path / "q4.onnx"), "--weights", "int4"]) == 0
    assert "opset 21" in capsys.readouterr().out
    assert main(["quantize", str(src), "-o", str(tmp_path / "mx.onnx"), "--weights", "mxfp4"]) == 0
    out = capsys.readouterr().out
    assert "opset 24" in out and ("ONNX Runtime cannot run it" in out) == (ort_failure(onnx.load(tmp_path / "mx.onnx")) is not None)


def test_cli_quantize_bad_input_is_a_clear_error(tmp_path, capsys):
    assert main(["quantize", str(tmp_path / "missing.onnx"), "-o", str(tmp_path / "q.onnx")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error:") and "Traceback" not in err


@pytest.mark.parametrize("scheme", ["int4", "mxfp4"])
def test_core_constant_folding_dequantizes_blocks_like_onnx_reference(scheme):
    # the load-time fold hands delegates the folded weight: it once ignored block_size (tflite and executorch
    # then ran quantized-ops/DequantizeLinear/int4_blocked_matmul 0.59 off)
    from unified.onnx.fold import evaluate_node

    q = quantize_weights(_mlp(), scheme=scheme, check_ort=False)
    expected, inits = _dequantized(q), {t.name: numpy_helper.to_array(t) for t in q.graph.initializer}
    for node in (n for n in q.graph.node if n.op_type == "DequantizeLinear"):
        (got,) = evaluate_node(node, [inits[i] for i in node.input], q.opset_import)
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, expected[node.output[0]])
