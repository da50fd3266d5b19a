"""The ``onnxruntime`` delegate: a partition runs as an ONNX Runtime session;
the default fallback.

Layout of the package:

* ``delegate.py`` — :class:`OnnxRuntimeDelegate`: options, backends
  (execution providers), IR-version and GPU probes;
* ``support.py`` — what it claims (a one-node session probe) and the nodes
  ONNX Runtime accepts but runs wrong;
* ``executable.py`` — :class:`OnnxRuntimeExecutable`, the
  ``InferenceSession`` wrapper (create, run, serialize, load);
* ``rewrites.py`` — graph rewrites that make ONNX Runtime compute what the
  ONNX spec says.

``onnxruntime`` itself is imported on first use, so importing this package
is cheap.
"""

from __future__ import annotations

from unified.delegate import Delegate
from unified.delegates.onnxruntime.delegate import OnnxRuntimeDelegate
from unified.delegates.onnxruntime.executable import OnnxRuntimeExecutable
from unified.hookspecs import hookimpl

__all__ = ["OnnxRuntimeDelegate", "OnnxRuntimeExecutable"]


@hookimpl
def unified_delegates() -> list[Delegate]:
    """The hook: this package's delegate."""
    return [OnnxRuntimeDelegate()]
