"""Hook specifications of the ``unified`` plugin system (pluggy project
``unified``, entry-point group ``unified``).

A plugin is a module or object with functions decorated by
``unified.hookimpl`` whose names match the specs below. Built-in delegates
register through the same entry points as a third-party plugin.
"""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("unified")
hookimpl = pluggy.HookimplMarker("unified")

# --- discovery -------------------------------------------------------------


@hookspec
def unified_delegates() -> list:
    """Return the :class:`unified.Delegate` instances this plugin provides.

    Called once per plugin; every plugin's list is gathered. A plugin whose
    implementation raises is reported unavailable with that error.
    """


@hookspec
def unified_backends() -> list:
    """Return the :class:`unified.Backend` instances this plugin provides."""


# --- conformance -----------------------------------------------------------


@hookspec
def unified_conformance_cases(sources: list[str] | None) -> list:
    """Return conformance case collections (``unified.conformance`` sources).

    Args:
        sources: names of the sources asked for, or None for all; a plugin
            may return only the collections whose names are in it.
    """


# --- command line ------------------------------------------------------------


@hookspec
def unified_cli_commands() -> list:
    """Return :class:`unified.cli.Command` objects to add as ``unified`` subcommands.

    This is how ``unified simulate`` (the NPU simulator) and ``unified
    conformance`` join the CLI without the core importing them.
    """
