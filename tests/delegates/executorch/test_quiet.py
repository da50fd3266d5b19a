"""Importing, compiling and running through the executorch delegate prints
nothing from torch, torchao, ExecuTorch or XNNPACK unless the ``unified``
logger is at DEBUG (each case in a fresh interpreter: the chatter comes
once per process, at the frameworks' first import)."""

from __future__ import annotations

import subprocess
import sys

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


def _run(mode: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", _SCRIPT, mode], capture_output=True, text=True, timeout=600)


def test_compile_and_run_print_nothing_by_default():
    out = _run("default")
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout == "ok\n"
    noisy = [line for line in out.stderr.splitlines() if any(word in line for word in _CHATTER)]
    assert noisy == [], "\n".join(noisy[:20])
    assert out.stderr == ""


def test_debug_level_lets_the_frameworks_speak():
    out = _run("debug")
    assert out.returncode == 0, out.stderr[-3000:]
    assert "cpuinfo_utils" in out.stderr  # ExecuTorch's C++ log, not redirected at DEBUG
    assert "torchao" in out.stderr
