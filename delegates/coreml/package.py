"""The ``.mlpackage`` artifact: conversion, byte form, structural verification.

An ML Program is saved by coremltools as a *directory* (``model.mlpackage``:
``Manifest.json``, the model spec and a weights blob). The delegate's
artifact is that directory as one deterministic, uncompressed zip (:func:`zip_package`;
the weights blob dominates and does not compress):
entries in sorted order, fixed timestamps (1980-01-01) and permissions, so the
same directory always gives the same bytes. Unzipping it
(:func:`unzip_package`) gives back ``model.mlpackage``, ready for Xcode or
``coremltools.models.MLModel``.

Verification (:func:`verify_package`) is what can be checked off macOS: the
spec loads with ``MLModel(path, skip_model_load=True)``, it is an ML Program,
and its inputs and outputs have exactly the names, Core ML types and shapes
(fixed dims and flexible ranges) the ONNX partition asks for.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path
from typing import Sequence

import numpy as np

from unified.errors import DelegateError

from .convert import IoSpec

__all__ = [
    "PACKAGE_NAME", "METADATA_KEY", "zip_package", "unzip_package", "verify_package", "verify_program", "read_io",
]

PACKAGE_NAME = "model.mlpackage"
#: User-defined metadata key holding the ONNX <-> Core ML I/O mapping (JSON).
METADATA_KEY = "unified.io"

_EPOCH = (1980, 1, 1, 0, 0, 0)


def zip_package(package: str | os.PathLike) -> bytes:
    """The ``.mlpackage`` directory as deterministic zip bytes (entries under ``model.mlpackage/``).

    Files, plus empty directories as directory entries: the Manifest lists the
    ``weights`` item even when a program has no weight blob, and the package
    does not load without it.
    """
    root = Path(package)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for path in sorted(root.rglob("*")):
            rel = path.relative_to(root).as_posix()
            if path.is_dir():
                if not any(path.iterdir()):  # an empty item directory (e.g. ``weights`` of a weightless
                    info = zipfile.ZipInfo(f"{PACKAGE_NAME}/{rel}/", date_time=_EPOCH)  # model) is in the Manifest
                    info.external_attr = (0o40755 << 16) | 0x10
                    zf.writestr(info, b"")
                continue
            info = zipfile.ZipInfo(f"{PACKAGE_NAME}/{rel}", date_time=_EPOCH)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_STORED
            zf.writestr(info, path.read_bytes())
    return buf.getvalue()


def unzip_package(blob: bytes, into: str | os.PathLike) -> Path:
    """Extract :func:`zip_package` bytes under ``into``; returns the ``.mlpackage`` path.

    Raises:
        DelegateError: not a zip, or an entry outside ``model.mlpackage/``.
    """
    into = Path(into)
    try:
        zf = zipfile.ZipFile(io.BytesIO(blob))
    except zipfile.BadZipFile as exc:
        raise DelegateError(f"coreml artifact is not a zipped .mlpackage: {exc}") from None
    with zf:
        for name in zf.namelist():
            parts = Path(name).parts
            if not parts or parts[0] != PACKAGE_NAME or ".." in parts or Path(name).is_absolute():
                raise DelegateError(f"coreml artifact has an unexpected entry '{name}'; expected {PACKAGE_NAME}/...")
        zf.extractall(into)
    return into / PACKAGE_NAME


def read_io(spec) -> tuple[list[IoSpec], list[IoSpec]]:
    """The I/O mapping recorded in a spec's user-defined metadata."""
    raw = spec.description.metadata.userDefined.get(METADATA_KEY)
    if raw is None:
        raise DelegateError(f"coreml package has no '{METADATA_KEY}' metadata; it was not built by unified")
    data = json.loads(raw)
    return [IoSpec.from_dict(d) for d in data["inputs"]], [IoSpec.from_dict(d) for d in data["outputs"]]


def verify_package(path: str | os.PathLike, inputs: Sequence[IoSpec], outputs: Sequence[IoSpec]) -> dict:
    """Check a saved ``.mlpackage`` against the partition's I/O signature.

    Args:
        path: the ``.mlpackage`` directory.
        inputs / outputs: the expected signature (from the ONNX partition).

    Returns:
        Facts for ``Executable.details``: spec version, counts of MIL
        operations in ``main``.

    Raises:
        DelegateError: the spec does not load, is not an ML Program, or a name,
            type, fixed dim or flexible range differs; the message names it.
    """
    import coremltools as ct

    try:
        model = ct.models.MLModel(str(path), skip_model_load=True)
    except Exception as exc:
        raise DelegateError(f"coreml: the saved package does not load as a spec: {type(exc).__name__}: {exc}") from None
    spec = model.get_spec()
    if spec.WhichOneof("Type") != "mlProgram":
        raise DelegateError(f"coreml: the saved package is a {spec.WhichOneof('Type')}, expected an mlProgram")
    desc = spec.description
    _compare("input", [f for f in desc.input], inputs, check_ranges=True)
    _compare("output", [f for f in desc.output], outputs, check_ranges=False)
    main = spec.mlProgram.functions["main"]
    ops = [op.type for block in main.block_specializations.values() for op in block.operations]
    return {"spec_version": int(spec.specificationVersion), "mil_ops": len(ops)}


def _compare(kind: str, features, expected: Sequence[IoSpec], check_ranges: bool) -> None:
    got = [f.name for f in features]
    want = [e.coreml_name for e in expected]
    if got != want:
        raise DelegateError(f"coreml: package {kind}s are {got}, expected {want} (from the ONNX partition)")
    for f, e in zip(features, expected):
        arr = f.type.multiArrayType
        if f.type.WhichOneof("Type") != "multiArrayType":
            raise DelegateError(f"coreml: {kind} '{f.name}' is a {f.type.WhichOneof('Type')}, expected a multi-array")
        from coremltools.proto import FeatureTypes_pb2

        dtype = FeatureTypes_pb2.ArrayFeatureType.ArrayDataType.Name(arr.dataType)
        if dtype != e.coreml_dtype:
            raise DelegateError(
                f"coreml: {kind} '{f.name}' (ONNX '{e.onnx_name}') has type {dtype}, expected {e.coreml_dtype}"
            )
        if not check_ranges:
            continue
        rank = len(e.ranges)  # a rank-0 ONNX input is a (1,) Core ML input
        if len(arr.shape) != rank:
            raise DelegateError(f"coreml: {kind} '{f.name}' has rank {len(arr.shape)}, expected {rank}")
        if arr.HasField("shapeRange"):
            ranges = [(r.lowerBound, r.upperBound) for r in arr.shapeRange.sizeRanges]
        else:
            ranges = [(d, d) for d in arr.shape]
        if [tuple(r) for r in e.ranges] != ranges:
            raise DelegateError(
                f"coreml: {kind} '{f.name}' has dim ranges {ranges}, expected {[tuple(r) for r in e.ranges]} "
                f"(ONNX shape {list(e.shape)})"
            )


def verify_program(prog, outputs: Sequence[IoSpec], ranks: Sequence[int | None] | None = None) -> None:
    """Validate the MIL program and check its outputs' ranks, fixed dims and
    types against the ONNX partition (Core ML output descriptions carry no shape).

    Args:
        prog: the MIL program (function ``main``).
        outputs: the expected outputs, in order (:func:`.convert.signature`).
        ranks: the ONNX rank of each output, None where unknown; default: the
            rank of ``IoSpec.shape`` where it is not empty.

    Raises:
        DelegateError: the program does not validate, or an output's rank, a
            fixed dim or its type differs from the ONNX partition's.
    """
    try:
        prog.validate()
    except Exception as exc:
        raise DelegateError(f"coreml: the MIL program does not validate: {type(exc).__name__}: {exc}") from None
    from coremltools.converters.mil.mil import types

    func = prog.functions["main"]
    if ranks is None:
        ranks = [len(e.shape) if e.shape else None for e in outputs]
    if len(func.outputs) != len(outputs):
        raise DelegateError(f"coreml: the MIL program has {len(func.outputs)} outputs, expected {len(outputs)}")
    for var, e, rank in zip(func.outputs, outputs, ranks):
        shape = tuple(var.shape)
        if rank is not None and len(shape) != rank:
            raise DelegateError(
                f"coreml: output '{e.onnx_name}' has rank {len(shape)} in the MIL program, expected "
                f"{rank} (ONNX shape {list(e.shape)})"
            )
        for k, (got, want) in enumerate(zip(shape, e.shape)):
            if isinstance(want, int) and isinstance(got, (int, np.integer)) and int(got) != want:
                raise DelegateError(
                    f"coreml: output '{e.onnx_name}' dim {k} is {got} in the MIL program, expected {want} "
                    f"(ONNX shape {list(e.shape)})"
                )
        got_type = types.builtin_to_string(var.dtype)
        want_type = _MIL_IO_TYPES[e.coreml_dtype]
        if got_type != want_type:
            raise DelegateError(
                f"coreml: output '{e.onnx_name}' is {got_type} in the MIL program, expected {want_type} "
                f"(ONNX type {e.onnx_dtype}, Core ML {e.coreml_dtype})"
            )


#: Core ML multi-array type -> MIL dtype of the program output that feeds it.
_MIL_IO_TYPES = {"FLOAT32": "fp32", "FLOAT16": "fp16", "INT32": "int32"}
