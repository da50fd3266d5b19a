"""pytest plugin: the conformance suite as ordinary test items.

Registered as the ``pytest11`` entry point ``unified``; it does nothing unless
``--unified-delegate`` is given::

    pytest --unified-delegate mydelegate [--unified-sources onnx-node,ops]
           [--unified-fast] [--unified-plugin my_pkg.plugin] [-k Conv]

Each case becomes one item named ``<delegate>::<case id>`` (so ``-k`` selects
by op or case). ``pass`` passes; ``fail`` and ``error`` fail with the
reason and the per-output error statistics; ``unsupported``, ``skipped``
and ``compiled`` are skipped with their reason. Items run in the pytest
process (use pytest-xdist's ``--forked``-style isolation, or
``unified conformance run``, when a delegate may crash).
"""

from __future__ import annotations

from typing import Any

import pytest

_OPT = "unified_delegate"


def pytest_addoption(parser: pytest.Parser) -> None:
    from unified.conformance.cases import selection_options

    group = parser.getgroup("unified", "unified conformance suite")
    group.addoption("--unified-delegate", action="append", default=[], metavar="NAME",
                    help="run the unified conformance cases on this delegate (repeatable)")
    for name, kw in selection_options(default_sources="onnx-node,ops").items():
        group.addoption(f"--unified-{name}", **kw)


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption(_OPT):
        config.addinivalue_line("markers", "unified_conformance: a unified conformance case")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list) -> None:
    delegates = config.getoption(_OPT)
    if not delegates:
        return
    from unified.conformance.cases import gather_cases

    sources = [s.strip() for s in config.getoption("unified_sources").split(",") if s.strip()]
    plugins = config.getoption("unified_plugin")
    _, cases = gather_cases(sources, None, plugins, fast=config.getoption("unified_fast"))
    # added before pytest's own -k/-m deselection runs (tryfirst), so those apply as usual
    items.extend(
        ConformanceItem.from_parent(session, name=f"{d}::{c.id}", nodeid=f"unified-conformance::{d}::{c.id}",
                                    delegate=d, case=c, plugins=plugins)
        for d in delegates for c in cases
    )


class ConformanceFailure(Exception):
    """A claimed case that failed or errored."""


class ConformanceItem(pytest.Item):
    """One (delegate, case)."""

    def __init__(self, *, delegate: str, case: Any, plugins: list, **kw: Any):
        super().__init__(**kw)
        self.delegate = delegate
        self.case = case
        self.plugins = plugins
        self.add_marker("unified_conformance")
        self.result = None

    def runtest(self) -> None:
        from unified.conformance.execute import execute_case
        from unified.conformance.workers import load_registry

        self.result = r = execute_case(load_registry(self.plugins), self.delegate, self.case)
        if r.status in ("unsupported", "skipped", "compiled"):
            pytest.skip(f"{r.status}: {r.reason}")
        if r.status != "pass":
            raise ConformanceFailure(r)

    def repr_failure(self, excinfo, style=None) -> str:
        if isinstance(excinfo.value, ConformanceFailure):
            r = excinfo.value.args[0]
            lines = [f"{r.status} ({r.phase}) of {r.case} on {r.delegate}: {r.reason}"]
            for o in r.outputs:
                lines.append(
                    f"  {o['name']}: {'ok' if o['passed'] else 'MISMATCH'} max_abs={o['max_abs']} "
                    f"max_rel={o['max_rel']} max_ulp={o['max_ulp']} mismatches={o['mismatches']}/{o['size']}"
                )
            return "\n".join(lines)
        return super().repr_failure(excinfo, style)

    def reportinfo(self):
        return "unified-conformance", None, f"{self.delegate}::{self.case.id}"
