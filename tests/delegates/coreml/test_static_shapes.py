"""The coreml delegate under the static-shapes contract (``Delegate.static_shapes``),
and partitions whose I/O Core ML cannot take as ONNX declares it (rank 0).

``supports()`` sees symbolic dims and claims what it could lower once every
dim is known; a value the lowering reads as a number (a Reshape shape, Slice
starts, ...) must be a constant or shape-derived, never tensor data. Compiled
programs are checked against the ONNX partition's declared outputs (rank,
fixed dims, type), since Core ML cannot run here to check numbers.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto as T
from onnx import helper, numpy_helper

from unified import DelegateError
from unified.delegate import CompileOptions
from unified.graph import Graph
from unified.plugins import registry


@pytest.fixture(scope="module")
def coreml():
    return registry().get("coreml")


def model(nodes, inputs, outputs, inits=None, opset=18) -> onnx.ModelProto:
    g = helper.make_graph(
        nodes, "t",
        [helper.make_tensor_value_info(n, t, s) for n, t, s in inputs],
        [helper.make_tensor_value_info(n, t, s) for n, t, s in outputs],
        initializer=[numpy_helper.from_array(v, k) for k, v in (inits or {}).items()],
    )
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], ir_version=10)


def views(m: onnx.ModelProto) -> dict:
    return {v.name: v for v in Graph(m).node_views}


def test_coreml_compiles_static_shapes_only(coreml) -> None:
    assert type(coreml).static_shapes is True


def test_shape_derived_reshape_is_claimed_and_data_dependent_is_declined(coreml) -> None:
    # Shape -> Gather -> Concat -> Reshape on a symbolic batch: shape-derived, folds away at specialization
    m = model(
        [
            helper.make_node("Shape", ["x"], ["s"], name="shape"),
            helper.make_node("Gather", ["s", "zero"], ["b"], axis=0, name="gather"),
            helper.make_node("Concat", ["b", "minus1"], ["target"], axis=0, name="concat"),
            helper.make_node("Reshape", ["x", "target"], ["y"], name="reshape_derived"),
            helper.make_node("Reshape", ["x", "data_shape"], ["z"], name="reshape_data"),
        ],
        [("x", T.FLOAT, ["batch", 3, 4]), ("data_shape", T.INT64, [2])],
        [("y", T.FLOAT, ["batch", 12]), ("z", T.FLOAT, None)],
        {"zero": np.array([0], np.int64), "minus1": np.array([-1], np.int64)},
    )
    v = views(m)
    assert v["reshape_derived"].inputs[1].shape_derived
    assert coreml.supports(v["reshape_derived"]).ok
    answer = coreml.supports(v["reshape_data"])
    assert not answer.ok
    assert answer.reason == ("Reshape shape (input 1 'data_shape') comes from tensor data; Core ML needs it at "
                             "compile time (a constant, or computed from tensor shapes only)")


@pytest.mark.parametrize("op, inputs, out_type, what", [
    ("Expand", ["x", "d"], T.FLOAT, "Expand shape (input 1 'd')"),
    ("Tile", ["x", "d"], T.FLOAT, "Tile repeats (input 1 'd')"),
    ("Slice", ["x", "d", "d"], T.FLOAT, "Slice starts/ends/axes/steps (input 1 'd')"),
    ("Range", ["r", "r", "r"], T.INT64, "Range start/limit/delta (input 0 'r')"),
])
def test_data_dependent_compile_time_inputs_are_declined(op, inputs, out_type, what, coreml) -> None:
    m = model([helper.make_node(op, inputs, ["y"], name="n")],
              [("x", T.FLOAT, [2, 3]), ("d", T.INT64, [2]), ("r", T.INT64, [])], [("y", out_type, None)])
    answer = coreml.supports(views(m)["n"])
    assert not answer.ok and answer.reason.startswith(what) and "comes from tensor data" in answer.reason


@pytest.mark.parametrize("training, ok", [(None, True), (False, True), (True, False)])
def test_dropout_is_claimed_in_inference_mode_only(training, ok, coreml) -> None:
    inits = {"ratio": np.array(0.3, np.float32)}
    names = ["x", "ratio"]
    if training is not None:
        inits["t"] = np.array(training)
        names.append("t")
    m = model([helper.make_node("Dropout", names, ["y"], name="n")], [("x", T.FLOAT, [2, 3])],
              [("y", T.FLOAT, [2, 3])], inits)
    answer = coreml.supports(views(m)["n"])
    assert answer.ok is ok
    if not ok:
        assert "training_mode=True" in answer.reason
    m = model([helper.make_node("Dropout", ["x", "ratio", "t"], ["y"], name="n")],
              [("x", T.FLOAT, [2, 3]), ("t", T.BOOL, [])], [("y", T.FLOAT, [2, 3])], {"ratio": inits["ratio"]})
    assert "training_mode (input 2) comes from tensor data" in coreml.supports(views(m)["n"]).reason


def test_zero_size_values_are_declined_but_empty_constants_are_not(coreml) -> None:
    m = model([helper.make_node("Relu", ["x"], ["y"], name="n")], [("x", T.FLOAT, [0, 3])], [("y", T.FLOAT, [0, 3])])
    assert "no zero-size dims" in coreml.supports(views(m)["n"]).reason
    # Resize with an empty (omitted) roi initializer, as exporters write it
    m = model([helper.make_node("Resize", ["x", "roi", "scales"], ["y"], name="n", mode="nearest")],
              [("x", T.FLOAT, [1, 2, 4, 4])], [("y", T.FLOAT, [1, 2, 8, 8])],
              {"roi": np.zeros(0, np.float32), "scales": np.array([1, 1, 2, 2], np.float32)}, opset=13)
    assert coreml.supports(views(m)["n"]).ok


# --- compiled programs against the ONNX partition's declared outputs -----------------

def _compile(coreml, m: onnx.ModelProto):
    g = Graph(m)
    assert all(coreml.supports(v).ok for v in g.node_views), [coreml.supports(v).reason for v in g.node_views]
    return coreml.compile(g.model, CompileOptions(backend="cpu"))


def _spec(exe, tmp_path):
    import coremltools as ct

    from unified.delegates.coreml.package import unzip_package

    return ct.models.MLModel(str(unzip_package(exe.serialize(), tmp_path)), skip_model_load=True).get_spec()


def test_rank0_inputs_are_fed_as_shape_1(coreml, tmp_path) -> None:
    m = model([helper.make_node("Clip", ["x", "lo", "hi"], ["y"])],
              [("x", T.FLOAT, [3, 4]), ("lo", T.FLOAT, []), ("hi", T.FLOAT, [])], [("y", T.FLOAT, [3, 4])])
    exe = _compile(coreml, m)
    assert [(s.onnx_name, s.shape, s.ranges) for s in exe.inputs] == [
        ("x", (3, 4), ((3, 3), (4, 4))), ("lo", (), ((1, 1),)), ("hi", (), ((1, 1),))]
    spec = _spec(exe, tmp_path)  # a weightless program: the empty weights item must travel in the zip
    assert [list(i.type.multiArrayType.shape) for i in spec.description.input] == [[3, 4], [1], [1]]
    again = coreml.load(exe.serialize(), Graph(m).model, CompileOptions(backend="cpu"))
    assert again.inputs == exe.inputs and again.outputs == exe.outputs


@pytest.mark.parametrize("case", ["matmul-1d-1d", "matmul-1d-3d", "matmul-4d-1d", "gemm-scalar-bias", "pow-scalar",
                                  "conv-computed-bias", "maxpool-ceil-drop", "maxpool-ceil-extra"])
def test_compiled_outputs_match_the_declared_onnx_outputs(case, coreml) -> None:
    from unified.delegates.coreml.convert import build_program, output_ranks, signature

    import coremltools as ct

    f = T.FLOAT
    cases = {
        "matmul-1d-1d": ([helper.make_node("MatMul", ["a", "b"], ["y"])], [("a", f, [4]), ("b", f, [4])], [("y", f, [])]),
        "matmul-1d-3d": ([helper.make_node("MatMul", ["a", "b"], ["y"])], [("a", f, [4]), ("b", f, [2, 4, 3])],
                         [("y", f, [2, 3])]),
        "matmul-4d-1d": ([helper.make_node("MatMul", ["a", "b"], ["y"])], [("a", f, [1, 2, 3, 4]), ("b", f, [4])],
                         [("y", f, [1, 2, 3])]),
        "gemm-scalar-bias": ([helper.make_node("Gemm", ["a", "b", "c"], ["y"])],
                             [("a", f, [2, 3]), ("b", f, [3, 4]), ("c", f, [])], [("y", f, [2, 4])]),
        "pow-scalar": ([helper.make_node("Pow", ["a", "b"], ["y"])], [("a", f, [3]), ("b", f, [])], [("y", f, [3])]),
        "conv-computed-bias": ([helper.make_node("Conv", ["x", "w", "b"], ["y"])],
                               [("x", f, [1, 2, 5, 5]), ("w", f, [3, 2, 3, 3]), ("b", f, [3])], [("y", f, [1, 3, 3, 3])]),
        "maxpool-ceil-drop": ([helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[1, 1], strides=[2, 2],
                                                ceil_mode=1)], [("x", f, [1, 1, 4, 4])], [("y", f, [1, 1, 2, 2])]),
        "maxpool-ceil-extra": ([helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[2, 2], strides=[2, 2],
                                                 ceil_mode=1)], [("x", f, [1, 1, 5, 5])], [("y", f, [1, 1, 3, 3])]),
    }
    nodes, inputs, outputs = cases[case]
    m = Graph(model(nodes, inputs, outputs)).model
    prog, _, outs = build_program(m, __import__("unified.delegates.coreml", fromlist=["LOWERINGS"]).LOWERINGS,
                                  ct.target.iOS16)
    (var,) = prog.functions["main"].outputs
    declared = tuple(outputs[0][2])
    assert tuple(int(d) for d in var.shape) == declared
    assert len(output_ranks(m)) == 1 and output_ranks(m)[0] == len(declared)
    _compile(coreml, model(nodes, inputs, outputs))  # validates, converts, verifies the saved package


def test_verify_program_refuses_a_wrong_rank_or_type() -> None:
    import coremltools as ct
    from coremltools.converters.mil import Builder as mb

    from unified.delegates.coreml.convert import IoSpec
    from unified.delegates.coreml.package import verify_program

    @mb.program(input_specs=[mb.TensorSpec(shape=(2, 3))], opset_version=ct.target.iOS16)
    def prog(x):
        return mb.reduce_sum(x=x, axes=[1], keep_dims=False, name="y")

    verify_program(prog, [IoSpec("y", "y", T.FLOAT, "FLOAT32", (2,))], [1])
    with pytest.raises(DelegateError, match="has rank 1 in the MIL program, expected 0"):
        verify_program(prog, [IoSpec("y", "y", T.FLOAT, "FLOAT32", ())], [0])
    with pytest.raises(DelegateError, match="is fp32 in the MIL program, expected int32"):
        verify_program(prog, [IoSpec("y", "y", T.INT64, "INT32", (2,))], [1])


@pytest.mark.parametrize("scales, ok", [([1, 1, 2, 2], True), ([1, 1, 1.5, 1.5], False), ([1, 2, 2, 2], False)])
def test_resize_with_symbolic_dims_needs_constant_integer_scales(scales, ok, coreml) -> None:
    m = model([helper.make_node("Resize", ["x", "", "scales"], ["y"], name="n", mode="nearest")],
              [("x", T.FLOAT, ["batch", 8, "h", "w"])], [("y", T.FLOAT, None)],
              {"scales": np.array(scales, np.float32)}, opset=13)
    answer = coreml.supports(views(m)["n"])
    assert answer.ok is ok, answer.reason


def test_resize_scales_must_match_the_static_sizes(coreml) -> None:
    # in 5 * 0.6 = 3: ONNX maps coordinates with the scale 0.6 (float32), Core ML with 3/5
    m = model([helper.make_node("Resize", ["x", "", "scales"], ["y"], name="n", mode="linear")],
              [("x", T.FLOAT, [1, 2, 5, 5])], [("y", T.FLOAT, [1, 2, 3, 3])],
              {"scales": np.array([1, 1, 0.6, 0.6], np.float32)}, opset=13)
    assert "differ from output/input sizes" in coreml.supports(views(m)["n"]).reason


def test_conv_transpose_with_symbolic_spatial_dims_is_claimed(coreml) -> None:
    # the output shape is computed from the spatial dims, which specialization makes static
    m = model([helper.make_node("ConvTranspose", ["x", "w"], ["y"], name="n", strides=[2, 2])],
              [("x", T.FLOAT, ["batch", 4, "h", "w"])], [("y", T.FLOAT, None)],
              {"w": np.zeros((4, 2, 2, 2), np.float32)})
    assert coreml.supports(views(m)["n"]).ok
