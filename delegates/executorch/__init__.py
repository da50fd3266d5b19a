"""The ``executorch`` delegate: ONNX partitions lowered to ``.pte`` programs with
XNNPACK, run by the ExecuTorch runtime. Backend: ``cpu``.

Compiling a partition:

1. ONNX -> ``torch.nn.Module``: a table-driven translator (``ops_nn``,
   ``ops_math``, ``ops_tensor``; one :class:`~.table.Lowering` per ONNX op,
   declaring the opsets, dtypes and attributes it handles). The same table is
   the delegate's ``op_support``, so ``supports()`` claims exactly what the
   translator lowers and gives a reason for everything else.
2. ``torch.export.export`` with static example inputs. The delegate has
   ``static_shapes``: the core hands ``compile()`` partitions whose every
   dim is known (a partition with symbolic dims is specialized per input
   shape signature at run time, shape computations folded to initializers),
   so the exported program is static; what is left of shape arithmetic
   (``Shape -> Gather -> Concat -> Reshape`` on static shapes) is evaluated
   on the host while tracing. ``supports()`` sees symbolic dims and claims a
   node when it could lower it once every dim is known; an input read at
   compile time (a Reshape shape, Slice starts, pads, ...) must be a
   constant or shape-derived, and a data-dependent one is declined.
3. ``executorch.exir.to_edge_transform_and_lower(..., partitioner=[XnnpackPartitioner()])``
   then ``to_executorch()``; the ``.pte`` bytes are the compile-cache artifact.

Running: ``executorch.runtime.Runtime`` (``load_program`` / ``load_method`` /
``execute``), inputs and outputs as NumPy arrays.

``Executable.details`` (shown by ``unified plan``): ``xnnpack_ops``, the edge
ops the XNNPACK partitioner took, and ``portable_ops``, those left on
ExecuTorch's portable kernels.

torch and executorch are imported only when compiling or loading, so
importing this module is cheap and a missing executorch makes the delegate
unavailable with a reason. They are imported quietly (``quiet``): their log
lines and warnings reach the user only when the ``unified`` logger is at
DEBUG.
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
from .quiet import quiet
from .table import Lowering

__all__ = ["ExecuTorchDelegate", "LOWERINGS", "lowering_table"]

#: The lowering table: every ONNX op the delegate claims, in one place.
LOWERINGS: tuple[Lowering, ...] = ops_nn.LOWERINGS + ops_math.LOWERINGS + ops_tensor.LOWERINGS


def lowering_table() -> dict[str, list[Lowering]]:
    """ONNX op type -> its lowering entries (several when opsets differ)."""
    table: dict[str, list[Lowering]] = {}
    for entry in LOWERINGS:
        table.setdefault(entry.op_type, []).append(entry)
    return table


class ExecuTorchDelegate(Delegate):
    """ExecuTorch with the XNNPACK backend as a delegate.

    Compiles static shapes only (``static_shapes``): dynamic dims are
    handled by the core's specialization (or pinned ahead of time with
    ``SessionOptions.free_dimensions``). No delegate options besides
    ``backend``.
    """

    name = "executorch"
    options = ()  # none besides backend: dims are pinned with SessionOptions.free_dimensions or specialized at run
    cacheable = True  # the .pte is the artifact; load() rebuilds the program from it
    default_priority = 30
    static_shapes = True
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
        _check_options(options.options)
        with quiet():
            from .lower import ExecuTorchExecutable, input_shapes, lower_module
            from .module import OnnxModule

            shapes = input_shapes(partition)
            module = OnnxModule(partition, lowering_table())
            pte = lower_module(module, partition, shapes)
            return ExecuTorchExecutable(pte, module.input_names, module.output_names, shapes)

    def load(self, artifact: bytes, partition: onnx.ModelProto, options: CompileOptions) -> Executable:
        _check_options(options.options)
        with quiet():
            from .lower import ExecuTorchExecutable, input_shapes

            inits = {t.name for t in partition.graph.initializer}
            inputs = [i.name for i in partition.graph.input if i.name not in inits]
            outputs = [o.name for o in partition.graph.output]
            return ExecuTorchExecutable(artifact, inputs, outputs, input_shapes(partition))


def _check_options(options: Mapping[str, Any]) -> None:
    if options:
        raise DelegateError(
            f"unknown executorch option(s) {sorted(options)}; the executorch delegate takes none besides backend "
            "(pin dynamic dims with SessionOptions.free_dimensions; other dims are specialized at run time)"
        )


@hookimpl
def unified_delegates() -> list[Delegate]:
    return [ExecuTorchDelegate()]
