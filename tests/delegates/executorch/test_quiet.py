"""Importing, compiling and running through the executorch delegate prints
nothing from torch, torchao, ExecuTorch or XNNPACK unless the ``unified``
logger is at DEBUG (each case in a fresh interpreter: the chatter comes
once per process, at the frameworks' first import)."""

from __future__ import annotations

from ...fresh_interpreter import run_fresh

_SCRIPT = r"""
import logging, sys, numpy as np
from onnx import helper
if sys.argv[1] == "debug":
    logging.basicConfig()
    logging.getLogger("unified").setLevel(logging.DEBUG)
import unified
nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c"], ["y"])]
g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", 1, ["n", 3, 8, 8])],
                      [helper.make_tensor_value_info("y", 1, None)],
                      initializer=[helper.make_tensor("w", 1, [4, 3, 3, 3], np.ones(108, np.float32))])
m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)
s = unified.InferenceSession(m, delegates=["executorch"], options=unified.SessionOptions(strict=True, use_cache=False))
y = s.run(None, {"x": np.ones((2, 3, 8, 8), np.float32)})[0]
assert y.shape == (2, 4, 8, 8), y.shape
print("ok")
"""

_CHATTER = ("torchao", "_pytree", "cpuinfo", "Warning", "warn", "XNNPACK", "torch", "executorch", "W11", "I11")


def test_compile_and_run_print_nothing_by_default():
    out = run_fresh(_SCRIPT, "default")
    assert out.stdout == "ok\n"
    noisy = [line for line in out.stderr.splitlines() if any(word in line for word in _CHATTER)]
    assert noisy == [], "\n".join(noisy[:20])
    assert out.stderr == ""


def test_debug_level_lets_the_frameworks_speak():
    out = run_fresh(_SCRIPT, "debug")
    assert "cpuinfo_utils" in out.stderr  # ExecuTorch's C++ log, not redirected at DEBUG
    assert "torchao" in out.stderr
