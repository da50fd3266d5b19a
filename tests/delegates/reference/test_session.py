"""The reference delegate inside a session: options, per-run simulation
stats in ``session.profile``, plugin registration."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from unified import DelegateError, InferenceSession, registry
from unified.backends.npu_sim import load_hardware, op_cost
from unified.backends.npu_sim.workload import descs_from_model


@pytest.fixture(scope="module")
def small_cnn() -> onnx.ModelProto:
    rng = np.random.default_rng(3)
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p1", "w2"], ["c2"], group=16, pads=[1, 1, 1, 1]),
        helper.make_node("GlobalAveragePool", ["c2"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"]),
        helper.make_node("Gemm", ["f", "w3"], ["y"], transB=1),
    ]
    inits = {
        "w1": rng.normal(0, 0.3, (16, 3, 3, 3)),
        "b1": rng.normal(0, 0.1, (16,)),
        "w2": rng.normal(0, 0.3, (16, 1, 3, 3)),
        "w3": rng.normal(0, 0.3, (10, 16)),
    }
    g = helper.make_graph(
        nodes,
        "cnn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 10])],
        initializer=[numpy_helper.from_array(v.astype(np.float32), k) for k, v in inits.items()],
    )
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)


def _feed():
    return {"x": np.random.default_rng(0).uniform(-1, 1, (2, 3, 16, 16)).astype(np.float32)}


def test_registered_as_opt_in_plugin_with_npu_sim_backend():
    reg = registry()
    assert reg.delegates["reference"].default_priority is None
    assert "reference" not in reg.default_order()
    assert reg.delegates["reference"].backends() == ["npu-sim"]
    info = reg.backends["npu-sim"].info()
    assert info.kind == "simulator" and info.peak_ops_per_s == 2 * 32 * 32 * 1e9


@pytest.mark.parametrize("hw, dtype", [("scalesim-32", "fp32"), ("ethos-u65", "int8"), ("edgetpu", "int8")])
def test_profile_stats_are_the_cost_model_of_each_op(small_cnn, options, hw, dtype):
    options.strict = True
    options.enable_profiling = True
    sess = InferenceSession(small_cnn, delegates=[("reference", {"hw": hw, "dtype": dtype})], options=options)
    sess.run(None, _feed())
    stats = sess.profile[0].stats
    json.dumps(stats)  # JSON-safe
    assert stats["hardware"]["name"] == hw and stats["dtype"] == dtype
    config = load_hardware(hw)
    expected = [op_cost(d, config, config.dtype(dtype)) for d in descs_from_model(small_cnn)]
    assert [o["op_type"] for o in stats["ops"]] == [e.op_type for e in expected]
    for got, want in zip(stats["ops"], expected):
        assert got == want.to_dict()
    totals = stats["totals"]
    assert totals["cycles"] == sum(o["cycles"] for o in stats["ops"]) > 0
    assert totals["latency_s"] == pytest.approx(totals["cycles"] / config.clock_hz)
    assert totals["energy_pj"] == pytest.approx(sum(o["energy_pj"] for o in stats["ops"]))


def test_stats_follow_the_input_shape(options):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 8])
    g = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "g",
        [x],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4])],
        initializer=[numpy_helper.from_array(np.ones((8, 4), np.float32), "w")],
    )
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)
    options.enable_profiling = True
    sess = InferenceSession(model, delegates=["reference"], options=options)
    for n in (1, 5):
        sess.run(None, {"x": np.ones((n, 8), np.float32)})
        assert sess.profile[0].stats["ops"][0]["gemm"] == f"{n}x4x8"
        assert sess.profile[0].stats["ops"][0]["macs"] == n * 4 * 8


@pytest.mark.parametrize(
    "opts, message",
    [
        ({"speed": 3}, "delegate 'reference' has no option 'speed'; its options are: backend, hw (str"),
        ({"dtype": "int4"}, "option 'dtype' of delegate 'reference' is 'int4'; expected one of 'int8', 'fp16', 'fp32'"),
        ({"hw": "edgetpu", "dtype": "fp32"}, "hardware 'edgetpu' does not compute in fp32; it supports ['int8']"),
        ({"hw": "tpu-v9"}, "unknown hardware 'tpu-v9': not a preset (edgetpu, ethos-u65, scalesim-32) and not a .toml file"),
    ],
)
def test_bad_options_raise_delegate_error(small_cnn, options, opts, message):
    with pytest.raises(DelegateError) as info:
        InferenceSession(small_cnn, delegates=[("reference", opts)], options=options)
    assert message in str(info.value)


def test_hardware_without_fp32_defaults_to_its_dtype(small_cnn, options, ort_reference):
    sess = InferenceSession(small_cnn, delegates=[("reference", {"hw": "edgetpu"})], options=options)
    assert sess.partitions[0].executable.details["dtype"] == "int8"
    got = sess.run(None, _feed())[0]
    want = ort_reference(small_cnn, _feed())[0]
    assert np.abs(got - want).max() < 0.05 * np.abs(want).max()


def test_serialized_artifact_reloads(small_cnn, options):
    sess = InferenceSession(small_cnn, delegates=["reference"], options=options)
    exe = sess.partitions[0].executable
    delegate = registry().delegates["reference"]
    again = delegate.load(exe.serialize(), sess.partitions[0].model, _options())
    np.testing.assert_array_equal(again.run(_feed())["y"], exe.run(_feed())["y"])


def _options():
    from unified import CompileOptions

    return CompileOptions(backend="npu-sim")


def test_outputs_never_alias_inputs_or_constants(options):
    g = helper.make_graph(
        [helper.make_node("Reshape", ["x", "s"], ["y"]), helper.make_node("Identity", ["c"], ["z"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 2]), helper.make_tensor_value_info("z", TensorProto.FLOAT, [2])],
        initializer=[numpy_helper.from_array(np.array([3, 2], np.int64), "s"),
                     numpy_helper.from_array(np.array([1.0, 2.0], np.float32), "c")],
    )
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)
    from unified.delegates.reference import ReferenceExecutable

    exe = ReferenceExecutable(model, load_hardware("scalesim-32"), "fp32")
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    out = exe.run({"x": x})
    assert not np.may_share_memory(out["y"], x)
    out["z"][:] = 0
    np.testing.assert_array_equal(exe.run({"x": x})["z"], [1.0, 2.0])
