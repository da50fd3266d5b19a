"""The one road from a model to runnable partitions: load -> plan -> compile.

``InferenceSession``, ``unified compile`` bundles and the conformance runner
all call :func:`compile_model` (``unified plan`` calls :func:`plan_model`), so
a fix here holds everywhere (STYLE.md 16).

Compile failure falls back (``DESIGN.md``): when a delegate's ``compile()``
raises on a partition it claimed and the session is not ``strict``, that
partition's nodes are re-planned without the delegate, the failure is
recorded in ``Plan.rejections`` (first line of the error) and one
:class:`~unified.planner.FallbackWarning` says so. With ``strict`` the
:class:`~unified.errors.DelegateError` propagates.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from unified.cache import CompileCache, default_cache_dir
from unified.choices import DelegateSpec, resolve_delegates
from unified.compiler import CompiledPartition, PartitionCompileError, compile_one, compile_plan
from unified.errors import UnsupportedError
from unified.graph import Graph, ModelLike
from unified.partition import extract_partition
from unified.plan import Partition, Plan
from unified.planner import DelegateChoice, FallbackWarning, fallback_message, make_plan
from unified.plugins import PluginRegistry, registry
from unified.trace import Tracer, maybe_span

if TYPE_CHECKING:
    from unified.session import SessionOptions

__all__ = ["PlannedModel", "CompiledModel", "plan_model", "compile_model"]

log = logging.getLogger("unified")


@dataclass
class PlannedModel:
    """A loaded model and its plan, before compiling.

    Attributes:
        graph: the loaded, shape-inferred model.
        plan: the plan.
        choices: the priority list as resolved (delegate, backend, options).
        fallback: the fallback choice (None when strict or none).
    """

    graph: Graph
    plan: Plan
    choices: list[DelegateChoice]
    fallback: DelegateChoice | None

    @property
    def used(self) -> dict[str, DelegateChoice]:
        """Delegate name -> choice, for every delegate the session may use."""
        return {c.name: c for c in self.choices + ([self.fallback] if self.fallback else [])}


@dataclass
class CompiledModel(PlannedModel):
    """A planned model with every partition compiled.

    Attributes:
        partitions: one :class:`CompiledPartition` per plan partition, in order.
        compile_failures: ``(delegate, partition description, reason)`` for
            each compile failure that was re-planned.
    """

    partitions: list[CompiledPartition] = None  # type: ignore[assignment]
    compile_failures: list[tuple[str, str, str]] = None  # type: ignore[assignment]


def _options(options: "SessionOptions | None") -> "SessionOptions":
    from unified.session import SessionOptions

    return options or SessionOptions()


def plan_model(
    model: ModelLike | Graph,
    delegates: Sequence[DelegateSpec] | None = None,
    options: "SessionOptions | None" = None,
    *,
    reg: PluginRegistry | None = None,
    execute: bool = True,
    warn: bool = True,
    excluded: Mapping[tuple[str, int], str] | None = None,
    tracer: Tracer | None = None,
) -> PlannedModel:
    """Load and plan, compiling nothing.

    Args:
        model: path, bytes, ``onnx.ModelProto`` or an already loaded ``Graph``.
        delegates: priority list (names or ``(name, options)`` pairs); None:
            every available delegate in default priority, fallback last.
        options: a ``SessionOptions`` (free_dimensions, fallback, strict,
            placement, min_partition_nodes, plugins are used).
        reg: the plugin registry (default: the process's, extended with
            ``options.plugins``).
        execute: refuse delegates that cannot execute here (a session);
            False for bundles and conformance, which only need to compile.
        warn: issue the FallbackWarning for unclaimed nodes.
        excluded: ``(delegate, node index) -> reason`` the planner must honour.
        tracer: when profiling: ``load model`` and ``plan`` spans.

    Raises:
        ModelError, DelegateUnavailableError, UnsupportedError: see
            ``InferenceSession``.
    """
    options = _options(options)
    reg = reg or registry().extended(options.plugins)
    with maybe_span(tracer, "load model", "compile"):
        graph = model if isinstance(model, Graph) else Graph(model, options.free_dimensions)
    with maybe_span(tracer, "plan", "compile") as span:
        choices, fallback = resolve_delegates(
            reg, delegates, fallback=options.fallback, strict=options.strict, execute=execute
        )
        plan = make_plan(
            graph,
            choices,
            fallback,
            strict=options.strict,
            placement=options.placement,
            min_partition_nodes=options.min_partition_nodes,
            excluded=excluded,
            warn=warn,
        )
        statics = {c.name for c in choices + ([fallback] if fallback else []) if c.delegate.static_shapes}
        plan = _mark_specialized(graph, plan, statics)
        span["partitions"] = len(plan.partitions)
    return PlannedModel(graph, plan, choices, fallback)


def _mark_specialized(graph: Graph, plan: Plan, statics: set[str]) -> Plan:
    """Flag the partitions of static-shape delegates whose inputs are known only at run time."""
    parts = []
    for p in plan.partitions:
        if p.delegate in statics:
            infos = [graph.tensor_info(x) for x in p.inputs]
            dynamic = any(not t.is_static or t.shape_derived for t in infos if t.kind == "tensor")
            p = replace(p, specialized=dynamic)
        parts.append(p)
    return replace(plan, partitions=tuple(parts))


def compile_model(
    model: ModelLike | Graph | PlannedModel,
    delegates: Sequence[DelegateSpec] | None = None,
    options: "SessionOptions | None" = None,
    *,
    execute: bool = True,
    reg: PluginRegistry | None = None,
    tracer: Tracer | None = None,
) -> CompiledModel:
    """Load, plan and compile; re-plan around partitions a delegate fails to compile.

    Args:
        model: as :func:`plan_model`'s, or what :func:`plan_model` returned
            for the same arguments and ``warn=False``: its plan is tried
            first, so a caller that inspects the plan first plans once.
        delegates, options, reg, execute: see :func:`plan_model`
            (``options`` also gives the cache, progress callback and
            ``specializations``); a re-plan uses them.
        tracer: when profiling: spans for loading, planning, each
            partition's compile (see :func:`~unified.compiler.compile_plan`).

    Returns:
        The :class:`CompiledModel`.

    Raises:
        ModelError, DelegateUnavailableError, UnsupportedError: see
            :func:`plan_model`.
        DelegateError: a compile failure with ``strict``, on the fallback
            delegate itself, or on nodes pinned by ``placement``.
    """
    options = _options(options)
    reg = reg or registry().extended(options.plugins)
    cache = CompileCache(options.cache_dir or default_cache_dir()) if options.use_cache else None
    excluded: dict[tuple[str, int], str] = {}
    failures: list[tuple[str, str, str]] = []
    reuse: dict[Any, CompiledPartition] = {}
    planned = model if isinstance(model, PlannedModel) else None
    graph = planned.graph if planned is not None else model if isinstance(model, Graph) else None
    failed: PartitionCompileError | None = None
    while True:
        if planned is None:
            try:
                planned = plan_model(
                    graph or model, delegates, options, reg=reg, execute=execute, warn=False, excluded=excluded,
                    tracer=tracer,
                )
            except UnsupportedError as exc:
                if failed is None:
                    raise
                raise failed from exc  # nobody else can take what the delegate failed to compile
        graph = planned.graph
        used = planned.used
        rescue = None if options.strict else used.get(options.fallback or "")
        try:
            compiled = compile_plan(
                graph,
                planned.plan,
                {n: c.delegate for n, c in used.items()},
                {n: dict(c.options or {}) for n, c in used.items()},
                cache,
                options.progress,
                fallback=_fallback_compiler(graph, rescue, cache, tracer) if rescue else None,
                specializations=options.specializations,
                reuse=reuse,
                tracer=tracer,
            )
            break
        except PartitionCompileError as exc:
            _exclude_failed(exc, graph, options, excluded, failures)
            failed, planned = exc, None
    plan = _with_details(planned.plan, compiled)
    message = fallback_message(plan, [c.name for c in planned.choices], failures)
    if message:
        warnings.warn(message, FallbackWarning, stacklevel=3)
    return CompiledModel(graph, plan, planned.choices, planned.fallback, compiled, failures)


def _exclude_failed(exc: PartitionCompileError, graph: Graph, options, excluded: dict, failures: list) -> None:
    """Record a partition's compile failure so the re-plan keeps its nodes off that delegate.

    Adds ``(delegate, node index) -> reason`` to ``excluded`` for each of the
    partition's nodes and ``(delegate, partition, reason)`` to ``failures``.

    Raises:
        PartitionCompileError: ``exc`` itself, with ``strict`` or when any of
            the partition's nodes is pinned by ``placement``.
    """
    p = exc.partition
    pinned = [n for n, op in zip(p.nodes, p.op_types) if n in options.placement or op in options.placement]
    if options.strict or pinned:
        raise exc
    log.debug("re-planning without '%s' for %s: %s", p.delegate, p.name, exc.reason)
    failures.append((p.delegate, f"{p.name} ({len(p.nodes)} nodes)", exc.reason))
    index = {name: i for i, name in enumerate(graph.node_names)}
    first_line = exc.reason.splitlines()[0][:300]
    for name in p.nodes:
        excluded[(p.delegate, index[name])] = f"compile failed: {first_line}"


def _with_details(plan: Plan, compiled: Sequence[CompiledPartition]) -> Plan:
    """``plan`` with each executable's ``details`` (delegate-reported facts) on its partition."""
    for c in compiled:
        details = getattr(c.executable, "details", None)
        if details:
            plan = plan.with_details(c.partition.index, details)
    return plan


def _fallback_compiler(graph: Graph, fallback: DelegateChoice, cache, tracer: Tracer | None = None):
    """Compiles a partition, unspecialized, on the fallback delegate (for run-time failures)."""
    from unified.delegate import CompileOptions

    def compile_on_fallback(p: Partition):
        q = replace(p, delegate=fallback.name, backend=fallback.backend)
        model = extract_partition(graph, q, fallback.delegate.max_ir_version)
        opts = CompileOptions(fallback.backend, dict(fallback.options or {}), p.name, profiling=tracer is not None)
        with maybe_span(tracer, f"compile {p.name} {fallback.name} (fallback)", "compile"):
            return compile_one(fallback.delegate, model, opts, q, cache, tracer)[0]

    return compile_on_fallback
