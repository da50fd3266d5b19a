"""Why a model fragments: the islands that left the preferred delegate.

``unified plan MODEL --explain`` (and :func:`explain`) answers "why is my
model cut into so many pieces?". The *preferred delegate* is the first
delegate of the priority list (the first available one: the planner's
resolved list). An *island* is a maximal connected set of nodes the plan
placed on any other delegate (connected through the values they pass each
other). For each island it reports

* its size and the reasons the preferred delegate gave for declining its
  nodes (``Plan.rejections``, grouped by op type and reason);
* its two boundaries: the values crossing into the island from nodes outside
  it, and out of it to nodes outside it (model inputs and outputs are not
  counted: they cross anyway), with bytes from the inferred dtypes and shapes
  and an estimated time at a copy bandwidth (:func:`copy_bandwidth`);
* the rewrite that removes it, when one does: pin the symbolic input dims
  (``SessionOptions.free_dimensions`` / ``--free-dim``), fold constant
  computations (``unified.onnx.fold``), upgrade the opset
  (``onnx.version_converter``) or place the island's op types on the
  preferred delegate (``SessionOptions.placement``). Each candidate is
  applied and the rewritten model planned again; the partition count
  reported is that plan's, never a guess.

Estimating boundary bytes needs concrete dims: symbolic input dims are given
the values of ``dims`` (default: 1 for a dim that only appears as an input's
leading axis, the batch; :data:`unified.graph.TRIAL_DIM` = 64 for the others),
the same values the free-dim rewrite pins.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import math
import operator
import time
from collections import Counter
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any, Iterator, Mapping, Sequence

import numpy as np

from unified.errors import InputError
from unified.graph import TRIAL_DIM, Graph, ModelLike
from unified.onnx.dtypes import numpy_name, to_numpy
from unified.onnx.topology import consumers, node_reads, producers
from unified.rewrites import (
    Replanner, Rewrite, best_rewrite, fold_candidate, opset_candidates, pin_candidate, placement_candidate,
)

if TYPE_CHECKING:
    from unified.pipeline import PlannedModel
    from unified.session import SessionOptions

__all__ = [
    "Boundary", "Rewrite", "Island", "Explanation", "explain", "copy_bandwidth", "default_dims", "EXPLAIN_SCHEMA_VERSION",
]

EXPLAIN_SCHEMA_VERSION = 1



@dataclass(frozen=True)
class Boundary:
    """One value crossing an island's boundary.

    Attributes:
        tensor: the value name.
        dtype: NumPy dtype name, e.g. ``"float32"``.
        shape: dims with symbolic input dims replaced by the chosen values;
            None entries where even that leaves a dim unknown.
        bytes: ``prod(shape) * itemsize``; None when a dim is unknown or the
            dtype has no fixed size (strings).
    """

    tensor: str
    dtype: str
    shape: tuple[int | None, ...] | None
    bytes: int | None


@dataclass(frozen=True)
class Island:
    """A maximal connected set of nodes placed off the preferred delegate.

    Attributes:
        index: 0-based, in the order of the island's first node.
        delegates: the delegates running its nodes.
        partitions: indices of the plan partitions it spans.
        nodes / op_types: its nodes, in topological order, and their op types.
        reasons: ``(op type, reason, node count)``: why the preferred delegate
            declined them, most frequent first.
        inputs / outputs: values crossing in (produced outside, read inside)
            and out (produced inside, read outside).
        seconds: estimated boundary time: total boundary bytes / copy
            bandwidth, seconds (None when some bytes are unknown and none known).
        rewrite: the rewrite that removes it, or None when none found.
    """

    index: int
    delegates: tuple[str, ...]
    partitions: tuple[int, ...]
    nodes: tuple[str, ...]
    op_types: tuple[str, ...]
    reasons: tuple[tuple[str, str, int], ...]
    inputs: tuple[Boundary, ...]
    outputs: tuple[Boundary, ...]
    seconds: float | None
    rewrite: Rewrite | None = None

    @property
    def bytes_in(self) -> int:
        """Known bytes crossing in (values of unknown size count 0)."""
        return sum(b.bytes or 0 for b in self.inputs)

    @property
    def bytes_out(self) -> int:
        """Known bytes crossing out (values of unknown size count 0)."""
        return sum(b.bytes or 0 for b in self.outputs)


@dataclass(frozen=True)
class Explanation:
    """Everything ``plan --explain`` prints; iterates over its islands.

    Attributes:
        preferred: the preferred delegate.
        partitions / nodes: the plan's partition and node counts.
        preferred_nodes: nodes the preferred delegate runs.
        dims: the values given to symbolic input dims (for bytes and the
            free-dim rewrite).
        bandwidth: copy bandwidth used for boundary times, bytes per second.
        bandwidth_source: where that number came from.
        islands: the islands, in order.
    """

    preferred: str
    partitions: int
    nodes: int
    preferred_nodes: int
    dims: Mapping[str, int]
    bandwidth: float
    bandwidth_source: str
    islands: tuple[Island, ...]

    def __iter__(self) -> Iterator[Island]:
        return iter(self.islands)

    def __len__(self) -> int:
        return len(self.islands)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (``schema_version`` included); islands carry ``bytes_in``/``bytes_out``."""
        d = dataclasses.asdict(self)
        for island, src in zip(d["islands"], self.islands):
            island["bytes_in"], island["bytes_out"] = src.bytes_in, src.bytes_out
            island["reasons"] = [{"op_type": o, "reason": r, "nodes": n} for o, r, n in src.reasons]
        d["schema_version"] = EXPLAIN_SCHEMA_VERSION
        return d

    def to_json(self, indent: int | None = 2) -> str:
        """:meth:`to_dict` as JSON text."""
        return json.dumps(self.to_dict(), indent=indent)

    def __str__(self) -> str:
        from unified.visualize.text import explanation_text

        return explanation_text(self)


# --- copy bandwidth ------------------------------------------------------------------


@cache
def copy_bandwidth(nbytes: int = 64 << 20, repeats: int = 5) -> float:
    """Measured single-thread memory copy bandwidth here, bytes per second.

    Copies a ``nbytes`` buffer with ``np.copyto`` (a ``memcpy`` for contiguous
    arrays) ``repeats`` times and keeps the fastest; measured once per
    process. A value crossing a partition boundary is copied at least once
    by most delegates (LiteRT's ``set_tensor``, Core ML's ``MLMultiArray``),
    so ``bytes / bandwidth`` is a lower bound on a boundary's cost: it leaves
    out dispatch and layout changes (NCHW -> NHWC).
    """
    src = np.ones(nbytes, dtype=np.uint8)
    dst = np.empty_like(src)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        np.copyto(dst, src)
        best = min(best, time.perf_counter() - start)
    return nbytes / max(best, 1e-9)


# --- islands -------------------------------------------------------------------------


def _islands(graph: Graph, plan, preferred: str) -> list[list[int]]:
    """Node indices of each island (connected through values), ordered by first node."""
    index = {name: i for i, name in enumerate(graph.node_names)}
    off = {index[n] for p in plan.partitions if p.delegate != preferred for n in p.nodes}
    parent = {i: i for i in off}

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    made_by = producers(graph.nodes)
    for i in off:
        for x in node_reads(graph.nodes[i]):
            j = made_by.get(x)
            if j in off:
                parent[root(i)] = root(j)
    groups: dict[int, list[int]] = {}
    for i in sorted(off):
        groups.setdefault(root(i), []).append(i)
    return sorted(groups.values(), key=lambda g: g[0])


def _boundaries(graph: Graph, members: list[int], shapes: Graph | None, dims) -> tuple[list, list]:
    """Values crossing into and out of the island ``members`` (node indices)."""
    inside = set(members)
    made_by = producers(graph.nodes)
    read_by = consumers(graph.nodes)
    model_outputs = {o.name for o in graph.outputs}
    ins: dict[str, None] = {}
    outs: dict[str, None] = {}
    for i in members:
        for x in node_reads(graph.nodes[i]):
            if made_by.get(x) is not None and made_by[x] not in inside:
                ins[x] = None
        for o in graph.nodes[i].output:
            if o and o not in model_outputs and any(j not in inside for j in read_by.get(o, ())):
                outs[o] = None
    return [_boundary(graph, x, shapes, dims) for x in ins], [_boundary(graph, x, shapes, dims) for x in outs]


def _boundary(graph: Graph, name: str, shapes: Graph | None, dims: Mapping[str, int]) -> Boundary:
    info = graph.tensor_info(name)
    if shapes is not None and name in shapes.types:  # the pinned model knows more dims
        pinned = shapes.tensor_info(name)
        if pinned.shape is not None:
            info = pinned
    shape = None
    if info.shape is not None:
        shape = tuple(d if isinstance(d, int) else _dim_value(d, dims) for d in info.shape)
    np_type = to_numpy(info.elem_type)
    size = None
    if shape is not None and np_type is not None and np_type.kind not in "OSU" and None not in shape:
        size = int(np.prod(shape, dtype=np.int64)) * np_type.itemsize
    return Boundary(name, numpy_name(info.elem_type), shape, size)


_DIM_CALLS = {"floor": math.floor, "ceil": math.ceil, "min": min, "max": max}
_DIM_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
            ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod}


def _dim_value(dim: str | None, dims: Mapping[str, int]) -> int | None:
    """A symbolic dim's value at ``dims``: a dim name, or an expression ONNX
    shape inference wrote over them (``"floor(height/2 - 1/2) + 1"``); None
    when it names anything else."""

    def ev(node: ast.AST) -> float:
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return node.value
        if isinstance(node, ast.Name) and node.id in dims:
            return dims[node.id]
        if isinstance(node, ast.BinOp) and type(node.op) in _DIM_OPS:
            return _DIM_OPS[type(node.op)](ev(node.left), ev(node.right))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -ev(node.operand)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _DIM_CALLS:
            return _DIM_CALLS[node.func.id](*(ev(a) for a in node.args))
        raise ValueError(ast.dump(node))

    if not dim:
        return None
    try:
        value = ev(ast.parse(dim, mode="eval"))
    except (SyntaxError, ValueError, TypeError, ZeroDivisionError, RecursionError):
        return None
    return int(value) if float(value).is_integer() and value >= 0 else None


def _reasons(plan, preferred: str, nodes: list[str], placement: Mapping[str, str], ops) -> tuple:
    by_node: dict[str, list[str]] = {}
    for r in plan.rejections:
        if r.delegate == preferred:
            by_node.setdefault(r.node, []).append(r.reason)
    counts: Counter[tuple[str, str]] = Counter()
    for name, op in zip(nodes, ops):
        why = by_node.get(name)
        if why:
            counts.update((op, w) for w in why)
        elif name in placement or op in placement:
            counts[(op, f"placement override puts it on '{placement.get(name) or placement[op]}'")] += 1
        else:
            counts[(op, "no rejection recorded")] += 1
    return tuple((op, why, n) for (op, why), n in counts.most_common())


def default_dims(graph: Graph, given: Mapping[str, int] | None = None) -> dict[str, int]:
    """Values for the model's symbolic input dims: ``given`` first, then 1 for a
    dim seen only as an input's leading axis (a batch), else ``TRIAL_DIM`` (64)."""
    given = dict(given or {})
    axes: dict[str, set[int]] = {}
    for vi in graph.inputs:
        if vi.type.HasField("tensor_type"):
            for axis, d in enumerate(vi.type.tensor_type.shape.dim):
                if d.dim_param and not d.HasField("dim_value"):
                    axes.setdefault(d.dim_param, set()).add(axis)
    return {name: given.get(name, 1 if seen == {0} else TRIAL_DIM) for name, seen in sorted(axes.items())}


# --- explain -------------------------------------------------------------------------


def explain(
    model: ModelLike,
    delegates: Sequence | None = None,
    options: "SessionOptions | None" = None,
    *,
    planned: "PlannedModel | None" = None,
    dims: Mapping[str, int] | None = None,
    bandwidth: float | None = None,
    rewrites: bool = True,
    reg=None,
) -> Explanation:
    """Explain why the plan of ``model`` fragments.

    Args:
        model: path, bytes or ``onnx.ModelProto`` (not modified); rewrites
            are applied to it.
        delegates / options: as ``unified.pipeline.plan_model`` (the plan is
            made with ``execute=False``, like ``unified plan``).
        planned: the ``PlannedModel`` of ``model`` for these delegates and
            options, when the caller has it (saves planning again).
        dims: values for symbolic input dims (see :func:`default_dims`).
        bandwidth: copy bandwidth, bytes per second; None measures it once
            (:func:`copy_bandwidth`).
        rewrites: search for rewrites (each candidate plans the model again).
        reg: the plugin registry (default: the process's with ``options.plugins``).

    Returns:
        The :class:`Explanation` (iterate it for the :class:`Island` list).

    Raises:
        InputError: ``bandwidth`` not positive.
        ModelError, DelegateUnavailableError, UnsupportedError: planning
            ``model`` failed (see ``plan_model``).
    """
    from unified.pipeline import plan_model
    from unified.session import SessionOptions

    if bandwidth is not None and not bandwidth > 0:
        raise InputError(f"bandwidth = {bandwidth!r} bytes/s; expected a positive number")
    options = options or SessionOptions()
    planned = planned or plan_model(model, delegates, options, reg=reg, execute=False, warn=False)
    replan = Replanner(model, delegates, options, reg)
    graph, plan = planned.graph, planned.plan
    preferred = planned.choices[0].name if planned.choices else plan.delegates[0]
    pins = default_dims(graph, dims)
    pinned = pin_candidate(replan, planned, pins) if pins else None
    shapes = pinned[1].graph if pinned and pinned[1] is not None else None
    source = "given" if bandwidth is not None else "measured here: np.copyto of 64 MiB, fastest of 5"
    bandwidth = bandwidth if bandwidth is not None else copy_bandwidth()
    islands = []
    for k, members in enumerate(_islands(graph, plan, preferred)):
        islands.append(_island(k, members, planned, preferred, shapes, pins, bandwidth, options.placement))
    if rewrites:
        candidates = [c for c in [pinned, fold_candidate(replan, planned)] if c is not None]
        islands = _with_rewrites(islands, replan, planned, preferred, candidates)
    return Explanation(
        preferred, len(plan.partitions), sum(len(p.nodes) for p in plan.partitions),
        plan.node_counts().get(preferred, 0), pins, bandwidth, source, tuple(islands),
    )


def _island(k, members, planned, preferred, shapes, pins, bandwidth, placement) -> Island:
    graph, plan = planned.graph, planned.plan
    names = [graph.node_names[i] for i in members]
    ops = [graph.nodes[i].op_type for i in members]
    where = {n: p for p in plan.partitions for n in p.nodes}
    ins, outs = _boundaries(graph, members, shapes, pins)
    sizes = [b.bytes for b in ins + outs]
    known = [s for s in sizes if s is not None]
    return Island(
        index=k,
        delegates=tuple(dict.fromkeys(where[n].delegate for n in names)),
        partitions=tuple(sorted({where[n].index for n in names})),
        nodes=tuple(names),
        op_types=tuple(ops),
        reasons=_reasons(plan, preferred, names, placement, ops),
        inputs=tuple(ins),
        outputs=tuple(outs),
        seconds=sum(known) / bandwidth if known or not sizes else None,
    )


def _with_rewrites(islands: list[Island], replan, planned, preferred, candidates) -> list[Island]:
    """Each island with its best rewrite (opset candidates are built once, when a reason names an opset)."""
    if any("opset" in why for island in islands for _, why, _ in island.reasons):
        candidates = candidates + opset_candidates(replan, planned)
    candidates = [(rw, p) for rw, p in candidates if p is not None]
    index = {name: i for i, name in enumerate(planned.graph.node_names)}
    before = len(planned.plan.partitions)
    out = []
    for island in islands:
        outputs = [next((o for o in planned.graph.nodes[index[n]].output if o), "") for n in island.nodes]
        own = placement_candidate(replan, planned, preferred, island.nodes, set(island.op_types), island.reasons)
        found = best_rewrite(([own] if own else []) + candidates, outputs, preferred, before)
        out.append(dataclasses.replace(island, rewrite=found))
    return out
