"""ONNX partition -> ``torch.nn.Module``, by interpreting the lowering table.

:class:`OnnxModule` holds the partition's initializers (weights as buffers,
small constants as host values) and, in ``forward``, walks the nodes in
topological order, calling each node's :class:`~.table.Lowering`. Tracing
that ``forward`` with ``torch.export.export`` records only the torch ops; the
host values (constants, shape arithmetic) are evaluated while tracing.

Imports torch: import this module only on the compile path.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import torch
from onnx import numpy_helper

from unified.graph import Graph, NodeView, onnx_dtype_to_numpy

from .table import Lowering, LoweringError, is_host, to_tensor, torch_dtype

__all__ = ["OnnxModule", "choose_lowering"]

# Every initializer is kept twice: as a NumPy host value (for shapes, axes,
# scalars read while tracing) and, when a tensor op reads it, as a module
# buffer: XNNPACK takes weights and biases only as static parameters ("Expected
# bias to be a static param"), not as constants folded into the graph.


def choose_lowering(table: dict[str, list[Lowering]], node: NodeView) -> Lowering:
    """The first table entry for ``node`` whose checks all pass.

    Raises:
        LoweringError: no entry handles the node (names each entry's reason).
    """
    reasons = []
    for entry in table.get(node.op_type, []) if not node.domain else []:
        reason = entry.support.check(node)
        if reason is None:
            return entry
        reasons.append(reason)
    why = "; ".join(reasons) or "no lowering for this op"
    raise LoweringError(f"node '{node.name}' ({node.op_type}) cannot be lowered to torch: {why}")


class OnnxModule(torch.nn.Module):
    """A partition model as a torch module whose ``forward`` runs its nodes.

    Args:
        model: a self-contained ONNX partition (inputs, outputs, initializers).
        table: op type -> lowering entries (see ``LOWERINGS`` in the package).

    Attributes:
        input_names / output_names: the partition's graph inputs (without
            initializers) and outputs, in order; ``forward`` takes and returns
            tensors in these orders.

    Raises:
        ModelError: the partition fails ONNX checking or shape inference.
        LoweringError: a node no entry handles.
    """

    def __init__(self, model: onnx.ModelProto, table: dict[str, list[Lowering]]):
        super().__init__()
        graph = Graph(model)
        self.input_names = [i.name for i in graph.inputs]
        self.output_names = [o.name for o in graph.outputs]
        self._output_types = [graph.tensor_info(n).elem_type for n in self.output_names]
        self._host: dict[str, np.ndarray] = {}
        self._buffer_of: dict[str, str] = {}
        for i, (name, proto) in enumerate(graph.initializers.items()):
            arr = numpy_helper.to_array(proto)
            self._host[name] = arr
            if arr.size and arr.dtype != object and arr.dtype.kind in "fiub":
                self.register_buffer(f"c{i}", torch.from_numpy(arr.copy()))
                self._buffer_of[name] = f"c{i}"
        self._steps = [(view, choose_lowering(table, view)) for view in graph.node_views]

    def _tensor(self, name: str, value: Any):
        if not is_host(value):
            return value
        buffer = self._buffer_of.get(name)
        if buffer is not None and value is self._host.get(name):
            return getattr(self, buffer)
        return to_tensor(value)

    def forward(self, *args):
        env: dict[str, Any] = dict(self._host)
        env.update(zip(self.input_names, args))
        for view, entry in self._steps:
            names = list(view.proto.input)
            values = [env[n] if n else None for n in names]
            out = NotImplemented
            if entry.host_fn is not None and all(v is None or is_host(v) for v in values):
                out = entry.host_fn(view, *values)  # NotImplemented: symbolic operands, trace it instead
            if out is NotImplemented:
                keep = entry.host_inputs + entry.either_inputs
                values = [
                    v if v is None or i in keep else self._tensor(n, v)
                    for i, (n, v) in enumerate(zip(names, values))
                ]
                out = entry.fn(view, *values)
            outs = out if isinstance(out, tuple) else (out,)
            for info, value in zip(view.outputs, outs):
                if info.name:
                    env[info.name] = _typed(value, info.elem_type) if info.elem_type else value
        return tuple(self._result(env[n], t) for n, t in zip(self.output_names, self._output_types))

    def _result(self, value: Any, elem_type: int):
        tensor = to_tensor(value)
        if tensor.dtype != torch_dtype(elem_type):
            tensor = tensor.to(torch_dtype(elem_type))
        return tensor


def _typed(value: Any, elem_type: int):
    """Give a lowering's result the ONNX output type (NumPy and torch promote
    differently from ONNX, e.g. on integer division or boolean sums)."""
    if isinstance(value, (np.generic, int, float, bool)):  # NumPy reductions and indexing return scalars
        value = np.asarray(value)
    if is_host(value):
        if value.dtype == object:
            return value
        want = onnx_dtype_to_numpy(elem_type)
        return value if want is None or value.dtype == want else value.astype(want)
    want = torch_dtype(elem_type)
    return value if value.dtype == want else value.to(want)
