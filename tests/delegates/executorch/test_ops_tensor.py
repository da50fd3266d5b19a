"""Per-op tests, data-movement and shape ops — each against ONNX Runtime —
and symbolic input dims exported with ``torch.export.Dim``."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

from unified import InferenceSession
from unified.errors import InputError

from ...onnx_models import rand

X = (2, 3, 4, 5)


def _i64(*v):
    return np.array(v, np.int64)


def test_shape_ops(make_model, et_check):
    nodes = [
        helper.make_node("Reshape", ["x", "shape"], ["Reshape"]),
        helper.make_node("Flatten", ["x"], ["Flatten"], axis=2),
        helper.make_node("Flatten", ["x"], ["Flatten_0"], axis=0),
        helper.make_node("Transpose", ["x"], ["Transpose"], perm=[0, 2, 3, 1]),
        helper.make_node("Transpose", ["x"], ["Transpose_default"]),
        helper.make_node("Concat", ["x", "x", "Reshape"], ["Concat"], axis=1),
        helper.make_node("Split", ["x", "split"], ["Split_a", "Split_b"], axis=3),
        helper.make_node("Split", ["x"], ["Split_eq_a", "Split_eq_b", "Split_eq_c"], axis=1),
        helper.make_node("Slice", ["x", "starts", "ends", "axes", "steps"], ["Slice"]),
        helper.make_node("Slice", ["x", "neg_starts", "big_ends"], ["Slice_clamped"]),
        helper.make_node("Unsqueeze", ["x", "unsq_axes"], ["Unsqueeze"]),
        helper.make_node("Squeeze", ["Unsqueeze", "unsq_axes"], ["Squeeze"]),
        helper.make_node("Pad", ["x", "pads", "value"], ["Pad_constant"]),
        helper.make_node("Pad", ["x", "spatial_pads"], ["Pad_reflect"], mode="reflect"),
        helper.make_node("Pad", ["x", "spatial_pads"], ["Pad_edge"], mode="edge"),
        helper.make_node("Expand", ["col", "expand_to"], ["Expand"]),
        helper.make_node("Tile", ["x", "repeats"], ["Tile"]),
    ]
    consts = {
        "shape": _i64(0, 3, -1, 5), "split": _i64(2, 3), "starts": _i64(1, 0), "ends": _i64(4, 5),
        "axes": _i64(2, -1), "steps": _i64(2, 2), "neg_starts": _i64(-2), "big_ends": _i64(2**62),
        "unsq_axes": _i64(0, -1), "pads": _i64(0, 1, 0, 2, 0, 0, 1, 0), "value": np.float32(0.5),
        "spatial_pads": _i64(0, 0, 1, 2, 0, 0, 2, 1), "expand_to": _i64(2, 1, 4, 1), "repeats": _i64(1, 2, 1, 2),
    }
    nodes.insert(0, helper.make_node("Slice", ["x", "_0", "_1", "_3"], ["col"]))  # (2, 3, 4, 1)
    consts.update({"_0": _i64(0), "_1": _i64(1), "_3": _i64(3)})
    outputs = [n.output[i] for n in nodes for i in range(len(n.output)) if n.output[0] != "col"]
    et_check(make_model(nodes, {"x": (np.float32, X)}, consts, outputs, opset=13), {"x": rand(X, 0)})


def test_gather_ops(make_model, et_check):
    nodes = [
        helper.make_node("Gather", ["table", "ids"], ["Gather_embedding"]),  # data-dependent indices
        helper.make_node("Gather", ["x", "idx"], ["Gather_const"], axis=1),
        helper.make_node("Gather", ["x", "scalar"], ["Gather_scalar"], axis=-1),
        helper.make_node("GatherND", ["x", "nd"], ["GatherND"]),
        helper.make_node("Add", ["Gather_embedding", "x"], ["joined"]),
    ]
    consts = {"table": rand((10, 5), 1), "idx": np.array([[2, -1], [0, 0]], np.int64), "scalar": np.int64(-2),
              "nd": np.array([[0, 2], [1, -1]], np.int64)}
    outputs = [n.output[0] for n in nodes]
    model = make_model(nodes, {"x": (np.float32, (2, 3, 4, 5)), "ids": (np.int64, (3, 4))}, consts, outputs)
    ids = np.array([0, 9, 3, -1, 4, 4, 7, 1, 2, 8, 5, 6], np.int64).reshape(3, 4)
    et_check(model, {"x": rand(X, 2), "ids": ids})


def test_shape_constant_of_shape_range(make_model, et_check):
    """Shape arithmetic evaluated while tracing, as exporters emit it."""
    nodes = [
        helper.make_node("Shape", ["x"], ["shape"]),
        helper.make_node("Shape", ["x"], ["tail"], start=-2),
        helper.make_node("ConstantOfShape", ["tail"], ["ConstantOfShape"],
                         value=helper.make_tensor("v", TensorProto.FLOAT, [1], [0.25])),
        helper.make_node("Gather", ["shape", "one"], ["channels"]),
        helper.make_node("Range", ["zero", "channels", "one_s"], ["Range"]),
        helper.make_node("Cast", ["Range"], ["range_f"], to=TensorProto.FLOAT),
        helper.make_node("Add", ["x", "ConstantOfShape"], ["Add"]),
        helper.make_node("Unsqueeze", ["range_f", "axes"], ["range_col"]),
        helper.make_node("Mul", ["Add", "range_col"], ["Mul"]),
    ]
    consts = {"one": np.int64(1), "zero": np.int64(0), "one_s": np.int64(1), "axes": _i64(1, 2)}
    outputs = ["shape", "ConstantOfShape", "Range", "Mul"]
    et_check(make_model(nodes, {"x": (np.float32, X)}, consts, outputs, opset=15), {"x": rand(X, 3)})


def test_old_opset_forms(make_model, et_check):
    """Opset 9 attribute forms: Slice/Squeeze/Unsqueeze/Split/Pad attributes, Dropout with a mask output."""
    nodes = [
        helper.make_node("Slice", ["x"], ["Slice"], starts=[1], ends=[3], axes=[2]),
        helper.make_node("Unsqueeze", ["x"], ["Unsqueeze"], axes=[0]),
        helper.make_node("Squeeze", ["Unsqueeze"], ["Squeeze"], axes=[0]),
        helper.make_node("Squeeze", ["Unsqueeze"], ["Squeeze_all_ones"]),
        helper.make_node("Split", ["x"], ["Split_a", "Split_b"], axis=3, split=[1, 4]),
        helper.make_node("Pad", ["x"], ["Pad"], pads=[0, 0, 1, 1, 0, 0, 0, 2], value=-1.0),
        helper.make_node("Dropout", ["x"], ["Dropout", "mask"], ratio=0.3),  # an unused mask, as in squeezenet
    ]
    outputs = ["Slice", "Squeeze", "Squeeze_all_ones", "Split_a", "Split_b", "Pad", "Dropout"]
    et_check(make_model(nodes, {"x": (np.float32, X)}, outputs=outputs, opset=9), {"x": rand(X, 4)})


def _dynamic_model(make_model):
    """(batch, seq, 8) -> attention-style reshape to (batch, seq, 2, 4) through Shape/Gather/Concat, as
    torch.onnx's dynamo exporter writes it, plus Expand, Range and a bias on the symbolic dims."""
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Gather", ["s", "i0"], ["b"]),
        helper.make_node("Gather", ["s", "i1"], ["t"]),
        helper.make_node("Concat", ["b", "t", "heads"], ["new_shape"], axis=0),
        helper.make_node("Reshape", ["x", "new_shape"], ["split_heads"]),
        helper.make_node("Transpose", ["split_heads"], ["y"], perm=[0, 2, 1, 3]),
        helper.make_node("Squeeze", ["t", "ax0"], ["t_scalar"]),
        helper.make_node("Range", ["zero", "t_scalar", "one"], ["positions"]),
        helper.make_node("Cast", ["positions"], ["pos_f"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["pos_f", "ax_last"], ["pos_col"]),
        helper.make_node("Concat", ["b", "t", "eight"], ["full_shape"], axis=0),
        helper.make_node("Expand", ["pos_col", "full_shape"], ["pos_full"]),
        helper.make_node("Add", ["x", "pos_full"], ["z"]),
        helper.make_node("Softmax", ["z"], ["softmax"], axis=-1),
    ]
    consts = {"i0": _i64(0), "i1": _i64(1), "heads": _i64(2, 4), "ax0": _i64(0), "zero": np.int64(0),
              "one": np.int64(1), "ax_last": _i64(-1), "eight": _i64(8)}
    model = make_model(nodes, {"x": (np.float32, ("batch", "seq", 8))}, consts, ["y", "softmax"], opset=13)
    # shape inference cannot follow symbolic sizes through Concat -> Reshape; exporters write these types
    typed = {"split_heads": ["batch", "seq", 2, 4], "y": ["batch", 2, "seq", 4]}
    model.graph.value_info.append(helper.make_tensor_value_info("split_heads", TensorProto.FLOAT, typed["split_heads"]))
    model.graph.output[0].CopyFrom(helper.make_tensor_value_info("y", TensorProto.FLOAT, typed["y"]))
    return model


def test_symbolic_dims_specialize_per_shape(make_model, et_check, ort_reference):
    model = _dynamic_model(make_model)
    sess = et_check(model, {"x": rand((2, 5, 8), 5)})
    for shape in [(1, 3, 8), (4, 32, 8)]:  # other sizes: one program each, compiled at the first run
        feeds = {"x": rand(shape, 6)}
        for got, ref in zip(sess.run(None, feeds), ort_reference(model, feeds)):
            assert got.shape == ref.shape
            np.testing.assert_allclose(got, ref, rtol=1e-3, atol=1e-4)


def test_free_dimensions_pin_dims(make_model, ort_reference, options):
    model = _dynamic_model(make_model)
    options.strict = True
    options.free_dimensions = {"batch": 1, "seq": 6}
    sess = InferenceSession(model, delegates=["executorch"], options=options)
    assert {p.delegate for p in sess.plan.partitions} == {"executorch"}
    feeds = {"x": rand((1, 6, 8), 8)}
    for got, ref in zip(sess.run(None, feeds), ort_reference(model, feeds)):
        np.testing.assert_allclose(got, ref, rtol=1e-3, atol=1e-4)
    with pytest.raises(InputError):
        sess.run(None, {"x": rand((1, 5, 8), 9)})
