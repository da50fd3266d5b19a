"""The tflite delegate as a plugin: registration, availability, options,
declines with reasons, the ``.tflite`` artifact (cache, load, CLI dump)."""

from __future__ import annotations

import numpy as np
import pytest

from unified.host import physical_cores
from onnx import helper

import unified
from unified import InferenceSession, SessionOptions
from unified.errors import DelegateError, UnsupportedError
from unified.plugins import registry

from ...onnx_models import rand

N = helper.make_node


def _conv_model(make_model, seed: int = 0):
    w = np.random.default_rng(seed).normal(0, 0.3, (8, 3, 3, 3)).astype(np.float32)
    nodes = [N("Conv", ["x", "W"], ["c"], pads=[1, 1, 1, 1]), N("Relu", ["c"], ["y"])]
    return make_model(nodes, {"x": (np.float32, (1, 3, 16, 16))}, {"W": w})


def test_registered_through_entry_point_with_priority_20() -> None:
    reg = registry()
    delegate = reg.get("tflite")
    assert type(delegate).__module__ == "unified.delegates.tflite.delegate"
    assert delegate.default_priority == 20 and delegate.backends() == ["cpu"]
    av = reg.availability("tflite")
    assert av.ok and av.executes and av.version.startswith("ai-edge-litert ")


def test_unavailable_with_reason_when_no_runtime(monkeypatch) -> None:
    import builtins

    from unified.delegates.tflite.delegate import TFLiteDelegate

    real_import = builtins.__import__

    def no_tflite(name, *args, **kwargs):
        if name.startswith(("ai_edge_litert", "tflite_runtime")):
            raise ImportError(f"No module named '{name}'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tflite)
    av = TFLiteDelegate().availability()
    assert not av.ok
    assert "ai_edge_litert" in av.reason and "tflite_runtime" in av.reason and "install ai-edge-litert" in av.reason


def test_artifact_is_a_tflite_flatbuffer_that_litert_runs_alone(make_model, ort_reference, tmp_path) -> None:
    """serialize() gives a standalone .tflite: LiteRT's interpreter runs it
    without unified, NHWC transposes included, and matches ONNX Runtime."""
    from ai_edge_litert.interpreter import Interpreter

    m = _conv_model(make_model)
    sess = InferenceSession(m, delegates=["tflite"], options=SessionOptions(strict=True, use_cache=False))
    exe = sess.partitions[0].executable
    blob = exe.serialize()
    assert exe.artifact_suffix == ".tflite" and blob[4:8] == b"TFL3"
    it = Interpreter(model_content=blob)
    it.allocate_tensors()
    x = rand((1, 3, 16, 16))
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    got = it.get_tensor(it.get_output_details()[0]["index"])
    np.testing.assert_allclose(got, ort_reference(m, {"x": x})[0], rtol=1e-4, atol=1e-5)


def test_compile_cache_round_trip_loads_the_flatbuffer(make_model, options) -> None:
    m = _conv_model(make_model)
    x = {"x": rand((1, 3, 16, 16))}
    first = InferenceSession(m, delegates=["tflite"], options=options)
    second = InferenceSession(m, delegates=["tflite"], options=options)
    assert not first.profile[0].cache_hit and second.profile[0].cache_hit
    assert second.partitions[0].executable.serialize() == first.partitions[0].executable.serialize()
    np.testing.assert_array_equal(second.run(None, x)[0], first.run(None, x)[0])
    assert second.plan.partitions[0].details["tflite_ops"] == first.plan.partitions[0].details["tflite_ops"]


def test_num_threads_option_and_unknown_option(make_model, options) -> None:
    m = _conv_model(make_model)
    options.use_cache = False
    x = {"x": rand((1, 3, 16, 16))}
    one = InferenceSession(m, delegates=[("tflite", {"num_threads": 1})], options=options).run(None, x)[0]
    two = InferenceSession(m, delegates=[("tflite", {"num_threads": 2})], options=options).run(None, x)[0]
    np.testing.assert_allclose(one, two, rtol=1e-6, atol=1e-6)
    # default: one thread per physical core, as ONNX Runtime's CPU EP (not LiteRT's single thread)
    default = InferenceSession(m, delegates=["tflite"], options=options)
    assert default.plan.partitions[0].details["num_threads"] == physical_cores() >= 1
    # options are checked when the session is created, strict or not (never a silent fallback)
    with pytest.raises(DelegateError, match=r"delegate 'tflite' has no option 'threads'; its options are: backend, "
                                            r"num_threads \(int"):
        InferenceSession(m, delegates=[("tflite", {"threads": 2})], options=options)
    with pytest.raises(DelegateError, match=r"num_threads=0; expected an integer >= 1"):
        InferenceSession(m, delegates=[("tflite", {"num_threads": 0})], options=options)


@pytest.mark.parametrize(
    "node, inputs, consts, reason",
    [
        (N("LSTM", ["x", "W", "R"], ["y"], hidden_size=4), {"x": (np.float32, (2, 1, 3))},
         {"W": np.zeros((1, 16, 3), np.float32), "R": np.zeros((1, 16, 4), np.float32)},
         "tflite has no kernel for op LSTM"),
        (N("Conv", ["x", "W"], ["y"], group=2, dilations=[2, 2]), {"x": (np.float32, (1, 4, 9, 9))},
         {"W": np.zeros((4, 2, 3, 3), np.float32)}, "Conv with dilations and groups>1 (not depthwise) not supported"),
        (N("Reshape", ["x", "s"], ["y"]), {"x": (np.float32, (2, 6)), "s": (np.int64, (2,))}, {},
         "data-dependent shape|depends on tensor data"),
        (N("LRN", ["x"], ["y"], size=4), {"x": (np.float32, (1, 8, 4, 4))}, {},
         "LRN with an even size has no TFLite equivalent"),
        (N("Resize", ["x", "", "s"], ["y"], mode="cubic"), {"x": (np.float32, (1, 2, 4, 4))},
         {"s": np.array([1, 1, 2, 2], np.float32)}, "Resize mode 'cubic' not supported"),
        (N("Gemm", ["a", "b"], ["y"], transA=1), {"a": (np.float32, (4, 2))}, {"b": np.zeros((4, 3), np.float32)},
         "Gemm with transA=1 not supported"),
        (N("Relu", ["x"], ["y"]), {"x": (np.float64, (2, 2))}, {}, "Relu input dtype double not supported"),
    ],
)
def test_declines_with_a_reason(make_model, node, inputs, consts, reason: str) -> None:
    m = make_model([node], inputs, consts, opset=17)
    with pytest.raises(UnsupportedError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        InferenceSession(m, delegates=["tflite"], options=SessionOptions(strict=True, use_cache=False))


def test_declined_node_falls_back_and_numbers_still_match(make_model, ort_reference, options) -> None:
    """Relu -> LSTM -> Relu: the LSTM runs on onnxruntime, the rest on tflite."""
    rng = np.random.default_rng(0)
    nodes = [N("Relu", ["x"], ["r"]), N("LSTM", ["r", "W", "R"], ["h"], hidden_size=4), N("Tanh", ["h"], ["y"])]
    consts = {"W": rng.normal(0, 0.5, (1, 16, 3)).astype(np.float32),
              "R": rng.normal(0, 0.5, (1, 16, 4)).astype(np.float32)}
    m = make_model(nodes, {"x": (np.float32, (5, 1, 3))}, consts)
    with pytest.warns(unified.FallbackWarning):
        sess = InferenceSession(m, delegates=["tflite"], options=options)
    assert [p.delegate for p in sess.plan.partitions] == ["tflite", "onnxruntime", "tflite"]
    feeds = {"x": rand((5, 1, 3))}
    np.testing.assert_allclose(sess.run(None, feeds)[0], ort_reference(m, feeds)[0], rtol=1e-4, atol=1e-6)


def test_cli_save_artifacts_writes_tflite(make_model, tmp_path, capsys) -> None:
    import onnx

    from unified.cli import main

    path = tmp_path / "conv.onnx"
    onnx.save(_conv_model(make_model), str(path))
    out = tmp_path / "artifacts"
    rc = main(["plan", str(path), "--delegates", "tflite", "--strict", "--cache-dir", str(tmp_path / "c"),
               "--save-artifacts", str(out), "--compile"])
    assert rc == 0
    files = sorted(p.name for p in out.iterdir())
    assert files == ["p0_tflite.tflite"]
    assert (out / files[0]).read_bytes()[4:8] == b"TFL3"
