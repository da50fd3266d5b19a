"""The ``executorch`` delegate class: its options, availability, backends,
and the compile / load steps that chain ``convert`` and ``executable``.

See the package docstring for the pipeline.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from typing import Any, Mapping

import onnx

from unified.delegate import Availability, CompileOptions, Delegate, Executable, OpSupport
from unified.errors import DelegateError
from unified.hookspecs import hookimpl

from . import ops_math, ops_nn, ops_quant, ops_tensor
from .qdq_rewrite import prepare_qdq
from .quiet import quiet
from .support import Lowering

__all__ = ["ExecuTorchDelegate", "LOWERINGS", "lowering_table", "unified_delegates"]

#: The lowering table: every ONNX op the delegate claims, in one place.
LOWERINGS: tuple[Lowering, ...] = ops_nn.LOWERINGS + ops_math.LOWERINGS + ops_tensor.LOWERINGS + ops_quant.LOWERINGS


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
    unfolded_ops = frozenset({"DequantizeLinear"})  # int8 weights stay int8 for XNNPACK's quantized kernels
    op_support: tuple[OpSupport, ...] = tuple(entry.support for entry in LOWERINGS)

    def availability(self) -> Availability:
        """Available when torch and executorch are importable; the version is executorch's."""
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

    def preload(self) -> None:
        """Import torch, the exporter and the XNNPACK partitioner (quietly); seconds."""
        try:
            with quiet():
                import executorch.exir  # noqa: F401
                from executorch.backends.xnnpack.partition import xnnpack_partitioner  # noqa: F401
        except Exception:  # reported by the compile that needs it
            pass

    def backends(self) -> list[str]:
        """``["cpu"]``: XNNPACK's CPU kernels, ExecuTorch's portable ones for the rest."""
        return ["cpu"]

    def compile(self, partition: onnx.ModelProto, options: CompileOptions) -> Executable:
        """Lower a static-shape partition to a ``.pte`` program and load it.

        Args:
            partition: a self-contained partition whose every input dim is a
                known int (the core specializes symbolic dims first).
            options: ``options.options`` must be empty (no delegate options).

        Returns:
            An :class:`~.executable.ExecuTorchExecutable` taking and returning
            NumPy arrays of the partition's dtypes (float32, int32, int64,
            bool) and static shapes.

        Raises:
            DelegateError: an unknown option, an input with a symbolic dim, a
                torch.export or ExecuTorch lowering failure (with the
                framework's reason), or a program the runtime rejects.
            LoweringError: a node the translator cannot trace (a
                ``DelegateError``).
        """
        _check_options(options.options)
        with quiet():
            from .convert import OnnxModule, input_shapes, lower_module
            from .executable import ExecuTorchExecutable

            shapes = input_shapes(partition)
            module = OnnxModule(prepare_qdq(partition), lowering_table())
            pte = lower_module(module, partition, shapes)
            return ExecuTorchExecutable(pte, module.input_names, module.output_names, shapes, options.profiling)

    def load(self, artifact: bytes, partition: onnx.ModelProto, options: CompileOptions) -> Executable:
        """Load a cached ``.pte`` program (the bytes ``serialize()`` returned).

        Args:
            artifact: the program bytes.
            partition: the partition it was compiled from (boundary names and
                static input shapes).
            options: must be empty, as for :meth:`compile`.

        Raises:
            DelegateError: an unknown option, or a program the runtime rejects.
        """
        _check_options(options.options)
        with quiet():
            from .convert import input_shapes
            from .executable import ExecuTorchExecutable

            inits = {t.name for t in partition.graph.initializer}
            inputs = [i.name for i in partition.graph.input if i.name not in inits]
            outputs = [o.name for o in partition.graph.output]
            return ExecuTorchExecutable(artifact, inputs, outputs, input_shapes(partition), options.profiling)


def _check_options(options: Mapping[str, Any]) -> None:
    if options:
        raise DelegateError(
            f"unknown executorch option(s) {sorted(options)}; the executorch delegate takes none besides backend "
            "(pin dynamic dims with SessionOptions.free_dimensions; other dims are specialized at run time)"
        )


@hookimpl
def unified_delegates() -> list[Delegate]:
    """The plugin hook: registers :class:`ExecuTorchDelegate` (entry point ``unified.delegates.executorch``)."""
    return [ExecuTorchDelegate()]
