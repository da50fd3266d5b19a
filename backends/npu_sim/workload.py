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

import onnx

from unified.backends.npu_sim.costmodel import Gemm, OpCost, array_cost, free_cost, vector_cost
from unified.backends.npu_sim.hardware import DataType, HardwareConfig, load_hardware
from unified.errors import ModelError, UnsupportedError

__all__ = [
    "OpDesc",
    "MAC_OPS",
    "LAYOUT_OPS",
    "VECTOR_OPS_PER_ELEMENT",
    "gemm_view",
    "op_cost",
    "descs_from_model",
    "simulate_model",
]

MAC_OPS = frozenset({"Conv", "ConvTranspose", "Gemm", "MatMul"})
"""Ops mapped onto the systolic array through their GEMM view."""

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
    """

    name: str
    op_type: str
    attrs: Mapping[str, Any]
    inputs: tuple[tuple[int, ...] | None, ...]
    outputs: tuple[tuple[int, ...] | None, ...]
    const_inputs: frozenset[int] = field(default_factory=frozenset)


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

    Raises:
        UnsupportedError: ``op_type`` is not a MAC op.
    """
    x, w = d.inputs[0], d.inputs[1]
    if d.op_type == "Conv":
        y = d.outputs[0]
        g = int(d.attrs.get("group", 1))
        return Gemm(m=y[0] * math.prod(y[2:]), n=w[0] // g, k=math.prod(w[1:]), groups=g)
    if d.op_type == "ConvTranspose":
        g = int(d.attrs.get("group", 1))
        return Gemm(m=x[0] * math.prod(x[2:]), n=w[1] * math.prod(w[2:]), k=x[1] // g, groups=g)
    if d.op_type == "Gemm":
        m, k = (x[1], x[0]) if d.attrs.get("transA", 0) else (x[0], x[1])
        n = w[0] if d.attrs.get("transB", 0) else w[1]
        return Gemm(m=m, n=n, k=k)
    if d.op_type == "MatMul":
        a = (1,) + tuple(x) if len(x) == 1 else tuple(x)
        b = tuple(w) + (1,) if len(w) == 1 else tuple(w)
        m, k, n = a[-2], a[-1], b[-1]
        if len(b) == 2:
            return Gemm(m=math.prod(a[:-1]), n=n, k=k)
        batch = _broadcast(a[:-2], b[:-2])
        return Gemm(m=m, n=n, k=k, groups=math.prod(batch))
    raise UnsupportedError(f"{d.op_type} has no GEMM view; MAC ops are {sorted(MAC_OPS)}")


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
    """Cost of one operator on ``hw`` computing in ``dt`` (see ``costmodel``)."""
    w = dt.bytes
    if d.op_type in LAYOUT_OPS or (d.op_type in QDQ_OPS and dt.name == "int8"):
        return free_cost(d.name, d.op_type, hw, dt)
    if d.op_type in MAC_OPS:
        g = gemm_view(d)
        x_bytes = _numel(d.inputs[0]) * w
        filt = _numel(d.inputs[1]) * w
        bias_slot = 2
        if len(d.inputs) > bias_slot and d.inputs[bias_slot] is not None:
            filt += _numel(d.inputs[bias_slot]) * dt.acc_bytes
        extra = 0
        if d.op_type == "ConvTranspose":
            extra = g.macs // max(g.k, 1)  # col2im: one add per scattered product column
        return array_cost(
            d.name,
            d.op_type,
            g,
            hw,
            dt,
            ifmap_bytes=x_bytes,
            filter_bytes=filt,
            ofmap_bytes=_numel(d.outputs[0]) * w,
            extra_vector_ops=extra,
        )
    reads = sum(_numel(s) for s in d.inputs if s is not None) * w
    writes = sum(_numel(s) for s in d.outputs if s is not None) * w
    return vector_cost(d.name, d.op_type, _element_ops(d), reads, writes, hw, dt)


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
    descs = []
    for v in graph.node_views:
        ins = tuple(None if not t.name else _static(t.shape, f"input '{t.name}' of node '{v.name}'") for t in v.inputs)
        outs = tuple(
            None if not t.name or (i and t.shape is None)  # an unused extra output (e.g. Dropout's mask)
            else _static(t.shape, f"output '{t.name}' of node '{v.name}'")
            for i, t in enumerate(v.outputs)
        )
        const = frozenset(i for i, t in enumerate(v.inputs) if t.is_initializer)
        descs.append(OpDesc(v.name, v.op_type, dict(v.attributes), ins, outs, const))
    return descs


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
