"""Deliberately broken delegates, registered as a third-party plugin would be.

Worker processes re-create them by importing this file by path (see
``unified.conformance.workers``). All claim float32 ``Add`` only.

* ``wrong_add``  — claims Add, returns a + b + 1 (wrong numbers -> ``fail``).
* ``abort_add``  — claims Add, ``os.abort()`` while running (-> ``error``).
* ``hang_add``   — claims Add, sleeps for an hour while running (-> ``error``
  once the per-case time limit kills it).
* ``raise_add``  — claims Add, raises while compiling (-> ``error``).
* ``compile_only_add`` — compiles Add correctly but cannot execute here, like
  Core ML off macOS (-> ``compiled``).
* ``slow_import_add`` — right, but its "framework import" takes 3 s, done by
  ``preload()`` or else by the first compile, as coremltools' or torch's: a
  first case must not pay it against its time limit.
"""

from __future__ import annotations

import os
import time
from typing import Mapping

import numpy as np
import onnx

from unified import Availability, CompileOptions, Delegate, Executable, OpSupport, hookimpl

F32 = frozenset({onnx.TensorProto.FLOAT})


class _AddExecutable(Executable):
    def __init__(self, model: onnx.ModelProto, behaviour: str):
        inits = {t.name for t in model.graph.initializer}
        self.input_names = [i.name for i in model.graph.input if i.name not in inits]
        self.output_names = [o.name for o in model.graph.output]
        self.consts = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
        self.nodes = list(model.graph.node)
        self.behaviour = behaviour

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.behaviour == "abort":
            os.abort()
        if self.behaviour == "hang":
            time.sleep(3600)
        env = {**self.consts, **inputs}
        for n in self.nodes:
            env[n.output[0]] = env[n.input[0]] + env[n.input[1]]
            if self.behaviour == "wrong":
                env[n.output[0]] = env[n.output[0]] + np.float32(1)
        return {name: env[name] for name in self.output_names}


class _AddDelegate(Delegate):
    behaviour = "right"
    op_support = (OpSupport("Add", dtypes=F32),)
    cacheable = False

    def availability(self) -> Availability:
        return Availability(True, "", "0.0-test")

    def backends(self) -> list[str]:
        return ["cpu"]

    def compile(self, partition: onnx.ModelProto, options: CompileOptions) -> Executable:
        if self.behaviour == "raise":
            raise RuntimeError("this delegate cannot compile anything (test double)")
        return _AddExecutable(partition, self.behaviour)


def _broken_add(behaviour: str) -> type[_AddDelegate]:
    """The ``_AddDelegate`` subclass ``<Behaviour>Add`` named ``<behaviour>_add``."""
    attrs = {"__module__": __name__, "name": f"{behaviour}_add", "behaviour": behaviour}
    return type(f"{behaviour.title()}Add", (_AddDelegate,), attrs)


WrongAdd, AbortAdd, HangAdd, RaiseAdd = (_broken_add(b) for b in ("wrong", "abort", "hang", "raise"))


class CompileOnlyAdd(_AddDelegate):
    name = "compile_only_add"

    def availability(self) -> Availability:
        return Availability(True, "needs macOS (test double)", "0.0-test", executes=False)


class SlowImportAdd(_AddDelegate):
    name = "slow_import_add"

    imported = False

    def preload(self) -> None:
        self._import()

    def _import(self) -> None:
        if not self.imported:
            time.sleep(3.0)
            self.imported = True

    def compile(self, partition: onnx.ModelProto, options: CompileOptions) -> Executable:
        self._import()
        return super().compile(partition, options)


@hookimpl
def unified_delegates() -> list[Delegate]:
    return [WrongAdd(), AbortAdd(), HangAdd(), RaiseAdd(), CompileOnlyAdd(), SlowImportAdd()]
