"""Worker processes: each (delegate, case) pair runs isolated, with a time limit.

A pool of ``jobs`` long-lived worker processes (``spawn`` start method: no
inherited ONNX Runtime or torch thread pools) pulls tasks over a pipe. The
parent watches every worker: a worker that dies (segfault, ``os.abort()``)
or overruns its case's time limit is killed and replaced, and that one
(delegate, case) pair becomes an ``error``; the run goes on.

Worker processes rebuild the plugin registry themselves: entry-point
plugins load as usual, and extra plugins are given as *import specs*
(``"package.module"``, ``"package.module:attribute"`` or
``"/path/to/file.py[:attribute]"``) so a delegate under development, or a
deliberately broken one in the tests, is re-created in every worker.
"""

from __future__ import annotations

import importlib
import importlib.util
import multiprocessing as mp
import os
import signal
import sys
import time
import types
from multiprocessing.connection import Connection, wait
from typing import Any, Callable, Iterable, Mapping, Sequence

from unified.conformance.cases import Case, ConformanceError
from unified.conformance.execute import execute_case
from unified.conformance.report import CaseResult
from unified.errors import PluginError
from unified.plugins import PluginRegistry

__all__ = ["plugin_spec", "import_plugin", "load_registry", "WorkerPool", "STARTUP_TIMEOUT"]

STARTUP_TIMEOUT = 180.0
"""Seconds a fresh worker may take to import unified and load its plugins."""


def plugin_spec(plugin: Any) -> str:
    """The import spec of a plugin: a str is returned as is, a module by name.

    Raises:
        ConformanceError: an object that cannot be re-imported in a worker
            (pass its module, or ``"module:attribute"``).
    """
    if isinstance(plugin, str):
        return plugin
    if isinstance(plugin, types.ModuleType):
        path = getattr(plugin, "__file__", None)
        if plugin.__name__ in sys.modules and not plugin.__name__.startswith("_") and _importable(plugin.__name__):
            return plugin.__name__
        if path:
            return path
    raise ConformanceError(
        f"plugin {plugin!r} cannot be re-created in a worker process; pass its module, "
        "'package.module[:attribute]' or '/path/to/file.py[:attribute]'"
    )


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def import_plugin(spec: str) -> Any:
    """Import a plugin from its spec (see the module docstring).

    Raises:
        ConformanceError: the module or attribute cannot be found.
    """
    target, _, attr = spec.partition(":") if not _is_windows_drive(spec) else (spec, "", "")
    try:
        if target.endswith(".py") or os.sep in target:
            name = "unified_conformance_plugin_" + os.path.splitext(os.path.basename(target))[0]
            if name in sys.modules:
                module = sys.modules[name]
            else:
                loc = importlib.util.spec_from_file_location(name, target)
                if loc is None or loc.loader is None:
                    raise ImportError(f"no module at {target}")
                module = importlib.util.module_from_spec(loc)
                sys.modules[name] = module
                loc.loader.exec_module(module)
        else:
            module = importlib.import_module(target)
    except Exception as exc:
        raise ConformanceError(f"cannot import plugin {spec!r}: {type(exc).__name__}: {exc}") from None
    if not attr:
        return module
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ConformanceError(f"plugin {spec!r}: module has no attribute {attr!r}") from None


def _is_windows_drive(spec: str) -> bool:
    return len(spec) > 1 and spec[1] == ":" and spec[0].isalpha()


def load_registry(plugins: Iterable[Any] = ()) -> PluginRegistry:
    """The process-wide registry, plus ``plugins`` (objects or import specs).

    Returns the shared ``unified.registry()`` when there are no extras; else a
    private registry (entry points + extras), as a session with
    ``SessionOptions(plugins=...)`` gets.

    Raises:
        ConformanceError: an extra plugin cannot be imported or registered.
    """
    from unified.plugins import registry

    extras = [import_plugin(p) if isinstance(p, str) else p for p in plugins]
    try:
        return registry().extended(extras)
    except PluginError as exc:
        raise ConformanceError(str(exc)) from None


# --- the worker side ---------------------------------------------------------


def _worker_main(conn: Connection, plugin_specs: Sequence[str]) -> None:
    """Body of a worker process: load plugins, then answer tasks until told to stop."""
    import warnings

    warnings.simplefilter("ignore")
    _quiet_onnxruntime()
    try:
        reg = load_registry(plugin_specs)
    except Exception as exc:
        conn.send(("broken", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ready", os.getpid()))
    preloaded: set[str] = set()
    while True:
        try:
            msg = conn.recv()
        except EOFError:
            return
        if msg is None:
            return
        delegate, case, overrides, options = msg
        name = delegate.split(":", 1)[0]
        if name not in preloaded:  # the framework import is not the case's time
            preloaded.add(name)
            _preload(reg, name)
        conn.send(("started", None))
        result = execute_case(reg, delegate, case, overrides, options)
        conn.send(("result", result))


def _preload(reg: PluginRegistry, name: str) -> None:
    """``Delegate.preload()`` of one delegate; a plugin's fault here is the case's to report."""
    delegate = reg.delegates.get(name)
    if delegate is not None:
        try:
            delegate.preload()
        except Exception:
            pass


def _quiet_onnxruntime() -> None:
    """Keep ONNX Runtime's warnings (unused initializers etc.) off the progress bar."""
    try:
        import onnxruntime

        onnxruntime.set_default_logger_severity(3)
    except Exception:  # ORT missing or broken: the delegates report it themselves
        pass


# --- the parent side ---------------------------------------------------------


class _Worker:
    def __init__(self, ctx, plugin_specs: Sequence[str]):
        self.conn, child = ctx.Pipe(duplex=True)
        self.proc = ctx.Process(target=_worker_main, args=(child, list(plugin_specs)), daemon=True)
        self.proc.start()
        child.close()
        self.ready = False
        self.started = time.monotonic()
        self.task: tuple[str, Case] | None = None
        self.deadline = 0.0
        self.task_start = 0.0

    def kill(self) -> None:
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join(5)
        self.conn.close()


def _exit_text(code: int | None) -> str:
    if code is None:
        return "exit code unknown"
    if code < 0:
        try:
            return f"killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


class WorkerPool:
    """Run (delegate, case) tasks across worker processes with time limits.

    Args:
        jobs: number of worker processes (>= 1).
        plugins: extra plugin import specs every worker registers.
        timeout: default per-case time limit in seconds (a case's own
            ``timeout`` wins).
    """

    def __init__(self, jobs: int, plugins: Sequence[str] = (), timeout: float = 60.0):
        if jobs < 1:
            raise ConformanceError(f"jobs must be >= 1, got {jobs}")
        self.jobs = jobs
        self.plugins = list(plugins)
        self.timeout = timeout
        self._ctx = mp.get_context("spawn")

    def run(
        self,
        tasks: Sequence[tuple[str, Case]],
        on_result: Callable[[CaseResult], None],
        tolerance_overrides: Mapping[str, Mapping[str, Any]] | None = None,
        delegate_options: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        """Run every task; call ``on_result`` once per task (in completion order).

        Raises:
            ConformanceError: a worker cannot start (its plugins fail to load).
        """
        pending = list(reversed(tasks))
        workers: list[_Worker] = []
        try:
            for _ in range(min(self.jobs, len(tasks))):
                workers.append(_Worker(self._ctx, self.plugins))
            while pending or any(w.task for w in workers):
                for w in workers:
                    if w.ready and w.task is None and pending:
                        delegate, case = pending.pop()
                        limit = case.timeout or self.timeout
                        w.task = (delegate, case)
                        w.task_start = time.monotonic()
                        # a first case of its delegate may import the framework first
                        # ("started" then restarts the clock): STARTUP_TIMEOUT for that
                        w.deadline = w.task_start + STARTUP_TIMEOUT + limit
                        w.conn.send((
                            delegate,
                            case,
                            (tolerance_overrides or {}).get(delegate),
                            (delegate_options or {}).get(delegate),
                        ))
                now = time.monotonic()
                deadlines = [w.deadline for w in workers if w.task] + [
                    w.started + STARTUP_TIMEOUT for w in workers if not w.ready
                ]
                wait_for = max(0.0, min(deadlines) - now) if deadlines else 1.0
                objs = [w.conn for w in workers] + [w.proc.sentinel for w in workers]
                wait(objs, timeout=min(wait_for, 5.0))
                for i, w in enumerate(list(workers)):
                    replaced = self._poll(w, on_result)
                    if replaced:
                        workers[i] = _Worker(self._ctx, self.plugins)
        finally:
            for w in workers:
                try:
                    w.conn.send(None)
                except (OSError, BrokenPipeError):
                    pass
            for w in workers:
                w.proc.join(2)
                w.kill()

    def _poll(self, w: _Worker, on_result) -> bool:
        """Handle one worker's messages, death or overrun; True when it must be replaced."""
        try:
            while w.conn.poll():
                kind, payload = w.conn.recv()
                if kind == "ready":
                    w.ready = True
                elif kind == "started" and w.task is not None:
                    w.task_start = time.monotonic()
                    w.deadline = w.task_start + (w.task[1].timeout or self.timeout)
                elif kind == "broken":
                    raise ConformanceError(f"a conformance worker could not load its plugins: {payload}")
                elif kind == "result":
                    w.task = None
                    on_result(payload)
        except (EOFError, OSError):
            pass
        if not w.proc.is_alive():
            w.proc.join(1)
            if w.task is not None:
                delegate, case = w.task
                seconds = time.monotonic() - w.task_start
                on_result(CaseResult(
                    case.id, delegate, "error",
                    f"the worker process died while running the case ({_exit_text(w.proc.exitcode)})",
                    "worker", seconds,
                ))
            elif not w.ready:
                raise ConformanceError(
                    f"a conformance worker died while starting ({_exit_text(w.proc.exitcode)})"
                )
            w.kill()
            return True
        now = time.monotonic()
        if w.task is not None and now > w.deadline:
            delegate, case = w.task
            limit = case.timeout or self.timeout
            w.kill()
            on_result(CaseResult(
                case.id, delegate, "error", f"timed out after {limit:g} s (per-case time limit); worker killed",
                "worker", now - w.task_start,
            ))
            return True
        if not w.ready and now > w.started + STARTUP_TIMEOUT:
            w.kill()
            raise ConformanceError(f"a conformance worker did not start within {STARTUP_TIMEOUT:g} s")
        return False
