"""Fixtures of the coreml delegate tests.

make_node_model: ``tests.onnx_models.node_model(op, inputs, attrs=None,
    opset=17, outputs=1, initializers=None)`` -> a one-node ONNX model (IR 10).
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

from unified.delegates.coreml import LOWERINGS
from unified.delegates.coreml.quiet import import_coremltools as _ct
from unified.delegates.coreml.convert import Ctx, Node, mil_array

from ...onnx_models import node_model


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


@pytest.fixture(scope="session")
def mil_lower():
    return lower_one


@pytest.fixture(scope="session")
def mil_value():
    return value


@pytest.fixture(scope="session")
def make_node_model():
    return node_model
