"""The simulated accelerator's hardware description: a frozen config, loaded
from TOML or from a named preset.

A :class:`HardwareConfig` holds everything the cost model reads: the
systolic array (rows x cols processing elements, dataflow OS/WS/IS), the three
double-buffered SRAMs (ifmap, filter, ofmap; bytes), the DRAM interface
(bytes per cycle, or unlimited), the clock (Hz), the dtypes the array computes
in, the vector unit that runs non-MAC ops (lanes = elements per cycle), and
the energy of each action (picojoules, :class:`EnergyTable`).

TOML layout (every preset in ``presets/`` is one)::

    name = "scalesim-32"
    description = "..."
    clock_hz = 1e9
    dtypes = ["int8", "fp16", "fp32"]

    [array]
    rows = 32
    cols = 32
    dataflow = "os"            # "os", "ws" or "is"

    [sram]                     # KiB (1024 bytes)
    ifmap_kib = 64
    filter_kib = 64
    ofmap_kib = 64

    [dram]
    bytes_per_cycle = "unlimited"   # or a positive number

    [vector]
    lanes = 32

    [energy_pj]                # picojoules per action
    mac_int8 = 0.3
    ...

    [sources]                  # where each figure comes from (free text)
    array = "..."
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

from unified.errors import UnifiedError

__all__ = [
    "DTYPES",
    "DataType",
    "DATAFLOWS",
    "EnergyTable",
    "HardwareConfig",
    "HardwareConfigError",
    "load_hardware",
    "preset_names",
]

DATAFLOWS = ("os", "ws", "is")
"""Output stationary, weight stationary, input stationary (SCALE-Sim's names)."""


class HardwareConfigError(UnifiedError, ValueError):
    """A hardware config (preset name, TOML file or field) is invalid; the
    message names the field, what was given and what is accepted."""


@dataclass(frozen=True)
class DataType:
    """How the array computes in one dtype.

    Attributes:
        name: ``"int8"``, ``"fp16"`` or ``"fp32"``.
        bytes: bytes per stored element (operands and outputs in SRAM/DRAM).
        acc_bytes: bytes per accumulator element (partial sums that spill).
        accumulator: accumulator type, ``"int32"`` or ``"fp32"``.
    """

    name: str
    bytes: int
    acc_bytes: int
    accumulator: str


DTYPES: dict[str, DataType] = {
    "int8": DataType("int8", 1, 4, "int32"),
    "fp16": DataType("fp16", 2, 4, "fp32"),
    "fp32": DataType("fp32", 4, 4, "fp32"),
}


@dataclass(frozen=True)
class EnergyTable:
    """Energy per action, picojoules.

    Attributes:
        mac: per multiply-accumulate, by dtype name (int8 multiply + int32
            add; fp16 multiply + fp32 add; fp32 multiply + fp32 add).
        vector_op: per vector-unit element operation, by dtype name.
        sram_read / sram_write: per byte read from / written to an SRAM.
        dram_read / dram_write: per byte read from / written to DRAM.
        sources: where the figures come from, by field name.
    """

    mac: Mapping[str, float]
    vector_op: Mapping[str, float]
    sram_read: float
    sram_write: float
    dram_read: float
    dram_write: float
    sources: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class HardwareConfig:
    """One simulated accelerator. Frozen; derive variants with :meth:`with_`.

    Attributes:
        name: preset or file name, for reports.
        rows / cols: systolic array height and width, processing elements.
        dataflow: ``"os"``, ``"ws"`` or ``"is"``.
        ifmap_sram_bytes / filter_sram_bytes / ofmap_sram_bytes: SRAM sizes,
            bytes; each is double-buffered (half is filled while the other
            half is computed on).
        dram_bytes_per_cycle: DRAM interface bandwidth, bytes per clock
            cycle; ``math.inf`` models unlimited bandwidth (SCALE-Sim's
            ``InterfaceBandwidth: CALC`` mode).
        clock_hz: clock frequency, Hz (cycles -> seconds).
        dtypes: dtype names the array computes in (keys of :data:`DTYPES`).
        vector_lanes: vector-unit width, elements per cycle.
        energy: :class:`EnergyTable`.
        description: one line for humans.
        sources: where the non-energy figures come from.
    """

    name: str
    rows: int
    cols: int
    dataflow: str
    ifmap_sram_bytes: int
    filter_sram_bytes: int
    ofmap_sram_bytes: int
    dram_bytes_per_cycle: float
    clock_hz: float
    dtypes: tuple[str, ...]
    vector_lanes: int
    energy: EnergyTable
    description: str = ""
    sources: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check(self)

    @property
    def pes(self) -> int:
        """Processing elements (= MACs per cycle at full utilization)."""
        return self.rows * self.cols

    @property
    def peak_macs_per_s(self) -> float:
        """rows x cols MACs per cycle at the clock."""
        return self.pes * self.clock_hz

    @property
    def sram_bytes(self) -> int:
        """Total on-chip SRAM, bytes."""
        return self.ifmap_sram_bytes + self.filter_sram_bytes + self.ofmap_sram_bytes

    def dtype(self, name: str) -> DataType:
        """The :class:`DataType` called ``name``.

        Raises:
            HardwareConfigError: unknown or not supported by this config.
        """
        if name not in DTYPES:
            raise HardwareConfigError(f"unknown dtype {name!r}; expected one of {list(DTYPES)}")
        if name not in self.dtypes:
            raise HardwareConfigError(
                f"hardware '{self.name}' does not compute in {name}; it supports {list(self.dtypes)}"
            )
        return DTYPES[name]

    def with_(self, **changes: Any) -> "HardwareConfig":
        """A copy with fields changed, e.g. ``hw.with_(rows=16, cols=64)``.

        Raises:
            HardwareConfigError: an unknown field or an invalid value.
        """
        known = set(self.__dataclass_fields__)
        unknown = sorted(set(changes) - known)
        if unknown:
            raise HardwareConfigError(f"unknown hardware field(s) {unknown}; known: {sorted(known)}")
        return replace(self, **changes)

    def summary(self) -> str:
        """One line: array, dataflow, SRAM, bandwidth, clock."""
        bw = "unlimited" if math.isinf(self.dram_bytes_per_cycle) else f"{self.dram_bytes_per_cycle:g} B/cycle"
        kib = [b // 1024 for b in (self.ifmap_sram_bytes, self.filter_sram_bytes, self.ofmap_sram_bytes)]
        return (
            f"{self.name}: {self.rows}x{self.cols} {self.dataflow.upper()}, SRAM {kib[0]}/{kib[1]}/{kib[2]} KiB, "
            f"DRAM {bw}, {self.clock_hz / 1e6:g} MHz, vector {self.vector_lanes} lanes"
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe description (unlimited bandwidth as the string ``"unlimited"``)."""
        bw = "unlimited" if math.isinf(self.dram_bytes_per_cycle) else self.dram_bytes_per_cycle
        return {
            "name": self.name,
            "rows": self.rows,
            "cols": self.cols,
            "dataflow": self.dataflow,
            "ifmap_sram_bytes": self.ifmap_sram_bytes,
            "filter_sram_bytes": self.filter_sram_bytes,
            "ofmap_sram_bytes": self.ofmap_sram_bytes,
            "dram_bytes_per_cycle": bw,
            "clock_hz": self.clock_hz,
            "dtypes": list(self.dtypes),
            "vector_lanes": self.vector_lanes,
        }


def _check(hw: HardwareConfig) -> None:
    def positive_int(name: str) -> None:
        value = getattr(hw, name)
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise HardwareConfigError(f"hardware '{hw.name}': {name} = {value!r}; expected a positive integer")

    for name in ("rows", "cols", "ifmap_sram_bytes", "filter_sram_bytes", "ofmap_sram_bytes", "vector_lanes"):
        positive_int(name)
    if hw.dataflow not in DATAFLOWS:
        raise HardwareConfigError(f"hardware '{hw.name}': dataflow {hw.dataflow!r}; expected one of {list(DATAFLOWS)}")
    if not (hw.dram_bytes_per_cycle > 0):
        raise HardwareConfigError(
            f"hardware '{hw.name}': dram bytes_per_cycle = {hw.dram_bytes_per_cycle!r}; "
            "expected a positive number or \"unlimited\""
        )
    if not (hw.clock_hz > 0 and math.isfinite(hw.clock_hz)):
        raise HardwareConfigError(f"hardware '{hw.name}': clock_hz = {hw.clock_hz!r}; expected a positive number")
    bad = [d for d in hw.dtypes if d not in DTYPES]
    if not hw.dtypes or bad:
        raise HardwareConfigError(
            f"hardware '{hw.name}': dtypes {list(hw.dtypes)}; expected a non-empty subset of {list(DTYPES)}"
        )
    for d in hw.dtypes:
        if d not in hw.energy.mac or d not in hw.energy.vector_op:
            raise HardwareConfigError(
                f"hardware '{hw.name}': energy_pj has no mac_{d} / vector_{d} entry for supported dtype {d}"
            )


# --- loading -------------------------------------------------------------------


def preset_names() -> list[str]:
    """Names of the presets shipped in ``presets/`` (file stems)."""
    folder = resources.files(__package__).joinpath("presets")
    return sorted(p.name.removesuffix(".toml") for p in folder.iterdir() if p.name.endswith(".toml"))


def load_hardware(spec: "str | Path | HardwareConfig | Mapping[str, Any]") -> HardwareConfig:
    """Load a hardware config.

    Args:
        spec: a preset name (see :func:`preset_names`), a path to a TOML file,
            an already loaded :class:`HardwareConfig` (returned as is), or a
            mapping with the TOML structure.

    Raises:
        HardwareConfigError: unknown preset, unreadable file, invalid TOML, a
            missing or invalid field.
    """
    if isinstance(spec, HardwareConfig):
        return spec
    if isinstance(spec, Mapping):
        return from_mapping(spec, "<mapping>")
    text = str(spec)
    if text in preset_names():
        data = resources.files(__package__).joinpath("presets", f"{text}.toml").read_text()
        return _parse(data, f"preset '{text}'")
    path = Path(text)
    if path.suffix == ".toml" or path.exists():
        if not path.is_file():
            raise HardwareConfigError(f"hardware config file '{path}' does not exist")
        return _parse(path.read_text(), f"'{path}'")
    raise HardwareConfigError(
        f"unknown hardware {text!r}: not a preset ({', '.join(preset_names())}) and not a .toml file"
    )


def _parse(text: str, label: str) -> HardwareConfig:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise HardwareConfigError(f"hardware config {label} is not valid TOML: {exc}") from None
    return from_mapping(data, label)


def from_mapping(data: Mapping[str, Any], label: str) -> HardwareConfig:
    """Build a config from the TOML structure documented in this module.

    Raises:
        HardwareConfigError: a missing table or key, or a value of the wrong type.
    """

    def get(table: str | None, key: str, kind: type | tuple[type, ...], default: Any = ...) -> Any:
        src = data if table is None else data.get(table)
        where = key if table is None else f"[{table}] {key}"
        if not isinstance(src, Mapping):
            raise HardwareConfigError(f"hardware config {label}: missing table [{table}]")
        if key not in src:
            if default is ...:
                raise HardwareConfigError(f"hardware config {label}: missing {where}")
            return default
        value = src[key]
        if not isinstance(value, kind) or isinstance(value, bool):
            raise HardwareConfigError(f"hardware config {label}: {where} = {value!r} has the wrong type")
        return value

    bw = get("dram", "bytes_per_cycle", (int, float, str))
    if isinstance(bw, str):
        if bw != "unlimited":
            raise HardwareConfigError(
                f"hardware config {label}: [dram] bytes_per_cycle = {bw!r}; expected a number or \"unlimited\""
            )
        bw = math.inf
    energy_src = data.get("energy_pj")
    if not isinstance(energy_src, Mapping):
        raise HardwareConfigError(f"hardware config {label}: missing table [energy_pj]")
    dtypes = tuple(get(None, "dtypes", list))
    energy = EnergyTable(
        mac={d: float(get("energy_pj", f"mac_{d}", (int, float))) for d in dtypes},
        vector_op={d: float(get("energy_pj", f"vector_{d}", (int, float))) for d in dtypes},
        sram_read=float(get("energy_pj", "sram_read_per_byte", (int, float))),
        sram_write=float(get("energy_pj", "sram_write_per_byte", (int, float))),
        dram_read=float(get("energy_pj", "dram_read_per_byte", (int, float))),
        dram_write=float(get("energy_pj", "dram_write_per_byte", (int, float))),
        sources=dict(data.get("energy_sources", {})),
    )
    return HardwareConfig(
        name=get(None, "name", str),
        rows=get("array", "rows", int),
        cols=get("array", "cols", int),
        dataflow=get("array", "dataflow", str),
        ifmap_sram_bytes=int(get("sram", "ifmap_kib", (int, float)) * 1024),
        filter_sram_bytes=int(get("sram", "filter_kib", (int, float)) * 1024),
        ofmap_sram_bytes=int(get("sram", "ofmap_kib", (int, float)) * 1024),
        dram_bytes_per_cycle=float(bw),
        clock_hz=float(get(None, "clock_hz", (int, float))),
        dtypes=dtypes,
        vector_lanes=get("vector", "lanes", int),
        energy=energy,
        description=get(None, "description", str, ""),
        sources=dict(data.get("sources", {})),
    )
