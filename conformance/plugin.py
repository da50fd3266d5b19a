"""The conformance plugin (entry point ``conformance`` in group ``unified``).

Contributes the built-in case sources (``onnx-node``, ``ops``, ``models``,
``real-models``, ``quantized-ops``, ``quantized-models``)
through ``unified_conformance_cases`` and the ``unified conformance``
command (and ``unified ray-resources``, :mod:`unified.integrations.ray`)
through ``unified_cli_commands``. A third-party plugin adds its own
sources by implementing the same hook and returning
:class:`unified.conformance.CaseSource` objects whose case loaders are
picklable (module-level functions, ``functools.partial`` of them, or
:class:`unified.conformance.StaticCase`).

Importing this module is cheap: sources import onnx's test generators only
when listed.
"""

from __future__ import annotations

from unified.hookspecs import hookimpl

BUILTIN_SOURCES = ("onnx-node", "ops", "models", "real-models", "quantized-ops", "quantized-models")


@hookimpl
def unified_conformance_cases(sources):
    from unified.conformance import model_cases, node_tests, op_sweeps, quantized_models, quantized_ops, real_models

    builders = {
        "onnx-node": node_tests.source,
        "ops": op_sweeps.source,
        "models": model_cases.source,
        "real-models": real_models.source,
        "quantized-ops": quantized_ops.source,
        "quantized-models": quantized_models.source,
    }
    wanted = [s for s in BUILTIN_SOURCES if sources is None or s in sources]
    return [builders[s]() for s in wanted]


@hookimpl
def unified_cli_commands():
    from unified.conformance.cli import command
    from unified.integrations.ray import resources_command

    return [command(), resources_command()]
