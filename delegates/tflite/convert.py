"""ONNX partition -> TFLite flatbuffer: values, layouts and the conversion loop.

Layout rule. ONNX activations are NCHW; TFLite's image kernels are NHWC. Every
converted value carries a permutation ``perm`` with
``tflite_tensor == onnx_value.transpose(perm)``. Image ops (Conv, pools,
Resize, LRN, ...) ask for their input in NHWC ``(0, 2, 3, 1)`` and produce
NHWC; layout-agnostic ops (elementwise, Concat, Split, Slice, reductions,
Softmax, Pad, Squeeze/Unsqueeze) map their axes through ``perm`` and keep it;
an ONNX Transpose of an activation only changes ``perm`` (no data moves).
A real ``TRANSPOSE`` is emitted only where a value must change layout: at the
partition's inputs (NCHW in) and outputs (NCHW out), or where the model's
own semantics move data (e.g. ShuffleNet's channel shuffle). A change that
only moves size-1 dims is a free ``RESHAPE``. Flattening an NHWC value into a
Gemm keeps the NHWC order and permutes the Gemm's weight rows instead.

Op converters live in ``ops_*.py``, one module per family, and register
themselves in :data:`CONVERTERS` with :func:`register`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import onnx
from onnx import helper, numpy_helper

from unified.errors import DelegateError

from .builder import ModelBuilder

__all__ = ["Value", "Converter", "ConversionResult", "convert", "register", "CONVERTERS", "NHWC", "NCHW_OF_NHWC"]

NHWC = (0, 2, 3, 1)
"""``perm`` of an NHWC tensor holding a rank-4 NCHW value."""
NCHW_OF_NHWC = (0, 3, 1, 2)

Handler = Callable[["Converter", onnx.NodeProto, dict], None]
CONVERTERS: dict[str, Handler] = {}


def register(*op_types: str) -> Callable[[Handler], Handler]:
    """Decorator: ``fn(cx, node, attrs)`` converts nodes of ``op_types``."""

    def deco(fn: Handler) -> Handler:
        for op in op_types:
            CONVERTERS[op] = fn
        return fn

    return deco


@dataclass(eq=False)
class Value:
    """One ONNX value during conversion.

    Attributes:
        shape: static ONNX shape.
        dtype: NumPy dtype.
        tensor: TFLite tensor index, or None for a constant not yet emitted.
        perm: ``tflite == onnx.transpose(perm)``; None is the identity.
        const: the ONNX-order value when known at compile time.
        col_perm: for a rank-2 value flattened from NHWC: TFLite column ``j``
            holds ONNX column ``col_perm[j]``.
        quant: (scale, zero_point, axis) of an int8/uint8 tensor made by
            QuantizeLinear.
    """

    shape: tuple[int, ...]
    dtype: np.dtype
    tensor: int | None = None
    perm: tuple[int, ...] | None = None
    const: np.ndarray | None = None
    col_perm: np.ndarray | None = None
    quant: tuple | None = None
    _views: dict = field(default_factory=dict, repr=False)

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def layout(self) -> tuple[int, ...]:
        return self.perm if self.perm is not None else tuple(range(self.rank))

    def tshape(self, perm: Sequence[int] | None = None) -> tuple[int, ...]:
        p = self.layout if perm is None else perm
        return tuple(self.shape[i] for i in p)

    def axis(self, onnx_axis: int) -> int:
        """TFLite axis holding ONNX axis ``onnx_axis`` (negative allowed)."""
        a = onnx_axis % self.rank if self.rank else 0
        return self.layout.index(a)


def _is_identity(p: Sequence[int]) -> bool:
    return all(i == x for i, x in enumerate(p))


def inverse(p: Sequence[int]) -> tuple[int, ...]:
    out = [0] * len(p)
    for i, x in enumerate(p):
        out[x] = i
    return tuple(out)


@dataclass
class ConversionResult:
    """What :func:`convert` produced.

    Attributes:
        flatbuffer: the ``.tflite`` bytes.
        op_counts: TFLite builtin op name -> count.
        layout_transposes: TRANSPOSE ops inserted for layout changes (not the
            model's own Transposes).
    """

    flatbuffer: bytes
    op_counts: dict[str, int]
    layout_transposes: int


class Converter:
    """Converts one self-contained, statically shaped ONNX partition.

    Args:
        model: the partition; every node must be claimed by the tflite
            delegate (see ``support.py``).
    """

    def __init__(self, model: onnx.ModelProto):
        self.model = model
        self.graph = model.graph
        self.opset = next((i.version for i in model.opset_import if i.domain in ("", "ai.onnx")), 1)
        self.b = ModelBuilder(f"unified tflite delegate: {model.graph.name}")
        self.values: dict[str, Value] = {}
        self.types = _infer_types(model)
        self.consumers: dict[str, list[onnx.NodeProto]] = {}
        for n in self.graph.node:
            for x in n.input:
                self.consumers.setdefault(x, []).append(n)
        self.output_names = {o.name for o in self.graph.output}
        self.skip: set[int] = set()
        self.layout_transposes = 0
        self._uid = 0

    # --- values -------------------------------------------------------------

    def get(self, name: str) -> Value:
        v = self.values.get(name)
        if v is None:
            raise DelegateError(f"tflite converter: value '{name}' is used before it is defined")
        return v

    def inp(self, node: onnx.NodeProto, i: int) -> Value | None:
        """Value of input slot ``i`` (None when omitted)."""
        if i >= len(node.input) or not node.input[i]:
            return None
        return self.get(node.input[i])

    def const_of(self, node: onnx.NodeProto, i: int) -> np.ndarray | None:
        v = self.inp(node, i)
        return None if v is None else v.const

    def out_shape(self, name: str) -> tuple[int, ...]:
        tp = self.types.get(name)
        if tp is None or not tp.HasField("tensor_type") or not tp.tensor_type.HasField("shape"):
            raise DelegateError(f"tflite converter: no inferred shape for '{name}'; TFLite needs static shapes")
        dims = []
        for d in tp.tensor_type.shape.dim:
            if not d.HasField("dim_value") or d.dim_value < 0:
                shown = [x.dim_value if x.HasField("dim_value") else (x.dim_param or "?")
                         for x in tp.tensor_type.shape.dim]
                raise DelegateError(f"tflite converter: '{name}' has shape {shown} with a dynamic dim; TFLite "
                                    "needs static shapes (pin the dim with free_dimensions)")
            dims.append(d.dim_value)
        return tuple(dims)

    def out_dtype(self, name: str) -> np.dtype:
        tp = self.types.get(name)
        return np.dtype(helper.tensor_dtype_to_np_dtype(tp.tensor_type.elem_type))

    def uid(self, base: str) -> str:
        self._uid += 1
        return f"{base}#{self._uid}"

    def new(self, name: str, tshape: Sequence[int], dtype, quant=None) -> int:
        """A fresh activation tensor with TFLite-order shape ``tshape``."""
        return self.b.tensor(name, tshape, np.dtype(dtype), quant=quant)

    def define(self, name: str, perm: Sequence[int] | None = None, *, dtype=None, shape=None, quant=None,
               col_perm=None) -> Value:
        """Create the tensor for ONNX output ``name`` in layout ``perm`` and record it."""
        shape = self.out_shape(name) if shape is None else tuple(shape)
        dtype = self.out_dtype(name) if dtype is None else np.dtype(dtype)
        perm = None if perm is None or _is_identity(perm) else tuple(perm)
        v = Value(shape, dtype, perm=perm, quant=quant, col_perm=col_perm)
        v.tensor = self.new(name, v.tshape(), dtype, quant=quant)
        self.values[name] = v
        return v

    def alias(self, name: str, value: Value) -> None:
        self.values[name] = value

    def set_const(self, name: str, array: np.ndarray) -> None:
        array = np.asarray(array)
        self.values[name] = Value(tuple(array.shape), array.dtype, const=array)

    # --- layouts ---------------------------------------------------------------

    def tensor(self, v: Value, perm: Sequence[int] | None = None, name: str = "t") -> int:
        """TFLite tensor index of ``v`` in layout ``perm`` (None: ONNX order).

        Constants are written as buffers; activations are re-laid out with a
        RESHAPE (when only size-1 dims move) or a TRANSPOSE, once per layout.
        """
        want = tuple(range(v.rank)) if perm is None else tuple(perm)
        key = (want, v.quant is not None)
        if key in v._views:
            return v._views[key]
        if v.tensor is None:
            if v.const is None:
                raise DelegateError("tflite converter: value has neither a tensor nor a constant")
            arr = np.ascontiguousarray(np.transpose(v.const, want)) if v.rank else v.const
            idx = self.b.const(self.uid(name), arr, quant=v.quant)
        elif v.col_perm is not None:
            if not _is_identity(want):
                raise DelegateError("tflite converter: a flattened NHWC value can only be read in ONNX order")
            order = np.argsort(v.col_perm).astype(np.int32)
            idx = self.new(self.uid(name), v.shape, v.dtype)
            self.b.op("GATHER", [v.tensor, self.b.const(self.uid("cols"), order)], [idx],
                      self.b.options("GatherOptions", axis=1, batchDims=0))
        elif want == v.layout:
            return v.tensor
        else:
            r = tuple(v.layout.index(a) for a in want)  # new tflite dim i = old tflite dim r[i]
            idx = self.new(self.uid(name), v.tshape(want), v.dtype, quant=v.quant)
            if _moves_only_unit_dims(v.tshape(), r):
                self.reshape_op(v.tensor, idx, v.tshape(want))
            else:
                self.b.op("TRANSPOSE", [v.tensor, self.b.const(self.uid("perm"), np.asarray(r, np.int32))], [idx])
                self.layout_transposes += 1
        v._views[key] = idx
        return idx

    def reshape_op(self, src: int, dst: int, shape: Sequence[int]) -> None:
        shp = np.asarray(list(shape), np.int32)
        self.b.op("RESHAPE", [src, self.b.const(self.uid("shape"), shp)], [dst],
                  self.b.options("ReshapeOptions", newShape=[int(d) for d in shape]))

    def const_in(self, array: np.ndarray, perm: Sequence[int] | None, rank: int, name: str = "c") -> int:
        """A constant broadcast to ``rank`` (leading 1s) and laid out as ``perm``."""
        a = np.asarray(array)
        a = a.reshape((1,) * (rank - a.ndim) + a.shape)
        if perm is not None:
            a = np.transpose(a, perm)
        return self.b.const(self.uid(name), np.ascontiguousarray(a))

    def sole_consumer(self, name: str) -> onnx.NodeProto | None:
        """The only node reading ``name`` when ``name`` is not a partition output."""
        users = self.consumers.get(name, [])
        if len(users) == 1 and name not in self.output_names:
            return users[0]
        return None

    # --- driver -------------------------------------------------------------------

    def run(self) -> ConversionResult:
        g = self.graph
        init = {t.name: t for t in g.initializer}
        for t in g.initializer:
            self.set_const(t.name, numpy_helper.to_array(t))
        for i in g.input:
            if i.name in init:
                continue
            shape = self.out_shape(i.name)
            v = Value(shape, self.out_dtype(i.name))
            v.tensor = self.new(i.name, shape, v.dtype)
            self.values[i.name] = v
            self.b.inputs.append(v.tensor)
        for k, node in enumerate(g.node):
            if k in self.skip:
                continue
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            attrs = {k2: (v.decode() if isinstance(v, bytes) else v) for k2, v in attrs.items()}
            self._skip_index = k
            if self._foldable(node):
                self._fold(node)
                continue
            handler = CONVERTERS.get(node.op_type)
            if handler is None:
                raise DelegateError(f"tflite converter has no converter for op {node.op_type} (node '{node.name}')")
            try:
                handler(self, node, attrs)
            except DelegateError:
                raise
            except Exception as exc:
                raise DelegateError(
                    f"tflite converter failed on node '{node.name}' ({node.op_type}): {type(exc).__name__}: {exc}"
                ) from exc
        for o in g.output:
            v = self.get(o.name)
            idx = self.tensor(v, None, o.name)
            if v.tensor is None or idx in self.b.inputs or idx in self.b.outputs:
                out = self.new(o.name, v.shape, v.dtype)  # outputs must be distinct, computed tensors
                self.reshape_op(idx, out, v.shape)
                idx = out
            self.b.outputs.append(idx)
        return ConversionResult(self.b.finish(), dict(self.b.op_counts), self.layout_transposes)

    def mark_fused(self, node: onnx.NodeProto) -> None:
        """Skip ``node`` later: an earlier converter has absorbed it."""
        for k, n in enumerate(self.graph.node):
            if n is node:
                self.skip.add(k)
                return

    def _foldable(self, node: onnx.NodeProto) -> bool:
        ins = [x for x in node.input if x]
        return (
            node.op_type not in _NEVER_FOLD
            and all(self.values.get(x) is not None and self.values[x].const is not None for x in ins)
            and not any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in node.attribute)
        )

    def _fold(self, node: onnx.NodeProto) -> None:
        """Evaluate a node whose inputs are all constants with ONNX's reference evaluator."""
        from onnx.reference import ReferenceEvaluator

        if node.op_type == "DequantizeLinear":  # onnx.reference lacks some opsets of it (e.g. 13)
            self.set_const(node.output[0], _dequantize(node, [self.values[x].const if x else None
                                                              for x in node.input]))
            return
        names = [x for x in node.input if x]
        inputs = [helper.make_tensor_value_info(x, helper.np_dtype_to_tensor_dtype(self.values[x].const.dtype), None)
                  for x in dict.fromkeys(names)]
        outs = [helper.make_empty_tensor_value_info(o) for o in node.output if o]
        gr = helper.make_graph([node], "fold", inputs, outs)
        m = helper.make_model(gr, opset_imports=list(self.model.opset_import), ir_version=10)
        results = ReferenceEvaluator(m).run(None, {x: self.values[x].const for x in dict.fromkeys(names)})
        for o, r in zip([o for o in node.output if o], results):
            self.set_const(o, np.asarray(r))


def _dequantize(node: onnx.NodeProto, ins: list) -> np.ndarray:
    """ONNX DequantizeLinear (per-tensor or per-axis): y = (x - zero_point) * scale."""
    x, scale = ins[0], ins[1].astype(np.float32)
    zp = ins[2] if len(ins) > 2 and ins[2] is not None else np.zeros_like(scale, dtype=x.dtype)
    axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
    if scale.size > 1:
        shape = [1] * x.ndim
        shape[axis % x.ndim] = scale.size
        scale, zp = scale.reshape(shape), zp.reshape(shape)
    return ((x.astype(np.int64) - zp.astype(np.int64)).astype(np.float32) * scale).astype(np.float32)


# ops that must not be constant-folded (none today; a hook for stateful ops)
_NEVER_FOLD: frozenset[str] = frozenset()


def _moves_only_unit_dims(tshape: Sequence[int], r: Sequence[int]) -> bool:
    """True when permuting dims ``r`` of a tensor of ``tshape`` keeps memory order."""
    big = [i for i in r if tshape[i] != 1]
    return big == sorted(big)


def _infer_types(model: onnx.ModelProto) -> dict[str, onnx.TypeProto]:
    """Value name -> inferred type, from shape inference on a weight-less copy."""
    g = model.graph
    light = onnx.ModelProto()
    weight_bytes = sum(4 * int(np.prod(t.dims)) for t in g.initializer)  # an estimate is enough here
    light.CopyFrom(model) if weight_bytes < (1 << 24) else _strip(model, light)
    try:
        inferred = onnx.shape_inference.infer_shapes(light, data_prop=True)
    except Exception as exc:
        raise DelegateError(f"tflite converter: shape inference failed: {exc}") from None
    types: dict[str, onnx.TypeProto] = {}
    for vi in list(inferred.graph.input) + list(inferred.graph.value_info) + list(inferred.graph.output):
        types[vi.name] = vi.type
    for t in g.initializer:
        types[t.name] = helper.make_tensor_type_proto(t.data_type, list(t.dims))
    return types


def _strip(model: onnx.ModelProto, out: onnx.ModelProto) -> None:
    """Copy ``model`` into ``out`` with large initializers turned into typed inputs."""
    out.ir_version = model.ir_version
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
        if int(np.prod(t.dims)) <= 4096:
            g.initializer.append(t)
        elif t.name not in listed:
            g.input.append(helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)))


def convert(model: onnx.ModelProto) -> ConversionResult:
    """Convert one partition to a ``.tflite`` flatbuffer.

    Args:
        model: a self-contained ONNX partition with static shapes whose every
            node the tflite delegate claims.

    Returns:
        A :class:`ConversionResult`.

    Raises:
        DelegateError: a node the converter cannot express, or a value without
            a static shape.
    """
    from . import ops_conv, ops_elementwise, ops_linear, ops_shape  # noqa: F401  (registers the converters)

    return Converter(model).run()


def attr_ints(attrs: dict, name: str, default: Any) -> list[int]:
    v = attrs.get(name, default)
    return [int(x) for x in v] if v is not None else v
