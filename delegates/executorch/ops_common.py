"""Helpers the lowerings (``ops_nn``, ``ops_math``, ``ops_tensor``) and the
translator (``convert``) share: host values, the lazily imported ``torch``,
dtypes, pads and static output shapes.

A host value is a NumPy array known while tracing (a constant, or shape
arithmetic such as ``Shape -> Gather -> Concat``); everything else is a
``torch.Tensor`` traced into the exported program. ``torch`` and ``F`` are
imported on first attribute access, so building the lowering table (and
answering ``supports()``) does not import torch.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from unified.errors import DelegateError
from unified.graph import NodeView

from .support import QUANT_DTYPES, TORCH_DTYPES

__all__ = [
    "LoweringError",
    "is_host",
    "host_ints",
    "symbolic",
    "to_tensor",
    "torch",
    "F",
    "torch_dtype",
    "torch_pad_list",
    "static_output_shape",
]


class LoweringError(DelegateError):
    """The translator met something its table entry claimed but cannot trace
    (e.g. a Reshape shape computed from tensor data rather than from shapes)."""


def is_host(value: Any) -> bool:
    """True for a host value (NumPy array), False for a ``torch.Tensor``."""
    return isinstance(value, np.ndarray)


def host_ints(value: np.ndarray | None) -> list:
    """A host value as a flat list of Python ints / ``torch.SymInt``."""
    if value is None:
        return []
    flat = value.reshape(-1).tolist()
    return [v if not isinstance(v, (float, np.floating)) else int(v) for v in flat]


def symbolic(*values: Any) -> bool:
    """True when any host value holds ``torch.SymInt`` elements (``dtype=object``)."""
    return any(is_host(v) and v.dtype == object for v in values)


class _LazyModule:
    """Attribute access imports the module on first use, so the table can be
    built (and ``supports()`` answered) without importing torch."""

    def __init__(self, name: str):
        self._name = name
        self._module = None

    def __getattr__(self, attr: str) -> Any:
        if self._module is None:
            import importlib

            self._module = importlib.import_module(self._name)
        return getattr(self._module, attr)


torch = _LazyModule("torch")
F = _LazyModule("torch.nn.functional")


def torch_dtype(elem_type: int):
    """torch dtype of an ONNX element type in :data:`~.support.TORCH_DTYPES` or
    :data:`~.support.QUANT_DTYPES` (int8: values between QuantizeLinear and DequantizeLinear)."""
    return getattr(torch, TORCH_DTYPES.get(elem_type) or QUANT_DTYPES[elem_type])


def to_tensor(value: Any, dtype: Any = None):
    """A host value (NumPy array, possibly of ``torch.SymInt``) as a torch tensor.

    Args:
        value: NumPy array or torch tensor (returned as is).
        dtype: NumPy dtype to cast a numeric array to first, or None.
    """
    if not is_host(value):
        return value
    if value.dtype == object:  # symbolic sizes: torch.tensor traces them as sym_size ops
        return torch.tensor(value.tolist(), dtype=torch.int64)
    if dtype is not None:
        value = value.astype(dtype, copy=False)
    return torch.from_numpy(np.ascontiguousarray(value).copy())


def torch_pad_list(begins: list, ends: list) -> list:
    """ONNX per-dim (begin, end) pads -> ``F.pad``'s last-dim-first pair list."""
    out = []
    for b, e in zip(reversed(begins), reversed(ends)):
        out += [b, e]
    return out


def static_output_shape(node: NodeView, slot: int = 0) -> list[int]:
    """The inferred static shape of output ``slot``.

    Raises:
        LoweringError: the shape is not static (the node's shape input was
            computed from tensor data, which torch.export cannot trace).
    """
    t = node.outputs[slot]
    if not t.is_static:
        raise LoweringError(
            f"{node.op_type} node '{node.name}': its shape input is computed from tensor data and its output "
            f"shape is not static; torch.export needs shapes known while tracing"
        )
    return list(t.shape)
