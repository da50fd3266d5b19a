"""The host CPU as a backend: core count, memory and SIMD features from the OS."""

from __future__ import annotations

import os
import platform

from unified.backend import Backend, BackendInfo
from unified.delegate import Availability
from unified.hookspecs import hookimpl

__all__ = ["CpuBackend"]


def _memory_bytes() -> int | None:
    """Physical memory from ``sysconf`` (POSIX); None where it is not offered."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


class CpuBackend(Backend):
    """The host CPU. Peak throughput and bandwidth are not guessed: None."""

    name = "cpu"

    def availability(self) -> Availability:
        return Availability(True, "", platform.machine())

    def info(self) -> BackendInfo:
        flags = _cpu_flags()
        simd = [f for f in ("avx512f", "avx2", "fma", "neon", "asimd") if f in flags]
        desc = f"{platform.machine()} {os.cpu_count()} logical cores" + (f" ({', '.join(simd)})" if simd else "")
        return BackendInfo(
            name="cpu",
            kind="cpu",
            description=desc,
            dtypes=("float32", "float16", "int8", "int32", "int64", "bool"),
            memory_bytes=_memory_bytes(),
        )


@hookimpl
def unified_backends() -> list[Backend]:
    return [CpuBackend()]
