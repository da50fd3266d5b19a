"""What ``compare`` and ``bisect`` share: inputs, exposing tensors, running partitions, the ONNX Runtime reference.

Every figure these tools report is a tensor *as the delegate computed it at a
partition boundary*: the compiled partitions of one plan are run in order
(:func:`run_partitions`) and every partition output is kept. An intermediate
tensor is made a boundary by adding it to the model's outputs
(:func:`expose`): its partition must then return it, and nothing else about
the plan changes. The reference value of a tensor is ONNX Runtime's for the
whole model with that tensor added as a graph output (:class:`Reference`).
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np
import onnx
from onnx import helper

from unified.errors import DelegateError, InputError, UnifiedError
from unified.graph import Graph, ModelLike, random_feed
from unified.metrics import summary
from unified.pipeline import CompiledModel, compile_model
from unified.plugins import PluginRegistry, registry

if TYPE_CHECKING:
    from unified.session import SessionOptions

__all__ = ["REFERENCE", "load", "make_feed", "exposable", "expose", "build", "run_partitions", "Reference",
           "producers", "tensor_metrics"]

REFERENCE = ("onnxruntime", {"optimization_level": "disable"})
"""The reference: the ``onnxruntime`` delegate alone, graph optimizations off (as ``unified.tune``'s gate)."""

log = logging.getLogger("unified")


def load(model: ModelLike | Graph, options: "SessionOptions | None") -> tuple[Graph, "SessionOptions", PluginRegistry]:
    """The loaded graph, the options (default ones when None) and the plugin registry they extend.

    Raises:
        ModelError: the model cannot be loaded.
        PluginError: a plugin of ``options.plugins`` is rejected.
    """
    from unified.session import SessionOptions

    options = options or SessionOptions()
    graph = model if isinstance(model, Graph) else Graph(model, options.free_dimensions)
    return graph, options, registry().extended(options.plugins)


def make_feed(graph: Graph, inputs: Mapping[str, Any] | None, seed: int, dims: Mapping[str, int]) -> dict:
    """``inputs`` as arrays, with every model input not given drawn at random (``random_feed``, ``seed``).

    Raises:
        InputError: ``inputs`` names an unknown input, or one cannot be drawn at random.
    """
    given = {k: np.asarray(v) for k, v in (inputs or {}).items()}
    infos = graph.input_infos()
    known = [t.name for t in infos]
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise InputError(f"unknown input(s) {unknown}; the model's inputs are: {', '.join(known)}")
    feed = random_feed([t for t in infos if t.name not in given], seed=seed, dims=dims)
    feed.update(given)
    return {n: feed[n] for n in known}


def exposable(graph: Graph) -> list[str]:
    """Node outputs that can be made graph outputs, in topological order.

    Typed numeric tensors only: not a sequence or map, not a string, not an
    unread output (Dropout's mask), not a shape computation (those fold to
    constants inside a static-shape delegate's partition), not already a
    graph output.
    """
    outputs = {o.name for o in graph.outputs}
    names = []
    for n in graph.nodes:
        for o in n.output:
            if not o or o in outputs:
                continue
            t = graph.tensor_info(o)
            if t.kind == "tensor" and t.elem_type not in (0, onnx.TensorProto.STRING) and t.consumed \
                    and not t.shape_derived:
                names.append(o)
    return names


def expose(graph: Graph, names: Sequence[str]) -> onnx.ModelProto:
    """A copy of the loaded model with ``names`` appended to its outputs (typed from shape inference).

    Names that are already outputs, graph inputs, initializers or untyped are skipped.
    """
    model = onnx.ModelProto()
    model.CopyFrom(graph.model)
    have = {o.name for o in model.graph.output} | {i.name for i in model.graph.input} | set(graph.initializers)
    for name in dict.fromkeys(names):
        tp = graph.types.get(name)
        if name in have or tp is None or not tp.HasField("tensor_type") or not tp.tensor_type.elem_type:
            continue
        model.graph.output.append(helper.make_value_info(name, tp))
    return model


def build(model: ModelLike | Graph, delegates: Sequence[Any], options: "SessionOptions", reg: PluginRegistry,
          placement: Mapping[str, str] | None = None) -> CompiledModel:
    """Plan and compile through the one pipeline, executing delegates only.

    The FallbackWarning (nodes on the fallback, compile failures re-planned)
    is logged at INFO, not raised: falling back is expected here, and the
    rows name the delegate of every partition.

    Raises:
        ModelError, DelegateUnavailableError, UnsupportedError, DelegateError: see ``compile_model``.
    """
    opts = options if placement is None else replace(options, placement={**options.placement, **placement})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        built = compile_model(model, list(delegates), opts, reg=reg, execute=True)
    for w in caught:
        log.info("%s", w.message)
    return built


def run_partitions(built: CompiledModel, feed: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """Run the compiled partitions in plan order; return every value seen (inputs and every partition output).

    Raises:
        DelegateError: a delegate raised while running its partition (the
            message names the delegate, partition and first node).
    """
    env: dict[str, Any] = dict(feed)
    for c in built.partitions:
        p = c.partition
        try:
            out = c.executable.run({n: env[n] for n in p.inputs})
        except UnifiedError:
            raise
        except Exception as exc:
            raise DelegateError(
                f"delegate '{p.delegate}' failed running partition {p.name} ({len(p.nodes)} nodes; first node "
                f"'{p.nodes[0]}'): {type(exc).__name__}: {' '.join(str(exc).split())[:1000]}"
            ) from exc
        env.update({k: np.asarray(v) if isinstance(v, np.generic) else v for k, v in dict(out).items()})
    return env


class Reference:
    """ONNX Runtime's value of any tensor of a model, for one feed.

    Each :meth:`values` call that asks for tensors not seen yet runs the whole
    model once on the ``onnxruntime`` delegate alone (graph optimizations
    off, no fallback) with those tensors added as graph outputs; values are
    kept for later calls.

    Args:
        graph: the loaded model.
        feed: input name -> array.
        options: planning and cache options (``fallback`` and ``placement``
            are ignored).
        reg: the plugin registry.
    """

    def __init__(self, graph: Graph, feed: Mapping[str, np.ndarray], options: "SessionOptions",
                 reg: PluginRegistry):
        self._graph = graph
        self._feed = dict(feed)
        self._options = replace(options, fallback=None, strict=False, placement={})
        self._reg = reg
        self._values: dict[str, Any] = dict(feed)
        self.compiles = 0

    def values(self, names: Sequence[str]) -> dict[str, Any]:
        """name -> ONNX Runtime's array (names it cannot produce are left out).

        Raises:
            UnsupportedError: ONNX Runtime declines a node of the model.
            DelegateError: ONNX Runtime failed on the model.
        """
        missing = [n for n in names if n not in self._values]
        if missing:
            built = build(expose(self._graph, missing), [REFERENCE], self._options, self._reg)
            self.compiles += 1
            self._values.update(run_partitions(built, self._feed))
        return {n: self._values[n] for n in names if n in self._values}


def tensor_metrics(actual: np.ndarray, expected: np.ndarray, gate) -> dict[str, Any]:
    """``unified.metrics.summary`` of one tensor plus ``error`` and ``ok`` from an ``accuracy_gate`` function.

    A shape mismatch gives infinite errors and ``ok`` False rather than raising.
    """
    if actual.shape != expected.shape:
        bad = {"max_abs": math.inf, "max_rel": math.inf, "cosine": math.nan, "sqnr_db": -math.inf}
        return {**bad, "error": math.inf, "ok": False}
    out: dict[str, Any] = summary(actual, expected)
    error, ok = gate({"t": actual}, {"t": expected})
    out["error"], out["ok"] = error, ok
    return out


def producers(graph: Graph) -> dict[str, tuple[str, str]]:
    """Value name -> ``(node name, op type)`` of the node that produces it."""
    return {o: (name, n.op_type) for n, name in zip(graph.nodes, graph.node_names) for o in n.output if o}
