"""A compiled partition of the reference delegate: a schedule of NumPy kernels
with the accelerator's arithmetic, and the ``npu-sim`` cost of every run.

Arithmetic modes (delegate option ``dtype``):

* ``fp32`` — every kernel in float32 (BLAS sgemm for MAC ops).
* ``fp16`` — float tensors are stored as fp16 (every float constant, partition
  input and kernel output is rounded to fp16; arrays stay float32 so the
  graph's dtypes hold); MAC ops multiply the fp16 values and accumulate in
  fp32 (fp16 x fp16 products are exact in fp32).
* ``int8`` — MAC ops multiply int8 by int8 and accumulate in int32, then
  requantize. When a MAC op's data and weight inputs are ``DequantizeLinear``
  outputs (a QDQ model), the integers are taken from the quantized tensors
  and the int32 bias (when it is ``DequantizeLinear`` of int32 with scale
  ``s_x * s_w``) is added before scaling: ``y = (acc + b_q) * s_x * s_w``, which
  the next ``QuantizeLinear`` requantizes. A MAC op on plain float tensors is
  quantized on the fly (symmetric: activations per tensor, weights per output
  channel, ``s = max|v| / 127``). The int32 sums are computed exactly with
  float64 BLAS (every partial sum of int8 products stays below 2**53). Vector
  ops compute in float32 between the QDQ pairs that bound them.

QDQ groups (``DequantizeLinear -> Conv / Gemm / MatMul / Add / Mul /
AveragePool / Relu / Concat -> QuantizeLinear`` with constant scales) run in
integers in every mode: int8 x int8 -> exact int32 accumulation, then
``q = saturate(rint(acc * sx * sw / sy) + zy)``, the multiplier formed in
float32 and applied in float64 as the ONNX spec's reference kernels do (see
``qdq.py``); within 1 LSB of the float QDQ semantics (ONNX Runtime with
``session.disable_quant_qdq=1``). Such a step is costed as an int8 op, its
operands at their stored widths.

Nodes whose inputs are all constants (weight dequantization, weight fills)
are evaluated once at compile time; they cost nothing at run time. A
weight dequantized this way (int4, MXFP4, int8 per channel) keeps its stored
width for the cost model: quantized data plus scales and zero points
(``npu_sim.workload.stored_width``).

Profiling (``run_traced``): one ``op`` span per kernel step, its wall time on
this host, with the simulated cost of that op on the NPU as span args (the
``npu_sim`` cost model's ``OpCost``: cycles, compute/stall cycles, MACs,
vector ops, DRAM read/write bytes, energy in pJ, array utilization); the
partition span gets the simulated totals.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np
import onnx
from onnx import numpy_helper

from unified.backends.npu_sim.hardware import HardwareConfig
from unified.backends.npu_sim.report import SimulationReport
from unified.backends.npu_sim.workload import INTEGER_MAC_OPS, OpDesc, element_bytes, op_cost, stored_width
from unified.delegate import Executable
from unified.delegates.reference.kernels import KERNELS
from unified.delegates.reference.qdq import find_groups, mac, out_channel_shape
from unified.onnx import decode_attributes, last_uses
from unified.trace import OpTracer

__all__ = ["ReferenceExecutable"]

_MAC = ("Conv", "ConvTranspose", "Gemm", "MatMul")

#: ``OpCost`` fields copied into each op span's args (units: cycles, bytes, pJ; utilization 0..1).
TRACE_FIELDS = ("unit", "gemm", "cycles", "compute_cycles", "stall_cycles", "macs", "vector_ops",
                "dram_read_bytes", "dram_write_bytes", "energy_pj", "utilization")
#: Simulated totals copied into the partition span's args, with a ``sim_`` prefix.
TRACE_TOTALS = ("cycles", "stall_cycles", "macs", "dram_read_bytes", "dram_write_bytes", "energy_pj", "latency_s")


@dataclass
class _Dq:
    """A DequantizeLinear output: its quantized input name, scale, zero point, axis."""

    q: str
    scale: np.ndarray
    zp: np.ndarray | None
    axis: int


@dataclass
class _Step:
    name: str
    op_type: str
    attrs: dict
    opset: int
    inputs: list[str]
    outputs: list[str]
    fn: Callable[[list], list]
    reads: list[str] = field(default_factory=list)  # every env name read (for release)
    const_slots: frozenset = frozenset()
    fused: bool = False
    group: bool = False  # a QDQ group run in integers (``qdq.py``)


def _round_fp16(v: np.ndarray) -> np.ndarray:
    if v.dtype == np.float32:
        return v.astype(np.float16).astype(np.float32)
    return v


def _int_weights(w: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric per-output-channel int8 quantization: (integers as float64, scales)."""
    red = tuple(i for i in range(w.ndim) if i != axis)
    amax = np.abs(w).max(axis=red, keepdims=True) if w.ndim > 1 else np.abs(w).max(keepdims=True)
    s = np.where(amax > 0, amax / 127.0, 1.0).astype(np.float32)
    return np.clip(np.rint(w / s), -127, 127).astype(np.float64), s.reshape(-1)


class ReferenceExecutable(Executable):
    """A partition as a list of kernel steps; ``last_run_stats`` after each run.

    Args:
        model: the partition (self-contained ONNX model).
        hw: the simulated hardware.
        dtype: ``"fp32"``, ``"fp16"`` or ``"int8"``.
    """

    artifact_suffix = ".onnx"

    def __init__(self, model: onnx.ModelProto, hw: HardwareConfig, dtype: str):
        self.hw, self.dtype = hw, dtype
        self._dt = hw.dtype(dtype)
        self._model = model  # serialized only when asked (a VGG-19 partition is 550 MB)
        g = model.graph
        opsets = {("" if o.domain == "ai.onnx" else o.domain): o.version for o in model.opset_import}
        self.constants: dict[str, np.ndarray] = {t.name: numpy_helper.to_array(t) for t in g.initializer}
        self.input_names = [i.name for i in g.input if i.name not in self.constants]
        self.output_names = [o.name for o in g.output]
        self.last_run_stats: Mapping[str, Any] | None = None
        self._stats_key: tuple | None = None
        self._stored: dict[str, float] = {}  # constant -> stored bytes per element (a dequantized weight)
        self._int_compute = "int8" if "int8" in hw.dtypes else dtype
        steps, folded = self._schedule(g, opsets)
        if dtype == "fp16":
            self.constants = {k: _round_fp16(v) for k, v in self.constants.items()}
        self._steps = self._prune(steps)
        self._release = self._release_plan()
        self.details = {
            "hw": hw.name,
            "dtype": dtype,
            "kernels": len(self._steps),
            "folded_at_compile": folded,
            "int8_fused_macs": sum(s.fused and s.op_type in _MAC for s in self._steps),
            "qdq_integer_groups": sum(s.group for s in self._steps),
        }

    # --- compile helpers ---------------------------------------------------------

    def _schedule(self, g: onnx.GraphProto, opsets: dict[str, int]) -> tuple[list[_Step], int]:
        """The kernel steps of a graph (QDQ groups fused, int8 MACs set up,
        all-constant nodes evaluated now), and how many nodes were folded."""
        groups = find_groups(list(g.node), self.constants, set(self.output_names))
        absorbed = {grp.q_index for grp in groups.values()}
        dq: dict[str, _Dq] = {}
        steps: list[_Step] = []
        folded = 0
        for i, n in enumerate(g.node):
            if i in absorbed:
                continue
            name = n.name or f"{n.op_type}_{i}"
            attrs = decode_attributes(n, name)
            opset = opsets.get(n.domain or "", 1)
            step = _Step(name=name, op_type=n.op_type, attrs=attrs, opset=opset, inputs=list(n.input),
                         outputs=list(n.output), fn=self._kernel(n.op_type, attrs, opset))
            if n.op_type == "DequantizeLinear":
                self._note_dq(step, dq)
            if i in groups:
                grp = groups[i]
                step.fn, step.inputs, step.outputs = grp.fn, grp.inputs, [grp.output]
                step.fused = step.group = True
            elif self.dtype == "int8" and n.op_type in _MAC:
                self._quantized_mac(step, dq)
            step.const_slots = frozenset(k for k, x in enumerate(step.inputs) if x in self.constants)
            if all((not x) or x in self.constants for x in step.inputs):
                self._fold(step)
                folded += 1
                continue
            steps.append(step)
        return steps, folded

    def _fold(self, step: _Step) -> None:
        """Evaluate an all-constant step now; a dequantized weight keeps its
        stored width (quantized data plus scales, see ``stored_width``)."""
        xs = [self.constants[x] if x else None for x in step.inputs]
        for name, value in zip(step.outputs, step.fn(xs)):
            if name:
                self.constants[name] = value
        if step.op_type == "DequantizeLinear" and step.outputs[0] in self.constants:
            params = [(x.dtype, x.size) for x in xs[1:] if x is not None]
            self._stored[step.outputs[0]] = stored_width((xs[0].dtype, xs[0].size), *params)

    def _kernel(self, op: str, attrs: dict, opset: int) -> Callable[[list], list]:
        fn = KERNELS[op]
        return lambda xs: fn(xs, attrs, opset)

    def _note_dq(self, step: _Step, dq: dict[str, _Dq]) -> None:
        ins = step.inputs
        scale = self.constants.get(ins[1])
        zp = self.constants.get(ins[2]) if len(ins) > 2 and ins[2] else None
        if scale is None or (len(ins) > 2 and ins[2] and zp is None):
            return  # runtime scales: no integer fusion
        if step.attrs.get("block_size", 0) or scale.ndim > 1:
            return  # blocked scales: the weight is dequantized at compile time, the MAC runs in float
        dq[step.outputs[0]] = _Dq(ins[0], scale.astype(np.float32), zp, int(step.attrs.get("axis", 1)))

    def _quantized_mac(self, step: _Step, dq: dict[str, _Dq]) -> None:
        """Replace a MAC step's kernel by the int8 x int8 -> int32 path."""
        op, attrs, ins = step.op_type, step.attrs, step.inputs
        xq, wq = dq.get(ins[0]), dq.get(ins[1])
        bias_name = ins[2] if len(ins) > 2 and ins[2] else None
        bq = dq.get(bias_name) if bias_name else None
        alpha, beta = float(attrs.get("alpha", 1.0)), float(attrs.get("beta", 1.0))
        consts = self.constants
        if xq is not None and wq is not None and xq.scale.size == 1 and wq.q in consts:
            w_int = consts[wq.q].astype(np.float64)
            shape_w = [1] * w_int.ndim
            if wq.scale.size > 1:
                shape_w[wq.axis % w_int.ndim] = -1
            if wq.zp is not None:
                w_int = w_int - wq.zp.astype(np.float64).reshape(shape_w)
            zx = float(xq.zp.reshape(-1)[0]) if xq.zp is not None else 0.0
            sxw = (np.float32(xq.scale.reshape(-1)[0]) * wq.scale.reshape(-1)).astype(np.float32)
            b_int = None
            if bq is not None and bq.q in consts and consts[bq.q].dtype == np.int32:
                if np.allclose(bq.scale.reshape(-1), sxw, rtol=1e-6, atol=0):
                    b_int = consts[bq.q].astype(np.float64)

            def run(xs: list) -> list:
                x_int = xs[0].astype(np.float64) - zx
                acc = mac(op, x_int, w_int, attrs)
                shape, _ = out_channel_shape(op, attrs, w_int, acc.ndim)
                if b_int is not None:
                    acc = acc + b_int.reshape(shape)
                y = acc.astype(np.float32) * sxw.reshape(shape if sxw.size > 1 else ())
                if alpha != 1.0:
                    y = y * np.float32(alpha)
                if b_int is None and len(xs) > 2 and xs[2] is not None:
                    y = y + (xs[2] * np.float32(beta) if op == "Gemm" else xs[2].reshape(shape))
                return [y.astype(np.float32)]

            step.fn = run
            step.inputs = [xq.q] + ins[1:]
            step.fused = True
            return

        def dynamic(xs: list) -> list:
            x, w = xs[0], xs[1]
            sx = np.float32(np.abs(x).max() / 127.0) or np.float32(1.0)
            x_int = np.clip(np.rint(x / sx), -127, 127).astype(np.float64)
            _, axis = out_channel_shape(op, attrs, w, x.ndim)
            w_int, sw = _int_weights(w, axis)
            acc = mac(op, x_int, w_int, attrs)
            shape, _ = out_channel_shape(op, attrs, w, acc.ndim)
            y = acc.astype(np.float32) * (sx * sw).reshape(shape if sw.size > 1 else ())
            if alpha != 1.0:
                y = y * np.float32(alpha)
            if len(xs) > 2 and xs[2] is not None:
                y = y + (xs[2] * np.float32(beta) if op == "Gemm" else xs[2].reshape(shape))
            return [y.astype(x.dtype)]

        step.fn = dynamic

    def _prune(self, steps: list[_Step]) -> list[_Step]:
        """Drop steps whose outputs nobody reads (e.g. an activation's
        DequantizeLinear consumed only by fused int8 MACs)."""
        needed = set(self.output_names)
        kept = []
        for s in reversed(steps):
            if any(o in needed for o in s.outputs if o):
                kept.append(s)
                needed.update(x for x in s.inputs if x)
        return kept[::-1]

    def _release_plan(self) -> list[list[str]]:
        return last_uses([s.inputs for s in self._steps], keep=set(self.output_names) | set(self.constants))

    # --- running -------------------------------------------------------------

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run every kernel in order; sets :attr:`last_run_stats`.

        Returns:
            One new array per output name (the caller owns them).
        """
        return self._run(inputs, None)

    def run_traced(self, inputs: Mapping[str, np.ndarray], tracer: OpTracer) -> dict[str, np.ndarray]:
        """:meth:`run`, reporting one ``op`` span per kernel step (wall time
        here) with its simulated ``OpCost`` (:data:`TRACE_FIELDS`) as args, and
        the simulated totals (:data:`TRACE_TOTALS`, ``sim_`` prefix) on the partition span."""
        times = [tracer.clock()]
        out = self._run(inputs, times)
        stats = self.last_run_stats or {}
        costs = stats.get("ops") or [{}] * len(self._steps)
        for step, cost, start, end in zip(self._steps, costs, times, times[1:]):
            tracer.op(step.name, start, end, step.op_type, **{k: cost[k] for k in TRACE_FIELDS if k in cost})
        totals = stats.get("totals") or {}
        tracer.args.update({f"sim_{k}": totals[k] for k in TRACE_TOTALS if k in totals})
        tracer.args.update(hw=self.hw.name, dtype=self.dtype)
        return out

    def _run(self, inputs: Mapping[str, np.ndarray], times: list[int] | None) -> dict[str, np.ndarray]:
        """Run; with ``times``, append the trace clock after each kernel step."""
        # IEEE semantics, as on the hardware: overflow gives inf, inf and NaN propagate, nothing traps
        with np.errstate(all="ignore"):
            env, shapes = self._execute(inputs, times)
        if shapes is not None:
            self.last_run_stats = self._stats(shapes)
            self._stats_key = tuple(inputs[n].shape for n in self.input_names)
        out = {}
        for n in self.output_names:
            v = env[n]
            # never hand back a constant or a view of a caller's input (the caller owns outputs)
            if n in self.constants or any(np.may_share_memory(v, inputs[i]) for i in self.input_names):
                v = np.array(v, copy=True)
            out[n] = v
        return out

    def _execute(self, inputs: Mapping[str, np.ndarray], times: list[int] | None = None) -> tuple[dict, list | None]:
        """Run the steps; returns the value environment and, when the input
        shapes changed since the last stats, every step's (input, output)
        shapes. With ``times``, the trace clock is appended after each step."""
        fp16 = self.dtype == "fp16"
        env: dict[str, np.ndarray] = dict(self.constants)
        for name in self.input_names:
            env[name] = _round_fp16(inputs[name]) if fp16 else inputs[name]
        key = tuple(env[n].shape for n in self.input_names)
        shapes: list[tuple] | None = [] if key != self._stats_key else None  # stats depend on shapes only
        for step, release in zip(self._steps, self._release):
            xs = [env[x] if x else None for x in step.inputs]
            outs = step.fn(xs)
            for name, value in zip(step.outputs, outs):
                if name:
                    env[name] = _round_fp16(value) if fp16 else value
            if shapes is not None:
                shapes.append(self._operands(step, xs, env))
            for name in release:
                env.pop(name, None)
            if times is not None:
                times.append(OpTracer.clock())
        return env, shapes

    def _operands(self, step: _Step, xs: list, env: dict) -> tuple:
        """(input shapes, output shapes, input widths, output widths) of one
        step: widths are stored bytes per element, None for the compute
        dtype's (see ``npu_sim.workload.element_bytes``)."""
        outs = [env[o] if o else None for o in step.outputs]

        def width(name: str, v) -> float | None:
            return None if v is None else self._stored.get(name) or element_bytes(v.dtype)

        return (
            tuple(None if x is None else x.shape for x in xs),
            tuple(None if v is None else v.shape for v in outs),
            tuple(width(n, x) for n, x in zip(step.inputs, xs)),
            tuple(width(n, v) for n, v in zip(step.outputs, outs)),
        )

    def _stats(self, shapes: list[tuple]) -> dict[str, Any]:
        costs = []
        for step, (ins, outs, in_b, out_b) in zip(self._steps, shapes):
            compute = self._int_compute if step.group or step.op_type in INTEGER_MAC_OPS else None
            desc = OpDesc(step.name, step.op_type, step.attrs, ins, outs, step.const_slots, in_b, out_b, compute)
            costs.append(op_cost(desc, self.hw, self._dt))
        return SimulationReport(self.hw, self.dtype, costs).to_dict()

    def serialize(self) -> bytes:
        """The partition's ONNX bytes: the schedule is rebuilt from them
        deterministically (nothing else is worth caching)."""
        return self._model.SerializeToString()

    @classmethod
    def load(cls, artifact: bytes, hw: HardwareConfig, dtype: str) -> "ReferenceExecutable":
        """The executable whose :meth:`serialize` gave ``artifact`` (rebuilt
        from the partition's ONNX bytes) on ``hw`` in ``dtype``.

        Raises:
            google.protobuf.message.DecodeError: ``artifact`` is not an ONNX model.
        """
        model = onnx.ModelProto()
        model.ParseFromString(artifact)
        return cls(model, hw, dtype)
