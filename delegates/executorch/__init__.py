"""The ``executorch`` delegate: ONNX partitions lowered to ``.pte`` programs with
XNNPACK, run by the ExecuTorch runtime. Backend: ``cpu``.

Compiling a partition:

1. ONNX -> ``torch.nn.Module`` (``convert``): a table-driven translator
   (``ops_nn``, ``ops_math``, ``ops_tensor``, sharing ``ops_common``; one
   :class:`~.support.Lowering` per ONNX op, declaring the opsets, dtypes
   and attributes it handles). The same table is
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

Running (``executable``): ``executorch.runtime.Runtime`` (``load_program`` / ``load_method`` /
``execute``), inputs and outputs as NumPy arrays.

``Executable.details`` (shown by ``unified plan``): ``xnnpack_ops``, the edge
ops the XNNPACK partitioner took, ``portable_ops``, those left on
ExecuTorch's portable kernels, and ``xnnpack_quantized_ops``, the delegated
compute ops reading dequantized int8 values (XNNPACK's int8 kernels).

Quantized QDQ models (``ops_quant``): QuantizeLinear / DequantizeLinear
become the ``quantized_decomposed`` ops PT2E quantization leaves, int8
weights stay int8 (the core does not fold DequantizeLinear for this
delegate: ``unfolded_ops``), int32 biases fold to float, and XNNPACK's
partitioner lowers the ``dq -> conv / linear / add ... -> q`` groups to its
int8 kernels. Claimed: int8 activations (per-tensor) and int8 weights
(per-tensor or per-channel); uint8, int16, int4, float8 and block
quantization are declined with a reason.

torch and executorch are imported only when compiling or loading, so
importing this module is cheap and a missing executorch makes the delegate
unavailable with a reason. They are imported quietly (``quiet``): their log
lines and warnings reach the user only when the ``unified`` logger is at
DEBUG.

Files: ``delegate`` (the Delegate class and the lowering table), ``support``
(the table's entry type and the checks behind every claim and decline),
``convert`` (partition -> torch module -> ``.pte``), ``ops_*`` (the
lowerings; ``ops_quant``: Q/DQ), ``executable`` (run, serialize), ``quiet``
(framework logs).
"""

from __future__ import annotations

from .delegate import LOWERINGS, ExecuTorchDelegate, lowering_table, unified_delegates

__all__ = ["ExecuTorchDelegate", "LOWERINGS", "lowering_table", "unified_delegates"]
