"""One Chrome trace-event timeline of a session: compile, runs, partitions,
boundary hand-offs, and the ops inside partitions where a delegate can tell.

The file written by :meth:`Tracer.write` follows the Trace Event Format
(Google, "Trace Event Format", the JSON Object Format section):
``{"traceEvents": [...], "displayTimeUnit": "ms"}`` with *complete* events
(``"ph": "X"``, ``ts`` and ``dur`` in microseconds) and *metadata* events
(``"ph": "M"``, ``process_name`` / ``thread_name``). Perfetto
(ui.perfetto.dev) and ``chrome://tracing`` open it.

One clock: :func:`clock` (``time.perf_counter_ns``, nanoseconds); ``ts`` is
microseconds since the tracer was made. Timings a framework reports on its
own clock are re-based onto this one by the delegate (ONNX Runtime reports
wall time since its profiler started: :meth:`Tracer.from_wall_ns` converts;
ExecuTorch's ETDump is aligned to the call that ran it).

Delegates see an :class:`OpTracer` (one per partition) in
``Executable.run_traced`` and ``Executable.end_profiling``; they report op
spans with :meth:`OpTracer.op`. Only the standard library is used here.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Iterator, Mapping

__all__ = ["Tracer", "OpTracer", "clock", "maybe_span", "profile_file_name"]

clock = time.perf_counter_ns
"""The trace's clock: monotonic nanoseconds (``time.perf_counter_ns``)."""

CATEGORIES = ("session", "compile", "run", "partition", "boundary", "delegate", "op")
"""Span categories: ``session`` (creation), ``compile`` (load, plan, compile
or cache load, specialization), ``run`` (one ``session.run``), ``partition``
(one partition's executable), ``boundary`` (the session's work between
partitions: input checks, hand-offs, output checks), ``delegate`` (inside a
partition: the framework's own steps, e.g. ORT's ``model_run``, LiteRT's
``invoke``, copies in and out), ``op`` (one node or kernel, as the delegate
reports it)."""


def profile_file_name(prefix: str, when: datetime | None = None) -> str:
    """ONNX Runtime's profile file naming: ``{prefix}_{YYYY-MM-DD_HH-MM-SS_mmm}.json``.

    Example: ``profile_file_name("unified_profile_")`` ->
    ``"unified_profile__2026-11-29_01-43-28_721.json"`` (ORT writes
    ``onnxruntime_profile__...json`` the same way).
    """
    when = when or datetime.now()
    return f"{prefix}_{when:%Y-%m-%d_%H-%M-%S}_{when.microsecond // 1000:03d}.json"


def _jsonable(value: Any) -> Any:
    """JSON fallback for NumPy scalars and arrays, paths, anything else as text."""
    item = getattr(value, "item", None)
    if callable(item) and getattr(value, "ndim", 1) == 0:
        return item()
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        return tolist()
    return str(value)


def _finite(value: Any) -> Any:
    """``inf``/``nan`` floats as strings (strict JSON has neither)."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


class Tracer:
    """Collects trace events on one clock and writes them as one JSON file.

    Thread-safe for appends; each event's ``tid`` is the native id of the
    thread that recorded it (Perfetto draws one track per thread and nests
    spans by time within it).

    Args:
        process_name: the process track's label, e.g. ``"unified: model.onnx"``.
    """

    def __init__(self, process_name: str = "unified"):
        self.pid = os.getpid()
        self.origin_ns = clock()
        self._wall_minus_clock = time.time_ns() - self.origin_ns
        self.process_name = process_name
        self.events: list[dict[str, Any]] = []
        self._threads: dict[int, str] = {}
        self._lock = threading.Lock()

    def from_wall_ns(self, wall_ns: int) -> int:
        """A wall-clock time (``time.time_ns`` domain, as ONNX Runtime's
        ``get_profiling_start_time_ns``) on the trace clock, nanoseconds."""
        return wall_ns - self._wall_minus_clock

    def complete(
        self,
        name: str,
        cat: str,
        start_ns: int,
        end_ns: int,
        args: Mapping[str, Any] | None = None,
        tid: int | None = None,
    ) -> None:
        """Record a complete (``"X"``) event from ``start_ns`` to ``end_ns`` (trace clock, ns).

        A negative duration is recorded as 0.
        """
        tid = threading.get_native_id() if tid is None else tid
        event = {
            "name": name,
            "cat": cat,
            "ph": "X",
            "ts": (start_ns - self.origin_ns) / 1000.0,
            "dur": max(0, end_ns - start_ns) / 1000.0,
            "pid": self.pid,
            "tid": tid,
            "args": {k: _finite(v) for k, v in (args or {}).items()},
        }
        with self._lock:
            self.events.append(event)
            if tid not in self._threads:
                main = tid == threading.main_thread().native_id
                self._threads[tid] = "session (main thread)" if main else f"session (thread {tid})"

    @contextlib.contextmanager
    def span(self, name: str, cat: str, **args: Any) -> Iterator[dict[str, Any]]:
        """Time the ``with`` block as one event; yields its ``args`` dict (add to it inside)."""
        start = clock()
        try:
            yield args
        finally:
            self.complete(name, cat, start, clock(), args)

    def to_dict(self) -> dict[str, Any]:
        """The trace: metadata events, then complete events sorted by start time."""
        with self._lock:
            events = sorted(self.events, key=lambda e: (e["ts"], -e["dur"]))
            threads = dict(self._threads)
        meta = [{"name": "process_name", "ph": "M", "pid": self.pid, "tid": 0, "args": {"name": self.process_name}}]
        meta += [
            {"name": "thread_name", "ph": "M", "pid": self.pid, "tid": tid, "args": {"name": label}}
            for tid, label in sorted(threads.items())
        ]
        return {
            "traceEvents": meta + events,
            "displayTimeUnit": "ms",
            "otherData": {"producer": "unified", "clock": "perf_counter_ns", "categories": list(CATEGORIES)},
        }

    def write(self, path: str | os.PathLike) -> str:
        """Write :meth:`to_dict` as JSON to ``path`` (parent folders made).

        Returns:
            The path written, as a string.

        Raises:
            OSError: the file cannot be written.
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), default=_jsonable, allow_nan=False))
        return str(path)


class OpTracer:
    """What one partition's executable reports its op spans to.

    The session makes one per partition when profiling is on and hands it to
    ``Executable.run_traced`` (during a run) and ``Executable.end_profiling``
    (once, when profiling ends, for op timings known only then, such as ONNX
    Runtime's profile file).

    Attributes:
        tracer: the session's :class:`Tracer` (its clock converters).
        label: ``"p1 onnxruntime"``, for messages.
        runs: ``(start_ns, end_ns, tid)`` of every traced run of this
            partition, in order (trace clock), filled in by the session.
        args: extra facts for the *current* partition span (e.g. simulated
            cycles); the session adds them to the span after the run.
    """

    clock = staticmethod(clock)

    def __init__(self, tracer: Tracer, label: str):
        self.tracer = tracer
        self.label = label
        self.runs: list[tuple[int, int, int]] = []
        self.args: dict[str, Any] = {}

    def op(
        self, name: str, start_ns: int, end_ns: int, op_type: str = "", tid: int | None = None, **args: Any
    ) -> None:
        """One op span, ``start_ns``..``end_ns`` on the trace clock (:data:`clock`).

        Args:
            name: the node (or kernel) name.
            start_ns / end_ns: nanoseconds on the trace clock.
            op_type: the ONNX op type, when known (goes into ``args``).
            tid: the thread track (default: the calling thread's; an event
                reported after the run passes the run's ``tid`` from :attr:`runs`).
            args: JSON-safe facts (cycles, bytes, the framework's own fields).
        """
        if op_type:
            args["op_type"] = op_type
        args.setdefault("partition", self.label)
        self.tracer.complete(name, "op", start_ns, end_ns, args, tid)

    def step(self, name: str, start_ns: int, end_ns: int, tid: int | None = None, **args: Any) -> None:
        """A ``delegate`` span: a framework step inside the partition that is
        not one op (ORT's ``model_run``, LiteRT's ``invoke``, a copy in or out)."""
        args.setdefault("partition", self.label)
        self.tracer.complete(name, "delegate", start_ns, end_ns, args, tid)

    def run_of(self, start_ns: int, end_ns: int) -> tuple[int, int, int] | None:
        """The traced run of this partition that overlaps ``start_ns..end_ns`` most (None: none)."""
        best, best_overlap = None, -1
        for run in self.runs:
            overlap = min(end_ns, run[1]) - max(start_ns, run[0])
            if overlap > best_overlap:
                best, best_overlap = run, overlap
        return best


@contextlib.contextmanager
def maybe_span(tracer: Tracer | None, name: str, cat: str, **args: Any) -> Iterator[dict[str, Any]]:
    """:meth:`Tracer.span` when ``tracer`` is set, else a no-op (yields a throw-away dict)."""
    if tracer is None:
        yield args
        return
    with tracer.span(name, cat, **args) as a:
        yield a
