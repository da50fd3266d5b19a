"""The ``executorch`` delegate: ONNX partitions lowered to ``.pte`` programs with
XNNPACK, run by the ExecuTorch runtime. Backend: ``cpu``.

Compiling a partition:

1. ONNX -> ``torch.nn.Module``: a table-driven translator (``ops_nn``,
   ``ops_math``, ``ops_tensor``; one :class:`~.table.Lowering` per ONNX op,
   declaring the opsets, dtypes and attributes it handles). The same table is
   the delegate's ``op_support``, so ``supports()`` claims exactly what the
   translator lowers and gives a reason for everything else.
2. ``torch.export.export``; symbolic input dims (``dim_param``) become
   ``torch.export.Dim`` with an upper bound (option ``dim_max``), and shape
   arithmetic (``Shape -> Gather -> Concat -> Reshape``) is evaluated on
   symbolic sizes while tracing, so no data-dependent op is exported.
3. ``executorch.exir.to_edge_transform_and_lower(..., partitioner=[XnnpackPartitioner()])``
   then ``to_executorch()``; the ``.pte`` bytes are the compile-cache artifact.

Running: ``executorch.runtime.Runtime`` (``load_program`` / ``load_method`` /
``execute``), inputs and outputs as NumPy arrays.

``Executable.details`` (shown by ``unified plan``): ``xnnpack_ops``, the edge
ops the XNNPACK partitioner took, and ``portable_ops``, those left on
ExecuTorch's portable kernels.

torch and executorch are imported only when compiling or loading, so
importing this module is cheap and a missing executorch makes the delegate
unavailable with a reason.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from typing import Any, Mapping

import onnx

from unified.delegate import Availability, CompileOptions, Delegate, Executable, OpSupport
from unified.errors import DelegateError
from unified.hookspecs import hookimpl

from . import ops_math, ops_nn, ops_tensor
from .table import Lowering

__all__ = ["ExecuTorchDelegate", "LOWERINGS", "lowering_table"]

#: The lowering table: every ONNX op the delegate claims, in one place.
LOWERINGS: tuple[Lowering, ...] = ops_nn.LOWERINGS + ops_math.LOWERINGS + ops_tensor.LOWERINGS

_OPTIONS = ("dims", "dim_max", "default_dim_max")


def lowering_table() -> dict[str, list[Lowering]]:
    """ONNX op type -> its lowering entries (several when opsets differ)."""
    table: dict[str, list[Lowering]] = {}
    for entry in LOWERINGS:
        table.setdefault(entry.op_type, []).append(entry)
    return table


class ExecuTorchDelegate(Delegate):
    """ExecuTorch with the XNNPACK backend as a delegate.

    Options (``delegates=[("executorch", {...})]``):
        dims: dim name -> fixed size (like ONNX Runtime's free-dimension
            overrides), e.g. ``{"batch": 1}``: the program is static in that
            dim, XNNPACK takes more of it and lowering is faster; a run with
            another size raises :class:`~unified.errors.InputError`.
        dim_max: dim name -> upper bound for a symbolic input dim (e.g.
            ``{"seq": 512}``); ExecuTorch plans memory for the bound, and a run
            with a larger dim raises :class:`~unified.errors.InputError`.
        default_dim_max: bound for symbolic dims not in ``dim_max`` (default 128).
    """

    name = "executorch"
    default_priority = 30
    op_support: tuple[OpSupport, ...] = tuple(entry.support for entry in LOWERINGS)

    def availability(self) -> Availability:
        missing = [m for m in ("torch", "executorch") if importlib.util.find_spec(m) is None]
        if missing:
            return Availability(
                False,
                f"{' and '.join(missing)} not installed; install them with "
                "`pip install torch==2.13.0 executorch==1.5.1` (or the 'executorch' extra)",
            )
        try:
            version = importlib.metadata.version("executorch")
        except importlib.metadata.PackageNotFoundError:
            version = "unknown"
        return Availability(True, "", version)

    def backends(self) -> list[str]:
        return ["cpu"]

    def compile(self, partition: onnx.ModelProto, options: CompileOptions) -> Executable:
        opts = _checked_options(options.options)
        from .lower import ExecuTorchExecutable, input_dims, lower_module
        from .module import OnnxModule

        module = OnnxModule(partition, lowering_table())
        pte = lower_module(module, partition, opts)
        _, dims = input_dims(partition, opts)
        return ExecuTorchExecutable(pte, module.input_names, module.output_names, dims)

    def load(self, artifact: bytes, partition: onnx.ModelProto, options: CompileOptions) -> Executable:
        opts = _checked_options(options.options)
        from .lower import ExecuTorchExecutable, input_dims

        inits = {t.name for t in partition.graph.initializer}
        inputs = [i.name for i in partition.graph.input if i.name not in inits]
        outputs = [o.name for o in partition.graph.output]
        _, dims = input_dims(partition, opts)
        return ExecuTorchExecutable(artifact, inputs, outputs, dims)


def _checked_options(options: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(options) - set(_OPTIONS))
    if unknown:
        raise DelegateError(f"unknown executorch option(s) {unknown}; known: backend, {', '.join(_OPTIONS)}")
    return dict(options)


@hookimpl
def unified_delegates() -> list[Delegate]:
    return [ExecuTorchDelegate()]
