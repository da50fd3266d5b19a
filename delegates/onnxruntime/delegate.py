"""The ``onnxruntime`` delegate: a partition runs as an ONNX Runtime session.

Backends: ``cpu`` (CPU execution provider) and ``gpu`` (CUDA execution
provider, listed only when onnxruntime-gpu is installed and a CUDA device
answers).

Options (``delegates=[("onnxruntime", {...})]``):
    num_threads: intra-op thread count (default: ORT's, one per core).
    optimization_level: ``"disable"``, ``"basic"``, ``"extended"`` or
        ``"all"`` (default ``"all"``, as ORT).
    qdq_fusion: run QDQ groups as ORT's fused integer kernels (default off).
    spinning: let idle intra-op threads spin after a run
        (``session.intra_op.allow_spinning``; default off, where ORT's is on:
        in a plan that alternates ORT with another delegate, or beside other
        sessions, the spinning threads take the cores the next partition
        needs; measured on light_resnet50, ORT alone was no slower with it off,
        26.8 vs 27.7 ms, docs/performance.md).

``supports()`` is truthful for ONNX Runtime's kernels: see ``support.py``.
"""

from __future__ import annotations

import threading

import onnx
from onnx import helper

from unified.delegate import Availability, CompileOptions, Delegate, DelegateOption, Support
from unified.delegates.onnxruntime.executable import PROVIDERS, OnnxRuntimeExecutable, import_ort, quiet_options
from unified.delegates.onnxruntime.support import known_failure, probe
from unified.graph import NodeView

__all__ = ["OnnxRuntimeDelegate"]


class OnnxRuntimeDelegate(Delegate):
    """ONNX Runtime as a delegate (and the default fallback).

    Options (``delegates=[("onnxruntime", {...})]``):
        backend: ``"cpu"`` (default) or ``"gpu"``.
        num_threads: intra-op thread count (default: ORT's, one per core).
        optimization_level: ``"disable"``, ``"basic"``, ``"extended"`` or
            ``"all"`` (default ``"all"``, as ORT).
    """

    name = "onnxruntime"
    default_priority = 100
    options = (
        DelegateOption("num_threads", (int,), None, "intra-op threads (None: ORT's default, one per core)"),
        DelegateOption("optimization_level", (str,), "all", "ORT graph optimizations",
                       ("disable", "basic", "extended", "all")),
        DelegateOption("qdq_fusion", (bool,), False,
                       "run QDQ groups as ORT's fused integer kernels (faster, rounds off the ONNX spec); "
                       "off: as the spec writes them"),
        DelegateOption("spinning", (bool,), False,
                       "idle intra-op threads spin after a run (ORT's default; off here: they would take the cores "
                       "the next partition or session needs)"),
    )
    cacheable = False  # compiling is loading; caching the ONNX bytes buys nothing
    handles_non_tensor_values = True  # sequences and optionals are probed like tensors

    def __init__(self) -> None:
        self._probe_cache: dict[tuple, Support] = {}
        self._lock = threading.Lock()
        self._max_ir: int | None = None
        self._gpu: bool | None = None

    def availability(self) -> Availability:
        """Usable when ``onnxruntime`` imports; the version is its version."""
        try:
            ort = import_ort()
        except Exception as exc:  # ImportError, or a broken binary
            return Availability(False, f"onnxruntime is not importable: {exc}")
        return Availability(True, "", ort.__version__)

    def backends(self) -> list[str]:
        """``["cpu"]``, plus ``"gpu"`` when the CUDA provider creates a session."""
        return ["cpu", "gpu"] if self._has_gpu() else ["cpu"]

    def _has_gpu(self) -> bool:
        if self._gpu is None:
            ort = import_ort()
            self._gpu = False
            if "CUDAExecutionProvider" in ort.get_available_providers():
                try:
                    sess = ort.InferenceSession(_identity_model(13).SerializeToString(), providers=PROVIDERS["gpu"])
                    self._gpu = "CUDAExecutionProvider" in sess.get_providers()
                except Exception:
                    self._gpu = False
        return self._gpu

    @property
    def max_ir_version(self) -> int:  # type: ignore[override]
        """Highest ONNX IR version this onnxruntime reads, probed once."""
        if self._max_ir is None:
            ort = import_ort()
            so = quiet_options(ort)
            for ir in range(onnx.IR_VERSION, 3, -1):
                try:
                    ort.InferenceSession(_identity_model(ir).SerializeToString(), so, providers=PROVIDERS["cpu"])
                except Exception:
                    continue
                self._max_ir = ir
                break
            else:
                self._max_ir = 7
        return self._max_ir

    def supports(self, node: NodeView) -> Support:
        """Declines the nodes ONNX Runtime runs wrong (``support.known_failure``),
        else asks ONNX Runtime (``support.probe``; cached per node signature)."""
        reason = known_failure(node)  # shape-dependent, so checked before the signature cache
        if reason:
            return Support.no(reason)
        key = node.signature()
        answer = self._probe_cache.get(key)
        if answer is None:
            answer = probe(node, self.max_ir_version)
            with self._lock:
                self._probe_cache[key] = answer
        return answer

    def compile(self, partition: onnx.ModelProto, options: CompileOptions) -> OnnxRuntimeExecutable:
        """An ONNX Runtime session for the partition.

        Raises:
            DelegateError: an unknown option, or ONNX Runtime could not create the session.
        """
        return OnnxRuntimeExecutable.create(partition, options)

    def load(self, artifact: bytes, partition: onnx.ModelProto, options: CompileOptions) -> OnnxRuntimeExecutable:
        """The session again, from the artifact's ONNX bytes.

        Raises:
            DelegateError: as :meth:`compile`.
        """
        return OnnxRuntimeExecutable.load(artifact, options)


def _identity_model(ir: int) -> onnx.ModelProto:
    """A one-Identity float model of IR version ``ir`` (probes the IR version and the GPU)."""
    x = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])
    y = helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])
    g = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "probe", [x], [y])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], ir_version=ir)
