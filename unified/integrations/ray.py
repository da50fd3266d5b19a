"""Ray: capability resources for a cluster, and batch inference over Ray Data.

Importing this module does not import Ray; Ray is imported when a function
that needs it is called, and its absence is a :class:`RayUnavailableError`
(``pip install unified[ray]``).

**Resources.** Each node advertises what it can execute as Ray custom
resources (:func:`node_resources`): ``unified:<delegate>`` for every delegate
that executes on the node, and ``unified:<delegate>:<backend>`` for each of
its backends, e.g. ``{"unified:onnxruntime": 1, "unified:onnxruntime:cpu": 1,
"unified:onnxruntime:gpu": 1}`` on a CUDA host or ``{"unified:coreml": 1, ...}``
on a Mac. ``unified ray-resources`` prints them as the JSON ``ray start
--resources`` takes; a task asks for a small fraction of one
(:data:`TASK_FRACTION`) so that it lands only where the delegate runs.

**Batch inference.** :class:`BatchInference` is the callable class
``Dataset.map_batches`` runs in an actor pool (``compute=ActorPoolStrategy(size=N)``): each actor
builds one :class:`unified.InferenceSession` and maps every batch through it.
"""

from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

import numpy as np

from unified.errors import InputError, UnifiedError

__all__ = ["RESOURCE_PREFIX", "TASK_FRACTION", "RayUnavailableError", "require_ray", "resource_name",
           "node_resources", "BatchInference"]

RESOURCE_PREFIX = "unified:"
"""Prefix of every Ray custom resource unified advertises."""

TASK_FRACTION = 0.001
"""Amount of a ``unified:*`` resource one task asks for: a node offers 1, so
about a thousand tasks fit at once and CPUs, not this, bound concurrency."""


class RayUnavailableError(UnifiedError, ImportError):
    """Ray is not installed (or cannot be imported) here."""


def require_ray() -> Any:
    """Import and return the ``ray`` module.

    Raises:
        RayUnavailableError: Ray is not installed or fails to import; the
            message says how to install it.
    """
    try:
        import ray
    except ImportError as exc:
        raise RayUnavailableError(
            f"this needs Ray, which is not importable here ({exc}); install it with `pip install unified[ray]`"
        ) from None
    return ray


def resource_name(delegate: str, backend: str | None = None) -> str:
    """The Ray resource of a delegate (and backend): ``unified:onnxruntime:cpu``."""
    return f"{RESOURCE_PREFIX}{delegate}" + (f":{backend}" if backend else "")


def node_resources(registry: Any = None) -> dict[str, float]:
    """The ``unified:*`` resources this host offers, for ``ray start --resources``.

    A delegate counts when it is available *and executes* here (a
    compile-only delegate, like Core ML off macOS, is left out); each of its
    backends (``Delegate.backends()``) adds ``unified:<delegate>:<backend>``.

    Args:
        registry: a :class:`unified.plugins.PluginRegistry`; default the
            process-wide one (entry-point plugins).

    Returns:
        Resource name -> 1.0, sorted by name. Does not import Ray.
    """
    from unified.plugins import registry as default_registry

    reg = registry if registry is not None else default_registry()
    out: dict[str, float] = {}
    for name, delegate in reg.delegates.items():
        av = reg.availability(name)
        if not (av.ok and av.executes):
            continue
        out[resource_name(name)] = 1.0
        try:
            backends = list(delegate.backends())
        except Exception:  # a delegate whose backends() breaks still runs its default backend
            backends = []
        for b in backends:
            out[resource_name(name, b)] = 1.0
    return dict(sorted(out.items()))


class BatchInference:
    """Run one model over Ray Data batches: ``ds.map_batches(BatchInference, fn_constructor_kwargs=...)``.

    Each instance (one per actor of ``ActorPoolStrategy(size=N)``) builds one
    :class:`unified.InferenceSession`, from an ONNX model or from a compiled
    bundle directory (``unified compile``; :meth:`InferenceSession.from_bundle`).
    A batch (``batch_format="numpy"``: column name -> array of shape
    ``(rows, ...)``) is fed as the model's inputs, and the outputs come back
    as columns: one row per batch row, so a model output of shape
    ``(rows, 384)`` becomes a tensor column of 384-element rows.

    Args:
        model: an ONNX model path (or ``ModelProto``); exactly one of
            ``model`` and ``bundle``.
        bundle: a bundle directory from ``unified compile``.
        delegates: the session's delegates (``model`` only), as for
            ``InferenceSession``; None: the session's default.
        options: :class:`unified.SessionOptions` for the session.
        input_map: model input name -> batch column; inputs not named here
            are read from the column of the same name.
        output_map: model output name -> result column; default the output
            name. Only the outputs named here are returned when given.
        keep_columns: batch columns copied through to the result unchanged
            (e.g. the text an embedding belongs to).

    Raises:
        InputError: neither or both of ``model`` and ``bundle``.
        Everything ``InferenceSession`` / ``from_bundle`` raise.
    """

    def __init__(
        self,
        model: Any = None,
        *,
        bundle: str | os.PathLike | None = None,
        delegates: Sequence[Any] | str | None = None,
        options: Any = None,
        input_map: Mapping[str, str] | None = None,
        output_map: Mapping[str, str] | None = None,
        keep_columns: Sequence[str] = (),
    ):
        from unified.session import InferenceSession

        if (model is None) == (bundle is None):
            raise InputError("BatchInference needs exactly one of model= (an ONNX model) and bundle= (a bundle dir)")
        if bundle is not None:
            self.session = InferenceSession.from_bundle(bundle, options)
        else:
            self.session = InferenceSession(model, delegates, options)
        self.inputs = {i.name: i for i in self.session.get_inputs()}
        unknown = sorted(set(input_map or {}) - set(self.inputs))
        if unknown:
            raise InputError(f"input_map names {unknown}, which are not model inputs; inputs: {sorted(self.inputs)}")
        self.columns = {name: (input_map or {}).get(name, name) for name in self.inputs}
        names = [o.name for o in self.session.get_outputs()]
        unknown = sorted(set(output_map or {}) - set(names))
        if unknown:
            raise InputError(f"output_map names {unknown}, which are not model outputs; outputs: {names}")
        self.outputs = dict(output_map) if output_map else {n: n for n in names}
        self.keep_columns = list(keep_columns)

    def __call__(self, batch: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """One batch through the session.

        Args:
            batch: column name -> array with one row per batch row.

        Returns:
            Output column -> ``np.ndarray`` of shape ``(rows, ...)``, plus
            the ``keep_columns``.

        Raises:
            InputError: a model input's column is missing from the batch, or
                holds values that cannot be cast to the input's dtype.
        """
        feed = {name: self._column(batch, name, col) for name, col in self.columns.items()}
        values = self.session.run(list(self.outputs), feed)
        out = {col: np.asarray(v) for col, v in zip(self.outputs.values(), values)}
        for col in self.keep_columns:
            if col not in batch:
                raise InputError(f"keep_columns names '{col}', which the batch lacks; columns: {sorted(batch)}")
            out[col] = np.asarray(batch[col])
        return out

    def _column(self, batch: Mapping[str, Any], name: str, col: str) -> np.ndarray:
        if col not in batch:
            raise InputError(f"model input '{name}' reads batch column '{col}', which the batch lacks; "
                             f"columns: {sorted(batch)} (map it with input_map={{'{name}': COLUMN}})")
        value = batch[col]
        if isinstance(value, np.ndarray) and value.dtype == object:
            value = np.stack(list(value))  # a ragged-capable column of equal-shape rows
        value = np.asarray(value)
        want = self.inputs[name].dtype
        if want is None or value.dtype == want:
            return value
        if not np.can_cast(value.dtype, want, "same_kind"):
            raise InputError(f"batch column '{col}' holds {value.dtype}, which does not cast to model input "
                             f"'{name}' ({want})")
        return value.astype(want)


def resources_command() -> Any:
    """The ``unified ray-resources`` subcommand: print :func:`node_resources` as
    the JSON ``ray start --resources`` takes (nothing else on stdout)."""
    import argparse
    import json

    from unified.cli_command import Command

    def add_arguments(p: argparse.ArgumentParser) -> None:
        p.add_argument("--plugin", action="append", default=[], metavar="SPEC",
                       help="also register this plugin (module, module:attr or /path/file.py), as a run would")

    def run(args: argparse.Namespace) -> int:
        from unified.conformance.workers import load_registry

        res = node_resources(load_registry(args.plugin) if args.plugin else None)
        print(json.dumps({k: int(v) if float(v).is_integer() else v for k, v in res.items()}))
        return 0

    return Command("ray-resources", "this host's unified:<delegate> Ray resources, as JSON for "
                   "`ray start --resources` (docs/ray.md)", add_arguments, run)
