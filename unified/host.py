"""Facts about the host CPU that placement and thread defaults depend on (stdlib only)."""

from __future__ import annotations

import functools
import os
import platform
import subprocess

__all__ = ["cpu_model", "physical_cores"]


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` "model name" / "Hardware"), else ``platform.processor()``."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@functools.lru_cache(maxsize=1)
def physical_cores() -> int:
    """Physical cores this process may run on, >= 1: the default thread count of every CPU delegate.

    ONNX Runtime's default intra-op thread count is the number of physical
    cores (``onnxruntime/core/platform/*/env.cc``: ``GetNumPhysicalCpuCores``),
    since a second hyper-thread on a core adds little to dense kernels and
    contends with the first. Linux: distinct (package, core) pairs in
    ``/sys/devices/system/cpu/cpuN/topology`` over the CPUs in this process's
    affinity mask; macOS: ``sysctl hw.physicalcpu``; elsewhere, or when the
    topology cannot be read, ``os.cpu_count()``.
    """
    if hasattr(os, "sched_getaffinity"):
        cores = set()
        try:
            for cpu in os.sched_getaffinity(0):
                base = f"/sys/devices/system/cpu/cpu{cpu}/topology"
                with open(f"{base}/physical_package_id") as pkg, open(f"{base}/core_id") as core:
                    cores.add((pkg.read().strip(), core.read().strip()))
        except OSError:
            cores = set()
        if cores:
            return len(cores)
        return max(1, len(os.sched_getaffinity(0)))
    if platform.system() == "Darwin":
        try:
            out = subprocess.run(["sysctl", "-n", "hw.physicalcpu"], capture_output=True, text=True, timeout=5)
            return max(1, int(out.stdout.strip()))
        except (OSError, ValueError, subprocess.SubprocessError):
            pass
    return max(1, os.cpu_count() or 1)
