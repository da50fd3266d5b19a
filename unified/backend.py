"""Hardware targets: what a backend is and what it tells about itself.

A backend is a device a delegate compiles for (``cpu``, ``gpu``, ``npu-sim``,
``ane``). Backends are contributed by plugins through the
``unified_backends()`` hook; the implementations live in ``backends/``.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass

from unified.delegate import Availability

__all__ = ["Backend", "BackendInfo"]


@dataclass(frozen=True)
class BackendInfo:
    """Capabilities and performance model of one backend.

    Attributes:
        name: backend name, e.g. ``"cpu"``.
        kind: ``"cpu"``, ``"gpu"``, ``"npu"`` or ``"simulator"``.
        description: one line for humans (device model, core count).
        dtypes: ONNX-style dtype names it computes in (``"float32"``, ``"int8"``).
        memory_bytes: memory the device can use, bytes; None when unknown.
        peak_ops_per_s: peak arithmetic throughput, ops/s (1 MAC = 2 ops);
            None when unknown.
        bandwidth_bytes_per_s: main-memory bandwidth, bytes/s; None when unknown.
    """

    name: str
    kind: str
    description: str = ""
    dtypes: tuple[str, ...] = ()
    memory_bytes: int | None = None
    peak_ops_per_s: float | None = None
    bandwidth_bytes_per_s: float | None = None


class Backend(abc.ABC):
    """A hardware target. Subclasses set ``name`` and implement both methods."""

    name: str = ""

    @abc.abstractmethod
    def availability(self) -> Availability:
        """Whether the device exists on this host. Must not raise."""

    @abc.abstractmethod
    def info(self) -> BackendInfo:
        """Capabilities and performance model."""
