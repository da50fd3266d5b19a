"""Model loading, checking, shape inference and the per-node view delegates see.

A :class:`Graph` wraps one checked, shape-inferred ``onnx.ModelProto`` and
exposes a frozen :class:`NodeView` per node: op type, domain, opset version,
attributes, and the inferred dtype and shape of every input and output. That
is all a delegate's ``supports()`` gets to decide with.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from functools import cached_property
from types import MappingProxyType
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import onnx
from onnx import helper, numpy_helper

from unified.errors import InputError, ModelError, UnifiedError
from unified.onnx.attributes import decode_attributes
from unified.onnx.dtypes import dtype_name
from unified.onnx.dtypes import to_numpy as onnx_dtype_to_numpy
from unified.onnx.fold import fold_constants, pin_and_fold

__all__ = [
    "TensorInfo",
    "NodeView",
    "Graph",
    "load_model",
    "ModelLike",
    "onnx_dtype_to_numpy",
    "ShapeInferenceWarning",
    "type_string",
    "random_feed",
]


class ShapeInferenceWarning(UserWarning):
    """Strict ONNX shape inference failed; the model is used with partial shapes."""

ModelLike = str | os.PathLike | bytes | onnx.ModelProto

# Initializers at most this many elements are exposed as constants on NodeView
# (shape tensors, axes, scales); larger ones (weights) only by dtype and shape.
_CONST_ELEMENTS_MAX = 1 << 16


@dataclass(frozen=True)
class TensorInfo:
    """What is statically known about one tensor (value) of the graph.

    Attributes:
        name: the ONNX value name ("" for an omitted optional input).
        elem_type: ``onnx.TensorProto.DataType`` (0 when unknown).
        shape: tuple of dims, each an int, a symbolic name (str) or None;
            None when even the rank is unknown.
        const: the value as an array when it is a small initializer (at most
            65,536 elements) or a Constant node's output; else None.
        is_initializer: the value is an initializer (weight), whatever its size.
        kind: ``"tensor"``, or for other ONNX types ``"sequence"``,
            ``"optional"``, ``"map"``, ``"sparse_tensor"``; ``elem_type`` and
            ``shape`` describe tensors only (0 / None for the other kinds).
        type_proto: the inferred ``onnx.TypeProto`` (None when unknown).
        shape_derived: the value is computed from tensor shapes and constants
            only (``Shape -> Gather -> Concat``, ``Size``, arithmetic on them);
            it becomes a constant once the model's input dims are fixed, so a
            delegate with ``static_shapes`` sees it as an initializer in
            ``compile()``. False for true constants (see ``const``).
        static_when_specialized: the value's shape becomes fully static once
            every input dim is fixed (False for data-dependent shapes, e.g. the
            output of ``NonZero``, or a ``Reshape`` to a shape read from data).
            Both flags come from a trial specialization at load time
            (:meth:`Graph.specialization_trial`), which also gives the rank
            (dims None) of a value whose rank inference at load lost.
        trial_shape: the value's dims in that trial, with every symbolic
            input dim set to :data:`TRIAL_DIM`; exact for a model without
            symbolic input dims (None when the trial left it unknown). A
            delegate may use it to decline shapes it cannot run (a zero-size
            dim) that inference at load could not see.
        consumed: some node reads the value, or it is a model output (False
            for an unused optional output such as Dropout's mask).
    """

    name: str
    elem_type: int = 0
    shape: tuple[int | str | None, ...] | None = None
    const: np.ndarray | None = field(default=None, compare=False, repr=False)
    is_initializer: bool = False
    kind: str = "tensor"
    type_proto: onnx.TypeProto | None = field(default=None, compare=False, repr=False)
    shape_derived: bool = field(default=False, compare=False)
    static_when_specialized: bool = field(default=False, compare=False)
    trial_shape: tuple[int, ...] | None = field(default=None, compare=False)
    consumed: bool = field(default=True, compare=False)

    @property
    def is_typed(self) -> bool:
        """The value's type is known (a tensor's element type, or any non-tensor type)."""
        return bool(self.elem_type) if self.kind == "tensor" else self.type_proto is not None

    @property
    def dtype(self) -> np.dtype | None:
        """NumPy dtype, or None when unknown."""
        return onnx_dtype_to_numpy(self.elem_type)

    @property
    def rank(self) -> int | None:
        """Number of dims, or None when unknown."""
        return None if self.shape is None else len(self.shape)

    @property
    def is_static(self) -> bool:
        """True when every dim is a known int."""
        return self.shape is not None and all(isinstance(d, int) for d in self.shape)

    @property
    def type_str(self) -> str:
        """ONNX Runtime style type string, e.g. ``tensor(float)``, ``seq(tensor(int64))``."""
        if self.kind != "tensor" and self.type_proto is not None:
            return type_string(self.type_proto)
        if not self.elem_type:
            return "tensor(undefined)"
        return f"tensor({dtype_name(self.elem_type)})"


_KINDS = {
    "tensor_type": "tensor",
    "sequence_type": "sequence",
    "optional_type": "optional",
    "map_type": "map",
    "sparse_tensor_type": "sparse_tensor",
}


def type_string(tp: onnx.TypeProto) -> str:
    """ONNX Runtime style name of any ONNX type, e.g. ``optional(seq(tensor(float)))``."""
    which = tp.WhichOneof("value")
    if which == "tensor_type":
        return f"tensor({dtype_name(tp.tensor_type.elem_type) if tp.tensor_type.elem_type else 'undefined'})"
    if which == "sparse_tensor_type":
        return f"sparse_tensor({dtype_name(tp.sparse_tensor_type.elem_type)})"
    if which == "sequence_type":
        return f"seq({type_string(tp.sequence_type.elem_type)})"
    if which == "optional_type":
        return f"optional({type_string(tp.optional_type.elem_type)})"
    if which == "map_type":
        return f"map({dtype_name(tp.map_type.key_type)},{type_string(tp.map_type.value_type)})"
    return "undefined"


@dataclass(frozen=True)
class NodeView:
    """A read-only view of one node, with inferred types, for ``supports()``.

    Attributes:
        name: node name (unique; unnamed nodes get ``"<op_type>_<index>"``).
        op_type: e.g. ``"Conv"``.
        domain: ``""`` for the default ``ai.onnx`` domain.
        opset: the opset version the model imports for ``domain``.
        attributes: attribute name -> Python value (ints, floats, strings as
            str, tensors as ndarray, graphs as ``onnx.GraphProto``).
        inputs / outputs: a :class:`TensorInfo` per slot, in order; an omitted
            optional input has name "".
        index: position of the node in the graph's topological order.
        implicit_inputs: outer-scope values its subgraphs (If/Loop/Scan
            bodies) read; empty for nodes without subgraphs.
        proto: the ``onnx.NodeProto`` itself (do not modify).
    """

    name: str
    op_type: str
    domain: str
    opset: int
    attributes: Mapping[str, Any]
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    index: int = 0
    implicit_inputs: tuple[TensorInfo, ...] = ()
    proto: onnx.NodeProto | None = field(default=None, compare=False, repr=False)

    def attr(self, name: str, default: Any = None) -> Any:
        """Attribute ``name`` as a Python value, or ``default`` when the node does not set it."""
        return self.attributes.get(name, default)

    @property
    def has_subgraph(self) -> bool:
        """The node has a graph attribute (If/Loop/Scan bodies)."""
        return any(isinstance(v, (onnx.GraphProto, list)) and _is_graph_list(v) for v in self.attributes.values())

    def signature(self) -> tuple:
        """Hashable key of what decides kernel choice: op, domain, opset,
        input/output types and ranks, attributes."""
        attrs = tuple(sorted((k, _hashable(v)) for k, v in self.attributes.items()))
        ins = tuple((t.elem_type, t.rank, bool(t.name), _non_tensor_key(t)) for t in self.inputs + self.implicit_inputs)
        outs = tuple((t.elem_type, t.rank, _non_tensor_key(t)) for t in self.outputs)
        return (self.op_type, self.domain, self.opset, ins, outs, attrs)


def _non_tensor_key(t: TensorInfo) -> bytes | None:
    if t.kind == "tensor" or t.type_proto is None:
        return None
    return t.type_proto.SerializeToString(deterministic=True)


def _is_graph_list(v: Any) -> bool:
    if isinstance(v, onnx.GraphProto):
        return True
    return isinstance(v, list) and bool(v) and isinstance(v[0], onnx.GraphProto)


def _hashable(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        return ("nd", v.dtype.str, v.shape, v.tobytes() if v.size <= 4096 else hash(v.tobytes()))
    if isinstance(v, onnx.GraphProto):
        return ("graph", v.SerializeToString())
    if isinstance(v, list):
        return tuple(_hashable(x) for x in v)
    if isinstance(v, bytes):
        return v
    return v


def _read_model(model: ModelLike) -> tuple[onnx.ModelProto, str | None]:
    """Parse without checking. Returns the proto and its path (if any)."""
    if isinstance(model, onnx.ModelProto):
        return model, None
    if isinstance(model, (bytes, bytearray, memoryview)):
        proto = onnx.ModelProto()
        try:
            proto.ParseFromString(bytes(model))
        except Exception as exc:  # protobuf raises DecodeError / RuntimeError
            raise ModelError(
                f"could not parse {len(model)} bytes as an ONNX ModelProto ({exc}); "
                "expected the bytes of a .onnx file"
            ) from None
        return proto, None
    if isinstance(model, (str, os.PathLike)):
        path = Path(model)
        if not path.is_file():
            raise ModelError(f"model file '{path}' does not exist; expected a path to a .onnx file")
        try:
            proto = onnx.load(str(path), load_external_data=True)
        except Exception as exc:
            raise ModelError(
                f"could not parse '{path}' as an ONNX model ({type(exc).__name__}: {exc}); "
                "the file may be truncated, corrupt, or not ONNX"
            ) from None
        return proto, str(path)
    raise ModelError(
        f"cannot load a model from {type(model).__name__}; expected a path, bytes or onnx.ModelProto"
    )


def _check_opsets(proto: onnx.ModelProto) -> None:
    known_max = {"": onnx.defs.onnx_opset_version(), "ai.onnx": onnx.defs.onnx_opset_version()}
    if not proto.opset_import:
        raise ModelError("model has no opset_import; expected at least the default domain ('' / ai.onnx)")
    for imp in proto.opset_import:
        top = known_max.get(imp.domain)
        if top is not None and imp.version > top:
            raise ModelError(
                f"model imports opset {imp.version} of domain '{imp.domain or 'ai.onnx'}', but the installed "
                f"onnx {onnx.__version__} knows opsets up to {top}; re-export the model with opset <= {top} "
                "or upgrade onnx"
            )
        if imp.version < 1:
            raise ModelError(f"model imports invalid opset version {imp.version} for domain '{imp.domain}'")


def _pin_dims(proto: onnx.ModelProto, dims: Mapping[str, int]) -> onnx.ModelProto:
    """A copy of ``proto`` whose symbolic dims named in ``dims`` are fixed.

    Like ONNX Runtime's free-dimension overrides: graph inputs and outputs get
    the values, intermediate ``value_info`` is dropped so shape inference
    re-derives it with static shapes.

    Raises:
        ModelError: a name that is no symbolic dim of a graph input, or a
            value that is not a positive int.
    """
    out = onnx.ModelProto()
    out.CopyFrom(proto)
    g = out.graph
    found = {
        d.dim_param for vi in g.input if vi.type.HasField("tensor_type") for d in vi.type.tensor_type.shape.dim
    } & set(dims)
    for vi in list(g.input) + list(g.output):
        if not vi.type.HasField("tensor_type"):
            continue
        for d in vi.type.tensor_type.shape.dim:
            if d.HasField("dim_param") and d.dim_param in found:
                value = dims[d.dim_param]
                if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                    raise ModelError(f"free dimension '{d.dim_param}' = {value!r}; expected a positive int")
                d.dim_value = value
    symbolic = sorted(
        {d.dim_param for vi in proto.graph.input for d in vi.type.tensor_type.shape.dim if d.dim_param}
    )
    unknown = sorted(set(dims) - found)
    if unknown:
        raise ModelError(
            f"free dimension(s) {unknown} are not symbolic dims of the model's inputs; "
            f"its symbolic dims are: {', '.join(symbolic) or 'none'}"
        )
    del g.value_info[:]
    return out


def load_model(model: ModelLike, free_dimensions: Mapping[str, int] | None = None) -> onnx.ModelProto:
    """Read, check and shape-infer a model.

    Args:
        model: a path to a ``.onnx`` file, its bytes, or an ``onnx.ModelProto``
            (not modified).
        free_dimensions: symbolic dim name -> value, fixed before shape
            inference (ONNX Runtime's free-dimension overrides); the shape
            computations that become constant are then folded
            (``unified.onnx.fold``), so delegates that need static shapes see
            them; a constant ``DequantizeLinear`` stays a node (see ``LOAD_UNFOLDED``).

    Returns:
        A new ``ModelProto`` with inferred ``value_info`` for intermediate values.

    Raises:
        ModelError: unreadable/truncated file, unknown opset, a checker
            failure, or a shape-inference failure even in lenient mode; the
            message names the node.
    """
    proto, path = _read_model(model)
    if not proto.HasField("graph"):
        raise ModelError("the model has no graph; the file is empty, truncated or not an ONNX model")
    try:
        return _load_checked(proto, free_dimensions)
    except UnifiedError:
        raise
    except Exception as exc:  # protobuf/onnx internals on a corrupt model: never a bare traceback
        raise ModelError(
            f"the model could not be read ({type(exc).__name__}: {' '.join(str(exc).split())[:300]}); "
            "the file may be corrupt or not ONNX"
        ) from None


#: op types the load-time fold (with ``free_dimensions``) leaves as nodes.
LOAD_UNFOLDED = frozenset({"DequantizeLinear"})


def _load_checked(proto: onnx.ModelProto, free_dimensions: Mapping[str, int] | None) -> onnx.ModelProto:
    _check_opsets(proto)
    if free_dimensions:
        proto = _pin_dims(proto, free_dimensions)
    proto = _negative_dims_dynamic(proto)
    _check(proto)
    inferred = _infer_shapes(proto)
    if free_dimensions:
        # shape chains only: a constant DequantizeLinear (a QDQ weight) stays, so each
        # delegate's own specialization folds it or not (``Delegate.unfolded_ops``)
        inferred = fold_constants(inferred, _infer_shapes, unfolded=LOAD_UNFOLDED)
    return inferred


def _tensor_types(graph: onnx.GraphProto):
    for vi in list(graph.input) + list(graph.output) + list(graph.value_info):
        if vi.type.HasField("tensor_type"):
            yield vi.type.tensor_type


def _anonymous(d: onnx.TensorShapeProto.Dimension) -> bool:
    return (d.HasField("dim_value") and d.dim_value < 0) or (d.HasField("dim_param") and d.dim_param.strip() in ("", "?"))


def _negative_dims_dynamic(proto: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``proto`` whose negative and ``"?"`` dims are unknown dims.

    Some exporters (Paddle) write ``dim_value: -1`` or ``dim_param: "?"`` for
    each dynamic dim; ONNX Runtime treats both as dynamic and unrelated to each
    other, so do we (two ``"?"`` dims are not one named dim that must match).
    ``proto`` itself is returned when it has none.
    """
    if not any(_anonymous(d) for t in _tensor_types(proto.graph) for d in t.shape.dim):
        return proto
    out = onnx.ModelProto()
    out.CopyFrom(proto)
    for t in _tensor_types(out.graph):
        for d in t.shape.dim:
            if _anonymous(d):
                d.Clear()
    return out


def _check(proto: onnx.ModelProto) -> None:
    """``onnx.checker.check_model``, accepting what ONNX Runtime accepts.

    The checker requires a ``shape`` on every graph input/output and
    value_info tensor type, while exporters often write ``tensor(float)``
    with no shape (unknown rank), which ONNX Runtime runs. Such types get an
    empty shape for the check only and are restored afterwards.
    """
    shapeless = [t for t in _tensor_types(proto.graph) if not t.HasField("shape")]
    for t in shapeless:
        t.shape.SetInParent()
    try:
        onnx.checker.check_model(proto)
    except onnx.checker.ValidationError as exc:
        msg = str(exc).strip().splitlines()
        raise ModelError(f"the model is not valid ONNX: {' '.join(m.strip() for m in msg[:6])}") from None
    finally:
        for t in shapeless:
            t.ClearField("shape")


def _infer_shapes(proto: onnx.ModelProto) -> onnx.ModelProto:
    try:
        return onnx.shape_inference.infer_shapes(proto, check_type=True, strict_mode=True, data_prop=True)
    except Exception as exc:
        strict_error = " ".join(str(exc).split())[:800]
    # Strict inference also fails on some valid models (e.g. onnx's own
    # MeanVarianceNormalization test): retry leniently, and say so.
    try:
        inferred = onnx.shape_inference.infer_shapes(proto, check_type=True, strict_mode=False, data_prop=True)
    except Exception:
        raise ModelError(f"shape inference failed: {strict_error}") from None
    warnings.warn(
        f"strict shape inference failed ({strict_error}); continuing with partial shape information",
        ShapeInferenceWarning,
        stacklevel=4,
    )
    return inferred


class Graph:
    """A checked, shape-inferred model and the views the planner needs.

    Args:
        model: path, bytes or ``ModelProto``; see :func:`load_model`.
        free_dimensions: symbolic dims to fix; see :func:`load_model`.

    Raises:
        ModelError: see :func:`load_model`.
    """

    def __init__(self, model: ModelLike, free_dimensions: Mapping[str, int] | None = None):
        loaded = load_model(model, free_dimensions)
        try:
            self.model: onnx.ModelProto = _fold_constant_nodes(loaded)
        except Exception as exc:  # a Constant node whose tensor cannot be decoded
            raise ModelError(f"a Constant node of the model cannot be read ({type(exc).__name__}: {exc})") from None
        g = self.model.graph
        self.opsets: dict[str, int] = {
            ("" if i.domain == "ai.onnx" else i.domain): i.version for i in self.model.opset_import
        }
        self.initializers: dict[str, onnx.TensorProto] = {t.name: t for t in g.initializer}
        self.types: dict[str, onnx.TypeProto] = {}
        for vi in list(g.input) + list(g.value_info) + list(g.output):
            if vi.type.HasField("tensor_type") or vi.name not in self.types:
                self.types[vi.name] = vi.type
        for t in g.initializer:
            self.types.setdefault(t.name, helper.make_tensor_type_proto(t.data_type, list(t.dims)))
        self.inputs: list[onnx.ValueInfoProto] = [i for i in g.input if i.name not in self.initializers]
        self.outputs: list[onnx.ValueInfoProto] = list(g.output)
        self.nodes: list[onnx.NodeProto] = list(g.node)
        self._constants = self._constant_values()
        names, seen = [], set()
        for i, n in enumerate(self.nodes):
            name = n.name or f"{n.op_type}_{i}"
            if name in seen:
                name = f"{name}_{i}"
            seen.add(name)
            names.append(name)
        self.node_names: list[str] = names

    def _constant_values(self) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for n in self.model.graph.node:
            if n.op_type == "Constant" and n.domain in ("", "ai.onnx") and len(n.output) == 1:
                for a in n.attribute:
                    if a.name == "value":
                        arr = numpy_helper.to_array(a.t)
                        if arr.size <= _CONST_ELEMENTS_MAX:
                            out[n.output[0]] = arr
        return out

    def tensor_info(self, name: str) -> TensorInfo:
        """Inferred type, shape and (small) constant value of a value name."""
        if not name:
            return TensorInfo("")
        tp = self.types.get(name)
        elem, shape = 0, None
        kind = _KINDS.get(tp.WhichOneof("value"), "tensor") if tp is not None else "tensor"
        if kind != "tensor":
            return TensorInfo(name, kind=kind, type_proto=tp)
        if tp is not None and tp.HasField("tensor_type"):
            tt = tp.tensor_type
            elem = tt.elem_type
            if tt.HasField("shape"):
                shape = tuple(
                    d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in tt.shape.dim
                )
        init = self.initializers.get(name)
        const = self._constants.get(name)
        if init is not None and const is None and _numel(init.dims) <= _CONST_ELEMENTS_MAX:
            const = numpy_helper.to_array(init)
        derived, static = self.specialization_trial
        known = init is not None or const is not None or (shape is not None and all(isinstance(d, int) for d in shape))
        if shape is None and name in static:  # inference at load lost the rank; the trial found it
            shape = (None,) * len(static[name])
        return TensorInfo(
            name, elem, shape, const, init is not None, type_proto=tp,
            shape_derived=name in derived,
            static_when_specialized=known or name in static,
            trial_shape=static.get(name),
            consumed=name in self._consumed,
        )

    @cached_property
    def _consumed(self) -> frozenset[str]:
        """Value names some node reads (subgraphs' outer-scope reads included) or the model outputs."""
        names = {o.name for o in self.outputs}
        for n in self.nodes:
            names.update(n.input)
            names.update(implicit_inputs(n))
        return frozenset(names)

    @cached_property
    def specialization_trial(self) -> tuple[frozenset[str], Mapping[str, tuple[int, ...]]]:
        """``(shape_derived names, {static-when-specialized name: its dims in the trial})``.

        Every symbolic input dim is fixed to :data:`TRIAL_DIM` (64) on a copy
        of the model, shapes are inferred again and constants folded
        (``unified.onnx.fold``) -- what the session does to a partition of a
        ``static_shapes`` delegate at its first run. Values that folded to
        constants are *shape-derived*; values whose shape became static are
        *static when specialized*. The flags are structural: they hold for any
        other choice of input dims that shape inference accepts.
        """
        return _specialization_trial(self.model)

    @cached_property
    def node_views(self) -> list[NodeView]:
        views = []
        for i, n in enumerate(self.nodes):
            domain = "" if n.domain == "ai.onnx" else n.domain
            attrs = decode_attributes(n, self.node_names[i])
            views.append(
                NodeView(
                    name=self.node_names[i],
                    op_type=n.op_type,
                    domain=domain,
                    opset=self.opsets.get(domain, 1),
                    attributes=attrs,
                    inputs=tuple(self.tensor_info(x) for x in n.input),
                    outputs=tuple(self.tensor_info(x) for x in n.output),
                    index=i,
                    implicit_inputs=tuple(self.tensor_info(x) for x in implicit_inputs(n)),
                    proto=n,
                )
            )
        return views

    def input_infos(self) -> list[TensorInfo]:
        """A :class:`TensorInfo` per model input (initializers excluded), in order."""
        return [self.tensor_info(i.name) for i in self.inputs]

    def output_infos(self) -> list[TensorInfo]:
        """A :class:`TensorInfo` per model output, in order."""
        return [self.tensor_info(o.name) for o in self.outputs]


_CONSTANT_ATTRS = {
    "value_float": np.float32,
    "value_floats": np.float32,
    "value_int": np.int64,
    "value_ints": np.int64,
}


def _fold_constant_nodes(model: onnx.ModelProto) -> onnx.ModelProto:
    """Turn top-level ``Constant`` nodes into initializers (in place).

    Every delegate then sees constants as initializers and no partition
    consists of a lone Constant node. String and sparse constants, and
    constants that are graph outputs, stay nodes.
    """
    g = model.graph
    keep, inits = [], []
    outputs = {o.name for o in g.output}
    for n in g.node:
        arr = None
        foldable = n.op_type == "Constant" and n.domain in ("", "ai.onnx") and len(n.attribute) == 1
        if foldable and n.output[0] not in outputs:  # a graph made of a lone Constant stays a graph
            a = n.attribute[0]
            if a.name == "value" and a.t.data_type != onnx.TensorProto.STRING:
                arr = numpy_helper.to_array(a.t)
            elif a.name in _CONSTANT_ATTRS:
                arr = np.array(decode_attributes(n)[a.name], dtype=_CONSTANT_ATTRS[a.name])
        if arr is None:
            keep.append(n)
        else:
            inits.append(numpy_helper.from_array(arr, n.output[0]))
    if inits:
        del g.node[:]
        g.node.extend(keep)
        g.initializer.extend(inits)
        model.ir_version = max(model.ir_version, 4)  # IR < 4 wants every initializer listed as an input
    return model


TRIAL_DIM = 64
"""Value given to every symbolic input dim in :meth:`Graph.specialization_trial`
(large enough that no dim is mistaken for a broadcast 1, and a multiple of the
usual CNN strides 2..32)."""


def _specialization_trial(model: onnx.ModelProto) -> tuple[frozenset[str], Mapping[str, tuple[int, ...]]]:
    shapes = {
        vi.name: [d.dim_value if d.HasField("dim_value") else TRIAL_DIM for d in vi.type.tensor_type.shape.dim]
        for vi in model.graph.input
        if vi.type.HasField("tensor_type") and vi.type.tensor_type.HasField("shape")
    }
    symbolic = any(
        not d.HasField("dim_value") for vi in model.graph.input for d in vi.type.tensor_type.shape.dim
    )
    folded: set[str] = set()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # a static model's inferred shapes already are the trial's: no second inference pass
            trial = pin_and_fold(model, shapes, _infer_shapes, record=folded, reinfer=symbolic)
    except Exception:  # the trial is advisory: no facts rather than no model
        return frozenset(), MappingProxyType({})
    g = trial.graph
    derived = frozenset(folded)
    static = {
        vi.name: tuple(d.dim_value for d in vi.type.tensor_type.shape.dim)
        for vi in list(g.input) + list(g.value_info) + list(g.output)
        if vi.type.HasField("tensor_type")
        and vi.type.tensor_type.HasField("shape")
        and all(d.HasField("dim_value") for d in vi.type.tensor_type.shape.dim)
    }
    static.update({t.name: tuple(t.dims) for t in g.initializer if t.name in derived})
    return derived, MappingProxyType(static)


def _numel(dims) -> int:
    n = 1
    for d in dims:
        n *= int(d)
    return n


def implicit_inputs(node: onnx.NodeProto) -> list[str]:
    """Outer-scope value names a node's subgraphs (If/Loop/Scan bodies) read.

    ONNX subgraphs may reference any value visible in an enclosing scope; such
    a node depends on those values although they are not in ``node.input``.
    """
    found: list[str] = []

    def scan(graph: onnx.GraphProto, outer_defined: set[str]) -> None:
        defined = set(outer_defined)
        defined.update(i.name for i in graph.input)
        defined.update(t.name for t in graph.initializer)
        defined.update(t.values.name for t in graph.sparse_initializer)
        for n in graph.node:
            for x in n.input:
                if x and x not in defined and x not in found:
                    found.append(x)
            for a in n.attribute:
                if a.type == onnx.AttributeProto.GRAPH:
                    scan(a.g, defined)
                elif a.type == onnx.AttributeProto.GRAPHS:
                    for sg in a.graphs:
                        scan(sg, defined)
            defined.update(n.output)

    for a in node.attribute:
        if a.type == onnx.AttributeProto.GRAPH:
            scan(a.g, set())
        elif a.type == onnx.AttributeProto.GRAPHS:
            for sg in a.graphs:
                scan(sg, set())
    return found


def random_feed(inputs, seed: int = 0, dims: Mapping[str, int] | None = None) -> dict[str, np.ndarray]:
    """Seeded random values for model inputs.

    Args:
        inputs: objects with ``name``, ``shape`` (ints, symbolic names or
            None) and ``dtype`` (NumPy dtype or None for float32), e.g.
            ``session.get_inputs()`` or ``Graph.input_infos()``.
        seed: seed of ``numpy.random.default_rng``.
        dims: values of symbolic dims (default 1).

    Returns:
        name -> array: floats ~ U(-1, 1), integers in [0, 10), bools random.

    Raises:
        InputError: an input dtype with no random draw here (e.g. strings).
    """
    rng = np.random.default_rng(seed)
    feed = {}
    for arg in inputs:
        shape = [d if isinstance(d, int) else (dims or {}).get(str(d), 1) for d in (arg.shape or ())]
        dtype = arg.dtype or np.dtype(np.float32)
        if dtype.kind == "f":
            feed[arg.name] = rng.uniform(-1, 1, shape).astype(dtype)
        elif dtype.kind in "iu":
            feed[arg.name] = rng.integers(0, 10, shape).astype(dtype)
        elif dtype.kind == "b":
            feed[arg.name] = rng.integers(0, 2, shape).astype(bool)
        else:
            raise InputError(f"cannot draw random values for input '{arg.name}' of dtype {dtype}; pass its value")
    return feed
