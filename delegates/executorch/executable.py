"""The compiled partition: a ``.pte`` program run by the ExecuTorch runtime.

``executorch.runtime.Runtime`` loads the program (``load_program`` /
``load_method`` / ``execute``); inputs and outputs are NumPy arrays. The
program's two constant methods, ``xnnpack_ops`` and ``portable_ops`` (written
by ``convert.lower_module``), give ``details``, so a program loaded from the
compile cache reports the same counts without lowering again.

Imports torch and executorch: import this module only when compiling or loading.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import torch

from unified.delegate import Executable
from unified.errors import DelegateError, InputError

__all__ = ["ExecuTorchExecutable", "COUNT_METHODS", "short_message"]

#: The program's constant methods holding its op counts (see ``details``).
COUNT_METHODS = ("xnnpack_ops", "portable_ops", "xnnpack_quantized_ops")


def short_message(exc: Exception, limit: int = 1200) -> str:
    """A framework exception's message on one line, at most ``limit`` characters."""
    return " ".join(str(exc).split())[:limit]


class ExecuTorchExecutable(Executable):
    """A ``.pte`` program loaded into the ExecuTorch runtime.

    Args:
        pte: the program bytes (kept: they are the cache artifact).
        input_names / output_names: the partition's boundary values.
        shapes: the static input shapes the program was compiled for
            (checked on every run).

    Attributes:
        details: ``{"xnnpack_ops": N, "portable_ops": M, "xnnpack_quantized_ops": Q}``
            read from the program (Q: delegated compute ops reading
            dequantized int8 values, i.e. run by XNNPACK's int8 kernels).

    Raises:
        DelegateError: the runtime rejects the program.
    """

    artifact_suffix = ".pte"

    def __init__(self, pte: bytes, input_names: list[str], output_names: list[str], shapes: list[tuple[int, ...]]):
        from executorch.runtime import Runtime

        self._pte = pte
        self.input_names = list(input_names)
        self.output_names = list(output_names)
        self._shapes = [tuple(s) for s in shapes]
        try:
            self._program = Runtime.get().load_program(pte)
            self._method = self._program.load_method("forward")
        except Exception as exc:
            raise DelegateError(f"the ExecuTorch runtime could not load the program: {short_message(exc)}") from exc
        self.details = _counts(self._program)

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        args = [_as_torch(inputs[n]) for n in self.input_names]
        for name, arg, shape in zip(self.input_names, args, self._shapes):
            if tuple(arg.shape) != shape:
                raise InputError(
                    f"input '{name}' has shape {list(arg.shape)}, but the ExecuTorch program was compiled for "
                    f"{list(shape)} (it compiles static shapes only; the session specializes per input shape)"
                )
        outs = self._method.execute(args)
        # the runtime's outputs live in its planned memory: copy before the next run reuses it
        return {n: o.numpy().copy() for n, o in zip(self.output_names, outs)}

    def serialize(self) -> bytes:
        return self._pte


def _counts(program) -> dict[str, int]:
    """The op counts the program carries; a program cached before a count
    existed lacks its method, and the count is left out."""
    counts = {}
    for name in COUNT_METHODS:
        try:
            counts[name] = int(program.load_method(name).execute([])[0])
        except Exception:  # noqa: BLE001  (the runtime raises RuntimeError or ValueError for a missing method)
            continue
    return counts


def _as_torch(a: np.ndarray):
    if not a.flags.writeable:
        return torch.tensor(a)
    return torch.from_numpy(a)
