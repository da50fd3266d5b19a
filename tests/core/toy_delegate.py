"""A small third-party-style delegate for planner and session tests.

It registers exactly as an outside plugin would (a module with a
``unified_delegates`` hookimpl) and runs its partitions with NumPy, so the
tests check both where nodes went and that the numbers are right.
"""

from __future__ import annotations

import numpy as np
import onnx

import unified
from unified import Availability, Delegate, Executable, OpSupport

KERNELS = {
    "Add": lambda a, b: a + b,
    "Mul": lambda a, b: a * b,
    "Sub": lambda a, b: a - b,
    "Relu": lambda x: np.maximum(x, 0),
    "Neg": lambda x: -x,
}


def _float_only(node):
    if any(t.name and t.elem_type != onnx.TensorProto.FLOAT for t in node.inputs):
        return "toy runs float32 only"
    return None


class ToyExecutable(Executable):
    def __init__(self, model: onnx.ModelProto):
        self.model = model
        inits = {t.name for t in model.graph.initializer}
        self.input_names = [i.name for i in model.graph.input if i.name not in inits]
        self.output_names = [o.name for o in model.graph.output]
        self.consts = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
        self.runs = 0

    def run(self, inputs):
        self.runs += 1
        env = {**self.consts, **inputs}
        for n in self.model.graph.node:
            env[n.output[0]] = KERNELS[n.op_type](*(env[x] for x in n.input)).astype(np.float32)
        return {k: env[k] for k in self.output_names}


class ToyDelegate(Delegate):
    """Claims float32 Add/Mul/Sub/Relu/Neg; ``refuse`` names op types or node names to decline."""

    default_priority = None
    op_support = tuple(OpSupport(op, constraints=(_float_only,)) for op in KERNELS)

    def __init__(self, name: str = "toy", refuse: tuple[str, ...] = ()):
        self.name = name
        self.refuse = refuse
        self.compiled: list[onnx.ModelProto] = []

    def availability(self):
        return Availability(True, version="1.0")

    def backends(self):
        return ["cpu"]

    def supports(self, node):
        if node.op_type in self.refuse or node.name in self.refuse:
            return unified.Support.no(f"{self.name} refuses {node.op_type} in this test")
        return super().supports(node)

    def compile(self, partition, options):
        onnx.checker.check_model(partition)
        self.compiled.append(partition)
        return ToyExecutable(partition)


class ToyPlugin:
    """A plugin object holding any number of toy delegates."""

    def __init__(self, *delegates: ToyDelegate):
        self.delegates = list(delegates) or [ToyDelegate()]

    @unified.hookimpl
    def unified_delegates(self):
        return self.delegates
