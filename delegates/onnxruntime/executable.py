"""ONNX Runtime sessions for the ``onnxruntime`` delegate: the executable (an
``onnxruntime.InferenceSession`` over one partition) and how sessions are made
(execution providers per backend, session options from the delegate options).

``onnxruntime`` is imported inside functions (:func:`import_ort`), so
importing this package is cheap.

Profiling: when the session profiles (``CompileOptions.profiling``), the
session is created with ONNX Runtime's own profiler on
(``SessionOptions.enable_profiling``, its file in a private temporary
folder); :meth:`OnnxRuntimeExecutable.end_profiling` reads ORT's JSON
(``model_run``, ``SequentialExecutor::Execute`` and one ``*_kernel_time``
event per node, on ORT's clock: microseconds since
``get_profiling_start_time_ns()``, wall time), re-bases it onto the trace
clock and places each ``model_run`` inside the partition span it belongs to.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
import weakref
from typing import Any, Mapping

import numpy as np
import onnx

from unified.delegate import CompileOptions, Executable
from unified.delegates.onnxruntime.rewrites import rewrite_align_corners_resize
from unified.errors import DelegateError
from unified.log import frameworks_verbose

__all__ = ["OnnxRuntimeExecutable", "PROVIDERS", "import_ort", "quiet_options", "op_events"]

PROVIDERS = {"cpu": ["CPUExecutionProvider"], "gpu": ["CUDAExecutionProvider", "CPUExecutionProvider"]}
"""Backend name -> execution providers, in ONNX Runtime's order of preference."""

_LEVELS = {"disable": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC", "extended": "ORT_ENABLE_EXTENDED", "all": "ORT_ENABLE_ALL"}


_quieted = False


def import_ort():
    """The ``onnxruntime`` module (imported on first use).

    The first call sets ONNX Runtime's default logger to fatal only unless
    :func:`unified.log.frameworks_verbose`: its model-load warnings
    ("Removing initializer ...", "Error merging shape info ...") bypass a
    session's ``log_severity_level``, and a failed run's error line repeats
    the message the raised error carries.

    Raises:
        ImportError: onnxruntime is not installed (or its binary is broken).
    """
    global _quieted
    import onnxruntime

    if not _quieted:
        _quieted = True
        if not frameworks_verbose():
            onnxruntime.set_default_logger_severity(4)
    return onnxruntime


def quiet_options(ort, disable_opt: bool = False):
    """``SessionOptions`` for a throw-away probe session: no log output, one
    thread, and (``disable_opt``) no graph optimizations."""
    so = ort.SessionOptions()
    so.log_severity_level = 4
    so.intra_op_num_threads = 1
    if disable_opt:
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return so


def _session_options(ort, options: Mapping[str, Any]):
    """``SessionOptions`` from the delegate options (``num_threads``,
    ``optimization_level``, ``qdq_fusion``, ``spinning``).

    Without ``qdq_fusion`` the session sets ORT's
    ``session.disable_quant_qdq``: DequantizeLinear -> op -> QuantizeLinear
    groups run as the ONNX spec writes them (float op, then round), instead of
    ORT's fused integer kernels, which round differently (measured: up to 20
    quantization steps off on conformance model ``models/nets/qdq_cnn`` with
    ORT 1.32).

    Raises:
        DelegateError: an unknown option or optimization level.
    """
    so = ort.SessionOptions()
    opts = dict(options)
    threads = opts.pop("num_threads", None)
    if threads is not None:
        so.intra_op_num_threads = int(threads)
    level = opts.pop("optimization_level", "all")
    if level not in _LEVELS:
        raise DelegateError(f"onnxruntime option optimization_level={level!r}; expected one of {list(_LEVELS)}")
    so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, _LEVELS[level])
    fuse = bool(opts.pop("qdq_fusion", False))
    so.add_session_config_entry("session.disable_quant_qdq", "0" if fuse else "1")
    spin = bool(opts.pop("spinning", False))
    so.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    if opts:
        raise DelegateError(
            f"unknown onnxruntime option(s) {sorted(opts)}; known: backend, num_threads, optimization_level, "
            "qdq_fusion, spinning"
        )
    return so


class OnnxRuntimeExecutable(Executable):
    """A partition compiled into an ``onnxruntime.InferenceSession``.

    Args:
        session: the session.
        model_bytes: the ONNX bytes it was created from (the artifact).
    """

    artifact_suffix = ".onnx"

    def __init__(self, session, model_bytes: bytes, profile_dir: str | None = None):
        self.session = session
        self._bytes = model_bytes
        self._profile_dir = profile_dir
        self._created_tid = threading.get_native_id()
        if profile_dir is not None:  # ORT writes its profile when a profiling session ends: never leave it behind
            weakref.finalize(self, _discard_profile, session, profile_dir)
        self.input_names = [i.name for i in session.get_inputs()]
        self.output_names = [o.name for o in session.get_outputs()]
        self.details = {"providers": ",".join(p.replace("ExecutionProvider", "") for p in session.get_providers())}

    @classmethod
    def create(cls, partition: onnx.ModelProto, options: CompileOptions) -> "OnnxRuntimeExecutable":
        """A session for ``partition`` on ``options.backend``'s providers.

        The partition is first rewritten where ONNX Runtime departs from the
        spec (see :mod:`.rewrites`).

        Raises:
            DelegateError: a bad option, or ONNX Runtime could not create the session.
        """
        ort = import_ort()
        so = _session_options(ort, options.options)
        profile_dir = None
        if options.profiling:
            profile_dir = tempfile.mkdtemp(prefix="unified-ort-profile-")
            so.enable_profiling = True
            so.profile_file_prefix = os.path.join(profile_dir, options.partition_name)
        # align_corners Resize given scales: ORT departs from the spec; a
        # tf_crop_and_resize ROI puts it back (see rewrites.py)
        data = rewrite_align_corners_resize(partition).SerializeToString()
        try:
            session = ort.InferenceSession(data, so, providers=PROVIDERS[options.backend])
        except Exception as exc:
            if profile_dir is not None:
                shutil.rmtree(profile_dir, ignore_errors=True)
            raise DelegateError(
                f"onnxruntime could not create a session for partition {options.partition_name}: "
                f"{' '.join(str(exc).split())[:1000]}"
            ) from None
        return cls(session, data, profile_dir)

    @classmethod
    def load(cls, artifact: bytes, options: CompileOptions) -> "OnnxRuntimeExecutable":
        """The executable whose :meth:`serialize` gave ``artifact`` (ONNX bytes).

        Raises:
            DelegateError: as :meth:`create`.
        """
        model = onnx.ModelProto()
        model.ParseFromString(artifact)
        return cls.create(model, options)

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the session: output name -> array (ONNX Runtime's, owned by the caller)."""
        names = self.output_names
        return dict(zip(names, self.session.run(names, inputs)))

    def run_traced(self, inputs: Mapping[str, np.ndarray], tracer) -> dict[str, np.ndarray]:
        """:meth:`run`: ONNX Runtime's profiler records the ops; they reach the
        trace at :meth:`end_profiling`."""
        return self.run(inputs)

    def end_profiling(self, tracer) -> None:
        """End ORT's profiler, read its JSON and report its events re-based
        onto the trace clock (see :func:`op_events`); the file is deleted.
        Nothing when the session was not created for profiling."""
        if self._profile_dir is None:
            return
        start_wall_ns = self.session.get_profiling_start_time_ns()
        path = self.session.end_profiling()
        try:
            with open(path) as f:
                events = json.load(f)
        finally:
            shutil.rmtree(self._profile_dir, ignore_errors=True)
            self._profile_dir = None
        for cat, name, start, end, tid, args in op_events(events, start_wall_ns, tracer, self._created_tid):
            if cat == "op":
                tracer.op(name, start, end, args.pop("op_name", ""), tid, **args)
            elif cat == "delegate":
                tracer.step(name, start, end, tid)
            else:
                tracer.tracer.complete(name, cat, start, end, {"partition": tracer.label}, tid)

    def serialize(self) -> bytes:
        """The (rewritten) partition's ONNX bytes the session was created from."""
        return self._bytes


def _discard_profile(session, profile_dir: str) -> None:
    """End a profiling session's profiler (it writes its file) and delete the folder."""
    try:
        session.end_profiling()
    except Exception:
        pass
    shutil.rmtree(profile_dir, ignore_errors=True)


def op_events(events: list[dict], start_wall_ns: int, tracer, init_tid: int) -> list[tuple]:
    """ONNX Runtime profile events on the trace clock.

    ORT's ``ts``/``dur`` are microseconds since its profiler started
    (``start_wall_ns``, wall clock). Each ``model_run`` is matched to the
    traced run of the partition it overlaps most (``tracer.runs``) and
    shifted, with every event inside it, so it lies within that run's span
    (the two clocks agree to a few microseconds; the shift absorbs the rest).
    Events before the first ``model_run`` (model loading, session
    initialization) are ``compile`` spans on the creating thread.

    Args:
        events: ORT's profile JSON (a list of ``"ph": "X"`` events).
        start_wall_ns: ``InferenceSession.get_profiling_start_time_ns()``.
        tracer: the partition's ``OpTracer``.
        init_tid: thread track for the session-initialization events.

    Returns:
        ``(category, name, start_ns, end_ns, tid, args)`` per event:
        ``"op"`` for node kernels (``args["op_name"]`` is the op type),
        ``"delegate"`` for ``model_run`` / ``SequentialExecutor::Execute``,
        ``"compile"`` for initialization.
    """
    base = tracer.tracer.from_wall_ns(start_wall_ns)
    spans = [(base + int(e["ts"] * 1000), base + int((e["ts"] + e.get("dur", 0)) * 1000), e) for e in events
             if e.get("ph") == "X"]
    runs = sorted((s for s in spans if s[2].get("name") == "model_run"), key=lambda s: s[0])
    first = runs[0][0] if runs else None
    out = []
    for start, end, e in spans:
        if first is None or end <= first:
            out.append(("compile", f"onnxruntime {e['name']}", start, end, init_tid, {}))
    for r_start, r_end, _ in runs:
        run = tracer.run_of(r_start, r_end)
        if run is None:
            continue
        shift = max(run[0] - r_start, min(0, run[1] - r_end))  # into [run start, run end]
        for start, end, e in spans:
            if r_start <= start and end <= r_end:
                node = e.get("cat") == "Node"
                name = e["name"][: -len("_kernel_time")] if e["name"].endswith("_kernel_time") else e["name"]
                args = dict(e.get("args") or {}) if node else {}
                out.append(("op" if node else "delegate", name if node else f"onnxruntime {name}",
                            start + shift, min(end + shift, run[1]), run[2], args))
    return out
