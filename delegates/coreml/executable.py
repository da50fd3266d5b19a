"""The compiled partition: an ``.mlpackage`` held as zip bytes, run with Core ML on macOS.

Core ML runs only on Apple platforms. On macOS :meth:`CoreMLExecutable.run`
loads the package once (unzipped into a private temporary directory, removed
with the executable) and calls ``MLModel.predict`` with the backend's compute
units. Elsewhere it raises ``DelegateUnavailableError`` naming
:data:`COMPILE_ONLY`; it never runs the partition some other way -- unless the
session chose the ``mil-numpy`` backend, whose executable evaluates the same
saved package with :mod:`.mil_numpy` (on any platform, macOS included).
"""

from __future__ import annotations

import platform
import shutil
import tempfile
import weakref
from typing import Any, Mapping, Sequence

import numpy as np

from unified.delegate import Executable
from unified.errors import DelegateUnavailableError
from unified.onnx import to_numpy

from .convert import IoSpec
from .package import unzip_package
from .quiet import import_coremltools

__all__ = ["CoreMLExecutable", "COMPILE_ONLY", "ARTIFACT_SUFFIX", "executes_here", "MIL_NUMPY",
           "MIL_NUMPY_DESCRIPTION"]

#: The availability reason off macOS (also in the error a session raises).
COMPILE_ONLY = "compile-only: Core ML execution requires macOS"
ARTIFACT_SUFFIX = ".mlpackage.zip"
#: The backend that evaluates the compiled package in NumPy (:mod:`.mil_numpy`).
MIL_NUMPY = "mil-numpy"
MIL_NUMPY_DESCRIPTION = (
    "mil-numpy: evaluates the compiled ML Program op by op in NumPy (fp16 storage, fp32 accumulation "
    "emulated); a check of the lowering, not Apple's Core ML runtime"
)

#: Core ML multi-array type at the model boundary -> the NumPy dtype fed to it.
_IO_NUMPY = {"FLOAT32": np.float32, "FLOAT16": np.float16, "INT32": np.int32}


def executes_here() -> bool:
    """Whether Core ML can execute on this machine (macOS only)."""
    return platform.system() == "Darwin"


class CoreMLExecutable(Executable):
    """A partition compiled to an ``.mlpackage``.

    Attributes:
        inputs / outputs: the ONNX <-> Core ML I/O mapping (:class:`IoSpec`).
        compute_units: the ``coremltools.ComputeUnit`` name used on macOS.
        details: facts for the plan (precision, target, MIL op count, ...).
        backend: the delegate backend; ``mil-numpy`` runs :mod:`.mil_numpy`.
    """

    artifact_suffix = ARTIFACT_SUFFIX

    def __init__(self, blob: bytes, inputs: Sequence[IoSpec], outputs: Sequence[IoSpec], compute_units: str,
                 details: Mapping[str, Any], backend: str = "ane"):
        self._blob = blob
        self.inputs = list(inputs)
        self.outputs = list(outputs)
        self.input_names = [s.onnx_name for s in self.inputs]
        self.output_names = [s.onnx_name for s in self.outputs]
        self.compute_units = compute_units
        self.details = dict(details)
        self.backend = backend
        self._model = None
        self._program = None
        self._dir: str | None = None

    def _unzipped(self):
        if self._dir is None:
            self._dir = tempfile.mkdtemp(prefix="unified-coreml-")
            weakref.finalize(self, shutil.rmtree, self._dir, True)
        return unzip_package(self._blob, self._dir)

    def _load(self):
        """The Core ML model, loaded on first run (macOS only)."""
        if self._model is None:
            ct = import_coremltools()
            path = self._unzipped()
            self._model = ct.models.MLModel(str(path), compute_units=getattr(ct.ComputeUnit, self.compute_units))
        return self._model

    def _predict(self, feed: dict[str, np.ndarray]) -> Mapping[str, np.ndarray]:
        """Core ML names -> outputs: ``MLModel.predict``, or the NumPy evaluator for ``mil-numpy``."""
        if self.backend == MIL_NUMPY:
            from .mil_numpy import evaluate, read_program

            if self._program is None:
                self._program = read_program(self._unzipped())
            return evaluate(self._program, feed)
        if not executes_here():
            raise DelegateUnavailableError(f"delegate 'coreml' cannot execute here ({COMPILE_ONLY})")
        return self._load().predict(feed)

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run with Core ML (macOS only), or evaluate in NumPy (backend ``mil-numpy``, anywhere).

        Args:
            inputs: one array per ONNX input name; int64 is passed as int32 and
                bool as int32 (Core ML multi-array types).

        Returns:
            One array per ONNX output name, in the ONNX dtype.

        Raises:
            DelegateUnavailableError: not on macOS (:data:`COMPILE_ONLY`) and not ``mil-numpy``.
            DelegateError: the evaluator met an op it has no kernel for, or a bad program.
        """
        feed = {}
        for s in self.inputs:
            x = np.ascontiguousarray(inputs[s.onnx_name], dtype=_IO_NUMPY[s.coreml_dtype])
            feed[s.coreml_name] = x.reshape(1) if not s.shape else x  # rank 0 is fed as (1,)
        out = self._predict(feed)
        result = {}
        for s in self.outputs:
            y = np.asarray(out[s.coreml_name]).astype(to_numpy(s.onnx_dtype), copy=False)
            result[s.onnx_name] = y.reshape(()) if not s.shape and y.size == 1 else y
        return result

    def serialize(self) -> bytes:
        """The zipped ``.mlpackage`` (deterministic zip of the package directory)."""
        return self._blob
