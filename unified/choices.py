"""Resolve a ``delegates=[...]`` priority list into planner choices.

Shared by ``InferenceSession`` (which must execute) and ahead-of-time
bundles (which only compile, so compile-only delegates are welcome).
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

from unified.errors import DelegateUnavailableError
from unified.planner import DelegateChoice
from unified.plugins import PluginRegistry

__all__ = ["DelegateSpec", "resolve_delegates", "resolve_delegate", "check_options"]

DelegateSpec = str | tuple[str, Mapping[str, Any]]


def resolve_delegate(reg: PluginRegistry, name: str, opts: Mapping[str, Any], *, execute: bool) -> DelegateChoice:
    """One delegate by name, with its backend picked and validated.

    Args:
        reg: the plugin registry.
        name: delegate name.
        opts: its options; ``"backend"`` picks the backend (default: the first).
        execute: refuse a compile-only delegate.

    Raises:
        DelegateUnavailableError: unknown or unavailable delegate, compile-only
            when ``execute``, or an unknown backend (lists the valid ones).
    """
    delegate = reg.get(name)
    av = reg.availability(name)
    if not av.ok:
        raise DelegateUnavailableError(f"delegate '{name}' is unavailable: {av.reason}")
    opts = dict(opts)
    try:
        backends = list(delegate.backends())
    except Exception as exc:
        raise DelegateUnavailableError(f"delegate '{name}': backends() raised {exc!r}") from None
    backend = opts.pop("backend", None) or (backends[0] if backends else "")
    if backend not in backends:
        raise DelegateUnavailableError(
            f"delegate '{name}' has no backend '{backend}' here; available: {', '.join(backends) or 'none'}"
        )
    if execute and not av.executes:
        bav = reg.availability(name, backend)  # one backend may execute where the delegate only compiles
        if not (bav.ok and bav.executes):
            raise DelegateUnavailableError(
                f"delegate '{name}' cannot execute here ({av.reason}); an InferenceSession needs to execute. "
                "Use `unified compile` to build an ahead-of-time bundle for the target device instead"
            )
    check_options(delegate, opts)
    return DelegateChoice(delegate, backend, opts)


def check_options(delegate, opts: Mapping[str, Any]) -> None:
    """Check ``opts`` against the delegate's declared :attr:`~unified.Delegate.options`.

    Raises:
        DelegateUnavailableError: an unknown option (the message lists the
            accepted ones) or a value of the wrong type or outside its choices.
        DelegateError: the delegate's own :meth:`~unified.Delegate.check_options` refused a value.
    """
    declared = getattr(delegate, "options", None)
    known = {o.name: o for o in declared or ()}
    for key, value in opts.items():
        option = known.get(key)
        if option is None and declared is not None:
            accepted = "; ".join(o.describe() for o in declared) or "none besides backend"
            raise DelegateUnavailableError(
                f"delegate '{delegate.name}' has no option {key!r}; its options are: backend, {accepted}"
                if declared else f"delegate '{delegate.name}' has no option {key!r}; it takes none besides backend"
            )
        problem = option.check(value) if option is not None else None
        if problem:
            raise DelegateUnavailableError(f"option {key!r} of delegate '{delegate.name}' {problem}")
    delegate.check_options(dict(opts))


def resolve_delegates(
    reg: PluginRegistry,
    delegates: Sequence[DelegateSpec] | None,
    *,
    fallback: str | None,
    strict: bool,
    execute: bool,
) -> tuple[list[DelegateChoice], DelegateChoice | None]:
    """The priority list and the fallback choice.

    Args:
        reg: the plugin registry.
        delegates: names or ``(name, options)`` pairs; None means every
            available executing delegate with a default priority, the
            fallback last.
        fallback: fallback delegate name (None: none).
        strict: no fallback is resolved.
        execute: refuse compile-only delegates.

    Returns:
        ``(choices, fallback_choice)``; the fallback is None when strict,
        unset, or already in the list.

    Raises:
        DelegateUnavailableError: a malformed list, a name listed twice, an
            empty list, or any error of :func:`resolve_delegate`.
    """
    if delegates is None:
        specs: list[DelegateSpec] = list(reg.default_order())
        if fallback in specs:
            specs = [n for n in specs if n != fallback] + [fallback]
    elif isinstance(delegates, (str, bytes)) or not isinstance(delegates, Iterable):
        hint = f"; for that delegate alone write [{delegates!r}]" if isinstance(delegates, str) else ""
        raise DelegateUnavailableError(
            f"delegates must be None, \"auto\" (measure and choose) or a list of names or (name, options) pairs, "
            f"got {delegates!r}{hint}"
        )
    else:
        specs = list(delegates)
    choices: list[DelegateChoice] = []
    for spec in specs:
        if isinstance(spec, str):
            name, opts = spec, {}
        elif isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[0], str) and isinstance(spec[1], Mapping):
            name, opts = spec
        else:
            raise DelegateUnavailableError(f"bad delegates entry {spec!r}; expected a name or a (name, options-dict) pair")
        if name in {c.name for c in choices}:
            raise DelegateUnavailableError(f"delegate '{name}' is listed twice in delegates")
        choices.append(resolve_delegate(reg, name, opts, execute=execute))
    if not choices:
        raise DelegateUnavailableError("the delegates list is empty; name at least one delegate")
    fallback_choice = None
    if fallback and not strict and fallback not in {c.name for c in choices}:
        fallback_choice = resolve_delegate(reg, fallback, {}, execute=execute)
    return choices, fallback_choice
