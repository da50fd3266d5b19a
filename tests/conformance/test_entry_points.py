"""Plugin-author entry points: the pytest plugin and the onnx.backend adapter."""

from __future__ import annotations

import re
import subprocess
import sys
import unittest
from importlib import metadata

import onnx.backend.test
import pytest

from unified.conformance.onnx_backend import backend_for
from unified.conformance.workers import import_plugin

from .conftest import BROKEN


def _pytest_args() -> list[str]:
    registered = any(ep.name == "unified" for ep in metadata.entry_points(group="pytest11"))
    return [] if registered else ["-p", "unified.conformance.pytest_plugin"]


@pytest.mark.slow
def test_pytest_plugin_turns_cases_into_items(tmp_path):
    cmd = [sys.executable, "-m", "pytest", *_pytest_args(), "-p", "no:cacheprovider", "-q", "-rfs",
           "--unified-delegate", "wrong_add", "--unified-delegate", "onnxruntime", "--unified-plugin", BROKEN,
           "--unified-sources", "onnx-node", "-k", "test_add_bcast or test_relu_expanded_ver18"]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    # wrong_add: Add fails, the expanded Relu (CastLike, Max) is declined; ONNX Runtime passes both
    assert re.search(r"1 failed, 2 passed, 1 skipped", out), out
    assert "unified-conformance::wrong_add::onnx-node/test_add_bcast" in out
    assert "fail (compare) of onnx-node/test_add_bcast on wrong_add" in out


def test_pytest_plugin_is_inert_without_its_option(tmp_path):
    (tmp_path / "test_one.py").write_text("def test_one():\n    assert True\n")
    proc = subprocess.run([sys.executable, "-m", "pytest", *_pytest_args(), "-p", "no:cacheprovider", "-q"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "1 passed" in proc.stdout, proc.stdout + proc.stderr


def _outcomes(backend, pattern: str) -> dict[str, str]:
    """Run ONNX's BackendTest on the node tests matching ``pattern``; test name -> outcome."""
    bt = onnx.backend.test.BackendTest(backend, __name__)
    bt.include(pattern)
    suite = unittest.TestSuite()
    for case in bt.test_cases.values():
        suite.addTests(unittest.defaultTestLoader.loadTestsFromTestCase(case))
    with open("/dev/null", "w") as sink:
        result = unittest.TextTestRunner(stream=sink, verbosity=0).run(suite)
    out = {}
    for test, reason in result.skipped:
        if reason != "no matched include pattern":
            out[test._testMethodName] = "skipped"
    for test, _ in result.failures:
        out[test._testMethodName] = "failed"
    for test, _ in result.errors:
        out[test._testMethodName] = "error"
    return out


@pytest.mark.slow
def test_onnx_backend_test_drives_a_unified_delegate():
    assert _outcomes(backend_for("onnxruntime"), r"^test_(abs|relu|add_bcast)_cpu$") == {}


def test_onnx_backend_test_catches_a_wrong_delegate_and_skips_what_it_declines():
    backend = backend_for("wrong_add", plugins=[import_plugin(BROKEN)])
    assert _outcomes(backend, r"^test_(relu|add_bcast)_cpu$") == {"test_add_bcast_cpu": "failed", "test_relu_cpu": "skipped"}
