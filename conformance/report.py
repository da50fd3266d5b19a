"""The conformance report's data: every result, and the numbers that matter.

A :class:`CaseResult` is one delegate on one case; a :class:`Report` is what
a run produces and what ``report.json`` holds (schema :data:`SCHEMA`, version
:data:`SCHEMA_VERSION`). Per delegate (:meth:`Report.summary`):

* cases, claimed, passed, failed, errors, unsupported, skipped, compiled;
* **false claims**: claimed, then ``fail`` or ``error`` (the suite's first
  number: a truthful ``supports()`` has none);
* op coverage: ops with at least one claimed case, and *conformant* ops,
  whose every claimed case passes (one failing case makes the op
  non-conformant, however many others pass);
* the op x dtype matrix (:meth:`Report.matrix`).
"""

from __future__ import annotations

import json
import platform
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from unified.conformance.cases import ConformanceError
from unified.records import record_dict

__all__ = ["CaseResult", "STATUSES", "Report", "DelegateSummary", "SCHEMA", "SCHEMA_VERSION", "load_report",
           "host_info"]

SCHEMA = "unified.conformance.report"
SCHEMA_VERSION = 1


STATUSES = ("pass", "fail", "error", "unsupported", "skipped", "compiled")
"""Every status a (delegate, case) pair can end in, in report order."""


@dataclass
class CaseResult:
    """The outcome of one delegate on one case.

    Attributes:
        case: the case id.
        delegate: the delegate name, or ``name:backend`` when the run named a
            backend (``coreml:mil-numpy``: the MIL evaluator, not Core ML).
        status: one of :data:`STATUSES`.
        reason: why (decline reason, error message, failing output), "" for a pass.
        phase: the step that decided it: ``availability``, ``case``,
            ``load``, ``plan``, ``compile``, ``oracle``, ``run``,
            ``compare``, ``worker`` (crash or time limit).
        seconds: wall time of the whole chain in the worker, seconds.
        partitions: number of partitions the delegate's claim was cut into.
        outputs: per output (and data set), :meth:`OutputStats.to_dict`.
        node: the Ray node id that ran it (``--ray``); "" for a local run,
            and then left out of :meth:`to_dict`.
    """

    case: str
    delegate: str
    status: str
    reason: str = ""
    phase: str = ""
    seconds: float = 0.0
    partitions: int = 0
    outputs: list[dict[str, Any]] = field(default_factory=list)
    node: str = ""

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
        """JSON-safe dict of every field (``seconds`` rounded to 0.1 ms; ``node`` only when set)."""
        return record_dict(self, skip=() if self.node else ("node",), seconds=round(self.seconds, 4))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "CaseResult":
        """The inverse of :meth:`to_dict`."""
        return cls(
            d["case"], d["delegate"], d["status"], d.get("reason", ""), d.get("phase", ""),
            float(d.get("seconds", 0.0)), int(d.get("partitions", 0)), list(d.get("outputs", [])),
            d.get("node", ""),
        )


def host_info() -> dict[str, Any]:
    """Where the run happened (for the report header)."""
    import os

    import numpy
    import onnx

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "onnx": onnx.__version__,
        "numpy": numpy.__version__,
    }


@dataclass
class DelegateSummary:
    """The numbers of one delegate (see the module docstring).

    Attributes:
        counts: status -> number of cases.
        claimed / false_claims: cases claimed; claimed cases that failed or errored.
        ops_claimed: ops with at least one claimed case.
        ops_conformant: ops whose every claimed case passed.
        false_claim_cases: ids of the false claims.
    """

    delegate: str
    cases: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    claimed: int = 0
    false_claims: int = 0
    ops_claimed: int = 0
    ops_conformant: int = 0
    false_claim_cases: list[str] = field(default_factory=list)

    def count(self, status: str) -> int:
        return self.counts.get(status, 0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "cases": self.cases,
            "counts": {s: self.count(s) for s in STATUSES},
            "claimed": self.claimed,
            "false_claims": self.false_claims,
            "ops_claimed": self.ops_claimed,
            "ops_conformant": self.ops_conformant,
            "false_claim_cases": self.false_claim_cases,
        }


@dataclass
class Report:
    """Everything one ``unified conformance run`` found.

    Attributes:
        cases: case id -> its tags (``Case.tags_dict()``).
        results: one :class:`CaseResult` per (delegate, case).
        delegates: name (or ``name:backend`` label, e.g. ``coreml:mil-numpy``) ->
            ``{"available", "executes", "reason", "version", "backend"}``.
        sources: source names run.
        created: ISO 8601 UTC time the run started.
        duration_s: wall time of the run, seconds.
        host: :func:`host_info`.
        options: the run's options (delegates, sources, pattern, timeout, jobs).
    """

    cases: dict[str, dict[str, Any]] = field(default_factory=dict)
    results: list[CaseResult] = field(default_factory=list)
    delegates: dict[str, dict[str, Any]] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)
    created: str = ""
    duration_s: float = 0.0
    host: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    unified_version: str = ""

    # --- numbers ------------------------------------------------------------

    def by_delegate(self) -> dict[str, list[CaseResult]]:
        out: dict[str, list[CaseResult]] = {d: [] for d in self.delegates}
        for r in self.results:
            out.setdefault(r.delegate, []).append(r)
        return out

    def summary(self) -> dict[str, DelegateSummary]:
        """Per delegate numbers, in delegate order."""
        out = {}
        for delegate, results in self.by_delegate().items():
            s = DelegateSummary(delegate, cases=len(results))
            s.counts = dict(Counter(r.status for r in results))
            s.claimed = sum(r.claimed for r in results)
            s.false_claim_cases = sorted(r.case for r in results if r.false_claim)
            s.false_claims = len(s.false_claim_cases)
            per_op: dict[str, list[CaseResult]] = defaultdict(list)
            for r in results:
                op = self.cases.get(r.case, {}).get("op")
                if op and r.claimed:
                    per_op[op].append(r)
            s.ops_claimed = len(per_op)
            s.ops_conformant = sum(all(r.status == "pass" for r in rs) for rs in per_op.values())
            out[delegate] = s
        return out

    def matrix(self, key: str = "group") -> dict[str, dict[str, dict[str, int]]]:
        """Row -> delegate -> status counts; rows are ``key`` tag values
        (``"group"``: op or model; ``"op_dtype"``: ``"Conv float16"``)."""
        rows: dict[str, dict[str, Counter]] = defaultdict(lambda: defaultdict(Counter))
        for r in self.results:
            tags = self.cases.get(r.case, {})
            if key == "op_dtype":
                if not tags.get("op"):
                    continue
                row = f"{tags['op']} {tags.get('dtype') or '-'}"
            else:
                row = tags.get(key) or r.case
            rows[row][r.delegate][r.status] += 1
        return {k: {d: dict(c) for d, c in v.items()} for k, v in sorted(rows.items())}

    def result(self, delegate: str, case: str) -> CaseResult | None:
        for r in self.results:
            if r.delegate == delegate and r.case == case:
                return r
        return None

    # --- JSON ---------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "schema_version": SCHEMA_VERSION,
            "unified_version": self.unified_version,
            "created": self.created,
            "duration_s": round(self.duration_s, 3),
            "host": self.host,
            "options": self.options,
            "sources": self.sources,
            "delegates": self.delegates,
            "summary": {d: s.to_dict() for d, s in self.summary().items()},
            "cases": self.cases,
            "results": [r.to_dict() for r in self.results],
        }

    def write_json(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=1, allow_nan=False, default=_json_default))
        return path

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Report":
        """Rebuild a report from ``report.json`` data.

        Raises:
            ConformanceError: not a conformance report, or another schema version.
        """
        if d.get("schema") != SCHEMA:
            raise ConformanceError(f"not a unified conformance report (schema {d.get('schema')!r}, expected {SCHEMA!r})")
        if d.get("schema_version") != SCHEMA_VERSION:
            raise ConformanceError(
                f"report schema version {d.get('schema_version')!r} is not {SCHEMA_VERSION}; "
                "re-run `unified conformance run` with this version of unified"
            )
        return cls(
            cases=dict(d.get("cases", {})),
            results=[CaseResult.from_dict(r) for r in d.get("results", [])],
            delegates=dict(d.get("delegates", {})),
            sources=list(d.get("sources", [])),
            created=d.get("created", ""),
            duration_s=float(d.get("duration_s", 0.0)),
            host=dict(d.get("host", {})),
            options=dict(d.get("options", {})),
            unified_version=d.get("unified_version", ""),
        )


def _json_default(x: Any) -> Any:
    import numpy as np

    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, (set, frozenset, tuple)):
        return list(x)
    return str(x)


def load_report(path: str | Path) -> Report:
    """Read a ``report.json``.

    Raises:
        ConformanceError: missing, unreadable, or not a report of this schema.
    """
    p = Path(path)
    try:
        data = json.loads(p.read_text())
    except FileNotFoundError:
        raise ConformanceError(f"report '{p}' does not exist; expected a report.json from `unified conformance run`") from None
    except (OSError, ValueError) as exc:
        raise ConformanceError(f"cannot read '{p}' as JSON: {exc}") from None
    return Report.from_dict(data)
