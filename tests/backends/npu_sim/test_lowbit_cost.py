"""npu-sim's stored widths: int8 / int4 / MXFP4 weights with their scales, int32
accumulators; ``unified simulate``'s weight traffic on a weight-only model.

Expected factors (block of 32 weights along K, fp32 model = 32 x 4 = 128 bytes):
int4 with a float32 scale per block: 32 x 0.5 + 4 = 20 bytes -> 128 / 20 = 6.4x;
MXFP4 (one E8M0 byte per block): 16 + 1 = 17 bytes -> 128 / 17 = 7.529x.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto as T
from onnx import helper, numpy_helper

from unified.backends.npu_sim.workload import simulate_model, stored_width


def _converter():
    """The project's weight-only quantizer (unified.quantize), blocks of 32 along K."""
    from unified.quantize import quantize_weights

    return lambda model, scheme: quantize_weights(model, scheme=scheme, check_ort=False)


def _mlp() -> onnx.ModelProto:
    """x (16, 256) @ W1 (256, 512) -> Relu -> @ W2 (512, 256): MatMul-heavy, fp32."""
    rng = np.random.default_rng(0)
    w1 = rng.normal(0, 0.05, (256, 512)).astype(np.float32)
    w2 = rng.normal(0, 0.05, (512, 256)).astype(np.float32)
    g = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w1"], ["h"]), helper.make_node("Relu", ["h"], ["r"]),
         helper.make_node("MatMul", ["r", "w2"], ["y"])],
        "mlp", [helper.make_tensor_value_info("x", T.FLOAT, (16, 256))],
        [helper.make_tensor_value_info("y", T.FLOAT, (16, 256))],
        initializer=[numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2")],
    )
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)


def test_stored_width_of_block_formats():
    import ml_dtypes

    assert stored_width((ml_dtypes.float4_e2m1fn, 32), (ml_dtypes.float8_e8m0fnu, 1)) == 0.5 + 1 / 32
    assert stored_width((ml_dtypes.int4, 32), (np.float32, 1)) == 0.625
    assert stored_width((ml_dtypes.int4, 32), (np.float16, 1), (ml_dtypes.int4, 1)) == 0.5 + 2 / 32 + 0.5 / 32
    assert stored_width((np.int8, 64), (np.float32, 1)) == 1 + 4 / 64


@pytest.mark.parametrize("scheme, factor", [("int4", 128 / 20), ("mxfp4", 128 / 17)])
def test_weight_traffic_drops_by_the_expected_factor(scheme, factor):
    fp32 = _mlp()
    low = _converter()(fp32, scheme)
    base = simulate_model(fp32, "scalesim-32", "fp32")
    q = simulate_model(low, "scalesim-32", "fp32")
    assert base.totals()["weight_bytes"] == (256 * 512 + 512 * 256) * 4
    assert base.totals()["weight_bytes"] / q.totals()["weight_bytes"] == pytest.approx(factor, rel=1e-12)
    # the DequantizeLinear of each weight is folded at compile time: no cycles, no traffic
    dq = [o for o in q.ops if o.op_type == "DequantizeLinear"]
    assert len(dq) == 2 and all(o.cycles == 0 and o.dram_bytes == 0 for o in dq)
    # activations are unchanged, so total DRAM drops by exactly the weight bytes saved
    saved = base.totals()["weight_bytes"] - q.totals()["weight_bytes"]
    t0, t1 = base.totals(), q.totals()
    assert (t0["compulsory_bytes"] - t1["compulsory_bytes"]) == saved


@pytest.mark.parametrize("scheme", ["int4", "mxfp4"])
def test_reference_delegate_runs_and_costs_the_same_weights(scheme):
    from unified import InferenceSession, SessionOptions

    low = _converter()(_mlp(), scheme)
    sess = InferenceSession(low, delegates=["reference"], options=SessionOptions(strict=True, enable_profiling=True))
    x = np.random.default_rng(1).normal(size=(16, 256)).astype(np.float32)
    got = sess.run(None, {"x": x})[0]
    from onnx.reference import ReferenceEvaluator

    np.testing.assert_allclose(got, ReferenceEvaluator(low).run(None, {"x": x})[0], rtol=1e-5, atol=1e-5)
    stats = sess.profile[0].stats
    assert stats["totals"]["weight_bytes"] == simulate_model(low, "scalesim-32", "fp32").totals()["weight_bytes"]


def test_integer_ops_count_int8_operands_and_int32_accumulators():
    """QLinearConv: uint8 x, int8 w, int32 bias (4 bytes, as an fp32 accumulator), uint8 y."""
    w = np.ones((8, 4, 3, 3), np.int8)
    inits = [numpy_helper.from_array(np.asarray(v), n) for n, v in [
        ("xs", np.float32(0.1)), ("xz", np.uint8(0)), ("w", w), ("ws", np.float32(0.1)), ("wz", np.int8(0)),
        ("ys", np.float32(0.1)), ("yz", np.uint8(0)), ("b", np.zeros(8, np.int32))]]
    g = helper.make_graph(
        [helper.make_node("QLinearConv", ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz", "b"], ["y"])], "g",
        [helper.make_tensor_value_info("x", T.UINT8, (1, 4, 10, 10))],
        [helper.make_tensor_value_info("y", T.UINT8, (1, 8, 8, 8))], initializer=inits,
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], ir_version=10)
    (op,) = simulate_model(m, "scalesim-32", "fp32").ops
    assert op.macs == 8 * 8 * 8 * 36
    assert op.weight_bytes == 8 * 36 * 1 + 4 + 1 + 8 * 4  # int8 w, fp32 w scale, int8 w zero point, int32 bias
    assert op.compulsory_bytes == 400 + op.weight_bytes + 512  # uint8 in, uint8 out
    assert op.energy_pj > 0


def test_cli_prints_weight_bytes(tmp_path):
    path = tmp_path / "mxfp4.onnx"
    onnx.save(_converter()(_mlp(), "mxfp4"), path)
    out = subprocess.run(
        [sys.executable, "-m", "unified.cli", "simulate", str(path), "--dtype", "fp32", "--no-png", "--out", str(tmp_path)],
        capture_output=True, text=True, check=True,
    ).stdout
    # (256 x 512 + 512 x 256) x 17 / 32 bytes = 139,264 bytes = 0.13 MiB
    assert "weights 0.13 MiB" in out
