"""``npu-sim``: a simulated systolic-array accelerator (the hardware model
and cost model behind the ``reference`` delegate and ``unified simulate``).

* :mod:`.hardware` — :class:`HardwareConfig` (array, dataflow, SRAM, DRAM,
  clock, dtypes, vector unit, energy per action), TOML presets
  ``scalesim-32``, ``ethos-u65``, ``edgetpu``.
* :mod:`.costmodel` — SCALE-Sim v3 compute cycles per fold, SRAM tiling and
  DRAM traffic, stalls, energy, roofline numbers for one op.
* :mod:`.workload` — ONNX op -> GEMM view / vector work; whole-model
  :func:`simulate_model`.
* :mod:`.report` — :class:`SimulationReport`: table, JSON, CSV, roofline PNG.
* :mod:`.cli` — ``unified simulate``.

Registered through the ``unified`` entry point ``npu_sim``: the
``npu-sim`` backend and the ``simulate`` command.
"""

from __future__ import annotations

from unified.backend import Backend, BackendInfo
from unified.backends.npu_sim.costmodel import Gemm, OpCost, gemm_cycles
from unified.backends.npu_sim.hardware import (
    DTYPES,
    HardwareConfig,
    HardwareConfigError,
    load_hardware,
    preset_names,
)
from unified.backends.npu_sim.report import SimulationReport
from unified.backends.npu_sim.workload import OpDesc, op_cost, simulate_model
from unified.delegate import Availability
from unified.hookspecs import hookimpl

__all__ = [
    "NpuSimBackend",
    "HardwareConfig",
    "HardwareConfigError",
    "DTYPES",
    "load_hardware",
    "preset_names",
    "Gemm",
    "gemm_cycles",
    "OpCost",
    "OpDesc",
    "op_cost",
    "simulate_model",
    "SimulationReport",
]

_NUMPY_DTYPES = {"int8": "int8", "fp16": "float16", "fp32": "float32"}


class NpuSimBackend(Backend):
    """The simulated NPU as a backend; ``info()`` describes one preset.

    Args:
        hw: preset name, TOML path or :class:`HardwareConfig` (default
            ``scalesim-32``).
    """

    name = "npu-sim"

    def __init__(self, hw: "str | HardwareConfig" = "scalesim-32") -> None:
        self._hw = hw

    def availability(self) -> Availability:
        return Availability(True, "simulated: always available", "1")

    def info(self) -> BackendInfo:
        hw = load_hardware(self._hw)
        bw = hw.dram_bytes_per_cycle
        return BackendInfo(
            name=self.name,
            kind="simulator",
            description=f"simulated NPU, {hw.summary()}",
            dtypes=tuple(_NUMPY_DTYPES[d] for d in hw.dtypes),
            memory_bytes=hw.sram_bytes,
            peak_ops_per_s=2.0 * hw.peak_macs_per_s,
            bandwidth_bytes_per_s=None if bw == float("inf") else bw * hw.clock_hz,
        )


@hookimpl
def unified_backends() -> list[Backend]:
    return [NpuSimBackend()]


@hookimpl
def unified_cli_commands() -> list:
    from unified.backends.npu_sim.cli import simulate_command

    return [simulate_command()]
