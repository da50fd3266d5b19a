"""The one load -> plan -> compile road: compile-failure fallback, the
partition-boundary contract, and run-time specialization of static-shape
delegates. Each test checks where nodes went and that the numbers equal ONNX
Runtime's."""

from __future__ import annotations

import warnings

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import unified
from unified import DelegateError, Executable, InferenceSession, SessionOptions, Support

from ..onnx_models import relu_neg
from .toy_delegate import ToyDelegate, ToyPlugin

F = TensorProto.FLOAT


class FailingCompile(ToyDelegate):
    """Claims like the toy, raises in compile() for partitions holding ``bad_op``."""

    def __init__(self, bad_op: str = "Neg"):
        super().__init__("failing")
        self.bad_op = bad_op

    def compile(self, partition, options):
        if any(n.op_type == self.bad_op for n in partition.graph.node):
            raise ValueError(f"cannot lower {self.bad_op} today")
        return super().compile(partition, options)


def run_both(sess: InferenceSession, model: onnx.ModelProto, ort_reference, feeds):
    got = sess.run(None, feeds)
    want = ort_reference(model, feeds)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-6)


def test_compile_failure_falls_back_with_reason_and_one_warning(ort_reference):
    model = relu_neg()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sess = InferenceSession(model, ["failing"], SessionOptions(plugins=[ToyPlugin(FailingCompile())], use_cache=False))
    fallback = [w for w in caught if issubclass(w.category, unified.FallbackWarning)]
    assert len(fallback) == 1
    assert "delegate 'failing' failed to compile partition p0" in str(fallback[0].message)
    assert "cannot lower Neg today" in str(fallback[0].message)
    assert sess.plan.node_counts() == {"onnxruntime": 2}
    reasons = {(r.node, r.delegate): r.reason for r in sess.plan.rejections}
    assert reasons[("y", "failing")] == "compile failed: ValueError: cannot lower Neg today"
    assert reasons[("a", "failing")] == "compile failed: ValueError: cannot lower Neg today"
    run_both(sess, model, ort_reference, {"x": np.linspace(-3, 3, 6, dtype=np.float32).reshape(2, 3)})


def test_compile_failure_is_a_delegate_error_when_strict():
    with pytest.raises(DelegateError, match=r"delegate 'failing' failed to compile partition p0 \(2 nodes; ops: Neg, Relu\): "
                                            r"ValueError: cannot lower Neg today"):
        InferenceSession(relu_neg(), ["failing"],
                         SessionOptions(plugins=[ToyPlugin(FailingCompile())], use_cache=False, strict=True))


def test_only_the_failing_partition_is_replanned(ort_reference):
    # Relu -> Sigmoid (toy declines) -> Neg: two toy partitions; only the Neg one fails to compile
    g = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["a"], name="a"), helper.make_node("Sigmoid", ["a"], ["b"], name="b"),
         helper.make_node("Neg", ["b"], ["y"], name="y")],
        "g", [helper.make_tensor_value_info("x", F, [2, 3])], [helper.make_tensor_value_info("y", F, [2, 3])],
    )
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)
    toy = FailingCompile()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", unified.FallbackWarning)
        sess = InferenceSession(model, ["failing"], SessionOptions(plugins=[ToyPlugin(toy)], use_cache=False))
    assert [(p.delegate, p.nodes) for p in sess.plan.partitions] == [
        ("failing", ("a",)), ("onnxruntime", ("b", "y")),
    ]
    # the Relu partition was compiled once, not again after re-planning
    assert [[n.op_type for n in m.graph.node] for m in toy.compiled] == [["Relu"]]
    run_both(sess, model, ort_reference, {"x": np.linspace(-3, 3, 6, dtype=np.float32).reshape(2, 3)})


class _Returns(Executable):
    def __init__(self, model, value):
        self.input_names = [i.name for i in model.graph.input]
        self.output_names = [o.name for o in model.graph.output]
        self.value = value

    def run(self, inputs):
        return {self.output_names[0]: self.value(inputs)}


class Returns(ToyDelegate):
    """Claims ReduceSum and returns ``value(inputs)`` for its output."""

    op_support = (unified.OpSupport("ReduceSum"),)

    def __init__(self, value):
        super().__init__("returns")
        self.value = value

    def compile(self, partition, options):
        return _Returns(partition, self.value)


def reduce_then_add() -> onnx.ModelProto:
    """s = ReduceSum(x) (0-d, on the test delegate); y = s + x (on ONNX Runtime)."""
    g = helper.make_graph(
        [helper.make_node("ReduceSum", ["x"], ["s"], name="s", keepdims=0),
         helper.make_node("Add", ["s", "x"], ["y"], name="y")],
        "g", [helper.make_tensor_value_info("x", F, [3])], [helper.make_tensor_value_info("y", F, [3])],
    )
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)


def boundary_session(value) -> InferenceSession:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", unified.FallbackWarning)
        return InferenceSession(reduce_then_add(), ["returns"],
                                SessionOptions(plugins=[ToyPlugin(Returns(value))], use_cache=False))


def test_a_numpy_scalar_crossing_a_boundary_becomes_a_0d_array(ort_reference):
    sess = boundary_session(lambda inputs: np.float32(inputs["x"].sum()))  # a NumPy scalar, not an ndarray
    assert [p.delegate for p in sess.plan.partitions] == ["returns", "onnxruntime"]
    run_both(sess, reduce_then_add(), ort_reference, {"x": np.array([1, 2, 3], np.float32)})


@pytest.mark.parametrize(
    "value, got",
    [
        (lambda inputs: inputs["x"].sum().astype(np.float64), "float64 []"),
        (lambda inputs: inputs["x"][:1], "float32 [1]"),
        (lambda inputs: [1.0], "list"),
    ],
)
def test_a_partition_returning_the_wrong_type_is_a_delegate_error(value, got):
    sess = boundary_session(value)
    with pytest.raises(DelegateError) as info:
        sess.run(None, {"x": np.array([1, 2, 3], np.float32)})
    assert str(info.value) == (
        f"delegate 'returns' returned {got} for output 's' of partition p0 (1 nodes; first node 's'), "
        "expected tensor(float) []"
    )


def test_a_partition_missing_an_output_is_a_delegate_error():
    class Missing(Returns):
        def compile(self, partition, options):
            exe = _Returns(partition, lambda inputs: None)
            exe.run = lambda inputs: {}
            return exe

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", unified.FallbackWarning)
        sess = InferenceSession(reduce_then_add(), ["returns"],
                                SessionOptions(plugins=[ToyPlugin(Missing(None))], use_cache=False))
    with pytest.raises(DelegateError, match=r"delegate 'returns' returned nothing for output 's' of partition p0"):
        sess.run(None, {"x": np.array([1, 2, 3], np.float32)})


# --- specialization ----------------------------------------------------------


class StaticExecutable(Executable):
    """Runs a *static* partition with ONNX Runtime (stands in for TFLite)."""

    def __init__(self, model):
        import onnxruntime as ort

        inits = {t.name for t in model.graph.initializer}
        self.input_names = [i.name for i in model.graph.input if i.name not in inits]
        self.output_names = [o.name for o in model.graph.output]
        self.session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])

    def run(self, inputs):
        return dict(zip(self.output_names, self.session.run(self.output_names, dict(inputs))))


class StaticToy(ToyDelegate):
    """Compiles static shapes only; claims Reshape and Relu; records every model it compiles."""

    static_shapes = True
    op_support = (unified.OpSupport("Reshape"), unified.OpSupport("Relu"))

    def __init__(self):
        super().__init__("static")

    def supports(self, node):
        if node.op_type == "Reshape" and node.inputs[1].const is None and not node.inputs[1].shape_derived:
            return Support.no("data-dependent Reshape shape")
        return super().supports(node)

    def compile(self, partition, options):
        g = partition.graph
        values = list(g.input) + list(g.value_info) + list(g.output)
        assert all(d.HasField("dim_value") for v in values for d in v.type.tensor_type.shape.dim), "symbolic dim"
        assert not any(n.op_type in ("Shape", "Gather", "Concat") for n in g.node), "unfolded shape computation"
        self.compiled.append(partition)
        return StaticExecutable(partition)


def dynamic_reshape_model() -> onnx.ModelProto:
    """x[N, 4] -> Reshape(x, concat(shape(x)[0:1], [2, 2])) -> Relu -> y[N, 2, 2]."""
    g = helper.make_graph(
        [
            helper.make_node("Shape", ["x"], ["s"], name="shape"),
            helper.make_node("Gather", ["s", "zero"], ["n"], name="gather", axis=0),
            helper.make_node("Concat", ["n", "tail"], ["target"], name="concat", axis=0),
            helper.make_node("Reshape", ["x", "target"], ["r"], name="reshape"),
            helper.make_node("Relu", ["r"], ["y"], name="relu"),
        ],
        "g",
        [helper.make_tensor_value_info("x", F, ["N", 4])],
        [helper.make_tensor_value_info("y", F, ["N", 2, 2])],
        initializer=[helper.make_tensor("zero", TensorProto.INT64, [1], [0]),
                     helper.make_tensor("tail", TensorProto.INT64, [2], [2, 2])],
    )
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)


def static_session(model, **opts) -> tuple[InferenceSession, StaticToy]:
    toy = StaticToy()
    sess = InferenceSession(model, ["static"], SessionOptions(plugins=[ToyPlugin(toy)], use_cache=False,
                                                              strict=True, **opts))
    return sess, toy


def test_static_shape_delegate_specializes_per_input_shape(ort_reference):
    model = dynamic_reshape_model()
    sess, toy = static_session(model)
    (p,) = sess.plan.partitions
    assert p.delegate == "static" and p.specialized and len(p.nodes) == 5
    assert "specialized at run" in str(sess.plan)
    assert toy.compiled == []  # nothing is compiled before the first run
    rng = np.random.default_rng(0)
    for n in (2, 5, 2):
        run_both(sess, model, ort_reference, {"x": rng.standard_normal((n, 4)).astype(np.float32)})
    shapes = [[d.dim_value for d in m.graph.input[0].type.tensor_type.shape.dim] for m in toy.compiled]
    assert shapes == [[2, 4], [5, 4]]  # the second N=2 run reuses the first compilation


def test_specializations_are_an_lru(ort_reference):
    model = dynamic_reshape_model()
    sess, toy = static_session(model, specializations=1)
    rng = np.random.default_rng(0)
    for n in (2, 5, 2):
        run_both(sess, model, ort_reference, {"x": rng.standard_normal((n, 4)).astype(np.float32)})
    assert len(toy.compiled) == 3


def test_static_partition_is_compiled_at_session_creation(ort_reference):
    model = dynamic_reshape_model()
    sess, toy = static_session(model, free_dimensions={"N": 3})
    assert not sess.plan.partitions[0].specialized and len(toy.compiled) == 1
    run_both(sess, model, ort_reference, {"x": np.arange(12, dtype=np.float32).reshape(3, 4) - 6})


def test_data_dependent_shapes_are_declined_for_static_delegates():
    # y = Relu(NonZero(x)) has a shape no input dim determines
    g = helper.make_graph(
        [helper.make_node("NonZero", ["x"], ["nz"], name="nonzero"),
         helper.make_node("Cast", ["nz"], ["f"], name="cast", to=F),
         helper.make_node("Relu", ["f"], ["y"], name="relu")],
        "g", [helper.make_tensor_value_info("x", F, [4])], [helper.make_tensor_value_info("y", F, [1, None])],
    )
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)
    with pytest.raises(unified.UnsupportedError, match=r"node 'relu' \(Relu, opset 17\): static: 'f' has a data-dependent shape"):
        static_session(model)


def test_negative_dim_value_is_a_dynamic_dim(ort_reference):
    model = relu_neg()
    for vi in (model.graph.input[0], model.graph.output[0]):
        vi.type.tensor_type.shape.dim[0].dim_value = -1  # as Paddle exports write it
    sess = InferenceSession(model, ["onnxruntime"])
    assert sess.get_inputs()[0].shape == [None, 3]
    x = np.linspace(-1, 1, 15, dtype=np.float32).reshape(5, 3)
    np.testing.assert_allclose(sess.run(None, {"x": x})[0], -np.maximum(x, 0))


def test_outputs_declared_without_shape_load_as_in_onnx_runtime(ort_reference):
    model = relu_neg()
    model.graph.output[0].type.tensor_type.ClearField("shape")  # tensor(float), rank unknown
    with pytest.raises(onnx.checker.ValidationError):
        onnx.checker.check_model(model)  # the checker alone refuses it ...
    sess = InferenceSession(model, ["onnxruntime"])  # ... ONNX Runtime and unified run it
    assert not model.graph.output[0].type.tensor_type.HasField("shape")  # the caller's model is untouched
    run_both(sess, model, ort_reference, {"x": np.ones((2, 3), np.float32)})


def test_an_executable_needs_only_run(ort_reference):
    """The README's plugin example: an Executable with run() alone, no input/output names."""

    class OnlyRun(Executable):
        def run(self, inputs):
            return {"y": -np.maximum(inputs["x"], 0)}

    class Minimal(ToyDelegate):
        def compile(self, partition, options):
            return OnlyRun()

    model = relu_neg()
    sess = InferenceSession(model, ["minimal"], SessionOptions(plugins=[ToyPlugin(Minimal("minimal"))], use_cache=False,
                                                               strict=True))
    assert sess.partitions[0].executable.input_names == ["x"] and sess.partitions[0].executable.output_names == ["y"]
    run_both(sess, model, ort_reference, {"x": np.linspace(-3, 3, 6, dtype=np.float32).reshape(2, 3)})


def test_bundles_need_static_shapes_for_static_delegates(tmp_path, ort_reference):
    from unified.bundle import compile_bundle

    model = dynamic_reshape_model()
    with pytest.raises(unified.BundleError, match=r"partition p0 on 'tflite' has symbolic input dims.*--free-dim"):
        compile_bundle(model, tmp_path / "dynamic", ["tflite"], SessionOptions(use_cache=False, strict=True))
    compile_bundle(model, tmp_path / "pinned", ["tflite"],
                   SessionOptions(use_cache=False, strict=True, free_dimensions={"N": 3}))
    sess = InferenceSession.from_bundle(tmp_path / "pinned")
    run_both(sess, model, ort_reference, {"x": np.arange(12, dtype=np.float32).reshape(3, 4) - 6})


def test_question_mark_dims_are_unrelated_dynamic_dims(ort_reference):
    """Paddle exports name every dynamic dim "?"; ONNX Runtime does not make them equal."""
    model = relu_neg()
    for vi in (model.graph.input[0], model.graph.output[0]):
        for d in vi.type.tensor_type.shape.dim:
            d.dim_param = "?"
    sess = InferenceSession(model, ["onnxruntime"])
    assert sess.get_inputs()[0].shape == [None, None]
    run_both(sess, model, ort_reference, {"x": np.linspace(-1, 1, 10, dtype=np.float32).reshape(2, 5)})


def test_a_misspelled_delegate_option_fails_at_session_creation_before_planning(monkeypatch):
    import unified.pipeline

    def forbidden(*args, **kwargs):
        raise AssertionError("planned despite a bad option")

    monkeypatch.setattr(unified.pipeline, "make_plan", forbidden)
    with pytest.raises(unified.DelegateUnavailableError) as info:
        InferenceSession(relu_neg(), [("onnxruntime", {"num_thread": 2})])
    assert str(info.value).startswith("delegate 'onnxruntime' has no option 'num_thread'; its options are: backend, "
                                      "num_threads (int, default None)")
    with pytest.raises(unified.DelegateUnavailableError,
                       match=r"option 'optimization_level' of delegate 'onnxruntime' is 'max'; expected one of "
                             r"'disable', 'basic', 'extended', 'all'"):
        InferenceSession(relu_neg(), [("onnxruntime", {"optimization_level": "max"})])
    with pytest.raises(unified.DelegateUnavailableError,
                       match=r"option 'num_threads' of delegate 'onnxruntime' must be int, got str '2'"):
        InferenceSession(relu_neg(), [("onnxruntime", {"num_threads": "2"})])


def test_a_model_input_no_node_reads_is_accepted_and_ignored(ort_reference):
    """ONNX allows unused graph inputs (CastLike's expanded test reads `like` for its type only)."""
    model = relu_neg()
    model.graph.input.append(helper.make_tensor_value_info("unused", F, [1]))
    sess = InferenceSession(model, ["onnxruntime"])
    x = np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_allclose(sess.run(None, {"x": x, "unused": np.zeros(1, np.float32)})[0], -np.maximum(x, 0))
