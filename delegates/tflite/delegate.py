"""The ``tflite`` delegate: ONNX partitions compiled to ``.tflite`` flatbuffers
and run by the LiteRT interpreter (XNNPACK on).

Backends: ``cpu``.

Options (``delegates=[("tflite", {...})]``):
    num_threads: interpreter threads (int >= 1; default: LiteRT's choice).

The runtime is ``ai_edge_litert.interpreter.Interpreter``; when the
``ai-edge-litert`` package is absent, ``tflite_runtime.interpreter`` is used;
with neither, the delegate is unavailable and says so.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import threading
from typing import Any, Iterator, Mapping

import numpy as np
import onnx

from unified.delegate import Availability, CompileOptions, Delegate, DelegateOption, Executable
from unified.errors import DelegateError

from .support import OP_SUPPORT

__all__ = ["TFLiteDelegate", "TFLiteExecutable"]

_KNOWN_OPTIONS = ("num_threads",)

log = logging.getLogger("unified.delegates.tflite")
_FD2_LOCK = threading.Lock()


@contextlib.contextmanager
def _quiet_native_stderr() -> Iterator[None]:
    """Keep LiteRT's native log lines off the process's stderr.

    LiteRT writes ``INFO: Created TensorFlow Lite XNNPACK delegate for CPU.``
    (and ``ERROR: ...`` lines on a rejected model) from C++ straight to file
    descriptor 2 when an interpreter is created. Its Python API has no switch
    for that logger: ``TF_CPP_MIN_LOG_LEVEL`` does not reach TFLite's
    ``MinimalLogger`` and ``LiteRtSetMinLoggerSeverity`` is not exported by
    the wheel (ai-edge-litert 2.3). So, as a last resort, fd 2 is redirected
    to a temporary file around the interpreter's creation only; what LiteRT
    wrote is re-logged on the ``unified`` logger at DEBUG. When that logger is
    at DEBUG, nothing is redirected and LiteRT prints as usual. The redirect
    is process-wide for its few milliseconds; a lock keeps two of them from
    nesting.
    """
    if logging.getLogger("unified").isEnabledFor(logging.DEBUG):
        yield
        return
    import sys

    with _FD2_LOCK, tempfile.TemporaryFile() as sink:
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        saved = os.dup(2)
        try:
            os.dup2(sink.fileno(), 2)
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            text = sink.read().decode("utf-8", "replace").strip()
            if text:
                log.debug("LiteRT: %s", text)


def _runtime() -> tuple[Any, str, str]:
    """(Interpreter class, package name, version) of the first importable runtime.

    Raises:
        ImportError: neither ``ai_edge_litert`` nor ``tflite_runtime`` imports;
            the message carries both errors.
    """
    from importlib import metadata

    errors = []
    try:
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter, "ai-edge-litert", metadata.version("ai-edge-litert")
    except Exception as exc:  # ImportError, or a broken binary
        errors.append(f"ai_edge_litert: {exc}")
    try:
        from tflite_runtime.interpreter import Interpreter  # type: ignore[no-redef]

        return Interpreter, "tflite-runtime", metadata.version("tflite-runtime")
    except Exception as exc:
        errors.append(f"tflite_runtime: {exc}")
    raise ImportError("; ".join(errors))


class TFLiteExecutable(Executable):
    """One partition as a ``.tflite`` flatbuffer and a LiteRT interpreter.

    Args:
        flatbuffer: the ``.tflite`` bytes (kept; the interpreter reads them in place).
        input_names / output_names: the partition's boundary values; the
            flatbuffer's subgraph inputs/outputs are in the same order.
        num_threads: interpreter threads, or None for LiteRT's default.
        details: facts for the plan (op counts, layout transposes).

    Raises:
        DelegateError: LiteRT rejects the flatbuffer.
    """

    artifact_suffix = ".tflite"

    def __init__(self, flatbuffer: bytes, input_names: list[str], output_names: list[str],
                 num_threads: int | None, details: Mapping[str, Any], scalar_outputs: frozenset[str] = frozenset()):
        interpreter_cls, _, _ = _runtime()
        self._scalars = scalar_outputs  # rank-0 ONNX outputs TFLite may hold as shape [1]
        self._bytes = flatbuffer
        self.input_names = list(input_names)
        self.output_names = list(output_names)
        try:
            with _quiet_native_stderr():
                self._it = interpreter_cls(model_content=flatbuffer, num_threads=num_threads)
                self._it.allocate_tensors()
        except Exception as exc:
            raise DelegateError(f"LiteRT rejected the compiled flatbuffer: {' '.join(str(exc).split())[:800]}") from exc
        in_details = self._it.get_input_details()
        self._in = [d["index"] for d in in_details]
        self._in_dtypes = [np.dtype(d["dtype"]) for d in in_details]
        self._out = [d["index"] for d in self._it.get_output_details()]
        if len(self._in) != len(self.input_names) or len(self._out) != len(self.output_names):
            raise DelegateError(
                f"the flatbuffer has {len(self._in)} inputs / {len(self._out)} outputs, expected "
                f"{len(self.input_names)} / {len(self.output_names)}"
            )
        self.details = dict(details)
        self._lock = threading.Lock()

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        with self._lock:  # a LiteRT interpreter is not re-entrant
            it = self._it
            for name, idx, want in zip(self.input_names, self._in, self._in_dtypes):
                it.set_tensor(idx, _as_input(name, inputs[name], want))  # copies into the interpreter's buffer
            it.invoke()
            out = {name: it.get_tensor(idx) for name, idx in zip(self.output_names, self._out)}  # copies
        for name in self._scalars:
            if out[name].shape == (1,):
                out[name] = out[name].reshape(())
        return out

    def serialize(self) -> bytes:
        """The ``.tflite`` flatbuffer (open it in Netron, or ship it to a phone)."""
        return self._bytes


def _as_input(name: str, value: Any, want: np.dtype) -> np.ndarray:
    """``value`` as a C-contiguous array whose NumPy type number LiteRT maps.

    LiteRT's ``set_tensor`` maps NumPy type *numbers*, not dtypes: it knows
    ``NPY_LONG`` (``np.int64`` on LP64 Linux/macOS) but not ``NPY_LONGLONG``,
    an equal dtype (``np.dtype('q') == np.int64``) that ONNX Runtime returns
    for int64 tensors, e.g. a ``Shape`` output. Such an array reached the
    interpreter as ``NOTYPE`` ("Got value of type NOTYPE but expected type
    INT64"). Same-size integer types are re-viewed as the canonical type (no
    copy); NumPy scalars become 0-d arrays.

    Raises:
        DelegateError: the value's dtype differs from the input's.
    """
    arr = np.asarray(value)
    if arr.dtype != want:
        raise DelegateError(
            f"tflite partition input '{name}' is {arr.dtype} {arr.shape}; the compiled flatbuffer expects {want}"
        )
    if not arr.flags.c_contiguous:
        arr = arr.copy(order="C")  # not np.ascontiguousarray: it turns a 0-d array into 1-d
    if arr.dtype.num != want.num:
        arr = arr.view(want)
    return arr


def _num_threads(options: Mapping[str, Any]) -> int | None:
    unknown = sorted(set(options) - set(_KNOWN_OPTIONS))
    if unknown:
        raise DelegateError(f"unknown tflite option(s) {unknown}; known: {', '.join(_KNOWN_OPTIONS)}")
    n = options.get("num_threads")
    if n is None:
        return None
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise DelegateError(f"tflite option num_threads={n!r}; expected an integer >= 1")
    return n


def _scalar_outputs(partition: onnx.ModelProto) -> frozenset[str]:
    """Outputs the ONNX partition declares rank 0."""
    return frozenset(
        o.name for o in partition.graph.output
        if o.type.tensor_type.HasField("shape") and not o.type.tensor_type.shape.dim
    )


def _io_names(partition: onnx.ModelProto) -> tuple[list[str], list[str]]:
    inits = {t.name for t in partition.graph.initializer}
    return [i.name for i in partition.graph.input if i.name not in inits], [o.name for o in partition.graph.output]


def _op_counts(flatbuffer: bytes) -> dict[str, int]:
    """Builtin op name -> count, read from a flatbuffer without unpacking its buffers."""
    from .builder import schema

    s = schema()
    names = {v: k for k, v in vars(s.BuiltinOperator).items() if not k.startswith("_")}
    m = s.Model.GetRootAs(flatbuffer, 0)
    codes = [m.OperatorCodes(i) for i in range(m.OperatorCodesLength())]
    sg = m.Subgraphs(0)
    counts: dict[str, int] = {}
    for i in range(sg.OperatorsLength()):
        oc = codes[sg.Operators(i).OpcodeIndex()]
        name = names.get(max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode()), "?")
        counts[name] = counts.get(name, 0) + 1
    return counts


class TFLiteDelegate(Delegate):
    """ONNX partitions as ``.tflite`` flatbuffers, run by LiteRT with XNNPACK.

    The converter (``convert.py`` and ``ops_*.py``) writes the flatbuffer
    with LiteRT's own schema bindings; no TensorFlow, no converter process.

    ``static_shapes``: a flatbuffer has fixed tensor shapes. ``supports()``
    claims nodes with symbolic dims that become static once the model's input
    dims are known (``support.common_checks``); the core compiles one
    flatbuffer per concrete input-shape signature, with shape arithmetic
    folded into initializers. A dynamic or negative dim that still reaches
    the converter is a ``DelegateError``, never a flatbuffer LiteRT rejects.
    """

    name = "tflite"
    default_priority = 20
    op_support = OP_SUPPORT
    cacheable = True
    static_shapes = True
    options = (DelegateOption("num_threads", (int,), None, "interpreter threads, >= 1 (None: LiteRT's default)"),)

    def check_options(self, options: Mapping[str, Any]) -> None:
        """``num_threads`` is at least 1 (checked when the session is created).

        Raises:
            DelegateError: a bad ``num_threads``.
        """
        _num_threads(options)

    def availability(self) -> Availability:
        try:
            _, package, version = _runtime()
            from .builder import schema

            schema()
            import flatbuffers  # noqa: F401
        except Exception as exc:
            return Availability(False, f"no TFLite runtime: install ai-edge-litert ({exc})")
        return Availability(True, "" if package == "ai-edge-litert" else f"using {package}", f"{package} {version}")

    def backends(self) -> list[str]:
        return ["cpu"]

    def compile(self, partition: onnx.ModelProto, options: CompileOptions) -> TFLiteExecutable:
        from .convert import convert

        threads = _num_threads(options.options)
        result = convert(partition)
        ins, outs = _io_names(partition)
        details = {
            "tflite_ops": sum(result.op_counts.values()),
            "transposes": result.op_counts.get("TRANSPOSE", 0),
            "flatbuffer_bytes": len(result.flatbuffer),
        }
        return TFLiteExecutable(result.flatbuffer, ins, outs, threads, details, _scalar_outputs(partition))

    def load(self, artifact: bytes, partition: onnx.ModelProto, options: CompileOptions) -> TFLiteExecutable:
        """Rebuild the interpreter from a cached ``.tflite`` artifact (no conversion)."""
        ins, outs = _io_names(partition)
        counts = _op_counts(artifact)
        details = {"tflite_ops": sum(counts.values()), "transposes": counts.get("TRANSPOSE", 0), "flatbuffer_bytes": len(artifact)}
        return TFLiteExecutable(bytes(artifact), ins, outs, _num_threads(options.options), details,
                                _scalar_outputs(partition))
