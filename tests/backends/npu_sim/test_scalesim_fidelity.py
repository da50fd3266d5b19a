"""The npu-sim cost model against SCALE-Sim v3's frozen numbers.

``scalesim/expected.json`` (next to this file) holds what SCALE-Sim 3.0.0 reported
for 14 layers of ResNet-50, MobileNetV2 (with a depthwise layer) and BERT-base,
on 32x32 and 16x64 arrays, in OS, WS and IS dataflow (produced by
``scalesim/run_scalesim.py`` from ``scale.cfg`` and
``topology.csv`` in the same folder). SCALE-Sim is not run here.

Each layer enters the cost model as the ONNX node it comes from (unpadded
input, ``pads`` attribute, groups), so the test also checks the GEMM view.
Criteria: compute cycles equal, utilization within 0.1 percentage points.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from unified.backends.npu_sim import load_hardware, op_cost
from unified.backends.npu_sim.workload import OpDesc, gemm_view

FIXTURE = Path(__file__).resolve().parent / "scalesim" / "expected.json"
EXPECTED = json.loads(FIXTURE.read_text())

# topology row -> the ONNX layer: (x shape, w shape, attrs); MatMul when w is 2-D
ONNX_LAYERS = {
    "RN50_conv1": ((1, 3, 224, 224), (64, 3, 7, 7), {"pads": [3, 3, 3, 3], "strides": [2, 2]}),
    "RN50_res2a_branch2a": ((1, 64, 56, 56), (64, 64, 1, 1), {}),
    "RN50_res2a_branch2b": ((1, 64, 56, 56), (64, 64, 3, 3), {"pads": [1, 1, 1, 1]}),
    "RN50_res3a_branch2b": ((1, 128, 56, 56), (128, 128, 3, 3), {"pads": [1, 1, 1, 1], "strides": [2, 2]}),
    "RN50_res4a_branch1": ((1, 512, 28, 28), (1024, 512, 1, 1), {"strides": [2, 2]}),
    "RN50_res5c_branch2c": ((1, 512, 7, 7), (2048, 512, 1, 1), {}),
    "RN50_fc1000": ((1, 2048), (2048, 1000), {}),
    "MBV2_conv1": ((1, 3, 224, 224), (32, 3, 3, 3), {"pads": [1, 1, 1, 1], "strides": [2, 2]}),
    "MBV2_block3_DP": ((1, 144, 56, 56), (144, 1, 3, 3), {"group": 144, "pads": [1, 1, 1, 1], "strides": [2, 2]}),
    "MBV2_block3_project": ((1, 144, 28, 28), (32, 144, 1, 1), {}),
    "MBV2_block8_expand": ((1, 64, 14, 14), (384, 64, 1, 1), {}),
    "MBV2_conv_last": ((1, 320, 7, 7), (1280, 320, 1, 1), {}),
    "BERT_query": ((1, 128, 768), (768, 768), {}),
    "BERT_ffn_intermediate": ((1, 128, 768), (768, 3072), {}),
}


def _desc(name: str) -> OpDesc:
    x, w, attrs = ONNX_LAYERS[name]
    if len(w) == 2:
        return OpDesc(name, "MatMul", attrs, (x, w), (x[:-1] + (w[1],),), frozenset({1}))
    pads, strides = attrs.get("pads", [0] * 4), attrs.get("strides", [1, 1])
    out = tuple((x[2 + i] + pads[i] + pads[i + 2] - w[2 + i]) // strides[i] + 1 for i in range(2))
    return OpDesc(name, "Conv", attrs, (x, w), ((x[0], w[0]) + out,), frozenset({1}))


def test_fixture_covers_the_benchmark():
    names = [row["name"] for row in EXPECTED["topology"]]
    assert len(names) >= 12 and set(names) == set(ONNX_LAYERS)
    assert any("DP" in n for n in names) and any(n.startswith("BERT") for n in names)
    assert sorted(EXPECTED["results"]) == sorted(f"{a}_{d}" for a in ("32x32", "16x64") for d in ("os", "ws", "is"))
    assert EXPECTED["scalesim_version"] == "3.0.0" and EXPECTED["bandwidth_mode"] == "CALC"


@pytest.mark.parametrize("row", EXPECTED["topology"], ids=lambda r: r["name"])
def test_topology_row_is_the_onnx_layer(row):
    """SCALE-Sim's row and the ONNX node have the same GEMM (per channel for
    a DP row), and a convolution's IFMAP is the extent the padded conv reads
    (SCALE-Sim has no padding)."""
    s = row["stride"]
    oh = math.ceil((row["ifmap_h"] - row["filter_h"] + s) / s)  # SCALE-Sim topology_utils.py
    ow = math.ceil((row["ifmap_w"] - row["filter_w"] + s) / s)
    window = row["filter_h"] * row["filter_w"] * (1 if "DP" in row["name"] else row["channels"])
    g = gemm_view(_desc(row["name"]))
    assert (g.m, g.k, g.n) == (oh * ow, window, row["num_filter"])
    assert g.groups == (row["channels"] if "DP" in row["name"] else 1)
    x, w, attrs = ONNX_LAYERS[row["name"]]
    if len(w) == 4:
        y = _desc(row["name"]).outputs[0]
        st = attrs.get("strides", [1, 1])
        assert row["ifmap_h"] == (y[2] - 1) * st[0] + w[2] and row["ifmap_w"] == (y[3] - 1) * st[1] + w[3]


@pytest.mark.parametrize("config", sorted(EXPECTED["results"]))
def test_compute_cycles_and_utilization_match_scalesim(config):
    shape, dataflow = config.split("_")
    rows, cols = (int(v) for v in shape.split("x"))
    hw = load_hardware("scalesim-32").with_(rows=rows, cols=cols, dataflow=dataflow)
    dt = hw.dtype("int8")  # SCALE-Sim: 1-byte words
    for want in EXPECTED["results"][config]:
        got = op_cost(_desc(want["layer"]), hw, dt)
        label = f"{config} {want['layer']}"
        assert got.compute_cycles == want["compute_cycles"], label
        assert got.stall_cycles == want["stall_cycles"] == 0, label
        assert abs(100 * got.utilization - want["overall_util_pct"]) <= 0.1, label
        assert abs(100 * got.mapping_efficiency - want["mapping_efficiency_pct"]) <= 0.1, label
