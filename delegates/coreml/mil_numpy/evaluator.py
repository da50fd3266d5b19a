"""Run a saved ML Program op by op in NumPy.

:func:`evaluate` walks the ``main`` block of a :class:`~.reader.MilProgram`
in program order. ``const`` ops give their value; every other op runs its
kernel (:data:`KERNELS`, one table from MIL op type to a small NumPy
function, in :mod:`.ops_math`, :mod:`.ops_tensor`, :mod:`.ops_nn`). Each
result is rounded to the dtype the program declares for that output (so an
fp16 program keeps fp16 tensors between ops, the precision Core ML stores
them in) and checked against the declared shape. An op type without a
kernel is an error naming it, never a skip.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from unified.errors import DelegateError, UnifiedError

from .args import OpArgs
from .ops_math import KERNELS as _MATH
from .ops_nn import KERNELS as _NN
from .ops_tensor import KERNELS as _TENSOR
from .reader import MilOp, MilProgram

__all__ = ["KERNELS", "evaluate", "run_op"]

#: MIL op type -> kernel ``(OpArgs) -> ndarray | tuple of ndarrays``.
KERNELS = {**_MATH, **_TENSOR, **_NN}


def run_op(op: MilOp, env: dict[str, Any]) -> None:
    """Run one op: read its operands from ``env``, write its outputs into ``env``.

    Raises:
        DelegateError: no kernel for the op type (names it and the op), the
            kernel failed, or a result's count or shape differs from the
            program's declaration.
    """
    if op.type == "const":
        env[op.outputs[0][0]] = op.attributes["val"]
        return
    kernel = KERNELS.get(op.type)
    if kernel is None:
        raise DelegateError(
            f"mil-numpy has no kernel for MIL op '{op.type}' (op '{op.name}'); the evaluator covers "
            f"{len(KERNELS)} op types, see unified.delegates.coreml.mil_numpy.KERNELS"
        )
    try:
        with np.errstate(all="ignore"):
            result = kernel(OpArgs(op, env))
    except UnifiedError:
        raise
    except Exception as exc:
        raise DelegateError(f"mil-numpy: op '{op.name}' ({op.type}) failed: {type(exc).__name__}: {exc}") from None
    results = list(result) if isinstance(result, (tuple, list)) else [result]
    if len(results) != len(op.outputs):
        raise DelegateError(f"mil-numpy: op '{op.name}' ({op.type}) gave {len(results)} outputs, the program "
                            f"declares {len(op.outputs)}")
    for (name, dtype, shape), value in zip(op.outputs, results):
        value = np.asarray(value)
        if dtype is not None and dtype != "string":
            with np.errstate(all="ignore"):
                value = value.astype(dtype, copy=False)
        if shape is not None and tuple(value.shape) != tuple(shape):
            raise DelegateError(
                f"mil-numpy: op '{op.name}' ({op.type}) output '{name}' has shape {tuple(value.shape)}, the program "
                f"declares {tuple(shape)}"
            )
        env[name] = value


def evaluate(program: MilProgram, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Evaluate the program on one set of inputs.

    Args:
        program: the program (:func:`~.reader.read_program`).
        feeds: MIL input name -> array; cast to the input's declared dtype
            (fp32, fp16 or int32 as the package's inputs are declared).

    Returns:
        MIL output name -> array, in the program's declared dtypes.

    Raises:
        DelegateError: a missing input, an input whose shape differs from a
            fixed declared shape, or any error of :func:`run_op`.
    """
    env: dict[str, Any] = {}
    for name, dtype, shape in program.inputs:
        if name not in feeds:
            raise DelegateError(f"mil-numpy: input '{name}' not fed; the program's inputs are "
                                f"{[i[0] for i in program.inputs]}")
        value = np.asarray(feeds[name]).astype(dtype, copy=False)
        if shape is not None and tuple(value.shape) != tuple(shape):
            raise DelegateError(f"mil-numpy: input '{name}' has shape {value.shape}, expected {tuple(shape)}")
        env[name] = value
    for op in program.ops:
        run_op(op, env)
    return {name: env[name] for name in program.outputs}
