"""Fixtures of the conformance tests: the test plugins (by path, so worker
processes can re-import them) and a few onnx-node cases."""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).parent
BROKEN = str(HERE / "broken_delegates.py")
TOY_SOURCE = str(HERE / "toy_source.py")


@pytest.fixture(scope="session")
def node_case():
    """``node_case(name) -> Case`` for one ONNX node test, e.g. ``"test_add"``."""
    from unified.conformance.node_tests import node_cases

    by_name = {c.name: c for c in node_cases()}
    return lambda name: by_name[name]
