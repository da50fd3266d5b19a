"""The planner: assign nodes to delegates, cut the graph into partitions.

Rules (``DESIGN.md``, "Planner rule"):

1. Placement overrides (by node name, then by op type) win over priority.
2. Otherwise delegates claim nodes in priority order: the first whose
   ``supports(node)`` says yes gets it; every refusal before it is recorded.
3. Nodes nobody claims go to the fallback delegate (recorded, warned about
   once), or, with ``strict``, raise :class:`UnsupportedError` listing every
   unclaimed node with each delegate's reason.
4. Nodes of one delegate are grouped into connected, convex partitions: no
   path leaves a partition and re-enters it, so partitions form a DAG.
5. Partitions smaller than ``min_partition_nodes`` are given up by their
   delegate and their nodes re-planned with the next delegate in line.

The grouping is greedy over the topological order, like ExecuTorch's
capability-based partitioner: a node joins the partitions of its same-delegate
producers whenever that keeps every partition convex.
"""

from __future__ import annotations

import graphlib
import functools
import inspect
import warnings
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from unified.delegate import Delegate, Support
from unified.errors import DelegateUnavailableError, UnsupportedError
from unified.graph import Graph, NodeView, implicit_inputs
from unified.plan import Partition, Plan, Rejection

__all__ = ["DelegateChoice", "make_plan", "FallbackWarning", "fallback_message"]


class FallbackWarning(UserWarning):
    """Some nodes run on the fallback delegate because no listed delegate claimed them."""


@dataclass(frozen=True)
class DelegateChoice:
    """One entry of the priority list: a delegate, its backend and options."""

    delegate: Delegate
    backend: str
    options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """The delegate's name."""
        return self.delegate.name


def _takes_target(delegate: Delegate) -> bool:
    """Whether ``delegate.supports`` accepts ``backend=`` and ``options=``
    (a plugin written against the one-argument form still works)."""
    supports = delegate.supports
    try:
        return _signature_takes_target(getattr(supports, "__func__", supports))
    except TypeError:  # an unhashable callable: inspect it every time
        return _signature_takes_target.__wrapped__(supports)


@functools.lru_cache(maxsize=256)
def _signature_takes_target(fn) -> bool:
    """``_takes_target`` per function, computed once (the planner asks for every node)."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return True
    return "backend" in params and "options" in params


def _ask(choice: DelegateChoice, node: NodeView) -> Support:
    delegate = choice.delegate
    if not delegate.handles_non_tensor_values:
        other = [t.name for t in node.inputs + node.outputs + node.implicit_inputs if t.name and t.kind != "tensor"]
        if other:
            return Support.no(f"{delegate.name} runs tensors only; {other} are sequence/optional/map values")
    if delegate.static_shapes:
        static = _static_shapes_rule(delegate, node)
        if static is not None:
            return static
    try:
        if _takes_target(delegate):
            answer = delegate.supports(node, backend=choice.backend, options=choice.options)
        else:
            answer = delegate.supports(node)
    except Exception as exc:  # a plugin's bug must not crash planning
        return Support.no(f"supports() raised {type(exc).__name__}: {exc}")
    if not isinstance(answer, Support):
        return Support.no(f"supports() returned {type(answer).__name__}, expected Support")
    return answer


_FOLDS = Support(True, "shape computation: folded to a constant when the partition is specialized")


def _static_shapes_rule(delegate: Delegate, node: NodeView) -> Support | None:
    """The core's answer for a ``static_shapes`` delegate, or None to ask it.

    Shape computations (every output ``shape_derived``) are claimed: they fold
    away when the partition is specialized. Nodes touching a value whose shape
    stays unknown after specialization (data-dependent shapes) are declined.
    """
    folds = node.op_type not in delegate.unfolded_ops
    if folds and node.outputs and all(t.shape_derived for t in node.outputs if t.name) and not node.has_subgraph:
        return _FOLDS
    read_outputs = tuple(t for t in node.outputs if t.consumed)  # an unread one (Dropout's mask) is dropped
    for t in node.inputs + read_outputs:
        if t.name and t.kind == "tensor" and not t.static_when_specialized:
            return Support.no(
                f"'{t.name}' has a data-dependent shape (unknown until run time, even with fixed input dims); "
                f"{delegate.name} compiles static shapes only"
            )
    return None


def make_plan(
    graph: Graph,
    choices: Sequence[DelegateChoice],
    fallback: DelegateChoice | None = None,
    *,
    strict: bool = False,
    placement: Mapping[str, str] | None = None,
    min_partition_nodes: int = 1,
    excluded: Mapping[tuple[str, int], str] | None = None,
    warn: bool = True,
) -> Plan:
    """Assign every node and cut the graph into ordered partitions.

    Args:
        graph: the loaded model.
        choices: delegates in priority order (highest first).
        fallback: delegate for nodes nobody in ``choices`` claims; ignored when
            ``strict``.
        strict: raise instead of using the fallback.
        placement: node name or op type -> delegate name; the delegate must be
            in ``choices`` or be the fallback.
        min_partition_nodes: smaller partitions are handed to the next
            delegate in line (the fallback keeps what it gets).
        excluded: ``(delegate name, node index) -> reason``: the delegate may
            not take that node (e.g. it failed to compile it); recorded as a
            rejection with the reason.
        warn: issue the :class:`FallbackWarning` (callers that re-plan warn
            once themselves, see ``unified.pipeline``).

    Returns:
        The :class:`Plan`.

    Raises:
        UnsupportedError: unclaimed nodes (strict, or fallback declined too),
            or a placement whose delegate declines the node.
        DelegateUnavailableError: a placement naming a delegate not in the list.
    """
    placement = dict(placement or {})
    views = graph.node_views
    everyone = list(choices) + ([fallback] if fallback and not strict else [])
    by_name = {c.name: c for c in everyone}
    for key, dname in placement.items():
        if dname not in by_name:
            raise DelegateUnavailableError(
                f"placement {key!r} -> {dname!r}: delegate {dname!r} is not in this session's "
                f"delegates ({', '.join(by_name) or 'none'})"
            )
    cache: dict[tuple[str, int], Support] = {}

    def ask(c: DelegateChoice, i: int) -> Support:
        key = (c.name, i)
        if key not in cache:
            cache[key] = _ask(c, views[i])
        return cache[key]

    excluded = dict(excluded or {})
    while True:
        assign, is_fallback, rejections = _assign(views, choices, fallback, strict, placement, ask, excluded)
        part_of = _group(graph, assign)
        small = _small_partitions(part_of, assign, is_fallback, placement, views, min_partition_nodes)
        if not small:
            break
        excluded.update({(assign[i], i): "partition smaller than min_partition_nodes" for i in small})

    backends = {c.name: c.backend for c in everyone}
    partitions = _partitions(graph, part_of, assign, is_fallback, backends)
    used = [c.name for c in choices]
    if fallback and any(is_fallback) and fallback.name not in used:
        used.append(fallback.name)
    plan = Plan(
        partitions=partitions,
        delegates=tuple(used),
        rejections=tuple(rejections),
        inputs=tuple(i.name for i in graph.inputs),
        outputs=tuple(o.name for o in graph.outputs),
    )
    message = fallback_message(plan, [c.name for c in choices]) if warn else ""
    if message:
        warnings.warn(message, FallbackWarning, stacklevel=2)
    return plan


def fallback_message(plan: Plan, choices: Sequence[str], failures: Sequence[tuple[str, str, str]] = ()) -> str:
    """The one FallbackWarning text for a plan ("" when nothing fell back).

    Args:
        plan: the final plan.
        choices: the priority list's delegate names.
        failures: ``(delegate, partition, reason)`` compile failures that
            were re-planned.
    """
    parts = []
    fallen = [p for p in plan.partitions if p.fallback]
    if fallen:
        ops = sorted({op for p in fallen for op in p.op_types})
        count = sum(len(p.nodes) for p in fallen)
        parts.append(
            f"{count} node(s) (ops: {', '.join(ops)}) were not claimed by {list(choices)} and run on the "
            f"fallback delegate '{fallen[0].delegate}'"
        )
    for delegate, where, reason in failures:
        parts.append(f"delegate '{delegate}' failed to compile partition {where} ({reason[:300]}); re-planned without it")
    if not parts:
        return ""
    return "; ".join(parts) + "; see Plan.rejections for the reasons, or pass strict=True to make this an error"


def _assign(views, choices, fallback, strict, placement, ask, excluded):
    assign: list[str] = []
    is_fallback: list[bool] = []
    rejections: list[Rejection] = []
    unclaimed: list[tuple[NodeView, list[tuple[str, str]]]] = []
    by_name = {c.name: c for c in list(choices) + ([fallback] if fallback else [])}
    for i, v in enumerate(views):
        forced = placement.get(v.name) or placement.get(v.op_type)
        if forced:
            answer = ask(by_name[forced], i)
            if not answer.ok:
                raise UnsupportedError(
                    f"placement puts node '{v.name}' ({v.op_type}) on '{forced}', which declines it: "
                    f"{answer.reason}"
                )
            assign.append(forced)
            is_fallback.append(False)
            continue
        reasons: list[tuple[str, str]] = []
        owner = None
        for c in choices:
            if (c.name, i) in excluded:
                reasons.append((c.name, excluded[(c.name, i)]))
                continue
            answer = ask(c, i)
            if answer.ok:
                owner = c.name
                break
            reasons.append((c.name, answer.reason or "declined (no reason given)"))
        rejections.extend(Rejection(v.name, v.op_type, d, r) for d, r in reasons)
        if owner is None and fallback is not None and not strict and (fallback.name, i) not in excluded:
            answer = ask(fallback, i)
            if answer.ok:
                owner = fallback.name
            else:
                reasons.append((fallback.name, answer.reason))
        if owner is None:
            unclaimed.append((v, reasons))
            assign.append("")
            is_fallback.append(False)
            continue
        assign.append(owner)
        is_fallback.append(owner == getattr(fallback, "name", None) and owner not in {c.name for c in choices})
    if unclaimed:
        raise UnsupportedError(_unclaimed_message(unclaimed, strict, [c.name for c in choices]))
    return assign, is_fallback, rejections


def _unclaimed_message(unclaimed, strict, names) -> str:
    ops = sorted({v.op_type for v, _ in unclaimed})
    head = (
        f"{len(unclaimed)} node(s) not claimed by any delegate in {names}"
        + (" (strict mode: no fallback)" if strict else "")
        + f"; unclaimed ops: {', '.join(ops)}"
    )
    lines = [head]
    for v, reasons in unclaimed[:50]:
        why = "; ".join(f"{d}: {r}" for d, r in reasons) or "no delegate listed"
        lines.append(f"  node '{v.name}' ({v.op_type}, opset {v.opset}): {why}")
    if len(unclaimed) > 50:
        lines.append(f"  ... and {len(unclaimed) - 50} more")
    return "\n".join(lines)


def _producers(graph: Graph) -> list[set[int]]:
    """For each node, the indices of the nodes producing its (implicit) inputs."""
    made_by: dict[str, int] = {}
    preds: list[set[int]] = []
    for i, n in enumerate(graph.nodes):
        names = list(n.input) + implicit_inputs(n)
        preds.append({made_by[x] for x in names if x in made_by})
        for o in n.output:
            if o:
                made_by[o] = i
    return preds


def _group(graph: Graph, assign: list[str]) -> list[int]:
    """Greedy convex grouping; returns a partition id per node.

    Each partition keeps the set of its strict ancestor partitions. A node v
    may merge the set M of its same-delegate producer partitions iff no
    other ancestor partition x of v descends from a member of M (else the
    path M -> x -> v would leave and re-enter the merged partition).
    """
    preds = _producers(graph)
    part_of: list[int] = []
    owner: dict[int, str] = {}
    anc: dict[int, set[int]] = {}
    next_id = 0
    for v, d in enumerate(assign):
        pred_parts = {part_of[u] for u in preds[v]}
        ancestors = set(pred_parts)
        for p in pred_parts:
            ancestors |= anc[p]
        merged: set[int] = set()
        for p in sorted(q for q in pred_parts if owner[q] == d):
            trial = merged | {p}
            if all(not (anc[x] & trial) for x in ancestors - trial):
                merged = trial
        if not merged:
            pid = next_id
            next_id += 1
            owner[pid] = d
            anc[pid] = ancestors
            part_of.append(pid)
            continue
        pid = min(merged)
        new_anc = ancestors - merged
        for p in merged - {pid}:
            del owner[p], anc[p]
        part_of = [pid if q in merged else q for q in part_of]
        anc[pid] = new_anc
        for r, a in anc.items():
            if r != pid and a & merged:
                anc[r] = (a - merged) | {pid} | new_anc
        part_of.append(pid)
    return part_of


def _small_partitions(part_of, assign, is_fallback, placement, views, minimum) -> list[int]:
    if minimum <= 1:
        return []
    sizes: dict[int, int] = {}
    for p in part_of:
        sizes[p] = sizes.get(p, 0) + 1
    small = []
    for i, p in enumerate(part_of):
        forced = views[i].name in placement or views[i].op_type in placement
        if sizes[p] < minimum and not is_fallback[i] and not forced:
            small.append(i)
    return small


def _partitions(graph: Graph, part_of, assign, is_fallback, backends) -> tuple[Partition, ...]:
    nodes = graph.nodes
    members: dict[int, list[int]] = {}
    for i, p in enumerate(part_of):
        members.setdefault(p, []).append(i)
    produced_in: dict[str, int] = {}
    for i, n in enumerate(nodes):
        for o in n.output:
            if o:
                produced_in[o] = part_of[i]
    consumers: dict[str, set[int]] = {}
    reads: dict[int, list[str]] = {}
    for i, n in enumerate(nodes):
        p = part_of[i]
        for x in list(n.input) + implicit_inputs(n):
            if not x:
                continue
            consumers.setdefault(x, set()).add(p)
            lst = reads.setdefault(p, [])
            if x not in lst:
                lst.append(x)
    graph_outputs = [o.name for o in graph.outputs]
    # topological order of partitions (graphlib), ties broken by first node index
    deps = {p: {produced_in[x] for x in reads.get(p, []) if x in produced_in} - {p} for p in members}
    sorter = graphlib.TopologicalSorter(deps)
    sorter.prepare()
    order: list[int] = []
    ready: list[int] = []
    while sorter.is_active():
        ready.extend(sorter.get_ready())
        nxt = min(ready, key=lambda p: members[p][0])
        ready.remove(nxt)
        order.append(nxt)
        sorter.done(nxt)
    result = []
    for p in order:
        ins = tuple(x for x in reads.get(p, []) if produced_in.get(x) != p and x not in graph.initializers)
        outs: list[str] = []
        for i in members[p]:
            for o in nodes[i].output:
                if o and (o in graph_outputs or (consumers.get(o, set()) - {p})) and o not in outs:
                    outs.append(o)
        # a graph output that is also read inside must still be an output
        if not outs:  # dead code: nothing it computes reaches a model output or another partition
            continue
        first = members[p][0]
        result.append(
            Partition(
                index=len(result),
                delegate=assign[first],
                backend=backends[assign[first]],
                nodes=tuple(graph.node_names[i] for i in members[p]),
                op_types=tuple(nodes[i].op_type for i in members[p]),
                inputs=ins,
                outputs=tuple(outs),
                fallback=is_fallback[first],
            )
        )
    return tuple(result)
