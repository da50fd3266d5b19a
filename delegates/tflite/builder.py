"""The flatbuffer side of the converter: tensors, buffers, operator codes, operators.

:class:`ModelBuilder` collects one TFLite subgraph with LiteRT's own object
API (``ai_edge_litert.schema_py_generated``: ``ModelT``, ``SubGraphT``,
``OperatorT``, ``TensorT``, ``BufferT``, ``OperatorCodeT``) and packs it with
``flatbuffers`` into the bytes of a ``.tflite`` file.

Conventions taken from the TFLite schema (``tensorflow/compiler/mlir/lite/
schema/schema.fbs``, schema version 3):

* buffer 0 is the empty sentinel; every activation tensor points at it;
* an operator code stores ``min(code, 127)`` in ``deprecated_builtin_code``
  (127 is ``PLACEHOLDER_FOR_GREATER_OP_CODES``) and the full code in
  ``builtin_code``;
* the file identifier is ``TFL3``.

Constant buffers are written 16-byte aligned, as the TFLite converter does,
so XNNPACK can use weights in place.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from unified.errors import DelegateError

__all__ = ["ModelBuilder", "tflite_type", "schema"]

_FILE_IDENTIFIER = b"TFL3"
_SCHEMA_VERSION = 3
_BUFFER_ALIGNMENT = 16
# Ops whose first registered kernel version is above 1 (tensorflow/lite/core/kernels/register.cc).
_MIN_VERSION = {"BROADCAST_TO": 2}
_DEDUP_BYTES = 4096  # small constants (shapes, axes, scalars) are shared; weights are not compared


def schema():
    """The ``schema_py_generated`` module (LiteRT's, else tflite_runtime's).

    Raises:
        ImportError: neither ``ai_edge_litert`` nor ``tflite_runtime`` ships it.
    """
    try:
        from ai_edge_litert import schema_py_generated as s
    except ImportError:
        from tflite_runtime import schema_py_generated as s  # type: ignore[no-redef]
    return s


_NUMPY_TO_TFLITE = {
    np.dtype(np.float32): "FLOAT32",
    np.dtype(np.float16): "FLOAT16",
    np.dtype(np.float64): "FLOAT64",
    np.dtype(np.int8): "INT8",
    np.dtype(np.uint8): "UINT8",
    np.dtype(np.int16): "INT16",
    np.dtype(np.int32): "INT32",
    np.dtype(np.int64): "INT64",
    np.dtype(np.bool_): "BOOL",
}


def tflite_type(dtype: np.dtype) -> int:
    """TFLite ``TensorType`` enum value of a NumPy dtype.

    Raises:
        KeyError: a dtype TFLite tensors cannot hold here (e.g. complex, str).
    """
    return getattr(schema().TensorType, _NUMPY_TO_TFLITE[np.dtype(dtype)])


def _aligned_buffer(tfl, payload: bytes):
    class _AlignedBufferT(tfl.BufferT):
        def Pack(self, builder):  # noqa: N802 (flatbuffers' name)
            builder.StartVector(1, len(payload), _BUFFER_ALIGNMENT)
            builder.head -= len(payload)
            builder.Bytes[builder.head : builder.head + len(payload)] = payload
            builder.vectorNumElems = len(payload)
            data = builder.EndVector()
            tfl.BufferStart(builder)
            tfl.BufferAddData(builder, data)
            return tfl.BufferEnd(builder)

    return _AlignedBufferT()


class ModelBuilder:
    """One TFLite model with one subgraph, built tensor by tensor.

    Shapes are in TFLite order (activations NHWC); the builder knows nothing
    about ONNX.

    Attributes:
        schema: LiteRT's ``schema_py_generated`` module (enums such as
            ``schema.Padding``, ``schema.ActivationFunctionType``).
    """

    def __init__(self, description: str = "unified tflite delegate"):
        self.schema = schema()
        self.description = description
        self.tensors: list[Any] = []
        self.buffers: list[Any] = [self.schema.BufferT()]  # buffer 0: the empty sentinel
        self.operators: list[Any] = []
        self._opcodes: dict[tuple[int, int], int] = {}
        self.opcode_list: list[Any] = []
        self.inputs: list[int] = []
        self.outputs: list[int] = []
        self.op_counts: dict[str, int] = {}
        self._const_cache: dict[tuple, int] = {}
        self._const_bytes = 0

    # --- tensors ------------------------------------------------------------

    def tensor(
        self,
        name: str,
        shape: Sequence[int],
        dtype: np.dtype,
        *,
        quant: tuple[np.ndarray, np.ndarray, int] | None = None,
    ) -> int:
        """Add an activation tensor; returns its index.

        Args:
            name: unique-ish name (shown in Netron).
            shape: static TFLite-order shape.
            dtype: element type.
            quant: (scale, zero_point, quantized_dimension) for int8/uint8.

        Raises:
            DelegateError: a dim that is not a non-negative int (a dynamic
                dim must never reach the flatbuffer: LiteRT reads a negative
                size as a huge unsigned one, "BytesRequired number of
                elements overflowed").
        """
        dims = list(shape)
        if any(not isinstance(d, (int, np.integer)) or isinstance(d, bool) or int(d) < 0 for d in dims):
            raise DelegateError(
                f"tflite converter: tensor '{name}' would get shape {dims}; TFLite tensors need static, "
                "non-negative dims (the partition still has a dynamic dim: pin it with free_dimensions)"
            )
        t = self.schema.TensorT()
        t.name = name
        t.shape = np.asarray([int(d) for d in dims], dtype=np.int32)
        t.type = tflite_type(dtype)
        t.buffer = 0
        if quant is not None:
            q = self.schema.QuantizationParametersT()
            scale, zero, axis = quant
            q.scale = [float(x) for x in np.asarray(scale, np.float32).reshape(-1)]
            q.zeroPoint = [int(x) for x in np.asarray(zero).reshape(-1)]
            q.quantizedDimension = int(axis)
            t.quantization = q
        self.tensors.append(t)
        return len(self.tensors) - 1

    def const(self, name: str, value: np.ndarray, quant=None) -> int:
        """Add a constant tensor backed by a buffer; identical small constants are shared.

        Args:
            name: tensor name.
            value: the data, in TFLite order; copied (C order, little endian).
        """
        value = np.ascontiguousarray(value)
        key = None
        if value.nbytes <= _DEDUP_BYTES:
            key = (value.dtype.str, value.shape, value.tobytes(), None if quant is None else repr(quant))
            hit = self._const_cache.get(key)
            if hit is not None:
                return hit
        idx = self.tensor(name, value.shape, value.dtype, quant=quant)
        data = value.astype(value.dtype.newbyteorder("<"), copy=False).tobytes()
        self.buffers.append(_aligned_buffer(self.schema, data) if data else self.schema.BufferT())
        self._const_bytes += len(data) + _BUFFER_ALIGNMENT
        self.tensors[idx].buffer = len(self.buffers) - 1
        if key is not None:
            self._const_cache[key] = idx
        return idx

    def shape_of(self, index: int) -> tuple[int, ...]:
        return tuple(int(d) for d in self.tensors[index].shape)

    # --- operators ------------------------------------------------------------

    def op(
        self,
        name: str,
        inputs: Sequence[int],
        outputs: Sequence[int],
        options: Any = None,
        version: int = 1,
    ) -> None:
        """Append an operator.

        Args:
            name: ``BuiltinOperator`` member name, e.g. ``"CONV_2D"``.
            inputs: tensor indices, -1 for an omitted optional input.
            outputs: tensor indices.
            options: a ``*OptionsT`` object (its ``BuiltinOptions`` member is
                derived from the class name), or None.
            version: operator version (selects the kernel registration).
        """
        code = getattr(self.schema.BuiltinOperator, name)
        version = max(version, _MIN_VERSION.get(name, 1))
        key = (code, version)
        if key not in self._opcodes:
            oc = self.schema.OperatorCodeT()
            oc.builtinCode = code
            oc.deprecatedBuiltinCode = min(code, self.schema.BuiltinOperator.PLACEHOLDER_FOR_GREATER_OP_CODES)
            oc.version = version
            self._opcodes[key] = len(self.opcode_list)
            self.opcode_list.append(oc)
        o = self.schema.OperatorT()
        o.opcodeIndex = self._opcodes[key]
        o.inputs = np.asarray(inputs, dtype=np.int32)
        o.outputs = np.asarray(outputs, dtype=np.int32)
        if options is not None:
            o.builtinOptionsType = getattr(self.schema.BuiltinOptions, type(options).__name__[:-1])
            o.builtinOptions = options
        self.operators.append(o)
        self.op_counts[name] = self.op_counts.get(name, 0) + 1

    def options(self, kind: str, **fields: Any) -> Any:
        """A ``<kind>T`` options object with ``fields`` set, e.g. ``options("Conv2DOptions", strideH=2)``."""
        obj = getattr(self.schema, kind + "T")()
        for k, v in fields.items():
            if not hasattr(obj, k):
                raise AttributeError(f"{kind} has no field {k!r}")
            setattr(obj, k, v)
        return obj

    def prune(self) -> None:
        """Drop operators none of whose outputs is read (by a later operator or
        as a subgraph output) and recount ``op_counts``. Operators are in
        execution order, so one backward pass finds them all."""
        read = {int(i) for i in self.outputs}
        kept = []
        for op in reversed(self.operators):
            if any(int(o) in read for o in op.outputs):
                kept.append(op)
                read.update(int(i) for i in op.inputs if i >= 0)
        self.operators = kept[::-1]
        names = {v: k for k, v in vars(self.schema.BuiltinOperator).items() if not k.startswith("_")}
        counts: dict[str, int] = {}
        for op in self.operators:
            name = names[self.opcode_list[op.opcodeIndex].builtinCode]
            counts[name] = counts.get(name, 0) + 1
        self.op_counts = counts

    # --- packing ----------------------------------------------------------------

    def finish(self) -> bytes:
        """Pack into ``.tflite`` bytes (flatbuffer, identifier ``TFL3``)."""
        import flatbuffers

        tfl = self.schema
        sg = tfl.SubGraphT()
        sg.tensors = self.tensors
        sg.inputs = np.asarray(self.inputs, dtype=np.int32)
        sg.outputs = np.asarray(self.outputs, dtype=np.int32)
        sg.operators = self.operators
        sg.name = "main"
        m = tfl.ModelT()
        m.version = _SCHEMA_VERSION
        m.description = self.description
        m.operatorCodes = self.opcode_list
        m.subgraphs = [sg]
        m.buffers = self.buffers
        b = flatbuffers.Builder((1 << 16) + self._const_bytes)
        b.Finish(m.Pack(b), file_identifier=_FILE_IDENTIFIER)
        return bytes(b.Output())
