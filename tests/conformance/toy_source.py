"""A third-party case source: plugin ``unified_conformance_cases`` returning one
``CaseSource`` ("toy-add": float32 Add at three broadcast shapes, expected
outputs computed here with NumPy)."""

from __future__ import annotations

import numpy as np

from onnx import TensorProto, helper

from unified import hookimpl
from unified.conformance import Case, CaseSource, StaticCase

SHAPES = {"same": ((2, 3), (2, 3)), "row": ((2, 3), (3,)), "scalar": ((4,), ())}


def _case(name: str) -> Case:
    a_shape, b_shape = SHAPES[name]
    rng = np.random.default_rng(7)
    a = rng.standard_normal(a_shape).astype(np.float32)
    b = rng.standard_normal(b_shape).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["y"])], f"toy_{name}",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, a_shape),
         helper.make_tensor_value_info("b", TensorProto.FLOAT, b_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, np.broadcast_shapes(a_shape, b_shape))],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)
    data = (({"a": a, "b": b}, [a + b]),)
    return Case(id=f"toy-add/{name}", source="toy-add", loader=StaticCase(model.SerializeToString(), data),
                op="Add", opset=17, dtype="float32", dtypes=("float32",), group="Add")


@hookimpl
def unified_conformance_cases(sources):
    if sources is not None and "toy-add" not in sources:
        return []
    return [CaseSource("toy-add", "Add at three broadcast shapes (test plugin)", lambda: [_case(n) for n in SHAPES])]


