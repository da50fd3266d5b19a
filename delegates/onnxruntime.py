"""The ``onnxruntime`` delegate: a partition runs as an ONNX Runtime session.

Backends: ``cpu`` (CPU execution provider) and ``gpu`` (CUDA execution
provider, listed only when onnxruntime-gpu is installed and a CUDA device
answers).

``supports()`` is truthful for ONNX Runtime's kernels: it builds a one-node
model with the node's op, opset, attributes and inferred input types, and
asks ONNX Runtime to create a session for it (graph optimizations off, so the
kernel itself must exist). The answer is cached per node signature (op,
domain, opset, input/output dtypes and ranks, attributes); a refusal carries
ONNX Runtime's own message.
"""

from __future__ import annotations

import threading
from typing import Mapping

import numpy as np
import onnx
from onnx import helper

from unified.delegate import Availability, CompileOptions, Delegate, DelegateOption, Executable, Support
from unified.errors import DelegateError
from unified.graph import NodeView, TensorInfo
from unified.delegates.ort_rewrites import rewrite_align_corners_resize
from unified.hookspecs import hookimpl

__all__ = ["OnnxRuntimeDelegate", "OnnxRuntimeExecutable"]

_PROVIDERS = {"cpu": ["CPUExecutionProvider"], "gpu": ["CUDAExecutionProvider", "CPUExecutionProvider"]}


def _ort():
    import onnxruntime

    return onnxruntime


class OnnxRuntimeExecutable(Executable):
    """A partition compiled into an ``onnxruntime.InferenceSession``."""

    artifact_suffix = ".onnx"

    def __init__(self, session, model_bytes: bytes):
        self.session = session
        self._bytes = model_bytes
        self.input_names = [i.name for i in session.get_inputs()]
        self.output_names = [o.name for o in session.get_outputs()]
        self.details = {"providers": ",".join(p.replace("ExecutionProvider", "") for p in session.get_providers())}

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        names = self.output_names
        return dict(zip(names, self.session.run(names, inputs)))

    def serialize(self) -> bytes:
        return self._bytes


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
    )
    cacheable = False  # compiling is loading; caching the ONNX bytes buys nothing
    handles_non_tensor_values = True  # sequences and optionals are probed like tensors

    def __init__(self) -> None:
        self._probe_cache: dict[tuple, Support] = {}
        self._lock = threading.Lock()
        self._max_ir: int | None = None
        self._gpu: bool | None = None

    def availability(self) -> Availability:
        try:
            ort = _ort()
        except Exception as exc:  # ImportError, or a broken binary
            return Availability(False, f"onnxruntime is not importable: {exc}")
        return Availability(True, "", ort.__version__)

    def backends(self) -> list[str]:
        return ["cpu", "gpu"] if self._has_gpu() else ["cpu"]

    def _has_gpu(self) -> bool:
        if self._gpu is None:
            ort = _ort()
            self._gpu = False
            if "CUDAExecutionProvider" in ort.get_available_providers():
                try:
                    probe = _identity_model(13)
                    sess = ort.InferenceSession(probe.SerializeToString(), providers=_PROVIDERS["gpu"])
                    self._gpu = "CUDAExecutionProvider" in sess.get_providers()
                except Exception:
                    self._gpu = False
        return self._gpu

    @property
    def max_ir_version(self) -> int:  # type: ignore[override]
        """Highest ONNX IR version this onnxruntime reads, probed once."""
        if self._max_ir is None:
            ort = _ort()
            so = _quiet_options(ort)
            for ir in range(onnx.IR_VERSION, 3, -1):
                try:
                    ort.InferenceSession(_identity_model(ir).SerializeToString(), so, providers=_PROVIDERS["cpu"])
                except Exception:
                    continue
                self._max_ir = ir
                break
            else:
                self._max_ir = 7
        return self._max_ir

    def supports(self, node: NodeView) -> Support:
        reason = _known_failure(node)  # shape-dependent, so checked before the signature cache
        if reason:
            return Support.no(reason)
        key = node.signature()
        answer = self._probe_cache.get(key)
        if answer is None:
            answer = self._probe(node)
            with self._lock:
                self._probe_cache[key] = answer
        return answer

    def _probe(self, node: NodeView) -> Support:
        typed = [t for t in node.inputs + node.implicit_inputs if t.name]
        untyped = [t.name for t in typed if not t.is_typed]
        if untyped:
            return Support.no(f"input(s) {untyped} have no inferred dtype; cannot check ORT's kernels")
        try:
            model = _single_node_model(node, self.max_ir_version)
        except Exception as exc:
            return Support.no(f"could not build a probe model for {node.op_type}: {exc}")
        ort = _ort()
        try:
            ort.InferenceSession(model.SerializeToString(), _quiet_options(ort, disable_opt=True), providers=_PROVIDERS["cpu"])
        except Exception as exc:
            text = " ".join(str(exc).split())
            text = text.split("] ", 1)[-1] if text.startswith("[ONNXRuntimeError]") else text
            return Support.no(f"ONNX Runtime {ort.__version__} CPU: {text[:400]}")
        return Support.yes()

    def compile(self, partition: onnx.ModelProto, options: CompileOptions) -> OnnxRuntimeExecutable:
        ort = _ort()
        so = ort.SessionOptions()
        opts = dict(options.options)
        threads = opts.pop("num_threads", None)
        if threads is not None:
            so.intra_op_num_threads = int(threads)
        level = opts.pop("optimization_level", "all")
        levels = {
            "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        }
        if level not in levels:
            raise DelegateError(f"onnxruntime option optimization_level={level!r}; expected one of {list(levels)}")
        so.graph_optimization_level = levels[level]
        if opts:
            raise DelegateError(
                f"unknown onnxruntime option(s) {sorted(opts)}; known: backend, num_threads, optimization_level"
            )
        # align_corners Resize given scales: ORT departs from the spec; a
        # tf_crop_and_resize ROI puts it back (see delegates/ort_rewrites.py)
        data = rewrite_align_corners_resize(partition).SerializeToString()
        try:
            session = ort.InferenceSession(data, so, providers=_PROVIDERS[options.backend])
        except Exception as exc:
            raise DelegateError(
                f"onnxruntime could not create a session for partition {options.partition_name}: "
                f"{' '.join(str(exc).split())[:1000]}"
            ) from None
        return OnnxRuntimeExecutable(session, data)

    def load(self, artifact: bytes, partition: onnx.ModelProto, options: CompileOptions) -> OnnxRuntimeExecutable:
        model = onnx.ModelProto()
        model.ParseFromString(artifact)
        return self.compile(model, options)


# --- what a session accepts but cannot run right -----------------------------
#
# ONNX Runtime creates a session for these nodes (so the probe says yes) and
# then raises or returns numbers the ONNX spec disagrees with. Found by the
# conformance suite (``unified conformance run --delegates onnxruntime
# --sources onnx-node``); ORT's own backend-test filter list
# (onnxruntime/test/testdata/onnx_backend_test_series_filters.jsonc) skips
# the MaxUnpool and Resize cases for the same reasons.

# element types ORT's Python API cannot exchange with NumPy (session.run
# rejects ml_dtypes arrays and cannot return these outputs); unified passes
# NumPy arrays between partitions, so any node touching them may sit on a
# partition boundary
_NO_NUMPY_EXCHANGE = {
    getattr(onnx.TensorProto, n): n.lower()
    for n in ("BFLOAT16", "FLOAT8E4M3FN", "FLOAT8E4M3FNUZ", "FLOAT8E5M2", "FLOAT8E5M2FNUZ", "FLOAT8E8M0",
              "UINT4", "INT4", "FLOAT4E2M1", "UINT2", "INT2")
    if hasattr(onnx.TensorProto, n)
}


def _exchange_dtype(node: NodeView) -> str | None:
    for t in node.inputs + node.outputs:
        if t.name and t.elem_type in _NO_NUMPY_EXCHANGE:
            return (
                f"{node.op_type}: ONNX Runtime's Python API cannot exchange {_NO_NUMPY_EXCHANGE[t.elem_type]} "
                f"tensors ('{t.name}') with NumPy"
            )
    return None


def _maxunpool_output_shape(node: NodeView) -> str | None:
    if node.op_type == "MaxUnpool" and len(node.inputs) > 2 and node.inputs[2].name:
        return "MaxUnpool with an output_shape input: ONNX Runtime places values differently from the ONNX spec"
    return None


def _convinteger_per_channel(node: NodeView) -> str | None:
    if node.op_type == "ConvInteger" and len(node.inputs) > 3 and node.inputs[3].name:
        shape = node.inputs[3].shape
        if shape is None or any(not isinstance(d, int) for d in shape) or int(np.prod(shape or [1])) > 1:
            return "ConvInteger with a per-channel w_zero_point: ONNX Runtime supports per-tensor only"
    return None


def _reduce_empty_bool(node: NodeView) -> str | None:
    if node.op_type in ("ReduceMax", "ReduceMin") and node.inputs[0].elem_type == onnx.TensorProto.BOOL:
        shape = node.inputs[0].shape
        if shape is None or any(d == 0 or not isinstance(d, int) for d in shape):
            return f"{node.op_type} of a bool tensor that may be empty: ONNX Runtime raises instead of returning the identity"
    return None


def _attention(node: NodeView) -> str | None:
    if node.op_type != "Attention":
        return None
    wants_qk = len(node.outputs) > 3 and node.outputs[3].name
    if node.attr("is_causal", 0) and node.attr("qk_matmul_output_mode", 0) and wants_qk:
        return "causal Attention returning qk_matmul_output: ONNX Runtime's masked entries differ from the ONNX spec"
    ins = node.inputs
    mask = ins[3] if len(ins) > 3 and ins[3].name else None
    if mask is not None and mask.shape and ins[1].shape:
        kv = ins[1].shape[-2] if len(ins[1].shape) == 4 else None
        past = ins[4].shape[-2] if len(ins) > 4 and ins[4].name and ins[4].shape else 0
        total = kv + past if isinstance(kv, int) and isinstance(past, int) else None
        if total is not None and isinstance(mask.shape[-1], int) and mask.shape[-1] != total:
            return (f"Attention with an attn_mask of {mask.shape[-1]} key positions for {total} keys (padded): "
                    "ONNX Runtime requires them equal")
    return None


_KNOWN_FAILURES = (
    _exchange_dtype,
    _maxunpool_output_shape,
    _convinteger_per_channel,
    _reduce_empty_bool,
    _attention,
)


def _known_failure(node: NodeView) -> str | None:
    """The reason ONNX Runtime would fail ``node`` at run time, or None."""
    if node.domain:
        return None
    for check in _KNOWN_FAILURES:
        reason = check(node)
        if reason:
            return reason
    return None


def _quiet_options(ort, disable_opt: bool = False):
    so = ort.SessionOptions()
    so.log_severity_level = 4
    so.intra_op_num_threads = 1
    if disable_opt:
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return so


def _identity_model(ir: int) -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])
    y = helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])
    g = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "probe", [x], [y])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], ir_version=ir)


def _value_info(t: TensorInfo) -> onnx.ValueInfoProto:
    if t.kind != "tensor":
        return helper.make_value_info(t.name, t.type_proto)
    shape = None if t.shape is None else [d if d is not None else None for d in t.shape]
    return helper.make_tensor_value_info(t.name, t.elem_type, shape)


def _single_node_model(node: NodeView, max_ir: int) -> onnx.ModelProto:
    """A model holding only ``node``; small constant inputs stay initializers."""
    inputs, inits, seen = [], [], set()
    for t in node.inputs + node.implicit_inputs:
        if not t.name or t.name in seen:
            continue
        seen.add(t.name)
        if t.const is not None:
            inits.append(onnx.numpy_helper.from_array(t.const, t.name))
        else:
            inputs.append(_value_info(t))
    outputs = [
        _value_info(t) if t.is_typed else helper.make_empty_tensor_value_info(t.name) for t in node.outputs if t.name
    ]
    proto = onnx.NodeProto()
    proto.CopyFrom(node.proto)
    graph = helper.make_graph([proto], "probe", inputs, outputs, initializer=inits)
    opsets = [helper.make_opsetid("", node.opset if not node.domain else 17)]
    if node.domain:
        opsets.append(helper.make_opsetid(node.domain, node.opset))
    return helper.make_model(graph, opset_imports=opsets, ir_version=min(max_ir, onnx.IR_VERSION))


@hookimpl
def unified_delegates() -> list[Delegate]:
    return [OnnxRuntimeDelegate()]
