"""Conformance: does each delegate give the right numbers, and claim only what it can do?

A *case* is an ONNX model, inputs, expected outputs (given, or computed by an
oracle: ONNX Runtime by default) and a tolerance. For every delegate x case
the runner asks the planner, strict, whether the delegate claims the whole
case graph; if so it compiles and runs it in a worker process with a time
limit and compares. Statuses: ``pass``, ``fail``, ``error``,
``unsupported``, ``skipped``, ``compiled``. Reports: JSON, JUnit XML,
Markdown and a self-contained HTML matrix (``unified conformance run``).

Heavy parts (onnx's node-test generators, torch nets) load only when a
source is listed; ``import unified.conformance`` stays cheap.
"""

from unified.conformance.cases import (
    Case,
    CaseData,
    CaseSource,
    ConformanceError,
    StaticCase,
    gather_cases,
    oracle_outputs,
)
from unified.conformance.compare import OutputStats, Tolerance, compare_outputs
from unified.conformance.diff import diff_reports
from unified.conformance.execute import execute_case
from unified.conformance.report import STATUSES, CaseResult, Report, load_report
from unified.conformance.render import write_reports
from unified.conformance.runner import run_conformance

__all__ = [
    # cases
    "Case",
    "CaseData",
    "CaseSource",
    "StaticCase",
    "oracle_outputs",
    # running and comparing
    "gather_cases",
    "run_conformance",
    "execute_case",
    "CaseResult",
    "STATUSES",
    "Tolerance",
    "OutputStats",
    "compare_outputs",
    # reports
    "Report",
    "load_report",
    "write_reports",
    "diff_reports",
    # errors
    "ConformanceError",
]
