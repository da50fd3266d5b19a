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
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from unified.conformance.cases import Case, ConformanceError, oracle_outputs
from unified.conformance.compare import Tolerance, compare_outputs
from unified.compiler import PartitionCompileError
from unified.errors import DelegateUnavailableError, ModelError, UnsupportedError
from unified.plugins import PluginRegistry

__all__ = ["CaseResult", "STATUSES", "execute_case", "delegate_tolerances"]

STATUSES = ("pass", "fail", "error", "unsupported", "skipped", "compiled")
"""Every status a (delegate, case) pair can end in, in report order."""


@dataclass
class CaseResult:
    """The outcome of one delegate on one case.

    Attributes:
        case: the case id.
        delegate: the delegate name.
        status: one of :data:`STATUSES`.
        reason: why (decline reason, error message, failing output), "" for a pass.
        phase: the step that decided it: ``availability``, ``case``,
            ``load``, ``plan``, ``compile``, ``oracle``, ``run``,
            ``compare``, ``worker`` (crash or time limit).
        seconds: wall time of the whole chain in the worker, seconds.
        outputs: per output (and data set), :meth:`OutputStats.to_dict`.
        partitions: number of partitions the delegate's claim was cut into.
    """

    case: str
    delegate: str
    status: str
    reason: str = ""
    phase: str = ""
    seconds: float = 0.0
    outputs: list[dict[str, Any]] = field(default_factory=list)
    partitions: int = 0

    @property
    def claimed(self) -> bool:
        """The delegate claimed the whole case graph (or crashed deciding).

        An ``error`` always counts as claimed: a delegate that crashes the
        worker, even in ``supports()``, made a claim it could not keep.
        """
        return self.status in ("pass", "fail", "error", "compiled") or self.phase == "oracle"

    @property
    def false_claim(self) -> bool:
        """Claimed, then wrong numbers or an error."""
        return self.status in ("fail", "error")

    def to_dict(self) -> dict[str, Any]:
        return {
            "case": self.case,
            "delegate": self.delegate,
            "status": self.status,
            "reason": self.reason,
            "phase": self.phase,
            "seconds": round(self.seconds, 4),
            "partitions": self.partitions,
            "outputs": self.outputs,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "CaseResult":
        return cls(
            d["case"], d["delegate"], d["status"], d.get("reason", ""), d.get("phase", ""),
            float(d.get("seconds", 0.0)), list(d.get("outputs", [])), int(d.get("partitions", 0)),
        )


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
        delegate_name: the delegate to test.
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

    delegate = registry.delegates.get(delegate_name)
    if delegate is None:
        return done("skipped", "availability", f"delegate '{delegate_name}' is not registered")
    av = registry.availability(delegate_name)
    if not av.ok:
        return done("skipped", "availability", av.reason or "unavailable")
    try:
        data = case.loader()
    except Exception as exc:
        return done("skipped", "case", f"the case could not be built: {_short(exc)}")

    from unified.graph import Graph
    from unified.pipeline import compile_model
    from unified.session import SessionOptions

    try:
        graph = Graph(data.model)
    except ModelError as exc:
        return done("unsupported", "load", f"unified cannot load the case model: {_first_lines(exc)}")
    if not graph.nodes:
        return done("unsupported", "load", "the graph has no nodes once unified folds Constant nodes into initializers")

    # the same load -> plan -> compile road as a session, strict, on this delegate alone
    options = SessionOptions(strict=True, fallback=None, use_cache=False)
    try:
        built = compile_model(graph, [(delegate_name, dict(delegate_options or {}))], options, reg=registry,
                              execute=False)
    except UnsupportedError as exc:
        return done("unsupported", "plan", _decline_reason(str(exc), delegate_name))
    except DelegateUnavailableError as exc:
        return done("error", "plan", _short(exc))
    except PartitionCompileError as exc:
        return done("error", "compile", _short(exc), partitions=exc.partition.index + 1)
    except Exception as exc:
        return done("error", "compile", _short(exc))
    plan, compiled = built.plan, built.partitions
    nparts = len(plan.partitions)
    if not av.executes:
        why = av.reason or "the delegate cannot execute on this host"
        return done("compiled", "compile", f"compiled; numerics skipped: {why}", partitions=nparts)

    output_names = [o.name for o in graph.outputs]
    stats: list[dict[str, Any]] = []
    failing: list[str] = []
    tol_d = delegate_tolerances(delegate, tolerance_overrides)
    for k, (inputs, expected) in enumerate(data.data_sets):
        if expected is None:
            try:
                expected = oracle_outputs(data.model, inputs, case.oracle)
            except ConformanceError as exc:
                return done("skipped", "oracle", str(exc), partitions=nparts)
        try:
            actual = _run(graph, plan, compiled, inputs, output_names)
        except Exception as exc:
            return done("error", "run", _short(exc) + _where(exc), partitions=nparts)
        prefix = f"#{k} " if len(data.data_sets) > 1 else ""
        for s in compare_outputs(output_names, list(expected), actual, case.tolerance, tol_d, case.compare_values):
            d = s.to_dict()
            d["name"] = prefix + d["name"]
            stats.append(d)
            if not s.passed:
                failing.append(_fail_text(d))
    if failing:
        return done("fail", "compare", "; ".join(failing)[:800], outputs=stats, partitions=nparts)
    return done("pass", "compare", outputs=stats, partitions=nparts)


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
