"""The tflite delegate's executable: a ``.tflite`` flatbuffer run by a LiteRT
interpreter (``run``), its bytes (``serialize``), and what a cached artifact
says about itself (:func:`op_counts`, for ``load``).

Profiling: LiteRT's Python ``Interpreter`` exposes no per-op timings (its
C++ profiler cannot be attached from Python; ``experimental_force_delegate_
node_profiling`` only matters with an attached profiler), so
``run_traced`` reports three ``delegate`` spans -- ``set_tensor`` (copy
in), ``invoke`` (the whole flatbuffer, no op breakdown; its args list the
builtin op counts) and ``get_tensor`` (copy out) -- and no ``op`` spans.
"""

from __future__ import annotations

import threading
from typing import Any, Mapping

import numpy as np

from unified.delegate import Executable
from unified.errors import DelegateError
from unified.trace import clock

from .quiet import quiet_native_stderr

__all__ = ["TFLiteExecutable", "runtime", "op_counts"]


def runtime() -> tuple[Any, str, str]:
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
        interpreter_cls, _, _ = runtime()
        self._scalars = scalar_outputs  # rank-0 ONNX outputs TFLite may hold as shape [1]
        self._bytes = flatbuffer
        self.input_names = list(input_names)
        self.output_names = list(output_names)
        try:
            with quiet_native_stderr():
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
        """One inference: ``inputs`` (name -> array of the partition's dtype and
        static shape) in, output name -> array out (rank-0 outputs as 0-d).

        Raises:
            DelegateError: an input's dtype differs from the flatbuffer's.
        """
        return self._run(inputs, None)

    def run_traced(self, inputs: Mapping[str, np.ndarray], tracer) -> dict[str, np.ndarray]:
        """:meth:`run` as three ``delegate`` spans (copy in, invoke, copy out); no op spans (see the module)."""
        marks = [tracer.clock()]
        out = self._run(inputs, marks)
        tracer.step("litert set_tensor (copy in)", marks[0], marks[1])
        facts = {k: v for k, v in self.details.items() if isinstance(v, (int, str))}
        tracer.step("litert invoke", marks[1], marks[2], **facts)
        tracer.step("litert get_tensor (copy out)", marks[2], marks[3])
        return out

    def _run(self, inputs: Mapping[str, np.ndarray], marks: list[int] | None) -> dict[str, np.ndarray]:
        """Run; with ``marks``, append the trace clock after copying in, invoking and copying out."""
        with self._lock:  # a LiteRT interpreter is not re-entrant
            it = self._it
            for name, idx, want in zip(self.input_names, self._in, self._in_dtypes):
                it.set_tensor(idx, _as_input(name, inputs[name], want))  # copies into the interpreter's buffer
            if marks is not None:
                marks.append(clock())
            it.invoke()
            if marks is not None:
                marks.append(clock())
            out = {name: it.get_tensor(idx) for name, idx in zip(self.output_names, self._out)}  # copies
            if marks is not None:
                marks.append(clock())
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


def op_counts(flatbuffer: bytes) -> dict[str, int]:
    """Builtin op name -> count, read from a flatbuffer without unpacking its buffers."""
    from .builder import schema

    tfl = schema()
    names = {v: k for k, v in vars(tfl.BuiltinOperator).items() if not k.startswith("_")}
    m = tfl.Model.GetRootAs(flatbuffer, 0)
    codes = [m.OperatorCodes(i) for i in range(m.OperatorCodesLength())]
    sg = m.Subgraphs(0)
    counts: dict[str, int] = {}
    for i in range(sg.OperatorsLength()):
        oc = codes[sg.Operators(i).OpcodeIndex()]
        name = names.get(max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode()), "?")
        counts[name] = counts.get(name, 0) + 1
    return counts
