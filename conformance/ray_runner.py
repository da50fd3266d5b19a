"""Conformance on a Ray cluster: the local runner's cases, each (delegate, case) a Ray task.

``unified conformance run --ray [ADDRESS]`` (``run_conformance(ray=...)``)
keeps the local runner's cases, statuses and reports; only where a case runs
changes. The per-case work is the same :func:`unified.conformance.execute.execute_case`
the local worker processes call.

* **Routing.** A node offers a delegate through the Ray custom resource
  ``unified:<delegate>`` (``unified:<delegate>:<backend>`` when the run picks
  a backend), from ``unified ray-resources``. The cluster's resources are read
  before scheduling: a delegate that no node with a CPU offers is ``skipped``
  for every case, with the resource it lacked as the reason. Each task asks
  for :data:`unified.integrations.ray.TASK_FRACTION` of the resource and is
  pinned to a node that offers it.
* **Slots.** Each node runs as many cases at once as it has CPUs. A slot is
  first *warmed* (a task that loads the plugins, within
  :data:`~unified.conformance.workers.STARTUP_TIMEOUT`) and imports the
  frameworks of the run's delegates its node offers (``Delegate.preload``), so a
  case's time limit does not pay for importing them.
* **Isolation.** Tasks are never retried (``max_retries=0``): a case that
  crashes its worker process (``os._exit``, a segfault) is one ``error``, as is
  one past its time limit, whose worker is killed (``ray.cancel(force=True)``);
  the slot warms again and the run goes on.
* **Nodes.** Every result records the node id that ran it (``CaseResult.node``);
  ``report.options["ray"]["nodes"]`` maps node ids to hostname, IP and the
  ``unified:*`` resources.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from unified.conformance.cases import Case, ConformanceError
from unified.conformance.execute import execute_case
from unified.conformance.report import CaseResult
from unified.conformance.workers import STARTUP_TIMEOUT, _preload, _quiet_onnxruntime, load_registry
from unified.integrations.ray import RESOURCE_PREFIX, TASK_FRACTION, require_ray, resource_name

__all__ = ["RayPool", "LOCAL"]

LOCAL = "local"
"""``--ray`` without an address: start a one-node Ray instance here, offering
this host's ``unified:*`` resources (shut down after the run)."""

_REGISTRIES: dict[tuple[str, ...], Any] = {}


# --- the worker side (runs in Ray worker processes) -----------------------------


def _registry(specs: tuple[str, ...]):
    """The plugin registry of this worker process (loaded once per spec list)."""
    if specs not in _REGISTRIES:
        import warnings

        warnings.simplefilter("ignore")
        _quiet_onnxruntime()
        _REGISTRIES[specs] = load_registry(specs)
    return _REGISTRIES[specs]


def _warm(specs: tuple[str, ...], delegates: tuple[str, ...] = ()) -> str:
    """Load the plugins in this worker and import the frameworks of
    ``delegates`` (``Delegate.preload``, the node's offer); return the node id."""
    import ray

    reg = _registry(specs)
    for name in delegates:
        _preload(reg, name)
    return ray.get_runtime_context().get_node_id()


def _case_task(specs: tuple[str, ...], delegate: str, case: Case, overrides, options) -> CaseResult:
    """One (delegate, case) through ``execute_case``; the result names this node."""
    import ray

    result = execute_case(_registry(specs), delegate, case, overrides, options)
    result.node = ray.get_runtime_context().get_node_id()
    return result


# --- the driver side ---------------------------------------------------------------


@dataclass
class _Node:
    id: str
    hostname: str
    ip: str
    slots: int
    resources: dict[str, float]
    free: int = 0
    warming: int = 0


@dataclass
class _Running:
    kind: str  # "warm" or "case"
    node: _Node
    started: float
    deadline: float
    task: tuple[str, Case] | None = None
    limit: float = 0.0


class RayPool:
    """Runs (delegate, case) tasks on a Ray cluster; ``run`` has ``WorkerPool.run``'s contract.

    Use :meth:`connect`, then :meth:`delegate_info`, :meth:`run`, :meth:`close`.

    Args:
        ray: the imported ``ray`` module, already initialized.
        plugins: extra plugin import specs every worker registers (they must
            import on every node: module names, or paths that exist there).
        timeout: default per-case time limit, seconds (a case's own wins).
        shutdown: call ``ray.shutdown()`` in :meth:`close`.
    """

    def __init__(self, ray: Any, plugins: Sequence[str] = (), timeout: float = 60.0, shutdown: bool = False):
        self.ray = ray
        self.specs = tuple(plugins)
        self.timeout = timeout
        self._shutdown = shutdown
        self.address = ""
        self.totals = {k: v for k, v in ray.cluster_resources().items()}
        self.nodes = {n.id: n for n in _alive_nodes(ray)}
        self.keys: dict[str, str] = {}
        opts = {"max_retries": 0, "retry_exceptions": False, "num_cpus": 1}
        self._warm = ray.remote(**opts)(_warm)
        self._case = ray.remote(**opts)(_case_task)

    @classmethod
    def connect(cls, address: str, plugins: Sequence[str] = (), timeout: float = 60.0) -> "RayPool":
        """Join the cluster at ``address`` (``"auto"``, ``"HOST:PORT"``, ``"ray://..."``),
        or start one here with :data:`LOCAL`; reuse a connection this process
        already has.

        Raises:
            RayUnavailableError: Ray is not installed.
            ConformanceError: the cluster cannot be reached.
        """
        ray = require_ray()
        if ray.is_initialized():
            return cls(ray, plugins, timeout)
        kw: dict[str, Any] = {"logging_level": logging.ERROR, "log_to_driver": False, "configure_logging": True}
        if address == LOCAL:
            from unified.integrations.ray import node_resources

            kw.update(resources=node_resources(load_registry(plugins)), include_dashboard=False)
        else:
            kw["address"] = address
        try:
            ray.init(**kw)
        except Exception as exc:  # ConnectionError, ValueError, RuntimeError from ray.init
            raise ConformanceError(f"cannot connect to the Ray cluster at {address!r}: {type(exc).__name__}: "
                                   f"{' '.join(str(exc).split())[:400]}") from None
        pool = cls(ray, plugins, timeout, shutdown=True)
        pool.address = address
        return pool

    def close(self) -> None:
        """Disconnect (and stop a cluster :meth:`connect` started)."""
        if self._shutdown:
            self.ray.shutdown()

    def describe(self) -> dict[str, Any]:
        """What ``report.options["ray"]`` records: address and nodes."""
        return {
            "address": self.address,
            "nodes": {n.id: {"hostname": n.hostname, "ip": n.ip, "cpus": n.slots, "resources": n.resources}
                      for n in self.nodes.values()},
        }

    def slots(self) -> int:
        """Cases the cluster runs at once (CPUs of nodes offering any ``unified:*`` resource)."""
        return sum(n.slots for n in self.nodes.values() if n.resources)

    def delegate_info(self, info: Mapping[str, Mapping[str, Any]],
                      delegate_options: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, dict[str, Any]]:
        """The report's ``delegates`` for this cluster: available where a node offers it.

        Args:
            info: the driver's ``_delegate_info`` (its ``version`` is kept).
            delegate_options: per-delegate compile options; a ``"backend"``
                routes on ``unified:<delegate>:<backend>``.
        """
        out: dict[str, dict[str, Any]] = {}
        for name, own in info.items():
            key = resource_name(name, (delegate_options or {}).get(name, {}).get("backend"))
            self.keys[name] = key
            nodes = sorted(n.id for n in self.nodes.values() if n.slots and n.resources.get(key, 0) > 0)
            if self.totals.get(key, 0) > 0 and nodes:
                out[name] = {**own, "available": True, "executes": True, "reason": "", "nodes": nodes}
            else:
                where = "no node of the Ray cluster" if self.totals.get(key, 0) <= 0 else "no node with a CPU"
                why = (f"{where} offers resource '{key}' (start a node where it executes with "
                       "`ray start ... --resources \"$(unified ray-resources)\"`)")
                out[name] = {**own, "available": False, "executes": False, "reason": why, "nodes": []}
        return out

    def run(self, tasks: Sequence[tuple[str, Case]], on_result: Callable[[CaseResult], None],
            tolerance_overrides: Mapping[str, Mapping[str, Any]] | None = None,
            delegate_options: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        """Run every (delegate, case) task; ``on_result`` gets each result as it arrives.

        Raises:
            ConformanceError: a node's worker cannot load the plugins, or does
                not start within ``STARTUP_TIMEOUT``.
        """
        pending: dict[str, deque] = {}
        for d, c in tasks:
            pending.setdefault(self.keys.get(d) or resource_name(d), deque()).append((d, c))
        running: dict[Any, _Running] = {}
        for n in self.nodes.values():
            if any(k in n.resources for k in pending):
                n.free, n.warming = n.slots, 0
                for _ in range(n.slots):
                    self._start_warm(n, running)
        extra = (tolerance_overrides or {}), (delegate_options or {})
        try:
            while running or any(pending.values()):
                self._fill(pending, running, extra)
                if not running:  # pending tasks no live node can take
                    self._orphan(pending, on_result)
                    break
                now = time.monotonic()
                wait_for = max(0.0, min(r.deadline for r in running.values()) - now)
                ready, _ = self.ray.wait(list(running), num_returns=1, timeout=min(wait_for, 2.0))
                for ref in ready:
                    self._collect(ref, running.pop(ref), running, on_result)
                self._expire(running, on_result)
        finally:
            for ref in running:
                self.ray.cancel(ref, force=True)

    def _start_warm(self, node: _Node, running: dict) -> None:
        now = time.monotonic()
        # the frameworks of this run's delegates that the node offers, no others
        offered = tuple(sorted({n.split(":")[0] for n, k in self.keys.items() if node.resources.get(k, 0) > 0}))
        ref = self._warm.options(scheduling_strategy=self._pin(node)).remote(self.specs, offered)
        node.free -= 1
        node.warming += 1
        running[ref] = _Running("warm", node, now, now + STARTUP_TIMEOUT)

    def _pin(self, node: _Node) -> Any:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        return NodeAffinitySchedulingStrategy(node.id, soft=False)

    def _fill(self, pending: dict[str, deque], running: dict, extra) -> None:
        """Give every free, warm slot the next task of the resource with the most left that its node offers."""
        overrides, options = extra
        for node in self.nodes.values():
            while node.free > 0:
                keys = [k for k, q in pending.items() if q and node.resources.get(k, 0) > 0]
                if not keys:
                    break
                delegate, case = pending[max(keys, key=lambda k: len(pending[k]))].popleft()
                key = self.keys.get(delegate) or resource_name(delegate)
                ref = self._case.options(scheduling_strategy=self._pin(node), resources={key: TASK_FRACTION}).remote(
                    self.specs, delegate, case, overrides.get(delegate), options.get(delegate))
                limit = case.timeout or self.timeout
                now = time.monotonic()
                node.free -= 1
                running[ref] = _Running("case", node, now, now + limit, (delegate, case), limit)

    def _collect(self, ref, run: _Running, running: dict, on_result) -> None:
        """One finished task: a result, or the error its worker's death makes."""
        ex = self.ray.exceptions
        try:
            value = self.ray.get(ref)
        except ex.RayTaskError as exc:  # raised inside the task: plugins that cannot load there
            cause = exc.as_instanceof_cause()
            raise ConformanceError(f"a Ray worker on node {run.node.hostname} ({run.node.id[:12]}) could not "
                                   f"run the conformance task: {' '.join(str(cause).split())[:600]}") from None
        except ex.RayError as exc:
            if run.kind == "warm":
                raise ConformanceError(f"a Ray worker on node {run.node.hostname} ({run.node.id[:12]}) died "
                                       f"while starting: {type(exc).__name__}") from None
            self._lost(run, running, f"the worker process died while running the case "
                                     f"(Ray: {type(exc).__name__}: {_first_line(exc)})", on_result)
            return
        if run.kind == "warm":
            run.node.warming -= 1
        else:
            on_result(value)
        run.node.free += 1

    def _lost(self, run: _Running, running: dict, reason: str, on_result) -> None:
        """The task's worker is gone: record the case, warm a new worker on its node
        (or drop the node when Ray says it is dead)."""
        delegate, case = run.task
        on_result(CaseResult(case.id, delegate, "error", reason, "worker", time.monotonic() - run.started,
                             node=run.node.id))
        alive = {n.id for n in _alive_nodes(self.ray)}
        if run.node.id not in alive:
            run.node.slots = run.node.free = 0
            return
        self._start_warm(run.node, running)
        run.node.free += 1  # the slot the lost task held

    def _expire(self, running: dict, on_result) -> None:
        """Cancel (kill) every task past its deadline."""
        now = time.monotonic()
        for ref, run in list(running.items()):
            if now <= run.deadline:
                continue
            del running[ref]
            self.ray.cancel(ref, force=True)
            if run.kind == "warm":
                raise ConformanceError(f"a Ray worker on node {run.node.hostname} ({run.node.id[:12]}) did not "
                                       f"load the plugins within {STARTUP_TIMEOUT:g} s")
            self._lost(run, running, f"timed out after {run.limit:g} s (per-case time limit); worker killed",
                       on_result)

    def _orphan(self, pending: dict[str, deque], on_result) -> None:
        """Tasks whose every node died: one error each."""
        for key, q in pending.items():
            while q:
                delegate, case = q.popleft()
                on_result(CaseResult(case.id, delegate, "error", f"no live node of the Ray cluster offers '{key}' "
                                     "any more (nodes died during the run)", "worker"))


def _first_line(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return lines[0][:300] if lines else ""


def _alive_nodes(ray: Any) -> list[_Node]:
    """The cluster's live nodes with their CPUs and ``unified:*`` resources."""
    out = []
    for n in ray.nodes():
        if not n.get("Alive"):
            continue
        res = n.get("Resources", {})
        out.append(_Node(
            n["NodeID"], n.get("NodeManagerHostname", ""), n.get("NodeManagerAddress", ""), int(res.get("CPU", 0)),
            {k: v for k, v in sorted(res.items()) if k.startswith(RESOURCE_PREFIX)},
        ))
    return out
