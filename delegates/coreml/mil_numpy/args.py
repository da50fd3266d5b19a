"""The operands of one MIL op, as a kernel reads them.

Precision rule (the emulation of an fp16 ML Program): a kernel reads float
operands widened to float32 (:meth:`OpArgs.f`), computes in float32 (matmul,
conv and reductions therefore accumulate in float32), and the evaluator rounds
each output once to the dtype the program declares for it (float16 in an
fp16 program). Core ML documents fp16 storage for ``compute_precision=FLOAT16``
(coremltools ``ct.precision.FLOAT16``: "inserts cast ops to fp16 at the
inputs, all intermediate tensors are fp16"); the accumulation width inside a
kernel is the hardware's and is not documented, so float32 with one rounding
per op is the emulated model, and the fp16 tolerance budget
(``unified.conformance.compare``) covers the difference.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from unified.errors import DelegateError

from .reader import MilOp

__all__ = ["OpArgs", "up"]


def up(x: Any) -> Any:
    """float16 (and Python floats) widened to float32; other arrays unchanged."""
    x = np.asarray(x)
    return x.astype(np.float32) if x.dtype == np.float16 else x


class OpArgs:
    """Read access to one op's bound operands.

    Args:
        op: the op.
        env: variable name -> value of everything computed so far.
    """

    def __init__(self, op: MilOp, env: dict[str, Any]):
        self.op = op
        self._env = env

    def _bound(self, binding) -> Any:
        if binding.name is None:
            return binding.value
        try:
            return self._env[binding.name]
        except KeyError:
            raise DelegateError(
                f"mil-numpy: op '{self.op.name}' ({self.op.type}) reads '{binding.name}', which no earlier op produced"
            ) from None

    def has(self, key: str) -> bool:
        """Whether the op binds parameter ``key``."""
        return bool(self.op.inputs.get(key))

    def get(self, key: str, default: Any = None) -> Any:
        """The raw value of parameter ``key`` (``default`` when unbound)."""
        bindings = self.op.inputs.get(key)
        if not bindings:
            return default
        return self._bound(bindings[0])

    def many(self, key: str) -> list:
        """Every value bound to a tuple parameter (e.g. ``concat``'s ``values``)."""
        return [self._bound(b) for b in self.op.inputs.get(key, [])]

    def f(self, key: str = "x", default: Any = None) -> Any:
        """Parameter ``key`` with float16 widened to float32 (:func:`up`)."""
        value = self.get(key, default)
        return None if value is None else up(value)

    def scalar(self, key: str, default: Any = None) -> Any:
        """A scalar parameter as a Python number, bool or str."""
        value = self.get(key, default)
        if isinstance(value, np.ndarray):
            return value.reshape(-1)[0].item() if value.size == 1 else value
        return value

    def ints(self, key: str, default: Any = None) -> list[int] | None:
        """An integer vector parameter as a list (None when unbound and no default)."""
        value = self.get(key, default)
        return None if value is None else [int(v) for v in np.asarray(value).reshape(-1)]

    def out_dtype(self, i: int = 0) -> Any:
        """The declared dtype of output ``i`` (None when undeclared)."""
        dtype = self.op.outputs[i][1]
        return None if dtype == "string" else dtype
