"""Session creation with the executorch delegate: cold compile vs warm compile cache.

For each model, in one process (imports of torch/executorch done by a warm-up
compile of a one-node model first, so neither figure includes them):

* **first** — ``InferenceSession(model, delegates=["executorch"])`` on an empty
  cache directory: ONNX -> torch -> ``torch.export`` -> XNNPACK lowering ->
  ``.pte``, stored in the cache;
* **second** — the same call again on the same cache directory: the ``.pte``
  is read from the cache and loaded by the ExecuTorch runtime, nothing is
  compiled (checked: ``profile[i].cache_hit``).

Usage:
    .venv/bin/python benchmarks/executorch_cache.py [--models light_resnet50 mobilenet_like] [--markdown]

Prints seconds for each and the speed-up first / second (target: >= 10x).
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
import warnings

import numpy as np
import onnx
from onnx import helper

from _versus_ort import print_rows


def _model(name: str) -> onnx.ModelProto:
    from unified.conformance import nets, zoo

    if name == "mobilenet_like":
        return nets.mobilenet_like()
    if name == "minilm":
        return nets.minilm()
    return zoo.redraw_weights(onnx.load(zoo.light_model_path(name.removeprefix("light_"))), seed=0)


def _warm_up(cache: str) -> None:
    from unified import InferenceSession, SessionOptions

    x = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 4])
    g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "warm", [x], [y])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)
    InferenceSession(m, delegates=["executorch"], options=SessionOptions(cache_dir=cache)).run(
        None, {"x": np.ones((1, 4), np.float32)}
    )


def measure(model: onnx.ModelProto, cache: str, options: dict) -> tuple[float, float]:
    from unified import InferenceSession, SessionOptions

    so = SessionOptions(strict=True, cache_dir=cache)
    times, hits = [], []
    for _ in range(2):
        start = time.perf_counter()
        sess = InferenceSession(model, delegates=[("executorch", options)], options=so)
        times.append(time.perf_counter() - start)
        hits.append(all(p.cache_hit for p in sess.profile))
    if hits != [False, True]:
        raise RuntimeError(f"expected a cold then a warm cache, got cache hits {hits}")
    return times[0], times[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["light_resnet50", "mobilenet_like", "minilm"])
    p.add_argument("--markdown", action="store_true")
    args = p.parse_args()
    warnings.filterwarnings("ignore")
    from importlib.metadata import version

    print(f"# host: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"executorch {version('executorch')}, torch {version('torch')}")
    with tempfile.TemporaryDirectory() as tmp:
        _warm_up(os.path.join(tmp, "warm"))
        rows = []
        for name in args.models:
            opts = {"dims": {"batch": 1, "seq": 128}} if name == "minilm" else {}
            first, second = measure(_model(name), os.path.join(tmp, name), opts)
            rows.append((name, first, second))
    print_rows(
        rows, args.markdown, ("model", "first session s", "second session (warm cache) s", "speed-up"),
        lambda row: (row[0], f"{row[1]:.2f}", f"{row[2]:.3f}", f"{row[1] / row[2]:.0f}x"),
        lambda row: f"{row[0]:16s} first {row[1]:7.2f} s  second {row[2]:7.3f} s  speed-up {row[1] / row[2]:.0f}x",
    )


if __name__ == "__main__":
    main()
