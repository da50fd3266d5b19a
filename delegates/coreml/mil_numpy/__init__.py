"""A NumPy evaluator of saved ML Programs: Core ML numerics without a Mac.

It reads the program the coreml delegate saved (the ``.mlpackage`` spec and
weight blob, :mod:`.reader`) and executes it op by op with NumPy
(:mod:`.evaluator`), emulating an fp16 program's precision: every tensor is
rounded to its declared dtype after each op, products and sums accumulate in
float32 (:mod:`.args`). It is the ``mil-numpy`` backend of the coreml
delegate: a check of the lowering's numbers, **not Apple's runtime** (Core ML
may fuse ops, pick other kernels, or accumulate in fp16 on the Neural Engine).

==================  ==========================================================
module              job
==================  ==========================================================
:mod:`.reader`      ``Model.proto`` + ``weights/weight.bin`` -> :class:`MilProgram`
:mod:`.args`        operand access and the precision rule
:mod:`.evaluator`   :func:`evaluate`, :data:`KERNELS`
:mod:`.ops_math`    elementwise, activations, comparisons, cast, select
:mod:`.ops_tensor`  shape, indexing, creation, reductions
:mod:`.ops_nn`      conv, pooling, normalization, matmul/linear, softmax, resize
==================  ==========================================================
"""

from .evaluator import KERNELS, evaluate, run_op
from .reader import Arg, MilOp, MilProgram, read_blob, read_program

__all__ = ["KERNELS", "evaluate", "run_op", "read_program", "read_blob", "MilProgram", "MilOp", "Arg"]
