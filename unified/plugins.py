"""Plugin loading: entry points of group ``unified``, one broken plugin at a time.

Every plugin (built-in or third party) is an entry point in group
``unified``. Loading isolates each one: an ImportError, an exception in a
hook, or a hook implementation with an unknown name makes *that* plugin
unavailable with its reason; the others load normally, and ``import unified``
never fails because of a plugin.

Set ``UNIFIED_DISABLE_PLUGIN_AUTOLOAD=1`` to load only the plugins shipped
with ``unified`` itself (the one environment switch; compare pytest's
``PYTEST_DISABLE_PLUGIN_AUTOLOAD``).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Iterable

import pluggy

from unified import hookspecs
from unified.backend import Backend
from unified.cli_command import Command
from unified.delegate import Availability, Delegate
from unified.errors import DelegateUnavailableError, PluginError

__all__ = ["PluginRegistry", "BrokenPlugin", "registry", "get_delegate", "list_delegates"]

AUTOLOAD_ENV = "UNIFIED_DISABLE_PLUGIN_AUTOLOAD"
_OWN_DIST = "unified"


@dataclass(frozen=True)
class BrokenPlugin:
    """A plugin that could not be loaded, and why."""

    name: str
    reason: str


@dataclass
class PluginRegistry:
    """Loaded plugins, delegates and backends. Build one with :meth:`load`.

    Attributes:
        pm: the pluggy ``PluginManager`` (project ``unified``).
        delegates: name -> Delegate, in load order.
        backends: name -> Backend.
        commands: name -> CLI ``Command`` contributed by plugins.
        broken: plugins (or delegates) that failed, with reasons.
    """

    pm: pluggy.PluginManager
    delegates: dict[str, Delegate] = field(default_factory=dict)
    backends: dict[str, Backend] = field(default_factory=dict)
    broken: list[BrokenPlugin] = field(default_factory=list)
    commands: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, extra_plugins: Iterable[Any] = (), entry_points: bool = True) -> "PluginRegistry":
        """Load entry-point plugins plus ``extra_plugins`` (objects or modules).

        Never raises for a broken plugin; see :attr:`broken`.
        """
        pm = pluggy.PluginManager("unified")
        pm.add_hookspecs(hookspecs)
        reg = cls(pm)
        if entry_points:
            own_only = os.environ.get(AUTOLOAD_ENV, "") not in ("", "0")
            for ep in sorted(metadata.entry_points(group="unified"), key=lambda e: e.name):
                dist = getattr(ep.dist, "name", None)
                if own_only and dist != _OWN_DIST:
                    continue
                try:
                    plugin = ep.load()
                except Exception as exc:  # a plugin's import may raise anything
                    reg.broken.append(BrokenPlugin(ep.name, f"import of '{ep.value}' failed: {_exc(exc)}"))
                    continue
                reg.add(plugin, ep.name)
        for plugin in extra_plugins:
            reg.add(plugin)
        return reg

    def add(self, plugin: Any, name: str | None = None) -> bool:
        """Register one plugin and collect its delegates and backends.

        Returns False (and records it in :attr:`broken`) when the plugin is
        rejected: an unknown hook name, or a hook that raised or returned
        something other than delegates/backends.
        """
        label = name or getattr(plugin, "__name__", None) or type(plugin).__name__
        try:
            self.pm.register(plugin, name=label)
        except ValueError as exc:  # already registered under that name
            self.broken.append(BrokenPlugin(label, f"not registered: {exc}"))
            return False
        except pluggy.PluginValidationError as exc:
            self.broken.append(BrokenPlugin(label, f"invalid hook implementation: {exc}"))
            return False
        try:
            self.pm.check_pending()
        except pluggy.PluginValidationError as exc:
            self.pm.unregister(plugin)
            self.broken.append(BrokenPlugin(label, f"implements an unknown hook: {exc}"))
            return False
        ok = True
        for hook_name, base, target in (
            ("unified_delegates", Delegate, self.delegates),
            ("unified_backends", Backend, self.backends),
            ("unified_cli_commands", Command, self.commands),
        ):
            caller = getattr(self.pm.hook, hook_name)
            for impl in caller.get_hookimpls():
                if impl.plugin is not plugin:
                    continue
                try:
                    items = impl.function() or []
                except Exception as exc:
                    self.broken.append(BrokenPlugin(label, f"{hook_name}() raised {_exc(exc)}"))
                    ok = False
                    continue
                for item in items:
                    if not isinstance(item, base) or not getattr(item, "name", ""):
                        self.broken.append(
                            BrokenPlugin(label, f"{hook_name}() returned {item!r}, expected a named {base.__name__}")
                        )
                        ok = False
                    elif base is Delegate and _contract_problem(item):
                        self.broken.append(BrokenPlugin(label, _contract_problem(item)))
                        ok = False
                    elif item.name in target:
                        self.broken.append(
                            BrokenPlugin(label, f"{base.__name__.lower()} name '{item.name}' is already taken")
                        )
                        ok = False
                    else:
                        target[item.name] = item
        return ok

    def extended(self, plugins: Iterable[Any]) -> "PluginRegistry":
        """This registry plus ``plugins``, registered as entry-point plugins are.

        Returns ``self`` when ``plugins`` is empty; else a new registry sharing
        this one's plugins, delegates, backends and commands (this one is not
        changed), so a plugin under development can be used for one session.

        Raises:
            PluginError: a plugin is rejected (the message gives the reason).
        """
        plugins = list(plugins)
        if not plugins:
            return self
        reg = PluginRegistry.load(entry_points=False)
        for name, plugin in self.pm.list_name_plugin():
            if name is not None and not reg.pm.is_registered(plugin):
                reg.pm.register(plugin, name=name)
        reg.delegates.update(self.delegates)
        reg.backends.update(self.backends)
        reg.commands.update(self.commands)
        reg.broken.extend(self.broken)
        for plugin in plugins:
            if not reg.add(plugin):
                raise PluginError(f"plugin {plugin!r} could not be registered: {reg.broken[-1].reason}")
        return reg

    def availability(self, name: str, backend: str | None = None) -> Availability:
        """A delegate's availability (of one ``backend`` when given: ``Delegate.backend_availability``);
        a raising ``availability()`` counts as unavailable."""
        delegate = self.delegates[name]
        try:
            av = delegate.availability() if backend is None else delegate.backend_availability(backend)
        except Exception as exc:
            return Availability(False, f"availability() raised {_exc(exc)}")
        if not isinstance(av, Availability):
            return Availability(False, f"availability() returned {type(av).__name__}, expected Availability")
        return av

    def get(self, name: str) -> Delegate:
        """The delegate called ``name``.

        Raises:
            DelegateUnavailableError: unknown name (lists the known ones and
                any broken plugin of that name).
        """
        if name in self.delegates:
            return self.delegates[name]
        broken = [b for b in self.broken if b.name == name]
        if broken:
            raise DelegateUnavailableError(f"delegate '{name}' is unavailable: {broken[0].reason}")
        known = ", ".join(sorted(self.delegates)) or "none"
        raise DelegateUnavailableError(f"unknown delegate '{name}'; registered delegates: {known}")

    def default_order(self) -> list[str]:
        """Available, executing delegates with a default priority, lowest first."""
        names = []
        for name, d in self.delegates.items():
            if d.default_priority is None:
                continue
            av = self.availability(name)
            if av.ok and av.executes:
                names.append(name)
        return sorted(names, key=lambda n: (self.delegates[n].default_priority, n))


def _contract_problem(delegate: Delegate) -> str:
    """What a delegate's class breaks of the contract checked at registration ("" when nothing)."""
    if delegate.cacheable and type(delegate).load is Delegate.load:
        return (
            f"delegate '{delegate.name}' is cacheable but does not implement Delegate.load(), so every compile-cache "
            "hit would recompile; implement load(artifact, partition, options) or set cacheable = False"
        )
    return ""


def _exc(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:500]}" if text else type(exc).__name__


_lock = threading.Lock()
_registry: PluginRegistry | None = None


def registry() -> PluginRegistry:
    """The process-wide registry, loaded on first use (thread-safe)."""
    global _registry
    if _registry is None:
        with _lock:
            if _registry is None:
                _registry = PluginRegistry.load()
    return _registry


def get_delegate(name: str) -> Delegate:
    """Shortcut for ``registry().get(name)``."""
    return registry().get(name)


def list_delegates() -> dict[str, Availability]:
    """Every registered delegate's availability, by name."""
    reg = registry()
    return {name: reg.availability(name) for name in reg.delegates}
