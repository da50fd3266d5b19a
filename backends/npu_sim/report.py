"""A simulation's per-op costs and totals: text table, JSON, CSV, roofline PNG."""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from tabulate import tabulate

from unified.backends.npu_sim.costmodel import OpCost
from unified.backends.npu_sim.hardware import HardwareConfig

__all__ = ["SimulationReport", "SCHEMA_VERSION"]

SCHEMA_VERSION = 1
"""Version of the JSON layout written by :meth:`SimulationReport.to_dict`."""


@dataclass(frozen=True)
class SimulationReport:
    """Costs of every op of one inference.

    Attributes:
        hw: the hardware simulated.
        dtype: ``"int8"``, ``"fp16"`` or ``"fp32"``.
        ops: one :class:`OpCost` per node, in execution order.
    """

    hw: HardwareConfig
    dtype: str
    ops: list[OpCost]

    # --- totals --------------------------------------------------------------

    @property
    def cycles(self) -> int:
        """Total cycles of one inference (ops run one after another)."""
        return sum(o.cycles for o in self.ops)

    @property
    def latency_s(self) -> float:
        """Seconds per inference at ``hw.clock_hz``."""
        return self.cycles / self.hw.clock_hz

    @property
    def energy_pj(self) -> float:
        return sum(o.energy_pj for o in self.ops)

    def totals(self) -> dict[str, Any]:
        """Totals of one inference: cycles, stalls, MACs, DRAM bytes (and the
        weights' stored bytes, ``weight_bytes``), energy
        (pJ and mJ), latency (s), inferences/s, array utilization (0..1)."""
        cycles = self.cycles
        macs = sum(o.macs for o in self.ops)
        return {
            "cycles": cycles,
            "compute_cycles": sum(o.compute_cycles for o in self.ops),
            "stall_cycles": sum(o.stall_cycles for o in self.ops),
            "macs": macs,
            "vector_ops": sum(o.vector_ops for o in self.ops),
            "dram_read_bytes": sum(o.dram_read_bytes for o in self.ops),
            "dram_write_bytes": sum(o.dram_write_bytes for o in self.ops),
            "compulsory_bytes": sum(o.compulsory_bytes for o in self.ops),
            "weight_bytes": sum(o.weight_bytes for o in self.ops),
            "energy_pj": self.energy_pj,
            "energy_mj_per_inference": self.energy_pj * 1e-9,
            "latency_s": self.latency_s,
            "inferences_per_s": (1.0 / self.latency_s) if cycles else math.inf,
            "utilization": macs / (cycles * self.hw.pes) if cycles else 0.0,
        }

    # --- outputs -------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict: schema version, hardware, dtype, per-op costs, totals."""
        totals = self.totals()
        if math.isinf(totals["inferences_per_s"]):
            totals["inferences_per_s"] = None
        return {
            "schema_version": SCHEMA_VERSION,
            "hardware": self.hw.to_dict(),
            "dtype": self.dtype,
            "ops": [o.to_dict() for o in self.ops],
            "totals": totals,
        }

    def to_json(self, indent: int | None = 1) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def to_csv(self) -> str:
        """One row per op, every :class:`OpCost` field as a column."""
        names = [f.name for f in fields(OpCost)]
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(names)
        for o in self.ops:
            writer.writerow([getattr(o, n) for n in names])
        return buf.getvalue()

    def table(self, max_rows: int | None = None) -> str:
        """Human-readable per-op table and totals (cycles, stalls,
        utilization %, DRAM KiB, energy µJ)."""
        head = ("op", "type", "GEMM MxNxK", "cycles", "stalls", "util %", "DRAM KiB", "energy uJ")
        rows = []
        busy = [o for o in self.ops if o.unit != "none"]  # layout-only ops cost nothing (they are in the CSV)
        shown = busy if max_rows is None else busy[:max_rows]
        for o in shown:
            rows.append(
                (
                    o.name[:40],
                    o.op_type,
                    o.gemm or "-",
                    f"{o.cycles:,}",
                    f"{o.stall_cycles:,}",
                    f"{100 * o.utilization:.1f}" if o.macs else "-",
                    f"{o.dram_bytes / 1024:,.1f}",
                    f"{o.energy_pj * 1e-6:,.3f}",
                )
            )
        align = ("left",) * 3 + ("right",) * (len(head) - 3)
        lines = tabulate(rows, head, tablefmt="simple", disable_numparse=True, colalign=align).splitlines()
        hidden = len(self.ops) - len(shown)
        if hidden:
            lines.append(f"... {hidden} more ops not shown ({len(self.ops) - len(busy)} layout-only, no cost); see the CSV")
        t = self.totals()
        lines += [
            "",
            f"hardware: {self.hw.summary()}; dtype {self.dtype}",
            f"total: {t['cycles']:,} cycles ({t['stall_cycles']:,} stall), {t['macs']:,} MACs, "
            f"array utilization {100 * t['utilization']:.1f} %",
            f"latency {t['latency_s'] * 1e3:.4f} ms at {self.hw.clock_hz / 1e6:g} MHz -> "
            f"{t['inferences_per_s']:,.1f} inferences/s",
            f"DRAM {(t['dram_read_bytes'] + t['dram_write_bytes']) / 2**20:,.2f} MiB "
            f"(compulsory {t['compulsory_bytes'] / 2**20:,.2f} MiB, weights {t['weight_bytes'] / 2**20:,.2f} MiB), "
            f"energy {t['energy_mj_per_inference']:.4f} mJ/inference",
        ]
        return "\n".join(lines)

    def roofline(self, path: str | Path, title: str | None = None) -> Path:
        """Draw a roofline chart (PNG) with every op that moves data as a point.

        x: operational intensity (ops per DRAM byte), y: achieved ops/cycle;
        ceilings: the array peak (2 x PEs), the vector peak (lanes) and, with
        finite bandwidth, the DRAM slope. Needs matplotlib (imported here).

        Raises:
            ImportError: matplotlib is not installed (``pip install unified[sim]``).
        """
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        path = Path(path)
        pts = [o for o in self.ops if o.dram_bytes and o.cycles]
        fig, ax = plt.subplots(figsize=(7.5, 5))
        xs = [o.intensity for o in pts] or [1.0]
        lo, hi = min(xs) / 2, max(xs) * 2
        peak_array, peak_vec = 2.0 * self.hw.pes, float(self.hw.vector_lanes)
        bw = self.hw.dram_bytes_per_cycle
        grid = [lo * (hi / lo) ** (i / 200) for i in range(201)]
        for peak, label in ((peak_array, "array peak"), (peak_vec, "vector peak")):
            ys = [peak if math.isinf(bw) else min(peak, x * bw) for x in grid]
            ax.plot(grid, ys, "--", lw=1, label=f"{label} {peak:g} ops/cycle")
        colors = {"array": "tab:blue", "vector": "tab:orange"}
        for unit in ("array", "vector"):
            sel = [o for o in pts if o.unit == unit]
            if sel:
                ax.scatter(
                    [o.intensity for o in sel],
                    [o.ops / o.cycles for o in sel],
                    s=14,
                    c=colors[unit],
                    label=f"{unit} ops ({len(sel)})",
                )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("operational intensity (ops / DRAM byte)")
        ax.set_ylabel("achieved ops / cycle")
        ax.set_title(title or f"roofline: {self.hw.name}, {self.dtype}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return path

    def write(self, out_dir: str | Path, stem: str = "simulation", roofline: bool = True) -> dict[str, Path]:
        """Write ``<stem>.json``, ``<stem>.csv`` and (optionally) ``<stem>_roofline.png``.

        Returns:
            kind (``"json"``, ``"csv"``, ``"png"``) -> path written.
        """
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = {"json": out / f"{stem}.json", "csv": out / f"{stem}.csv"}
        paths["json"].write_text(self.to_json() + "\n")
        paths["csv"].write_text(self.to_csv())
        if roofline:
            paths["png"] = self.roofline(out / f"{stem}_roofline.png")
        return paths
