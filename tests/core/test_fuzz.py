"""Seeded fuzzing of the loader and the default path.

* Byte-level: flipped bytes and truncations of real model files (the onnx
  wheel's own test models) either load or raise ``ModelError`` -- never a
  bare protobuf, onnx or Unicode exception.
* Structured: small models with mutated attributes, dims, op types, inputs
  and opsets, each planned, compiled and run on the default delegates in a
  child process: a ``UnifiedError`` or a result, never a crash, a hang or
  another exception type.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import onnx
import pytest

from unified.errors import ModelError
from unified.graph import Graph

_DATA = Path(onnx.__file__).parent / "backend" / "test" / "data"


def _corpus() -> list[Path]:
    files = sorted(_DATA.glob("simple/*/model.onnx")) + sorted(_DATA.glob("pytorch-operator/*/model.onnx"))
    files += [_DATA / "light" / f"light_{n}.onnx" for n in ("squeezenet", "shufflenet", "inception_v1")]
    return [f for f in files if f.is_file()]


def _mutations(seed: int, count: int):
    rng = random.Random(seed)
    files = _corpus()
    for k in range(count):
        path = rng.choice(files)
        data = bytearray(path.read_bytes())
        if k % 2 == 0:
            for _ in range(rng.randint(1, 8)):
                data[rng.randrange(len(data))] = rng.randrange(256)
            kind = "flip"
        else:
            data = data[: rng.randrange(len(data))]
            kind = "truncate"
        yield f"{path.parent.name}/{path.name} {kind} #{k}", bytes(data)


def test_corrupt_model_files_give_model_error():
    assert len(_corpus()) > 40
    outcomes = {"loaded": 0, "ModelError": 0}
    for label, data in _mutations(seed=20261128, count=300):
        try:
            Graph(data).node_views
            outcomes["loaded"] += 1
        except ModelError:
            outcomes["ModelError"] += 1
        except Exception as exc:  # noqa: BLE001 - the point of the test
            pytest.fail(f"{label}: {type(exc).__name__}: {exc}")
    assert outcomes["ModelError"] > 150  # most mutations break the file; each said so as a ModelError


_CHILD = r'''
import json, random, sys, warnings
import numpy as np
import onnx
from onnx import helper, TensorProto
import unified
from unified.graph import random_feed

warnings.simplefilter("ignore")
rng = random.Random(int(sys.argv[1]))
F = TensorProto.FLOAT

def base():
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1], strides=[1, 1]),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("MaxPool", ["r"], ["p"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Reshape", ["p", "shape"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "fc", "b"], ["y"], name="fc", transB=1),
    ]
    npr = np.random.default_rng(0)
    inits = [
        onnx.numpy_helper.from_array(npr.standard_normal((4, 3, 3, 3)).astype(np.float32), "w"),
        onnx.numpy_helper.from_array(np.array([0, -1], np.int64), "shape"),
        onnx.numpy_helper.from_array(npr.standard_normal((5, 64)).astype(np.float32), "fc"),
        onnx.numpy_helper.from_array(npr.standard_normal((5,)).astype(np.float32), "b"),
    ]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", F, ["N", 3, 8, 8])],
                          [helper.make_tensor_value_info("y", F, ["N", 5])], initializer=inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)

def mutate(m):
    g = m.graph
    what = rng.choice(["attr", "dim", "op", "input", "opset"])
    n = rng.choice(list(g.node))
    if what == "attr" and n.attribute:
        a = rng.choice(list(n.attribute))
        if a.ints:
            a.ints[rng.randrange(len(a.ints))] = rng.choice([0, -1, 3, 7, 100])
        elif a.type == onnx.AttributeProto.INT:
            a.i = rng.choice([0, -1, 2, 99])
    elif what == "dim":
        d = g.input[0].type.tensor_type.shape.dim[rng.randrange(4)]
        d.dim_value = rng.choice([0, 1, 5, -1, 64])
    elif what == "op":
        n.op_type = rng.choice(["Sigmoid", "Add", "Transpose", "Softmax", "NoSuchOp", "Identity"])
    elif what == "input":
        n.input[rng.randrange(len(n.input))] = rng.choice(["x", "w", "missing", ""])
    else:
        m.opset_import[0].version = rng.choice([1, 7, 11, 13, 21, 99])
    return what

results = []
for k in range(int(sys.argv[2])):
    m = base()
    what = [mutate(m) for _ in range(rng.randint(1, 3))]
    try:
        sess = unified.InferenceSession(m, options=unified.SessionOptions(use_cache=False))
        feed = random_feed(sess.get_inputs(), seed=k, dims={"N": 2})
        sess.run(None, feed)
        results.append([k, what, "ok", ""])
    except unified.UnifiedError as exc:
        results.append([k, what, type(exc).__name__, str(exc)[:120]])
    except Exception as exc:
        results.append([k, what, "BUG " + type(exc).__name__, str(exc)[:300]])
    print(json.dumps(results[-1]), flush=True)
'''


@pytest.mark.slow
def test_mutated_models_on_the_default_path_never_crash(tmp_path):
    script = tmp_path / "fuzz_child.py"
    script.write_text(_CHILD)
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(script), "7", "40"], capture_output=True, text=True, timeout=600,
                          env=env)
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("[")]
    assert proc.returncode == 0, f"child died after {len(rows)} models (rc {proc.returncode}): {proc.stderr[-2000:]}"
    assert len(rows) == 40
    bugs = [r for r in rows if r[2].startswith("BUG")]
    assert not bugs, bugs
    assert {r[2] for r in rows} & {"ok"}, "no mutated model ran at all: the fuzz is not exercising the run path"
