"""ONNX-level preparation of a quantized (QDQ) partition for XNNPACK, before
it is translated to torch (``delegate.compile``). Both rewrites leave every
result unchanged; they only put the graph in the shape XNNPACK's partitioner
and runtime accept. A float partition passes through untouched.

* :func:`fold_parameter_dequantize`: a DequantizeLinear of a constant that is
  not a Conv or Gemm (transB=1) weight (a BatchNormalization
  scale, an int32 bias) becomes a float initializer, as the core's constant
  folding would make it (``unified.onnx.evaluate_node``). XNNPACK takes such
  parameters only as static float tensors; int8 weights stay int8 for its
  quantized kernels.
* :func:`duplicate_shared_dequantize`: a DequantizeLinear read by several
  nodes is copied, one per reader, as PT2E's ``convert_pt2e`` leaves them
  (its ``DuplicateDQPass``): XNNPACK's partitioner groups each ``dq -> op ->
  q`` with its own dq nodes, and a dq shared by two groups (a residual
  connection read by a Conv and an Add) makes partitions that depend on each
  other ("Invalid partition, found dependency cycles").
* :func:`align_shared_qparams`: inputs of a Concat, MaxPool or data-movement
  op quantized with parameters other than its output's are requantized to
  the output's first (XNNPACK's int8 concatenate and copy-like nodes need one
  scale and zero point on every input and the output).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from unified.onnx import consumers, evaluate_node

__all__ = ["prepare_qdq", "fold_parameter_dequantize", "align_shared_qparams", "duplicate_shared_dequantize"]

#: (op type, input slot) of the weights XNNPACK's quantized kernels take as
#: int8: a Conv's, and a Gemm's with ``transB=1`` (F.linear's (N, K) layout).
#: A MatMul's (K, N) int8 weight is folded to float: XNNPACK 1.5 lowered it to
#: a quantized fully-connected with wrong results (conformance
#: ops/MatMul/proj_16x64x64/int8: 997 of 1024 outputs off, up to 127 steps).
_INT8_WEIGHTS = {("Conv", 1), ("Gemm", 1)}


def _int8_weight_slot(node: onnx.NodeProto, slot: int) -> bool:
    if (node.op_type, slot) not in _INT8_WEIGHTS:
        return False
    return node.op_type != "Gemm" or any(a.name == "transB" and a.i == 1 for a in node.attribute)


def prepare_qdq(model: onnx.ModelProto) -> onnx.ModelProto:
    """Both rewrites; ``model`` itself when it has no DequantizeLinear (not modified)."""
    if not any(n.op_type == "DequantizeLinear" for n in model.graph.node):
        return model
    out = onnx.ModelProto()
    out.CopyFrom(model)
    fold_parameter_dequantize(out)
    align_shared_qparams(out)
    duplicate_shared_dequantize(out)
    return out


def _consumers(graph: onnx.GraphProto) -> dict[str, list[tuple[onnx.NodeProto, int]]]:
    """Value name -> (node, input slot) of each read (``unified.onnx.consumers``, with slots)."""
    nodes = list(graph.node)
    return {x: [(nodes[i], k) for i in idx for k, y in enumerate(nodes[i].input) if y == x]
            for x, idx in consumers(nodes).items()}


def fold_parameter_dequantize(model: onnx.ModelProto) -> int:
    """Fold (in place) each DequantizeLinear of initializers that is not only
    read as an int8 weight (``_INT8_WEIGHTS``); returns how many were folded."""
    g = model.graph
    inits = {t.name: t for t in g.initializer}
    users = _consumers(g)
    outputs = {o.name for o in g.output}
    keep, folded = [], 0
    for n in g.node:
        if n.op_type != "DequantizeLinear" or not all(not x or x in inits for x in n.input) or n.output[0] in outputs:
            keep.append(n)
            continue
        readers = users.get(n.output[0], [])
        int8 = inits[n.input[0]].data_type == TensorProto.INT8
        if int8 and readers and all(_int8_weight_slot(r, slot) for r, slot in readers):
            keep.append(n)
            continue
        args = [numpy_helper.to_array(inits[x]) if x else None for x in n.input]
        value = evaluate_node(n, args, model.opset_import)[0]
        g.initializer.append(numpy_helper.from_array(np.asarray(value), n.output[0]))
        folded += 1
    if folded:
        del g.node[:]
        g.node.extend(keep)
        read = {x for n in g.node for x in n.input} | outputs
        kept = [t for t in g.initializer if t.name in read]
        del g.initializer[:]
        g.initializer.extend(kept)
    return folded
def duplicate_shared_dequantize(model: onnx.ModelProto) -> int:
    """Give (in place) every reader of a shared DequantizeLinear output its own
    copy of the node; returns how many copies were added. A graph output
    keeps the original."""
    g = model.graph
    users = _consumers(g)
    outputs = {o.name for o in g.output}
    nodes, added = [], 0
    for n in g.node:
        nodes.append(n)
        if n.op_type != "DequantizeLinear":
            continue
        readers = users.get(n.output[0], [])
        for k, (reader, slot) in enumerate(readers[0 if n.output[0] in outputs else 1:]):
            copy = onnx.NodeProto()
            copy.CopyFrom(n)
            copy.name = f"{n.name or n.output[0]}__copy{k}"
            del copy.output[:]
            copy.output.append(f"{n.output[0]}__copy{k}")
            reader.input[slot] = copy.output[0]
            nodes.append(copy)
            added += 1
    if added:
        del g.node[:]
        g.node.extend(nodes)
    return added


# --- quantization parameters XNNPACK wants shared --------------------------------

#: Ops XNNPACK runs on int8 only with the same scale and zero point on every
#: input and the output (its concatenate, max pooling and copy-like nodes
#: reject others: "Failed to create cat2 node ... xnn_status_invalid_parameter").
#: Each commutes with a monotonic requantization, so requantizing an input to
#: the output's parameters first changes no result: ``q_out(op(dq_in(x))) ==
#: q_out(op(dq_out(q_out(dq_in(x)))))`` (data movement, or max of values).
_SHARED_QPARAMS = {"Concat": None, "MaxPool": (0,), "Reshape": (0,), "Flatten": (0,), "Transpose": (0,),
                   "Squeeze": (0,), "Unsqueeze": (0,), "Slice": (0,), "Identity": (0,)}


def align_shared_qparams(model: onnx.ModelProto) -> int:
    """Give the ops in ``_SHARED_QPARAMS`` the quantization of their output (in place).

    ``onnxruntime.quantization`` quantizes a Concat's inputs each with its
    own scale (``DequantizeLinear(a, s_a) , DequantizeLinear(b, s_b) ->
    Concat -> QuantizeLinear(s_y)``); XNNPACK's int8 concatenate needs
    ``s_a == s_b == s_y``. Each input whose DequantizeLinear differs from the
    output's QuantizeLinear gets a ``QuantizeLinear(s_y) ->
    DequantizeLinear(s_y)`` pair first (a requantization XNNPACK runs as a
    convert); results are unchanged (see ``_SHARED_QPARAMS``).

    Returns:
        How many inputs were requantized.
    """
    g = model.graph
    inits = {t.name: t for t in g.initializer}
    producer = {o: n for n in g.node for o in n.output}
    readers = _consumers(g)
    outputs = {o.name for o in g.output}
    nodes = []
    for n in g.node:
        q = _sole_quantize(n, readers, outputs)
        for slot in () if q is None else (_SHARED_QPARAMS[n.op_type] or range(len(n.input))):
            dq = producer.get(n.input[slot])
            if dq is None or dq.op_type != "DequantizeLinear" or _params(dq, inits) in (None, _params(q, inits)):
                continue
            name = f"{n.input[slot]}__requantized{slot}_{n.name or n.output[0]}"
            nodes.append(helper.make_node("QuantizeLinear", [n.input[slot], *q.input[1:3]], [name + "_q"]))
            nodes.append(helper.make_node("DequantizeLinear", [name + "_q", *q.input[1:3]], [name]))
            n.input[slot] = name
        nodes.append(n)
    added = (len(nodes) - len(g.node)) // 2
    if added:
        del g.node[:]
        g.node.extend(nodes)
    return added


def _sole_quantize(node: onnx.NodeProto, readers, outputs) -> onnx.NodeProto | None:
    """The QuantizeLinear that alone reads ``node``'s only output, if it is one of ``_SHARED_QPARAMS``."""
    if node.op_type not in _SHARED_QPARAMS or node.domain not in ("", "ai.onnx") or len(node.output) != 1:
        return None
    users = [r for r, _ in readers.get(node.output[0], [])]
    if len(users) != 1 or users[0].op_type != "QuantizeLinear" or node.output[0] in outputs:
        return None
    return users[0]


def _params(node: onnx.NodeProto, inits) -> tuple | None:
    """A per-tensor Q/DQ's (scale, zero point, zero point dtype) from initializers; None if not constant or per-axis."""
    if len(node.input) < 3 or node.input[1] not in inits or node.input[2] not in inits:
        return None
    scale, zp = numpy_helper.to_array(inits[node.input[1]]), numpy_helper.to_array(inits[node.input[2]])
    if scale.size != 1 or zp.size != 1:
        return None
    return float(scale.reshape(-1)[0]), int(zp.reshape(-1)[0]), zp.dtype.str
