"""Read a saved ML Program: the ``Model.proto`` spec and its weight blob.

What is read is the package coremltools *saved*
(``model.mlpackage/Data/com.apple.CoreML/model.mlmodel``, a
``CoreML.Specification.Model`` whose ``mlProgram`` is a
``CoreML.Specification.MILSpec.Program``, plus ``weights/weight.bin``), never
the in-memory builder objects, so a bug anywhere between the lowering and the
file on disk (coremltools' passes, fp16 casting, serialization) is visible to
the evaluator.

Weight blob format (coremltools ``mlmodel/src/MILBlob/Blob/StorageFormat.hpp``):
a 64-byte header (``uint32 count, uint32 version = 2``, reserved), then per
blob a 64-byte metadata record at the offset a ``BlobFileValue`` names
(``uint32 sentinel = 0xDEADBEEF, uint32 dtype, uint64 size_in_bytes,
uint64 data_offset``, reserved) and the raw little-endian data at
``data_offset``. Blob dtypes: 1 fp16, 2 fp32, 3 uint8, 4 int8, 14 int32.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from unified.errors import DelegateError

__all__ = ["Arg", "MilOp", "MilProgram", "read_program", "read_blob", "MIL_NUMPY"]

#: ``MILSpec.DataType`` enum value -> NumPy dtype (``MIL.proto``).
MIL_NUMPY = {
    1: np.bool_, 10: np.float16, 11: np.float32, 12: np.float64, 21: np.int8, 22: np.int16, 23: np.int32,
    24: np.int64, 31: np.uint8, 32: np.uint16, 33: np.uint32, 34: np.uint64,
}
_STRING = 2
#: Blob storage dtype code -> NumPy dtype (``StorageFormat.hpp`` ``BlobDataType``).
_BLOB_DTYPES = {1: np.float16, 2: np.float32, 3: np.uint8, 4: np.int8, 14: np.int32, 15: np.uint32}
_SENTINEL = 0xDEADBEEF


@dataclass(frozen=True)
class Arg:
    """One bound operand: a variable name, or an inline value (ndarray, str or list)."""

    name: str | None = None
    value: Any = None


@dataclass
class MilOp:
    """One MIL operation as saved.

    Attributes:
        type: the MIL op type, e.g. ``"conv"``.
        inputs: parameter name -> bound operands (one, or several for a
            tuple parameter such as ``concat``'s ``values``).
        outputs: ``(name, numpy dtype or None, shape tuple or None)`` per output.
        attributes: the op's attributes (``const`` keeps its value in ``val``).
    """

    type: str
    inputs: dict[str, list[Arg]]
    outputs: list[tuple[str, Any, tuple | None]]
    attributes: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """The op's name attribute, else its first output's name."""
        return str(self.attributes.get("name") or (self.outputs[0][0] if self.outputs else self.type))


@dataclass
class MilProgram:
    """The ``main`` function of a saved ML Program.

    Attributes:
        inputs: ``(name, numpy dtype, shape)`` per function input.
        outputs: output variable names, in order.
        ops: the operations of the block, in program order.
        opset: the block specialization read (e.g. ``"CoreML6"``).
    """

    inputs: list[tuple[str, Any, tuple | None]]
    outputs: list[str]
    ops: list[MilOp]
    opset: str


def read_blob(path: str | os.PathLike, offset: int, dtype: Any, shape: tuple) -> np.ndarray:
    """One array of a ``weight.bin`` blob file.

    Args:
        path: the blob file.
        offset: the metadata record's byte offset (``BlobFileValue.offset``).
        dtype: the NumPy dtype the program declares for the value.
        shape: its declared shape.

    Returns:
        A new array of ``shape`` and ``dtype``.

    Raises:
        DelegateError: a bad sentinel, a storage dtype that is not the declared
            one, or a size that does not fit the shape.
    """
    with open(path, "rb") as f:
        f.seek(offset)
        meta = f.read(64)
        if len(meta) < 24:
            raise DelegateError(f"mil-numpy: blob file {path} has no metadata record at offset {offset}")
        sentinel, code, size, data_offset = struct.unpack("<IIQQ", meta[:24])
        if sentinel != _SENTINEL:
            raise DelegateError(
                f"mil-numpy: blob file {path} offset {offset}: sentinel {sentinel:#x}, expected 0xdeadbeef")
        stored = _BLOB_DTYPES.get(code)
        if stored is None or np.dtype(stored) != np.dtype(dtype):
            raise DelegateError(
                f"mil-numpy: blob at offset {offset} has storage dtype code {code}, the program declares "
                f"{np.dtype(dtype).name} (readable: fp16, fp32, uint8, int8, int32, uint32)"
            )
        f.seek(data_offset)
        raw = f.read(size)
    count = int(np.prod(shape, dtype=np.int64))
    if len(raw) != count * np.dtype(dtype).itemsize:
        raise DelegateError(f"mil-numpy: blob at offset {offset} holds {len(raw)} bytes, shape {shape} needs "
                            f"{count * np.dtype(dtype).itemsize}")
    return np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<")).astype(dtype).reshape(shape)


def _tensor_type(vt) -> tuple[Any, tuple | None]:
    """``(numpy dtype or "string", shape or None)`` of a ``MILSpec.ValueType`` holding a tensor."""
    if vt.WhichOneof("type") != "tensorType":
        raise DelegateError(f"mil-numpy: value type {vt.WhichOneof('type')} not supported (only tensors)")
    tt = vt.tensorType
    if tt.dataType == _STRING:
        return "string", ()
    dtype = MIL_NUMPY.get(tt.dataType)
    if dtype is None:
        raise DelegateError(f"mil-numpy: MIL data type {tt.dataType} not supported; supported: "
                            f"{sorted(np.dtype(d).name for d in MIL_NUMPY.values())}")
    dims = []
    for d in tt.dimensions:
        dims.append(int(d.constant.size) if d.WhichOneof("dimension") == "constant" else None)
    shape = tuple(dims) if tt.rank >= 0 and len(dims) == tt.rank else None
    return dtype, (shape if shape is None or all(d is not None for d in shape) else None)


def _value(v, weights: Path) -> Any:
    """A ``MILSpec.Value`` as an ndarray (or str for a string tensor)."""
    dtype, shape = _tensor_type(v.type)
    kind = v.WhichOneof("value")
    if kind == "blobFileValue":
        return read_blob(weights / v.blobFileValue.fileName.split("/")[-1], v.blobFileValue.offset, dtype, shape)
    if kind != "immediateValue" or v.immediateValue.WhichOneof("value") != "tensor":
        raise DelegateError(f"mil-numpy: value kind {kind} not supported (immediate tensors and blob files only)")
    t = v.immediateValue.tensor
    which = t.WhichOneof("value")
    if dtype == "string":
        vals = list(t.strings.values)
        return vals[0] if len(vals) == 1 else vals
    if which is None:  # an empty tensor
        return np.zeros(shape if shape is not None else (0,), dtype=dtype)
    if which == "bytes":
        arr = np.frombuffer(t.bytes.values, dtype=np.dtype(dtype).newbyteorder("<")).astype(dtype)
    else:
        arr = np.array(list(getattr(t, which).values), dtype=dtype)
    return arr.reshape(shape if shape is not None else arr.shape)


def _op(spec, weights: Path) -> MilOp:
    if len(spec.blocks):
        raise DelegateError(f"mil-numpy: op '{spec.type}' has nested blocks (control flow), not supported")
    inputs = {}
    for key, argument in spec.inputs.items():
        inputs[key] = [Arg(name=b.name) if b.WhichOneof("binding") == "name" else Arg(value=_value(b.value, weights))
                       for b in argument.arguments]
    outputs = []
    for o in spec.outputs:
        dtype, shape = _tensor_type(o.type)
        outputs.append((o.name, dtype, shape))
    attributes = {k: _value(v, weights) for k, v in spec.attributes.items()}
    return MilOp(spec.type, inputs, outputs, attributes)


def read_program(package: str | os.PathLike) -> MilProgram:
    """The ``main`` function of a saved ``.mlpackage`` (its spec and weights).

    Args:
        package: the ``model.mlpackage`` directory.

    Returns:
        The :class:`MilProgram`.

    Raises:
        DelegateError: the spec is missing or not an ML Program, or a value
            cannot be read.
    """
    from ..quiet import import_coremltools

    import_coremltools()
    from coremltools.proto import Model_pb2

    root = Path(package) / "Data" / "com.apple.CoreML"
    try:
        raw = (root / "model.mlmodel").read_bytes()
    except OSError as exc:
        raise DelegateError(f"mil-numpy: {package} has no model spec ({exc})") from None
    spec = Model_pb2.Model()
    spec.ParseFromString(raw)
    if spec.WhichOneof("Type") != "mlProgram":
        raise DelegateError(f"mil-numpy: {package} holds a {spec.WhichOneof('Type')}, expected an mlProgram")
    func = spec.mlProgram.functions["main"]
    block = func.block_specializations[func.opset]
    weights = root / "weights"
    inputs = [(i.name, *_tensor_type(i.type)) for i in func.inputs]
    return MilProgram(inputs, list(block.outputs), [_op(o, weights) for o in block.operations], func.opset)
