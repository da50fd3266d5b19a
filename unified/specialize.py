"""Specialization: a partition with symbolic dims, made static for one shape signature.

Delegates that compile static shapes only (``Delegate.static_shapes``: TFLite,
ExecuTorch, Core ML) never see a symbolic dim. For each concrete signature of
a partition's inputs (their shapes, plus the values of the small
shape-derived integer inputs computed by other partitions), :func:`specialize`
writes a copy of the partition with those dims fixed and those values as
initializers, re-runs ONNX shape inference and folds the shape computations
that have become constants (``unified.onnx.fold``) -- what ONNX Runtime's constant
folding does for free dimensions, done per signature.

:class:`SpecializedExecutable` is what the session runs for such a
partition: it keeps one compiled executable per signature in an LRU (the
compile cache keeps them across sessions, keyed by the specialized model).
"""

from __future__ import annotations

import logging
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import onnx
from onnx import numpy_helper

from unified.delegate import Executable
from unified.errors import DelegateError, UnifiedError
from unified.onnx.fold import pin_and_fold, referenced
from unified.trace import OpTracer, Tracer, maybe_span

__all__ = ["specialize", "Specialization", "SpecializedExecutable", "shape_text"]

log = logging.getLogger(__name__)


def shape_text(shapes: Mapping[str, Sequence[int]]) -> str:
    """``{"x": (1, 3)}`` -> ``"x[1,3]"`` (for messages)."""
    return ", ".join(f"{k}[{','.join(str(d) for d in v)}]" for k, v in shapes.items())


@dataclass(frozen=True)
class Specialization:
    """One partition made static.

    Attributes:
        model: the static ONNX model handed to the delegate; None when every
            output folded to a constant (nothing left to compile).
        constants: partition outputs that folded to constants, name -> array.
        feeds: the inputs ``model`` still reads, in its input order.
    """

    model: onnx.ModelProto | None
    constants: Mapping[str, np.ndarray] = field(default_factory=dict)
    feeds: tuple[str, ...] = ()


def _infer(model: onnx.ModelProto) -> onnx.ModelProto:
    try:
        return onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True, data_prop=True)
    except Exception:
        return onnx.shape_inference.infer_shapes(model, check_type=False, strict_mode=False, data_prop=True)


def specialize(
    model: onnx.ModelProto,
    shapes: Mapping[str, Sequence[int]],
    values: Mapping[str, np.ndarray] | None = None,
    unfolded: frozenset[str] = frozenset(),
) -> Specialization:
    """Fix a partition's input shapes (and some input values) and fold.

    Args:
        model: a partition model (not modified).
        shapes: input name -> concrete shape, for every graph input not in
            ``values``.
        values: input name -> value to bake in as an initializer (small
            shape-derived integer tensors).
        unfolded: op types left as nodes (``Delegate.unfolded_ops``).

    Returns:
        The :class:`Specialization`.

    Raises:
        DelegateError: a value's shape is still not static after folding (a
            data-dependent shape), or shape inference rejects the shapes.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            out = pin_and_fold(model, shapes, _infer, values, unfolded=unfolded)
        except Exception as exc:
            raise DelegateError(
                f"shape inference rejected input shapes {shape_text(shapes)}: {' '.join(str(exc).split())[:300]}"
            ) from None
    g = out.graph
    inits = {t.name: t for t in g.initializer}
    constants = {o.name: numpy_helper.to_array(inits[o.name]) for o in g.output if o.name in inits}
    if constants:
        kept = [o for o in g.output if o.name not in constants]
        del g.output[:]
        g.output.extend(kept)
    _require_static(out, shapes)
    feeds = tuple(i.name for i in g.input if i.name not in inits)
    return Specialization(out if len(g.output) else None, constants, feeds)


def _require_static(model: onnx.ModelProto, shapes: Mapping[str, Sequence[int]]) -> None:
    """Every value some node reads, and every output, has a static shape (an
    unread optional output, such as Dropout's mask, is not looked at).

    Raises:
        DelegateError: naming the first value whose shape is not static.
    """
    g = model.graph
    types = {vi.name: vi.type for vi in list(g.input) + list(g.value_info) + list(g.output)}
    read = referenced(g) | {o.name for o in g.output}
    for n in g.node:
        for name in list(n.output):
            if not name or name not in read:
                continue
            tp = types.get(name)
            if tp is None or not tp.HasField("tensor_type"):
                if tp is None:
                    raise DelegateError(
                        f"value '{name}' (output of {n.op_type} '{n.name}') has no inferred shape after "
                        f"specializing to {shape_text(shapes)}; its shape depends on data"
                    )
                continue
            tt = tp.tensor_type
            if not tt.HasField("shape") or any(not d.HasField("dim_value") for d in tt.shape.dim):
                dims = [d.dim_value if d.HasField("dim_value") else "?" for d in tt.shape.dim] if tt.HasField("shape") else "?"
                raise DelegateError(
                    f"value '{name}' (output of {n.op_type} '{n.name}') has shape {dims} after specializing to "
                    f"{shape_text(shapes)}; its shape depends on data"
                )


CompileFn = Callable[[onnx.ModelProto], Executable]


class SpecializedExecutable(Executable):
    """Runs a partition through one compiled executable per input signature.

    Args:
        model: the partition model (symbolic dims allowed).
        compile_fn: compiles a static specialized model (through the cache).
        derived_inputs: inputs whose *values* are part of the signature
            (shape-derived integer tensors); baked into the model.
        capacity: LRU size (number of signatures kept compiled).
        fallback_fn: compiles the unspecialized partition on the fallback
            delegate when the delegate fails on a signature; None raises.
        label: ``"partition p2 on 'tflite'"``, for messages.
        tracer: when the session profiles: each specialization (shape
            inference and folding) is a ``compile`` span.
        unfolded: op types the specialization leaves as nodes
            (``Delegate.unfolded_ops``).
    """

    def __init__(
        self,
        model: onnx.ModelProto,
        compile_fn: CompileFn,
        derived_inputs: Sequence[str] = (),
        capacity: int = 8,
        fallback_fn: Callable[[], Executable] | None = None,
        label: str = "",
        tracer: Tracer | None = None,
        unfolded: frozenset[str] = frozenset(),
    ):
        inits = {t.name for t in model.graph.initializer}
        self.input_names = [i.name for i in model.graph.input if i.name not in inits]
        self.output_names = [o.name for o in model.graph.output]
        self._model = model
        self._compile = compile_fn
        self._derived = tuple(x for x in derived_inputs if x in self.input_names)
        self._shaped = tuple(x for x in self.input_names if x not in self._derived)
        self._capacity = max(1, int(capacity))
        self._fallback_fn = fallback_fn
        self._fallback_exe: Executable | None = None
        self._label = label
        self._tracer = tracer
        self._unfolded = frozenset(unfolded)
        self._lru: OrderedDict[tuple, tuple[Executable | None, Specialization | None]] = OrderedDict()
        self.compiled = 0
        self.fallbacks: list[str] = []

    @property
    def details(self) -> Mapping[str, Any]:
        """The details of the most recently compiled specialization (e.g. ops taken by XNNPACK)."""
        inner = [e for e, _ in self._lru.values() if e is not None]
        return dict(getattr(inner[-1], "details", None) or {}) if inner else {}

    def prepare(self, shapes: Mapping[str, Sequence[int]], values: Mapping[str, np.ndarray] | None = None) -> None:
        """Compile the signature ``shapes``/``values`` now (at session creation for static partitions).

        Raises:
            DelegateError: the delegate failed on it (no fallback is tried here).
        """
        key = self._key_of(shapes, values or {})
        self._lru[key] = self._build(shapes, values or {}, allow_fallback=False)

    @property
    def specialization(self) -> Specialization | None:
        """The only specialization, when exactly one is compiled on the delegate (for bundles)."""
        return next(iter(self._lru.values()))[1] if len(self._lru) == 1 else None

    def _key_of(self, shapes, values) -> tuple:
        return tuple(tuple(shapes[n]) for n in self._shaped) + tuple(
            (np.asarray(values[n]).dtype.str, np.asarray(values[n]).tobytes()) for n in self._derived
        )

    def _build(self, shapes, values, allow_fallback: bool):
        try:
            with maybe_span(self._tracer, "specialize", "compile", shapes=shape_text(shapes)):
                spec = specialize(self._model, shapes, values, self._unfolded)
            exe = self._compile(spec.model) if spec.model is not None else None
        except Exception as exc:
            if not allow_fallback or self._fallback_fn is None:
                if isinstance(exc, UnifiedError):
                    raise
                raise DelegateError(f"{self._label}: {type(exc).__name__}: {exc}") from exc
            reason = " ".join(str(exc).split())[:300]
            self.fallbacks.append(reason)
            from unified.planner import FallbackWarning

            warnings.warn(
                f"{self._label} could not be compiled for input shapes {shape_text(shapes)} ({reason}); "
                "this shape signature runs on the fallback delegate",
                FallbackWarning,
                stacklevel=4,
            )
            if self._fallback_exe is None:
                self._fallback_exe = self._fallback_fn()
            return self._fallback_exe, None
        self.compiled += 1
        log.debug("%s: compiled for %s", self._label, shape_text(shapes))
        return exe, spec

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run on the executable compiled for these inputs' signature (compiling it on first sight).

        Raises:
            DelegateError: the delegate failed on this signature and there is no fallback.
        """
        return self._run(inputs, None)

    def run_traced(self, inputs: Mapping[str, np.ndarray], tracer: OpTracer) -> dict[str, np.ndarray]:
        """:meth:`run`, with the chosen executable's ``run_traced`` (its op spans)."""
        return self._run(inputs, tracer)

    def end_profiling(self, tracer: OpTracer) -> None:
        """``end_profiling`` of every executable still kept (evicted signatures report nothing)."""
        kept = [e for e, _ in self._lru.values() if e is not None] + [self._fallback_exe]
        for exe in dict.fromkeys(e for e in kept if e is not None):
            exe.end_profiling(tracer)

    def _run(self, inputs: Mapping[str, np.ndarray], tracer: OpTracer | None) -> dict[str, np.ndarray]:
        shapes = {n: inputs[n].shape for n in self._shaped}
        key = tuple(shapes[n] for n in self._shaped) + tuple(
            (inputs[n].dtype.str, inputs[n].tobytes()) for n in self._derived
        )
        entry = self._lru.get(key)
        if entry is None:
            values = {n: inputs[n] for n in self._derived}
            entry = self._build(shapes, values, allow_fallback=True)
            self._lru[key] = entry
            while len(self._lru) > self._capacity:
                self._lru.popitem(last=False)
        else:
            self._lru.move_to_end(key)
        exe, spec = entry
        if spec is None:  # the fallback runs the unspecialized partition
            return exe.run(inputs) if tracer is None else exe.run_traced(inputs, tracer)
        if exe is None:
            out = {}
        else:
            feed = {n: inputs[n] for n in spec.feeds}
            out = exe.run(feed) if tracer is None else exe.run_traced(feed, tracer)
        for name, value in spec.constants.items():
            out[name] = value.copy()
        return out

    def serialize(self) -> bytes:
        """The artifact of the only specialization (bundles); NotImplementedError otherwise."""
        if len(self._lru) != 1:
            raise NotImplementedError
        exe, spec = next(iter(self._lru.values()))
        if exe is None or spec is None:
            raise NotImplementedError
        return exe.serialize()

    @property
    def artifact_suffix(self) -> str:
        """Suffix of :meth:`serialize`'s bytes, from the delegate's executable."""
        exe = next(iter(self._lru.values()))[0] if self._lru else None
        return exe.artifact_suffix if exe is not None else ".bin"
