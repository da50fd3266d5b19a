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
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import onnx
import torch

from unified.delegate import Executable
from unified.errors import DelegateError, InputError

from .table import TORCH_DTYPES, LoweringError

__all__ = ["DimSpec", "input_dims", "lower_module", "ExecuTorchExecutable"]

_COUNT_METHODS = ("xnnpack_ops", "portable_ops")
_EXAMPLE_SIZES = (3, 5, 7, 11, 13, 17, 19, 23)  # distinct, > 1: torch.export specializes sizes 0 and 1


@dataclass(frozen=True)
class DimSpec:
    """One dynamic dim of a partition input.

    Attributes:
        input: input index; axis: dim index.
        name: the ONNX dim name (``dim_param``), or ``"<input>_<axis>"`` when unnamed.
        max: upper bound the program is compiled for (ExecuTorch plans memory
            for it); with ``pinned``, the one size it is compiled for.
        pinned: the dim was fixed by the ``dims`` option (a static program).
    """

    input: int
    axis: int
    name: str
    max: int
    pinned: bool = False


def input_dims(model: onnx.ModelProto, options: Mapping[str, Any]) -> tuple[list[tuple[int, ...]], list[DimSpec]]:
    """Static dims and dynamic-dim specs of a partition's inputs.

    Args:
        model: the partition.
        options: delegate options; ``dims`` (dim name -> fixed size, like ONNX
            Runtime's free-dimension overrides), ``dim_max`` (dim name ->
            upper bound) and ``default_dim_max`` (bound of any other dynamic
            dim, default 128).

    Returns:
        (per input, its shape with 0 in dynamic positions; the dynamic dims).

    Raises:
        DelegateError: an input without a tensor type or rank, or a bad bound.
    """
    bounds = dict(options.get("dim_max", {}))
    pinned = dict(options.get("dims", {}))
    default = options.get("default_dim_max", 128)
    inits = {t.name for t in model.graph.initializer}
    shapes, dims = [], []
    for i, vi in enumerate(x for x in model.graph.input if x.name not in inits):
        tt = vi.type.tensor_type
        if not vi.type.HasField("tensor_type") or not tt.HasField("shape"):
            raise DelegateError(f"executorch: partition input '{vi.name}' has no tensor type with a rank")
        shape = []
        for axis, d in enumerate(tt.shape.dim):
            if d.HasField("dim_value"):
                shape.append(d.dim_value)
                continue
            name = d.dim_param or f"{vi.name}_{axis}"
            if name in pinned:
                size = pinned[name]
                if not isinstance(size, int) or size < 1:
                    raise DelegateError(f"executorch option dims['{name}'] is {size!r}; expected an int >= 1")
                dims.append(DimSpec(i, axis, name, size, pinned=True))
                shape.append(size)
                continue
            bound = bounds.get(name, default)
            if not isinstance(bound, int) or bound < 1:
                raise DelegateError(f"executorch option dim_max for '{name}' is {bound!r}; expected an int >= 1")
            dims.append(DimSpec(i, axis, name, bound))
            shape.append(0)
        shapes.append(tuple(shape))
    return shapes, dims


def _examples(model: onnx.ModelProto, shapes, dims: list[DimSpec]):
    """Example inputs (zeros) and the ``dynamic_shapes`` spec for torch.export.

    Each dynamic dim name becomes one ``torch.export.Dim`` (inputs sharing a
    name share it) with an example size that differs from every other name's,
    so the trace cannot mistake two dims for equal ones.
    """
    from torch.export import Dim

    free = [d for d in dims if not d.pinned]
    bound = {d.name: d.max for d in free}
    names = sorted(bound)
    size = {n: max(2, min(_EXAMPLE_SIZES[k % len(_EXAMPLE_SIZES)], bound[n])) for k, n in enumerate(names)}
    objs = {n: Dim("d_" + "".join(c if c.isalnum() else "_" for c in n), min=1, max=max(2, bound[n])) for n in names}
    inits = {t.name for t in model.graph.initializer}
    inputs = [x for x in model.graph.input if x.name not in inits]
    args, spec = [], []
    for i, (vi, shape) in enumerate(zip(inputs, shapes)):
        mine = {d.axis: d.name for d in free if d.input == i}
        concrete = [size[mine[a]] if a in mine else s for a, s in enumerate(shape)]
        dtype = getattr(torch, TORCH_DTYPES[vi.type.tensor_type.elem_type])
        args.append(torch.zeros(concrete, dtype=dtype))
        spec.append({a: objs[n] for a, n in mine.items()} or None)
    return tuple(args), (tuple(spec),) if free else None


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


def lower_module(module: torch.nn.Module, model: onnx.ModelProto, options: Mapping[str, Any]) -> bytes:
    """Export ``module`` (built from ``model``) and lower it to ``.pte`` bytes.

    Raises:
        DelegateError: torch.export or ExecuTorch lowering failed; the message
            carries the framework's reason.
    """
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import EdgeProgramManager, to_edge_transform_and_lower

    shapes, dims = input_dims(model, options)
    args, dynamic = _examples(model, shapes, dims)
    try:
        exported = torch.export.export(module.eval(), args, dynamic_shapes=dynamic, strict=False)
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
        dims: the dynamic dims and their bounds (checked on every run).

    Attributes:
        details: ``{"xnnpack_ops": N, "portable_ops": M}`` read from the program.

    Raises:
        DelegateError: the runtime rejects the program.
    """

    artifact_suffix = ".pte"

    def __init__(self, pte: bytes, input_names: list[str], output_names: list[str], dims: list[DimSpec]):
        from executorch.runtime import Runtime

        self._pte = pte
        self.input_names = list(input_names)
        self.output_names = list(output_names)
        self._dims = dims
        try:
            self._program = Runtime.get().load_program(pte)
            self._method = self._program.load_method("forward")
            counts = {m: int(self._program.load_method(m).execute([])[0]) for m in _COUNT_METHODS}
        except Exception as exc:
            raise DelegateError(f"the ExecuTorch runtime could not load the program: {_short(exc)}") from exc
        self.details = counts

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        args = [_as_torch(inputs[n]) for n in self.input_names]
        for d in self._dims:
            size = args[d.input].shape[d.axis]
            if d.pinned and size != d.max:
                raise InputError(
                    f"input '{self.input_names[d.input]}' dim {d.axis} ('{d.name}') is {size}, but the ExecuTorch "
                    f"program was compiled for {d.name} = {d.max} (option dims); feed that size or change the option"
                )
            if size > d.max:
                raise InputError(
                    f"input '{self.input_names[d.input]}' dim {d.axis} ('{d.name}') is {size}, above the bound "
                    f"{d.max} the ExecuTorch program was compiled for; pass "
                    f"delegates=[('executorch', {{'dim_max': {{'{d.name}': {size}}}}})] to raise it"
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
