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
(``CPU_AND_GPU``), ``cpu`` (``CPU_ONLY``); and ``mil-numpy``, on every
platform and never the default: the same compiled package, evaluated op by op
in NumPy by :mod:`.mil_numpy` with the program's fp16 precision emulated. It
checks the lowering's numbers without a Mac; it is not Apple's runtime.

Options (``delegates=[("coreml", {...})]``):
    backend: ``"ane"`` (default), ``"gpu"``, ``"cpu"`` or ``"mil-numpy"``.
    compute_precision: ``"fp16"`` (default for ane/gpu/mil-numpy, as coremltools;
        the ops of :data:`FP32_OPS` stay fp32) or ``"fp32"`` (default for cpu).
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
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any, Mapping

import onnx

from unified.backend import Backend, BackendInfo
from unified.delegate import Availability, CompileOptions, Delegate, DelegateOption, Support
from unified.errors import DelegateError
from unified.graph import NodeView
from unified.hookspecs import hookimpl

from .convert import build_program, output_ranks, signature
from .executable import COMPILE_ONLY, MIL_NUMPY, MIL_NUMPY_DESCRIPTION, CoreMLExecutable, executes_here
from .ops_nn import LOWERINGS as _NN
from .ops_tensor import LOWERINGS as _TENSOR
from .package import METADATA_KEY, PACKAGE_NAME, read_io, unzip_package, verify_package, verify_program, zip_package
from .quiet import import_coremltools, quiet
from .support import OP_SUPPORT, common_reason

__all__ = ["CoreMLDelegate", "COMPUTE_UNITS", "LOWERINGS", "unified_delegates", "unified_backends", "MIL_NUMPY",
           "MilNumpyBackend"]

#: Backend -> ``coremltools.ComputeUnit`` member name.
COMPUTE_UNITS = {"ane": "CPU_AND_NE", "gpu": "CPU_AND_GPU", "cpu": "CPU_ONLY"}
_TARGETS = ("iOS15", "iOS16", "iOS17", "iOS18", "macOS12", "macOS13", "macOS14", "macOS15")
_OPTIONS = ("compute_precision", "minimum_deployment_target", "dim_ranges")

#: ONNX op type -> lowering function ``(Ctx, unified.onnx.Node) -> MIL Var(s)``
#: (:mod:`.ops_tensor`, :mod:`.ops_nn`); every op of :data:`.support.OP_SUPPORT` has one.
LOWERINGS = {**_TENSOR, **_NN}


class CoreMLDelegate(Delegate):
    """Core ML through coremltools: compiles anywhere, executes on macOS.

    Backends: ``ane``, ``gpu``, ``cpu`` (:data:`COMPUTE_UNITS`) and the opt-in
    ``mil-numpy`` evaluator (:data:`.executable.MIL_NUMPY`). Options:
    ``compute_precision``, ``minimum_deployment_target``, ``dim_ranges`` (see
    the module docstring). Artifacts are zipped ``.mlpackage`` directories.
    """

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
        """Installed when coremltools imports; ``executes`` only on macOS (else :data:`COMPILE_ONLY`)."""
        if importlib.util.find_spec("coremltools") is None:
            return Availability(False, "coremltools is not installed (pip install coremltools==9.0)")
        try:
            version = importlib.metadata.version("coremltools")
        except importlib.metadata.PackageNotFoundError:
            version = ""
        if executes_here():
            return Availability(True, "", version, executes=True)
        return Availability(True, COMPILE_ONLY, version, executes=False)

    def preload(self) -> None:
        """Import coremltools (quietly); its import takes seconds."""
        try:
            import_coremltools()
        except Exception:  # reported by the compile that needs it
            pass

    def backends(self) -> list[str]:
        """``["ane", "gpu", "cpu", "mil-numpy"]``: Core ML compute units (:data:`COMPUTE_UNITS`), then the
        NumPy evaluator of the compiled program (last, so never the default)."""
        return [*COMPUTE_UNITS, MIL_NUMPY]

    def backend_availability(self, backend: str) -> Availability:
        """``mil-numpy`` executes wherever coremltools is installed (:data:`.executable.MIL_NUMPY_DESCRIPTION`);
        the Core ML compute units as :meth:`availability`."""
        av = self.availability()
        if backend == MIL_NUMPY and av.ok:
            return Availability(True, MIL_NUMPY_DESCRIPTION, av.version, executes=True)
        return av

    def compute_precision(self, backend: str, options: Mapping[str, Any]) -> str:
        """``"fp16"`` or ``"fp32"``: the precision a partition compiled for ``backend`` computes in
        (the conformance runner compares fp16 results with its fp16 budget).

        Raises:
            DelegateError: bad options (as :meth:`compile`).
        """
        opts = {k: v for k, v in options.items() if k != "backend"}
        return self._settings(CompileOptions(backend=backend, options=opts))["precision"]

    def supports(self, node: NodeView) -> Support:
        """The op-support table, after the checks every node needs (:func:`.support.common_reason`)."""
        reason = common_reason(node)
        if reason:
            return Support.no(reason)
        return super().supports(node)

    def _settings(self, options: CompileOptions) -> dict[str, Any]:
        opts = dict(options.options)
        unknown = sorted(set(opts) - set(_OPTIONS))
        if unknown:
            raise DelegateError(f"unknown coreml option(s) {unknown}; known: backend, {', '.join(_OPTIONS)}")
        if options.backend not in self.backends():
            raise DelegateError(f"coreml has no backend '{options.backend}'; choose one of {self.backends()}")
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

        Args:
            partition: the partition model (static shapes when the core
                specialized it; symbolic dims become flexible ranges).
            options: backend (compute units) and the options above.

        Returns:
            A :class:`CoreMLExecutable`; its artifact is the zipped package.

        Raises:
            DelegateError: a lowering failed, coremltools rejected the program,
                or the saved package does not match the partition's signature.
        """
        settings = self._settings(options)
        ct = import_coremltools()
        target = getattr(ct.target, settings["target"])
        with quiet():
            prog, inputs, outputs = build_program(partition, LOWERINGS, target, settings["dim_ranges"])
            verify_program(prog, outputs, output_ranks(partition))
        mil_ops = len(prog.functions["main"].operations)
        with tempfile.TemporaryDirectory(prefix="unified-coreml-") as tmp:
            path = Path(tmp) / PACKAGE_NAME
            _convert_and_save(ct, prog, path, target, settings["precision"], options, inputs, outputs)
            with quiet():
                facts = verify_package(path, inputs, outputs)
            blob = zip_package(path)
        details = {
            "precision": settings["precision"],
            "target": settings["target"],
            "compute_units": _units(options.backend),
            "mil_ops_built": mil_ops,
            "mil_ops": facts["mil_ops"],
            "verified": "structure",
            "executes": executes_here() or options.backend == MIL_NUMPY,
        }
        if options.backend == MIL_NUMPY:
            details["runtime"] = MIL_NUMPY_DESCRIPTION
        return CoreMLExecutable(blob, inputs, outputs, _units(options.backend), details, backend=options.backend)

    def load(self, artifact: bytes, partition: onnx.ModelProto, options: CompileOptions) -> CoreMLExecutable:
        """Rebuild an executable from :meth:`CoreMLExecutable.serialize` bytes, without recompiling.

        The package's recorded I/O mapping must equal the one ``partition``
        converts to, and the spec must verify against it.

        Raises:
            DelegateError: not a zipped package, or a signature mismatch.
        """
        settings = self._settings(options)
        expected_in, expected_out = signature(partition, settings["dim_ranges"])
        with tempfile.TemporaryDirectory(prefix="unified-coreml-") as tmp:
            path = unzip_package(artifact, tmp)
            ct = import_coremltools()
            with quiet():
                spec = ct.models.MLModel(str(path), skip_model_load=True).get_spec()
            inputs, outputs = read_io(spec)
            if inputs != expected_in or outputs != expected_out:
                raise DelegateError(
                    "coreml artifact does not match its partition: recorded I/O "
                    f"{[i.onnx_name for i in inputs]} -> {[o.onnx_name for o in outputs]}, expected "
                    f"{[i.onnx_name for i in expected_in]} -> {[o.onnx_name for o in expected_out]} "
                    "(or their types, shapes or ranges differ)"
                )
            with quiet():
                facts = verify_package(path, inputs, outputs)
        details = {"compute_units": _units(options.backend), "mil_ops": facts["mil_ops"],
                   "verified": "structure", "executes": executes_here() or options.backend == MIL_NUMPY}
        return CoreMLExecutable(artifact, inputs, outputs, _units(options.backend), details, backend=options.backend)


#: MIL ops an fp16 program keeps in fp32 (coremltools ``FP16ComputePrecision(op_selector=...)`` casts around
#: them), because fp16 gets them wrong on ordinary inputs -- found by the mil-numpy conformance run:
#: ``reduce_prod`` overflows fp16's 65504 (onnx test_reduce_prod_default_axes_keepdims_example: 12! -> inf);
#: ``softmax`` / ``reduce_log_sum_exp`` see logits closer together than one fp16 ULP of their magnitude as
#: equal (test_softmax_large_number: 10000..10003 all round to 10000, uniform output); LogSoftmax's
#: ``sub(x, reduce_log_sum_exp(x))`` stays fp32 with them (test_logsoftmax_large_number). The max-subtraction
#: ``sub(x, reduce_max(x))`` of an expanded (Log)Softmax stays fp32 too: its result is small next to its
#: operands, so fp16 rounding of ``x`` cancels every digit (test_logsoftmax_large_number_expanded: x - max
#: of 10000..10003 is 0 for every element in fp16, y off by 2.05); a rounded max only shifts (Log)Softmax's
#: input, which it is invariant to.
#: ``tan`` near its poles turns fp16's input rounding (2**-11 relative) into a large output error (onnx
#: test_tan: tan(1.5328) = 26.3 came out 0.30 off, 1.2 %); kept fp32, it is exact on an fp32 input.
FP32_OPS = frozenset({"reduce_prod", "softmax", "reduce_log_sum_exp", "tan"})


def _computes_in_fp16(op) -> bool:
    """coremltools op selector: every op but :data:`FP32_OPS` (and a ``sub`` of a log-sum-exp or of a max,
    see there) is cast to fp16."""
    if op.op_type in FP32_OPS:
        return False
    if op.op_type == "sub":
        y = getattr(op, "y", None)
        while y is not None and y.op is not None and y.op.op_type == "cast":  # the pass casts fp16 results back
            y = y.op.x
        return not (y is not None and y.op is not None and y.op.op_type in ("reduce_log_sum_exp", "reduce_max"))
    return True


def _units(backend: str) -> str:
    """The ``coremltools.ComputeUnit`` a package is converted for (``CPU_ONLY`` for mil-numpy)."""
    return COMPUTE_UNITS.get(backend, "CPU_ONLY")


def _convert_and_save(ct, prog, path: Path, target, precision: str, options: CompileOptions, inputs, outputs) -> None:
    """``coremltools.convert`` the MIL program to an ML Program and save it at ``path``,
    with the I/O mapping (:data:`.package.METADATA_KEY`) and the partition name as metadata.

    Raises:
        DelegateError: coremltools rejected the program (its message, shortened).
    """
    try:
        with quiet():
            model = ct.convert(
                prog,
                convert_to="mlprogram",
                minimum_deployment_target=target,
                compute_precision=(ct.transform.FP16ComputePrecision(op_selector=_computes_in_fp16)
                                   if precision == "fp16" else ct.precision.FLOAT32),
                compute_units=getattr(ct.ComputeUnit, _units(options.backend)),
                skip_model_load=True,
            )
            model.user_defined_metadata[METADATA_KEY] = json.dumps(
                {"inputs": [asdict(i) for i in inputs], "outputs": [asdict(o) for o in outputs]}
            )
            model.user_defined_metadata["unified.partition"] = options.partition_name
            model.save(str(path))
    except Exception as exc:
        raise DelegateError(
            f"coremltools could not convert partition {options.partition_name}: "
            f"{type(exc).__name__}: {' '.join(str(exc).split())[:1000]}"
        ) from None


class MilNumpyBackend(Backend):
    """The ``mil-numpy`` target as ``unified devices`` lists it: a simulator, not a device."""

    name = MIL_NUMPY

    def availability(self) -> Availability:
        """Available wherever coremltools is installed (:meth:`CoreMLDelegate.backend_availability`)."""
        return CoreMLDelegate().backend_availability(MIL_NUMPY)

    def info(self) -> BackendInfo:
        """A ``simulator`` whose description says it is not Apple's runtime."""
        return BackendInfo(name=MIL_NUMPY, kind="simulator", description=MIL_NUMPY_DESCRIPTION,
                           dtypes=("float16", "float32", "int32", "bool"))


@hookimpl
def unified_backends() -> list[Backend]:
    """The plugin hook: the ``mil-numpy`` backend (:class:`MilNumpyBackend`)."""
    return [MilNumpyBackend()]


@hookimpl
def unified_delegates() -> list[Delegate]:
    """The plugin hook: this package's one delegate, :class:`CoreMLDelegate`."""
    return [CoreMLDelegate()]
