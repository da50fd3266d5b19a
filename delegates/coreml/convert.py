"""ONNX partition -> MIL program, built op by op with coremltools' MIL builder.

No torch round trip: every ONNX node is lowered by a function of the
lowering tables (:mod:`.ops_nn`, :mod:`.ops_tensor`) that emits MIL ops
with ``coremltools.converters.mil.Builder``; nodes are read through
:class:`unified.onnx.Node` and value types through
:func:`unified.onnx.value_types`. Values the converter knows at compile time
(initializers, ``Shape`` of a static tensor, anything computed only from
those) stay NumPy arrays with their ONNX dtype and are folded with
:func:`unified.onnx.evaluate_node` (ONNX's reference evaluator), so shape
arithmetic is exact and only data-dependent work reaches Core ML.

Types. Core ML has no int64 or float64 tensors: an ONNX ``int64`` value is an
``int32`` MIL value (constants are range-checked; ``INT64_MAX``-style "to the
end" markers in ``Slice`` are handled there), ``bool`` is MIL ``bool`` inside
the program and ``int32`` at the model's inputs and outputs (Core ML
multi-arrays are fp16, fp32, fp64 or int32 only). :data:`IO_DTYPES` is the
boundary mapping; the executable casts on the way in and out.

Shapes. A symbolic ONNX dim (``dim_param``, or unnamed) becomes one MIL
symbol per name, shared by every input that uses the name, and a Core ML
flexible range ``[lower, upper]`` (option ``dim_ranges``, default
``DEFAULT_DIM_RANGE``): ML Programs need a finite upper bound.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

from unified.errors import DelegateError
from unified.onnx import NON_DETERMINISTIC, Node, dims, dtype_name, elem_type, evaluate_node, numel, value_types

__all__ = [
    "build_program", "signature", "output_ranks", "IoSpec", "Ctx", "mil_array", "np_dtype", "out_name",
    "DEFAULT_DIM_RANGE", "IO_DTYPES", "MIL_DTYPES", "sanitize",
]

#: Range of a symbolic dim when ``dim_ranges`` does not name it: 1 .. 512,
#: the longest sequence BERT-style position embeddings (MiniLM) accept.
DEFAULT_DIM_RANGE = (1, 512)

#: ONNX elem type -> MIL dtype name used *inside* the program.
MIL_DTYPES: dict[int, str] = {
    TensorProto.FLOAT: "fp32",
    TensorProto.FLOAT16: "fp16",
    TensorProto.INT32: "int32",
    TensorProto.INT64: "int32",
    TensorProto.BOOL: "bool",
}

#: ONNX elem type -> Core ML multi-array type at the model boundary
#: (``FeatureTypes.proto`` ``ArrayDataType``: FLOAT32, FLOAT16, INT32).
IO_DTYPES: dict[int, str] = {
    TensorProto.FLOAT: "FLOAT32",
    TensorProto.FLOAT16: "FLOAT16",
    TensorProto.INT32: "INT32",
    TensorProto.INT64: "INT32",
    TensorProto.BOOL: "INT32",
}

_NP = {"fp32": np.float32, "fp16": np.float16, "int32": np.int32, "bool": np.bool_}
_INT32 = np.iinfo(np.int32)

# Names the MIL text format reserves (coremltools ``NameSanitizer``).
_RESERVED = {
    "any", "bool", "program", "func", "tensor", "list", "dict", "tuple", "true", "false", "string",
    "bf16", "fp16", "fp32", "fp64", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
}


def sanitize(name: str, taken: set[str]) -> str:
    """A Core ML feature name for an ONNX value name: ``[A-Za-z_][A-Za-z0-9_]*``,
    not reserved, unique among ``taken`` (which it is added to).

    The rules are coremltools' own (``NameSanitizer`` in
    ``mil/passes/defs/preprocess.py``), applied here so the mapping is known
    and recorded rather than discovered after conversion.
    """
    new = re.sub(r"[^a-zA-Z0-9_]", "_", name)
    if not re.match(r"[a-zA-Z_]", new) or new in _RESERVED:
        new = "_" + new
    base, k = new, 0
    while new in taken:
        new = f"{base}_{k}"
        k += 1
    taken.add(new)
    return new


@dataclass(frozen=True)
class IoSpec:
    """One model input or output as ONNX and as Core ML see it.

    Attributes:
        onnx_name / coreml_name: the value's name on each side.
        onnx_dtype: ONNX elem type (``TensorProto.DataType``).
        coreml_dtype: Core ML multi-array type name, see :data:`IO_DTYPES`.
        shape: the ONNX dims, each an int or a symbolic name (str).
        ranges: for inputs, (lower, upper) per dim of the Core ML input
            (equal for a fixed dim). Core ML has no rank-0 inputs: a scalar
            ONNX input (``shape == ()``) is a Core ML input of shape (1,)
            (``ranges == ((1, 1),)``), squeezed back inside the program.
    """

    onnx_name: str
    coreml_name: str
    onnx_dtype: int
    coreml_dtype: str
    shape: tuple
    ranges: tuple = ()

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "IoSpec":
        """The inverse of ``dataclasses.asdict`` after a JSON round trip (lists back to tuples)."""
        return cls(
            d["onnx_name"], d["coreml_name"], int(d["onnx_dtype"]), d["coreml_dtype"], tuple(d["shape"]),
            tuple(tuple(r) for r in d.get("ranges", ())),
        )


class Ctx:
    """Values of the program under construction: ONNX name -> MIL ``Var`` or NumPy constant.

    Attributes:
        mb: coremltools' MIL ``Builder``.
        types: ONNX name -> elem type, for every typed value of the partition.
        shapes: ONNX name -> inferred shape (ints, names or None).
        out_names: ONNX output name -> Core ML name, for naming final ops.
    """

    def __init__(self, mb, types: dict[str, int], shapes: dict[str, tuple | None], out_names: dict[str, str]):
        self.mb = mb
        self.types = types
        self.shapes = shapes
        self.out_names = out_names
        self.values: dict[str, Any] = {}

    def get(self, name: str):
        """Var or ndarray for ``name``; None for an omitted input ("")."""
        if not name:
            return None
        try:
            return self.values[name]
        except KeyError:
            raise DelegateError(f"coreml converter: value '{name}' is read before it is defined") from None

    def const(self, name: str) -> np.ndarray | None:
        """The compile-time value of ``name`` (ONNX dtype), or None."""
        v = self.get(name) if name else None
        return v if isinstance(v, np.ndarray) else None

    def is_const(self, name: str) -> bool:
        return self.const(name) is not None

    def var(self, name_or_value, dtype: str | None = None):
        """A MIL ``Var`` for a value name, a Var, or an array (made a const)."""
        v = self.get(name_or_value) if isinstance(name_or_value, str) else name_or_value
        if isinstance(v, (np.ndarray, np.generic, int, float, bool)):
            return self.mb.const(val=mil_array(np.asarray(v), dtype))
        if dtype is not None and v.dtype is not None and _dtype_name(v.dtype) != dtype:
            return self.mb.cast(x=v, dtype=dtype)
        return v

    def mil_dtype(self, name: str) -> str:
        t = self.types.get(name)
        if t not in MIL_DTYPES:
            raise DelegateError(f"coreml converter: value '{name}' has ONNX type {t}, which Core ML cannot hold")
        return MIL_DTYPES[t]

    def shape(self, x) -> tuple:
        """Static shape of a Var or array: ints, or None for a symbolic dim."""
        if isinstance(x, np.ndarray):
            return tuple(int(d) for d in x.shape)
        return tuple(int(d) if _is_int(d) else None for d in x.shape)

    def name_for(self, onnx_name: str) -> dict[str, str]:
        """``name=`` keyword for the op that produces ``onnx_name`` (outputs only)."""
        n = self.out_names.get(onnx_name)
        return {"name": n} if n else {}


def out_name(ctx: Ctx, node: Node, i: int = 0) -> dict[str, str]:
    """``name=`` keyword for the MIL op producing output ``i`` of ``node``
    (set only for graph outputs, so they keep their Core ML names)."""
    return ctx.name_for(node.outputs[i]) if i < len(node.outputs) else {}


def np_dtype(mil_dtype: str) -> type:
    """NumPy scalar type of a MIL dtype name: ``"fp32"``, ``"fp16"``, ``"int32"`` or ``"bool"``."""
    return _NP[mil_dtype]


def _is_int(d) -> bool:
    return isinstance(d, (int, np.integer))


def _dtype_name(t) -> str:
    from coremltools.converters.mil.mil import types

    return types.builtin_to_string(t)


def mil_array(a: np.ndarray, dtype: str | None = None) -> np.ndarray:
    """An ONNX-typed constant as a MIL constant: int64 -> int32 (range-checked),
    float64 -> float32; ``dtype`` forces a MIL dtype name.

    Raises:
        DelegateError: an int64 constant outside the int32 range.
    """
    if dtype is not None:
        target = _NP[dtype]
        if np.issubdtype(a.dtype, np.integer) and target == np.int32:
            return _to_int32(a)
        return a.astype(target)
    if a.dtype == np.int64 or a.dtype == np.uint32 or a.dtype == np.uint64:
        return _to_int32(a)
    if a.dtype == np.float64:
        return a.astype(np.float32)
    return a


def _to_int32(a: np.ndarray) -> np.ndarray:
    if a.size and (a.min() < _INT32.min or a.max() > _INT32.max):
        raise DelegateError(
            f"coreml converter: int64 constant with values in [{a.min()}, {a.max()}] does not fit Core ML's int32"
        )
    return a.astype(np.int32)


Lowering = Callable[[Ctx, Node], Any]


# Constant-folded results larger than this stay in the program as MIL consts
# anyway; the limit only stops folding from materializing huge tensors.
_FOLD_MAX_ELEMENTS = 1 << 24


def build_program(
    model: onnx.ModelProto,
    lowerings: Mapping[str, Lowering],
    target,
    dim_ranges: Mapping[str, tuple[int, int]] | None = None,
):
    """Lower one ONNX partition to a MIL ``Program`` with function ``main``.

    Args:
        model: the partition (every node in the default domain, every value typed).
        lowerings: op type -> lowering function.
        target: a ``coremltools.target`` member (the MIL opset version).
        dim_ranges: symbolic dim name -> (lower, upper); others get
            :data:`DEFAULT_DIM_RANGE`.

    Returns:
        ``(program, inputs, outputs)``: the program and an :class:`IoSpec`
        per model input and output, in ONNX order.

    Raises:
        DelegateError: a node without lowering, a lowering that failed (the
            message names the node), or a value Core ML cannot type.
    """
    from coremltools.converters.mil import Builder as mb
    from coremltools.converters.mil.mil import Function, Program

    g = model.graph
    types_, shapes = _value_types(model)
    inits = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    opset = next((i.version for i in model.opset_import if i.domain in ("", "ai.onnx")), 1)
    in_specs, out_specs = signature(model, dim_ranges)
    placeholders, input_types = _placeholders(in_specs)
    out_names = {spec.onnx_name: spec.coreml_name for spec in out_specs}

    with Function(placeholders, opset_version=target) as func:
        ctx = Ctx(mb, types_, shapes, out_names)
        for name, arr in inits.items():
            ctx.values[name] = arr
        for spec in in_specs:
            v = func.inputs[spec.coreml_name]
            if not spec.shape:  # Core ML inputs have rank >= 1: a scalar arrives as shape (1,)
                v = mb.squeeze(x=v)
            if spec.onnx_dtype == TensorProto.BOOL:
                v = mb.cast(x=v, dtype="bool")
            ctx.values[spec.onnx_name] = v
        for proto in g.node:
            _lower_node(ctx, proto, lowerings, opset, model.opset_import)
        outputs, used = [], set()
        for spec in out_specs:
            v = ctx.get(spec.onnx_name)
            if spec.onnx_dtype == TensorProto.BOOL or isinstance(v, np.ndarray):
                v = ctx.var(v, "int32" if spec.onnx_dtype == TensorProto.BOOL else MIL_DTYPES[spec.onnx_dtype])
            if v.name != spec.coreml_name or id(v) in used or any(v is i for i in func.inputs.values()):
                v = mb.identity(x=v, name=spec.coreml_name)
            used.add(id(v))
            outputs.append(v)
        func.set_outputs(outputs)
        func.set_input_types(tuple(input_types))
    prog = Program()
    prog.add_function("main", func)
    return prog, in_specs, out_specs


def _placeholders(in_specs: list[IoSpec]) -> tuple[dict[str, Any], list]:
    """MIL placeholders and ``coremltools.TensorType`` inputs for the model inputs:
    fixed dims as ints, one ``RangeDim`` per symbolic dim name (shared by every
    input that uses it), bool fed as int32, rank 0 lifted to (1,)."""
    import coremltools as ct
    from coremltools.converters.mil import Builder as mb
    from coremltools.converters.mil.mil import types

    symbols: dict[str, Any] = {}
    placeholders, input_types = {}, []
    for spec in in_specs:
        mil_shape, ct_shape = [], []
        for d, (lo, hi) in zip(spec.shape or (1,), spec.ranges):  # rank 0 is lifted to (1,)
            if isinstance(d, int):
                mil_shape.append(d)
                ct_shape.append(d)
                continue
            if d not in symbols:  # one symbol per dim name, shared by every input using it
                symbols[d] = ct.RangeDim(lower_bound=lo, upper_bound=hi, default=lo)
            mil_shape.append(symbols[d].symbol)
            ct_shape.append(symbols[d])
        io_dtype = "int32" if spec.onnx_dtype == TensorProto.BOOL else MIL_DTYPES[spec.onnx_dtype]
        placeholders[spec.coreml_name] = mb.placeholder(shape=tuple(mil_shape), dtype=types.string_to_builtin(io_dtype))
        input_types.append(ct.TensorType(name=spec.coreml_name, shape=ct.Shape(tuple(ct_shape)), dtype=_NP[io_dtype]))
    return placeholders, input_types


def signature(
    model: onnx.ModelProto, dim_ranges: Mapping[str, tuple[int, int]] | None = None
) -> tuple[list[IoSpec], list[IoSpec]]:
    """The Core ML I/O signature an ONNX partition converts to.

    Args:
        model: the partition.
        dim_ranges: symbolic dim name -> (lower, upper); others get
            :data:`DEFAULT_DIM_RANGE`. An unnamed dim is keyed ``"<input>:<axis>"``.

    Returns:
        An :class:`IoSpec` per model input (initializers excluded) and output.

    Raises:
        DelegateError: an input or output of a type Core ML cannot take, or of unknown rank.
    """
    g = model.graph
    dim_ranges = dict(dim_ranges or {})
    types_, shapes = _value_types(model)
    inits = {t.name for t in g.initializer}
    taken: set[str] = set()
    in_specs, out_specs = [], []
    for vi in g.input:
        if vi.name in inits:
            continue
        elem = _io_type(vi.name, types_, "input")
        name = sanitize(vi.name, taken)
        shape = shapes.get(vi.name)
        if shape is None:
            raise DelegateError(f"coreml: model input '{vi.name}' has unknown rank; Core ML needs a known rank")
        ranges, dims = ([(1, 1)] if not shape else []), []  # a rank-0 input is fed as shape (1,)
        for k, d in enumerate(shape):
            if isinstance(d, int):
                ranges.append((d, d))
                dims.append(d)
                continue
            key = d if isinstance(d, str) else f"{vi.name}:{k}"
            lo, hi = (int(x) for x in dim_ranges.get(key, DEFAULT_DIM_RANGE))
            if not 1 <= lo <= hi:
                raise DelegateError(f"coreml: dim_ranges['{key}'] = ({lo}, {hi}); expected 1 <= lower <= upper")
            ranges.append((lo, hi))
            dims.append(key)
        in_specs.append(IoSpec(vi.name, name, elem, IO_DTYPES[elem], tuple(dims), tuple(ranges)))
    for vo in g.output:
        elem = _io_type(vo.name, types_, "output")
        name = sanitize(vo.name, taken)
        out_specs.append(IoSpec(vo.name, name, elem, IO_DTYPES[elem], tuple(_io_dims(shapes.get(vo.name)))))
    return in_specs, out_specs


def output_ranks(model: onnx.ModelProto) -> list[int | None]:
    """The rank of each graph output of ``model`` (None where its shape is unknown)."""
    _, shapes = _value_types(model)
    return [None if shapes.get(o.name) is None else len(shapes[o.name]) for o in model.graph.output]


def _io_type(name: str, types_: dict[str, int], kind: str) -> int:
    elem = types_.get(name, 0)
    if elem not in IO_DTYPES:
        raise DelegateError(
            f"coreml: model {kind} '{name}' has ONNX type {dtype_name(elem, 'undefined')}; Core ML {kind}s can be "
            f"{', '.join(dtype_name(t) for t in IO_DTYPES)}"
        )
    return elem


def _lower_node(ctx: Ctx, proto: onnx.NodeProto, lowerings, opset: int, opset_imports) -> None:
    """Fold ``proto`` when its inputs are all known (see :data:`_FOLD_MAX_ELEMENTS`), else lower it to MIL."""
    node = Node(proto, opset)
    args = [ctx.get(x) for x in node.inputs]
    outs = [o for o in node.outputs if o]
    if (
        proto.op_type not in NON_DETERMINISTIC
        and all(a is None or isinstance(a, np.ndarray) for a in args)
        and all(numel(ctx.shapes.get(o)) <= _FOLD_MAX_ELEMENTS for o in outs)
    ):
        try:
            results = evaluate_node(proto, args, opset_imports)
        except Exception as exc:
            raise DelegateError(
                f"coreml: constant-folding node '{node.name}' ({node.op_type}) failed: {type(exc).__name__}: {exc}"
            ) from None
        for o, r in zip(outs, results):  # one result per named output
            ctx.values[o] = np.asarray(r)
        return
    lower = lowerings.get(proto.op_type)
    if lower is None or (proto.domain not in ("", "ai.onnx")):
        raise DelegateError(
            f"coreml: no lowering for node '{node.name}' ({proto.domain or 'ai.onnx'}::{proto.op_type})"
        )
    try:
        result = lower(ctx, node)
    except DelegateError:
        raise
    except Exception as exc:
        raise DelegateError(
            f"coreml: lowering node '{node.name}' ({node.op_type}, opset {opset}) failed: "
            f"{type(exc).__name__}: {' '.join(str(exc).split())[:600]}"
        ) from exc
    if not isinstance(result, (list, tuple)):
        result = [result]
    for o, r in zip(node.outputs, result):
        if o:
            ctx.values[o] = r


def _value_types(model: onnx.ModelProto) -> tuple[dict[str, int], dict[str, tuple | None]]:
    """Value name -> ONNX elem type (0 for a non-tensor) and -> dims (None: unknown rank), from
    :func:`unified.onnx.value_types`."""
    types_ = value_types(model)
    elems = {k: elem_type(t) for k, t in types_.items()}
    return elems, {k: dims(t) for k, t in types_.items()}


def _io_dims(shape) -> list:
    """An IoSpec shape: ints and dim names, ``"?"`` for an unnamed unknown dim."""
    return [] if shape is None else [d if isinstance(d, int) else (d or "?") for d in shape]


