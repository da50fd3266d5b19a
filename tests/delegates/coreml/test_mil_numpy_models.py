"""The ``mil-numpy`` backend end to end: sessions, bundles and conformance labels,
checked against ONNX Runtime within the fp16 budget, and a planted lowering bug caught.

Needs coremltools (the package is compiled for real, then evaluated from the
saved ``.mlpackage``); no macOS.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

pytest.importorskip("coremltools")
ort = pytest.importorskip("onnxruntime")

from unified import InferenceSession  # noqa: E402
from unified.conformance.compare import fp16_budget  # noqa: E402
from unified.session import SessionOptions  # noqa: E402

MIL = [("coreml", {"backend": "mil-numpy"})]
NO_CACHE = SessionOptions(use_cache=False)  # a cached package would hide the planted bug


def conv_model(pads=(1, 0, 0, 1)) -> onnx.ModelProto:
    """Conv (asymmetric pads, ONNX order top, left, bottom, right) -> Relu -> AveragePool -> Softmax."""
    rng = np.random.default_rng(0)
    w = onnx.numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32) * 0.3, "w")
    b = onnx.numpy_helper.from_array(rng.standard_normal(4).astype(np.float32) * 0.1, "b")
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=list(pads)),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("AveragePool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Softmax", ["p"], ["y"], axis=1),
    ]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [w, b])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 10
    return m


def _feed() -> dict[str, np.ndarray]:
    return {"x": np.random.default_rng(1).standard_normal((1, 3, 8, 8)).astype(np.float32)}


def _ort(model: onnx.ModelProto, feed) -> np.ndarray:
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feed)[0]


def _within_budget(actual: np.ndarray, expected: np.ndarray, depth: int) -> bool:
    tol = fp16_budget(depth)
    return bool(np.allclose(actual, expected, atol=tol.atol, rtol=tol.rtol))


def test_session_on_mil_numpy_is_delegated_and_matches_ort() -> None:
    model, feed = conv_model(), _feed()
    session = InferenceSession(model, MIL, NO_CACHE)
    assert [(p.delegate, p.backend) for p in session.plan.partitions] == [("coreml", "mil-numpy")]
    got = session.run(None, feed)[0]
    want = _ort(model, feed)
    assert got.dtype == np.float32 and got.shape == want.shape
    assert _within_budget(got, want, depth=4)
    assert np.abs(got - want).max() > 0  # fp16 emulated: not bit-equal to fp32 ORT


def test_planted_pad_order_bug_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """MIL pads are ``[begin, end]`` per axis; a lowering writing ``[end, begin]`` keeps every shape
    (so the structural checks pass) but shifts the image: the evaluator's numbers expose it."""
    from unified.delegates.coreml import ops_nn

    def swapped(begins, ends):
        return {"pad_type": "custom",
                "pad": np.array([v for b, e in zip(begins, ends) for v in (e, b)], dtype=np.int32)}

    model, feed = conv_model(), _feed()
    want = _ort(model, feed)
    monkeypatch.setattr(ops_nn, "_mil_pad", swapped)
    got = InferenceSession(model, MIL, NO_CACHE).run(None, feed)[0]
    assert got.shape == want.shape
    assert not _within_budget(got, want, depth=4)
    assert np.abs(got - want).max() > 10 * fp16_budget(4).atol  # measured: 0.12, 12x the budget


def test_fp32_precision_is_closer_than_fp16() -> None:
    model, feed = conv_model(), _feed()
    want = _ort(model, feed)
    fp32 = InferenceSession(model, [("coreml", {"backend": "mil-numpy", "compute_precision": "fp32"})], NO_CACHE)
    fp16 = InferenceSession(model, MIL, NO_CACHE)
    err32 = np.abs(fp32.run(None, feed)[0] - want).max()
    err16 = np.abs(fp16.run(None, feed)[0] - want).max()
    assert err32 < 1e-5 < err16


def test_bundle_runs_on_mil_numpy(tmp_path) -> None:
    from unified.bundle import compile_bundle, load_bundle

    model, feed = conv_model(), _feed()
    compile_bundle(model, tmp_path / "b", MIL, NO_CACHE)
    session = InferenceSession._from_parts(*load_bundle(tmp_path / "b"))
    assert _within_budget(session.run(None, feed)[0], _ort(model, feed), depth=4)


def test_conformance_records_the_backend_label() -> None:
    from unified.conformance.cases import gather_cases
    from unified.conformance.runner import run_conformance

    _, cases = gather_cases(["ops"], "ops/Relu/float32")
    report = run_conformance(cases, ["coreml:mil-numpy"], isolate=False)
    assert [(r.delegate, r.status) for r in report.results] == [("coreml:mil-numpy", "pass")]
    assert report.delegates["coreml:mil-numpy"]["backend"] == "mil-numpy"
    assert report.delegates["coreml:mil-numpy"]["executes"] is True
    assert "not Apple's Core ML runtime" in report.delegates["coreml:mil-numpy"]["reason"]


def _one_input_model(nodes, shape, out_shape=None) -> onnx.ModelProto:
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 10
    return m


def test_where_with_scalar_branches_keeps_the_condition_shape() -> None:
    """MIL select infers its type from a and b only; the lowering broadcasts a (found on MiniLM's mask)."""
    one, minus = (helper.make_tensor(n, TensorProto.FLOAT, [], [v]) for n, v in (("one", 1.0), ("minus", -1.0)))
    nodes = [helper.make_node("Constant", [], ["a"], value=one), helper.make_node("Constant", [], ["b"], value=minus),
             helper.make_node("Constant", [], ["zero"], value=helper.make_tensor("z", TensorProto.FLOAT, [], [0.0])),
             helper.make_node("Greater", ["x", "zero"], ["c"]), helper.make_node("Where", ["c", "a", "b"], ["y"])]
    model = _one_input_model(nodes, (2, 3))
    x = np.array([[1, -2, 3], [-4, 5, -6]], np.float32)
    got = InferenceSession(model, MIL, NO_CACHE).run(None, {"x": x})[0]
    np.testing.assert_array_equal(got, np.where(x > 0, 1.0, -1.0).astype(np.float32))


def test_reduce_prod_stays_fp32_in_an_fp16_program() -> None:
    """12! overflows fp16 (max 65504); the delegate keeps reduce_prod in fp32 (delegate.FP32_OPS)."""
    model = _one_input_model([helper.make_node("ReduceProd", ["x"], ["y"], keepdims=0)], (12,))
    x = np.arange(1, 13, dtype=np.float32)
    got = InferenceSession(model, MIL, NO_CACHE).run(None, {"x": x})[0]
    np.testing.assert_allclose(got, 479001600.0, rtol=1e-6)


def test_expanded_log_softmax_of_large_logits_keeps_the_max_subtraction_fp32() -> None:
    """x - ReduceMax(x) stays fp32 (delegate._computes_in_fp16): in fp16 10000..10003 are one value, and the
    expanded LogSoftmax (onnx test_logsoftmax_large_number_expanded) gave -1.39 for every element."""
    nodes = [helper.make_node("ReduceMax", ["x"], ["m"], axes=[-1], keepdims=1),
             helper.make_node("Sub", ["x", "m"], ["d"]), helper.make_node("Exp", ["d"], ["e"]), helper.make_node("ReduceSum", ["e", "axes"], ["s"], keepdims=1),
             helper.make_node("Log", ["s"], ["l"]), helper.make_node("Sub", ["d", "l"], ["y"])]
    axes = helper.make_node("Constant", [], ["axes"], value=helper.make_tensor("a", TensorProto.INT64, [1], [-1]))
    model = _one_input_model([axes, *nodes], (2, 4))
    x = np.array([[0, 1, 2, 3], [10000, 10001, 10002, 10003]], np.float32)
    got = InferenceSession(model, MIL, NO_CACHE).run(None, {"x": x})[0]
    z = np.arange(4.0) - 3
    expected = z - np.log(np.exp(z).sum())  # log_softmax of each row, shift-invariant: -3.44, -2.44, -1.44, -0.44
    assert _within_budget(got, np.stack([expected, expected]), depth=6)


def test_thresholded_relu_is_strict_and_tan_stays_fp32() -> None:
    """ONNX ThresholdedRelu drops x == alpha (MIL thresholded_relu keeps it); tan(-1.56) = -92.6 is 3.5 off
    when -1.56 is rounded to fp16 (half a 2**-10 step times tan' = 1 + tan**2), so tan stays fp32."""
    model = _one_input_model([helper.make_node("ThresholdedRelu", ["x"], ["y"], alpha=2.0)], (5,))
    x = np.array([-1.5, 0.0, 1.2, 2.0, 2.2], np.float32)
    got = InferenceSession(model, MIL, NO_CACHE).run(None, {"x": x})[0]
    np.testing.assert_allclose(got, [0, 0, 0, 0, 2.2], rtol=2**-10)
    model = _one_input_model([helper.make_node("Tan", ["x"], ["y"])], (3,))
    x = np.array([0.5, 1.53, -1.56], np.float32)
    got = InferenceSession(model, MIL, NO_CACHE).run(None, {"x": x})[0]
    np.testing.assert_allclose(got, np.tan(x.astype(np.float64)), rtol=1e-5)


def test_castlike_takes_its_type_from_the_second_input() -> None:
    """CastLike (opset 15) to int32 truncates toward zero like Cast; the whole graph stays on Core ML."""
    like = helper.make_tensor("like_value", TensorProto.INT32, [1], [7])
    nodes = [helper.make_node("Constant", [], ["like"], value=like),
             helper.make_node("CastLike", ["x", "like"], ["i"]),
             helper.make_node("Cast", ["i"], ["y"], to=TensorProto.FLOAT)]
    model = _one_input_model(nodes, (4,))
    x = np.array([-1.7, 0.4, 2.9, -0.2], np.float32)
    session = InferenceSession(model, MIL, NO_CACHE)
    assert [p.delegate for p in session.plan.partitions] == ["coreml"]
    np.testing.assert_array_equal(session.run(None, {"x": x})[0], _ort(model, {"x": x}))
    np.testing.assert_array_equal(session.run(None, {"x": x})[0], [-1.0, 0.0, 2.0, 0.0])


def test_blob_reader_agrees_with_coremltools(tmp_path) -> None:
    """Our parse of weight.bin gives the values coremltools' own blob reader (libmilstoragepython) gives."""
    storage = pytest.importorskip("coremltools.libmilstoragepython")
    from coremltools.proto import Model_pb2

    from unified.delegate import CompileOptions
    from unified.delegates.coreml import CoreMLDelegate
    from unified.delegates.coreml.mil_numpy import read_blob
    from unified.delegates.coreml.package import unzip_package

    model = onnx.shape_inference.infer_shapes(conv_model())
    package = unzip_package(CoreMLDelegate().compile(model, CompileOptions("mil-numpy")).serialize(), tmp_path)
    root = package / "Data" / "com.apple.CoreML"
    spec = Model_pb2.Model.FromString((root / "model.mlmodel").read_bytes())
    block = spec.mlProgram.functions["main"].block_specializations["CoreML6"]
    blobs = [(op.attributes["val"].blobFileValue.offset,
              [d.constant.size for d in op.outputs[0].type.tensorType.dimensions])
             for op in block.operations if op.type == "const" and op.attributes["val"].HasField("blobFileValue")]
    assert blobs  # the 4x3x3x3 conv weight at least
    reader = storage._BlobStorageReader(str(root / "weights" / "weight.bin"))
    for offset, shape in blobs:
        ours = read_blob(root / "weights" / "weight.bin", offset, np.float16, tuple(shape))
        theirs = np.frombuffer(reader.read_fp16_data(offset).tobytes(), np.float16)
        np.testing.assert_array_equal(ours.reshape(-1), theirs)
