"""Run a test script in a fresh Python interpreter: the frameworks' chatter
(torch, ExecuTorch, coremltools, ONNX Runtime) comes once per process, at
their first import, so quietness is checked in a new one each time."""

from __future__ import annotations

import os
import subprocess
import sys


def run_fresh(script: str, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """``python -c script args...`` (one BLAS thread), stdout/stderr captured as text.

    Raises:
        AssertionError: the script exited non-zero (the message is its stderr's tail).
    """
    out = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=timeout,
                         env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr[-3000:]
    return out
