"""From ONNX operators to costs: the GEMM view of MAC ops, element-op counts
of vector ops, and whole-model simulation.

An operator is described by an :class:`OpDesc` (op type, attributes, the
static shapes of its inputs and outputs), so the same cost function serves
``unified simulate`` (shapes from ONNX shape inference) and the ``reference``
delegate (shapes of the arrays it just computed).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import onnx

from unified.backends.npu_sim.costmodel import Gemm, OpCost, array_cost, free_cost, vector_cost
from unified.backends.npu_sim.hardware import DataType, HardwareConfig, load_hardware
from unified.errors import ModelError, UnsupportedError

__all__ = [
    "OpDesc",
    "MAC_OPS",
    "element_bytes",
    "stored_width",
    "LAYOUT_OPS",
    "VECTOR_OPS_PER_ELEMENT",
    "gemm_view",
    "op_cost",
    "descs_from_model",
    "simulate_model",
]

_MAC_SLOTS: dict[str, tuple[str, int, int, int | None, tuple[int, ...]]] = {
    # op -> (float op of the same shape, data slot, weight slot, bias slot, weight scale / zero-point slots)
    "Conv": ("Conv", 0, 1, 2, ()),
    "ConvTranspose": ("ConvTranspose", 0, 1, 2, ()),
    "Gemm": ("Gemm", 0, 1, 2, ()),
    "MatMul": ("MatMul", 0, 1, None, ()),
    "QLinearConv": ("Conv", 0, 3, 8, (4, 5)),
    "QLinearMatMul": ("MatMul", 0, 3, None, (4, 5)),
    "ConvInteger": ("Conv", 0, 1, None, (3,)),
    "MatMulInteger": ("MatMul", 0, 1, None, (3,)),
}

MAC_OPS = frozenset(_MAC_SLOTS)
"""Ops mapped onto the systolic array through their GEMM view (the integer
ones, QLinearConv, QLinearMatMul, ConvInteger, MatMulInteger, compute in int8
when the hardware does)."""

INTEGER_MAC_OPS = frozenset({"QLinearConv", "QLinearMatMul", "ConvInteger", "MatMulInteger"})

_SUB_BYTE = {"int4": 0.5, "uint4": 0.5, "float4_e2m1fn": 0.5, "int2": 0.25, "uint2": 0.25}


def element_bytes(dtype) -> float | None:
    """Stored bytes per element of a tensor of NumPy ``dtype`` (``ml_dtypes``
    types included): 0.5 for int4 / uint4 / float4e2m1 (two per byte, as
    ONNX packs them), 0.25 for int2 / uint2, 1 for int8 / uint8 / float8, 2
    for int16, 4 for int32 (the accumulator width, as fp32). None for float
    tensors, bool and int64: those are stored in the compute dtype's width."""
    if dtype is None:
        return None
    dtype = np.dtype(dtype)
    if dtype.name in _SUB_BYTE:
        return _SUB_BYTE[dtype.name]
    if (dtype.kind in "iu" and dtype.itemsize <= 4) or dtype.name.startswith("float8"):
        return float(dtype.itemsize)
    return None


def stored_width(data: tuple, *params: tuple) -> float:
    """Stored bytes per element of a quantized constant with its parameters.

    Args:
        data: ``(dtype, numel)`` of the quantized tensor.
        params: ``(dtype, numel)`` of each scale / zero point stored with it.

    Returns:
        ``element_bytes(data) + sum(param bytes) / numel``; e.g. MXFP4 (fp4
        data, one E8M0 scale per 32): ``0.5 + 1/32 = 0.53125``; int4 with a
        float32 scale per block of 32: ``0.5 + 4/32 = 0.625``.
    """
    dtype, n = data
    total = sum(c * (element_bytes(t) or np.dtype(t).itemsize) for t, c in params)
    return (element_bytes(dtype) or np.dtype(dtype).itemsize) + (total / n if n else 0.0)

LAYOUT_OPS = frozenset({"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Dropout", "Identity", "ConstantOfShape"})
"""Ops that only relabel a buffer (or, ConstantOfShape, materialize a constant
a deployment would store as an initializer): no cycles, no traffic."""

QDQ_OPS = frozenset({"QuantizeLinear", "DequantizeLinear"})
"""Folded into the neighbouring op's requantization in int8 mode (free);
vector ops in float modes."""

VECTOR_OPS_PER_ELEMENT: dict[str, float] = {
    # one lane-op per output element
    "Add": 1, "Sub": 1, "Mul": 1, "Div": 1, "Relu": 1, "Clip": 1, "LeakyRelu": 1,
    "HardSigmoid": 1, "QuantizeLinear": 2, "DequantizeLinear": 2,
    "HardSwish": 2, "BatchNormalization": 2,  # scale and shift folded per channel
    # exp / tanh / erf as piecewise-polynomial evaluations: 4 lane-ops (assumption)
    "Sigmoid": 5, "Tanh": 4, "Erf": 4, "Gelu": 6,
    # max, subtract, exp (4), sum, divide
    "Softmax": 8,
    # mean, variance, normalize, scale, shift, rsqrt share
    "LayerNormalization": 6,
    # data movement through the vector unit: one lane-op per element moved
    "Transpose": 1, "Concat": 1, "Slice": 1, "Pad": 1, "Resize": 1, "ConstantOfShape": 1,
}
"""Vector-unit element ops per output element. Ops absent here and not MAC,
layout or window ops are costed at 1. These are modelling assumptions (a lane
does one add/multiply/compare per cycle; transcendental functions take
several), not measurements."""



@dataclass(frozen=True)
class OpDesc:
    """One operator with static shapes.

    Attributes:
        name / op_type: the node.
        attrs: attribute name -> value (as ``NodeView.attributes``).
        inputs: shape per input slot (None for an omitted optional input).
        outputs: shape per output slot (None for an unused output).
        const_inputs: slots whose value is an initializer (weights).
        in_bytes / out_bytes: stored bytes per element of each input / output
            slot (fractional for int4 or for a weight that carries its block
            scales); a missing or None entry means the compute dtype's width
            (for a MAC op's bias, the accumulator's).
        compute: the dtype the op computes in when not the run's (``"int8"``
            for an integer op or QDQ group on float-mode hardware); used when
            the hardware has it.
        folded: evaluated once at compile time (the dequantization of a
            constant weight): no cycles, no traffic.
    """

    name: str
    op_type: str
    attrs: Mapping[str, Any]
    inputs: tuple[tuple[int, ...] | None, ...]
    outputs: tuple[tuple[int, ...] | None, ...]
    const_inputs: frozenset[int] = field(default_factory=frozenset)
    in_bytes: tuple[float | None, ...] = ()
    out_bytes: tuple[float | None, ...] = ()
    compute: str | None = None
    folded: bool = False

    def width(self, slot: int, default: float, output: bool = False) -> float:
        """Stored bytes per element of input (or output) ``slot``; ``default`` when not given."""
        widths = self.out_bytes if output else self.in_bytes
        v = widths[slot] if slot < len(widths) else None
        return default if v is None else v

    def bytes(self, slot: int, default: float, output: bool = False) -> float:
        """Stored bytes of input (or output) ``slot`` (0 for an omitted one)."""
        shapes = self.outputs if output else self.inputs
        shape = shapes[slot] if slot < len(shapes) else None
        return _numel(shape) * self.width(slot, default, output)


def _numel(shape: Sequence[int] | None) -> int:
    return 0 if shape is None else math.prod(shape)


def gemm_view(d: OpDesc) -> Gemm:
    """The GEMM view of a MAC op.

    * Conv: X ``(N, C, *S)``, W ``(F, C/g, *k)``, Y ``(N, F, *O)`` ->
      ``g x (N*prod(O), F/g, prod(k)*C/g)``.
    * ConvTranspose (scatter form, only useful MACs): X ``(N, C, *S)``, W
      ``(C, F/g, *k)`` -> ``g x (N*prod(S), prod(k)*F/g, C/g)``, then col2im.
    * Gemm: ``(M, K) @ (K, N)`` after transA/transB.
    * MatMul: ``(..., M, K) @ (..., K, N)``; a 2-D B folds the batch into M,
      otherwise one GEMM per broadcast batch element.
    * QLinearConv / ConvInteger as Conv, QLinearMatMul / MatMulInteger as MatMul.

    Raises:
        UnsupportedError: ``op_type`` is not a MAC op.
    """
    if d.op_type not in _MAC_SLOTS:
        raise UnsupportedError(f"{d.op_type} has no GEMM view; MAC ops are {sorted(MAC_OPS)}")
    base, xs, ws, _, _ = _MAC_SLOTS[d.op_type]
    x, w = d.inputs[xs], d.inputs[ws]
    if base == "Conv":
        y = d.outputs[0]
        g = int(d.attrs.get("group", 1))
        return Gemm(m=y[0] * math.prod(y[2:]), n=w[0] // g, k=math.prod(w[1:]), groups=g)
    if base == "ConvTranspose":
        g = int(d.attrs.get("group", 1))
        return Gemm(m=x[0] * math.prod(x[2:]), n=w[1] * math.prod(w[2:]), k=x[1] // g, groups=g)
    if base == "Gemm":
        m, k = (x[1], x[0]) if d.attrs.get("transA", 0) else (x[0], x[1])
        n = w[0] if d.attrs.get("transB", 0) else w[1]
        return Gemm(m=m, n=n, k=k)
    a = (1,) + tuple(x) if len(x) == 1 else tuple(x)
    b = tuple(w) + (1,) if len(w) == 1 else tuple(w)
    m, k, n = a[-2], a[-1], b[-1]
    if len(b) == 2:
        return Gemm(m=math.prod(a[:-1]), n=n, k=k)
    batch = _broadcast(a[:-2], b[:-2])
    return Gemm(m=m, n=n, k=k, groups=math.prod(batch))


def _broadcast(a: Sequence[int], b: Sequence[int]) -> tuple[int, ...]:
    n = max(len(a), len(b))
    a = (1,) * (n - len(a)) + tuple(a)
    b = (1,) * (n - len(b)) + tuple(b)
    return tuple(max(p, q) for p, q in zip(a, b))


def _element_ops(d: OpDesc) -> int:
    out = _numel(d.outputs[0]) if d.outputs else 0
    op = d.op_type
    if op in ("MaxPool", "AveragePool"):
        return out * math.prod(d.attrs.get("kernel_shape", [1]))
    if op in ("GlobalAveragePool", "ReduceMean", "ReduceSum", "ReduceMax"):
        return _numel(d.inputs[0])
    if op == "LRN":
        return out * (int(d.attrs.get("size", 1)) + 3)
    if op == "Sum":
        return out * max(1, sum(1 for s in d.inputs if s is not None) - 1)
    return int(math.ceil(out * VECTOR_OPS_PER_ELEMENT.get(op, 1)))


def op_cost(d: OpDesc, hw: HardwareConfig, dt: DataType) -> OpCost:
    """Cost of one operator on ``hw`` computing in ``dt`` (see ``costmodel``).

    Operand bytes are ``numel x`` :meth:`OpDesc.width` (the compute dtype's
    width unless the description gives the stored width); a MAC op's
    ``weight_bytes`` are its constant weight, bias and weight scale / zero
    point slots.
    """
    if d.compute and d.compute != dt.name and d.compute in hw.dtypes:
        dt = hw.dtype(d.compute)
    w = dt.bytes
    if d.folded or d.op_type in LAYOUT_OPS or (d.op_type in QDQ_OPS and dt.name == "int8"):
        return free_cost(d.name, d.op_type, hw, dt)
    if d.op_type in MAC_OPS:
        return _mac_cost(d, hw, dt)
    reads = sum(d.bytes(i, w) for i, s in enumerate(d.inputs) if s is not None)
    writes = sum(d.bytes(i, w, output=True) for i, s in enumerate(d.outputs) if s is not None)
    return vector_cost(d.name, d.op_type, _element_ops(d), int(round(reads)), int(round(writes)), hw, dt)


def _mac_cost(d: OpDesc, hw: HardwareConfig, dt: DataType) -> OpCost:
    g = gemm_view(d)
    _, xs, ws, bs, params = _MAC_SLOTS[d.op_type]
    w = dt.bytes
    # weight scales / zero points: float32 scales unless a width is given (integer zero points have one)
    filt = d.bytes(ws, w) + sum(d.bytes(i, 4.0) for i in params if i < len(d.inputs) and d.inputs[i] is not None)
    if bs is not None and len(d.inputs) > bs and d.inputs[bs] is not None:
        filt += d.bytes(bs, dt.acc_bytes)
    extra = g.macs // max(g.k, 1) if d.op_type == "ConvTranspose" else 0  # col2im: one add per product column
    return array_cost(
        d.name,
        d.op_type,
        g,
        hw,
        dt,
        ifmap_bytes=int(round(d.bytes(xs, w))),
        filter_bytes=int(round(filt)),
        ofmap_bytes=int(round(d.bytes(0, w, output=True))),
        extra_vector_ops=extra,
        weight_bytes=int(round(filt)) if ws in d.const_inputs else 0,
    )


# --- whole models ------------------------------------------------------------------


def _static(shape, what: str) -> tuple[int, ...]:
    if shape is None or not all(isinstance(s, int) for s in shape):
        raise ModelError(
            f"{what} has shape {shape}; the simulator needs static shapes — fix the symbolic input dims "
            "(simulate_model(..., dims={'name': value}) or `unified simulate --dim NAME=VALUE`)"
        )
    return tuple(shape)


def descs_from_model(model: "onnx.ModelProto | str", dims: Mapping[str, int] | None = None) -> list[OpDesc]:
    """An :class:`OpDesc` per node of a model, in topological order.

    Args:
        model: ``ModelProto`` or path; symbolic input dims are set from
            ``dims`` (by dim name, default 1) before shape inference.

    Raises:
        ModelError: the model does not load, or a node has no static shape.
    """
    from unified.graph import Graph, load_model

    proto = load_model(model) if not isinstance(model, onnx.ModelProto) else model
    fixed = onnx.ModelProto()
    fixed.CopyFrom(proto)
    inits = {t.name for t in fixed.graph.initializer}
    for vi in fixed.graph.input:
        if vi.name in inits:
            continue
        for dim in vi.type.tensor_type.shape.dim:
            if not dim.HasField("dim_value"):
                dim.dim_value = int((dims or {}).get(dim.dim_param, 1))
    del fixed.graph.value_info[:]
    graph = Graph(fixed)
    views = graph.node_views
    widths, folded = _stored_widths(views)
    folded_values = {v.outputs[0].name for v in views if v.name in folded}
    descs = []
    for v in views:
        ins = tuple(None if not t.name else _static(t.shape, f"input '{t.name}' of node '{v.name}'") for t in v.inputs)
        outs = tuple(
            None if not t.name or (i and t.shape is None)  # an unused extra output (e.g. Dropout's mask)
            else _static(t.shape, f"output '{t.name}' of node '{v.name}'")
            for i, t in enumerate(v.outputs)
        )
        const = frozenset(i for i, t in enumerate(v.inputs) if t.is_initializer or t.name in folded_values)
        descs.append(
            OpDesc(
                v.name, v.op_type, dict(v.attributes), ins, outs, const,
                in_bytes=tuple(widths.get(t.name) for t in v.inputs),
                out_bytes=tuple(widths.get(t.name) for t in v.outputs),
                compute="int8" if v.op_type in INTEGER_MAC_OPS else None,
                folded=v.name in folded,
            )
        )
    return descs


def _stored_widths(views) -> tuple[dict[str, float], set[str]]:
    """Stored bytes per element of every value not held at the compute
    dtype's width (integer tensors, see :func:`element_bytes`; a constant
    weight's dequantized output at its quantized width plus its scales, see
    :func:`stored_width`), and the names of the DequantizeLinear nodes of
    constants (folded at compile time, as the reference delegate does)."""
    widths: dict[str, float] = {}
    folded: set[str] = set()
    for v in views:
        for t in v.inputs + v.outputs:
            eb = element_bytes(t.dtype) if t.name else None
            if eb is not None:
                widths[t.name] = eb
        ins = [t for t in v.inputs if t.name]
        if v.op_type == "DequantizeLinear" and ins and all(t.is_initializer for t in ins):
            if all(t.dtype is not None and t.is_static for t in ins):
                widths[v.outputs[0].name] = stored_width(*[(t.dtype, _numel(t.shape)) for t in ins])
                folded.add(v.name)
    return widths, folded


def simulate_model(
    model: "onnx.ModelProto | str",
    hw: "HardwareConfig | str" = "scalesim-32",
    dtype: str = "int8",
    dims: Mapping[str, int] | None = None,
):
    """Cost every node of a model on the simulated NPU (no numerics).

    Args:
        model: ``ModelProto`` or path to a ``.onnx`` file.
        hw: a :class:`HardwareConfig`, a preset name or a TOML path.
        dtype: ``"int8"``, ``"fp16"`` or ``"fp32"`` (must be in ``hw.dtypes``).
        dims: values for symbolic input dims (default 1).

    Returns:
        A :class:`~unified.backends.npu_sim.report.SimulationReport`.

    Raises:
        ModelError: unloadable model or non-static shapes.
        HardwareConfigError: bad hardware spec or dtype.
    """
    from unified.backends.npu_sim.report import SimulationReport

    config = load_hardware(hw)
    dt = config.dtype(dtype)
    return SimulationReport(config, dtype, [op_cost(d, config, dt) for d in descs_from_model(model, dims)])


def costs(descs: Iterable[OpDesc], hw: HardwareConfig, dt: DataType) -> list[OpCost]:
    """:func:`op_cost` for each description."""
    return [op_cost(d, hw, dt) for d in descs]
