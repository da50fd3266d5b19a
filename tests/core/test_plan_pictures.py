"""Pictures of a plan (issue 13, "A picture of the plan"): Model Explorer node
data that Model Explorer's own data classes and ONNX adapter accept, and the
self-contained HTML page as headless Chromium renders it.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper

from unified.cli import main
from unified.errors import InputError
from unified.pipeline import plan_model
from unified.session import SessionOptions
from unified.visualize.model_explorer import load_errors

from ..onnx_models import graph_model

DELEGATES = "reference,onnxruntime"


def partly_named_model() -> onnx.ModelProto:
    """``y = -(relu(x) * float(shape(x)))`` with the Relu and Mul nodes unnamed:
    on reference + onnxruntime, three partitions (reference has no Shape, Cast, Neg)."""
    nodes = [
        helper.make_node("Shape", ["x"], ["s"], name="shape"),
        helper.make_node("Cast", ["s"], ["c"], name="cast", to=onnx.TensorProto.FLOAT),
        helper.make_node("Relu", ["x"], ["r"]),
        helper.make_node("Mul", ["r", "c"], ["m"]),
        helper.make_node("Neg", ["m"], ["y"], name="neg"),
    ]
    return graph_model(nodes, {"x": (np.float32, ("N", 2))})


@pytest.fixture
def model_path(tmp_path) -> Path:
    path = tmp_path / "m.onnx"
    onnx.save(partly_named_model(), path)
    return path


def _plan(path: Path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return plan_model(str(path), DELEGATES.split(","), SessionOptions(use_cache=False), execute=False, warn=False)


def _adapter_graph(path: Path):
    """Model Explorer's ONNX adapter's main graph: (graph id, {node id or tensor tag: op label})."""
    pytest.importorskip("model_explorer_onnx", reason="the explorer extra (model-explorer-onnx) is not installed")
    from model_explorer_onnx.main import ONNXAdapter

    graph = ONNXAdapter().convert(str(path), {})["graphs"][0]
    keys = {}
    for node in graph.nodes:
        keys[node.id] = node.label
        for meta in node.outputsMetadata:
            keys.update({kv.value: node.label for kv in meta.attrs if kv.key == "__tensor_tag"})
    return graph.id, keys


def _load_node_data(path: Path) -> dict:
    """Load a node data file through Model Explorer's own data classes (strict), check the round trip."""
    pytest.importorskip("model_explorer", reason="the explorer extra (ai-edge-model-explorer) is not installed")
    import dacite
    from model_explorer.node_data_builder import GraphNodeData, ModelNodeData

    raw = json.loads(path.read_text())
    graphs = {gid: dacite.from_dict(GraphNodeData, d, config=dacite.Config(strict=True)) for gid, d in raw.items()}
    again = json.loads(ModelNodeData(graphsData=graphs).to_json_string())  # adds the optional fields' defaults
    assert {gid: {k: again[gid][k] for k in d} for gid, d in raw.items()} == raw
    return graphs


def test_model_explorer_node_data_matches_the_adapter_and_the_plan(model_path, tmp_path) -> None:
    out = tmp_path / "me" / "plan.json"
    run_dir = tmp_path / "run"
    assert main(["run", str(model_path), "--delegates", DELEGATES, "--no-cache", "--profile",
                 "--output-dir", str(run_dir), "--repeat", "2"]) == 0
    rows = [  # compare rows as `unified compare` writes them; Relu is unnamed (its tensor is 'r')
        {"delegate": "reference", "tensor": "r", "producer_node": "Relu_2", "partition": 1,
         "max_abs": 0.5, "max_rel": 0.25, "cosine": 0.99, "sqnr_db": 30.0},
        {"delegate": "reference", "tensor": "m", "producer_node": "Mul_3", "partition": 1,
         "max_abs": 0.0, "max_rel": 0.0, "cosine": 1.0, "sqnr_db": float("inf")},
    ]
    (tmp_path / "errors.json").write_text(json.dumps(rows))
    assert main(["plan", str(model_path), "--delegates", DELEGATES, "--no-cache", "--model-explorer", str(out),
                 "--errors", str(tmp_path / "errors.json"), "--latency", str(run_dir / "profile.json")]) == 0
    files = sorted(p.name for p in out.parent.iterdir())
    assert files == sorted(["plan.json", "plan.delegate.json", "plan.latency_ms.json"]
                           + [f"plan.reference.{m}.json" for m in ("max_abs", "max_rel", "cosine", "sqnr_db")])

    graph_id, adapter_keys = _adapter_graph(model_path)
    planned = _plan(model_path)
    part = _load_node_data(out)
    assert list(part) == [graph_id]
    results = part[graph_id].results
    # every key is a node Model Explorer shows, of the op type the plan has there
    want = {"shape": ("Shape", 0), "cast": ("Cast", 0), "r": ("Relu", 1), "m": ("Mul", 1), "neg": ("Neg", 2)}
    assert {k: (adapter_keys[k], r.value) for k, r in results.items()} == want
    assert [p.delegate for p in planned.plan.partitions] == ["onnxruntime", "reference", "onnxruntime"]
    assert results["shape"].bgColor == results["neg"].bgColor != results["r"].bgColor

    profile = json.loads((run_dir / "profile.json").read_text())
    latency = _load_node_data(out.with_name("plan.latency_ms.json"))[graph_id].results
    ms = {p["index"]: p["total_seconds"] / p["runs"] * 1e3 for p in profile}
    assert {k: r.value for k, r in latency.items()} == pytest.approx({k: ms[v[1]] for k, v in want.items()})
    max_abs = _load_node_data(out.with_name("plan.reference.max_abs.json"))[graph_id].results
    assert {k: r.value for k, r in max_abs.items()} == {"r": 0.5, "m": 0.0}
    sqnr = _load_node_data(out.with_name("plan.reference.sqnr_db.json"))[graph_id].results
    assert {k: r.value for k, r in sqnr.items()} == {"r": 30.0}  # the infinite SQNR is left out


def test_error_rows_missing_keys_are_an_input_error(tmp_path) -> None:
    path = tmp_path / "rows.json"
    path.write_text(json.dumps([{"delegate": "tflite", "tensor": "y"}]))
    with pytest.raises(InputError, match=r"row 0 lacks \['producer_node', 'partition', 'max_abs'"):
        load_errors(path)


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.skip("headless Chromium is not installed (Debian: apt-get install -y chromium)")
    return found


def _rendered_dom(browser: str, page: Path, tmp_path: Path) -> str:
    cmd = [browser, "--headless", "--disable-gpu", "--no-sandbox", f"--user-data-dir={tmp_path / 'profile'}",
           "--dump-dom", page.resolve().as_uri()]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_html_plan_renders_every_partition_in_headless_chromium(model_path, tmp_path) -> None:
    browser = _chromium()
    page = tmp_path / "plan.html"
    assert main(["plan", str(model_path), "--delegates", DELEGATES, "--no-cache", "--explain", "--html", str(page)]) == 0
    text = page.read_text()
    assert "http://" not in text.replace("http://www.w3.org/2000/svg", "") and "https://" not in text  # no network
    dom = _rendered_dom(browser, page, tmp_path)
    # the boxes exist only if the page's script ran: the file itself has none
    drawn = re.findall(r'<g class="(partition[^"]*)" id="partition-(\d+)" data-index="\d+" '
                       r'data-delegate="([^"]+)" data-nodes="(\d+)"', dom)
    assert 'class="partition' not in text
    planned = _plan(model_path)
    assert [(int(i), d, int(n)) for _, i, d, n in drawn] == [
        (p.index, p.delegate, len(p.nodes)) for p in planned.plan.partitions
    ]
    # the islands (partitions 0 and 2, on onnxruntime) are outlined; arrows carry the boundary tensors
    assert [c for c, *_ in drawn] == ["partition island", "partition", "partition island"]
    edges = set(re.findall(r'<path class="edge" data-tensor="([^"]+)"', dom))
    assert {"c", "m", "y"} <= edges
    assert dom.count('class="island-row"') == 2
