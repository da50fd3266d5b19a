"""The ``reference`` delegate: ONNX partitions run as NumPy kernels with the
simulated NPU's arithmetic; every run reports the ``npu-sim`` cost model's
cycles, stalls, utilization, DRAM traffic and energy per op.

It is the model delegate to copy. Layout of the package:

* ``delegate.py`` — :class:`ReferenceDelegate`, its options and backend;
* ``support.py`` — the op-support table (what is claimed, and why not);
* ``executable.py`` — :class:`ReferenceExecutable`, the interpreter: a
  schedule of kernel steps, the fp16 / int8 arithmetic, run, serialize, load;
* ``kernels.py`` — the kernel table, op type -> NumPy function, from
  ``ops_conv.py`` (convolution, pooling), ``ops_math.py`` (matrix products,
  element-wise, normalization, reductions, quantization) and
  ``ops_tensor.py`` (data movement) and ``ops_quant.py`` (QuantizeLinear,
  DequantizeLinear incl. blocked int4 / MXFP4, the integer MAC ops);
* ``qdq.py`` — QDQ groups (DequantizeLinear -> op -> QuantizeLinear) run as
  integer kernels.
"""

from __future__ import annotations

from unified.delegate import Delegate
from unified.delegates.reference.delegate import ReferenceDelegate
from unified.delegates.reference.executable import ReferenceExecutable
from unified.delegates.reference.kernels import KERNELS
from unified.delegates.reference.support import OP_SUPPORT
from unified.hookspecs import hookimpl

__all__ = ["ReferenceDelegate", "ReferenceExecutable", "KERNELS", "OP_SUPPORT"]


@hookimpl
def unified_delegates() -> list[Delegate]:
    """The hook: this package's delegate."""
    return [ReferenceDelegate()]
