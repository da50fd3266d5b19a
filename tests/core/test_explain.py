"""``unified plan --explain`` (issue 13, "Fragmentation explained"): islands of
nodes off the preferred delegate, why, what crosses their boundaries, and the
rewrite that removes them, whose predicted partition count the tests check
by applying the rewrite themselves and planning again.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper, version_converter

from unified import InferenceSession, OpSupport, SessionOptions
from unified.cli import main
from unified.errors import InputError
from unified.explain import _dim_value, explain
from unified.pipeline import plan_model

from ..onnx_models import graph_model, rand
from .toy_delegate import ToyDelegate, ToyPlugin

BANDWIDTH = 8e9  # bytes/s, given so the expected seconds are exact


def _options(*toys, **kw) -> SessionOptions:
    return SessionOptions(plugins=[ToyPlugin(*toys)], use_cache=False, **kw)


def shape_scaled_model() -> onnx.ModelProto:
    """``y = -(relu(x) * float(shape(x)))``, x float32 [N, 2]: Shape and Cast
    compute from the symbolic dim N, so pinning N folds them away."""
    nodes = [
        helper.make_node("Shape", ["x"], ["s"], name="shape"),
        helper.make_node("Cast", ["s"], ["c"], name="cast", to=onnx.TensorProto.FLOAT),
        helper.make_node("Relu", ["x"], ["r"], name="relu"),
        helper.make_node("Mul", ["r", "c"], ["m"], name="mul"),
        helper.make_node("Neg", ["m"], ["y"], name="neg"),
    ]
    return graph_model(nodes, {"x": (np.float32, ("N", 2))})


def test_island_reasons_boundaries_and_pinned_dims_rewrite() -> None:
    model = shape_scaled_model()
    options = _options()
    ex = explain(model, ["toy", "onnxruntime"], options, bandwidth=BANDWIDTH)
    assert (ex.preferred, ex.partitions, ex.nodes, ex.preferred_nodes) == ("toy", 2, 5, 3)
    assert ex.dims == {"N": 1}  # N is only a leading axis: a batch
    [island] = ex.islands
    assert island.nodes == ("shape", "cast") and island.delegates == ("onnxruntime",)
    assert [(op, n) for op, _, n in island.reasons] == [("Shape", 1), ("Cast", 1)]
    assert all("no kernel for op" in why for _, why, _ in island.reasons)
    assert island.inputs == ()  # x is a model input: it crosses anyway
    [out] = island.outputs
    assert (out.tensor, out.dtype, out.shape, out.bytes) == ("c", "float32", (2,), 8)  # float32[2]
    assert island.seconds == pytest.approx(8 / BANDWIDTH)
    rw = island.rewrite
    assert (rw.kind, rw.free_dimensions, rw.partitions_before, rw.partitions_after) == ("free_dims", {"N": 1}, 2, 1)
    assert rw.cli == "--free-dim N=1"

    # apply it as a user would, and plan again: the predicted count, everything on toy
    pinned = SessionOptions(plugins=options.plugins, use_cache=False, free_dimensions={"N": 1})
    planned = plan_model(model, ["toy", "onnxruntime"], pinned, warn=False)
    assert len(planned.plan.partitions) == rw.partitions_after
    assert set(planned.plan.node_counts()) == {"toy"}
    # and the rewritten model still computes y = -(relu(x) * [1, 2])
    x = rand((1, 2), seed=3)
    (y,) = InferenceSession(model, ["toy"], pinned).run(None, {"x": x})
    np.testing.assert_allclose(y, -(np.maximum(x, 0) * np.array([1, 2], np.float32)), rtol=0, atol=0)


class OpsetToy(ToyDelegate):
    """A toy delegate whose Relu kernel follows opset 14 (older Relu declined)."""

    op_support = tuple(
        OpSupport(s.op_type, constraints=s.constraints, since=14 if s.op_type == "Relu" else 1)
        for s in ToyDelegate.op_support
    )


def relu_neg_opset11() -> onnx.ModelProto:
    nodes = [helper.make_node("Relu", ["x"], ["a"], name="a"), helper.make_node("Neg", ["a"], ["y"], name="y")]
    return graph_model(nodes, {"x": (np.float32, (2, 3))}, opset=11)


def test_opset_rewrite_is_the_lowest_opset_that_removes_the_island() -> None:
    model, options = relu_neg_opset11(), _options(OpsetToy())
    [island] = explain(model, ["toy", "onnxruntime"], options, bandwidth=BANDWIDTH)
    assert island.nodes == ("a",)
    assert "opset 11 not handled" in island.reasons[0][1]
    rw = island.rewrite
    assert (rw.kind, rw.opset, rw.partitions_before, rw.partitions_after) == ("opset", 17, 2, 1)
    converted = version_converter.convert_version(model, 17)
    planned = plan_model(converted, ["toy", "onnxruntime"], options, warn=False)
    assert len(planned.plan.partitions) == rw.partitions_after == 1
    assert planned.plan.node_counts() == {"toy": 2}


def test_fold_rewrite_for_a_computation_over_initializers() -> None:
    w = rand((2,), seed=1)
    nodes = [
        helper.make_node("Sigmoid", ["w"], ["g"], name="gate"),  # toy has no Sigmoid; all inputs constant
        helper.make_node("Relu", ["x"], ["r"], name="relu"),
        helper.make_node("Mul", ["r", "g"], ["y"], name="mul"),
    ]
    model = graph_model(nodes, {"x": (np.float32, (3, 2))}, consts={"w": w})
    options = _options()
    [island] = explain(model, ["toy", "onnxruntime"], options, bandwidth=BANDWIDTH)
    assert island.nodes == ("gate",)
    assert island.inputs == () and [(b.tensor, b.bytes) for b in island.outputs] == [("g", 8)]
    rw = island.rewrite
    assert (rw.kind, rw.partitions_before, rw.partitions_after) == ("fold", 2, 1)
    # fold by hand: the gate becomes an initializer holding sigmoid(w)
    folded = onnx.ModelProto()
    folded.CopyFrom(model)
    del folded.graph.node[0]
    folded.graph.initializer.append(numpy_helper.from_array(1 / (1 + np.exp(-w)), "g"))
    planned = plan_model(folded, ["toy", "onnxruntime"], options, warn=False)
    assert len(planned.plan.partitions) == rw.partitions_after


def test_no_island_when_the_preferred_delegate_takes_everything() -> None:
    model = graph_model([helper.make_node("Relu", ["x"], ["y"], name="r")], {"x": (np.float32, (2,))})
    ex = explain(model, ["toy", "onnxruntime"], _options(), bandwidth=BANDWIDTH)
    assert (len(ex), ex.partitions) == (0, 1)
    assert "0 island(s) left it" in str(ex)


def test_bad_bandwidth_is_an_input_error() -> None:
    with pytest.raises(InputError, match=r"bandwidth = 0 bytes/s; expected a positive number"):
        explain(shape_scaled_model(), ["toy"], _options(), bandwidth=0)


@pytest.mark.parametrize(
    "expr, value",
    [("N", 7), ("floor(floor(height/2 - 1/2)/2) + 1", 16), ("2*N + 1", 15), ("unk__3", None), ("N/2", None)],
)
def test_symbolic_dim_expressions_evaluate_at_the_chosen_dims(expr: str, value) -> None:
    # floor(floor(64/2 - 1/2)/2) + 1 = floor(31/2) + 1 = 16; N/2 = 3.5 is no dim
    assert _dim_value(expr, {"N": 7, "height": 64}) == value


def test_cli_explain_json_on_reference(tmp_path, capsys) -> None:
    path = tmp_path / "m.onnx"
    onnx.save(shape_scaled_model(), path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["plan", str(path), "--delegates", "reference,onnxruntime", "--explain", "--json", "--no-cache"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["preferred"] == "reference" and data["partitions"] == 3
    shape, neg = data["islands"]  # the reference delegate has no Shape, Cast or Neg kernel
    assert shape["nodes"] == ["shape", "cast"] and shape["bytes_out"] == 8
    assert shape["rewrite"]["kind"] == "free_dims" and shape["rewrite"]["partitions_after"] == 2
    assert neg["nodes"] == ["neg"] and neg["rewrite"] is None
    assert neg["reasons"] == [{"op_type": "Neg", "reason": "reference has no kernel for op Neg", "nodes": 1}]
    assert main(["plan", str(path), "--delegates", "reference,onnxruntime", "--free-dim", "N=1", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["partitions"]) == 2


# --- the real-model corpus: nudenet (YOLOv8n, dynamic batch/height/width) ------------


def _nudenet() -> str:
    from unified.conformance import real_models as rm

    try:
        return str(rm.fetch("nudenet"))
    except rm.ModelUnavailableError as exc:
        pytest.skip(str(exc))


def _ort_values(path: str, names: list[str], feed: dict) -> dict[str, np.ndarray]:
    """The values ``names`` computed by ONNX Runtime (added as model outputs)."""
    import onnxruntime as ort

    model = onnx.load(path)
    model.graph.output.extend(helper.make_empty_tensor_value_info(n) for n in names)
    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return dict(zip(names, sess.run(names, feed)))


@pytest.mark.slow
@pytest.mark.corpus
def test_nudenet_on_reference_islands_and_the_pinned_dims_prediction() -> None:
    path, delegates = _nudenet(), ["reference", "onnxruntime"]
    options = SessionOptions(use_cache=False)
    ex = explain(path, delegates, options, bandwidth=BANDWIDTH)
    assert (ex.preferred, ex.partitions, ex.nodes) == ("reference", 43, 323)
    assert ex.dims == {"batch": 1, "height": 64, "width": 64}
    ops = {op for island in ex for op in island.op_types}
    assert {"Shape", "Gather", "Range", "Expand", "Split"} <= ops
    why = {reason for island in ex for _, reason, _ in island.reasons}
    assert "reference has no kernel for op Shape" in why and "reference has no kernel for op Split" in why
    fixed = [island for island in ex if island.rewrite is not None]
    assert fixed and {i.rewrite.kind for i in fixed} == {"free_dims"}
    predicted = {i.rewrite.partitions_after for i in fixed}
    assert len(predicted) == 1
    # every Split island stays (reference has no Split kernel): nothing removes it
    assert all(i.rewrite is None for i in ex if "Split" in i.op_types)

    # apply the rewrite and plan again: the predicted count, and only Split islands left
    dims = fixed[0].rewrite.free_dimensions
    planned = plan_model(path, delegates, SessionOptions(use_cache=False, free_dimensions=dims), warn=False)
    assert len(planned.plan.partitions) == predicted.pop() == 19
    off = {op for p in planned.plan.partitions if p.delegate != "reference" for op in p.op_types}
    assert off == {"Split"}

    # every boundary's bytes agree with the value ONNX Runtime computes at those dims
    bounds = {b.tensor: b.bytes for island in ex for b in island.inputs + island.outputs}
    values = _ort_values(path, list(bounds), {"images": rand((1, 3, 64, 64), seed=0)})
    assert bounds == {n: v.nbytes for n, v in values.items()}
    first = ex.islands[0]
    crossing = sum(values[b.tensor].nbytes for b in first.inputs + first.outputs)
    assert first.seconds == pytest.approx(crossing / BANDWIDTH)
