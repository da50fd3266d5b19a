"""Loading an ExecuTorch partition from the compile cache does not import
``executorch.exir`` (the export stack), and compiling after that import still
works (delegates/executorch/runtime_import.py). Each case in a fresh
interpreter: what is imported is decided once per process."""

from __future__ import annotations

from ...fresh_interpreter import run_fresh

_SCRIPT = r"""
import sys, numpy as np, onnxruntime as ort
from onnx import helper
import unified
nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c"], ["y"])]
g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", 1, [1, 3, 8, 8])],
                      [helper.make_tensor_value_info("y", 1, None)],
                      initializer=[helper.make_tensor("w", 1, [4, 3, 3, 3], np.random.default_rng(0).standard_normal(108).astype(np.float32))])
m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)
x = np.random.default_rng(1).standard_normal((1, 3, 8, 8)).astype(np.float32)
opts = unified.SessionOptions(strict=True, cache_dir=sys.argv[1])
s = unified.InferenceSession(m, delegates=["executorch"], options=opts)
y = s.run(None, {"x": x})[0]
want = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
np.testing.assert_allclose(y, want, rtol=1e-4, atol=1e-5)
print("exir" if "executorch.exir.program" in sys.modules else "no-exir")
"""


def test_a_cached_program_loads_without_the_export_stack_and_compiling_still_works(tmp_path):
    first = run_fresh(_SCRIPT, str(tmp_path))  # compiles: the real executorch.exir is imported after the runtime
    assert first.stdout == "exir\n", first.stdout
    second = run_fresh(_SCRIPT, str(tmp_path))  # loads the .pte from the cache
    assert second.stdout == "no-exir\n", second.stdout
