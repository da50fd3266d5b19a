"""The delegate contract: what a backend plugin implements.

A delegate answers three questions and does one job:

* ``availability()`` — can it work on this host at all (and can it execute,
  or only compile)?
* ``backends()`` — which hardware targets it can compile for here.
* ``supports(node)`` — will it run this node, and if not, why not. Op support
  is data: a delegate lists :class:`OpSupport` entries, each with constraint
  checks that return ``None`` (fine) or a reason string (declined).
* ``compile(partition, options)`` — turn one self-contained ONNX partition
  into an :class:`Executable`.

Compiled executables can be serialized to bytes and loaded back, which is how
the compile cache and ahead-of-time bundles work.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Iterable, Mapping

import numpy as np
import onnx

from unified.graph import NodeView
from unified.onnx.dtypes import dtype_name

if TYPE_CHECKING:
    from unified.trace import OpTracer

__all__ = [
    "DelegateOption",
    "Availability",
    "Support",
    "CompileOptions",
    "Executable",
    "Delegate",
    "OpSupport",
    "Constraint",
    "attr_in",
    "attr_absent",
]


@dataclass(frozen=True)
class Availability:
    """Whether a delegate (or backend) works on this host.

    Attributes:
        ok: usable for at least compiling.
        reason: why not (when ``ok`` is False), or a caveat (e.g. compile-only).
        version: version of the underlying framework, "" when not importable.
        executes: False for a compile-only delegate (e.g. Core ML off macOS).
    """

    ok: bool
    reason: str = ""
    version: str = ""
    executes: bool = True


@dataclass(frozen=True)
class Support:
    """A delegate's answer for one node: claimed, or declined with a reason."""

    ok: bool
    reason: str = ""

    @classmethod
    def yes(cls) -> "Support":
        """The node is claimed."""
        return _YES

    @classmethod
    def no(cls, reason: str) -> "Support":
        """The node is declined, with the reason recorded in the plan."""
        return cls(False, reason)

    def __bool__(self) -> bool:
        return self.ok


_YES = Support(True)

Constraint = Callable[[NodeView], "str | None"]
"""A constraint check: returns None when the node is fine, else the reason."""


def attr_in(name: str, allowed: Iterable[Any], default: Any = None) -> Constraint:
    """Constraint: attribute ``name`` (``default`` when the node omits it)
    takes one of ``allowed``. List values compare as lists.

    The reason names the op, the attribute, its value and what is supported,
    e.g. ``"Conv auto_pad='SAME_LOWER' not supported (supported: 'NOTSET', 'VALID')"``.
    """
    allowed = tuple(allowed)

    def check(node: NodeView) -> str | None:
        value = node.attr(name, default)
        if isinstance(value, tuple):
            value = list(value)
        if value not in allowed:
            shown = ", ".join(repr(a) for a in allowed)
            return f"{node.op_type} {name}={value!r} not supported (supported: {shown})"
        return None

    return check


def attr_absent(name: str, instead: str) -> Constraint:
    """Constraint: the node does not set attribute ``name``; the reason says
    what to give ``instead``, e.g. ``"ConvTranspose output_shape attribute not
    supported (give pads instead)"``."""

    def check(node: NodeView) -> str | None:
        if node.attr(name) is not None:
            return f"{node.op_type} {name} attribute not supported (give {instead} instead)"
        return None

    return check


@dataclass(frozen=True)
class OpSupport:
    """One entry of a delegate's op-support table.

    Attributes:
        op_type: ONNX op type, e.g. ``"Conv"``.
        domain: ONNX domain, ``""`` for ai.onnx.
        since: lowest opset version handled (inclusive).
        until: highest opset version handled (inclusive); None for no limit.
        dtypes: element types accepted for the node's first input (and, for
            ops where all inputs share a type, all typed inputs); empty means
            any.
        constraints: checks run in order; the first reason returned declines.
    """

    op_type: str
    domain: str = ""
    since: int = 1
    until: int | None = None
    dtypes: frozenset[int] = frozenset()
    constraints: tuple[Constraint, ...] = ()

    def check(self, node: NodeView) -> str | None:
        """None when this entry takes ``node``, else the reason it does not (opset, dtype, constraint)."""
        if node.opset < self.since or (self.until is not None and node.opset > self.until):
            hi = "" if self.until is None else f"..{self.until}"
            return f"{node.op_type} at opset {node.opset} not handled (handled: opset {self.since}{hi})"
        if self.dtypes:
            first = next((t for t in node.inputs if t.name), None)
            if first is not None and first.elem_type not in self.dtypes:
                names = ", ".join(sorted(dtype_name(d) for d in self.dtypes))
                return f"{node.op_type} input dtype {dtype_name(first.elem_type)} not supported (supported: {names})"
        for c in self.constraints:
            reason = c(node)
            if reason:
                return reason
        return None


@dataclass(frozen=True)
class DelegateOption:
    """One option a delegate accepts in ``delegates=[(name, {option: value})]``.

    Declared as data on the delegate class (:attr:`Delegate.options`) so that
    options are checked when the session is created, before planning, and
    documented in one place.

    Attributes:
        name: the option key.
        types: accepted Python types (``bool`` is never taken for ``int``).
        default: the value used when it is not given (documentation only;
            the delegate applies it).
        doc: one line for ``unified devices`` and error messages.
        choices: the accepted values, when finite.
    """

    name: str
    types: tuple[type, ...] = (str,)
    default: Any = None
    doc: str = ""
    choices: tuple[Any, ...] | None = None

    def check(self, value: Any) -> str | None:
        """None when ``value`` is acceptable, else what is wrong with it."""
        ok_type = isinstance(value, self.types) and not (isinstance(value, bool) and bool not in self.types)
        if not ok_type:
            names = " or ".join(t.__name__ for t in self.types)
            return f"must be {names}, got {type(value).__name__} {value!r}"
        if self.choices is not None and value not in self.choices:
            return f"is {value!r}; expected one of {', '.join(repr(c) for c in self.choices)}"
        return None

    def describe(self) -> str:
        """``"num_threads (int, default 1): intra-op threads"``."""
        kind = "/".join(t.__name__ for t in self.types)
        return f"{self.name} ({kind}, default {self.default!r}): {self.doc}" if self.doc else f"{self.name} ({kind})"


@dataclass(frozen=True)
class CompileOptions:
    """What a delegate is told when compiling one partition.

    Attributes:
        backend: the target backend name (one of ``delegate.backends()``).
        options: delegate-specific options from the session's ``delegates``
            list (e.g. ``{"num_threads": 2}``); JSON-serializable.
        partition_name: a stable label for messages and artifacts, e.g. ``"p0"``.
        profiling: the session profiles (``SessionOptions.enable_profiling``):
            a delegate whose framework must be told at load time to record
            per-op timings (ONNX Runtime's profiler, ExecuTorch's ETDump) turns
            that on, for :meth:`Executable.run_traced`. Not part of cache keys.
    """

    backend: str
    options: Mapping[str, Any] = field(default_factory=dict)
    partition_name: str = "p0"
    profiling: bool = False


class Executable(abc.ABC):
    """A compiled partition, ready to run.

    Attributes:
        input_names / output_names: the partition's boundary values, in the
            order of the partition model's graph inputs/outputs. Optional: the
            core sets them from the partition when an executable leaves them
            unset, so an executable needs only :meth:`run`.
    """

    input_names: list[str]
    output_names: list[str]
    #: Free-form facts the plan shows (e.g. ops taken by XNNPACK); JSON-safe.
    details: Mapping[str, Any] = {}

    @abc.abstractmethod
    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run once.

        Args:
            inputs: one C-contiguous array per name in ``input_names``, with the
                partition model's dtypes. The caller owns them; the executable
                must not keep or modify them.

        Returns:
            One array per name in ``output_names``; the caller owns them.
        """

    def run_traced(self, inputs: Mapping[str, np.ndarray], tracer: "OpTracer") -> dict[str, np.ndarray]:
        """Run once while the session profiles, reporting per-op spans to ``tracer``.

        Optional: the default runs :meth:`run` and reports nothing (the
        partition is one span in the trace), so a delegate needs no change.
        An override times its ops on ``tracer.clock`` (nanoseconds) and calls
        ``tracer.op(name, start_ns, end_ns, op_type, **args)``; spans must lie
        inside this call. Same arguments, result and ownership as :meth:`run`.
        """
        return self.run(inputs)

    def end_profiling(self, tracer: "OpTracer") -> None:
        """Report op spans known only after the runs (e.g. a framework's
        profile file), re-based onto the trace clock and placed inside the
        runs listed in ``tracer.runs``. Called once, when the session's
        profiling ends. Optional: the default reports nothing. Must not raise
        for a framework that recorded nothing."""

    def serialize(self) -> bytes:
        """The native artifact (e.g. ``.tflite`` flatbuffer) for cache and bundles.

        Raises:
            NotImplementedError: the delegate has nothing worth caching.
        """
        raise NotImplementedError

    @property
    def artifact_suffix(self) -> str:
        """File suffix of :meth:`serialize`'s bytes, e.g. ``".tflite"``."""
        return ".bin"


class Delegate(abc.ABC):
    """Base class of every delegate. Subclass, set ``name`` and ``op_support``,
    implement ``availability``, ``backends`` and ``compile``.

    Class attributes:
        name: the delegate's name in ``delegates=[...]`` lists.
        default_priority: position in the default delegate list (lower first);
            None keeps it out of the default list (opt-in only).
        op_support: the op-support table; :meth:`supports` consults it.
        cacheable: compiled artifacts are worth storing in the compile cache
            (and bundles): the executables implement ``serialize()`` and the
            delegate implements :meth:`load`; a cacheable delegate without
            ``load()`` is refused at registration (a cache hit would silently
            recompile). Default False.
        max_ir_version: the highest ONNX IR version the delegate's framework
            reads; partitions are written with at most this IR version.
        handles_non_tensor_values: the delegate may be asked about nodes that
            read or write sequence/optional/map values; when False (default)
            the planner declines such nodes for it, with a reason.
        options: the options the delegate accepts (:class:`DelegateOption`),
            checked when a session is created; an unknown name or a wrong
            type is an error naming the option and the accepted ones. None
            (the default) leaves a delegate's options unchecked by the core.
        static_shapes: the delegate compiles static shapes only (TFLite,
            ExecuTorch, Core ML). Its ``supports()`` still sees symbolic dims
            (str or None) and claims a node when it could lower it once every
            dim is known; the core then *specializes*: ``compile()`` always
            receives a partition whose every value has a static shape, with
            shape computations (``TensorInfo.shape_derived``) folded into
            initializers. A partition whose shapes depend on the model's
            input dims is compiled at the first ``run()`` for the concrete
            shapes (one compilation per shape signature, kept in an LRU).
            The planner claims shape-derived nodes for such a delegate
            itself (they fold away) and declines nodes with a value whose
            shape stays unknown after specialization
            (``TensorInfo.static_when_specialized`` False), with a reason.
        unfolded_ops: op types (default domain) a ``static_shapes``
            delegate wants to see as nodes even on constants: specialization
            does not fold them and the planner asks ``supports()`` about them
            instead of claiming them as shape computations. ExecuTorch sets
            ``{"DequantizeLinear"}``: its int8 weights must reach
            ``compile()`` as int8 for XNNPACK's quantized kernels.
    """

    name: ClassVar[str] = ""
    default_priority: ClassVar[int | None] = None
    op_support: ClassVar[tuple[OpSupport, ...]] = ()
    cacheable: ClassVar[bool] = False
    max_ir_version: ClassVar[int | None] = None
    handles_non_tensor_values: ClassVar[bool] = False
    static_shapes: ClassVar[bool] = False
    unfolded_ops: ClassVar[frozenset[str]] = frozenset()
    options: ClassVar[tuple[DelegateOption, ...] | None] = None

    @abc.abstractmethod
    def availability(self) -> Availability:
        """Whether this delegate can work on this host. Must not raise."""

    def backend_availability(self, backend: str) -> Availability:
        """Whether one backend works here; default: the delegate's :meth:`availability`.

        Override when one backend executes where the others only compile
        (e.g. coreml's ``mil-numpy`` evaluator off macOS). Must not raise.
        """
        return self.availability()

    def version(self) -> str:
        """Version string that goes into compile-cache keys."""
        return self.availability().version

    @abc.abstractmethod
    def backends(self) -> list[str]:
        """Backend names usable here; the first is the default."""

    def check_options(self, options: Mapping[str, Any]) -> None:
        """Check option *values* that need more than :attr:`options` declares
        (e.g. that a named hardware preset exists), when a session is created.

        Args:
            options: the delegate's options, without ``backend``.

        Raises:
            DelegateError: naming the option and what is accepted.
        """

    def supports(
        self, node: NodeView, backend: str | None = None, options: Mapping[str, Any] | None = None
    ) -> Support:
        """Claim or decline one node, using :attr:`op_support`.

        Override to add checks that need more than the table; keep every
        refusal explained. The planner passes the backend and options the
        session chose for this delegate (one answer per node and choice, like
        ONNX Runtime binding one execution-provider instance per option set),
        so a delegate can decline a node for one backend only. An override
        may also take just ``node``.

        Args:
            node: the node, with the inferred types and shapes of its values.
            backend: the chosen backend (one of :meth:`backends`).
            options: the delegate's options, validated (without ``backend``).
        """
        entries = self._op_table().get((node.domain, node.op_type))
        if not entries:
            return Support.no(f"{self.name} has no kernel for op {_qualified(node)}")
        reasons = []
        for entry in entries:
            reason = entry.check(node)
            if reason is None:
                return Support.yes()
            reasons.append(reason)
        return Support.no("; ".join(reasons))

    def _op_table(self) -> dict[tuple[str, str], list[OpSupport]]:
        cls = type(self)
        table = cls.__dict__.get("_op_table_cache")
        if table is None:
            table = {}
            for e in cls.op_support:
                table.setdefault((e.domain, e.op_type), []).append(e)
            cls._op_table_cache = table  # derived once per class from static data
        return table

    @abc.abstractmethod
    def compile(self, partition: onnx.ModelProto, options: CompileOptions) -> Executable:
        """Compile one partition.

        Args:
            partition: a self-contained, checked ONNX model (its own inputs,
                outputs, initializers, opset imports) whose every node this
                delegate claimed.
            options: target backend and delegate options.

        Raises:
            DelegateError: with the node or reason at fault.
        """

    def preload(self) -> None:
        """Import the delegate's framework now, ahead of its first compile.

        Conformance workers call it before a delegate's first case starts its
        time limit, so the limit measures the case, not a framework import
        (coremltools or torch take seconds, minutes on a loaded machine).
        Default: nothing. Must not raise; a framework that fails to import is
        reported by the compile that needs it.
        """

    def load(self, artifact: bytes, partition: onnx.ModelProto, options: CompileOptions) -> Executable:
        """Rebuild an executable from :meth:`Executable.serialize` bytes.

        ``partition`` is the partition the artifact was compiled from (for
        I/O names and types). The default recompiles.
        """
        return self.compile(partition, options)


def _qualified(node: NodeView) -> str:
    return f"{node.domain}::{node.op_type}" if node.domain else node.op_type


def op_types(entries: Iterable[OpSupport]) -> list[str]:
    """Sorted op types of a support table (for docs and ``unified devices``)."""
    return sorted({e.op_type for e in entries})
