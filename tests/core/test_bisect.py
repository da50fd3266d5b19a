"""``unified.debug.bisect`` and ``unified bisect``: a planted one-op bug, found in ceil(log2 N) + 2 compiles."""

from __future__ import annotations

import json
import math

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import unified.plugins
from tests.core.toy_delegate import KERNELS, ToyDelegate, ToyExecutable, ToyPlugin
from unified import InputError, SessionOptions
from unified.cli import main
from unified.debug import bisect

PLANTED = "node_137"


def _buggy_add(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Add that ignores broadcasting: a smaller ``b`` contributes only its first element."""
    return a + (b if b.shape == a.shape else b.ravel()[0])


class BuggyExecutable(ToyExecutable):
    def run(self, inputs):
        env = {**self.consts, **inputs}
        kernels = {**KERNELS, "Add": _buggy_add}
        for n in self.model.graph.node:
            env[n.output[0]] = np.asarray(kernels[n.op_type](*(env[x] for x in n.input)), dtype=np.float32)
        return {k: env[k] for k in self.output_names}


class BuggyToy(ToyDelegate):
    def compile(self, partition, options):
        self.compiled.append(partition)
        return BuggyExecutable(partition)


def chain_model(n: int = 200, planted: int = 137) -> onnx.ModelProto:
    """``n`` elementwise nodes on a (4, 8) tensor: Mul/Add/Sub with (4, 8) constants and every 10th a Neg;
    node ``planted`` is the one Add with a broadcast (8,) constant."""
    rng = np.random.default_rng(0)
    nodes, inits, prev = [], [], "x"
    for i in range(n):
        out = f"t{i}"
        if i % 10 == 9:
            nodes.append(helper.make_node("Neg", [prev], [out], name=f"node_{i}"))
        else:
            op = ("Mul", "Add", "Sub")[i % 3] if i != planted else "Add"
            shape = [8] if i == planted else [4, 8]
            lo, hi = (0.9, 1.1) if op == "Mul" else (-0.5, 0.5)
            value = rng.uniform(lo, hi, shape).astype(np.float32)
            inits.append(onnx.numpy_helper.from_array(value, f"c{i}"))
            nodes.append(helper.make_node(op, [prev, f"c{i}"], [out], name=f"node_{i}"))
        prev = out
    graph = helper.make_graph(
        nodes, "chain", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 8])],
        [helper.make_tensor_value_info(prev, TensorProto.FLOAT, [4, 8])], initializer=inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)


def test_bisect_finds_the_planted_add_within_the_compile_bound(tmp_path):
    toy = BuggyToy("toy", refuse=("Neg",))  # Neg runs on onnxruntime: 20 fallback partitions in between
    options = SessionOptions(cache_dir=tmp_path, plugins=[ToyPlugin(toy)])
    result = bisect(chain_model(), "toy", options=options)
    n = 180  # 200 nodes less the 20 Negs
    assert result.candidates == n
    assert result.node == PLANTED and result.op_type == "Add" and result.index == 137
    assert result.compiles <= math.ceil(math.log2(n)) + 2
    assert len(result.probes) == result.compiles - 1  # one reference compile, the rest probes
    out = result.outputs[0]
    assert out["tensor"] == "t137" and out["source"].endswith(" toy") and not out["ok"]
    # the bug adds c[0] instead of c: the error is exactly max |c - c[0]| on the first diverging node
    c = onnx.numpy_helper.to_array(chain_model().graph.initializer[[i.name for i in chain_model().graph.initializer]
                                                                   .index("c137")])
    assert out["max_abs"] == pytest.approx(float(np.max(np.abs(c - c[0]))), rel=1e-5)
    a, b = result.inputs
    assert a["tensor"] == "t136" and a["max_abs"] == 0.0 and a["ok"]  # the node's input is exact
    assert b == {"tensor": "c137", "source": "initializer"}
    assert "first diverging node: 'node_137' (Add)" in result.report()


def test_bisect_without_divergence_uses_two_compiles(tmp_path):
    options = SessionOptions(cache_dir=tmp_path, plugins=[ToyPlugin(ToyDelegate("toy"))])
    result = bisect(chain_model(40, planted=-1), "toy", options=options)
    assert result.node is None and result.compiles == 2 and result.candidates == 40
    assert not result.probes[0].diverged and result.probes[0].worst_error == 0.0
    assert "no node diverges" in result.report()


def test_bisect_tolerance_and_fallback_errors(tmp_path):
    options = SessionOptions(cache_dir=tmp_path, plugins=[ToyPlugin(BuggyToy("toy"))])
    model = chain_model(30, planted=20)
    # a tolerance the planted error passes: nothing diverges
    assert bisect(model, "toy", tolerance={"max_abs": 10.0}, options=options).node is None
    assert bisect(model, "toy", tolerance={"cosine": 0.999999}, options=options).node == "node_20"
    with pytest.raises(InputError, match="fallback"):
        bisect(model, "onnxruntime", options=options)
    with pytest.raises(InputError, match="set a fallback"):
        bisect(model, "toy", options=SessionOptions(cache_dir=tmp_path, fallback=None, plugins=[ToyPlugin()]))


def test_bisect_cli_prints_the_node_and_writes_json(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(unified.plugins, "_registry", unified.plugins.registry().extended([ToyPlugin(BuggyToy("toy"))]))
    path = tmp_path / "chain.onnx"
    onnx.save(chain_model(64, planted=41), path)
    out_json = tmp_path / "bisect.json"
    code = main(["bisect", str(path), "--delegate", "toy", "--cache-dir", str(tmp_path / "c"), "--json", str(out_json)])
    assert code == 0
    text = capsys.readouterr().out
    assert "first diverging node: 'node_41' (Add)" in text and "compiles: " in text
    data = json.loads(out_json.read_text())
    assert data["node"] == "node_41" and data["compiles"] <= math.ceil(math.log2(64)) + 2
    assert main(["bisect", str(path), "--delegate", "nosuch", "--no-cache"]) == 1
