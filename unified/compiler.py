"""Compile every partition of a plan, through the compile cache.

Partitioning only tags; this module only compiles (STYLE.md 5).
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass
from typing import Callable, Mapping

import onnx

from unified.cache import CacheWarning, CompileCache
from unified.delegate import CompileOptions, Delegate, Executable
from unified.errors import DelegateError
from unified.graph import Graph
from unified.partition import extract_partition
from unified.plan import Partition, Plan
from unified.specialize import SpecializedExecutable
from unified.trace import Tracer, maybe_span

__all__ = ["CompiledPartition", "compile_plan", "compile_one", "PartitionCompileError"]

log = logging.getLogger(__name__)


@dataclass
class CompiledPartition:
    """One partition after compilation.

    Attributes:
        partition: the plan entry.
        model: the partition's ONNX model as handed to the delegate.
        executable: what runs it.
        compile_seconds: wall time of compile or cache load, seconds.
        cache_hit: the executable was loaded from the compile cache.
    """

    partition: Partition
    model: onnx.ModelProto
    executable: Executable
    compile_seconds: float
    cache_hit: bool = False


class PartitionCompileError(DelegateError):
    """A delegate failed to compile a partition it claimed.

    Attributes:
        partition: the plan entry that failed.
        reason: the delegate's error, on one line.
    """

    def __init__(self, message: str, partition: Partition, reason: str):
        super().__init__(message)
        self.partition = partition
        self.reason = reason


def compile_plan(
    graph: Graph,
    plan: Plan,
    delegates: Mapping[str, Delegate],
    options: Mapping[str, Mapping],
    cache: CompileCache | None = None,
    progress: Callable[[str], None] | None = None,
    *,
    fallback: Callable[[Partition], Executable] | None = None,
    specializations: int = 8,
    reuse: dict | None = None,
    tracer: Tracer | None = None,
) -> list[CompiledPartition]:
    """Compile each partition with its delegate.

    A partition of a ``static_shapes`` delegate becomes a
    :class:`~unified.specialize.SpecializedExecutable`: compiled now when its
    inputs have static shapes (``Partition.specialized`` False), else at the
    first run for each input signature.

    Args:
        graph: the loaded model.
        plan: the plan for it.
        delegates: delegate name -> instance, for every delegate in the plan.
        options: delegate name -> its options (without ``backend``).
        cache: compile cache, or None to always compile.
        progress: called with a one-line message before each compilation.
        fallback: compiles a partition on the fallback delegate, for input
            signatures its delegate fails on at run time (None: raise).
        specializations: LRU size of compiled signatures per partition.
        reuse: a dict kept across calls: partitions compiled before with the
            same delegate, backend, nodes and boundary are reused (re-planning).
        tracer: when profiling, records a ``compile`` span per partition
            (with cache hits, and specializations compiled later at run time)
            and asks delegates for profiling-ready executables
            (``CompileOptions.profiling``).

    Raises:
        PartitionCompileError: a delegate raised while compiling or loading;
            the message names the delegate, partition and its ops.
    """
    compiled = []
    reuse = {} if reuse is None else reuse
    for p in plan.partitions:
        key = (p.delegate, p.backend, p.nodes, p.inputs, p.outputs)
        if key in reuse:
            c = reuse[key]
            compiled.append(CompiledPartition(p, c.model, c.executable, c.compile_seconds, c.cache_hit))
            continue
        delegate = delegates[p.delegate]
        opts = CompileOptions(
            backend=p.backend, options=dict(options.get(p.delegate, {})), partition_name=p.name,
            profiling=tracer is not None,
        )
        message = f"compiling partition {p.index + 1}/{len(plan.partitions)} ({len(p.nodes)} nodes) on {p.delegate}"
        log.info("%s", message)
        if progress:
            progress(message)
        start = time.perf_counter()
        with maybe_span(tracer, f"compile {p.name} {p.delegate}", "compile", delegate=p.delegate,
                        backend=p.backend, nodes=len(p.nodes)) as span:
            with maybe_span(tracer, "extract partition", "compile"):
                model = extract_partition(graph, p, delegate.max_ir_version)
            if delegate.static_shapes:
                exe, hit = _specialized(graph, delegate, model, opts, p, cache, fallback, specializations, tracer)
                span["deferred_to_first_run"] = bool(p.specialized)
            else:
                exe, hit = compile_one(delegate, model, opts, p, cache, tracer)
            span["cache_hit"] = hit
        c = CompiledPartition(p, model, exe, time.perf_counter() - start, hit)
        reuse[key] = c
        compiled.append(c)
    return compiled


def _specialized(graph, delegate, model, opts, p, cache, fallback, capacity, tracer=None):
    hits: list[bool] = []

    def compile_fn(static_model: onnx.ModelProto) -> Executable:
        with maybe_span(tracer, f"compile {p.name} {p.delegate} (specialization)", "compile",
                        delegate=p.delegate, signature=len(hits) + 1) as span:
            exe, hit = compile_one(delegate, static_model, opts, p, cache, tracer)
            span["cache_hit"] = hit
        hits.append(hit)
        return exe

    infos = {x: graph.tensor_info(x) for x in p.inputs}
    derived = [x for x, t in infos.items() if t.shape_derived]
    exe = SpecializedExecutable(
        model, compile_fn, derived, capacity,
        (lambda: fallback(p)) if fallback is not None else None,
        f"partition {p.name} on '{p.delegate}'",
        tracer=tracer,
        unfolded=frozenset(delegate.unfolded_ops),
    )
    deferred = p.specialized or any(not t.is_static or t.shape_derived for t in infos.values() if t.kind == "tensor")
    if not deferred:  # every input shape is known now: compile at once, so a failure re-plans
        try:
            exe.prepare({x: tuple(t.shape) for x, t in infos.items()})
        except PartitionCompileError:
            raise
        except Exception as exc:  # specialize() found a shape it cannot make static
            reason = f"{type(exc).__name__}: {' '.join(str(exc).split())[:1000]}"
            raise PartitionCompileError(
                f"delegate '{p.delegate}' cannot take partition {p.name} with static shapes: {reason}", p, reason
            ) from exc
    return exe, bool(hits) and all(hits)


def compile_one(
    delegate: Delegate,
    model: onnx.ModelProto,
    opts: CompileOptions,
    p: Partition,
    cache: CompileCache | None,
    tracer: Tracer | None = None,
) -> tuple[Executable, bool]:
    """Compile (or load from ``cache``) one partition model on ``delegate``.

    With ``tracer``, the cache look-up, the delegate's ``load``/``compile``
    and the cache store are each a ``compile`` span.

    Returns:
        ``(executable, cache_hit)``.

    Raises:
        PartitionCompileError: whatever the delegate raised, wrapped.
    """
    use_cache = cache is not None and delegate.cacheable
    key = None
    if use_cache:
        with maybe_span(tracer, "cache key and get", "compile", hit=False) as span:
            key = CompileCache.key(
                model.SerializeToString(deterministic=True), delegate.name, delegate.version(), opts.backend,
                opts.options,
            )
            blob = cache.get(key)
            span["hit"] = blob is not None
        if blob is not None:
            try:
                with maybe_span(tracer, f"{delegate.name}.load (cache hit)", "compile"):
                    return _checked(delegate.load(blob, model, opts), model, p), True
            except Exception as exc:  # an artifact the framework rejects is recompiled, like a corrupt entry
                warnings.warn(
                    f"delegate '{delegate.name}' could not load its cached artifact for {p.name} "
                    f"({type(exc).__name__}: {exc}); recompiling",
                    CacheWarning,
                    stacklevel=3,
                )
    try:
        with maybe_span(tracer, f"{delegate.name}.compile", "compile"):
            exe = _checked(delegate.compile(model, opts), model, p)
    except Exception as exc:  # whatever the delegate raised, even a ModelError, is its failure
        ops = ", ".join(sorted(set(p.op_types)))
        reason = f"{type(exc).__name__}: {' '.join(str(exc).split())[:1000]}"
        raise PartitionCompileError(
            f"delegate '{delegate.name}' failed to compile partition {p.name} ({len(p.nodes)} nodes; ops: {ops}): "
            f"{reason}",
            p,
            reason,
        ) from exc
    if use_cache:
        try:
            blob = exe.serialize()
        except NotImplementedError:
            blob = None
        if blob is not None:
            with maybe_span(tracer, "cache put", "compile", bytes=len(blob)):
                cache.put(key, blob, {"delegate": delegate.name, "partition": p.name})
    return exe, False


def _checked(exe: Executable, model: onnx.ModelProto, p: Partition) -> Executable:
    """Check what ``compile()``/``load()`` returned; an executable without
    ``input_names``/``output_names`` gets the partition's (the core knows them).

    Raises:
        DelegateError: not an Executable, or I/O names other than the partition's.
    """
    if not isinstance(exe, Executable):
        raise DelegateError(
            f"delegate '{p.delegate}' returned {type(exe).__name__} from compile(), expected an Executable"
        )
    want_in = [i.name for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
    want_out = [o.name for o in model.graph.output]
    for attr, names in (("input_names", want_in), ("output_names", want_out)):
        if getattr(exe, attr, None) is None:
            try:
                setattr(exe, attr, list(names))
            except AttributeError as exc:
                raise DelegateError(
                    f"delegate '{p.delegate}': its executable has no {attr} and refuses one ({exc})"
                ) from None
    if list(exe.input_names) != want_in or list(exe.output_names) != want_out:
        raise DelegateError(
            f"delegate '{p.delegate}' compiled partition {p.name} with inputs {list(exe.input_names)} / outputs "
            f"{list(exe.output_names)}, expected {want_in} / {want_out}"
        )
    return exe

