"""Profiling of an :class:`~unified.session.InferenceSession`: its trace.

With ``SessionOptions(enable_profiling=True)`` a session records one Chrome
trace (:mod:`unified.trace`): creating the session (load, plan, compile per
partition, cache hits), then each run as a ``run`` span tiled by
``boundary`` spans (input checks, hand-offs to a partition, output checks)
and ``partition`` spans, with the ``op`` spans each delegate reports inside
its partition (``Executable.run_traced`` / ``Executable.end_profiling``).
``end_profiling()`` writes the file, as ONNX Runtime's does.

:class:`SessionProfiling` is the part of ``InferenceSession`` that does this
(a mixin over the session's run internals); the un-profiled ``run`` never
enters it.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any, Mapping, Sequence

from unified.errors import UnifiedError
from unified.trace import OpTracer, Tracer, clock, profile_file_name

__all__ = ["SessionProfiling"]

log = logging.getLogger(__name__)


class SessionProfiling:
    """The profiling half of ``InferenceSession`` (see the module docstring)."""

    def _start_profiling(self, model: Any) -> None:
        self._tracer: Tracer | None = None
        self._op_tracers: list[OpTracer] | None = None
        self._run_count = 0
        if self.options.enable_profiling:
            name = os.path.basename(str(model)) if isinstance(model, (str, os.PathLike)) else "model"
            self._tracer = Tracer(f"unified: {name}")

    def _attach_op_tracers(self) -> None:
        """One :class:`OpTracer` per compiled partition (when profiling)."""
        if self._tracer is not None:
            self._op_tracers = [
                OpTracer(self._tracer, f"{c.partition.name} {c.partition.delegate}") for c in self._compiled
            ]

    def _run_profiled(self, output_names: Sequence[str] | None, input_feed: Mapping[str, Any]) -> list:
        """``run`` with ``enable_profiling``: partition timings (``profile``) and,
        until ``end_profiling()``, the run's trace spans. The spans tile the
        run: each ends at the clock reading the next starts from, so the
        session's own work between partitions (and the tracer's bookkeeping)
        is in a named ``boundary`` span, never in a gap."""
        tr, ops, tid = self._tracer, self._op_tracers, threading.get_native_id()
        self._run_count += 1
        t0 = t = clock()

        def mark(name: str, cat: str, start: int, **args: Any) -> int:
            end = clock()
            if tr is not None:
                tr.complete(name, cat, start, end, args, tid)
            return end

        failed = ""
        try:
            feed = self._check_feed(input_feed)
            names = self._output_list(output_names)
            env = dict(feed)
            env.update(self._constants)
            t = mark("check inputs", "boundary", t, inputs=len(feed))
            for i, step in enumerate(self._steps):
                p = self.plan.partitions[i]
                args = {n: env[n] for n in step.inputs}
                t = mark(f"hand-off to {p.name}", "boundary", t, values=len(args))
                failed = f"{p.name} {p.delegate}"
                out = self._traced_call(i, step, args, None if ops is None else ops[i])
                end = clock()
                self._record(i, (end - t) / 1e9, step.exe)
                t = self._partition_span(i, ops, t, end, tid)
                out = self._checked_outputs(i, step.expect, out)
                env.update(out)
                for n in step.release:
                    env.pop(n, None)
                failed = ""
                t = mark(f"check {p.name} outputs", "boundary", t, values=len(out))
            result = [env[n] for n in names]
            mark("collect outputs", "boundary", t, outputs=len(names))
            return result
        finally:
            if tr is not None:
                info = {"run": self._run_count, "failed_in": failed}
                tr.complete(f"run {self._run_count}", "run", t0, clock(), info, tid)

    def _traced_call(self, i: int, step: Any, args: dict, op_tracer: OpTracer | None) -> Any:
        try:
            return step.exe.run(args) if op_tracer is None else step.exe.run_traced(args, op_tracer)
        except UnifiedError:
            raise
        except Exception as exc:
            raise self._run_error(i, exc) from exc

    def _partition_span(self, i: int, ops: list[OpTracer] | None, start: int, end: int, tid: int) -> int:
        """Record partition ``i``'s span (with its executable's facts); returns ``end``."""
        if ops is None:
            return end
        p, op = self.plan.partitions[i], ops[i]
        op.runs.append((start, end, tid))
        args = {"delegate": p.delegate, "backend": p.backend, "nodes": len(p.nodes), "first_node": p.nodes[0]}
        args.update(op.args)
        op.args = {}
        self._tracer.complete(f"{p.name} {p.delegate}", "partition", start, end, args, tid)
        return end

    def end_profiling(self, path: str | os.PathLike | None = None) -> str:
        """Stop profiling and write the trace (ONNX Runtime's call of the same name).

        Delegates that learn op timings only afterwards (ONNX Runtime's
        profiler) add their op spans now. Later runs are not traced (their
        partition timings still go to ``profile``), as in ONNX Runtime.

        Args:
            path: where to write the JSON; None: ``options.profile_file_prefix``
                + ``_YYYY-MM-DD_HH-MM-SS_mmm.json`` in the working directory.

        Returns:
            The path written, or ``""`` when the session is not profiling
            (``enable_profiling`` was off at creation, or the trace was
            already ended), as ONNX Runtime returns.

        Raises:
            OSError: the file cannot be written.
        """
        tr, ops = self._tracer, self._op_tracers
        if tr is None:
            return ""
        self._tracer = self._op_tracers = None
        with tr.span("end profiling (delegates' op spans)", "session"):
            for c, op in zip(self._compiled, ops or ()):
                try:
                    c.executable.end_profiling(op)
                except Exception as exc:  # a delegate's profile is a bonus: never lose the trace for it
                    log.warning(
                        "delegate '%s' could not report op spans for %s: %s", c.partition.delegate, op.label, exc
                    )
        return tr.write(path if path is not None else profile_file_name(self.options.profile_file_prefix))
