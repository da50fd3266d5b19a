"""ONNX element types (``onnx.TensorProto.DataType``) and NumPy dtypes.

The one place that maps between them and names them; source: the ONNX IR
spec, "Tensor Element Types" (https://onnx.ai/onnx/repo-docs/IR.html).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper

__all__ = ["to_numpy", "from_numpy", "dtype_name", "numpy_name"]


def to_numpy(elem_type: int) -> np.dtype | None:
    """NumPy dtype of an ONNX element type.

    Args:
        elem_type: an ``onnx.TensorProto.DataType`` value (int).

    Returns:
        The dtype; None for UNDEFINED (0) or a type with no NumPy equivalent
        here (e.g. float8 without ml_dtypes).
    """
    if elem_type == onnx.TensorProto.UNDEFINED:
        return None
    try:
        return np.dtype(helper.tensor_dtype_to_np_dtype(elem_type))
    except (KeyError, TypeError, ValueError):
        return None


def from_numpy(dtype: np.dtype | type | str) -> int:
    """ONNX element type of a NumPy dtype (``np.float32`` -> 1).

    Raises:
        ValueError: the dtype has no ONNX element type.
    """
    try:
        return int(helper.np_dtype_to_tensor_dtype(np.dtype(dtype)))
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"NumPy dtype {dtype!r} has no ONNX element type") from None


def dtype_name(elem_type: int, unknown: str = "unknown") -> str:
    """Lower-case ONNX name of an element type: ``1`` -> ``"float"``,
    ``7`` -> ``"int64"``, ``10`` -> ``"float16"``; ``unknown`` for 0."""
    if not elem_type:
        return unknown
    try:
        return helper.tensor_dtype_to_string(elem_type).removeprefix("TensorProto.").lower()
    except (KeyError, ValueError):
        return f"type{elem_type}"


def numpy_name(elem_type: int, unknown: str = "unknown") -> str:
    """NumPy name of an element type (``1`` -> ``"float32"``, ``9`` ->
    ``"bool"``); the ONNX name (:func:`dtype_name`) for a type NumPy lacks;
    ``unknown`` for 0. Conformance reports name dtypes this way."""
    if not elem_type:
        return unknown
    np_dtype = to_numpy(elem_type)
    return np_dtype.name if np_dtype is not None else dtype_name(elem_type)
