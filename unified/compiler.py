"""Compile every partition of a plan, through the compile cache.

Partitioning only tags; this module only compiles (STYLE.md 5).
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from typing import Callable, Mapping

import onnx

from unified.cache import CacheWarning, CompileCache
from unified.delegate import CompileOptions, Delegate, Executable
from unified.errors import DelegateError, UnifiedError
from unified.graph import Graph
from unified.partition import extract_partition
from unified.plan import Partition, Plan

__all__ = ["CompiledPartition", "compile_plan"]


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


def compile_plan(
    graph: Graph,
    plan: Plan,
    delegates: Mapping[str, Delegate],
    options: Mapping[str, Mapping],
    cache: CompileCache | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[CompiledPartition]:
    """Compile each partition with its delegate.

    Args:
        graph: the loaded model.
        plan: the plan for it.
        delegates: delegate name -> instance, for every delegate in the plan.
        options: delegate name -> its options (without ``backend``).
        cache: compile cache, or None to always compile.
        progress: called with a one-line message before each compilation.

    Raises:
        DelegateError: a delegate raised while compiling or loading; the
            message names the delegate, partition and its ops.
    """
    compiled = []
    for p in plan.partitions:
        delegate = delegates[p.delegate]
        opts = CompileOptions(backend=p.backend, options=dict(options.get(p.delegate, {})), partition_name=p.name)
        if progress:
            progress(f"compiling partition {p.index + 1}/{len(plan.partitions)} ({len(p.nodes)} nodes) on {p.delegate}")
        start = time.perf_counter()
        model = extract_partition(graph, p, delegate.max_ir_version)
        exe, hit = _compile_one(delegate, model, opts, p, cache)
        compiled.append(CompiledPartition(p, model, exe, time.perf_counter() - start, hit))
    return compiled


def _compile_one(delegate: Delegate, model: onnx.ModelProto, opts: CompileOptions, p: Partition, cache):
    use_cache = cache is not None and delegate.cacheable
    key = None
    if use_cache:
        key = CompileCache.key(
            model.SerializeToString(deterministic=True), delegate.name, delegate.version(), opts.backend, opts.options
        )
        blob = cache.get(key)
        if blob is not None:
            try:
                return _checked(delegate.load(blob, model, opts), model, p), True
            except UnifiedError:
                raise
            except Exception as exc:  # an artifact the framework rejects is recompiled, like a corrupt entry
                warnings.warn(
                    f"delegate '{delegate.name}' could not load its cached artifact for {p.name} "
                    f"({type(exc).__name__}: {exc}); recompiling",
                    CacheWarning,
                    stacklevel=3,
                )
    try:
        exe = delegate.compile(model, opts)
    except UnifiedError:
        raise
    except Exception as exc:
        ops = ", ".join(sorted(set(p.op_types)))
        raise DelegateError(
            f"delegate '{delegate.name}' failed to compile partition {p.name} ({len(p.nodes)} nodes; ops: {ops}): "
            f"{type(exc).__name__}: {' '.join(str(exc).split())[:1000]}"
        ) from exc
    exe = _checked(exe, model, p)
    if use_cache:
        try:
            blob = exe.serialize()
        except NotImplementedError:
            blob = None
        if blob is not None:
            cache.put(key, blob, {"delegate": delegate.name, "partition": p.name})
    return exe, False


def _checked(exe: Executable, model: onnx.ModelProto, p: Partition) -> Executable:
    if not isinstance(exe, Executable):
        raise DelegateError(
            f"delegate '{p.delegate}' returned {type(exe).__name__} from compile(), expected an Executable"
        )
    want_in = [i.name for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
    want_out = [o.name for o in model.graph.output]
    if list(exe.input_names) != want_in or list(exe.output_names) != want_out:
        raise DelegateError(
            f"delegate '{p.delegate}' compiled partition {p.name} with inputs {list(exe.input_names)} / outputs "
            f"{list(exe.output_names)}, expected {want_in} / {want_out}"
        )
    return exe

