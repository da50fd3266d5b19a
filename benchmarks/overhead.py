"""Session overhead of unified over calling ONNX Runtime directly.

Both paths run the same model in the same process, alternating call by call
(so drift in machine load hits both alike):

* ``light_resnet50.onnx``: median latency ratio unified / ORT (target <= 1.03);
* a one-node ``Add`` graph on (1, 16) float32: extra microseconds per call
  (target <= 20 us).

Run: ``python benchmarks/overhead.py [--runs N] [--calls N]``. Figures are
recorded in docs/performance.md.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

import unified
from unified.conformance import zoo


def ort_session(model: onnx.ModelProto) -> ort.InferenceSession:
    m = onnx.ModelProto()
    m.CopyFrom(model)
    m.ir_version = min(m.ir_version, 10)
    return ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])


def alternate(f_a, f_b, runs: int, calls: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-call seconds of f_a and f_b, measured in alternating batches of ``calls``."""
    a, b = [], []
    for _ in range(runs):
        start = time.perf_counter()
        for _ in range(calls):
            f_a()
        a.append((time.perf_counter() - start) / calls)
        start = time.perf_counter()
        for _ in range(calls):
            f_b()
        b.append((time.perf_counter() - start) / calls)
    return np.array(a), np.array(b)


def resnet50(runs: int) -> dict:
    model = onnx.load(zoo.light_model_path("resnet50"))
    feeds = zoo.random_inputs(model)
    direct = ort_session(model)
    sess = unified.InferenceSession(model, ["onnxruntime"], unified.SessionOptions(use_cache=False))
    for _ in range(3):  # warm-up
        direct.run(None, feeds)
        sess.run(None, feeds)
    t_unified, t_ort = alternate(lambda: sess.run(None, feeds), lambda: direct.run(None, feeds), runs, 1)
    return {
        "ort_ms": float(np.median(t_ort) * 1e3),
        "unified_ms": float(np.median(t_unified) * 1e3),
        "ratio": float(np.median(t_unified / t_ort)),
    }


def one_node_add(runs: int, calls: int) -> dict:
    g = helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["y"])],
        "add",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 16]) for n in ("a", "b")],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16])],
    )
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)
    feeds = {"a": np.ones((1, 16), np.float32), "b": np.ones((1, 16), np.float32)}
    direct = ort_session(model)
    sess = unified.InferenceSession(model, ["onnxruntime"], unified.SessionOptions(use_cache=False))
    t_unified, t_ort = alternate(lambda: sess.run(None, feeds), lambda: direct.run(None, feeds), runs, calls)
    return {
        "ort_us": float(np.median(t_ort) * 1e6),
        "unified_us": float(np.median(t_unified) * 1e6),
        "extra_us": float(np.median(t_unified - t_ort) * 1e6),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40, help="alternating measurements per model")
    parser.add_argument("--calls", type=int, default=2000, help="calls per measurement on the Add graph")
    args = parser.parse_args()
    r = resnet50(args.runs)
    print(
        f"light_resnet50: ORT {r['ort_ms']:.2f} ms, unified {r['unified_ms']:.2f} ms, "
        f"median ratio {r['ratio']:.4f} (target <= 1.03)"
    )
    a = one_node_add(args.runs, args.calls)
    print(
        f"one-node Add: ORT {a['ort_us']:.2f} us, unified {a['unified_us']:.2f} us, "
        f"extra {a['extra_us']:.2f} us per call (target <= 20 us)"
    )


if __name__ == "__main__":
    main()
