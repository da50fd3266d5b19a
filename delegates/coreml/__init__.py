"""The ``coreml`` delegate: ONNX partitions compiled to Core ML ML Programs.

Compile: each partition is lowered op by op to a MIL program with
coremltools' MIL builder (no torch round trip; see :mod:`.convert`), then
``coremltools.convert(program, convert_to="mlprogram", ...)`` makes the
``.mlpackage``. Each package is verified structurally before it is returned:
the MIL program validates, the saved spec loads with
``MLModel(path, skip_model_load=True)``, and its input/output names, Core ML
types, fixed dims and flexible ranges match the ONNX partition
(:mod:`.package`).

Artifact: the ``.mlpackage`` directory zipped deterministically, suffix
``.mlpackage.zip``; unzip it to get ``model.mlpackage``.

Execute: Core ML runs only on Apple platforms. On macOS the executable runs
``MLModel.predict`` with the backend's compute units. Elsewhere
``availability()`` is ``ok=True, executes=False`` with the reason
:data:`COMPILE_ONLY`: compiling (``unified compile``, the compile cache) works,
and an ``InferenceSession`` that would execute a coreml partition raises
``DelegateUnavailableError`` naming that reason; it never runs the partition on
another delegate instead.

Shapes: the delegate declares ``static_shapes``. ``supports()`` sees symbolic
dims and claims what it could lower once every dim is known; a value the
lowering reads as a number (Reshape/Expand shape, Slice starts, axes, Range
bounds, ...) must be a constant or shape-derived (``TensorInfo.shape_derived``),
never tensor data. The core hands ``compile()`` partitions with static shapes
(specialized per input shape signature). A partition that still has symbolic
dims (``compile()`` called directly) becomes a flexible-shape ML Program with
the ``dim_ranges`` bounds -- kept because one ``.mlpackage`` with ranges is how
Core ML itself serves several shapes.

Quiet: coremltools' import and conversion print nothing (its loggers, the ones
of torch/torchao it imports, its pass-pipeline progress bar and warnings are
switched off at their source, see :mod:`.quiet`) unless the ``unified`` logger
is at DEBUG.

Backends (Core ML compute units): ``ane`` (``CPU_AND_NE``), ``gpu``
(``CPU_AND_GPU``), ``cpu`` (``CPU_ONLY``).

Options (``delegates=[("coreml", {...})]``):
    backend: ``"ane"`` (default), ``"gpu"`` or ``"cpu"``.
    compute_precision: ``"fp16"`` (default for ane/gpu, as coremltools) or
        ``"fp32"`` (default for cpu).
    minimum_deployment_target: a ``coremltools.target`` name, default
        ``"iOS16"`` (macOS 13); ``"iOS15"`` .. ``"iOS18"``, ``"macOS12"`` ..
        ``"macOS15"``.
    dim_ranges: symbolic dim name -> ``[lower, upper]`` for the flexible input
        shape (default ``[1, 512]``; ML Programs need a finite upper bound);
        only used for a partition that reaches ``compile()`` with symbolic dims.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import platform
import shutil
import tempfile
import weakref
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import onnx

from unified.delegate import Availability, CompileOptions, Delegate, DelegateOption, Executable, Support
from unified.errors import DelegateError, DelegateUnavailableError
from unified.graph import NodeView
from unified.hookspecs import hookimpl

from .convert import IoSpec, build_program, output_ranks, signature
from .ops import OP_SUPPORT, common_reason
from .quiet import install_progress_switch, quiet
from .package import METADATA_KEY, PACKAGE_NAME, read_io, unzip_package, verify_package, verify_program, zip_package

__all__ = ["CoreMLDelegate", "CoreMLExecutable", "COMPILE_ONLY", "ARTIFACT_SUFFIX", "LOWERINGS"]

#: The availability reason off macOS (also in the error a session raises).
COMPILE_ONLY = "compile-only: Core ML execution requires macOS"
ARTIFACT_SUFFIX = ".mlpackage.zip"

#: Backend -> ``coremltools.ComputeUnit`` member name.
COMPUTE_UNITS = {"ane": "CPU_AND_NE", "gpu": "CPU_AND_GPU", "cpu": "CPU_ONLY"}
_TARGETS = ("iOS15", "iOS16", "iOS17", "iOS18", "macOS12", "macOS13", "macOS14", "macOS15")
_OPTIONS = ("compute_precision", "minimum_deployment_target", "dim_ranges")


def _lowerings() -> dict:
    from .lower_nn import LOWERINGS as nn
    from .lower_tensor import LOWERINGS as tensor

    return {**tensor, **nn}


LOWERINGS = _lowerings()


def _executes_here() -> bool:
    return platform.system() == "Darwin"


_quiet = quiet


def _ct():
    """coremltools, imported quietly, with its progress bar behind :func:`.quiet.frameworks_verbose`."""
    with _quiet():
        import coremltools

        install_progress_switch()
    return coremltools


class CoreMLExecutable(Executable):
    """A partition compiled to an ``.mlpackage``.

    Attributes:
        inputs / outputs: the ONNX <-> Core ML I/O mapping (:class:`IoSpec`).
        compute_units: the ``coremltools.ComputeUnit`` name used on macOS.
        details: facts for the plan (precision, target, MIL op count, ...).
    """

    artifact_suffix = ARTIFACT_SUFFIX

    def __init__(self, blob: bytes, inputs: Sequence[IoSpec], outputs: Sequence[IoSpec], compute_units: str,
                 details: Mapping[str, Any]):
        self._blob = blob
        self.inputs = list(inputs)
        self.outputs = list(outputs)
        self.input_names = [s.onnx_name for s in self.inputs]
        self.output_names = [s.onnx_name for s in self.outputs]
        self.compute_units = compute_units
        self.details = dict(details)
        self._model = None
        self._dir: str | None = None

    def _load(self):
        """The Core ML model, loaded on first run (macOS only)."""
        if self._model is None:
            ct = _ct()
            self._dir = tempfile.mkdtemp(prefix="unified-coreml-")
            weakref.finalize(self, shutil.rmtree, self._dir, True)
            path = unzip_package(self._blob, self._dir)
            self._model = ct.models.MLModel(str(path), compute_units=getattr(ct.ComputeUnit, self.compute_units))
        return self._model

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run with Core ML (macOS only).

        Args:
            inputs: one array per ONNX input name; int64 is passed as int32 and
                bool as int32 (Core ML multi-array types).

        Returns:
            One array per ONNX output name, in the ONNX dtype.

        Raises:
            DelegateUnavailableError: not on macOS (:data:`COMPILE_ONLY`).
        """
        if not _executes_here():
            raise DelegateUnavailableError(f"delegate 'coreml' cannot execute here ({COMPILE_ONLY})")
        model = self._load()
        feed = {}
        for s in self.inputs:
            x = np.ascontiguousarray(inputs[s.onnx_name], dtype=_io_numpy(s))
            feed[s.coreml_name] = x.reshape(1) if not s.shape else x  # rank 0 is fed as (1,)
        out = model.predict(feed)
        result = {}
        for s in self.outputs:
            want = onnx.helper.tensor_dtype_to_np_dtype(s.onnx_dtype)
            y = np.asarray(out[s.coreml_name]).astype(want, copy=False)
            result[s.onnx_name] = y.reshape(()) if not s.shape and y.size == 1 else y
        return result

    def serialize(self) -> bytes:
        """The zipped ``.mlpackage`` (deterministic zip of the package directory)."""
        return self._blob


def _io_numpy(s: IoSpec):
    return {"FLOAT32": np.float32, "FLOAT16": np.float16, "INT32": np.int32}[s.coreml_dtype]


class CoreMLDelegate(Delegate):
    """Core ML through coremltools: compiles anywhere, executes on macOS."""

    name = "coreml"
    default_priority = 10
    op_support = OP_SUPPORT
    cacheable = True
    static_shapes = True
    options = (
        DelegateOption("compute_precision", (str,), "fp16 (fp32 on backend cpu)", "ML Program precision",
                       ("fp16", "fp32")),
        DelegateOption("minimum_deployment_target", (str,), "iOS16", "oldest OS the package runs on", _TARGETS),
        DelegateOption("dim_ranges", (dict,), None, "{dim name: [lower, upper]} for flexible inputs, used only "
                       "when compile() is called directly with symbolic dims"),
    )

    def check_options(self, options: Mapping[str, Any]) -> None:
        """``dim_ranges`` maps dim names to ``[lower, upper]`` pairs (checked when the session is created).

        Raises:
            DelegateError: a malformed ``dim_ranges``.
        """
        self._settings(CompileOptions(backend=next(iter(COMPUTE_UNITS)), options=dict(options)))

    def availability(self) -> Availability:
        if importlib.util.find_spec("coremltools") is None:
            return Availability(False, "coremltools is not installed (pip install coremltools==9.0)")
        try:
            version = importlib.metadata.version("coremltools")
        except importlib.metadata.PackageNotFoundError:
            version = ""
        if _executes_here():
            return Availability(True, "", version, executes=True)
        return Availability(True, COMPILE_ONLY, version, executes=False)

    def backends(self) -> list[str]:
        return list(COMPUTE_UNITS)

    def supports(self, node: NodeView) -> Support:
        reason = common_reason(node)
        if reason:
            return Support.no(reason)
        return super().supports(node)

    def _settings(self, options: CompileOptions) -> dict[str, Any]:
        opts = dict(options.options)
        unknown = sorted(set(opts) - set(_OPTIONS))
        if unknown:
            raise DelegateError(f"unknown coreml option(s) {unknown}; known: backend, {', '.join(_OPTIONS)}")
        if options.backend not in COMPUTE_UNITS:
            raise DelegateError(f"coreml has no backend '{options.backend}'; choose one of {list(COMPUTE_UNITS)}")
        precision = opts.get("compute_precision", "fp32" if options.backend == "cpu" else "fp16")
        if precision not in ("fp16", "fp32"):
            raise DelegateError(f"coreml option compute_precision={precision!r}; expected 'fp16' or 'fp32'")
        target = opts.get("minimum_deployment_target", "iOS16")
        if target not in _TARGETS:
            raise DelegateError(f"coreml option minimum_deployment_target={target!r}; expected one of {list(_TARGETS)}")
        ranges = opts.get("dim_ranges") or {}
        if not isinstance(ranges, Mapping) or any(
            not isinstance(v, (list, tuple)) or len(v) != 2 for v in ranges.values()
        ):
            raise DelegateError(f"coreml option dim_ranges={ranges!r}; expected {{dim name: [lower, upper]}}")
        return {"precision": precision, "target": target, "dim_ranges": {k: tuple(v) for k, v in ranges.items()}}

    def compile(self, partition: onnx.ModelProto, options: CompileOptions) -> CoreMLExecutable:
        """Lower, convert, save, verify and zip one partition.

        Raises:
            DelegateError: a lowering failed, coremltools rejected the program,
                or the saved package does not match the partition's signature.
        """
        s = self._settings(options)
        ct = _ct()
        target = getattr(ct.target, s["target"])
        with _quiet():
            prog, inputs, outputs = build_program(partition, LOWERINGS, target, s["dim_ranges"])
            verify_program(prog, outputs, output_ranks(partition))
        mil_ops = len(prog.functions["main"].operations)
        precision = ct.precision.FLOAT16 if s["precision"] == "fp16" else ct.precision.FLOAT32
        with tempfile.TemporaryDirectory(prefix="unified-coreml-") as tmp:
            path = Path(tmp) / PACKAGE_NAME
            try:
                with _quiet():
                    model = ct.convert(
                        prog,
                        convert_to="mlprogram",
                        minimum_deployment_target=target,
                        compute_precision=precision,
                        compute_units=getattr(ct.ComputeUnit, COMPUTE_UNITS[options.backend]),
                        skip_model_load=True,
                    )
                    model.user_defined_metadata[METADATA_KEY] = json.dumps(
                        {"inputs": [i.to_dict() for i in inputs], "outputs": [o.to_dict() for o in outputs]}
                    )
                    model.user_defined_metadata["unified.partition"] = options.partition_name
                    model.save(str(path))
            except Exception as exc:
                raise DelegateError(
                    f"coremltools could not convert partition {options.partition_name}: "
                    f"{type(exc).__name__}: {' '.join(str(exc).split())[:1000]}"
                ) from None
            with _quiet():
                facts = verify_package(path, inputs, outputs)
            blob = zip_package(path)
        details = {
            "precision": s["precision"],
            "target": s["target"],
            "compute_units": COMPUTE_UNITS[options.backend],
            "mil_ops_built": mil_ops,
            "mil_ops": facts["mil_ops"],
            "verified": "structure",
            "executes": _executes_here(),
        }
        return CoreMLExecutable(blob, inputs, outputs, COMPUTE_UNITS[options.backend], details)

    def load(self, artifact: bytes, partition: onnx.ModelProto, options: CompileOptions) -> CoreMLExecutable:
        """Rebuild an executable from :meth:`CoreMLExecutable.serialize` bytes, without recompiling.

        The package's recorded I/O mapping must equal the one ``partition``
        converts to, and the spec must verify against it.

        Raises:
            DelegateError: not a zipped package, or a signature mismatch.
        """
        s = self._settings(options)
        expected_in, expected_out = signature(partition, s["dim_ranges"])
        with tempfile.TemporaryDirectory(prefix="unified-coreml-") as tmp:
            path = unzip_package(artifact, tmp)
            ct = _ct()
            with _quiet():
                spec = ct.models.MLModel(str(path), skip_model_load=True).get_spec()
            inputs, outputs = read_io(spec)
            if inputs != expected_in or outputs != expected_out:
                raise DelegateError(
                    "coreml artifact does not match its partition: recorded I/O "
                    f"{[i.onnx_name for i in inputs]} -> {[o.onnx_name for o in outputs]}, expected "
                    f"{[i.onnx_name for i in expected_in]} -> {[o.onnx_name for o in expected_out]} "
                    "(or their types, shapes or ranges differ)"
                )
            with _quiet():
                facts = verify_package(path, inputs, outputs)
        details = {"compute_units": COMPUTE_UNITS[options.backend], "mil_ops": facts["mil_ops"],
                   "verified": "structure", "executes": _executes_here()}
        return CoreMLExecutable(artifact, inputs, outputs, COMPUTE_UNITS[options.backend], details)


@hookimpl
def unified_delegates() -> list[Delegate]:
    return [CoreMLDelegate()]
