"""An ``onnx.backend.base.Backend`` over any unified delegate.

ONNX's own test runner (``onnx.backend.test.BackendTest``) drives a backend
through ``prepare(model).run(inputs)``; :func:`backend_for` gives it one
that runs every model on a single unified delegate, strictly (no fallback),
so a delegate author can run ONNX's suite unchanged::

    import onnx.backend.test
    from unified.conformance.onnx_backend import backend_for

    backend_test = onnx.backend.test.BackendTest(backend_for("tflite"), __name__)
    backend_test.include(r"test_(conv|relu|add)_")
    globals().update(backend_test.test_cases)   # unittest / pytest collect these

``is_compatible`` asks the planner whether the delegate claims every node,
so ``BackendTest`` skips what the delegate declines instead of failing it.
"""

from __future__ import annotations

import unittest
from typing import Any, ClassVar, Sequence

import numpy as np
import onnx
from onnx.backend.base import Backend, BackendRep

from unified.errors import UnsupportedError

__all__ = ["UnifiedBackend", "UnifiedBackendRep", "backend_for", "DelegateDeclines"]


class DelegateDeclines(UnsupportedError, unittest.SkipTest):
    """The delegate declines a node of the model: an ``UnsupportedError`` that
    unittest and pytest report as a skip (ONNX's runner prepares node tests
    without asking ``is_compatible``)."""


class UnifiedBackendRep(BackendRep):
    """A model prepared on one delegate: an ``InferenceSession`` with strict planning."""

    def __init__(self, session):
        self.session = session
        self._inputs = [i.name for i in session.get_inputs()]

    def run(self, inputs: Any, **kwargs: Any) -> tuple:
        """Run once.

        Args:
            inputs: a list of arrays in the order of the model's inputs
                (initializers excluded), a dict name -> array, or one array.

        Returns:
            The outputs in model order (a tuple of arrays).
        """
        if isinstance(inputs, dict):
            feed = dict(inputs)
        else:
            if isinstance(inputs, np.ndarray):
                inputs = [inputs]
            feed = dict(zip(self._inputs, inputs))
        return tuple(self.session.run(None, feed))


class UnifiedBackend(Backend):
    """Runs models on the delegate named by :attr:`delegate` (CPU device only).

    Use :func:`backend_for` to get one bound to a delegate.
    """

    delegate: ClassVar[str] = "onnxruntime"
    plugins: ClassVar[Sequence[Any]] = ()

    @classmethod
    def _options(cls):
        from unified.session import SessionOptions

        return SessionOptions(strict=True, fallback=None, use_cache=False, plugins=list(cls.plugins))

    @classmethod
    def is_compatible(cls, model: onnx.ModelProto, device: str = "CPU", **kwargs: Any) -> bool:
        """True when the delegate claims every node of ``model``."""
        from unified.errors import UnifiedError
        from unified.graph import Graph
        from unified.planner import DelegateChoice, make_plan
        from unified.plugins import registry

        try:
            reg = registry().extended(cls.plugins)
            delegate = reg.get(cls.delegate)
            av = reg.availability(cls.delegate)
            if not (av.ok and av.executes):
                return False
            backend = (list(delegate.backends()) or [""])[0]
            make_plan(Graph(model), [DelegateChoice(delegate, backend, {})], None, strict=True)
        except UnifiedError:
            return False
        return True

    @classmethod
    def prepare(cls, model: onnx.ModelProto, device: str = "CPU", **kwargs: Any) -> UnifiedBackendRep:
        """Plan (strict) and compile ``model`` on the delegate.

        Raises:
            DelegateDeclines: the delegate declines some node (an
                ``UnsupportedError``, reported by unittest as a skip).
            unified.DelegateError: compiling failed.
        """
        from unified.session import InferenceSession

        super().prepare(model, device, **kwargs)
        try:
            session = InferenceSession(model, [cls.delegate], cls._options())
        except DelegateDeclines:
            raise
        except UnsupportedError as exc:
            raise DelegateDeclines(str(exc)) from None
        return UnifiedBackendRep(session)

    @classmethod
    def supports_device(cls, device: str) -> bool:
        return device == "CPU"


def backend_for(delegate: str, plugins: Sequence[Any] = ()) -> type[UnifiedBackend]:
    """A :class:`UnifiedBackend` subclass bound to ``delegate``.

    Args:
        delegate: a registered delegate name.
        plugins: extra plugin objects the sessions register (as
            ``SessionOptions.plugins``), e.g. a delegate under development.
    """
    name = "UnifiedBackend_" + "".join(c if c.isalnum() else "_" for c in delegate)
    return type(name, (UnifiedBackend,), {"delegate": delegate, "plugins": tuple(plugins)})
