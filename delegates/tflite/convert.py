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
from typing import Callable, Sequence

import numpy as np
import onnx
from onnx import numpy_helper

from unified.errors import DelegateError
from unified.onnx import NON_DETERMINISTIC, consumers, decode_attributes, dims, evaluate_node, has_subgraph, to_numpy
from unified.onnx import producers, value_types

from .builder import ModelBuilder

__all__ = ["Value", "Converter", "ConversionResult", "convert", "register", "register_int8", "CONVERTERS",
           "INT8_CONVERTERS", "NHWC", "NCHW_OF_NHWC"]

NHWC = (0, 2, 3, 1)
"""``perm`` of an NHWC tensor holding a rank-4 NCHW value."""
NCHW_OF_NHWC = (0, 3, 1, 2)

Handler = Callable[["Converter", onnx.NodeProto, dict], None]
CONVERTERS: dict[str, Handler] = {}
Int8Handler = Callable[["Converter", onnx.NodeProto, dict], bool]
INT8_CONVERTERS: dict[str, Int8Handler] = {}
"""QDQ groups as TFLite int8 ops (``ops_quant.py``): a handler returns False
to leave the node to the float converter in ``CONVERTERS``."""


def _registrar(table: dict, doc: str):
    def register_in(*op_types: str) -> Callable:
        def deco(fn):
            for op in op_types:
                table[op] = fn
            return fn

        return deco

    register_in.__doc__ = doc
    return register_in


register = _registrar(CONVERTERS, "Decorator: ``fn(cx, node, attrs)`` converts nodes of ``op_types``.")
register_int8 = _registrar(INT8_CONVERTERS, "Decorator: ``fn(cx, node, attrs) -> bool`` tries ``op_types`` as an "
                           "int8 QDQ group first (False: leave the node to the float converter).")


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

    Attributes:
        builder: the :class:`~.builder.ModelBuilder` collecting the flatbuffer.
        values: ONNX value name -> :class:`Value` converted so far.
        types: ONNX value name -> ``onnx.TypeProto`` (``unified.onnx.value_types``).
        nodes: the partition's nodes, in order.
        opset: the partition's ai.onnx opset.
    """

    def __init__(self, model: onnx.ModelProto):
        self.model = model
        self.graph = model.graph
        self.opset = next((i.version for i in model.opset_import if i.domain in ("", "ai.onnx")), 1)
        self.builder = ModelBuilder(f"unified tflite delegate: {model.graph.name}")
        self.values: dict[str, Value] = {}
        self.types = _value_types(model)
        self.nodes = list(self.graph.node)
        self._readers = consumers(self.nodes)
        self._producers = producers(self.nodes)
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
        """Static ONNX shape of value ``name``.

        Raises:
            DelegateError: no shape is known, or a dim is symbolic, unknown or negative.
        """
        shape = dims(self.types.get(name))
        if shape is None:
            raise DelegateError(f"tflite converter: no inferred shape for '{name}'; TFLite needs static shapes")
        if any(not isinstance(d, int) or d < 0 for d in shape):
            shown = ["?" if d is None else d for d in shape]
            raise DelegateError(f"tflite converter: '{name}' has shape {shown} with a dynamic dim; TFLite "
                                "needs static shapes (pin the dim with free_dimensions)")
        return shape

    def out_dtype(self, name: str) -> np.dtype:
        """NumPy dtype of value ``name``.

        Raises:
            DelegateError: the value has no tensor type with a NumPy dtype.
        """
        tp = self.types.get(name)
        dtype = to_numpy(tp.tensor_type.elem_type) if tp is not None and tp.HasField("tensor_type") else None
        if dtype is None:
            raise DelegateError(f"tflite converter: value '{name}' has no known tensor element type")
        return dtype

    def uid(self, base: str) -> str:
        self._uid += 1
        return f"{base}#{self._uid}"

    def const(self, base: str, array: np.ndarray, quant=None) -> int:
        """A constant tensor (TFLite order) named ``base#<n>``; small equal ones are shared."""
        return self.builder.const(self.uid(base), array, quant=quant)

    def new(self, name: str, tshape: Sequence[int], dtype, quant=None) -> int:
        """A fresh activation tensor with TFLite-order shape ``tshape``."""
        return self.builder.tensor(name, tshape, np.dtype(dtype), quant=quant)

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
            idx = self.const(name, arr, quant=v.quant)
        elif v.col_perm is not None:
            if not _is_identity(want):
                raise DelegateError("tflite converter: a flattened NHWC value can only be read in ONNX order")
            order = np.argsort(v.col_perm).astype(np.int32)
            idx = self.new(self.uid(name), v.shape, v.dtype)
            self.builder.op("GATHER", [v.tensor, self.const("cols", order)], [idx],
                            self.builder.options("GatherOptions", axis=1, batchDims=0))
        elif want == v.layout:
            return v.tensor
        else:
            r = tuple(v.layout.index(a) for a in want)  # new tflite dim i = old tflite dim r[i]
            idx = self.new(self.uid(name), v.tshape(want), v.dtype, quant=v.quant)
            if _moves_only_unit_dims(v.tshape(), r):
                self.reshape_op(v.tensor, idx, v.tshape(want))
            else:
                self.builder.op("TRANSPOSE", [v.tensor, self.const("perm", np.asarray(r, np.int32))], [idx])
                self.layout_transposes += 1
        v._views[key] = idx
        return idx

    def reshape_op(self, src: int, dst: int, shape: Sequence[int]) -> None:
        shp = np.asarray(list(shape), np.int32)
        self.builder.op("RESHAPE", [src, self.const("shape", shp)], [dst],
                        self.builder.options("ReshapeOptions", newShape=[int(d) for d in shape]))

    def const_in(self, array: np.ndarray, perm: Sequence[int] | None, rank: int, name: str = "c") -> int:
        """A constant broadcast to ``rank`` (leading 1s) and laid out as ``perm``."""
        a = np.asarray(array)
        a = a.reshape((1,) * (rank - a.ndim) + a.shape)
        if perm is not None:
            a = np.transpose(a, perm)
        return self.const(name, np.ascontiguousarray(a))

    def users(self, name: str) -> list[onnx.NodeProto]:
        """The nodes reading ``name``, in order, each once."""
        return [self.nodes[i] for i in self._readers.get(name, [])]

    def producer(self, name: str) -> onnx.NodeProto | None:
        """The partition node that computes ``name`` (None for an input or initializer)."""
        k = self._producers.get(name)
        return None if k is None else self.nodes[k]

    def sole_consumer(self, name: str) -> onnx.NodeProto | None:
        """The only node reading ``name`` when ``name`` is not a partition output."""
        users = self.users(name)
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
            self.builder.inputs.append(v.tensor)
        for k, node in enumerate(self.nodes):
            if k in self.skip:
                continue
            if self._foldable(node):
                self._fold(node)
                continue
            attrs = decode_attributes(node)
            int8 = INT8_CONVERTERS.get(node.op_type)
            if int8 is not None and self._try(int8, node, attrs):
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
            if v.tensor is None or idx in self.builder.inputs or idx in self.builder.outputs:
                out = self.new(o.name, v.shape, v.dtype)  # outputs must be distinct, computed tensors
                self.reshape_op(idx, out, v.shape)
                idx = out
            self.builder.outputs.append(idx)
        self.builder.prune()  # e.g. a DEQUANTIZE whose every reader took the int8 tensor
        return ConversionResult(self.builder.finish(), dict(self.builder.op_counts), self.layout_transposes)

    def _try(self, handler: Int8Handler, node: onnx.NodeProto, attrs: dict) -> bool:
        try:
            return handler(self, node, attrs)
        except DelegateError:
            raise
        except Exception as exc:
            raise DelegateError(f"tflite converter failed on node '{node.name}' ({node.op_type}) as int8: "
                                f"{type(exc).__name__}: {exc}") from exc

    def mark_fused(self, node: onnx.NodeProto) -> None:
        """Skip ``node`` later: an earlier converter has absorbed it."""
        for k, n in enumerate(self.nodes):
            if n is node:
                self.skip.add(k)
                return

    def _foldable(self, node: onnx.NodeProto) -> bool:
        """A deterministic node without subgraphs whose inputs are all constants."""
        ins = [x for x in node.input if x]
        return (
            node.op_type not in NON_DETERMINISTIC
            and all(self.values.get(x) is not None and self.values[x].const is not None for x in ins)
            and not has_subgraph(node)
        )

    def _fold(self, node: onnx.NodeProto) -> None:
        """Evaluate a node whose inputs are all constants (``unified.onnx.evaluate_node``)."""
        args = [self.values[x].const if x else None for x in node.input]
        results = evaluate_node(node, args, self.model.opset_import)
        for o, r in zip([o for o in node.output if o], results):
            self.set_const(o, np.asarray(r))


def _moves_only_unit_dims(tshape: Sequence[int], r: Sequence[int]) -> bool:
    """True when permuting dims ``r`` of a tensor of ``tshape`` keeps memory order."""
    big = [i for i in r if tshape[i] != 1]
    return big == sorted(big)


def _value_types(model: onnx.ModelProto) -> dict[str, onnx.TypeProto]:
    """Value name -> type: what the partition declares; shape inference only
    when some node output has no declared type (e.g. a hand-built model).

    Raises:
        DelegateError: that shape inference fails.
    """
    try:
        return value_types(model, infer=True)
    except Exception as exc:
        raise DelegateError(f"tflite converter: shape inference failed: {exc}") from None


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
    from . import ops_conv, ops_elementwise, ops_linear, ops_quant, ops_shape  # noqa: F401  (registers the converters)

    return Converter(model).run()

