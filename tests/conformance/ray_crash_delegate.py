"""A test delegate, ``exit_add``, registered by path: ``broken_delegates``'
float32 ``Add`` double, computed right, except that a 0-d (scalar) input ends
its process with ``os._exit(3)`` — so on the ``toy-add`` source exactly one
case (``toy-add/scalar``) kills its worker."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

import numpy as np
import onnx

from unified import CompileOptions, Executable, hookimpl
from unified.conformance.workers import import_plugin

_broken = import_plugin(str(Path(__file__).with_name("broken_delegates.py")))  # its classes, not its hooks


class _ExitOnScalar(_broken._AddExecutable):
    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        if any(np.ndim(v) == 0 for v in inputs.values()):
            os._exit(3)
        return super().run(inputs)


class ExitAdd(_broken._AddDelegate):
    name = "exit_add"

    def compile(self, partition: onnx.ModelProto, options: CompileOptions) -> Executable:
        return _ExitOnScalar(partition, "right")


@hookimpl
def unified_delegates():
    return [ExitAdd()]
