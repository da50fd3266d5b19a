"""``unified.debug.compare`` and ``unified compare``: boundary figures checked against direct ONNX Runtime runs."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import onnx
import onnx.utils
import pytest
from onnx import TensorProto, helper

import unified.plugins
from tests.core.toy_delegate import KERNELS, ToyDelegate, ToyExecutable, ToyPlugin
from unified import FallbackWarning, InferenceSession, InputError, SessionOptions
from unified.cli import main
from unified.debug import ROW_KEYS, compare, compare_models


class HalfExecutable(ToyExecutable):
    """Computes every node in float16 (a stand-in for a delegate with reduced precision)."""

    def run(self, inputs):
        env = {k: v.astype(np.float16) for k, v in {**self.consts, **inputs}.items()}
        for n in self.model.graph.node:
            env[n.output[0]] = np.asarray(KERNELS[n.op_type](*(env[x] for x in n.input)), dtype=np.float16)
        return {k: env[k].astype(np.float32) for k in self.output_names}


class HalfToy(ToyDelegate):
    def compile(self, partition, options):
        self.compiled.append(partition)
        return HalfExecutable(partition)


def _plugin() -> ToyPlugin:
    return ToyPlugin(HalfToy("toy16"))


def five_partitions() -> onnx.ModelProto:
    """x -> Mul, Add, Relu (toy) -> MatMul (onnxruntime) -> Add, Relu (toy) -> Sigmoid (onnxruntime) -> Mul (toy) -> y."""
    rng = np.random.default_rng(1)
    c = {n: rng.uniform(lo, hi, s).astype(np.float32) for n, lo, hi, s in [
        ("w1", 0.5, 1.5, [8]), ("b1", -0.5, 0.5, [8]), ("W", -1, 1, [8, 8]), ("b2", -0.5, 0.5, [8]),
        ("w3", 0.5, 1.5, [8])]}
    nodes = [
        helper.make_node("Mul", ["x", "w1"], ["m1"], name="mul1"),
        helper.make_node("Add", ["m1", "b1"], ["a1"], name="add1"),
        helper.make_node("Relu", ["a1"], ["r1"], name="relu1"),
        helper.make_node("MatMul", ["r1", "W"], ["mm"], name="matmul"),
        helper.make_node("Add", ["mm", "b2"], ["a2"], name="add2"),
        helper.make_node("Relu", ["a2"], ["r2"], name="relu2"),
        helper.make_node("Sigmoid", ["r2"], ["s"], name="sigmoid"),
        helper.make_node("Mul", ["s", "w3"], ["y"], name="mul3"),
    ]
    graph = helper.make_graph(nodes, "five", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 8])],
                              initializer=[onnx.numpy_helper.from_array(v, k) for k, v in c.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)


def _ort(model: onnx.ModelProto, feed: dict) -> list[np.ndarray]:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"]).run(None, feed)


def _with_output(model: onnx.ModelProto, name: str) -> onnx.ModelProto:
    m = onnx.shape_inference.infer_shapes(model)
    vi = next(v for v in m.graph.value_info if v.name == name)
    m.graph.output.append(vi)
    return m


def _independent(model, tensor, delegate, feed, options) -> tuple[np.ndarray, np.ndarray]:
    """(the delegate's value of ``tensor``, ONNX Runtime's), each from the prefix subgraph ending at it."""
    prefix = onnx.utils.Extractor(onnx.shape_inference.infer_shapes(model)).extract_model(["x"], [tensor])
    ref = _ort(prefix, feed)[0]
    full = _ort(_with_output(model, tensor), feed)[-1] if tensor != "y" else _ort(model, feed)[0]
    np.testing.assert_array_equal(ref, full)  # the prefix run and the whole model agree on the reference
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FallbackWarning)  # MatMul and Sigmoid fall back, as in compare
        actual = InferenceSession(prefix, [delegate], options).run(None, feed)[0]
    return actual, ref


def _check_figures(row, actual, ref) -> None:
    a, r = actual.astype(np.float64), ref.astype(np.float64)
    d = np.abs(a - r)
    assert row["max_abs"] == pytest.approx(d.max(), rel=1e-9, abs=1e-12)
    assert row["max_rel"] == pytest.approx((d / np.maximum(np.abs(r), 1e-12)).max(), rel=1e-9)
    assert row["cosine"] == pytest.approx(a.ravel() @ r.ravel() / np.linalg.norm(a) / np.linalg.norm(r), rel=1e-12)
    assert row["sqnr_db"] == pytest.approx(10 * math.log10((r**2).sum() / (d**2).sum()), rel=1e-9)
    assert row["ok"] == bool(d.max() <= 1e-3 * max(1.0, np.abs(r).max()))


def test_boundary_figures_match_direct_onnxruntime_runs(tmp_path):
    model = five_partitions()
    options = SessionOptions(cache_dir=tmp_path, plugins=[_plugin()])
    x = np.random.default_rng(5).uniform(-1, 1, (2, 8)).astype(np.float32)
    rows = compare(model, ["toy16"], {"x": x}, options=options)
    assert [(r["tensor"], r["partition"], r["partition_delegate"], r["producer_node"], r["kind"]) for r in rows] == [
        ("r1", "p0", "toy16", "relu1", "boundary"), ("mm", "p1", "onnxruntime", "matmul", "boundary"),
        ("r2", "p2", "toy16", "relu2", "boundary"), ("s", "p3", "onnxruntime", "sigmoid", "boundary"),
        ("y", "p4", "toy16", "mul3", "output"),
    ]
    assert all(set(ROW_KEYS) <= set(r) and r["delegate"] == "toy16" for r in rows)
    for row in rows:
        actual, ref = _independent(model, row["tensor"], "toy16", {"x": x}, options)
        assert row["max_abs"] > 0  # float16 rounding reaches every boundary, the onnxruntime partitions' too
        _check_figures(row, actual, ref)


def test_all_tensors_exposes_the_intermediates(tmp_path):
    model = five_partitions()
    options = SessionOptions(cache_dir=tmp_path, plugins=[_plugin()])
    x = np.random.default_rng(6).uniform(-1, 1, (2, 8)).astype(np.float32)
    rows = {r["tensor"]: r for r in compare(model, ["toy16"], {"x": x}, all_tensors=True, options=options)}
    assert list(rows) == ["m1", "a1", "r1", "mm", "a2", "r2", "s", "y"]
    assert rows["m1"]["kind"] == rows["a2"]["kind"] == "exposed" and rows["m1"]["partition_delegate"] == "toy16"
    for name in ("m1", "a1", "a2"):
        _check_figures(rows[name], *_independent(model, name, "toy16", {"x": x}, options))


def test_compare_reference_delegate_and_input_errors(tmp_path):
    model = five_partitions()
    options = SessionOptions(cache_dir=tmp_path, placement={"matmul": "onnxruntime"})
    rows = compare(model, ["onnxruntime"], options=options)  # onnxruntime with optimizations vs without
    assert [r["tensor"] for r in rows] == ["y"] and rows[0]["max_abs"] < 1e-6 and rows[0]["ok"]
    with pytest.raises(InputError, match="unknown input"):
        compare(model, ["onnxruntime"], {"nope": np.zeros(1)}, options=options)
    with pytest.raises(InputError, match="non-empty list"):
        compare(model, "onnxruntime", options=options)


def quantized_pair() -> tuple[onnx.ModelProto, onnx.ModelProto]:
    """A float classifier (logits and softmax outputs) and the same with int8 weights (DequantizeLinear)."""
    rng = np.random.default_rng(2)
    w = rng.normal(0, 1, (16, 10)).astype(np.float32)
    scale = np.float32(np.abs(w).max() / 127)
    q = np.clip(np.round(w / scale), -127, 127).astype(np.int8)

    def build(weight_nodes, inits):
        nodes = weight_nodes + [helper.make_node("MatMul", ["x", "w"], ["logits"]),
                                helper.make_node("Softmax", ["logits"], ["probs"], axis=-1)]
        graph = helper.make_graph(nodes, "cls", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 16])],
                                  [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [4, 10]),
                                   helper.make_tensor_value_info("probs", TensorProto.FLOAT, [4, 10])],
                                  initializer=inits)
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)

    dq = [helper.make_node("DequantizeLinear", ["wq", "ws"], ["w"])]
    inits = [onnx.numpy_helper.from_array(q, "wq"), onnx.numpy_helper.from_array(np.array(scale), "ws")]
    return build(dq, inits), build([], [onnx.numpy_helper.from_array(w, "w")])


def test_compare_models_quantized_against_float(tmp_path):
    quantized, floating = quantized_pair()
    x = np.random.default_rng(3).normal(0, 1, (4, 16)).astype(np.float32)
    options = SessionOptions(cache_dir=tmp_path, plugins=[_plugin()])
    rows = compare_models(quantized, floating, ["toy16"], {"x": x}, options=options)
    assert [(r["delegate"], r["output"]) for r in rows] == [
        ("onnxruntime", "logits"), ("onnxruntime", "probs"), ("toy16", "logits"), ("toy16", "probs")]
    qa, fa = _ort(quantized, {"x": x}), _ort(floating, {"x": x})
    p = np.exp(fa[0] - fa[0].max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    lq = np.exp(qa[0] - qa[0].max(-1, keepdims=True))
    lq /= lq.sum(-1, keepdims=True)
    kl = float(np.mean(np.sum(p * np.log(p / lq), axis=-1)))
    logits, probs = rows[0], rows[1]
    # the delegate runs ORT with its graph optimizations: MatMul rounding differs in the last bits
    assert logits["kl"] == pytest.approx(kl, rel=1e-3) and kl > 1e-5
    assert probs["kl"] == pytest.approx(kl, rel=1e-2)  # the softmax output is taken as a distribution as is
    assert logits["top1"] == float(np.mean(qa[0].argmax(-1) == fa[0].argmax(-1)))
    assert logits["top5"] == 1.0
    d = qa[0].astype(np.float64) - fa[0]
    assert logits["sqnr_db"] == pytest.approx(10 * math.log10((fa[0].astype(np.float64) ** 2).sum() / (d**2).sum()))
    with pytest.raises(InputError, match="different inputs"):
        compare_models(quantized, five_partitions(), options=options)


def test_compare_cli_table_and_json(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(unified.plugins, "_registry", unified.plugins.registry().extended([_plugin()]))
    path, out = tmp_path / "five.onnx", tmp_path / "rows.json"
    onnx.save(five_partitions(), path)
    assert main(["compare", str(path), "--delegates", "toy16", "--json", str(out), "--cache-dir",
                 str(tmp_path / "c")]) == 0
    text = capsys.readouterr().out
    assert text.splitlines()[0].split()[:4] == ["delegate", "tensor", "producer_node", "partition"]
    assert "toy16" in text and "relu1" in text and "sigmoid" in text
    rows = json.loads(out.read_text())
    assert [r["tensor"] for r in rows] == ["r1", "mm", "r2", "s", "y"] and set(ROW_KEYS) <= set(rows[0])
    quantized, floating = quantized_pair()
    onnx.save(quantized, tmp_path / "q.onnx")
    onnx.save(floating, tmp_path / "f.onnx")
    assert main(["compare", str(tmp_path / "q.onnx"), "--against", str(tmp_path / "f.onnx"), "--no-cache"]) == 0
    head = capsys.readouterr().out.splitlines()[0].split()
    assert head == ["delegate", "output", "kl", "top1", "top5", "sqnr_db", "cosine", "max_abs"]
    assert main(["compare", str(path), "--no-cache"]) == 1
    assert "compare needs --delegates" in capsys.readouterr().err
