"""Conformance cases: an ONNX model, inputs, expected outputs, a tolerance, tags.

A :class:`Case` is cheap to list and to send to a worker process: it holds
its tags and a *loader*, a picklable zero-argument callable (a module-level
function, a ``functools.partial`` of one, or a :class:`StaticCase`) that
builds the heavy part, :class:`CaseData`, where it is needed. Expected
outputs are either given by the source (the ONNX node tests ship them) or
computed by an *oracle* (:func:`oracle_outputs`): ONNX Runtime called
directly by default, ``onnx.reference.ReferenceEvaluator`` as an option.

Sources are :class:`CaseSource` collections contributed through the
``unified_conformance_cases`` hook; :func:`collect_sources` gathers them from
the plugin registry, :func:`select_cases` filters them by name, and
:func:`gather_cases` does both (the CLI and the pytest plugin call it).
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

import onnx

from unified.conformance.compare import Tolerance
from unified.errors import UnifiedError
from unified.onnx.dtypes import numpy_name
from unified.records import record_dict

__all__ = [
    "Case",
    "CaseData",
    "CaseSource",
    "StaticCase",
    "ORACLES",
    "oracle_outputs",
    "collect_sources",
    "select_cases",
    "gather_cases",
    "selection_options",
    "dtype_name",
    "ConformanceError",
]

ORACLES = ("onnxruntime", "reference")
"""Oracle names: ONNX Runtime (CPU EP, called directly) and
``onnx.reference.ReferenceEvaluator`` (the ONNX spec's Python implementation)."""


class ConformanceError(UnifiedError):
    """A conformance case, source, report or command-line argument is invalid."""


dtype_name = numpy_name  # reports name dtypes as NumPy does: "float32"


@dataclass
class CaseData:
    """The heavy part of a case, built by its loader.

    Attributes:
        model: the case graph.
        data_sets: one or more ``(inputs, expected)`` pairs; ``inputs`` maps
            every graph input name (initializers excluded) to an array;
            ``expected`` is a list with one entry per graph output, in order
            (arrays, lists of arrays for sequence outputs, None for an empty
            optional), or None when the oracle must compute it.
        tolerance: a tolerance known only once the case is built (a
            quantized model's output step is the scale of its last
            ``DequantizeLinear``); None keeps ``Case.tolerance``.
    """

    model: onnx.ModelProto
    data_sets: list[tuple[dict[str, Any], list | None]]
    tolerance: Tolerance | None = None


@dataclass(frozen=True)
class StaticCase:
    """A loader that already holds its data (serialized model and arrays).

    Used for small cases (node tests, op sweeps) whose data is cheap to send
    to a worker process.
    """

    model_bytes: bytes
    data_sets: tuple[tuple[dict[str, Any], list | None], ...]

    def __call__(self) -> CaseData:
        return CaseData(onnx.load_from_string(self.model_bytes), [(dict(i), e) for i, e in self.data_sets])


@dataclass(frozen=True)
class Case:
    """One conformance case.

    Attributes:
        id: unique, ``"<source>/<name>"``, e.g. ``"onnx-node/test_abs"``.
        source: the source's name, e.g. ``"onnx-node"``.
        loader: picklable zero-argument callable returning :class:`CaseData`;
            it runs in the worker process.
        op: the operator under test (``"Conv"``), or None for whole models.
        domain: the operator's ONNX domain (``""`` for ai.onnx).
        opset: the opset version imported for that domain.
        dtype: element type of the operator's first input (``"float32"``),
            the column of the op x dtype matrix; for models, the first
            graph input's.
        dtypes: every input and output element type of the case graph.
        group: the row of the op x delegate matrix: ``op`` for op cases,
            ``"model:<name>"`` for whole models.
        tolerance: case override of the dtype profile (see
            ``unified.conformance.compare``), or None.
        oracle: ``"onnxruntime"`` or ``"reference"`` when the source gives
            no expected outputs; ignored when it does.
        timeout: per-case time limit in seconds, or None for the runner's.
        tags: free-form extra labels (e.g. ``("qdq", "int8")``).
        compare_values: False compares only output shapes and dtypes (random
            ops such as training-mode Dropout).
    """

    id: str
    source: str
    loader: Callable[[], CaseData] = field(repr=False, compare=False)
    op: str | None = None
    domain: str = ""
    opset: int = 0
    dtype: str = ""
    dtypes: tuple[str, ...] = ()
    group: str = ""
    tolerance: Tolerance | None = None
    oracle: str = "onnxruntime"
    timeout: float | None = None
    tags: tuple[str, ...] = ()
    compare_values: bool = True

    @property
    def name(self) -> str:
        return self.id.split("/", 1)[-1]

    def tags_dict(self) -> dict[str, Any]:
        """JSON-safe description (everything but the id, loader and timeout)."""
        return record_dict(
            self, skip=("id", "loader", "timeout"),
            dtypes=list(self.dtypes), group=self.group or (self.op or self.name),
            tolerance=None if self.tolerance is None else self.tolerance.to_dict(), tags=list(self.tags),
        )


@dataclass(frozen=True)
class CaseSource:
    """A named collection of cases, as a plugin contributes it.

    Attributes:
        name: e.g. ``"onnx-node"``; the ``--sources`` word.
        description: one line for reports.
        cases: called once to list the cases (may take seconds: the ONNX
            node tests are generated on the fly).
        fast: a callable giving the ids of a small representative subset
            (for ``--fast`` and CI), or None for "every case".
    """

    name: str
    description: str
    cases: Callable[[], Sequence[Case]]
    fast: Callable[[Sequence[Case]], Sequence[Case]] | None = None


def collect_sources(names: Sequence[str] | None = None, plugins: Iterable[Any] = ()) -> dict[str, CaseSource]:
    """Gather the case sources from every plugin (``unified_conformance_cases``).

    Args:
        names: sources wanted, or None for all.
        plugins: extra plugin objects (or import paths) to register first.

    Returns:
        Source name -> :class:`CaseSource`, in the order asked for.

    Raises:
        ConformanceError: an unknown source name (lists the known ones), or
            a plugin returning something other than ``CaseSource`` objects.
    """
    from unified.conformance.workers import load_registry

    reg = load_registry(plugins)
    found: dict[str, CaseSource] = {}
    for batch in reg.pm.hook.unified_conformance_cases(sources=list(names) if names else None):
        for src in batch or []:
            if not isinstance(src, CaseSource):
                raise ConformanceError(
                    f"a unified_conformance_cases hook returned {src!r}; expected unified.conformance.CaseSource"
                )
            found.setdefault(src.name, src)
    if names is None:
        return found
    unknown = [n for n in names if n not in found]
    if unknown:
        every = {s.name for batch in reg.pm.hook.unified_conformance_cases(sources=None) for s in batch or []}
        raise ConformanceError(
            f"unknown conformance source(s) {unknown}; available: {', '.join(sorted(every)) or 'none'}"
        )
    return {n: found[n] for n in names}


def select_cases(cases: Sequence[Case], pattern: str | None) -> list[Case]:
    """Cases whose id, op or group matches ``pattern``, like ``pytest -k``.

    ``pattern`` is a whitespace- or comma-separated list of alternatives;
    each is a shell glob (``"onnx-node/test_conv*"``) or, when it has no
    glob characters, a case-insensitive substring. None keeps every case.
    """
    if not pattern:
        return list(cases)
    alts = [p for p in re.split(r"[\s,]+", pattern) if p]
    out = []
    for c in cases:
        keys = [c.id, c.op or "", c.group]
        for a in alts:
            if any(ch in a for ch in "*?["):
                hit = any(fnmatch.fnmatchcase(k, a) for k in keys)
            else:
                hit = any(a.lower() in k.lower() for k in keys)
            if hit:
                out.append(c)
                break
    return out


def gather_cases(
    sources: Sequence[str] | None = None,
    pattern: str | None = None,
    plugins: Iterable[Any] = (),
    fast: bool = False,
) -> tuple[list[str], list[Case]]:
    """List the cases of ``sources`` (all when None) matching ``pattern``.

    Args:
        sources: source names (see :func:`collect_sources`); None: all.
        pattern: see :func:`select_cases`; None keeps every case.
        plugins: extra plugin objects or import specs to register first.
        fast: keep only each source's fast subset plus the committed cases
            that cover every op x delegate pair of the last full run
            (``unified.conformance.fast``), for CI.

    Returns:
        (source names, cases), cases in source order.

    Raises:
        ConformanceError: unknown source, or duplicate case ids.
    """
    from unified.conformance.fast import fast_case_ids

    found = collect_sources(sources, plugins)
    cases: list[Case] = []
    claimed_once = fast_case_ids() if fast else frozenset()
    for src in found.values():
        listed = list(src.cases())
        if fast and src.fast is not None:
            own = {c.id for c in src.fast(listed)}
            listed = [c for c in listed if c.id in own or c.id in claimed_once]
        cases.extend(listed)
    seen: set[str] = set()
    for c in cases:
        if c.id in seen:
            raise ConformanceError(f"duplicate conformance case id {c.id!r}; case ids must be unique")
        seen.add(c.id)
    return list(found), select_cases(cases, pattern)


def selection_options(default_sources: str | None = None) -> dict[str, dict[str, Any]]:
    """The options that choose the cases (the ``sources``, ``fast`` and
    ``plugins`` of :func:`gather_cases`), one set for every front end:
    ``unified conformance run|list`` adds them as ``--NAME``, the pytest
    plugin as ``--unified-NAME``.

    Args:
        default_sources: the comma-separated sources used when none are
            given; None: every source.

    Returns:
        Option name -> ``argparse`` keywords (pytest's ``addoption`` takes the same).
    """
    return {
        "sources": {"default": default_sources, "metavar": "A,B",
                    "help": f"comma-separated sources (default: {default_sources or 'all'}), e.g. onnx-node,ops,models"},
        "fast": {"action": "store_true", "help": "only each source's fast subset (what CI runs)"},
        "plugin": {"action": "append", "default": [], "metavar": "SPEC",
                   "help": "extra plugin to load: package.module[:attr] or path/to/file.py[:attr] (repeatable)"},
    }


# --- oracles -----------------------------------------------------------------


def oracle_outputs(model: onnx.ModelProto, inputs: Mapping[str, Any], oracle: str = "onnxruntime") -> list:
    """Expected outputs of ``model`` on ``inputs``, from an independent engine.

    Args:
        model: the case graph (not modified).
        inputs: graph input name -> array.
        oracle: ``"onnxruntime"`` (CPU EP, all graph optimizations off so the
            kernels themselves answer) or ``"reference"``
            (``onnx.reference.ReferenceEvaluator``).

    Returns:
        One value per graph output, in order.

    Raises:
        ConformanceError: unknown oracle name, or the oracle failed (the
            message carries its error).
    """
    if oracle == "onnxruntime":
        import onnxruntime as ort

        m = onnx.ModelProto()
        m.CopyFrom(model)
        m.ir_version = _ir_for_ort(m)
        so = ort.SessionOptions()
        so.log_severity_level = 3
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        try:
            sess = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
            return sess.run(None, dict(inputs))
        except Exception as exc:
            raise ConformanceError(f"oracle onnxruntime failed: {type(exc).__name__}: {_short(exc)}") from None
    if oracle == "reference":
        from onnx.reference import ReferenceEvaluator

        try:
            return list(ReferenceEvaluator(model).run(None, dict(inputs)))
        except Exception as exc:
            raise ConformanceError(f"oracle reference failed: {type(exc).__name__}: {_short(exc)}") from None
    raise ConformanceError(f"unknown oracle {oracle!r}; expected one of {', '.join(ORACLES)}")


def _ir_for_ort(model: onnx.ModelProto) -> int:
    """The IR version to write so ONNX Runtime reads the model.

    onnx 1.23 writes IR 14, ONNX Runtime 1.31 reads at most 13 (DESIGN.md,
    "Known pitfall"). IR 10 covers every ai.onnx opset up to 22; newer opsets
    get the lowest IR that knows them (``onnx.helper.VERSION_TABLE``).
    """
    from unified.partition import min_ir_version_for

    return min(model.ir_version, max(10, min_ir_version_for(model)))


def _short(exc: BaseException, limit: int = 600) -> str:
    return " ".join(str(exc).split())[:limit]
