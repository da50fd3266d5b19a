"""Value name -> type and shape of a model, from what it already declares."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper

__all__ = ["value_types", "static_shape", "dims", "elem_type", "numel"]


def value_types(model: onnx.ModelProto, infer: bool = False) -> dict[str, onnx.TypeProto]:
    """Value name -> ``onnx.TypeProto`` of every input, output, value_info
    entry and initializer of the main graph.

    Partitions handed to a delegate already carry ``value_info`` for every
    value (the core infers once at load), so by default nothing is inferred.

    Args:
        model: the model (not modified).
        infer: run ONNX shape inference (with data propagation) first when
            some node output has no declared type. Large initializers are
            passed as typed inputs, so inference never copies weights.

    Raises:
        onnx.shape_inference.InferenceError: only with ``infer``, when strict
            inference fails (callers wrap it in their own error).
    """
    g = model.graph
    types: dict[str, onnx.TypeProto] = {}
    for vi in list(g.input) + list(g.value_info) + list(g.output):
        if vi.type.WhichOneof("value") is not None:
            types[vi.name] = vi.type
    if infer and any(o and o not in types for n in g.node for o in n.output):
        inferred = onnx.shape_inference.infer_shapes(_light_copy(model), data_prop=True)
        for vi in list(inferred.graph.input) + list(inferred.graph.value_info) + list(inferred.graph.output):
            types.setdefault(vi.name, vi.type)
    for t in g.initializer:
        types[t.name] = helper.make_tensor_type_proto(t.data_type, list(t.dims))
    return types


def _light_copy(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` whose initializers above 4,096 elements are typed inputs instead."""
    out = onnx.ModelProto()
    out.ir_version = max(model.ir_version, 4)
    out.opset_import.extend(model.opset_import)
    out.functions.extend(model.functions)
    g = out.graph
    g.name = model.graph.name
    g.node.extend(model.graph.node)
    g.input.extend(model.graph.input)
    g.output.extend(model.graph.output)
    g.value_info.extend(model.graph.value_info)
    listed = {i.name for i in model.graph.input}
    for t in model.graph.initializer:
        if int(np.prod(t.dims, dtype=np.int64)) <= 4096:
            g.initializer.append(t)
        elif t.name not in listed:
            g.input.append(helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)))
    return out


def dims(tp: onnx.TypeProto | None) -> tuple[int | str | None, ...] | None:
    """Dims of a tensor type: ints, symbolic names (str) or None for an
    unknown dim; None when the type has no shape (unknown rank) or is not a
    tensor."""
    if tp is None or not tp.HasField("tensor_type") or not tp.tensor_type.HasField("shape"):
        return None
    return tuple(
        d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in tp.tensor_type.shape.dim
    )


def static_shape(tp: onnx.TypeProto | None) -> tuple[int, ...] | None:
    """Dims of a tensor type when all are known ints, else None."""
    d = dims(tp)
    if d is None or any(not isinstance(x, int) for x in d):
        return None
    return d


def elem_type(tp: onnx.TypeProto | None) -> int:
    """ONNX element type of a tensor type; 0 for None or a non-tensor type."""
    return tp.tensor_type.elem_type if tp is not None and tp.HasField("tensor_type") else 0


def numel(shape) -> int:
    """Element count of a dims tuple (from :func:`dims`); 0 when the rank or a dim is unknown."""
    if shape is None or any(not isinstance(d, int) for d in shape):
        return 0
    return int(np.prod(shape, dtype=np.int64))
