"""The README's "Writing a delegate plugin" example, copied verbatim into a
package, installed with its entry point (into a private folder, so no other
test sees it), then used as a newcomer would: ``unified devices`` lists it, a
session places its op on it and matches ONNX Runtime, and ``unified
conformance run --delegates my_npu`` reports it with 0 false claims."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


def _snippet(text: str, opening: str) -> str:
    """The fenced block of README.md whose first line is ``opening``."""
    blocks = re.findall(r"```(?:python|toml)\n(.*?)```", text, re.S)
    found = [b for b in blocks if b.startswith(opening)]
    assert found, f"README.md has no code block starting with {opening!r}"
    return found[0]


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict[str, str]:
    text = README.read_text()
    src = tmp_path_factory.mktemp("my_npu_src")
    (src / "my_npu").mkdir()
    (src / "my_npu" / "__init__.py").write_text(_snippet(text, "# my_npu/__init__.py"))
    (src / "pyproject.toml").write_text(_snippet(text, "# pyproject.toml of the plugin")
                                        + "\n[tool.setuptools]\npackages = [\"my_npu\"]\n")
    target = tmp_path_factory.mktemp("site")
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target", str(target),
         str(src)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    env = {k: v for k, v in os.environ.items() if k != "UNIFIED_DISABLE_PLUGIN_AUTOLOAD"}
    env["PYTHONPATH"] = str(target) + os.pathsep + env.get("PYTHONPATH", "")
    env["OPENBLAS_NUM_THREADS"] = "1"
    return env


def _unified(env, *args, timeout=600) -> subprocess.CompletedProcess:
    cli = Path(sys.executable).with_name("unified")
    return subprocess.run([str(cli), *args], capture_output=True, text=True, env=env, timeout=timeout)


def test_devices_lists_the_plugin(installed):
    proc = _unified(installed, "devices")
    assert proc.returncode == 0, proc.stderr
    (row,) = [ln for ln in proc.stdout.splitlines() if ln.startswith("my_npu ")]
    assert row.split()[:4] == ["my_npu", "ok", "1.0", "npu"]


_SESSION = r"""
import json, numpy as np, onnx, onnxruntime as ort, unified
from onnx import helper, TensorProto
g = helper.make_graph(
    [helper.make_node("Sigmoid", ["x"], ["s"], name="sigmoid"), helper.make_node("Relu", ["s"], ["r"], name="relu"),
     helper.make_node("Neg", ["r"], ["n"], name="neg"), helper.make_node("Relu", ["n"], ["y"], name="relu2")],
    "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 8])],
    [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 8])])
m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)
x = np.random.default_rng(0).standard_normal((2, 8)).astype(np.float32)
sess = unified.InferenceSession(m)  # the default delegates: my_npu has priority 15
got = sess.run(None, {"x": x})[0]
want = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
try:
    unified.InferenceSession(m, [("my_npu", {"clock_mhz": "fast"})])
    bad = ""
except unified.UnifiedError as exc:
    bad = str(exc)
print(json.dumps({"assignment": sess.plan.assignment(), "err": float(np.abs(got - want).max()), "bad": bad}))
"""


def test_a_session_places_its_op_on_the_plugin_and_matches_ort(installed):
    proc = subprocess.run([sys.executable, "-c", _SESSION], capture_output=True, text=True, env=installed, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["assignment"]["relu"] == "my_npu" and out["assignment"]["relu2"] == "my_npu"
    assert out["err"] == 0.0
    assert out["bad"] == "option 'clock_mhz' of delegate 'my_npu' must be int, got str 'fast'"


def test_conformance_reports_the_plugin_with_no_false_claim(installed, tmp_path):
    proc = _unified(installed, "conformance", "run", "--delegates", "my_npu", "--sources", "onnx-node,ops",
                    "-k", "relu", "--jobs", "1", "--no-progress", "--fail-on-false-claims", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((tmp_path / "report.json").read_text())["summary"]["my_npu"]
    assert summary["false_claims"] == 0
    assert summary["counts"].get("pass", 0) >= 1  # it claimed Relu cases and passed them
