"""Run one case on one delegate and decide its status (inside a worker process).

The chain, and the status each step can end in:

1. the delegate is unavailable here ........................ ``skipped``
2. the case's loader fails (a broken case, not the delegate) ``skipped``
3. unified cannot load the model, or it has no nodes ........ ``unsupported``
4. the planner, strict, finds nodes the delegate declines ... ``unsupported``
   (with the delegate's reasons)
5. compiling a claimed partition raises ..................... ``error``
6. the delegate is compile-only (e.g. Core ML off macOS) .... ``compiled``
7. the oracle cannot compute expected outputs ............... ``skipped``
8. running raises ........................................... ``error``
   (a crash or hang of the worker process is turned into
   ``error`` by the runner)
9. outputs compare within tolerance ......................... ``pass``,
   else ``fail``

The delegate is reached only through the plugin registry and the core
planner and compiler, exactly as an ``InferenceSession`` reaches it.

A delegate may be named with a backend, ``"coreml:mil-numpy"`` (the label
the report keeps, so a result of the MIL evaluator never reads as one of
Core ML): the backend is passed as the ``backend`` option and availability
is that backend's (``Delegate.backend_availability``). A delegate whose
``compute_precision(backend, options)`` says ``"fp16"`` is compared with the
fp16 compute budget (``compare.fp16_budget``) on float outputs.
"""

from __future__ import annotations

import functools
import time
import traceback
from typing import Any, Mapping

import numpy as np

from unified.conformance.cases import Case, ConformanceError, oracle_outputs
from unified.conformance.compare import Tolerance, compare_outputs, fp16_budget
from unified.conformance.report import CaseResult
from unified.compiler import PartitionCompileError
from unified.errors import DelegateUnavailableError, ModelError, UnsupportedError
from unified.plugins import PluginRegistry

__all__ = ["execute_case", "delegate_tolerances", "split_label", "graph_depth"]


def split_label(label: str) -> tuple[str, str | None]:
    """``"coreml:mil-numpy"`` -> ``("coreml", "mil-numpy")``; ``"tflite"`` -> ``("tflite", None)``."""
    name, _, backend = label.partition(":")
    return name, (backend or None)


def graph_depth(graph) -> int:
    """Nodes on the longest path of ``graph`` (a ``unified.graph.Graph``; nodes in topological order)."""
    depth_of: dict[str, int] = {}
    deepest = 0
    for node in graph.nodes:
        d = 1 + max((depth_of.get(x, 0) for x in node.input if x), default=0)
        for y in node.output:
            depth_of[y] = d
        deepest = max(deepest, d)
    return max(deepest, 1)


def _precision_tolerances(delegate: Any, backend: str | None, options: Mapping[str, Any], graph,
                          tolerances: dict[str, Tolerance]) -> dict[str, Tolerance]:
    """The fp16 compute budget for float outputs when the delegate computes in fp16 (own overrides win)."""
    ask = getattr(delegate, "compute_precision", None)
    if ask is None:
        return tolerances
    try:
        precision = ask(backend or (list(delegate.backends()) or [""])[0], dict(options))
    except Exception:
        return tolerances
    if precision != "fp16":
        return tolerances
    budget = fp16_budget(graph_depth(graph))
    return {"float32": budget, "float64": budget, **tolerances}

def delegate_tolerances(delegate: Any, overrides: Mapping[str, Any] | None = None) -> dict[str, Tolerance]:
    """A delegate's tolerance overrides per output dtype.

    A delegate may declare a ``conformance_tolerance`` class attribute,
    ``{"float32": {"atol": 1e-4, "rtol": 1e-3}, ...}`` (``"*"`` for every
    dtype); ``overrides`` (from the runner) win over it.
    """
    out: dict[str, Tolerance] = {}
    for source in (getattr(delegate, "conformance_tolerance", None) or {}, overrides or {}):
        for k, v in source.items():
            out[k] = Tolerance.from_value(v)
    return out


def _short(exc: BaseException, limit: int = 800) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:limit]}" if text else type(exc).__name__


def _first_lines(text: str, n: int = 4, limit: int = 800) -> str:
    lines = [ln.strip() for ln in str(text).splitlines() if ln.strip()]
    return " | ".join(lines[:n])[:limit]


def execute_case(
    registry: PluginRegistry,
    delegate_name: str,
    case: Case,
    tolerance_overrides: Mapping[str, Any] | None = None,
    delegate_options: Mapping[str, Any] | None = None,
) -> CaseResult:
    """Run ``case`` on ``delegate_name`` in this process; never raises for the
    delegate's or the case's faults (they become the result's status).

    Args:
        registry: plugin registry holding the delegate.
        delegate_name: the delegate to test, or ``name:backend`` (e.g. ``coreml:mil-numpy``).
        case: the case.
        tolerance_overrides: dtype name -> tolerance, over the delegate's own.
        delegate_options: passed to the delegate as compile options
            (``"backend"`` picks the backend; default its first).

    Returns:
        The :class:`CaseResult`.
    """
    start = time.perf_counter()

    def done(status: str, phase: str, reason: str = "", **kw) -> CaseResult:
        return CaseResult(case.id, delegate_name, status, reason, phase, time.perf_counter() - start, **kw)

    name, backend = split_label(delegate_name)
    options = dict(delegate_options or {}, **({"backend": backend} if backend else {}))
    delegate = registry.delegates.get(name)
    if delegate is None:
        return done("skipped", "availability", f"delegate '{name}' is not registered")
    av = registry.availability(name, backend)
    if not av.ok:
        return done("skipped", "availability", av.reason or "unavailable")
    try:
        data = case.loader()
    except Exception as exc:
        return done("skipped", "case", f"the case could not be built: {_short(exc)}")

    from unified.graph import Graph

    try:
        graph = Graph(data.model)
    except ModelError as exc:
        return done("unsupported", "load", f"unified cannot load the case model: {_first_lines(exc)}")
    if not graph.nodes:
        return done("unsupported", "load", "the graph has no nodes once unified folds Constant nodes into initializers")
    built = _compile(registry, name, graph, options, done)
    if isinstance(built, CaseResult):
        return built
    nparts = len(built.plan.partitions)
    if not av.executes:
        why = av.reason or "the delegate cannot execute on this host"
        return done("compiled", "compile", f"compiled; numerics skipped: {why}", partitions=nparts)
    tolerances = delegate_tolerances(delegate, tolerance_overrides)
    tolerances = _precision_tolerances(delegate, backend, options, graph, tolerances)
    return _check_numerics(case, data, built, tolerances, functools.partial(done, partitions=nparts))


def _compile(registry: PluginRegistry, delegate_name: str, graph, delegate_options, done) -> Any:
    """Plan and compile ``graph`` on the delegate alone, strict: the
    ``CompiledModel``, or the :class:`CaseResult` ``done`` makes of a failure."""
    from unified.pipeline import compile_model
    from unified.session import SessionOptions

    # the same load -> plan -> compile road as a session, strict, on this delegate alone
    options = SessionOptions(strict=True, fallback=None, use_cache=False)
    try:
        return compile_model(graph, [(delegate_name, dict(delegate_options or {}))], options, reg=registry,
                             execute=False)
    except UnsupportedError as exc:
        return done("unsupported", "plan", _decline_reason(str(exc), delegate_name))
    except DelegateUnavailableError as exc:
        return done("error", "plan", _short(exc))
    except PartitionCompileError as exc:
        return done("error", "compile", _short(exc), partitions=exc.partition.index + 1)
    except Exception as exc:
        return done("error", "compile", _short(exc))


def _check_numerics(case: Case, data, built, tolerances: Mapping[str, Tolerance], done) -> CaseResult:
    """Run every data set of ``data`` through the compiled model and compare
    with the given or oracle outputs; ``done`` makes the result."""
    graph = built.graph
    output_names = [o.name for o in graph.outputs]
    stats: list[dict[str, Any]] = []
    failing: list[str] = []
    for k, (inputs, expected) in enumerate(data.data_sets):
        if expected is None:
            try:
                expected = oracle_outputs(data.model, inputs, case.oracle)
            except ConformanceError as exc:
                return done("skipped", "oracle", str(exc))
        try:
            actual = _run(graph, built.plan, built.partitions, inputs, output_names)
        except Exception as exc:
            return done("error", "run", _short(exc) + _where(exc))
        prefix = f"#{k} " if len(data.data_sets) > 1 else ""
        case_tol = data.tolerance if data.tolerance is not None else case.tolerance
        try:
            compared = compare_outputs(output_names, list(expected), actual, case_tol, tolerances, case.compare_values)
        except Exception as exc:  # a bug of the harness, not the delegate's: say so, keep the worker
            return done("error", "compare", f"the comparison itself failed (a conformance bug): {_short(exc)}")
        for s in compared:
            d = s.to_dict()
            d["name"] = prefix + d["name"]
            stats.append(d)
            if not s.passed:
                failing.append(_fail_text(d))
    if failing:
        return done("fail", "compare", "; ".join(failing)[:800], outputs=stats)
    return done("pass", "compare", outputs=stats)


def _decline_reason(message: str, delegate: str) -> str:
    """The planner's strict-mode message, reduced to the delegate's reasons."""
    lines = [ln.strip() for ln in message.splitlines()[1:] if ln.strip()]
    reasons = []
    for ln in lines:
        node, _, why = ln.partition(": ")
        why = why.removeprefix(f"{delegate}: ")
        reasons.append(f"{node.removeprefix('node ')}: {why}")
    return ("; ".join(reasons[:3]) + (f"; +{len(reasons) - 3} more" if len(reasons) > 3 else ""))[:800] or message[:800]


def _where(exc: BaseException) -> str:
    tb = traceback.extract_tb(exc.__traceback__)
    return f" (at {tb[-1].filename.rsplit('/', 1)[-1]}:{tb[-1].lineno})" if tb else ""


def _fail_text(d: Mapping[str, Any]) -> str:
    if d.get("reason"):
        return f"{d['name']}: {d['reason']}"
    return (
        f"{d['name']}: {d['mismatches']}/{d['size']} elements off, max abs {_g(d['max_abs'])}, "
        f"max rel {_g(d['max_rel'])}, {_g(d['max_ulp'])} ULP"
    )


def _g(x: Any) -> str:
    return f"{x:.3g}" if isinstance(x, float) else str(x)


def _run(graph, plan, compiled, inputs: Mapping[str, Any], output_names: list[str]) -> list:
    """Run the compiled partitions through ``InferenceSession.run`` itself (input
    checks, plan order, the partition-boundary contract), as a user would."""
    from unified.session import InferenceSession

    session = InferenceSession._from_parts(graph, plan, compiled)
    return [np.asarray(v) if isinstance(v, np.generic) else v for v in session.run(output_names, inputs)]
