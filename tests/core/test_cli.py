"""The `unified` command line: devices, plan, run, and clean failures."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from unified.cli import main, parse_delegates


@pytest.fixture
def model_path(tmp_path):
    g = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["m"]), helper.make_node("Relu", ["m"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])],
        initializer=[helper.make_tensor("w", TensorProto.FLOAT, [4, 3], np.linspace(-1, 1, 12).tolist())],
    )
    path = tmp_path / "mm.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=10), path)
    return path


def test_devices_lists_onnxruntime_and_cpu(capsys):
    assert main(["devices"]) == 0
    out = capsys.readouterr().out
    assert "onnxruntime" in out and "ok" in out and "cpu" in out


def test_plan_table_and_json(model_path, capsys, tmp_path):
    assert main(["plan", str(model_path), "--delegates", "onnxruntime", "--cache-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "onnxruntime" in out and "MatMul" in out and "1 partition(s), 2 node(s)" in out
    assert main(["plan", str(model_path), "--delegates", "onnxruntime", "--json", "--no-cache"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["schema_version"] == 1 and plan["partitions"][0]["nodes"] == ["MatMul_0", "Relu_1"]


def test_run_with_given_input_writes_outputs_and_profile(model_path, tmp_path, capsys):
    x = np.arange(8, dtype=np.float32).reshape(2, 4) / 8
    np.save(tmp_path / "x.npy", x)
    out_dir = tmp_path / "out"
    code = main(
        ["run", str(model_path), "--delegates", "onnxruntime", "--input", f"x={tmp_path / 'x.npy'}",
         "--output-dir", str(out_dir), "--profile", "--no-cache"]
    )
    assert code == 0
    y = np.load(out_dir / "y.npy")
    w = np.linspace(-1, 1, 12, dtype=np.float32).reshape(4, 3)
    np.testing.assert_allclose(y, np.maximum(x @ w, 0), rtol=1e-6)
    prof = json.loads((out_dir / "profile.json").read_text())
    assert prof[0]["runs"] == 1 and prof[0]["delegate"] == "onnxruntime"
    assert "latency: median" in capsys.readouterr().out


def test_run_with_random_inputs(model_path, capsys):
    assert main(["run", str(model_path), "--delegates", "onnxruntime", "--no-cache", "--repeat", "3"]) == 0
    captured = capsys.readouterr()
    assert "output y: float32 [2, 3]" in captured.out and "random inputs for: x" in captured.err


def test_errors_exit_1_with_a_message_and_no_traceback(tmp_path, model_path, capsys):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not onnx at all")
    assert main(["plan", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "\nerror: could not parse" in err and "Traceback" not in err
    assert main(["run", str(model_path), "--delegates", "onnxruntime", "--input", "x=/nonexistent.npy", "--no-cache"]) == 1
    assert "cannot read '/nonexistent.npy'" in capsys.readouterr().err
    assert main(["plan", str(model_path), "--delegates", "nope"]) == 1
    assert "unknown delegate 'nope'" in capsys.readouterr().err


def test_parse_delegates():
    assert parse_delegates("tflite, onnxruntime:gpu") == ["tflite", ("onnxruntime", {"backend": "gpu"})]
    assert parse_delegates(None) is None
