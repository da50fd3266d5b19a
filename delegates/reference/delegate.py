"""The ``reference`` delegate: ONNX partitions run as NumPy kernels with the
simulated NPU's arithmetic, and every run reports the ``npu-sim`` cost
model's cycles, stalls, utilization, DRAM traffic and energy per op.

Opt-in only (``default_priority = None``): it is a simulator. Use it with::

    InferenceSession(model, delegates=[("reference", {"hw": "scalesim-32", "dtype": "int8"})],
                     options=SessionOptions(enable_profiling=True))

Options:
    hw: a preset name (``scalesim-32``, ``ethos-u65``, ``edgetpu``) or a
        path to a hardware TOML file; default ``scalesim-32``.
    dtype: ``"fp32"`` (default when the hardware supports it, else its first
        dtype), ``"fp16"`` or ``"int8"``; see ``executable.py`` for the
        arithmetic of each.

After each run the executable's ``last_run_stats`` holds the simulation
report (JSON-safe); with ``SessionOptions(enable_profiling=True)`` the
session copies it into ``session.profile[i].stats``.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import onnx

from unified.backends.npu_sim.hardware import DTYPES, HardwareConfig, load_hardware
from unified.delegate import Availability, CompileOptions, Delegate, DelegateOption, Executable
from unified.delegates.reference.executable import ReferenceExecutable
from unified.delegates.reference.support import OP_SUPPORT
from unified.errors import DelegateError

__all__ = ["ReferenceDelegate"]


class ReferenceDelegate(Delegate):
    """NumPy kernels with the ``npu-sim`` accelerator's arithmetic and costs.

    Backends: ``npu-sim`` only. Options: ``hw`` (preset name or TOML path)
    and ``dtype`` (``fp32``, ``fp16``, ``int8``); see the module docstring.
    """

    name = "reference"
    default_priority = None  # a simulator: opt-in only
    options = (
        DelegateOption("hw", (str,), "scalesim-32", "hardware preset name (scalesim-32, ethos-u65, edgetpu) or a TOML file"),
        DelegateOption("dtype", (str,), None, "compute precision (default: the preset's first)", tuple(DTYPES)),
    )
    op_support = OP_SUPPORT
    cacheable = False  # compiling is cheap; the artifact is the partition itself

    def availability(self) -> Availability:
        """Always available (NumPy only); the version is NumPy's."""
        return Availability(True, "", f"numpy {np.__version__}")

    def backends(self) -> list[str]:
        """``["npu-sim"]``: the simulated accelerator."""
        return ["npu-sim"]

    def check_options(self, options: Mapping[str, Any]) -> None:
        """The hardware exists and computes in the dtype asked for (before planning).

        Raises:
            DelegateError: an unknown hardware, or a dtype it does not compute in.
        """
        self._hardware(options)

    @staticmethod
    def _hardware(opts: Mapping[str, Any]) -> tuple[HardwareConfig, str]:
        try:
            hw = load_hardware(opts.get("hw", "scalesim-32"))
            dtype = opts.get("dtype") or ("fp32" if "fp32" in hw.dtypes else hw.dtypes[0])
            hw.dtype(dtype)
        except DelegateError:
            raise
        except Exception as exc:  # HardwareConfigError: a UnifiedError, re-raised as the delegate's error
            raise DelegateError(f"reference delegate: {exc}") from None
        return hw, dtype

    def compile(self, partition: onnx.ModelProto, options: CompileOptions) -> Executable:
        """Build the kernel schedule for one partition (options were checked by :meth:`check_options`).

        Raises:
            DelegateError: an unknown hardware or dtype.
        """
        hw, dtype = self._hardware(options.options)
        return ReferenceExecutable(partition, hw, dtype)

    def load(self, artifact: bytes, partition: onnx.ModelProto, options: CompileOptions) -> Executable:
        """Rebuild the executable from its artifact (the partition's ONNX bytes).

        Raises:
            DelegateError: an unknown hardware or dtype.
        """
        hw, dtype = self._hardware(options.options)
        return ReferenceExecutable.load(artifact, hw, dtype)
