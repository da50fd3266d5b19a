"""ONNX Runtime sessions for the ``onnxruntime`` delegate: the executable (an
``onnxruntime.InferenceSession`` over one partition) and how sessions are made
(execution providers per backend, session options from the delegate options).

``onnxruntime`` is imported inside functions (:func:`import_ort`), so
importing this package is cheap.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import onnx

from unified.delegate import CompileOptions, Executable
from unified.delegates.onnxruntime.rewrites import rewrite_align_corners_resize
from unified.errors import DelegateError

__all__ = ["OnnxRuntimeExecutable", "PROVIDERS", "import_ort", "quiet_options"]

PROVIDERS = {"cpu": ["CPUExecutionProvider"], "gpu": ["CUDAExecutionProvider", "CPUExecutionProvider"]}
"""Backend name -> execution providers, in ONNX Runtime's order of preference."""

_LEVELS = {"disable": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC", "extended": "ORT_ENABLE_EXTENDED", "all": "ORT_ENABLE_ALL"}


def import_ort():
    """The ``onnxruntime`` module (imported on first use).

    Raises:
        ImportError: onnxruntime is not installed (or its binary is broken).
    """
    import onnxruntime

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
    ``optimization_level``, ``qdq_fusion``).

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
    if opts:
        raise DelegateError(
            f"unknown onnxruntime option(s) {sorted(opts)}; known: backend, num_threads, optimization_level, qdq_fusion"
        )
    return so


class OnnxRuntimeExecutable(Executable):
    """A partition compiled into an ``onnxruntime.InferenceSession``.

    Args:
        session: the session.
        model_bytes: the ONNX bytes it was created from (the artifact).
    """

    artifact_suffix = ".onnx"

    def __init__(self, session, model_bytes: bytes):
        self.session = session
        self._bytes = model_bytes
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
        # align_corners Resize given scales: ORT departs from the spec; a
        # tf_crop_and_resize ROI puts it back (see rewrites.py)
        data = rewrite_align_corners_resize(partition).SerializeToString()
        try:
            session = ort.InferenceSession(data, so, providers=PROVIDERS[options.backend])
        except Exception as exc:
            raise DelegateError(
                f"onnxruntime could not create a session for partition {options.partition_name}: "
                f"{' '.join(str(exc).split())[:1000]}"
            ) from None
        return cls(session, data)

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

    def serialize(self) -> bytes:
        """The (rewritten) partition's ONNX bytes the session was created from."""
        return self._bytes
