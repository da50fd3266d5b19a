"""Bisection: the first ONNX node whose output on a delegate diverges from ONNX Runtime.

Let ``C`` be the nodes the delegate ``D`` claims (its plan with the
fallback), in the model's topological order, and ``N = len(C)``. A *probe*
with front ``k`` runs ``C[:k]`` on ``D`` and pins ``C[k:]`` to the fallback
(``SessionOptions.placement`` by node name), with the inputs and outputs of
``C[k-1]`` added to the model's outputs so they are partition boundaries.
The probe *diverges* when a tensor some partition of ``D`` returns fails the
tolerance against ONNX Runtime's value of that tensor in the whole model
(``unified.debug.runs.Reference``). Everything after the front runs on the
fallback, so only ``D``'s nodes can cause it.

The search probes ``k = N`` first (the delegate's own plan; nothing diverges:
done), then halves ``(lo, hi]`` with ``lo = 0`` (nothing on ``D`` cannot
diverge) and ``hi = N`` until ``hi = lo + 1``: ``C[hi - 1]`` is the first
node whose inclusion makes ``D``'s outputs diverge. Compiles: one for the
reference, one per probe, so ``ceil(log2 N) + 2`` at most.

Limits: divergence is assumed monotone in ``k`` (a bug whose effect a later
node of the front masks, e.g. a wrong negative value into a Relu, can move
the answer later or hide it); each probe compiles a new plan (the compile
cache keeps unchanged partitions).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from unified.accuracy import accuracy_gate
from unified.choices import DelegateSpec
from unified.debug import runs
from unified.errors import InputError
from unified.graph import Graph, ModelLike
from unified.pipeline import plan_model

if TYPE_CHECKING:
    from unified.session import SessionOptions

__all__ = ["bisect", "BisectResult", "Probe"]


@dataclass(frozen=True)
class Probe:
    """One probe of the search.

    Attributes:
        front: number of the delegate's nodes (in topological order) run on it.
        last_node: the last of them.
        diverged: some tensor the delegate returned failed the tolerance.
        worst_tensor: the delegate-produced tensor with the largest error.
        worst_error: its error (the gate's measure; see ``BisectResult.gate``).
    """

    front: int
    last_node: str
    diverged: bool
    worst_tensor: str
    worst_error: float


@dataclass(frozen=True)
class BisectResult:
    """What :func:`bisect` found.

    Attributes:
        delegate: the delegate searched.
        gate: the tolerance in words (``unified.accuracy.accuracy_gate``).
        candidates: N, the number of nodes the delegate claims.
        node / op_type / index: the first diverging node, its op type and
            its position in the model's topological order; None when the
            delegate's own plan does not diverge.
        outputs / inputs: one dict per output / input of that node (in the
            probe that found it): ``tensor``, ``source`` (``"model input"``,
            ``"initializer"`` or ``"p2 tflite"``: the partition and delegate
            that produced it), and for computed tensors ``max_abs``,
            ``max_rel``, ``cosine``, ``sqnr_db``, ``error``, ``ok``.
        compiles: plans compiled (each probe's, and the reference's).
        probes: the probes in the order they ran.
    """

    delegate: str
    gate: str
    candidates: int
    node: str | None
    op_type: str | None
    index: int | None
    outputs: tuple[dict, ...] = ()
    inputs: tuple[dict, ...] = ()
    compiles: int = 0
    probes: tuple[Probe, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (non-finite floats as is; see ``unified.debug.rows_to_json`` for strict JSON)."""
        return asdict(self)

    def report(self) -> str:
        """The probes, the node found and its inputs' and outputs' errors, as text."""
        lines = [f"bisect: '{self.delegate}' claims {self.candidates} node(s); tolerance: {self.gate}"]
        for p in self.probes:
            verdict = "diverges" if p.diverged else "ok"
            lines.append(f"  front {p.front:>5} (last '{p.last_node}'): {verdict}; worst "
                         f"'{p.worst_tensor}' error {p.worst_error:.3g}")
        if self.node is None:
            lines.append(f"no node diverges: every tensor '{self.delegate}' returns is within the tolerance")
        else:
            lines.append(f"first diverging node: '{self.node}' ({self.op_type}), node {self.index} of the model")
            for role, rows in (("output", self.outputs), ("input", self.inputs)):
                for r in rows:
                    figures = "exact" if "error" not in r else (
                        f"error {r['error']:.3g}, max_abs {r['max_abs']:.3g}, cosine {r['cosine']:.6g}, "
                        f"sqnr {r['sqnr_db']:.1f} dB{'' if r['ok'] else ' (fails)'}")
                    lines.append(f"  {role} '{r['tensor']}' from {r['source']}: {figures}")
        bound = math.ceil(math.log2(self.candidates)) + 2 if self.candidates else 1
        lines.append(f"compiles: {self.compiles} (bound ceil(log2 N) + 2 = {bound})")
        return "\n".join(lines)


def bisect(
    model: ModelLike | Graph,
    delegate: DelegateSpec,
    inputs: Mapping[str, Any] | None = None,
    *,
    tolerance: Mapping[str, float] | None = None,
    options: "SessionOptions | None" = None,
    seed: int = 0,
) -> BisectResult:
    """Find the first node (topological order) whose output on ``delegate`` diverges from ONNX Runtime.

    See the module docstring for the method and its limits.

    Args:
        model: path, bytes, ``onnx.ModelProto`` or a loaded ``Graph``.
        delegate: a delegate name or ``(name, options)`` pair.
        inputs: input name -> array; others drawn at random (seeded).
        tolerance: as ``SessionOptions.tuning_tolerance`` (None: max abs
            error <= 1e-3 x max(1, max|ref|) per tensor; ``{"cosine": c}``).
        options: a ``SessionOptions`` (its ``fallback`` runs what is not on
            the delegate; cache, free_dimensions, plugins are used).
        seed: seed of the random inputs.

    Returns:
        A :class:`BisectResult`.

    Raises:
        InputError: no fallback delegate (``fallback=None`` or ``strict``),
            the delegate is the fallback itself, or a bad input.
        TuningError: a malformed tolerance.
        UnsupportedError: the fallback declines a node of the delegate's.
        ModelError, DelegateUnavailableError, DelegateError: see ``compare``.
    """
    graph, options, reg = runs.load(model, options)
    name = delegate if isinstance(delegate, str) else delegate[0]
    if not options.fallback or options.strict:
        raise InputError("bisect runs the nodes behind the front on the fallback delegate; set a fallback and "
                         "strict=False")
    if name == options.fallback:
        raise InputError(f"bisect compares a delegate with ONNX Runtime behind the fallback '{name}'; name another "
                         "delegate")
    gate, gate_text = accuracy_gate(tolerance)
    feed = runs.make_feed(graph, inputs, seed, options.free_dimensions)
    planned = plan_model(graph, [delegate], options, reg=reg, warn=False)
    order = {n: i for i, n in enumerate(graph.node_names)}
    claimed = sorted((n for p in planned.plan.partitions if p.delegate == name for n in p.nodes), key=order.__getitem__)
    if not claimed:
        return BisectResult(name, gate_text, 0, None, None, None)
    search = _Search(graph, feed, options, reg, delegate, name, claimed, gate)
    found = search.run()
    if found is None:
        return BisectResult(name, gate_text, len(claimed), None, None, None, compiles=search.compiles,
                            probes=tuple(search.probes))
    node = claimed[found - 1]
    proto = graph.nodes[order[node]]
    return BisectResult(
        name, gate_text, len(claimed), node, proto.op_type, order[node],
        outputs=tuple(search.describe(found, x) for x in proto.output if x),
        inputs=tuple(search.describe(found, x) for x in proto.input if x),
        compiles=search.compiles, probes=tuple(search.probes),
    )


class _Search:
    """The probes of one bisection and what each measured."""

    def __init__(self, graph: Graph, feed, options, reg, spec, name: str, claimed: Sequence[str], gate):
        self.graph, self.feed, self.options, self.reg = graph, feed, options, reg
        self.spec, self.name, self.claimed, self.gate = spec, name, list(claimed), gate
        self.reference = runs.Reference(graph, feed, options, reg)
        self.exposable = set(runs.exposable(graph)) | {o.name for o in graph.outputs}
        self.nodes = dict(zip(graph.node_names, graph.nodes))
        self.probes: list[Probe] = []
        self.measured: dict[int, dict[str, tuple[str, dict]]] = {}  # front -> tensor -> (source, metrics)
        self.probe_compiles = 0
        # every tensor any probe can measure, fetched from ONNX Runtime in one run
        self.reference.values([x for n in self.claimed for x in self._boundary(n)])

    @property
    def compiles(self) -> int:
        return self.probe_compiles + self.reference.compiles

    def _boundary(self, node: str) -> list[str]:
        proto = self.nodes[node]
        return [x for x in list(proto.input) + list(proto.output) if x in self.exposable]

    def run(self) -> int | None:
        """The front ``k`` whose last node is the first to diverge, or None."""
        n = len(self.claimed)
        if not self.probe(n):
            return None
        lo, hi = 0, n
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if self.probe(mid):
                hi = mid
            else:
                lo = mid
        return hi

    def probe(self, k: int) -> bool:
        last = self.claimed[k - 1]
        target = runs.expose(self.graph, self._boundary(last))
        placement = {n: self.options.fallback for n in self.claimed[k:]}
        built = runs.build(target, [self.spec], self.options, self.reg, placement)
        self.probe_compiles += 1
        env = runs.run_partitions(built, self.feed)
        sources = {t: f"{p.name} {p.delegate}" for p in built.plan.partitions for t in p.outputs}
        ours = {t for p in built.plan.partitions if p.delegate == self.name for t in p.outputs}
        wanted = [t for t in sources if t in self.exposable and (t in ours or t in self._boundary(last))]
        ref = self.reference.values(wanted)  # all fetched up front: no new compile
        measured = {}
        for t in wanted:
            source = sources[t]
            if t in ref and hasattr(env.get(t), "dtype") and env[t].dtype.kind in "fiub":
                measured[t] = (source, runs.tensor_metrics(env[t], ref[t], self.gate))
        self.measured[k] = measured
        judged = [(m["error"], i, t) for i, (t, (_, m)) in enumerate(measured.items()) if t in ours]
        worst_error, _, worst = max(judged, default=(0.0, 0, ""))  # ties: the latest in plan order
        diverged = any(not measured[t][1]["ok"] for _, _, t in judged)
        self.probes.append(Probe(k, last, diverged, worst, float(worst_error)))
        return diverged

    def describe(self, k: int, tensor: str) -> dict:
        """One input or output of the node found, as probe ``k`` measured it."""
        if tensor in self.graph.initializers:
            return {"tensor": tensor, "source": "initializer"}
        if tensor in {i.name for i in self.graph.inputs}:
            return {"tensor": tensor, "source": "model input"}
        source, metrics = self.measured[k].get(tensor, ("not measured (not a partition output)", None))
        return {"tensor": tensor, "source": source, **(metrics or {})}
