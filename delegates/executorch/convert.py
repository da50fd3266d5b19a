"""ONNX partition -> ``torch.nn.Module`` -> exported program -> ``.pte`` bytes.

:class:`OnnxModule` holds the partition's initializers (weights as buffers,
small constants as host values) and, in ``forward``, walks the nodes in
topological order, calling each node's :class:`~.support.Lowering`. Tracing
that ``forward`` with ``torch.export.export`` records only the torch ops; the
host values (constants, shape arithmetic) are evaluated while tracing.

Pipeline (ExecuTorch's documented flow, "Exporting to ExecuTorch"):
``OnnxModule`` -> ``torch.export.export`` -> ``to_edge_transform_and_lower``
with the ``XnnpackPartitioner`` -> ``to_executorch()`` -> ``.pte`` bytes.

The program carries constant methods ``xnnpack_ops``, ``portable_ops`` and
``xnnpack_quantized_ops``: how many edge ops the XNNPACK partitioner took,
how many stayed on ExecuTorch's portable kernels, and how many of the
delegated compute ops read dequantized int8 values (QDQ models: XNNPACK's
int8 kernels) (read back by :class:`~.executable.ExecuTorchExecutable`).

The partition is read through :class:`unified.graph.Graph`: each node's
:class:`~unified.graph.NodeView` is what the table's checks (run again here
to pick the entry) and the lowerings read -- small constants, shape-derived
values, inferred output shapes and dtypes -- and Graph turns Constant nodes
into initializers.

Imports torch: import this module only on the compile path.
"""

from __future__ import annotations

import operator
from typing import Any

import numpy as np
import onnx
import torch
from onnx import numpy_helper

from unified.errors import DelegateError
from unified.graph import Graph, NodeView
from unified.onnx import dims, to_numpy

from .executable import COUNT_METHODS, short_message
from .ops_common import LoweringError, is_host, to_tensor, torch_dtype
from .support import Lowering

__all__ = ["OnnxModule", "choose_lowering", "input_shapes", "lower_module", "requantize_padded_dequantize"]


def input_shapes(model: onnx.ModelProto) -> list[tuple[int, ...]]:
    """The static shape of each partition input (initializers excluded).

    Raises:
        DelegateError: an input without a tensor type, or with a dim that is
            not a known size: the delegate compiles static shapes only
            (``static_shapes``); the core specializes partitions with
            symbolic dims before calling ``compile()``.
    """
    inits = {t.name for t in model.graph.initializer}
    shapes = []
    for vi in (x for x in model.graph.input if x.name not in inits):
        shape = dims(vi.type)
        if shape is None:
            raise DelegateError(f"executorch: partition input '{vi.name}' has no tensor type with a rank")
        if any(not isinstance(d, int) or d < 0 for d in shape):
            shown = ", ".join("?" if d is None else str(d) for d in shape)
            raise DelegateError(
                f"executorch compiles static shapes only; partition input '{vi.name}' has shape [{shown}]. "
                "Fix the dims with SessionOptions(free_dimensions={...}) or let the session specialize the partition"
            )
        shapes.append(tuple(shape))
    return shapes


def _examples(model: onnx.ModelProto, shapes: list[tuple[int, ...]]) -> tuple:
    """Example inputs (zeros) of the partition's static shapes and dtypes."""
    inits = {t.name for t in model.graph.initializer}
    inputs = [x for x in model.graph.input if x.name not in inits]
    return tuple(
        torch.zeros(shape, dtype=torch_dtype(vi.type.tensor_type.elem_type))
        for vi, shape in zip(inputs, shapes)
    )


def _is_qdq(node) -> bool:
    return node.op == "call_function" and "quantized_decomposed" in str(node.target)


def _count_ops(edge_program) -> dict[str, int]:
    """Edge ops inside XNNPACK-delegated subgraphs vs left on portable kernels,
    and how many of the delegated compute ops read a dequantized value (the
    ``dq -> conv / linear / add ... -> q`` groups XNNPACK runs as int8 kernels)."""
    from executorch.exir.lowered_backend_module import LoweredBackendModule

    gm = edge_program.graph_module
    xnnpack = portable = quantized = 0
    for node in gm.graph.nodes:
        if node.op != "call_function" or node.target is operator.getitem:
            continue
        if "executorch_call_delegate" in str(node.target):
            lowered = getattr(gm, node.args[0].target)
            if isinstance(lowered, LoweredBackendModule):
                for n in lowered.original_module.graph.nodes:
                    if n.op == "call_function" and n.target is not operator.getitem:
                        xnnpack += 1
                        quantized += not _is_qdq(n) and any(_is_qdq(a) for a in n.all_input_nodes)
            continue
        portable += 1
    return dict(zip(COUNT_METHODS, (xnnpack, portable, quantized)))


def _strip_lift_fresh_copy(exported) -> None:
    """Let the constants a quantized program reads be seen as constants.

    Tensors made from host values while tracing (per-channel scales, folded
    biases) are lifted constants read through ``aten.lift_fresh_copy``; the
    XNNPACK partitioner wants a weight's scales and a bias as static
    parameters, and with the copy in between its dq -> conv groups form
    dependency cycles ("Invalid partition"). The copy only guards against
    in-place writes, which the translator never does, so it is dropped.
    Done only in programs with quantize/dequantize ops: float programs are
    lowered as before.
    """
    graph = exported.graph_module.graph
    if not any(_is_qdq(n) for n in graph.nodes):
        return
    for node in list(graph.nodes):
        if node.op == "call_function" and node.target == torch.ops.aten.lift_fresh_copy.default:
            node.replace_all_uses_with(node.args[0])
            graph.erase_node(node)
    exported.graph_module.recompile()


def lower_module(module: torch.nn.Module, model: onnx.ModelProto, shapes: list[tuple[int, ...]]) -> bytes:
    """Export ``module`` (built from ``model``, inputs of ``shapes``) and lower it to ``.pte`` bytes.

    Raises:
        DelegateError: torch.export or ExecuTorch lowering failed; the message
            carries the framework's reason.
    """
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import EdgeProgramManager, to_edge_transform_and_lower

    args = _examples(model, shapes)
    try:
        exported = torch.export.export(module.eval(), args, strict=False)
    except LoweringError:
        raise
    except Exception as exc:
        raise DelegateError(f"torch.export failed: {type(exc).__name__}: {short_message(exc)}") from exc
    try:
        _strip_lift_fresh_copy(exported)
        requantize_padded_dequantize(exported)
        edge = to_edge_transform_and_lower(exported, partitioner=[XnnpackPartitioner()])
        counts = _count_ops(edge.exported_program())
        # Rebuilt only to attach the counts as constant methods of the program.
        edge = EdgeProgramManager(edge.exported_program(), constant_methods=counts, compile_config=edge.compile_config)
        return bytes(edge.to_executorch().buffer)
    except Exception as exc:
        raise DelegateError(f"ExecuTorch lowering failed: {type(exc).__name__}: {short_message(exc)}") from exc


#: Convolutions whose zero padding XNNPACK absorbs when they are quantized
#: (its ``ConvolutionConfig`` takes ``dq -> constant_pad_nd -> conv`` with a
#: dequantized weight as one int8 group), so their pads are left alone.
_PAD_ABSORBING = ("aten.conv1d.", "aten.conv2d.", "aten.convolution.")


def _absorbs_pad(user) -> bool:
    """``user`` is a convolution with a dequantized (int8) weight."""
    if not str(user.target).startswith(_PAD_ABSORBING) or len(user.args) < 2:
        return False
    weight = user.args[1]
    return isinstance(weight, torch.fx.Node) and _is_qdq(weight)


def _zero_pad_of_dequantize(node) -> bool:
    """``node`` pads a per-tensor ``dequantize_per_tensor`` output with constant 0, and no conv absorbs it."""
    if node.op != "call_function" or node.target not in (torch.ops.aten.pad.default, torch.ops.aten.constant_pad_nd.default):
        return False
    src = node.args[0]
    if getattr(src, "target", None) is not torch.ops.quantized_decomposed.dequantize_per_tensor.default:
        return False
    if node.target is torch.ops.aten.pad.default:
        mode = node.args[2] if len(node.args) > 2 else node.kwargs.get("mode", "constant")
        value = node.args[3] if len(node.args) > 3 else node.kwargs.get("value")
    else:
        mode, value = "constant", node.args[2] if len(node.args) > 2 else node.kwargs.get("value", 0.0)
    if mode != "constant" or (value or 0.0) != 0.0 or any(p < 0 for p in node.args[1]):
        return False
    users = list(node.users)
    if any(_is_qdq(u) for u in users):
        return False
    return not (len(users) == 1 and _absorbs_pad(users[0]))


def requantize_padded_dequantize(exported) -> int:
    """Quantize each zero pad of a dequantized int8 tensor again, with the tensor's own parameters.

    ``dequantize_per_tensor(x, s, zp) -> pad(0)`` becomes ``... -> pad(0) ->
    quantize_per_tensor(s, zp) -> dequantize_per_tensor(s, zp)`` (in place,
    in the exported program ``lower_module`` lowers). Why: ExecuTorch 1.5's
    XNNPACK pass ``InsertPadQDQPass`` gives every zero pad read from a
    ``dequantize_per_tensor`` an implicit int8 output, assuming the pad's
    input is int8 too; that holds only when a quantized convolution absorbs
    the pad (``_absorbs_pad``). Elsewhere -- the explicit pad before an
    AveragePool with asymmetric pads (Inception v1's last pool), or before a
    Conv with float weights -- the pad keeps a float32 input and the program fails to load ("Failed to create
    StaticConstantPad node ... xnn_status_invalid_parameter", "Init failed for
    backend XnnpackBackend: 0x1"). A pad already followed by a quantize is
    skipped by that pass, and XNNPACK runs it as a float pad between converts.

    Results are unchanged: 0 quantizes to ``zp`` and back to 0 exactly, and
    every other value is ``(q - zp) * s`` for an int8 ``q`` with the same
    ``s, zp``, which quantizes back to ``q``.

    Returns:
        How many pads were requantized.
    """
    graph = exported.graph_module.graph
    if not any(_is_qdq(n) for n in graph.nodes):  # a float program (the quantized ops may not be registered)
        return 0
    qd = torch.ops.quantized_decomposed
    pads = [n for n in graph.nodes if _zero_pad_of_dequantize(n)]
    for pad in pads:
        params = tuple(pad.args[0].args[1:])
        users = list(pad.users)
        with graph.inserting_after(pad):
            q = graph.call_function(qd.quantize_per_tensor.default, (pad, *params))
        with graph.inserting_after(q):
            dq = graph.call_function(qd.dequantize_per_tensor.default, (q, *params))
        for user in users:
            user.replace_input_with(pad, dq)
    if pads:
        exported.graph_module.recompile()
    return len(pads)


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


# Every initializer is kept twice: as a NumPy host value (for shapes, axes,
# scalars read while tracing) and, when a tensor op reads it, as a module
# buffer: XNNPACK takes weights and biases only as static parameters ("Expected
# bias to be a static param"), not as constants folded into the graph.


class OnnxModule(torch.nn.Module):
    """A partition model as a torch module whose ``forward`` runs its nodes.

    Args:
        model: a self-contained ONNX partition (inputs, outputs, initializers).
        table: op type -> lowering entries (``delegate.lowering_table()``).

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
        want = to_numpy(elem_type)
        return value if want is None or value.dtype == want else value.astype(want)
    want = torch_dtype(elem_type)
    return value if value.dtype == want else value.to(want)
