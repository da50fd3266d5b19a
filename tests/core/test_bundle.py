"""Ahead-of-time bundles: `unified compile` + InferenceSession.from_bundle.

Round trip for every executing delegate that can be bundled (outputs equal to
a freshly compiled session, bit for bit), tamper and version checks, the CLI,
and Core ML bundles written on a host that cannot run them.
"""

from __future__ import annotations

import json
import platform
import warnings

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import unified
from unified import BundleError, DelegateUnavailableError, InferenceSession, SessionOptions
from unified.bundle import MANIFEST, compile_bundle, read_manifest
from unified.cli import main
from unified.delegate import Delegate
from unified.plugins import registry


def small_net() -> onnx.ModelProto:
    """Conv -> Relu -> GlobalAveragePool -> Flatten -> Gemm: ops every delegate handles."""
    rng = np.random.default_rng(3)
    inits = [
        numpy_helper.from_array(rng.standard_normal((8, 3, 3, 3)).astype(np.float32), "w"),
        numpy_helper.from_array(rng.standard_normal(8).astype(np.float32), "b"),
        numpy_helper.from_array(rng.standard_normal((5, 8)).astype(np.float32), "fw"),
        numpy_helper.from_array(rng.standard_normal(5).astype(np.float32), "fb"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("GlobalAveragePool", ["r"], ["p"]),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("Gemm", ["f", "fw", "fb"], ["y"], transB=1),
    ]
    g = helper.make_graph(nodes, "small", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 5])], initializer=inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], ir_version=10)


FEED = {"x": np.random.default_rng(4).standard_normal((1, 3, 16, 16)).astype(np.float32)}


def _bundleable() -> list[str]:
    reg = registry()
    names = []
    for name, d in reg.delegates.items():
        av = reg.availability(name)
        if av.ok and av.executes and type(d).load is not Delegate.load and name != "reference":
            names.append(name)
    return sorted(names)


@pytest.fixture
def ort_bundle(tmp_path, options):
    out = tmp_path / "bundle"
    compile_bundle(small_net(), out, ["onnxruntime"], options)
    return out


@pytest.mark.parametrize("delegate", ["onnxruntime", "tflite", pytest.param("executorch", marks=pytest.mark.slow)])
def test_round_trip_outputs_equal_a_fresh_session(delegate, tmp_path, options) -> None:
    if delegate not in _bundleable():
        pytest.skip(f"delegate '{delegate}' is not available, cannot execute, or has no load() here")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        manifest = compile_bundle(small_net(), tmp_path / "b", [delegate], options)
        fresh = InferenceSession(small_net(), [delegate], options)
    loaded = InferenceSession.from_bundle(tmp_path / "b")
    assert loaded.plan.node_counts() == fresh.plan.node_counts()
    assert [a.name for a in loaded.get_inputs()] == ["x"] and [a.name for a in loaded.get_outputs()] == ["y"]
    assert loaded.get_inputs()[0].shape == [1, 3, 16, 16]
    (got,), (want,) = loaded.run(None, FEED), fresh.run(None, FEED)
    np.testing.assert_array_equal(got, want)
    assert set(manifest["files"]) == {p.name for p in (tmp_path / "b").iterdir()} - {MANIFEST}


def test_loading_a_bundle_neither_plans_nor_compiles(ort_bundle, monkeypatch) -> None:
    import unified.bundle
    import unified.compiler
    import unified.pipeline
    import unified.planner

    def forbidden(*args, **kwargs):
        raise AssertionError("from_bundle must not plan or compile")

    for module, name in ((unified.bundle, "plan_model"), (unified.bundle, "compile_model"),
                         (unified.pipeline, "make_plan"), (unified.pipeline, "compile_plan"),
                         (unified.planner, "make_plan"), (unified.compiler, "compile_plan")):
        monkeypatch.setattr(module, name, forbidden)
    (got,) = InferenceSession.from_bundle(ort_bundle).run(None, FEED)
    assert got.shape == (1, 5)


def test_manifest_records_plan_signatures_hashes_versions(ort_bundle) -> None:
    m = json.loads((ort_bundle / MANIFEST).read_text())
    assert m["schema_version"] == 1 and m["unified_version"] == unified.__version__
    assert m["model"]["inputs"] == [{"name": "x", "elem_type": 1, "dtype": "tensor(float)", "shape": [1, 3, 16, 16]}]
    assert m["delegates"]["onnxruntime"]["framework_version"] == registry().get("onnxruntime").version()
    (part,) = m["partitions"]
    # ONNX Runtime's artifact is the partition itself: one file, listed once
    assert part["artifact_file"] == part["partition_file"] == "p0_onnxruntime.onnx"
    import hashlib

    data = (ort_bundle / "p0_onnxruntime.onnx").read_bytes()
    assert m["files"]["p0_onnxruntime.onnx"] == {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    assert m["plan"]["partitions"][0]["nodes"] and m["plan"]["delegates"] == ["onnxruntime"]


def test_one_changed_byte_is_refused(ort_bundle) -> None:
    path = ort_bundle / "p0_onnxruntime.onnx"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(BundleError, match=r"bundle file 'p0_onnxruntime.onnx' does not match its SHA-256"):
        InferenceSession.from_bundle(ort_bundle)


def test_missing_file_and_missing_manifest_are_refused(ort_bundle, tmp_path) -> None:
    (ort_bundle / "p0_onnxruntime.onnx").unlink()
    with pytest.raises(BundleError, match=r"bundle file 'p0_onnxruntime.onnx' is missing"):
        InferenceSession.from_bundle(ort_bundle)
    with pytest.raises(BundleError, match="manifest.json is missing"):
        InferenceSession.from_bundle(tmp_path)


@pytest.mark.parametrize("edit, match", [
    (lambda m: m.update(unified_version="0.0.0"), "written by unified 0.0.0"),
    (lambda m: m.update(schema_version=99), "schema version 99"),
    (lambda m: m["delegates"]["onnxruntime"].update(framework_version="0.1"), "framework version '0.1'"),
    (lambda m: m["files"]["p0_onnxruntime.onnx"].update(sha256="0" * 64), "does not match its SHA-256"),
])
def test_mismatched_versions_are_refused(ort_bundle, edit, match) -> None:
    m = json.loads((ort_bundle / MANIFEST).read_text())
    edit(m)
    (ort_bundle / MANIFEST).write_text(json.dumps(m))
    with pytest.raises(BundleError, match=match):
        InferenceSession.from_bundle(ort_bundle)


def test_compile_refuses_a_non_empty_directory(ort_bundle, tmp_path, options) -> None:
    with pytest.raises(BundleError, match="is not empty"):
        compile_bundle(small_net(), ort_bundle, ["onnxruntime"], options)
    compile_bundle(small_net(), ort_bundle, ["onnxruntime"], options, overwrite=True)
    read_manifest(ort_bundle)
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(BundleError, match="holds no bundle"):
        compile_bundle(small_net(), other, ["onnxruntime"], options, overwrite=True)
    assert (other / "notes.txt").read_text() == "keep me"


def test_cli_compile_then_from_bundle(tmp_path, capsys) -> None:
    model = tmp_path / "small.onnx"
    onnx.save(small_net(), model)
    out = tmp_path / "cli_bundle"
    assert main(["compile", str(model), "--delegates", "onnxruntime", "-o", str(out), "--no-cache"]) == 0
    text = capsys.readouterr().out
    assert "p0_onnxruntime.onnx" in text and "manifest.json" in text
    (got,) = InferenceSession.from_bundle(out).run(None, FEED)
    (want,) = InferenceSession(small_net(), ["onnxruntime"], SessionOptions(use_cache=False)).run(None, FEED)
    np.testing.assert_array_equal(got, want)
    assert main(["compile", str(model), "--delegates", "onnxruntime", "-o", str(out)]) == 1
    assert "is not empty" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.skipif(platform.system() == "Darwin", reason="checks Core ML bundles built where they cannot run")
def test_coreml_bundle_compiles_off_macos_and_refuses_to_load_here(tmp_path, options) -> None:
    """A mixed bundle: coreml takes what it supports, onnxruntime (fallback) the TopK."""
    net = small_net()
    k = numpy_helper.from_array(np.array([2], np.int64), "k")
    net.graph.initializer.append(k)
    net.graph.node.append(helper.make_node("TopK", ["y", "k"], ["top", "idx"]))
    del net.graph.output[:]
    net.graph.output.extend([helper.make_tensor_value_info("top", TensorProto.FLOAT, [1, 2])])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # FallbackWarning for TopK
        m = compile_bundle(net, tmp_path / "b", ["coreml"], options)
    assert [(p["delegate"], p["artifact_file"]) for p in m["partitions"]] == [
        ("coreml", "p0_coreml.mlpackage.zip"), ("onnxruntime", "p1_onnxruntime.onnx")]
    assert m["delegates"]["coreml"]["framework_version"] == "9.0"
    assert m["plan"]["partitions"][0]["details"]["verified"] == "structure"
    read_manifest(tmp_path / "b")  # hashes and versions verify without Core ML
    with pytest.raises(DelegateUnavailableError, match=r"delegate 'coreml' cannot execute here \(compile-only: "
                                                        r"Core ML execution requires macOS\)"):
        InferenceSession.from_bundle(tmp_path / "b")
