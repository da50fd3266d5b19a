"""The reference delegate's kernel table: op type -> one small NumPy function.

A kernel is ``fn(xs, attrs, opset) -> list of outputs``, with ``xs`` the
node's inputs (None for an omitted optional input) and ``attrs`` its
attributes as :func:`unified.onnx.decode_attributes` gives them. Kernels keep
the input dtype (float32 in, float32 out) and never loop over output elements
in Python: convolutions go through im2col and NumPy's BLAS (``np.matmul``),
pooling through ``sliding_window_view``; the only Python loops run over
kernel offsets (depthwise convolution, col2im) or axes.

The kernels live by family: ``ops_conv.py`` (convolution and pooling),
``ops_math.py`` (matrix products, element-wise, normalization, reductions),
``ops_quant.py`` (quantization, integer MAC ops), ``ops_tensor.py`` (data movement).
"""

from __future__ import annotations

from typing import Any, Callable

from unified.delegates.reference.ops_conv import conv, conv_transpose, pool
from unified.delegates.reference.ops_math import MATH_KERNELS, erf
from unified.delegates.reference.ops_quant import QUANT_KERNELS
from unified.delegates.reference.ops_tensor import TENSOR_KERNELS

__all__ = ["KERNELS", "Kernel", "erf", "run_kernel"]

Kernel = Callable[[list, dict, int], list]

KERNELS: dict[str, Kernel] = {
    # windowed ops: MAC (the array) and pooling
    "Conv": lambda xs, a, o: [conv(xs[0], xs[1], xs[2] if len(xs) > 2 else None, a)],
    "ConvTranspose": lambda xs, a, o: [conv_transpose(xs[0], xs[1], xs[2] if len(xs) > 2 else None, a)],
    "MaxPool": lambda xs, a, o: [pool(xs[0], a, "max")],
    "AveragePool": lambda xs, a, o: [pool(xs[0], a, "avg")],
    **MATH_KERNELS,
    **TENSOR_KERNELS,
    **QUANT_KERNELS,
}
"""Op type -> kernel. The op-support table (``support.py``) lists the same ops."""


def run_kernel(op_type: str, xs: list, attrs: dict[str, Any], opset: int) -> list:
    """Run the kernel for ``op_type`` (a KeyError for an op not in :data:`KERNELS`)."""
    return KERNELS[op_type](xs, attrs, opset)
