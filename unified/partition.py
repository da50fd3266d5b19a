"""Cut one partition out of a model as a self-contained ONNX model.

A partition model has its own inputs (typed from shape inference), outputs,
the initializers its nodes read, the model's opset imports and local
functions, and an IR version the target delegate reads.
"""

from __future__ import annotations

import onnx
from onnx import helper

from unified.errors import DelegateError, ModelError
from unified.graph import Graph, implicit_inputs
from unified.plan import Partition

__all__ = ["extract_partition", "min_ir_version_for", "with_ir_version"]


def min_ir_version_for(model: onnx.ModelProto) -> int:
    """Lowest IR version whose release knows the model's default-domain opset.

    Source: ``onnx.helper.VERSION_TABLE`` (release, IR, ai.onnx opset, ...).
    """
    opset = max((i.version for i in model.opset_import if i.domain in ("", "ai.onnx")), default=1)
    candidates = [ir for _, ir, op, *_ in helper.VERSION_TABLE if op >= opset]
    return min(candidates) if candidates else model.ir_version


def with_ir_version(model: onnx.ModelProto, max_ir: int | None, delegate: str) -> onnx.ModelProto:
    """Return ``model`` written with IR version <= ``max_ir`` (a copy only if needed).

    Raises:
        DelegateError: the model's opset needs a newer IR than ``max_ir``.
    """
    if max_ir is None or model.ir_version <= max_ir:
        return model
    need = min_ir_version_for(model)
    if need > max_ir:
        raise DelegateError(
            f"delegate '{delegate}' reads ONNX IR <= {max_ir}, but the model's opset needs IR >= {need}; "
            "export the model with an older opset or upgrade the delegate's framework"
        )
    out = onnx.ModelProto()
    out.CopyFrom(model)
    out.ir_version = max(need, min(max_ir, model.ir_version))
    return out


def extract_partition(graph: Graph, partition: Partition, max_ir: int | None = None) -> onnx.ModelProto:
    """Build the self-contained ONNX model of one partition.

    Args:
        graph: the loaded model the plan was made for.
        partition: which nodes, inputs and outputs.
        max_ir: highest IR version the target delegate reads (None: keep).

    Returns:
        A new ``ModelProto``; when the partition is the whole model, the
        model itself (IR-adjusted).

    Raises:
        ModelError: a boundary value has no inferred type.
    """
    if len(partition.nodes) == len(graph.nodes) and tuple(partition.outputs) == tuple(
        o.name for o in graph.outputs
    ) and tuple(partition.inputs) == tuple(i.name for i in graph.inputs):
        return with_ir_version(graph.model, max_ir, partition.delegate)
    wanted = set(partition.nodes)
    nodes = [n for n, name in zip(graph.nodes, graph.node_names) if name in wanted]
    read: set[str] = set()
    for n in nodes:
        read.update(x for x in n.input if x)
    for n in nodes:
        read.update(implicit_inputs(n))
    inits = [graph.initializers[x] for x in sorted(read) if x in graph.initializers]
    produced = {o for n in nodes for o in n.output if o}
    value_info = [
        helper.make_value_info(x, graph.types[x])
        for x in sorted(produced - set(partition.outputs))
        if x in graph.types
    ]
    g = helper.make_graph(
        nodes,
        f"{graph.model.graph.name or 'model'}_{partition.name}_{partition.delegate}",
        [_value_info(graph, x, partition) for x in partition.inputs],
        [_value_info(graph, x, partition) for x in partition.outputs],
        initializer=inits,
        value_info=value_info,
    )
    model = helper.make_model(
        g,
        opset_imports=list(graph.model.opset_import),
        producer_name="unified",
        ir_version=graph.model.ir_version,
    )
    model.functions.extend(graph.model.functions)
    return with_ir_version(model, max_ir, partition.delegate)


def _value_info(graph: Graph, name: str, partition: Partition) -> onnx.ValueInfoProto:
    tp = graph.types.get(name)
    untyped = tp is None or tp.WhichOneof("value") is None
    if not untyped and tp.HasField("tensor_type") and not tp.tensor_type.elem_type:
        untyped = True
    if untyped:
        raise ModelError(
            f"value '{name}' crosses into partition {partition.name} ({partition.delegate}) but shape inference "
            "gave it no type; add value_info for it to the model"
        )
    return helper.make_value_info(name, tp)
