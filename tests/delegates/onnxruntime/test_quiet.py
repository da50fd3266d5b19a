"""ONNX Runtime's model-load warnings (they go to its default logger, past a
session's ``log_severity_level``) stay off stderr unless the ``unified``
logger is at DEBUG; each case in a fresh interpreter."""

from __future__ import annotations

from ...fresh_interpreter import run_fresh

# an initializer no node uses: ORT warns "Removing initializer 'unused'" while loading
_SCRIPT = r"""
import logging, sys, numpy as np
from onnx import helper
if sys.argv[1] == "debug":
    logging.basicConfig()
    logging.getLogger("unified").setLevel(logging.DEBUG)
import unified
g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                      [helper.make_tensor_value_info("x", 1, [2, 3])], [helper.make_tensor_value_info("y", 1, [2, 3])],
                      initializer=[helper.make_tensor("unused", 1, [1], [1.0])])
m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)
s = unified.InferenceSession(m, ["onnxruntime"], unified.SessionOptions(use_cache=False))
y = s.run(None, {"x": -np.ones((2, 3), np.float32)})[0]
assert (y == 0).all()
print("ok")
"""


def test_model_load_warnings_are_silent_by_default():
    out = run_fresh(_SCRIPT, "default")
    assert out.stdout == "ok\n"
    assert "onnxruntime" not in out.stderr and "Removing initializer" not in out.stderr, out.stderr[-2000:]


def test_debug_level_lets_onnxruntime_speak():
    out = run_fresh(_SCRIPT, "debug")
    assert "Removing initializer 'unused'" in out.stderr
