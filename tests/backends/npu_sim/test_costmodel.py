"""npu-sim cost model: hardware presets, traffic vs compulsory traffic,
bandwidth-limited latency, energy and roofline bookkeeping."""

from __future__ import annotations

import configparser
import math
from pathlib import Path

import onnx
import pytest

from unified.backends.npu_sim import DTYPES, HardwareConfigError, load_hardware, preset_names
from unified.backends.npu_sim.costmodel import Gemm, gemm_cycles
from unified.backends.npu_sim.workload import OpDesc, gemm_view, op_cost

SCALESIM = Path(__file__).resolve().parent / "scalesim"

# Layers of ResNet-50, MobileNetV2 and BERT-base as ONNX Conv / MatMul shapes:
# (name, x shape, w shape, attrs, y shape)
LAYERS = [
    ("rn50_conv1", (1, 3, 224, 224), (64, 3, 7, 7), {"pads": [3, 3, 3, 3], "strides": [2, 2]}, (1, 64, 112, 112)),
    ("rn50_res2a_2b", (1, 64, 56, 56), (64, 64, 3, 3), {"pads": [1, 1, 1, 1]}, (1, 64, 56, 56)),
    ("rn50_res4a_1", (1, 512, 28, 28), (1024, 512, 1, 1), {"strides": [2, 2]}, (1, 1024, 14, 14)),
    ("mbv2_dw", (1, 144, 56, 56), (144, 1, 3, 3), {"group": 144, "pads": [1, 1, 1, 1], "strides": [2, 2]}, (1, 144, 28, 28)),
    ("mbv2_expand", (1, 64, 14, 14), (384, 64, 1, 1), {}, (1, 384, 14, 14)),
    ("bert_ffn", (1, 128, 768), (768, 3072), {}, (1, 128, 3072)),
]


def _desc(layer) -> OpDesc:
    name, x, w, attrs, y = layer
    op = "MatMul" if len(w) == 2 else "Conv"
    return OpDesc(name, op, attrs, (x, w), (y,), frozenset({1}))


# --- hardware ---------------------------------------------------------------------


def test_scalesim_preset_is_scalesim_default_config():
    """The preset matches the config file frozen next to the SCALE-Sim fixture."""
    cfg = configparser.ConfigParser()
    cfg.read(SCALESIM / "scale.cfg")
    arch = cfg["architecture_presets"]
    hw = load_hardware("scalesim-32")
    assert (hw.rows, hw.cols) == (int(arch["ArrayHeight"]), int(arch["ArrayWidth"]))
    assert hw.dataflow == arch["Dataflow"].strip()
    assert hw.ifmap_sram_bytes == int(arch["IfmapSramSzkB"]) * 1024
    assert hw.filter_sram_bytes == int(arch["FilterSramSzkB"]) * 1024
    assert hw.ofmap_sram_bytes == int(arch["OfmapSramSzkB"]) * 1024
    assert cfg["run_presets"]["InterfaceBandwidth"].strip() == "CALC" and math.isinf(hw.dram_bytes_per_cycle)
    assert "int8" in hw.dtypes and DTYPES["int8"].bytes == 1


def test_published_presets():
    ethos, tpu = load_hardware("ethos-u65"), load_hardware("edgetpu")
    assert ethos.pes == 256 and ethos.sram_bytes == 384 * 1024
    assert tpu.pes == 4096 and 2 * tpu.peak_macs_per_s == pytest.approx(4.1e12, rel=0.05)
    assert set(preset_names()) >= {"scalesim-32", "ethos-u65", "edgetpu"}
    for name in preset_names():
        hw = load_hardware(name)
        assert hw.sources and hw.energy.sources, f"{name}: every figure needs a source"


@pytest.mark.parametrize(
    "edit, message",
    [
        (("dataflow = \"os\"", "dataflow = \"xs\""), "dataflow 'xs'; expected one of ['os', 'ws', 'is']"),
        (("rows = 32", "rows = 0"), "rows = 0; expected a positive integer"),
        (("bytes_per_cycle = \"unlimited\"", "bytes_per_cycle = \"fast\""), "bytes_per_cycle = 'fast'"),
        (("mac_fp16 = 2.0\n", ""), "missing [energy_pj] mac_fp16"),
        (("[array]", "[arr]"), "missing table [array]"),
    ],
)
def test_bad_hardware_toml_names_the_field(tmp_path, edit, message):
    from importlib import resources

    text = resources.files("unified.backends.npu_sim").joinpath("presets", "scalesim-32.toml").read_text()
    assert edit[0] in text
    path = tmp_path / "bad.toml"
    path.write_text(text.replace(edit[0], edit[1]))
    with pytest.raises(HardwareConfigError) as info:
        load_hardware(path)
    assert message in str(info.value)


def test_with_changes_fields_and_rejects_unknown_ones():
    hw = load_hardware("scalesim-32").with_(rows=16, cols=64, dataflow="ws")
    assert (hw.rows, hw.cols, hw.dataflow) == (16, 64, "ws")
    with pytest.raises(HardwareConfigError, match=r"unknown hardware field\(s\) \['rowz'\]"):
        hw.with_(rowz=3)


# --- GEMM view ----------------------------------------------------------------------


def test_gemm_views_of_real_layers():
    views = {layer[0]: gemm_view(_desc(layer)) for layer in LAYERS}
    assert views["rn50_conv1"] == Gemm(m=112 * 112, n=64, k=7 * 7 * 3)
    assert views["rn50_res4a_1"] == Gemm(m=196, n=1024, k=512)
    assert views["mbv2_dw"] == Gemm(m=28 * 28, n=1, k=9, groups=144)
    assert views["bert_ffn"] == Gemm(m=128, n=3072, k=768)
    t = OpDesc("t", "ConvTranspose", {"group": 2}, ((1, 8, 5, 5), (8, 3, 2, 2)), ((1, 6, 10, 10),))
    assert gemm_view(t) == Gemm(m=25, n=12, k=4, groups=2)
    bmm = OpDesc("b", "MatMul", {}, ((2, 4, 16, 8), (2, 4, 8, 16)), ((2, 4, 16, 16),))
    assert gemm_view(bmm) == Gemm(m=16, n=16, k=8, groups=8)


def test_cycles_count_folds_per_dataflow():
    # one fold each way: cycles = T + R + C - 2 - 1 (OS), 2R + C + T - 2 - 1 (WS, IS)
    assert gemm_cycles(Gemm(m=32, n=32, k=100), 32, 32, "os").cycles == 100 + 32 + 32 - 2 - 1
    assert gemm_cycles(Gemm(m=100, n=32, k=32), 32, 32, "ws").cycles == 2 * 32 + 32 + 100 - 2 - 1
    assert gemm_cycles(Gemm(m=32, n=100, k=32), 32, 32, "is").cycles == 2 * 32 + 32 + 100 - 2 - 1
    assert gemm_cycles(Gemm(m=32, n=100, k=32), 32, 32, "os").folds == 4
    assert gemm_cycles(Gemm(m=33, n=32, k=32), 32, 32, "os").folds == 2
    full = gemm_cycles(Gemm(m=3200, n=3200, k=3200), 32, 32, "os")
    assert full.mapping_efficiency == 1.0 and 0.97 < full.utilization < 1.0


# --- memory ---------------------------------------------------------------------


@pytest.mark.parametrize("preset", ["scalesim-32", "ethos-u65", "edgetpu"])
@pytest.mark.parametrize("dataflow", ["os", "ws", "is"])
def test_traffic_never_below_compulsory(preset, dataflow):
    hw = load_hardware(preset).with_(dataflow=dataflow)
    for layer in LAYERS:
        c = op_cost(_desc(layer), hw, hw.dtype("int8"))
        assert c.dram_bytes >= c.compulsory_bytes > 0, layer[0]


@pytest.mark.parametrize("dataflow", ["os", "ws", "is"])
def test_traffic_equals_compulsory_when_the_working_set_fits(dataflow):
    big = load_hardware("scalesim-32").with_(
        dataflow=dataflow, ifmap_sram_bytes=64 << 20, filter_sram_bytes=64 << 20, ofmap_sram_bytes=64 << 20
    )
    small = big.with_(ifmap_sram_bytes=16 << 10, filter_sram_bytes=16 << 10, ofmap_sram_bytes=16 << 10)
    dt = big.dtype("int8")
    for layer in LAYERS:
        _, x, w, _, y = layer
        fit = op_cost(_desc(layer), big, dt)
        assert fit.fits and fit.dram_bytes == fit.compulsory_bytes
        assert fit.compulsory_bytes == math.prod(x) + math.prod(w) + math.prod(y)
    # the large layers do not fit 16 KiB SRAMs: refetches show up
    assert any(op_cost(_desc(layer), small, dt).dram_bytes > op_cost(_desc(layer), small, dt).compulsory_bytes
               for layer in LAYERS)


@pytest.mark.parametrize("bandwidth", [0.5, 4.0, 32.0, 512.0])
@pytest.mark.parametrize("dataflow", ["os", "ws", "is"])
def test_bandwidth_limited_latency_within_10_percent(bandwidth, dataflow):
    hw = load_hardware("scalesim-32").with_(dram_bytes_per_cycle=bandwidth, dataflow=dataflow)
    for dtype in ("int8", "fp32"):
        for layer in LAYERS:
            c = op_cost(_desc(layer), hw, hw.dtype(dtype))
            bound = max(c.compute_cycles, c.dram_bytes / bandwidth)
            assert 1.0 * bound <= c.cycles <= 1.1 * bound, (layer[0], dtype, c.cycles / bound)
            assert c.stall_cycles == c.cycles - c.compute_cycles >= 0


def test_unlimited_bandwidth_never_stalls():
    hw = load_hardware("scalesim-32")
    for layer in LAYERS:
        assert op_cost(_desc(layer), hw, hw.dtype("fp16")).stall_cycles == 0


# --- energy and roofline --------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["int8", "fp16", "fp32"])
def test_energy_is_actions_times_energy_per_action(dtype):
    hw = load_hardware("scalesim-32")
    e = hw.energy
    for layer in LAYERS:
        c = op_cost(_desc(layer), hw, hw.dtype(dtype))
        want = (
            c.macs * e.mac[dtype]
            + c.vector_ops * e.vector_op[dtype]
            + c.sram_read_bytes * e.sram_read
            + c.sram_write_bytes * e.sram_write
            + c.dram_read_bytes * e.dram_read
            + c.dram_write_bytes * e.dram_write
        )
        assert c.energy_pj == pytest.approx(want)
        assert c.macs == gemm_view(_desc(layer)).macs


def test_roofline_numbers():
    hw = load_hardware("ethos-u65")
    for layer in LAYERS:
        c = op_cost(_desc(layer), hw, hw.dtype("int8"))
        assert c.intensity == pytest.approx(c.ops / c.dram_bytes)
        assert c.attainable_ops_per_cycle == pytest.approx(min(2 * hw.pes, c.intensity * hw.dram_bytes_per_cycle))
        assert c.ops / c.cycles <= c.attainable_ops_per_cycle * (1 + 1e-9)


def test_vector_and_layout_ops():
    hw = load_hardware("scalesim-32")
    dt = hw.dtype("fp32")
    relu = op_cost(OpDesc("r", "Relu", {}, ((1, 64, 10, 10),), ((1, 64, 10, 10),)), hw, dt)
    assert relu.unit == "vector" and relu.compute_cycles == 6400 // 32 and relu.macs == 0
    assert relu.dram_bytes == 2 * 6400 * 4
    flat = op_cost(OpDesc("f", "Flatten", {}, ((1, 64, 10, 10),), ((1, 6400),)), hw, dt)
    assert flat.unit == "none" and flat.cycles == 0 and flat.dram_bytes == 0
    pool = op_cost(OpDesc("p", "MaxPool", {"kernel_shape": [3, 3]}, ((1, 8, 10, 10),), ((1, 8, 8, 8),)), hw, dt)
    assert pool.vector_ops == 8 * 8 * 8 * 9


@pytest.mark.parametrize("name", ["resnet50", "inception_v2", "shufflenet", "squeezenet"])
def test_simulated_macs_of_light_models(name):
    """Every node is costed; MACs equal those counted from ONNX shape inference
    (Conv: prod(Y) x prod(W[1:]); Gemm: M x N x K)."""
    from onnx import shape_inference

    from unified.backends.npu_sim import simulate_model
    from unified.conformance import zoo

    path = zoo.light_model_path(name)
    model = shape_inference.infer_shapes(onnx.load(path))
    dims = {}
    for vi in list(model.graph.value_info) + list(model.graph.input) + list(model.graph.output):
        dims[vi.name] = tuple(d.dim_value for d in vi.type.tensor_type.shape.dim)
    for t in model.graph.initializer:
        dims[t.name] = tuple(t.dims)
    for n in model.graph.node:  # weights made by ConstantOfShape: shape from its constant input
        if n.op_type == "ConstantOfShape":
            init = next(t for t in model.graph.initializer if t.name == n.input[0])
            dims[n.output[0]] = tuple(int(v) for v in onnx.numpy_helper.to_array(init))
    want = 0
    for n in model.graph.node:
        if n.op_type == "Conv":
            want += math.prod(dims[n.output[0]]) * math.prod(dims[n.input[1]][1:])
        elif n.op_type == "Gemm":  # K is A's second dim (transA is 0 in these models)
            want += math.prod(dims[n.output[0]]) * dims[n.input[0]][1]
    report = simulate_model(str(path), "ethos-u65", "int8")
    assert len(report.ops) == len(model.graph.node)
    assert sum(o.macs for o in report.ops) == want
    t = report.totals()
    assert t["cycles"] >= t["macs"] / load_hardware("ethos-u65").pes and t["energy_pj"] > 0
