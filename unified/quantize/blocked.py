"""Weight-only blocked quantization (int4, MXFP4) written as standard ONNX.

Every float ``MatMul``/``Gemm`` weight initializer ``W`` is replaced by packed
data, one scale per block of ``block_size`` consecutive elements along the
*reduction* axis (``K``: axis 0 of a MatMul ``B`` (K, N), axis 1 of a Gemm
``B`` with ``transB=1`` (N, K)), and a blocked ``DequantizeLinear`` (its
``block_size`` attribute) whose output keeps the name ``W``, so the consumers
are untouched and activations stay float:

* ``int4`` — ``INT4`` data, symmetric (no zero point), float32 scale per
  block ``s = max|W_block| / 7``, ``q = clip(round_half_even(W / s), -8, 7)``.
  The dequantized weight is within ``s / 2`` of the original (one half step).
  Needs opset 21 (blocked ``DequantizeLinear`` and ``INT4`` arrive there).
* ``mxfp4`` — OCP Microscaling Formats (MX) Specification v1.0 (Open Compute
  Project, Sept. 2023), MXFP4: ``FLOAT4E2M1`` elements with one
  ``FLOAT8E8M0`` (power-of-two) scale per block of 32. Section 6.3: the
  shared scale is ``X = 2^(floor(log2(max|V_i|)) - emax_elem)`` with
  ``emax_elem = 2`` for E2M1 (its largest normal is 6 = 1.5 * 2^2), and each
  element is ``V_i / X`` rounded to nearest-even in E2M1, clamped to +-6.
  Needs opset 24 (``DequantizeLinear``'s ``x_scale`` accepts ``float8e8m0``
  from opset 24; ``float4e2m1`` data from 23). The dequantized weight is
  within one E2M1 step of the original: ``|W - W'| <= 2 * X`` (E2M1's widest
  spacing, between 4 and 6, is 2; clamping at 6 costs at most 2 as well).

Element types come from ``ml_dtypes`` (``int4``, ``float4_e2m1fn``,
``float8_e8m0fnu``), imported inside the functions.

ONNX Runtime 1.32 runs the int4 form (with graph optimizations on it fuses
``DequantizeLinear`` + ``MatMul`` into its own ``MatMulNBits`` kernel) but has
no CPU kernel for ``DequantizeLinear`` at opset 24 with ``float4e2m1`` data:
the MXFP4 model is valid ONNX (``onnx.checker``, ``onnx.reference`` runs it)
that ONNX Runtime cannot load; :func:`ort_failure` says so.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from unified.quantize.static import QuantizationError, convert_opset

__all__ = ["SCHEMES", "pack_int4", "pack_mxfp4", "quantize_weights", "ort_failure", "E2M1_EMAX"]

log = logging.getLogger("unified.quantize")

SCHEMES = {"int4": 21, "mxfp4": 24}
"""Scheme -> the lowest opset that can express it."""

E2M1_EMAX = 2
"""``emax_elem`` of FP4 E2M1 (OCP MX v1.0, Table 2): largest normal 6 = 1.5 * 2^2."""


def _blocks(w: np.ndarray, axis: int, block_size: int) -> tuple[np.ndarray, int]:
    """``w`` with ``axis`` split into (blocks, block_size), zero-padded; and the
    padded length. Returns the view with the block axis at ``axis`` and the
    in-block axis at ``axis + 1``."""
    n = w.shape[axis]
    nblocks = -(-n // block_size)
    pad = nblocks * block_size - n
    if pad:
        widths = [(0, 0)] * w.ndim
        widths[axis] = (0, pad)
        w = np.pad(w, widths)
    shape = w.shape[:axis] + (nblocks, block_size) + w.shape[axis + 1:]
    return w.reshape(shape), n


def _unblock(b: np.ndarray, axis: int, n: int) -> np.ndarray:
    shape = b.shape[:axis] + (b.shape[axis] * b.shape[axis + 1],) + b.shape[axis + 2:]
    return np.take(b.reshape(shape), np.arange(n), axis=axis)


def pack_int4(w: np.ndarray, axis: int, block_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int4 blocks of ``w`` along ``axis`` (scheme in the module docstring).

    Args:
        w: float weights, any rank.
        axis: the blocked (reduction) axis.
        block_size: elements per block (>= 1).

    Returns:
        ``(q, scale)``: ``q`` of ``w``'s shape, dtype ``ml_dtypes.int4``;
        ``scale`` float32 of ``w``'s shape with ``axis`` cut to
        ``ceil(w.shape[axis] / block_size)`` (1.0 for an all-zero block).
    """
    import ml_dtypes

    b, n = _blocks(np.asarray(w, np.float32), axis, block_size)
    amax = np.max(np.abs(b), axis=axis + 1, keepdims=True)
    scale = np.where(amax > 0, amax / 7.0, 1.0).astype(np.float32)
    q = np.clip(np.round(b / scale), -8, 7)
    return _unblock(q, axis, n).astype(ml_dtypes.int4), np.squeeze(scale, axis + 1)


def pack_mxfp4(w: np.ndarray, axis: int, block_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """MXFP4 blocks of ``w`` along ``axis`` (OCP MX v1.0 section 6.3; module docstring).

    Returns:
        ``(q, scale)``: ``q`` of ``w``'s shape, dtype ``ml_dtypes.float4_e2m1fn``;
        ``scale`` ``ml_dtypes.float8_e8m0fnu`` (powers of two, exponent
        clamped to E8M0's [-127, 127]; 2^-127 for an all-zero block), shape as
        in :func:`pack_int4`.
    """
    import ml_dtypes

    b, n = _blocks(np.asarray(w, np.float32), axis, block_size)
    amax = np.max(np.abs(b), axis=axis + 1, keepdims=True).astype(np.float64)
    with np.errstate(divide="ignore"):
        exp = np.where(amax > 0, np.floor(np.log2(np.where(amax > 0, amax, 1.0))) - E2M1_EMAX, -127)
    scale = np.exp2(np.clip(exp, -127, 127))
    q = np.clip(b / scale, -6.0, 6.0).astype(np.float32)
    return (_unblock(q, axis, n).astype(ml_dtypes.float4_e2m1fn),
            np.squeeze(scale, axis + 1).astype(np.float32).astype(ml_dtypes.float8_e8m0fnu))


def _weight_axis(node: onnx.NodeProto, slot: int, rank: int) -> int | None:
    """The reduction axis of ``node``'s weight at input ``slot``, or None when it is not a weight."""
    if slot != 1 or rank != 2:
        return None
    if node.op_type == "MatMul":
        return 0
    if node.op_type == "Gemm":
        trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
        return 1 if trans_b else 0
    return None


def _candidates(model: onnx.ModelProto) -> dict[str, int]:
    """Float initializer name -> reduction axis, for those used only as MatMul/Gemm weights (one axis)."""
    inits = {t.name: t for t in model.graph.initializer if t.data_type == onnx.TensorProto.FLOAT}
    axes: dict[str, set] = {}
    for node in model.graph.node:
        for slot, name in enumerate(node.input):
            if name in inits:
                axes.setdefault(name, set()).add(_weight_axis(node, slot, len(inits[name].dims)))
    outputs = {o.name for o in model.graph.output}
    return {n: a.pop() for n, a in axes.items() if len(a) == 1 and None not in a and n not in outputs}


def _to_opset(model: onnx.ModelProto, opset: int) -> onnx.ModelProto:
    from unified.partition import min_ir_version_for

    model = convert_opset(model, opset, "blocked DequantizeLinear")
    model.ir_version = min_ir_version_for(model)
    return model


def quantize_weights(
    model: Any,
    out: str | os.PathLike | None = None,
    scheme: str = "int4",
    block_size: int = 32,
    check_ort: bool = True,
) -> onnx.ModelProto:
    """Replace MatMul/Gemm weights by blocked ``scheme`` data + ``DequantizeLinear``.

    Args:
        model: path, bytes or ``ModelProto`` of a float model.
        out: where to write the result (None: not written).
        scheme: ``"int4"`` or ``"mxfp4"`` (module docstring).
        block_size: elements per block along the reduction axis (32; MXFP4's
            block is 32 by the MX spec, so ``mxfp4`` accepts only 32).
        check_ort: create an ONNX Runtime session for the result and log a
            warning with ONNX Runtime's message when it cannot load it.

    Returns:
        The quantized model, at opset >= ``SCHEMES[scheme]``, checked with
        ``onnx.checker.check_model(full_check=True)``.

    Raises:
        ModelError: the model cannot be read.
        QuantizationError: unknown scheme, bad block size, the opset
            conversion failed, or no MatMul/Gemm weight initializer was found.
    """
    from unified.graph import load_model

    if scheme not in SCHEMES:
        raise QuantizationError(f"unknown weight scheme {scheme!r}; choose one of {', '.join(SCHEMES)}")
    if block_size < 1 or (scheme == "mxfp4" and block_size != 32):
        raise QuantizationError(f"block_size {block_size} is invalid for {scheme}: "
                                + ("MXFP4 blocks are 32 elements (OCP MX v1.0)" if scheme == "mxfp4" else "need >= 1"))
    m = _to_opset(load_model(model), SCHEMES[scheme])
    found = _candidates(m)
    if not found:
        raise QuantizationError("no float MatMul/Gemm weight initializer (2-D, input B) to quantize in the model")
    _rewrite(m, found, scheme, block_size)
    try:
        onnx.checker.check_model(m, full_check=True)
    except Exception as exc:
        raise QuantizationError(f"the {scheme} model fails onnx.checker: {' '.join(str(exc).split())[:300]}") from None
    log.info("quantized %d weight(s) to %s, blocks of %d", len(found), scheme, block_size)
    if check_ort:
        why = ort_failure(m)
        if why:
            log.warning("ONNX Runtime cannot run the %s model (valid ONNX, opset %d): %s", scheme,
                        SCHEMES[scheme], why)
    if out is not None:
        onnx.save(m, os.fspath(out))
    return m


def _rewrite(m: onnx.ModelProto, found: dict[str, int], scheme: str, block_size: int) -> None:
    pack = pack_int4 if scheme == "int4" else pack_mxfp4
    g = m.graph
    keep, dq_nodes = [], []
    for t in g.initializer:
        if t.name not in found:
            keep.append(t)
            continue
        axis = found[t.name]
        q, scale = pack(numpy_helper.to_array(t), axis, block_size)
        qn, sn = f"{t.name}_{scheme}", f"{t.name}_{scheme}_scale"
        keep += [numpy_helper.from_array(q, qn), numpy_helper.from_array(scale, sn)]
        attrs = {"axis": axis, "block_size": block_size}
        if scheme == "mxfp4":
            attrs["output_dtype"] = onnx.TensorProto.FLOAT  # the e8m0 scale does not give the output type
        dq_nodes.append(helper.make_node("DequantizeLinear", [qn, sn], [t.name], name=f"{t.name}_dequantize", **attrs))
    del g.initializer[:]
    g.initializer.extend(keep)
    inputs = [i for i in g.input if i.name not in found]  # IR < 4 lists initializers as inputs
    del g.input[:]
    g.input.extend(inputs)
    nodes = dq_nodes + list(g.node)
    del g.node[:]
    g.node.extend(nodes)


def ort_failure(model: onnx.ModelProto) -> str | None:
    """ONNX Runtime's reason for not loading ``model`` (CPU EP), or None when it loads.

    Returns:
        e.g. ``"ONNX Runtime 1.32.0: NOT_IMPLEMENTED : Could not find an
        implementation for DequantizeLinear(24) node ..."``.
    """
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    try:
        ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    except Exception as exc:
        text = " ".join(str(exc).split())
        return f"ONNX Runtime {ort.__version__}: {text.removeprefix('[ONNXRuntimeError] : ')[:300]}"
    return None
