"""A test delegate, ``exit_add``, registered by path: it claims float32 ``Add``
and computes it right, except that a 0-d (scalar) input makes it end its
process with ``os._exit(3)`` — so on the ``toy-add`` source exactly one case
(``toy-add/scalar``) kills its worker."""

from __future__ import annotations

import os
from typing import Mapping

import numpy as np
import onnx

from unified import Availability, CompileOptions, Delegate, Executable, OpSupport, hookimpl


class _ExitAddExecutable(Executable):
    def __init__(self, model: onnx.ModelProto):
        inits = {t.name for t in model.graph.initializer}
        self.input_names = [i.name for i in model.graph.input if i.name not in inits]
        self.output_names = [o.name for o in model.graph.output]
        self.node = model.graph.node[0]

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        a, b = (np.asarray(inputs[n]) for n in self.node.input)
        if a.ndim == 0 or b.ndim == 0:
            os._exit(3)
        return {self.output_names[0]: a + b}


class ExitAdd(Delegate):
    name = "exit_add"
    op_support = (OpSupport("Add", dtypes=frozenset({onnx.TensorProto.FLOAT})),)
    cacheable = False

    def availability(self) -> Availability:
        return Availability(True, "", "0.0-test")

    def backends(self) -> list[str]:
        return ["cpu"]

    def compile(self, partition: onnx.ModelProto, options: CompileOptions) -> Executable:
        return _ExitAddExecutable(partition)


@hookimpl
def unified_delegates():
    return [ExitAdd()]
