"""The runner: every delegate x case, in worker processes, into a :class:`Report`.

Delegates are found only through the plugin registry (entry points plus any
extra plugins), so a delegate added by another package is tested without a
change here. Unavailable delegates get ``skipped`` for every case without
starting a worker.
"""

from __future__ import annotations

import os
import sys
import time
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Mapping, Sequence

from unified.conformance.cases import Case, ConformanceError
from unified.conformance.execute import execute_case
from unified.conformance.report import CaseResult, Report, host_info
from unified.conformance.workers import WorkerPool, load_registry, plugin_spec

__all__ = ["run_conformance", "DEFAULT_TIMEOUT"]

DEFAULT_TIMEOUT = 60.0
"""Default per-case time limit, seconds (a case may set its own)."""


def run_conformance(
    cases: Sequence[Case],
    delegates: Sequence[str] | None = None,
    *,
    plugins: Iterable[Any] = (),
    jobs: int | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    tolerances: Mapping[str, Mapping[str, Any]] | None = None,
    delegate_options: Mapping[str, Mapping[str, Any]] | None = None,
    progress: bool | Callable[[CaseResult, int, int], None] = False,
    sources: Sequence[str] = (),
    isolate: bool = True,
    ray: str | None = None,
) -> Report:
    """Run every delegate on every case.

    Args:
        cases: the cases (see :func:`gather_cases`).
        delegates: delegate names, or None for every registered delegate; ``name:backend``
            (e.g. ``coreml:mil-numpy``) runs that backend and is the label the
            report keeps for its results.
        plugins: extra plugins (modules or import specs, see
            ``unified.conformance.workers``) every worker registers.
        jobs: worker processes; None: one per CPU core.
        timeout: per-case time limit in seconds (a case's own wins).
        tolerances: delegate -> {dtype name -> tolerance} overrides.
        delegate_options: delegate -> compile options (``"backend"`` picks
            the backend).
        progress: True for a progress bar on stderr (tqdm when installed, else
            a line every 5 %), or a callback ``(result, done, total)``.
        sources: source names, recorded in the report.
        isolate: run in worker processes (default). False runs in this
            process: faster for a handful of cases, but a crash ends the run.
        ray: run the cases as Ray tasks on the cluster at this address
            (``"auto"``, ``"HOST:PORT"``, ``"ray://..."``; ``"local"`` starts
            one here), routed by ``unified:<delegate>`` resources; see
            :mod:`unified.conformance.ray_runner`. ``jobs`` and ``isolate``
            do not apply.

    Returns:
        The :class:`Report`; ``report.results`` holds one result per
        (delegate, case), delegates in the given order, cases in order.

    Raises:
        ConformanceError: an unknown delegate name (lists the registered
            ones), or a plugin that cannot be loaded; with ``ray``, a
            cluster that cannot be reached.
        RayUnavailableError: ``ray`` given, and Ray is not installed.
    """
    started, created = time.perf_counter(), datetime.now(timezone.utc).isoformat(timespec="seconds")
    specs = [plugin_spec(p) for p in plugins]
    reg = load_registry(specs)
    names = list(delegates) if delegates else list(reg.delegates)
    info = _delegate_info(reg, names)
    pool = _ray_pool(ray, specs, timeout) if ray is not None else None
    if pool is not None:
        info = pool.delegate_info(info, delegate_options)
        jobs, isolate = pool.slots(), True
    runnable = [n for n in names if info[n]["available"]]
    report = Report(cases={c.id: c.tags_dict() for c in cases}, delegates=info, sources=list(sources),
                    created=created, host=host_info(), unified_version=_unified_version(),
                    options={"delegates": names, "timeout": timeout, "jobs": jobs, "plugins": specs})
    results = _skipped(cases, names, runnable, info)
    # heavy cases (own, longer time limits) first, so they overlap the light ones
    tasks = [(d, c) for c in sorted(cases, key=lambda c: -(c.timeout or 0)) for d in runnable]
    if tasks and isolate:
        jobs = jobs or os.cpu_count() or 1
    try:
        _execute(tasks, reg, specs, jobs if isolate else None, timeout, tolerances, delegate_options, progress,
                 results.append, pool)
    finally:
        if pool is not None:
            report.options["ray"] = pool.describe()
            pool.close()
    order = {(d, c.id): i for i, (d, c) in enumerate((d, c) for d in names for c in cases)}
    report.results = sorted(results, key=lambda r: order.get((r.delegate, r.case), 0))
    report.options["jobs"] = jobs
    report.duration_s = time.perf_counter() - started
    return report


def _ray_pool(address: str, specs: list, timeout: float):
    """A connected :class:`~unified.conformance.ray_runner.RayPool` (Ray is imported only here)."""
    from unified.conformance.ray_runner import RayPool

    return RayPool.connect(address, specs, timeout)


def _skipped(cases: Sequence[Case], names: Sequence[str], runnable: Sequence[str], info) -> list[CaseResult]:
    """A ``skipped`` result (phase ``availability``, with the reason) for every case of each delegate that cannot run."""
    return [CaseResult(c.id, n, "skipped", info[n]["reason"] or "unavailable", "availability")
            for n in names if n not in runnable for c in cases]


def _delegate_info(reg, names: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Per delegate label: available, executes, reason, version, backend (the report's ``delegates``).

    Raises:
        ConformanceError: a name the registry does not hold (lists the registered ones).
    """
    from unified.conformance.execute import split_label

    unknown = [n for n in names if split_label(n)[0] not in reg.delegates]
    if unknown:
        known = ", ".join(sorted(reg.delegates)) or "none"
        broken = "; ".join(f"{b.name}: {b.reason}" for b in reg.broken if b.name in unknown)
        raise ConformanceError(
            f"unknown delegate(s) {unknown}; registered: {known}" + (f" (broken plugins: {broken})" if broken else "")
        )
    info: dict[str, dict[str, Any]] = {}
    for n in names:
        name, backend = split_label(n)
        if backend is not None and backend not in _backends(reg, name):
            raise ConformanceError(f"delegate '{name}' has no backend '{backend}'; its backends: "
                                   f"{', '.join(_backends(reg, name)) or 'none'}")
        av = reg.availability(name, backend)
        info[n] = {"available": av.ok, "executes": av.executes, "reason": av.reason, "version": av.version,
                   "backend": backend or ""}
    return info


def _backends(reg, name: str) -> list[str]:
    try:
        return list(reg.delegates[name].backends())
    except Exception:
        return []


def _execute(tasks, reg, specs, jobs, timeout, tolerances, delegate_options, progress, collect, pool=None) -> None:
    """Run every ``(delegate, case)`` task, on ``pool`` (a ``RayPool``), in ``jobs``
    worker processes, or (both None) in this process, feeding each result to
    ``collect`` and the progress display."""
    report_progress = _progress(progress, len(tasks))

    def on_result(result: CaseResult) -> None:
        collect(result)
        report_progress(result)

    try:
        if tasks and pool is not None:
            pool.run(tasks, on_result, tolerances, delegate_options)
        elif tasks and jobs:
            WorkerPool(max(1, min(jobs, len(tasks))), specs, timeout).run(tasks, on_result, tolerances, delegate_options)
        else:
            for d, c in tasks:
                on_result(execute_case(reg, d, c, (tolerances or {}).get(d), (delegate_options or {}).get(d)))
    finally:
        report_progress(None)


def _unified_version() -> str:
    import unified

    return unified.__version__


def _progress(progress, total: int) -> Callable[[CaseResult | None], None]:
    """A callback fed each result (None at the end)."""
    if callable(progress):
        done = [0]

        def call(result):
            if result is not None:
                done[0] += 1
                progress(result, done[0], total)

        return call
    if not progress or not total:
        return lambda result: None
    try:
        from tqdm import tqdm
    except ImportError:
        tqdm = None
    if tqdm is not None:
        bar = tqdm(total=total, unit="case", file=sys.stderr, dynamic_ncols=True, mininterval=0.5)
        bad = [0]

        def call(result):
            if result is None:
                bar.close()
                return
            bad[0] += result.status in ("fail", "error")
            bar.set_postfix_str(f"false claims {bad[0]}", refresh=False)
            bar.update(1)

        return call
    state = {"done": 0, "next": 0.0}
    start = time.perf_counter()

    def lines(result):
        if result is None:
            return
        state["done"] += 1
        frac = state["done"] / total
        if frac >= state["next"] or state["done"] == total:
            state["next"] = frac + 0.05
            print(f"[{time.perf_counter() - start:7.1f}s] {state['done']}/{total} ({frac:.0%})", file=sys.stderr, flush=True)

    return lines
