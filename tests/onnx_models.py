"""Small ONNX models (and their inputs) that tests in several folders build.

Import relatively, e.g. ``from ..onnx_models import graph_model`` from
``tests/core/``; every model is IR 10 (ONNX Runtime reads IR <= 10 here).

text_model: ``text_model(graph, opset=17) -> ModelProto`` — a model from ONNX's
    textual syntax (``onnx.parser``), e.g.
    ``text_model("g (float[2,3] x) => (float[2,3] y) { y = Relu(x) }")``.
relu_neg: ``relu_neg(shape=(2, 3))`` — ``x -> Relu (node "a") -> Neg (node
    "y") -> y``, float32: two nodes every delegate (and the toy) claims.
graph_model: ``graph_model(nodes, inputs, consts=None, outputs=("y",),
    opset=17, data_prop=False)`` — a model from ``helper.make_node`` nodes,
    graph inputs ``{name: (dtype, shape)}`` (a dim may be a str: symbolic),
    initializers ``{name: array}`` and output names; outputs are typed by
    strict ONNX shape inference.
node_model: ``node_model(op, inputs, attrs=None, opset=17, outputs=1,
    initializers=None)`` — one node reading the graph inputs ``{name: array}``
    then the initializers ``{name: array}``, writing ``y0, y1, ...``; outputs
    typed by ONNX shape inference where it can (left untyped where it fails).
rand: ``rand(shape, seed=0, lo=-1.0, hi=1.0, dtype=np.float32)`` — seeded
    uniform values in ``[lo, hi)``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import onnx
import onnx.parser
from onnx import helper, numpy_helper

IR_VERSION = 10


def text_model(graph: str, opset: int = 17) -> onnx.ModelProto:
    """Parse ``graph`` (ONNX textual syntax, one graph) into an IR 10 model
    importing the default domain at ``opset``."""
    return onnx.parser.parse_model(f'<ir_version: {IR_VERSION}, opset_import: ["" : {opset}]>\n{graph}')


def relu_neg(shape: Sequence[int] = (2, 3)) -> onnx.ModelProto:
    """``x -> Relu (node "a") -> Neg (node "y") -> y``, float32 of ``shape``."""
    dims = ",".join(map(str, shape))
    return text_model(f"g (float[{dims}] x) => (float[{dims}] y) {{ [a] a = Relu(x)\n [y] y = Neg(a) }}")


def graph_model(
    nodes: Iterable[onnx.NodeProto],
    inputs: Mapping[str, tuple],
    consts: Mapping[str, np.ndarray] | None = None,
    outputs: Sequence[str] = ("y",),
    opset: int = 17,
    data_prop: bool = False,
) -> onnx.ModelProto:
    """A model of ``nodes``; outputs typed by strict shape inference.

    Args:
        nodes: the graph's nodes, in order.
        inputs: graph inputs, ``{name: (dtype, shape)}``; a dim may be a str
            (a symbolic dim).
        consts: initializers, ``{name: array}``.
        outputs: the graph outputs' names.
        opset: the default domain's opset.
        data_prop: also propagate shape values (``Shape`` -> ``Reshape``
            chains get static output shapes).

    Raises:
        onnx.shape_inference.InferenceError: the nodes do not type-check.
    """
    g = helper.make_graph(
        list(nodes),
        "case",
        [
            helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(np.dtype(dt)), list(shape))
            for n, (dt, shape) in inputs.items()
        ],
        [helper.make_empty_tensor_value_info(o) for o in outputs],
        initializer=[numpy_helper.from_array(np.asarray(v), k) for k, v in (consts or {}).items()],
    )
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], ir_version=IR_VERSION)
    return onnx.shape_inference.infer_shapes(model, strict_mode=True, data_prop=data_prop)


def node_model(
    op: str,
    inputs: Mapping[str, np.ndarray],
    attrs: Mapping | None = None,
    opset: int = 17,
    outputs: int = 1,
    initializers: Mapping[str, np.ndarray] | None = None,
) -> onnx.ModelProto:
    """One ``op`` node: inputs ``[*inputs, *initializers]``, outputs ``y0 ..``.

    Graph inputs take their dtype and shape from the arrays in ``inputs``;
    outputs are typed by (non-strict) shape inference, so a node that does not
    type-check still builds, with untyped outputs.
    """
    initializers = initializers or {}
    names = [f"y{i}" for i in range(outputs)]
    node = helper.make_node(op, [*inputs, *initializers], names, **(attrs or {}))
    g = helper.make_graph(
        [node],
        "node",
        [helper.make_tensor_value_info(k, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape) for k, v in inputs.items()],
        [helper.make_empty_tensor_value_info(n) for n in names],
        initializer=[numpy_helper.from_array(v, k) for k, v in initializers.items()],
    )
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], ir_version=IR_VERSION)
    inferred = onnx.shape_inference.infer_shapes(model)
    del model.graph.output[:]
    model.graph.output.extend(inferred.graph.output)
    return model


def rand(shape, seed: int = 0, lo: float = -1.0, hi: float = 1.0, dtype=np.float32) -> np.ndarray:
    """Seeded uniform values in ``[lo, hi)`` of ``shape`` and ``dtype``."""
    return np.random.default_rng(seed).uniform(lo, hi, shape).astype(dtype)
