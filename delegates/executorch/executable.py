"""The compiled partition: a ``.pte`` program run by the ExecuTorch runtime.

``executorch.runtime.Runtime`` loads the program (``load_program`` /
``load_method`` / ``execute``); inputs and outputs are NumPy arrays. The
program's two constant methods, ``xnnpack_ops`` and ``portable_ops`` (written
by ``convert.lower_module``), give ``details``, so a program loaded from the
compile cache reports the same counts without lowering again.

Profiling: when the session profiles, the program is loaded with ETDump on
(``Runtime.load_program(enable_etdump=True)``; the executorch 1.5 wheels'
pybindings record it, no rebuild needed). ``run_traced`` adds ``delegate``
spans for the conversion to torch tensors, ``Method::execute`` and the copy
out; ``end_profiling`` writes the ETDump, reads it with
``executorch.devtools.Inspector`` and reports one ``op`` span per event it
holds: XNNPACK's operators (``Clamp (NC) #1`` -- XNNPACK's names, not ONNX
nodes; XNNPACK's timer is coarse, many read 0 ms) and portable kernels
(``native_call_add.out``), re-based onto the ``Method::execute`` call they
happened in (ETDump's clock is the runtime's own).

Imports torch and executorch: import this module only when compiling or loading.
"""

from __future__ import annotations

import os
import tempfile
import threading
import warnings
from typing import Any, Mapping

import numpy as np
import torch

from unified.delegate import Executable
from unified.errors import DelegateError, InputError
from unified.trace import OpTracer

__all__ = ["ExecuTorchExecutable", "COUNT_METHODS", "short_message"]

#: The program's constant methods holding its op counts (see ``details``).
COUNT_METHODS = ("xnnpack_ops", "portable_ops", "xnnpack_quantized_ops")


def short_message(exc: Exception, limit: int = 1200) -> str:
    """A framework exception's message on one line, at most ``limit`` characters."""
    return " ".join(str(exc).split())[:limit]


class ExecuTorchExecutable(Executable):
    """A ``.pte`` program loaded into the ExecuTorch runtime.

    Args:
        pte: the program bytes (kept: they are the cache artifact).
        input_names / output_names: the partition's boundary values.
        shapes: the static input shapes the program was compiled for
            (checked on every run).
        etdump: load the program with ETDump profiling on (for ``run_traced``).

    Attributes:
        details: ``{"xnnpack_ops": N, "portable_ops": M, "xnnpack_quantized_ops": Q}``
            read from the program (Q: delegated compute ops reading
            dequantized int8 values, i.e. run by XNNPACK's int8 kernels).

    Raises:
        DelegateError: the runtime rejects the program.
    """

    artifact_suffix = ".pte"

    def __init__(self, pte: bytes, input_names: list[str], output_names: list[str], shapes: list[tuple[int, ...]],
                 etdump: bool = False):
        from executorch.runtime import Runtime

        self._pte = pte
        self.input_names = list(input_names)
        self.output_names = list(output_names)
        self._shapes = [tuple(s) for s in shapes]
        self._etdump = etdump
        self._executions: list[tuple[int, int, int]] = []  # (start, end, tid) of each traced execute
        try:
            self._program = Runtime.get().load_program(pte, enable_etdump=etdump)
            self._method = self._program.load_method("forward")
        except Exception as exc:
            raise DelegateError(f"the ExecuTorch runtime could not load the program: {short_message(exc)}") from exc
        self.details = _counts(self._program)

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        outs = self._method.execute(self._args(inputs))
        # the runtime's outputs live in its planned memory: copy before the next run reuses it
        return {n: o.numpy().copy() for n, o in zip(self.output_names, outs)}

    def _args(self, inputs: Mapping[str, np.ndarray]) -> list:
        args = [_as_torch(inputs[n]) for n in self.input_names]
        for name, arg, shape in zip(self.input_names, args, self._shapes):
            if tuple(arg.shape) != shape:
                raise InputError(
                    f"input '{name}' has shape {list(arg.shape)}, but the ExecuTorch program was compiled for "
                    f"{list(shape)} (it compiles static shapes only; the session specializes per input shape)"
                )
        return args

    def run_traced(self, inputs: Mapping[str, np.ndarray], tracer: OpTracer) -> dict[str, np.ndarray]:
        """:meth:`run` in three ``delegate`` spans (to torch, ``Method::execute``,
        copy out); the ops inside come from ETDump at :meth:`end_profiling`."""
        t0 = tracer.clock()
        args = self._args(inputs)
        t1 = tracer.clock()
        outs = self._method.execute(args)
        t2 = tracer.clock()
        result = {n: o.numpy().copy() for n, o in zip(self.output_names, outs)}
        t3 = tracer.clock()
        tracer.step("executorch: inputs to torch", t0, t1)
        tracer.step("executorch: Method::execute (call)", t1, t2)
        tracer.step("executorch: copy outputs", t2, t3)
        if self._etdump:
            self._executions.append((t1, t2, threading.get_native_id()))
        return result

    def end_profiling(self, tracer: OpTracer) -> None:
        """Read the ETDump of the traced runs and report its events (see the module docstring)."""
        if not self._etdump or not self._executions:
            return
        with tempfile.TemporaryDirectory(prefix="unified-etdump-") as tmp:
            path = os.path.join(tmp, "etdump.etdp")
            self._program.write_etdump_result_to_file(path, os.path.join(tmp, "debug.bin"))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "Output Buffer not found": no tensor data asked for
                from executorch.devtools import Inspector

                blocks = Inspector(etdump_path=path).event_blocks
        for name, start, end, tid, args in etdump_events(blocks, self._executions):
            if name in _FRAMEWORK_EVENTS:
                tracer.step(f"executorch {name}", start, end, tid, **args)
            else:
                tracer.op(name, start, end, "", tid, **args)
        self._executions = []

    def serialize(self) -> bytes:
        return self._pte


_FRAMEWORK_EVENTS = ("Method::execute", "DELEGATE_CALL", "Method::init", "Program::load_method")


def etdump_events(blocks: list, executions: list[tuple[int, int, int]]) -> list[tuple]:
    """ETDump events of the ``forward`` executions on the trace clock.

    The forward block is the ``Execute`` event block with events besides
    ``Method::execute`` (the program's constant count methods, run once at
    load, have a block of their own), the one with the most executions. The
    k-th value of an event's ``perf_data.raw`` (milliseconds) and
    ``start_time`` (the runtime's clock, nanoseconds) belong to the k-th
    execution; the last ``len(executions)`` are the traced calls. Each is
    re-based so that its ``Method::execute`` starts where the Python call
    started (``executions[k]``), and clipped to that call.

    Returns:
        ``(name, start_ns, end_ns, tid, args)`` per event and execution.
    """
    def size(block) -> int:
        return max((len(e.start_time or ()) for e in block.events), default=0)

    forward = [b for b in blocks if b.name == "Execute" and any(e.name != "Method::execute" for e in b.events)]
    if not forward:
        return []
    block = max(forward, key=size)
    base = next((e.start_time for e in block.events if e.name == "Method::execute" and e.start_time), None)
    if base is None:
        return []
    skip = len(base) - len(executions)
    out = []
    for e in block.events:
        if e.perf_data is None or not e.start_time:
            continue
        for k, (ms, started) in enumerate(zip(e.perf_data.raw, e.start_time)):
            if k < skip or k - skip >= len(executions):
                continue
            call_start, call_end, tid = executions[k - skip]
            start = min(call_end, call_start + max(0, int(started) - int(base[k])))
            end = min(call_end, start + int(float(ms) * 1e6))
            args: dict[str, Any] = {"etdump_ms": float(ms)}
            if e.delegate_backend_name:
                args["backend"] = e.delegate_backend_name
            out.append((e.name, start, end, tid, args))
    return out


def _counts(program) -> dict[str, int]:
    """The op counts the program carries; a program cached before a count
    existed lacks its method, and the count is left out."""
    counts = {}
    for name in COUNT_METHODS:
        try:
            counts[name] = int(program.load_method(name).execute([])[0])
        except Exception:  # noqa: BLE001  (the runtime raises RuntimeError or ValueError for a missing method)
            continue
    return counts


def _as_torch(a: np.ndarray):
    if not a.flags.writeable:
        return torch.tensor(a)
    return torch.from_numpy(a)
