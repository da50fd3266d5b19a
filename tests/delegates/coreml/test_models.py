"""Whole models compile to Core ML on any OS: every light_*.onnx architecture
(weights re-drawn) and the MiniLM export, with ``strict=True`` (no node left to
another delegate), to ``.mlpackage`` files whose spec loads with
``MLModel(path, skip_model_load=True)`` and whose I/O matches the ONNX model.

The expected signature is read from the ONNX model here, independently of the
delegate: Core ML names are the ONNX names with characters outside
``[A-Za-z0-9_]`` replaced by ``_`` (coremltools' sanitizer rule), float32 stays
FLOAT32, int64 becomes INT32, fixed dims stay (MiniLM's symbolic dims are
pinned first: the delegate compiles static shapes).
"""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

import onnx
import pytest

from unified.compiler import compile_plan
from unified.conformance.zoo import LIGHT_MODELS
from unified.graph import Graph
from unified.planner import DelegateChoice, make_plan
from unified.plugins import registry

_CORE_ML_TYPES = {onnx.TensorProto.FLOAT: "FLOAT32", onnx.TensorProto.INT64: "INT32", onnx.TensorProto.INT32: "INT32"}


def _available_gib() -> float:
    try:
        with open("/proc/meminfo") as f:
            fields = dict(line.split(":", 1) for line in f)
        return int(fields["MemAvailable"].split()[0]) / 2**20
    except (OSError, KeyError, ValueError):
        return float("inf")


def _compile_strict(model: onnx.ModelProto, free_dimensions: dict[str, int] | None = None):
    """Plan with coreml alone and strict (no fallback), compile; nothing executes.

    coreml compiles static shapes (``static_shapes``): symbolic dims are pinned
    with ``free_dimensions`` first, as a session specializes them at run time.
    """
    coreml = registry().get("coreml")
    graph = Graph(model, free_dimensions)
    plan = make_plan(graph, [DelegateChoice(coreml, "ane", {})], None, strict=True)
    assert plan.node_counts() == {"coreml": len(graph.nodes)}
    (compiled,) = compile_plan(graph, plan, {"coreml": coreml}, {"coreml": {}}, None)
    return graph, compiled


def _check_signature(graph: Graph, partition: onnx.ModelProto, blob: bytes, tmp_path: Path) -> None:
    """The package's I/O against the ONNX partition (inputs in the partition's
    order, which follows first use) and the same names as the whole model's."""
    import coremltools as ct
    from coremltools.proto import FeatureTypes_pb2

    with zipfile.ZipFile(io.BytesIO(blob)) as zf:
        zf.extractall(tmp_path)
    spec = ct.models.MLModel(str(tmp_path / "model.mlpackage"), skip_model_load=True).get_spec()
    assert spec.WhichOneof("Type") == "mlProgram"
    name = lambda s: re.sub(r"[^A-Za-z0-9_]", "_", s)  # noqa: E731
    dtype = lambda f: FeatureTypes_pb2.ArrayFeatureType.ArrayDataType.Name(f.type.multiArrayType.dataType)  # noqa: E731
    inits = {t.name for t in partition.graph.initializer}
    inputs = [i for i in partition.graph.input if i.name not in inits]
    assert sorted(i.name for i in inputs) == sorted(i.name for i in graph.inputs)
    assert [o.name for o in partition.graph.output] == [o.name for o in graph.outputs]
    assert [f.name for f in spec.description.input] == [name(i.name) for i in inputs]
    assert [f.name for f in spec.description.output] == [name(o.name) for o in graph.outputs]
    for f, vi in zip(spec.description.input, inputs):
        assert dtype(f) == _CORE_ML_TYPES[vi.type.tensor_type.elem_type]
        dims = [d.dim_value if d.HasField("dim_value") else None for d in vi.type.tensor_type.shape.dim]
        arr = f.type.multiArrayType
        if arr.HasField("shapeRange"):
            ranges = [(r.lowerBound, r.upperBound) for r in arr.shapeRange.sizeRanges]
        else:  # a fixed shape has no range
            ranges = [(d, d) for d in arr.shape]
        assert ranges == [(d, d) if d is not None else (1, 512) for d in dims]
    for f, vo in zip(spec.description.output, graph.outputs):
        assert dtype(f) == _CORE_ML_TYPES[vo.type.tensor_type.elem_type]


@pytest.mark.slow
@pytest.mark.parametrize("name", LIGHT_MODELS)
def test_light_model_compiles_to_a_verified_mlpackage(name, light, tmp_path) -> None:
    if name == "vgg19" and _available_gib() < 8:
        pytest.skip(f"vgg19 (550 MB of weights) needs ~6 GiB to convert; {_available_gib():.1f} GiB available")
    graph, compiled = _compile_strict(light(name))
    exe = compiled.executable
    assert exe.details["verified"] == "structure" and exe.details["mil_ops"] > 0
    _check_signature(graph, compiled.model, exe.serialize(), tmp_path)


@pytest.mark.slow
def test_minilm_compiles_to_a_verified_mlpackage(tmp_path) -> None:
    nets = pytest.importorskip("unified.conformance.nets")
    try:
        model = nets.minilm()
    except Exception as exc:  # the offline weights package or sentence-transformers is missing
        pytest.skip(f"MiniLM export unavailable here: {type(exc).__name__}: {exc}")
    dims = {d.dim_param for i in model.graph.input for d in i.type.tensor_type.shape.dim if d.dim_param}
    graph, compiled = _compile_strict(model, {d: 16 if "seq" in d else 1 for d in dims})
    assert sorted(i.name for i in graph.inputs) == ["attention_mask", "input_ids", "token_type_ids"]
    _check_signature(graph, compiled.model, compiled.executable.serialize(), tmp_path)
