"""Who produces and who reads each value of a node list, and for how long.

Works on any sequence of ``onnx.NodeProto`` in topological order: a whole
graph or a partition. Reads inside subgraphs (If / Loop / Scan bodies) of
outer-scope values count as reads by the node that owns the subgraph.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import onnx

__all__ = ["producers", "consumers", "io_names", "last_uses", "node_reads"]


def node_reads(node: onnx.NodeProto) -> list[str]:
    """Names a node reads: its inputs, then outer-scope names its subgraphs
    read (in first-read order, no duplicates, "" omitted)."""
    names = dict.fromkeys(x for x in node.input if x)
    for a in node.attribute:
        graphs = [a.g] if a.type == onnx.AttributeProto.GRAPH else list(a.graphs)
        for g in graphs:
            names.update(dict.fromkeys(_outer_reads(g)))
    return list(names)


def _outer_reads(graph: onnx.GraphProto) -> list[str]:
    local = {i.name for i in graph.input} | {t.name for t in graph.initializer}
    reads: dict[str, None] = {}
    for n in graph.node:
        reads.update(dict.fromkeys(x for x in node_reads(n) if x not in local))
        local.update(n.output)
    return list(reads)


def producers(nodes: Sequence[onnx.NodeProto]) -> dict[str, int]:
    """Value name -> index of the node that produces it."""
    return {o: i for i, n in enumerate(nodes) for o in n.output if o}


def consumers(nodes: Sequence[onnx.NodeProto]) -> dict[str, list[int]]:
    """Value name -> indices of the nodes that read it (subgraph reads
    included), in order, each index once."""
    out: dict[str, list[int]] = {}
    for i, n in enumerate(nodes):
        for x in node_reads(n):
            out.setdefault(x, []).append(i)
    return out


def io_names(
    nodes: Sequence[onnx.NodeProto], constants: Iterable[str] = (), needed_after: Iterable[str] = ()
) -> tuple[list[str], list[str]]:
    """Inputs and outputs of a node list, as a partition sees them.

    Args:
        nodes: the nodes, in topological order.
        constants: names that are initializers (never inputs).
        needed_after: names read outside the list (later nodes, graph outputs).

    Returns:
        ``(inputs, outputs)``: names read but not produced inside (constants
        excluded), in first-read order; names produced inside and in
        ``needed_after``, in production order.
    """
    const = set(constants)
    produced: dict[str, None] = {}
    inputs: dict[str, None] = {}
    for n in nodes:
        for x in node_reads(n):
            if x not in produced and x not in const:
                inputs[x] = None
        produced.update(dict.fromkeys(o for o in n.output if o))
    after = set(needed_after)
    return list(inputs), [o for o in produced if o in after]


def last_uses(reads: Sequence[Iterable[str]], keep: Iterable[str] = ()) -> list[list[str]]:
    """Liveness: for each step, the values that may be freed once it ran.

    Args:
        reads: per step (a node, a partition, a kernel), the names it reads,
            in execution order; "" is ignored.
        keep: names never freed (graph outputs, constants).

    Returns:
        One list of names per step: those whose last reader it is.
    """
    keep = set(keep)
    last: dict[str, int] = {}
    for i, names in enumerate(reads):
        for x in names:
            if x:
                last[x] = i
    free: list[list[str]] = [[] for _ in range(len(reads))]
    for name, i in last.items():
        if name not in keep:
            free[i].append(name)
    return free
