"""Fixtures of the coreml delegate tests.

make_node_model: ``make_node_model(op, inputs, attrs=None, opset=18, outputs=1,
    initializers=None)`` -> a one-node ONNX model (IR 10).
mil_lower: ``mil_lower(model, feeds) -> (outputs, ops)`` — the node lowered
    with every fed input a MIL constant; ``mil_value(v)`` gives an output's
    value computed by MIL's own value inference (None where MIL has none).

Evaluating one lowered ONNX node with MIL's own value inference:

coremltools computes the value of a MIL op whose inputs are all constants
(``Operation.value_inference``) for many ops. Feeding a lowering MIL
constants (as ``Var``s, so the converter's own ONNX folding is bypassed)
therefore runs the lowering's MIL ops on real numbers without Core ML, which
checks the ONNX -> MIL semantics (pads order, axes, broadcasting, int64) off
macOS. Ops without value inference (conv, pooling, batch_norm, ...) return
None and are checked structurally instead.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper

from unified.delegates.coreml import LOWERINGS
from unified.delegates.coreml.quiet import import_coremltools as _ct
from unified.delegates.coreml.convert import Ctx, Node, mil_array


def lower_one(model: onnx.ModelProto, feeds: dict[str, np.ndarray]):
    """Lower the single node of ``model`` with every input a MIL constant.

    Returns:
        ``(outputs, ops)``: one MIL ``Var`` (or ndarray, for compile-time
        results) per node output, and the MIL operations emitted.
    """
    ct = _ct()
    from coremltools.converters.mil import Builder as mb
    from coremltools.converters.mil.mil import Function

    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    g = inferred.graph
    types, shapes = {}, {}
    for vi in list(g.input) + list(g.value_info) + list(g.output):
        tt = vi.type.tensor_type
        types[vi.name] = tt.elem_type
        shapes[vi.name] = tuple(d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim)
    for t in g.initializer:
        types[t.name] = t.data_type
        shapes[t.name] = tuple(t.dims)
    node = g.node[0]
    opset = next(i.version for i in model.opset_import if i.domain in ("", "ai.onnx"))
    with Function({}, opset_version=ct.target.iOS16) as func:
        ctx = Ctx(mb, types, shapes, {})
        for t in g.initializer:
            ctx.values[t.name] = onnx.numpy_helper.to_array(t)  # constant operands stay compile-time values
        for name, value in feeds.items():
            ctx.values[name] = mb.const(val=mil_array(value))
        before = len(func.operations)
        out = LOWERINGS[node.op_type](ctx, Node(node, opset))
        ops = list(func.operations)[before:]
    return (list(out) if isinstance(out, (list, tuple)) else [out]), ops


def value(v) -> np.ndarray | None:
    """The compile-time value of a lowering result, or None when MIL cannot infer it."""
    if isinstance(v, np.ndarray):
        return v
    return None if v.val is None else np.asarray(v.val)


def one_node(op: str, inputs: dict[str, np.ndarray], attrs: dict | None = None, opset: int = 18,
             outputs: int = 1, initializers: dict[str, np.ndarray] | None = None) -> onnx.ModelProto:
    """A one-node model; ``inputs`` become graph inputs, ``initializers`` constants."""
    initializers = initializers or {}
    names = list(inputs) + list(initializers)
    node = helper.make_node(op, names, [f"y{i}" for i in range(outputs)], **(attrs or {}))
    g = helper.make_graph(
        [node], "t",
        [helper.make_tensor_value_info(k, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape) for k, v in inputs.items()],
        [helper.make_empty_tensor_value_info(f"y{i}") for i in range(outputs)],
        initializer=[onnx.numpy_helper.from_array(v, k) for k, v in initializers.items()],
    )
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], ir_version=10)


@pytest.fixture(scope="session")
def mil_lower():
    return lower_one


@pytest.fixture(scope="session")
def mil_value():
    return value


@pytest.fixture(scope="session")
def make_node_model():
    return one_node
