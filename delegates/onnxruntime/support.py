"""What the ``onnxruntime`` delegate claims, and why not.

ONNX Runtime's kernels decide: :func:`probe` builds a one-node model with the
node's op, opset, attributes and inferred input types, and asks ONNX Runtime
to create a session for it (graph optimizations off, so the kernel itself
must exist); a refusal carries ONNX Runtime's own message. The delegate
caches the answer per node signature (op, domain, opset, input/output dtypes
and ranks, attributes).

:func:`known_failure` declines, before any probe, the nodes ONNX Runtime
accepts but then cannot run right (shape-dependent, so not cached).
"""

from __future__ import annotations

import functools
import platform
from pathlib import Path

import numpy as np
import onnx
from onnx import helper

from unified.delegate import Support
from unified.delegates.onnxruntime.executable import PROVIDERS, import_ort, quiet_options
from unified.graph import NodeView, TensorInfo
from unified.onnx import dtype_name

__all__ = ["known_failure", "probe"]


def probe(node: NodeView, max_ir: int) -> Support:
    """Whether ONNX Runtime's CPU provider creates a session for ``node`` alone.

    Args:
        node: the node, with its inferred input and output types.
        max_ir: the highest ONNX IR version this onnxruntime reads.

    Returns:
        ``Support.yes()``, or ``Support.no`` with ONNX Runtime's message (or
        why no probe model could be built).
    """
    typed = [t for t in node.inputs + node.implicit_inputs if t.name]
    untyped = [t.name for t in typed if not t.is_typed]
    if untyped:
        return Support.no(f"input(s) {untyped} have no inferred dtype; cannot check ORT's kernels")
    try:
        model = _single_node_model(node, max_ir)
    except Exception as exc:
        return Support.no(f"could not build a probe model for {node.op_type}: {exc}")
    ort = import_ort()
    try:
        ort.InferenceSession(model.SerializeToString(), quiet_options(ort, disable_opt=True), providers=PROVIDERS["cpu"])
    except Exception as exc:
        text = " ".join(str(exc).split())
        text = text.split("] ", 1)[-1] if text.startswith("[ONNXRuntimeError]") else text
        return Support.no(f"ONNX Runtime {ort.__version__} CPU: {text[:400]}")
    return Support.yes()


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
_NO_NUMPY_EXCHANGE = frozenset(
    getattr(onnx.TensorProto, n)
    for n in ("BFLOAT16", "FLOAT8E4M3FN", "FLOAT8E4M3FNUZ", "FLOAT8E5M2", "FLOAT8E5M2FNUZ", "FLOAT8E8M0",
              "UINT4", "INT4", "FLOAT4E2M1", "UINT2", "INT2")
    if hasattr(onnx.TensorProto, n)
)


def _exchange_dtype(node: NodeView) -> str | None:
    for t in node.inputs + node.outputs:
        if t.is_initializer or t.const is not None:  # stays inside the partition: blocked int4 weights
            continue
        if t.name and t.elem_type in _NO_NUMPY_EXCHANGE:
            return (
                f"{node.op_type}: ONNX Runtime's Python API cannot exchange {dtype_name(t.elem_type)} "
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


_U8S8_OPS = {"QLinearConv": (0, 3), "QLinearMatMul": (0, 3), "ConvInteger": (0, 1), "MatMulInteger": (0, 1)}


@functools.lru_cache(maxsize=1)
def _u8s8_saturates() -> bool:
    """Whether this CPU takes MLAS's int16-saturating u8s8 path: x86-64
    without AVX-VNNI / AVX512-VNNI (``vnni`` in /proc/cpuinfo's flags)."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    try:
        return "vnni" not in Path("/proc/cpuinfo").read_text()
    except OSError:
        return True  # unknown x86-64 CPU: assume the saturating path


def _u8s8_saturation(node: NodeView) -> str | None:
    slots = _U8S8_OPS.get(node.op_type)
    if slots is None or max(slots) >= len(node.inputs):
        return None
    a, w = node.inputs[slots[0]].elem_type, node.inputs[slots[1]].elem_type
    if a == onnx.TensorProto.UINT8 and w == onnx.TensorProto.INT8 and _u8s8_saturates():
        return (f"{node.op_type} with uint8 activations and int8 weights: ONNX Runtime's x86-64 u8s8 kernels "
                "(AVX2/AVX512 without VNNI, VPMADDUBSW) saturate int16 partial sums, the 'saturation issue' of "
                "ONNX Runtime's quantization docs; measured up to 22 steps off on quantized-ops/QLinearConv/uint8_x")
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
    _u8s8_saturation,
    _reduce_empty_bool,
    _attention,
)


def known_failure(node: NodeView) -> str | None:
    """The reason ONNX Runtime would fail ``node`` at run time, or None."""
    if node.domain:
        return None
    for check in _KNOWN_FAILURES:
        reason = check(node)
        if reason:
            return reason
    return None


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
