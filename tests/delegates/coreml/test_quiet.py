"""Compiling through coremltools prints nothing on stderr unless ``unified`` is at DEBUG.

coremltools' import logs warnings (its own, torch's, torchao's) and each MIL
pass pipeline draws a tqdm progress bar; the delegate switches them off at
their source (:mod:`unified.delegates.coreml.quiet`). Each check runs a
compile in a fresh interpreter, where coremltools is imported for the first time.
"""

from __future__ import annotations

import textwrap

import pytest

from ...fresh_interpreter import run_fresh

SCRIPT = textwrap.dedent("""
    import logging, sys
    if sys.argv[1] == "debug":
        logging.getLogger("unified").setLevel(logging.DEBUG)
    from onnx import TensorProto, helper
    from unified.delegate import CompileOptions
    from unified.delegates.coreml import CoreMLDelegate

    g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "t",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)], ir_version=10)
    CoreMLDelegate().compile(m, CompileOptions(backend="cpu"))
    print("compiled")
""")

#: Lines coremltools and the frameworks it imports write when left alone.
NOISE = ("Running MIL", "Failed to load", "has not been tested with coremltools", "scikit-learn version",
         "_pytree.py", "passes/s", "torchao")


def test_compile_is_quiet_by_default() -> None:
    run = run_fresh(SCRIPT, "default")
    assert run.stdout.strip() == "compiled"
    noisy = [line for line in run.stderr.splitlines() if any(n in line for n in NOISE)]
    assert not noisy, noisy
    assert run.stderr.strip() == "", run.stderr[-2000:]


@pytest.mark.slow
def test_frameworks_speak_when_unified_is_at_debug() -> None:
    run = run_fresh(SCRIPT, "debug")
    assert "Running MIL default pipeline" in run.stderr  # the progress bar is back
