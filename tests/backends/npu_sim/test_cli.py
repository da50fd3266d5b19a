"""``unified simulate``: table, JSON, CSV and roofline PNG."""

from __future__ import annotations

import csv
import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from unified.backends.npu_sim import simulate_model
from unified.cli import main


@pytest.fixture
def model_path(tmp_path):
    rng = np.random.default_rng(0)
    g = helper.make_graph(
        [
            helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
            helper.make_node("Relu", ["c"], ["r"]),
            helper.make_node("Flatten", ["r"], ["f"]),
            helper.make_node("MatMul", ["f", "m"], ["y"]),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 10])],
        initializer=[
            numpy_helper.from_array(rng.normal(size=(8, 4, 3, 3)).astype(np.float32), "w"),
            numpy_helper.from_array(rng.normal(size=(512, 10)).astype(np.float32), "m"),
        ],
    )
    path = tmp_path / "net.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=10), path)
    return path


def test_simulate_writes_table_json_csv_and_roofline(model_path, tmp_path, capsys):
    out = tmp_path / "sim"
    assert main(["simulate", str(model_path), "--hw", "scalesim-32", "--dtype", "int8", "--out", str(out),
                 "--dim", "batch=3"]) == 0
    text = capsys.readouterr().out
    assert "GEMM MxNxK" in text and "192x8x36" in text and "inferences/s" in text
    doc = json.loads((out / "net.json").read_text())
    want = simulate_model(str(model_path), "scalesim-32", "int8", dims={"batch": 3})
    assert doc["totals"]["cycles"] == want.cycles
    assert [o["gemm"] for o in doc["ops"]] == ["192x8x36", "", "", "3x10x512"]
    rows = list(csv.DictReader((out / "net.csv").open()))
    assert [r["op_type"] for r in rows] == ["Conv", "Relu", "Flatten", "MatMul"]
    assert int(rows[0]["cycles"]) == doc["ops"][0]["cycles"]
    assert (out / "net_roofline.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_simulate_accepts_a_toml_file_and_overrides(model_path, tmp_path, capsys):
    from importlib import resources

    text = resources.files("unified.backends.npu_sim").joinpath("presets", "scalesim-32.toml").read_text()
    custom = tmp_path / "mine.toml"
    custom.write_text(text.replace('name = "scalesim-32"', 'name = "mine"').replace('bytes_per_cycle = "unlimited"', "bytes_per_cycle = 2"))
    out = tmp_path / "o"
    assert main(["simulate", str(model_path), "--hw", str(custom), "--array", "16x64", "--dataflow", "ws",
                 "--out", str(out), "--no-png"]) == 0
    doc = json.loads((out / "net.json").read_text())
    assert doc["hardware"]["name"] == "mine"
    assert (doc["hardware"]["rows"], doc["hardware"]["cols"], doc["hardware"]["dataflow"]) == (16, 64, "ws")
    assert doc["hardware"]["dram_bytes_per_cycle"] == 2
    assert doc["totals"]["stall_cycles"] > 0
    assert not (out / "net_roofline.png").exists()


def test_simulate_unknown_preset_fails_cleanly(model_path, capsys):
    assert main(["simulate", str(model_path), "--hw", "nope"]) == 1
    assert "unknown hardware 'nope'" in capsys.readouterr().err
