"""The ``tflite`` delegate: ONNX partitions compiled to ``.tflite`` flatbuffers
and run by the LiteRT interpreter (XNNPACK on).

Backends: ``cpu``.

Options (``delegates=[("tflite", {...})]``):
    num_threads: interpreter threads (int >= 1; default: one per physical
        core, ``unified.host.physical_cores()``, as ONNX Runtime's CPU EP
        does; LiteRT's own default is one thread for a model with XNNPACK).

The runtime is ``ai_edge_litert.interpreter.Interpreter``; when the
``ai-edge-litert`` package is absent, ``tflite_runtime.interpreter`` is used;
with neither, the delegate is unavailable and says so.
"""

from __future__ import annotations

from typing import Any, Mapping

import onnx

from unified.delegate import Availability, CompileOptions, Delegate, DelegateOption
from unified.errors import DelegateError
from unified.host import physical_cores

from .executable import TFLiteExecutable, runtime
from .executable import op_counts as _op_counts
from .support import OP_SUPPORT

__all__ = ["TFLiteDelegate"]

_KNOWN_OPTIONS = ("num_threads",)


def _num_threads(options: Mapping[str, Any]) -> int:
    unknown = sorted(set(options) - set(_KNOWN_OPTIONS))
    if unknown:
        raise DelegateError(f"unknown tflite option(s) {unknown}; known: {', '.join(_KNOWN_OPTIONS)}")
    n = options.get("num_threads")
    if n is None:
        return physical_cores()
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise DelegateError(f"tflite option num_threads={n!r}; expected an integer >= 1")
    return n


def _scalar_outputs(partition: onnx.ModelProto) -> frozenset[str]:
    """Outputs the ONNX partition declares rank 0."""
    return frozenset(
        o.name for o in partition.graph.output
        if o.type.tensor_type.HasField("shape") and not o.type.tensor_type.shape.dim
    )


def _details(counts: Mapping[str, int], flatbuffer_bytes: int, threads: int) -> dict[str, int]:
    """Facts for the plan: TFLite ops, TRANSPOSE ops among them, flatbuffer size (bytes), interpreter threads."""
    return {"tflite_ops": sum(counts.values()), "transposes": counts.get("TRANSPOSE", 0),
            "flatbuffer_bytes": flatbuffer_bytes, "num_threads": threads}


def _io_names(partition: onnx.ModelProto) -> tuple[list[str], list[str]]:
    inits = {t.name for t in partition.graph.initializer}
    return [i.name for i in partition.graph.input if i.name not in inits], [o.name for o in partition.graph.output]


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
    options = (DelegateOption("num_threads", (int,), None, "interpreter threads, >= 1 (None: one per physical core)"),)

    def check_options(self, options: Mapping[str, Any]) -> None:
        """``num_threads`` is at least 1 (checked when the session is created).

        Raises:
            DelegateError: a bad ``num_threads``.
        """
        _num_threads(options)

    def availability(self) -> Availability:
        """Available when a LiteRT interpreter, its schema bindings and
        ``flatbuffers`` import; the detail names the runtime package and version."""
        try:
            _, package, version = runtime()
            from .builder import schema

            schema()
            import flatbuffers  # noqa: F401
        except Exception as exc:
            return Availability(False, f"no TFLite runtime: install ai-edge-litert ({exc})")
        return Availability(True, "" if package == "ai-edge-litert" else f"using {package}", f"{package} {version}")

    def backends(self) -> list[str]:
        """``["cpu"]`` (the interpreter with XNNPACK)."""
        return ["cpu"]

    def compile(self, partition: onnx.ModelProto, options: CompileOptions) -> TFLiteExecutable:
        """Convert ``partition`` (static shapes, every node claimed) to a flatbuffer and load it.

        Raises:
            DelegateError: a node or dynamic dim the converter cannot express,
                a bad option, or LiteRT rejecting the flatbuffer.
        """
        from .convert import convert

        threads = _num_threads(options.options)
        result = convert(partition)
        ins, outs = _io_names(partition)
        details = _details(result.op_counts, len(result.flatbuffer), threads)
        return TFLiteExecutable(result.flatbuffer, ins, outs, threads, details, _scalar_outputs(partition))

    def load(self, artifact: bytes, partition: onnx.ModelProto, options: CompileOptions) -> TFLiteExecutable:
        """Rebuild the interpreter from a cached ``.tflite`` artifact (no conversion).

        Raises:
            DelegateError: a bad option, or LiteRT rejecting the artifact.
        """
        ins, outs = _io_names(partition)
        threads = _num_threads(options.options)
        details = _details(_op_counts(artifact), len(artifact), threads)
        return TFLiteExecutable(bytes(artifact), ins, outs, threads, details,
                                _scalar_outputs(partition))
