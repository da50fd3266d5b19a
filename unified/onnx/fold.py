"""Constant folding of shape computations, for models whose dims were pinned.

A model exported with symbolic dims computes shapes at run time
(``Shape -> Gather -> Concat -> Reshape``). Once the session pins those dims
(``SessionOptions.free_dimensions``), every such chain is a constant, but
ONNX's shape inference alone does not evaluate it, so delegates that need
static shapes (TFLite, Core ML) would still see dynamic ones. This pass
evaluates, in topological order:

* ``Shape`` / ``Size`` of a value whose inferred shape is static;
* any deterministic node without subgraphs whose inputs are all constants and
  whose outputs are small (at most 65,536 elements), with
  ``onnx.reference.ReferenceEvaluator`` (the ONNX reference implementation);

replaces the folded nodes by initializers, and repeats shape inference until
nothing more folds (ONNX Runtime's constant folding does the same at session
creation, which is why ORT runs such models at full speed).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import onnx
from onnx import helper, numpy_helper

from unified.onnx.quant import dequantize
from unified.onnx.values import static_shape

__all__ = ["evaluate_node", "has_subgraph", "NON_DETERMINISTIC", "fold_constants", "pin_and_fold", "referenced"]

_MAX_ELEMENTS = 1 << 16
NON_DETERMINISTIC = frozenset(
    {"RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike", "Multinomial", "Bernoulli"}
)
"""Ops never folded even with constant inputs: their output is random."""


def has_subgraph(node: onnx.NodeProto) -> bool:
    """The node carries a graph attribute (If / Loop / Scan bodies)."""
    return any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in node.attribute)


def evaluate_node(
    node: onnx.NodeProto, args: Sequence[np.ndarray | None], opsets: Sequence[onnx.OperatorSetIdProto]
) -> list[np.ndarray]:
    """Run one node on constant inputs with ONNX's reference implementation.

    This is the constant folding of every delegate and of the session's
    specialization: ``onnx.reference.ReferenceEvaluator`` is the ONNX
    project's executable spec. ``DequantizeLinear`` is computed here with NumPy
    (``y = (x - zero_point) * scale``, ONNX operator spec), because the
    reference lacks some of its opsets.

    Args:
        node: the node (not modified; its input names may repeat).
        args: one array per input slot, None for an omitted optional input.
        opsets: the model's ``opset_import``.

    Returns:
        One array per non-empty output name, in order.

    Raises:
        Exception: whatever the reference evaluator raises for an op or
            attribute it cannot evaluate; callers keep such a node.
    """
    from onnx.reference import ReferenceEvaluator

    if node.op_type == "DequantizeLinear" and node.domain in ("", "ai.onnx"):
        return [_dequantize(node, list(args))]
    names = [f"i{k}" if a is not None else "" for k, a in enumerate(args)]
    proto = onnx.NodeProto()
    proto.CopyFrom(node)
    del proto.input[:]
    proto.input.extend(names)
    del proto.output[:]
    proto.output.extend(f"o{k}" if o else "" for k, o in enumerate(node.output))
    graph = helper.make_graph(
        [proto],
        "fold",
        [],
        [helper.make_empty_tensor_value_info(o) for o in proto.output if o],
        initializer=[numpy_helper.from_array(np.asarray(a), n) for n, a in zip(names, args) if n],
    )
    model = helper.make_model(graph, opset_imports=list(opsets), ir_version=10)
    return [np.asarray(v) for v in ReferenceEvaluator(model).run(None, {})]


def _dequantize(node: onnx.NodeProto, ins: list) -> np.ndarray:
    """DequantizeLinear of constants (:func:`unified.onnx.quant.dequantize`)."""
    attrs = {a.name: a.i for a in node.attribute}
    zp = ins[2] if len(ins) > 2 else None
    return dequantize(ins[0], ins[1], zp, axis=attrs.get("axis", 1), block_size=attrs.get("block_size", 0),
                      output_dtype=attrs.get("output_dtype", 0))


def _fold_once(
    model: onnx.ModelProto, fold_outputs: bool = False, record: set[str] | None = None, unfolded: frozenset[str] = frozenset()
) -> int:
    """Fold what can be folded now (in place); returns the number of nodes folded.

    With ``fold_outputs``, nodes producing graph outputs fold too (the output
    then names an initializer). Nodes of the op types in ``unfolded`` stay nodes."""
    g = model.graph
    types = {vi.name: vi.type for vi in list(g.input) + list(g.value_info) + list(g.output)}
    known: dict[str, np.ndarray] = {
        t.name: numpy_helper.to_array(t) for t in g.initializer if np.prod(t.dims, dtype=np.int64) <= _MAX_ELEMENTS
    }
    init_dims = {t.name: tuple(t.dims) for t in g.initializer}
    outputs = {o.name for o in g.output}
    opsets = list(model.opset_import)
    keep, folded = [], 0
    for n in g.node:
        value: list[np.ndarray] | None = None
        if (n.domain not in ("", "ai.onnx") or n.op_type in unfolded
                or (not fold_outputs and any(o in outputs for o in n.output))):
            keep.append(n)
            continue
        if n.op_type in ("Shape", "Size") and n.input:
            shape = init_dims.get(n.input[0]) or static_shape(types.get(n.input[0]))
            if shape is not None:
                if n.op_type == "Size":
                    value = [np.array(int(np.prod(shape, dtype=np.int64)), np.int64)]
                else:
                    attrs = {a.name: a.i for a in n.attribute}
                    start, end = attrs.get("start", 0), attrs.get("end", len(shape))
                    value = [np.array(shape[slice(start, end)], np.int64)]
        elif (
            n.op_type not in NON_DETERMINISTIC
            and all(not x or x in known for x in n.input)
            and not has_subgraph(n)
            and _small_enough(n, known, types)
        ):
            value = _evaluate(n, known, opsets)
        if value is None or any(v.size > _MAX_ELEMENTS for v in value):
            keep.append(n)
            continue
        for name, v in zip(n.output, value):
            if name:
                known[name] = v
                if record is not None:
                    record.add(name)
                g.initializer.append(numpy_helper.from_array(np.asarray(v), name))
        folded += 1
    if folded:
        del g.node[:]
        g.node.extend(keep)
        used = referenced(g) | outputs
        kept = [t for t in g.initializer if t.name in used]
        del g.initializer[:]
        g.initializer.extend(kept)
        del g.value_info[:]
        model.ir_version = max(model.ir_version, 4)  # IR < 4 sees only initializers listed as graph inputs
    return folded


# Ops whose output can be far larger than their inputs: folded only when the
# output size is known (inferred) or computable from the inputs beforehand, so
# a corrupt or hostile shape never allocates gigabytes at load time.
_EXPANDING = {"ConstantOfShape", "Expand", "Tile", "Range", "Resize", "Upsample", "Pad", "OneHot", "EyeLike"}


def _small_enough(node: onnx.NodeProto, known, types) -> bool:
    """Whether evaluating ``node`` certainly yields at most ``_MAX_ELEMENTS`` per output."""
    shapes = [static_shape(types.get(o)) for o in node.output if o]
    if shapes and all(s is not None for s in shapes):
        return all(int(np.prod(s, dtype=np.int64)) <= _MAX_ELEMENTS for s in shapes)
    if node.op_type not in _EXPANDING:
        return True  # at most a small multiple of its (small, known) inputs
    try:
        if node.op_type == "ConstantOfShape":
            n = np.prod(known[node.input[0]].astype(np.float64))
        elif node.op_type == "Expand":
            x, shape = known[node.input[0]], known[node.input[1]]
            n = np.prod(np.broadcast_shapes(x.shape, tuple(int(d) for d in shape)), dtype=np.float64)
        elif node.op_type == "Tile":
            n = known[node.input[0]].size * np.prod(known[node.input[1]].astype(np.float64))
        elif node.op_type == "Range":
            start, limit, delta = (float(known[x]) for x in node.input[:3])
            n = 0 if delta == 0 else max(np.ceil((limit - start) / delta), 0)
        else:
            return False
    except Exception:  # malformed operands: leave the node to the delegates' checks
        return False
    return bool(0 <= n <= _MAX_ELEMENTS)


def referenced(graph: onnx.GraphProto) -> set[str]:
    """Every value name read by a node of ``graph`` or of its subgraphs (outer-scope reads included)."""
    names: set[str] = set()
    for n in graph.node:
        names.update(n.input)
        for a in n.attribute:
            if a.type == onnx.AttributeProto.GRAPH:
                names |= referenced(a.g)
            elif a.type == onnx.AttributeProto.GRAPHS:
                for sg in a.graphs:
                    names |= referenced(sg)
    return names


def _evaluate(node: onnx.NodeProto, known, opsets) -> list[np.ndarray] | None:
    try:
        return evaluate_node(node, [known[x] if x else None for x in node.input], opsets)
    except Exception:  # an op the reference cannot evaluate stays a node
        return None


def fold_constants(
    model: onnx.ModelProto, infer, max_rounds: int = 8, fold_outputs: bool = False, record: set[str] | None = None,
    unfolded: frozenset[str] = frozenset(),
) -> onnx.ModelProto:
    """Fold shape computations to a fixpoint.

    Args:
        model: a checked, shape-inferred model (modified in place).
        infer: ``ModelProto -> ModelProto`` shape inference to re-run after
            each round.
        max_rounds: bound on fold/infer rounds.
        fold_outputs: also fold nodes that produce graph outputs (the
            specializer does; the loader keeps the model's outputs computed).
        record: a set that receives the name of every value folded.
        unfolded: op types never folded (``Delegate.unfolded_ops``).

    Returns:
        The folded, re-inferred model.
    """
    for _ in range(max_rounds):
        if not _fold_once(model, fold_outputs, record, unfolded):
            break
        model = infer(model)
    return model


def pin_and_fold(
    model: onnx.ModelProto,
    shapes: Mapping[str, Sequence[int]],
    infer,
    values: Mapping[str, np.ndarray] | None = None,
    record: set[str] | None = None,
    reinfer: bool = True,
    unfolded: frozenset[str] = frozenset(),
) -> onnx.ModelProto:
    """A copy of ``model`` with fixed input dims, some inputs baked in, shapes
    re-inferred and every constant computation folded (outputs included).

    This is specialization (``unified.specialize``) and the load-time trial of
    it (``Graph.specialization_trial``): the same steps, so the trial predicts
    what a specialization folds.

    Args:
        model: not modified.
        shapes: input name -> concrete dims (inputs not named keep theirs).
        infer: ``ModelProto -> ModelProto`` shape inference.
        values: input name -> value, made an initializer (the input goes).
        record: receives the name of every value folded.
        reinfer: drop the inferred shapes and infer again first (False when
            no dim changed, to save a pass on a large static model).
        unfolded: op types never folded (``Delegate.unfolded_ops``).

    Returns:
        The folded model, IR version at least 4 (initializers need not be
        listed as inputs), inputs limited to those fed at run time.
    """
    values = dict(values or {})
    out = onnx.ModelProto()
    out.CopyFrom(model)
    out.ir_version = max(out.ir_version, 4)
    g = out.graph
    initialized = {t.name for t in g.initializer}
    inputs = list(g.input)
    del g.input[:]
    for vi in inputs:
        if vi.name in values:
            g.initializer.append(numpy_helper.from_array(np.asarray(values[vi.name]), vi.name))
            continue
        if vi.name in initialized:
            continue
        if vi.type.HasField("tensor_type") and vi.name in shapes:
            tt = vi.type.tensor_type
            tt.ClearField("shape")
            tt.shape.SetInParent()  # a rank-0 input keeps an (empty) shape, not an unknown rank
            for d in shapes[vi.name]:
                tt.shape.dim.add().dim_value = int(d)
        g.input.append(vi)
    if reinfer:
        for vi in g.output:
            if vi.type.HasField("tensor_type") and vi.type.tensor_type.HasField("shape"):
                for d in vi.type.tensor_type.shape.dim:
                    if not d.HasField("dim_value"):
                        d.Clear()
        del g.value_info[:]
        out = infer(out)
    return fold_constants(out, infer, max_rounds=32, fold_outputs=True, record=record, unfolded=unfolded)
