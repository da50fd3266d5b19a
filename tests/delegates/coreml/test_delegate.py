"""The coreml delegate: availability, refusal to execute off macOS, support
reasons, compiled package structure, artifact round trip, options."""

from __future__ import annotations

import io
import platform
import zipfile

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from unified import DelegateError, DelegateUnavailableError, InferenceSession
from unified.delegate import CompileOptions
from unified.graph import Graph
from unified.plugins import registry

off_macos = pytest.mark.skipif(platform.system() == "Darwin", reason="checks the compile-only behaviour off macOS")
COMPILE_ONLY = "compile-only: Core ML execution requires macOS"


def small_cnn(ir: int = 10) -> onnx.ModelProto:
    """Conv (asymmetric pads) -> BatchNorm -> Relu -> MaxPool -> Flatten -> Gemm -> Softmax, names with '/' and '.'."""
    rng = np.random.default_rng(0)
    inits = {
        "w": rng.standard_normal((4, 3, 3, 3)).astype(np.float32),
        "b": rng.standard_normal(4).astype(np.float32),
        "s": rng.uniform(0.5, 1.5, 4).astype(np.float32),
        "bb": rng.standard_normal(4).astype(np.float32),
        "m": rng.standard_normal(4).astype(np.float32),
        "v": rng.uniform(0.5, 1.5, 4).astype(np.float32),
        "fc.w": rng.standard_normal((10, 4 * 4 * 3)).astype(np.float32),
        "fc.b": rng.standard_normal(10).astype(np.float32),
    }
    nodes = [
        helper.make_node("Conv", ["input.1", "w", "b"], ["c"], pads=[1, 0, 1, 2]),
        helper.make_node("BatchNormalization", ["c", "s", "bb", "m", "v"], ["n"]),
        helper.make_node("Relu", ["n"], ["r"]),
        helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("Gemm", ["f", "fc.w", "fc.b"], ["g"], transB=1),
        helper.make_node("Softmax", ["g"], ["out/prob"], axis=-1),
    ]
    g = helper.make_graph(
        nodes, "small_cnn",
        [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [1, 3, 8, 7])],
        [helper.make_tensor_value_info("out/prob", TensorProto.FLOAT, [1, 10])],
        initializer=[numpy_helper.from_array(v, k) for k, v in inits.items()],
    )
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 15)], ir_version=ir)


@pytest.fixture(scope="module")
def coreml():
    return registry().get("coreml")


@pytest.fixture(scope="module")
def compiled_cnn(coreml):
    model = Graph(small_cnn()).model
    return model, coreml.compile(model, CompileOptions(backend="ane", partition_name="p0"))


# --- availability and execution -------------------------------------------------

@off_macos
def test_availability_is_compile_only_off_macos(coreml) -> None:
    av = coreml.availability()
    assert av.ok and not av.executes
    assert av.reason == COMPILE_ONLY
    assert av.version == "9.0"
    assert coreml.backends() == ["ane", "gpu", "cpu", "mil-numpy"]  # the evaluator last: never the default
    assert coreml.default_priority == 10
    mil = coreml.backend_availability("mil-numpy")
    assert mil.ok and mil.executes and "not Apple's Core ML runtime" in mil.reason
    assert not coreml.backend_availability("ane").executes


@off_macos
def test_session_refuses_to_execute_on_coreml_off_macos(options) -> None:
    with pytest.raises(DelegateUnavailableError) as err:
        InferenceSession(small_cnn(), delegates=["coreml"], options=options)
    assert str(err.value).startswith(f"delegate 'coreml' cannot execute here ({COMPILE_ONLY})")
    assert "unified compile" in str(err.value)


@off_macos
def test_no_silent_fallback_when_coreml_is_listed_first(options) -> None:
    # onnxruntime could run every node, but coreml was asked for: the session must refuse, not reroute
    with pytest.raises(DelegateUnavailableError, match="Core ML execution requires macOS"):
        InferenceSession(small_cnn(), delegates=["coreml", "onnxruntime"], options=options)
    with pytest.raises(DelegateUnavailableError, match="Core ML execution requires macOS"):
        InferenceSession(small_cnn(), delegates=[("coreml", {"backend": "cpu"})], options=options)


@off_macos
def test_default_session_leaves_out_compile_only_coreml(options) -> None:
    assert "coreml" not in registry().default_order()
    sess = InferenceSession(small_cnn(), options=options)
    assert "coreml" not in sess.plan.node_counts()


@off_macos
def test_executable_run_off_macos_raises(compiled_cnn) -> None:
    _, exe = compiled_cnn
    with pytest.raises(DelegateUnavailableError, match="Core ML execution requires macOS"):
        exe.run({"input.1": np.zeros((1, 3, 8, 7), np.float32)})


# --- supports() ----------------------------------------------------------------

def _views(model: onnx.ModelProto):
    return {v.op_type: v for v in Graph(model).node_views}


def test_supports_claims_the_cnn_and_gives_reasons(coreml) -> None:
    views = _views(small_cnn())
    assert all(coreml.supports(v).ok for v in views.values())
    x = helper.make_tensor_value_info("x", TensorProto.DOUBLE, [2, 2])
    y = helper.make_tensor_value_info("y", TensorProto.DOUBLE, [2, 2])
    m = helper.make_model(helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "d", [x], [y]),
                          opset_imports=[helper.make_opsetid("", 14)], ir_version=10)
    answer = coreml.supports(_views(m)["Relu"])
    assert not answer.ok and "type double" in answer.reason and "float32, float16, int32" in answer.reason
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [])
    m = helper.make_model(helper.make_graph([helper.make_node("Det", ["x"], ["y"])], "d", [x], [y]),
                          opset_imports=[helper.make_opsetid("", 14)], ir_version=10)
    assert coreml.supports(_views(m)["Det"]).reason == "coreml has no kernel for op Det"


@pytest.mark.parametrize("op, attrs, reason", [
    ("AveragePool", {"kernel_shape": [2, 2], "strides": [3, 3], "ceil_mode": 1, "count_include_pad": 1},
     "adds a partial window"),
    ("MaxPool", {"kernel_shape": [2, 2], "ceil_mode": 1, "auto_pad": "SAME_UPPER"}, "auto_pad=SAME_UPPER"),
    ("MaxPool", {"kernel_shape": [2, 2], "dilations": [2, 2]}, "dilations"),
    ("ArgMax", {"select_last_index": 1}, "select_last_index=1"),
    ("Resize", {"mode": "cubic"}, "mode='cubic'"),
])
def test_supports_declines_with_reason(op, attrs, reason, coreml) -> None:
    inputs = ["x"] + (["", "sc"] if op == "Resize" else [])
    inits = [numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "sc")] if op == "Resize" else []
    node = helper.make_node(op, inputs, ["y"], **attrs)
    g = helper.make_graph([node], "t", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 4])],
                          [helper.make_empty_tensor_value_info("y")], initializer=inits)
    m = onnx.shape_inference.infer_shapes(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)],
                                                            ir_version=10))  # types the graph output
    answer = coreml.supports(Graph(m).node_views[0])
    assert not answer.ok and reason in answer.reason


def test_integer_div_is_declined(coreml) -> None:
    g = helper.make_graph([helper.make_node("Div", ["a", "b"], ["y"])], "t",
                          [helper.make_tensor_value_info(n, TensorProto.INT64, [3]) for n in "ab"],
                          [helper.make_tensor_value_info("y", TensorProto.INT64, [3])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 14)], ir_version=10)
    answer = coreml.supports(Graph(m).node_views[0])
    assert not answer.ok and "truncates toward zero" in answer.reason


# --- compiled package ------------------------------------------------------------

def _spec_from_artifact(blob: bytes, tmp_path):
    import coremltools as ct

    with zipfile.ZipFile(io.BytesIO(blob)) as zf:
        names = zf.namelist()
        zf.extractall(tmp_path)
    assert all(n.startswith("model.mlpackage/") for n in names)
    return ct.models.MLModel(str(tmp_path / "model.mlpackage"), skip_model_load=True).get_spec()


def test_compiled_package_spec_matches_the_onnx_signature(compiled_cnn, tmp_path) -> None:
    model, exe = compiled_cnn
    assert exe.artifact_suffix == ".mlpackage.zip"
    assert exe.input_names == ["input.1"] and exe.output_names == ["out/prob"]
    spec = _spec_from_artifact(exe.serialize(), tmp_path)
    assert spec.WhichOneof("Type") == "mlProgram"
    (inp,), (out,) = spec.description.input, spec.description.output
    # Core ML feature names are sanitized ONNX names
    assert (inp.name, out.name) == ("input_1", "out_prob")
    assert list(inp.type.multiArrayType.shape) == [1, 3, 8, 7]
    assert inp.type.multiArrayType.dataType == 65568  # ArrayDataType.FLOAT32
    assert out.type.multiArrayType.dataType == 65568
    ops = [op.type for op in spec.mlProgram.functions["main"].block_specializations["CoreML6"].operations]
    # coremltools' passes fold the BatchNormalization into the conv weights; softmax stays fp32 (delegate.FP32_OPS),
    # so the fp16 -> fp32 cast moves before it
    assert [op for op in ops if op != "const"] == ["cast", "conv", "relu", "max_pool", "reshape", "linear", "cast",
                                                   "softmax"] or print(ops)
    assert exe.details["precision"] == "fp16" and exe.details["verified"] == "structure"


def test_artifact_zip_is_deterministic(compiled_cnn) -> None:
    from unified.delegates.coreml.package import unzip_package, zip_package

    _, exe = compiled_cnn
    blob = exe.serialize()
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        assert zip_package(unzip_package(blob, tmp)) == blob


def test_load_rebuilds_the_executable_without_compiling(coreml, compiled_cnn, monkeypatch) -> None:
    model, exe = compiled_cnn

    def no_compile(*args, **kwargs):
        raise AssertionError("load() must not compile")

    monkeypatch.setattr(type(coreml), "compile", no_compile)
    again = coreml.load(exe.serialize(), model, CompileOptions(backend="ane"))
    assert again.inputs == exe.inputs and again.outputs == exe.outputs
    assert again.serialize() == exe.serialize()


def test_load_refuses_an_artifact_of_another_partition(coreml, compiled_cnn) -> None:
    _, exe = compiled_cnn
    other = Graph(small_cnn()).model
    other.graph.input[0].type.tensor_type.shape.dim[3].dim_value = 9
    with pytest.raises(DelegateError, match="does not match its partition"):
        coreml.load(exe.serialize(), other, CompileOptions(backend="ane"))
    with pytest.raises(DelegateError, match="not a zipped .mlpackage"):
        coreml.load(b"not a zip", other, CompileOptions(backend="ane"))


def test_flexible_dims_get_ranges_and_int64_io_is_int32(coreml, tmp_path) -> None:
    emb = np.random.default_rng(1).standard_normal((50, 8)).astype(np.float32)
    g = helper.make_graph(
        [helper.make_node("Gather", ["emb", "ids"], ["e"]), helper.make_node("ReduceMean", ["e"], ["y"], axes=[1])],
        "flex",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, ["batch", "seq"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 1, 8])],
        initializer=[numpy_helper.from_array(emb, "emb")],
    )
    model = Graph(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], ir_version=10)).model
    exe = coreml.compile(model, CompileOptions(backend="cpu", options={"dim_ranges": {"seq": [2, 128]}}))
    assert exe.details["precision"] == "fp32"  # the cpu backend's default
    spec = _spec_from_artifact(exe.serialize(), tmp_path)
    arr = spec.description.input[0].type.multiArrayType
    assert arr.dataType == 131104  # ArrayDataType.INT32: Core ML has no int64 inputs
    assert [(r.lowerBound, r.upperBound) for r in arr.shapeRange.sizeRanges] == [(1, 512), (2, 128)]


@pytest.mark.parametrize("opts, match", [
    ({"compute_precision": "int8"}, "compute_precision"),
    ({"minimum_deployment_target": "iOS9"}, "minimum_deployment_target"),
    ({"threads": 2}, "unknown coreml option"),
    ({"dim_ranges": {"seq": 5}}, "dim_ranges"),
])
def test_bad_options_are_errors(coreml, opts, match) -> None:
    with pytest.raises(DelegateError, match=match):
        coreml.compile(Graph(small_cnn()).model, CompileOptions(backend="ane", options=opts))
