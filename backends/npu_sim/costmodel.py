"""Cycle, traffic and energy accounting of one operator on the simulated NPU.

Two execution units:

* **The systolic array** runs every MAC-heavy op through its GEMM view
  (:class:`Gemm`: ``M`` output rows, ``N`` output columns, ``K`` reduction
  length, ``groups`` independent GEMMs run back to back). Compute cycles are
  those SCALE-Sim v3 counts (``scalesim/compute/systolic_compute_{os,ws,is}.py``
  and ``memory/double_buffered_scratchpad_mem.py``), with ``R x C`` the array:

  ==========  =========  =========  ====  ===================================
  dataflow    rows map   cols map   T     cycles per fold
  ==========  =========  =========  ====  ===================================
  OS          M          N          K     ``T + R + C - 2``
  WS          K          N          M     ``2R + C + T - 2``
  IS          K          M          N     ``2R + C + T - 2``
  ==========  =========  =========  ====  ===================================

  ``folds = ceil(rows_map / R) * ceil(cols_map / C)``; one GEMM takes
  ``folds * cycles_per_fold - 1`` cycles (SCALE-Sim reports the index of the
  last OFMAP write, 0-based). Utilization = MACs / (cycles x R x C), as
  SCALE-Sim's "Overall Util".

* **The vector unit** (``vector_lanes`` elements per cycle) runs every other
  op: ``cycles = ceil(element_ops / lanes)``.

Memory: every op reads its inputs from DRAM and writes its outputs to DRAM
(layer-by-layer execution, as SCALE-Sim). Each SRAM is double-buffered. An
operand that fits its SRAM entirely is fetched once (compulsory traffic);
otherwise it is re-fetched once per pass of the loop that does not index it
(see :func:`array_cost`). DRAM traffic is therefore never below compulsory
traffic and equals it when the working set (ifmap, filter, and the output at
accumulator width) fits. With finite bandwidth ``B`` the transfers overlap
compute except the first wavefront in and the last out::

    latency = max(compute, ceil(traffic / B)) + ceil(exposed / B)

with ``exposed = (R + C) * word + C * out_word`` bytes for the array and
``lanes * (word + out_word)`` for the vector unit; ``stalls = latency -
compute``. Unlimited bandwidth (SCALE-Sim's CALC mode) never stalls.

Energy = sum of actions x per-action energy (:class:`EnergyTable`): MACs,
vector element ops, SRAM bytes read and written, DRAM bytes read and written.

Roofline: ``ops`` counts 2 per MAC (1 per vector element op); intensity =
ops / DRAM bytes; attainable = min(peak, intensity x B) ops/cycle.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from unified.backends.npu_sim.hardware import DataType, HardwareConfig

__all__ = ["Gemm", "ComputeCycles", "OpCost", "gemm_cycles", "array_cost", "vector_cost", "free_cost"]


@dataclass(frozen=True)
class Gemm:
    """The GEMM view of a MAC-heavy op: ``groups`` x ``(M, K) @ (K, N)``.

    Attributes:
        m: output rows (output pixels x batch), per group.
        n: output columns (filters), per group.
        k: reduction length (R x S x C / groups for a convolution), per group.
        groups: independent GEMMs executed back to back (grouped and
            depthwise convolution, batched MatMul).
    """

    m: int
    n: int
    k: int
    groups: int = 1

    @property
    def macs(self) -> int:
        return self.groups * self.m * self.n * self.k

    def __str__(self) -> str:
        g = f"{self.groups}x" if self.groups > 1 else ""
        return f"{g}{self.m}x{self.n}x{self.k}"


@dataclass(frozen=True)
class ComputeCycles:
    """Array compute of one GEMM view (no memory effects).

    Attributes:
        cycles: compute cycles, all groups.
        folds: folds per group.
        mapping_efficiency: mean fraction of PEs mapped per fold (0..1).
        utilization: MACs / (cycles x PEs) (0..1).
    """

    cycles: int
    folds: int
    mapping_efficiency: float
    utilization: float


def gemm_cycles(g: Gemm, rows: int, cols: int, dataflow: str) -> ComputeCycles:
    """Compute cycles of a GEMM view on an ``rows x cols`` array (see module doc).

    Args:
        g: the GEMM view; all dims >= 1.
        rows / cols: array height R and width C.
        dataflow: ``"os"``, ``"ws"`` or ``"is"``.

    Returns:
        :class:`ComputeCycles`; for a GEMM with a zero dim, zero cycles.
    """
    if g.m <= 0 or g.n <= 0 or g.k <= 0 or g.groups <= 0:
        return ComputeCycles(0, 0, 0.0, 0.0)
    if dataflow == "os":
        sr, sc, t, per_fold_extra = g.m, g.n, g.k, rows + cols - 2
    elif dataflow == "ws":
        sr, sc, t, per_fold_extra = g.k, g.n, g.m, 2 * rows + cols - 2
    elif dataflow == "is":
        sr, sc, t, per_fold_extra = g.k, g.m, g.n, 2 * rows + cols - 2
    else:
        raise ValueError(f"dataflow {dataflow!r}; expected 'os', 'ws' or 'is'")
    folds = -(-sr // rows) * -(-sc // cols)
    per_group = folds * (t + per_fold_extra) - 1
    cycles = g.groups * per_group
    mapping = (sr * sc) / (folds * rows * cols)
    return ComputeCycles(cycles, folds, mapping, g.macs / (cycles * rows * cols))


@dataclass(frozen=True)
class OpCost:
    """Simulated cost of one operator. Cycles are clock cycles, bytes are
    bytes, energy is picojoules.

    Attributes:
        name / op_type: the node.
        unit: ``"array"``, ``"vector"`` or ``"none"`` (layout-only ops).
        gemm: the GEMM view (``"MxNxK"``, ``"GxMxNxK"`` when grouped), "" otherwise.
        macs: multiply-accumulates on the array.
        vector_ops: element operations on the vector unit.
        compute_cycles: cycles of the busy unit.
        stall_cycles: cycles waiting for DRAM.
        cycles: ``compute_cycles + stall_cycles``.
        utilization: array MACs / (cycles x PEs), 0..1 (0 for vector ops).
        mapping_efficiency: mean fraction of PEs mapped per fold, 0..1.
        dram_read_bytes / dram_write_bytes: DRAM traffic.
        compulsory_bytes: each input read once plus each output written once.
        fits: the working set fits the SRAMs (traffic == compulsory).
        sram_read_bytes / sram_write_bytes: SRAM accesses.
        energy_pj: total energy.
        ops: 2 x MACs + vector ops (roofline numerator).
        intensity: ops per DRAM byte (0 when no traffic).
        peak_ops_per_cycle / attainable_ops_per_cycle: roofline ceiling and
            the bound at this op's intensity.
        weight_bytes: stored bytes of the MAC op's weights (filter, bias and
            any quantization scales / zero points), each read once; part of
            ``compulsory_bytes``; 0 for vector ops.
    """

    name: str
    op_type: str
    unit: str
    gemm: str
    macs: int
    vector_ops: int
    compute_cycles: int
    stall_cycles: int
    cycles: int
    utilization: float
    mapping_efficiency: float
    dram_read_bytes: int
    dram_write_bytes: int
    compulsory_bytes: int
    fits: bool
    sram_read_bytes: int
    sram_write_bytes: int
    energy_pj: float
    ops: int
    intensity: float
    peak_ops_per_cycle: float
    attainable_ops_per_cycle: float
    weight_bytes: int = 0

    @property
    def dram_bytes(self) -> int:
        return self.dram_read_bytes + self.dram_write_bytes

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict of every field."""
        return asdict(self)


def _ceil_div(a: float, b: float) -> int:
    return int(math.ceil(a / b)) if a > 0 else 0


def _finish(
    name: str,
    op_type: str,
    unit: str,
    hw: HardwareConfig,
    dt: DataType,
    *,
    gemm: str = "",
    macs: int = 0,
    vector_ops: int = 0,
    compute: int = 0,
    mapping: float = 0.0,
    reads: int = 0,
    writes: int = 0,
    compulsory: int = 0,
    sram_reads: int = 0,
    sram_writes: int = 0,
    exposed_bytes: int = 0,
    peak: float = 0.0,
    weight_bytes: int = 0,
) -> OpCost:
    """The :class:`OpCost` of one op from its work and traffic: latency
    (roofline-overlapped compute and DRAM, plus the exposed pipeline fill),
    energy and the roofline numbers. The defaults are those of a free op."""
    bw = hw.dram_bytes_per_cycle
    traffic = reads + writes
    if math.isinf(bw) or traffic == 0:
        latency = compute
    else:
        latency = max(compute, _ceil_div(traffic, bw)) + _ceil_div(min(exposed_bytes, traffic), bw)
    e = hw.energy
    energy = (
        macs * e.mac[dt.name]
        + vector_ops * e.vector_op[dt.name]
        + sram_reads * e.sram_read
        + sram_writes * e.sram_write
        + reads * e.dram_read
        + writes * e.dram_write
    )
    ops = 2 * macs + vector_ops
    intensity = ops / traffic if traffic else 0.0
    attainable = peak if math.isinf(bw) or not traffic else min(peak, intensity * bw)
    return OpCost(
        name=name, op_type=op_type, unit=unit, gemm=gemm, macs=macs, vector_ops=vector_ops,
        compute_cycles=compute, stall_cycles=latency - compute, cycles=latency,
        utilization=macs / (latency * hw.pes) if latency and macs else 0.0, mapping_efficiency=mapping,
        dram_read_bytes=reads, dram_write_bytes=writes, compulsory_bytes=compulsory, fits=traffic == compulsory,
        sram_read_bytes=sram_reads, sram_write_bytes=sram_writes, energy_pj=energy,
        ops=ops, intensity=intensity, peak_ops_per_cycle=peak, attainable_ops_per_cycle=attainable,
        weight_bytes=weight_bytes,
    )


def _array_passes(
    g: Gemm, hw: HardwareConfig, dt: DataType, i_b: float, f_b: float
) -> tuple[int, int, float, int, int]:
    """Per-group DRAM passes and SRAM accesses of ``g`` under ``hw.dataflow``
    (the rules are in :func:`array_cost`'s docstring).

    Returns:
        ``(ifmap passes, filter passes, partial-sum spill bytes, SRAM read
        bytes, SRAM write bytes)``, all per group.
    """
    r, c, w, acc = hw.rows, hw.cols, dt.bytes, dt.acc_bytes
    psum = g.m * g.n * acc
    m_tiles, n_tiles, k_tiles = -(-g.m // r), -(-g.n // c), -(-g.k // r)
    i_fit, f_fit = i_b <= hw.ifmap_sram_bytes, f_b <= hw.filter_sram_bytes
    if hw.dataflow == "os":
        i_pass = 1 if i_fit else n_tiles
        f_pass = 1 if f_fit or g.k * c * w <= hw.filter_sram_bytes / 2 else m_tiles
        return i_pass, f_pass, 0.0, g.m * g.k * n_tiles * w + g.k * g.n * m_tiles * w, g.m * g.n * w
    if hw.dataflow == "ws":
        i_pass, f_pass = (1 if i_fit else n_tiles), 1
        tile = g.m * min(g.n, c) * acc
        sram_r = g.m * g.k * n_tiles * w + g.k * g.n * w
    else:  # is
        m_tiles = -(-g.m // c)
        i_pass, f_pass = 1, (1 if f_fit else m_tiles)
        tile = min(g.m, c) * g.n * acc
        sram_r = g.m * g.k * w + g.k * g.n * m_tiles * w
    held = psum <= hw.ofmap_sram_bytes or tile <= hw.ofmap_sram_bytes / 2
    spill = 0.0 if held else 2 * (k_tiles - 1) * psum
    return i_pass, f_pass, spill, sram_r + (k_tiles - 1) * psum, k_tiles * psum


def array_cost(
    name: str,
    op_type: str,
    g: Gemm,
    hw: HardwareConfig,
    dt: DataType,
    *,
    ifmap_bytes: int | None = None,
    filter_bytes: int | None = None,
    ofmap_bytes: int | None = None,
    extra_vector_ops: int = 0,
    weight_bytes: int = 0,
) -> OpCost:
    """Cost of a MAC-heavy op on the systolic array.

    Args:
        name / op_type: the node, for the report.
        g: its GEMM view.
        hw / dt: the hardware and the dtype it computes in.
        ifmap_bytes: DRAM bytes of the data input (the tensor, not its
            im2col expansion); default ``groups x M x K x word``.
        filter_bytes: weight (and bias) bytes; default ``groups x K x N x word``.
        ofmap_bytes: output bytes; default ``groups x M x N x word``.
        extra_vector_ops: element ops the vector unit adds (e.g. col2im of
            ConvTranspose); they overlap with the array.
        weight_bytes: the part of ``filter_bytes`` that is constant weights
            (reported as :attr:`OpCost.weight_bytes`; 0 when the second
            operand is an activation, e.g. attention's ``Q @ K^T``).

    Traffic per dataflow, with ``I``, ``F``, ``O`` the per-group bytes, ``P``
    the per-group partial sums at accumulator width (``M x N x acc``):

    * OS (loop N tiles, then M tiles; sums stay in the PEs): ifmap ``I`` once
      if it fits its SRAM, else once per N tile; filter ``F`` once if it fits
      or if one ``K x C`` column tile fits half the filter SRAM, else once per
      M tile; ofmap ``O`` once.
    * WS (loop N tiles, then K tiles, streaming M rows): filter ``F`` once;
      ifmap ``I`` once if it fits, else once per N tile; partial sums stay in
      the ofmap SRAM if ``P`` fits it or one ``M x C`` tile fits half of it,
      else every K tile after the first writes and reads them back
      (``2 x (K tiles - 1) x P``) before the final ``O``.
    * IS (loop M tiles, then K tiles, streaming N filters): ifmap ``I`` once;
      filter ``F`` once if it fits, else once per M tile; partial sums as WS
      with one ``C x N`` tile.
    """
    w = dt.bytes
    comp = gemm_cycles(g, hw.rows, hw.cols, hw.dataflow)
    G = g.groups
    i_b = (ifmap_bytes if ifmap_bytes is not None else G * g.m * g.k * w) / G
    f_b = (filter_bytes if filter_bytes is not None else G * g.k * g.n * w) / G
    o_b = (ofmap_bytes if ofmap_bytes is not None else G * g.m * g.n * w) / G
    i_pass, f_pass, spill, sram_r, sram_w = _array_passes(g, hw, dt, i_b, f_b)
    reads = G * (i_b * i_pass + f_b * f_pass + spill / 2)
    writes = G * (o_b + spill / 2)
    # DRAM fills are SRAM writes; DRAM write-backs are SRAM reads
    return _finish(
        name, op_type, "array", hw, dt,
        gemm=str(g), macs=g.macs, vector_ops=extra_vector_ops,
        compute=max(comp.cycles, _ceil_div(extra_vector_ops, hw.vector_lanes)),
        mapping=comp.mapping_efficiency,
        reads=int(round(reads)), writes=int(round(writes)), compulsory=int(round(G * (i_b + f_b + o_b))),
        sram_reads=int(round(G * sram_r + writes)), sram_writes=int(round(G * sram_w + reads)),
        exposed_bytes=(hw.rows + hw.cols) * w + hw.cols * w, peak=2.0 * hw.pes,
        weight_bytes=weight_bytes,
    )


def vector_cost(
    name: str,
    op_type: str,
    element_ops: int,
    read_bytes: int,
    write_bytes: int,
    hw: HardwareConfig,
    dt: DataType,
) -> OpCost:
    """Cost of a non-MAC op on the vector unit.

    Args:
        element_ops: element operations (see ``workload.VECTOR_OPS_PER_ELEMENT``).
        read_bytes / write_bytes: its inputs and outputs (compulsory traffic:
            a vector op streams each operand once).
    """
    return _finish(
        name, op_type, "vector", hw, dt,
        vector_ops=element_ops, compute=_ceil_div(element_ops, hw.vector_lanes),
        reads=read_bytes, writes=write_bytes, compulsory=read_bytes + write_bytes,
        sram_reads=read_bytes + write_bytes, sram_writes=read_bytes + write_bytes,
        exposed_bytes=hw.vector_lanes * 2 * dt.bytes, peak=float(hw.vector_lanes),
    )


def free_cost(name: str, op_type: str, hw: HardwareConfig, dt: DataType) -> OpCost:
    """A layout-only op (Reshape, Flatten, Squeeze, ...): no cycles, no traffic."""
    return _finish(name, op_type, "none", hw, dt)
