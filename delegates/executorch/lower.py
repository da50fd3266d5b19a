"""Lower a partition to a ``.pte`` program and run it with the ExecuTorch runtime.

Pipeline (ExecuTorch's documented flow, "Exporting to ExecuTorch"):
``OnnxModule`` -> ``torch.export.export`` -> ``to_edge_transform_and_lower``
with the ``XnnpackPartitioner`` -> ``to_executorch()`` -> ``.pte`` bytes.

The program carries two constant methods, ``xnnpack_ops`` and
``portable_ops``: how many edge ops the XNNPACK partitioner took and how many
stayed on ExecuTorch's portable kernels. A program loaded from the compile
cache reports the same counts without lowering again.

Imports torch and executorch: import this module only when compiling or loading.
"""

from __future__ import annotations

import operator
from typing import Mapping

import numpy as np
import onnx
import torch

from unified.delegate import Executable
from unified.errors import DelegateError, InputError

from .table import TORCH_DTYPES, LoweringError

__all__ = ["input_shapes", "lower_module", "ExecuTorchExecutable"]

_COUNT_METHODS = ("xnnpack_ops", "portable_ops")


def input_shapes(model: onnx.ModelProto) -> list[tuple[int, ...]]:
    """The static shape of each partition input (initializers excluded).

    Raises:
        DelegateError: an input without a tensor type, or with a dim that is
            not a known size: the delegate compiles static shapes only
            (``static_shapes``); the core specializes partitions with
            symbolic dims before calling ``compile()``.
    """
    inits = {t.name for t in model.graph.initializer}
    shapes = []
    for vi in (x for x in model.graph.input if x.name not in inits):
        tt = vi.type.tensor_type
        if not vi.type.HasField("tensor_type") or not tt.HasField("shape"):
            raise DelegateError(f"executorch: partition input '{vi.name}' has no tensor type with a rank")
        dims = [d.dim_value if d.HasField("dim_value") and d.dim_value >= 0 else None for d in tt.shape.dim]
        if None in dims:
            shown = ", ".join(d.dim_param or "?" if not d.HasField("dim_value") else str(d.dim_value) for d in tt.shape.dim)
            raise DelegateError(
                f"executorch compiles static shapes only; partition input '{vi.name}' has shape [{shown}]. "
                "Fix the dims with SessionOptions(free_dimensions={...}) or let the session specialize the partition"
            )
        shapes.append(tuple(dims))
    return shapes


def _examples(model: onnx.ModelProto, shapes: list[tuple[int, ...]]) -> tuple:
    """Example inputs (zeros) of the partition's static shapes and dtypes."""
    inits = {t.name for t in model.graph.initializer}
    inputs = [x for x in model.graph.input if x.name not in inits]
    return tuple(
        torch.zeros(shape, dtype=getattr(torch, TORCH_DTYPES[vi.type.tensor_type.elem_type]))
        for vi, shape in zip(inputs, shapes)
    )


def _count_ops(edge_program) -> dict[str, int]:
    """Edge ops inside XNNPACK-delegated subgraphs vs left on portable kernels."""
    from executorch.exir.lowered_backend_module import LoweredBackendModule

    gm = edge_program.graph_module
    xnnpack = portable = 0
    for node in gm.graph.nodes:
        if node.op != "call_function" or node.target is operator.getitem:
            continue
        if "executorch_call_delegate" in str(node.target):
            lowered = getattr(gm, node.args[0].target)
            if isinstance(lowered, LoweredBackendModule):
                xnnpack += sum(
                    1
                    for n in lowered.original_module.graph.nodes
                    if n.op == "call_function" and n.target is not operator.getitem
                )
            continue
        portable += 1
    return {"xnnpack_ops": xnnpack, "portable_ops": portable}


def lower_module(module: torch.nn.Module, model: onnx.ModelProto, shapes: list[tuple[int, ...]]) -> bytes:
    """Export ``module`` (built from ``model``, inputs of ``shapes``) and lower it to ``.pte`` bytes.

    Raises:
        DelegateError: torch.export or ExecuTorch lowering failed; the message
            carries the framework's reason.
    """
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import EdgeProgramManager, to_edge_transform_and_lower

    args = _examples(model, shapes)
    try:
        exported = torch.export.export(module.eval(), args, strict=False)
    except LoweringError:
        raise
    except Exception as exc:
        raise DelegateError(f"torch.export failed: {type(exc).__name__}: {_short(exc)}") from exc
    try:
        edge = to_edge_transform_and_lower(exported, partitioner=[XnnpackPartitioner()])
        counts = _count_ops(edge.exported_program())
        # Rebuilt only to attach the counts as constant methods of the program.
        edge = EdgeProgramManager(edge.exported_program(), constant_methods=counts, compile_config=edge.compile_config)
        return bytes(edge.to_executorch().buffer)
    except Exception as exc:
        raise DelegateError(f"ExecuTorch lowering failed: {type(exc).__name__}: {_short(exc)}") from exc


def _short(exc: Exception, limit: int = 1200) -> str:
    return " ".join(str(exc).split())[:limit]


class ExecuTorchExecutable(Executable):
    """A ``.pte`` program loaded into the ExecuTorch runtime.

    Args:
        pte: the program bytes (kept: they are the cache artifact).
        input_names / output_names: the partition's boundary values.
        shapes: the static input shapes the program was compiled for
            (checked on every run).

    Attributes:
        details: ``{"xnnpack_ops": N, "portable_ops": M}`` read from the program.

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
            counts = {m: int(self._program.load_method(m).execute([])[0]) for m in _COUNT_METHODS}
        except Exception as exc:
            raise DelegateError(f"the ExecuTorch runtime could not load the program: {_short(exc)}") from exc
        self.details = counts

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


def _as_torch(a: np.ndarray):
    if not a.flags.writeable:
        return torch.tensor(a)
    return torch.from_numpy(a)
